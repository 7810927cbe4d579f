"""labkit.images: reading the shipped photos and measuring image quality."""
import numpy as np
import pytest

import labkit


def test_every_shipped_image_loads_as_rgb_uint8():
    for path in sorted(labkit.data_path("images").glob("*.jpg")):
        image = labkit.load_image(path)
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
        assert max(image.shape[:2]) == 320


def test_shipped_images_are_all_documented_in_the_data_readme():
    readme = labkit.data_path("README.md").read_text()
    for path in labkit.data_path("images").iterdir():
        assert f"`{path.name}`" in readme, f"{path.name} has no source/license row in data/README.md"


def test_load_image_names_a_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no image at"):
        labkit.load_image(tmp_path / "face.png")


def test_load_image_rejects_a_file_that_is_not_an_image(tmp_path):
    path = tmp_path / "fake.png"
    path.write_text("not pixels")
    with pytest.raises(ValueError, match="'fake.png' is not an image OpenCV can read"):
        labkit.load_image(path)


def test_psnr_is_infinite_for_identical_images_and_drops_with_noise():
    image = np.full((8, 8), 100, np.uint8)
    assert labkit.psnr(image, image) == float("inf")
    assert labkit.psnr(image, image + 1) == pytest.approx(48.13, abs=0.01)


def test_psnr_refuses_images_of_different_shapes():
    with pytest.raises(ValueError, match="images differ in shape"):
        labkit.psnr(np.zeros((4, 4)), np.zeros((4, 5)))

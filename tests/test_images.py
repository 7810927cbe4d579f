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


def test_a_truncated_jpeg_is_refused_instead_of_returned_with_made_up_rows(tmp_path):
    whole = labkit.data_path("images/astronaut.jpg").read_bytes()
    path = tmp_path / "cut.jpg"
    path.write_bytes(whole[: len(whole) // 4])
    with pytest.raises(ValueError, match=r"'cut.jpg' is a truncated JPEG: it stops before the end-of-image marker"):
        labkit.load_image(path)


def test_a_whole_jpeg_with_trailing_padding_still_loads(tmp_path):
    path = tmp_path / "padded.jpg"
    path.write_bytes(labkit.data_path("images/astronaut.jpg").read_bytes() + b"\x00\x00")
    assert labkit.load_image(path).shape == (320, 320, 3)


def test_an_rgba_png_drops_alpha_and_says_so(tmp_path):
    import cv2

    rgba = np.zeros((4, 5, 4), np.uint8)
    rgba[..., 2] = 200  # red in OpenCV's BGRA order
    cv2.imwrite(str(tmp_path / "logo.png"), rgba)
    with pytest.warns(UserWarning, match="'logo.png' has an alpha .* drops alpha"):
        image = labkit.load_image(tmp_path / "logo.png")
    assert image.shape == (4, 5, 3) and image[0, 0].tolist() == [200, 0, 0]


def test_an_rgb_png_loads_without_a_warning(tmp_path, recwarn):
    import cv2

    cv2.imwrite(str(tmp_path / "plain.png"), np.zeros((4, 5, 3), np.uint8))
    assert labkit.load_image(tmp_path / "plain.png").shape == (4, 5, 3)
    assert not [w for w in recwarn if issubclass(w.category, UserWarning)]

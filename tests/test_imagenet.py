"""labkit.imagenet (torchvision-equivalent preprocessing, labels, offline AlexNet) and `labkit fetch-weights`."""
from __future__ import annotations

import hashlib
import socket
import urllib.error

import numpy as np
import pytest
import torch

from labkit import cli, imagenet


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """An empty torch hub cache, so the tests never see (or write) the user's real cache."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    return tmp_path / "hub" / "checkpoints"


def _photo(height: int, width: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)


def _torchvision(image: np.ndarray) -> np.ndarray:
    from torchvision.models import AlexNet_Weights

    tensor = torch.from_numpy(image).permute(2, 0, 1).float() / 255.0
    return AlexNet_Weights.IMAGENET1K_V1.transforms()(tensor).numpy()[None]


def _lesson01_resize() -> dict:
    """The resize functions Lesson 01 §5 defines in its cells (the cell that teaches them), run here."""
    import ast

    import nbformat

    from labkit.paths import repo_root

    notebook = nbformat.read(repo_root() / "notebooks" / "01_alexnet_export.ipynb", as_version=4)
    cell = next(c.source for c in notebook.cells if c.cell_type == "code" and "def antialias_matrix(" in c.source)
    tree = ast.parse(cell)
    tree.body = [node for node in tree.body if isinstance(node, ast.FunctionDef)]  # definitions only
    namespace = {"np": np}
    exec(compile(tree, "lesson01", "exec"), namespace)
    return namespace


@pytest.mark.parametrize("n_in, n_out", [(320, 256), (213, 256), (273, 256), (256, 256), (7, 3)])
def test_labkits_resize_is_the_one_lesson01_teaches(n_in, n_out):
    lesson = _lesson01_resize()
    np.testing.assert_allclose(imagenet.antialias_matrix(n_in, n_out), lesson["antialias_matrix"](n_in, n_out),
                               rtol=0, atol=1e-12)
    image = _photo(n_in, n_in + 5)
    np.testing.assert_allclose(imagenet.resize_antialiased(image, n_out, n_out + 3),
                               lesson["resize_antialiased"](image, n_out, n_out + 3), rtol=0, atol=1e-9)


@pytest.mark.parametrize("size", [(150, 190), (400, 300)], ids=["shrink", "enlarge"])
def test_resize_antialiased_equals_torchs_antialiased_bilinear(size):
    image = _photo(213, 320)
    chw = torch.from_numpy(image).permute(2, 0, 1)[None].double()
    expected = torch.nn.functional.interpolate(chw, size=size, mode="bilinear", antialias=True)[0].permute(1, 2, 0)
    np.testing.assert_allclose(imagenet.resize_antialiased(image, *size), expected.numpy(), rtol=0, atol=1e-6)


def test_preprocess_returns_float32_nchw_224():
    batch = imagenet.preprocess(_photo(213, 320))
    assert batch.shape == (1, 3, 224, 224)
    assert batch.dtype == np.float32
    assert batch.flags["C_CONTIGUOUS"]


@pytest.mark.parametrize("shape", [(213, 320), (320, 273), (320, 320), (500, 400), (240, 256)],
                         ids=["enlarge-wide", "shrink-tall", "shrink-square", "shrink-large", "mixed"])
def test_preprocess_matches_torchvision_eval_transform(shape):
    ours = imagenet.preprocess(_photo(*shape))
    # noise is the worst case for torch's float32 filter weights; photos agree to ~1e-5
    assert np.abs(ours - _torchvision(_photo(*shape))).max() < 2e-4


def test_preprocess_normalises_each_channel_with_imagenet_mean_and_std():
    image = np.empty((300, 300, 3), dtype=np.uint8)
    image[...] = (0, 128, 255)
    batch = imagenet.preprocess(image)
    expected = (np.array([0, 128, 255]) / 255.0 - np.array(imagenet.MEAN)) / np.array(imagenet.STD)
    np.testing.assert_allclose(batch[0, :, 100, 100], expected, atol=1e-5)
    np.testing.assert_allclose(batch.std(axis=(2, 3))[0], 0, atol=1e-5)


@pytest.mark.parametrize("image, words", [
    (np.zeros((224, 224), np.uint8), "(H, W, 3)"),
    (np.zeros((224, 224, 4), np.uint8), "(H, W, 3)"),
    (np.zeros((224, 224, 3), np.float32), "uint8"),
])
def test_preprocess_rejects_non_rgb_uint8_with_the_fix(image, words):
    with pytest.raises(ValueError, match=r"labkit\.load_image") as info:
        imagenet.preprocess(image)
    assert words in str(info.value)


def test_categories_are_the_1000_imagenet_labels_in_order():
    labels = imagenet.categories()
    assert len(labels) == 1000
    assert labels[0] == "tench" and labels[281] == "tabby"


def test_alexnet_without_cached_weights_is_random_and_deterministic(hub):
    state_before = torch.get_rng_state()
    first, pretrained = imagenet.alexnet()
    second, _ = imagenet.alexnet()
    assert pretrained is False
    assert not first.training
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), second.state_dict().values()))
    assert torch.equal(torch.get_rng_state(), state_before), "alexnet() must not move the global RNG"
    other, _ = imagenet.alexnet(seed=1)
    assert not torch.equal(first.features[0].weight, other.features[0].weight)


def test_alexnet_loads_cached_weights_without_downloading_or_moving_the_rng(hub, monkeypatch):
    import torchvision

    monkeypatch.setattr(torch.hub, "download_url_to_file", _no_network)
    reference = torchvision.models.alexnet(weights=None)
    hub.mkdir(parents=True)
    torch.save(reference.state_dict(), hub / "alexnet-owt-7be5be79.pth")
    state_before = torch.get_rng_state()
    model, pretrained = imagenet.alexnet()
    assert pretrained is True and not model.training
    assert torch.equal(model.classifier[6].weight, reference.classifier[6].weight)
    assert torch.equal(torch.get_rng_state(), state_before)


def test_alexnet_names_the_fix_for_a_damaged_cache_file(hub):
    hub.mkdir(parents=True)
    (hub / "alexnet-owt-7be5be79.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(RuntimeError, match="delete it and run `labkit fetch-weights`"):
        imagenet.alexnet()


def test_cached_weights_holding_nan_are_refused_not_loaded(hub):
    import torchvision

    state = torchvision.models.alexnet(weights=None).state_dict()
    state["classifier.6.bias"][7] = float("nan")
    hub.mkdir(parents=True)
    torch.save(state, hub / "alexnet-owt-7be5be79.pth")
    with pytest.raises(RuntimeError, match=r"hold NaN or infinity in 1 tensor \(e.g. 'classifier.6.bias'\): "
                                           r"delete it and run `labkit fetch-weights`"):
        imagenet.alexnet()


def _no_network(url, dst, *args, **kwargs):
    raise urllib.error.URLError(socket.gaierror(-2, "Name or service not known"))


def test_fetch_weights_offline_exits_1_naming_url_and_cause(hub, monkeypatch, capsys):
    monkeypatch.setattr(torch.hub, "download_url_to_file", _no_network)
    assert cli.main(["fetch-weights"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("labkit fetch-weights: error: cannot download ")
    assert imagenet.WEIGHTS_URL in err
    assert "Name or service not known" in err and "offline" in err
    assert not (hub / "alexnet-owt-7be5be79.pth").exists()


def test_fetch_weights_reports_an_http_error_as_such(hub, monkeypatch, capsys):
    def forbidden(url, dst, *args, **kwargs):
        raise urllib.error.HTTPError(url, 403, "Forbidden", {}, None)

    monkeypatch.setattr(torch.hub, "download_url_to_file", forbidden)
    assert cli.main(["fetch-weights"]) == 1
    err = capsys.readouterr().err
    assert "the server answered HTTP 403 Forbidden" in err and "offline" not in err


def test_fetch_weights_downloads_into_the_hub_cache(hub, monkeypatch, capsys):
    calls = []

    def fake_download(url, dst, hash_prefix=None, progress=True):
        calls.append((url, hash_prefix))
        with open(dst, "wb") as f:
            f.write(b"weights")

    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download)
    assert cli.main(["fetch-weights"]) == 0
    assert calls == [(imagenet.WEIGHTS_URL, "7be5be79")]
    assert (hub / "alexnet-owt-7be5be79.pth").read_bytes() == b"weights"
    assert "weights downloaded" in capsys.readouterr().out


def test_fetch_weights_says_cached_only_after_checking_the_files_sha256(hub, monkeypatch, capsys):
    good = b"weights whose hash is the expected one"
    monkeypatch.setattr(imagenet, "WEIGHTS_SHA256_PREFIX", hashlib.sha256(good).hexdigest()[:8])
    monkeypatch.setattr(torch.hub, "download_url_to_file", _no_network)
    hub.mkdir(parents=True)
    (hub / "alexnet-owt-7be5be79.pth").write_bytes(good)
    assert cli.main(["fetch-weights"]) == 0
    assert "already cached (SHA-256" in capsys.readouterr().out


def test_a_damaged_cached_file_is_reported_and_fetched_again_never_called_cached(hub, monkeypatch, capsys):
    hub.mkdir(parents=True)
    (hub / "alexnet-owt-7be5be79.pth").write_bytes(b"corrupted")  # 9 bytes
    calls = []

    def fake_download(url, dst, hash_prefix=None, progress=True):
        calls.append(url)
        raise urllib.error.URLError(socket.gaierror(-2, "Name or service not known"))

    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download)
    assert cli.main(["fetch-weights"]) == 1
    captured = capsys.readouterr()
    assert calls == [imagenet.WEIGHTS_URL]
    assert "already cached" not in captured.out
    assert "is damaged (its SHA-256 does not start with 7be5be79): downloading it again" in captured.err


@pytest.mark.parametrize("timeout", ["-1", "0", "nan", "inf"])
def test_fetch_weights_refuses_a_timeout_that_is_not_a_positive_number(hub, monkeypatch, capsys, timeout):
    monkeypatch.setattr(torch.hub, "download_url_to_file", _no_network)
    assert cli.main(["fetch-weights", "--timeout", timeout]) == 2
    assert "labkit fetch-weights: error: --timeout must be a positive number of seconds" in capsys.readouterr().err

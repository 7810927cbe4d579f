"""labkit.srcnn (the kit's SRCNN and its metric), labkit.train_srcnn (training) and `labkit train-srcnn`."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import hashlib

from labkit import cli, paths
from labkit.images import load_image
from labkit.paths import data_path
from labkit.srcnn import (HELD_OUT, SRCNN, WEIGHTS, bicubic, crop_to_multiple, downscale, evaluate, load_srcnn,
                          luma, luma_psnr, to_image, to_tensor)
from labkit.train_srcnn import identity_init, output_path, train, training_images


@pytest.mark.parametrize("factor, size", [(2, (40, 48)), (3, (60, 72)), (4, (80, 96)), (2.5, (50, 60))])
def test_srcnn_output_is_input_size_times_factor(factor, size):
    model = SRCNN().eval()
    with torch.no_grad():
        out = model(torch.rand(1, 3, 20, 24), factor)
    assert tuple(out.shape) == (1, 3, *size)


def test_srcnn_uses_its_fixed_factor_unless_the_call_overrides_it():
    model = SRCNN(upscale_factor=3).eval()
    x = torch.rand(1, 3, 10, 12)
    with torch.no_grad():
        assert tuple(model(x).shape) == (1, 3, 30, 36)
        assert tuple(model(x, 2).shape) == (1, 3, 20, 24)


def test_srcnn_without_any_factor_names_both_fixes():
    with pytest.raises(ValueError, match=r"SRCNN\(upscale_factor=3\) or call model\(x, 3\)"):
        SRCNN()(torch.rand(1, 3, 8, 8))


def test_identity_init_makes_the_untrained_network_plain_bicubic():
    torch.manual_seed(0)
    model = SRCNN()
    identity_init(model)
    lr = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        out = model.eval()(lr, 2)
    # the pass-through channels go through ReLUs, which clip bicubic's small undershoots below 0
    expected = bicubic(lr, 2).clamp(min=0)
    assert torch.allclose(out, expected, atol=2e-2)


def test_training_images_leave_out_the_held_out_photo():
    images = training_images()
    shipped = sorted(data_path("images").glob("*.jpg"))
    assert len(images) == len(shipped) - len(HELD_OUT)
    held_out = to_tensor(load_image(data_path(f"images/{HELD_OUT[0]}")))[0]
    assert not any(image.shape == held_out.shape and torch.equal(image, held_out) for image in images)


def test_a_tiny_training_run_changes_the_weights_and_is_deterministic():
    first = train(steps=3, batch=2, patch=24, seed=1, progress=False).state_dict()
    second = train(steps=3, batch=2, patch=24, seed=1, progress=False).state_dict()
    assert all(torch.equal(first[name], second[name]) for name in first)
    torch.manual_seed(1)
    untrained = SRCNN()
    identity_init(untrained)
    assert not torch.equal(first["conv3.weight"], untrained.state_dict()["conv3.weight"])


def test_another_seed_gives_other_weights():
    first = train(steps=2, batch=2, patch=24, seed=1, progress=False).state_dict()
    other = train(steps=2, batch=2, patch=24, seed=2, progress=False).state_dict()
    assert not torch.equal(first["conv1.weight"], other["conv1.weight"])


@pytest.mark.parametrize("kwargs, message", [({"patch": 50}, "multiple of 12|divide by 12"),
                                             ({"patch": 1200}, "larger than the smallest"),
                                             ({"steps": 0}, "steps and batch must be >= 1")])
def test_train_rejects_bad_settings_with_the_reason(kwargs, message):
    with pytest.raises(ValueError, match=message):
        train(progress=False, **kwargs)


def test_train_srcnn_command_writes_a_weights_only_state_dict(tmp_path, capsys):
    out = tmp_path / "srcnn.pth"
    code = cli.main(["train-srcnn", "--steps", "2", "--batch", "2", "--patch", "24", "--out", str(out)])
    assert code in (0, 1)  # 2 steps need not beat bicubic yet; the command says so with exit code 1
    printed = capsys.readouterr().out
    assert "after 2 steps" in printed and "seed 0" in printed
    assert all(f"x{f}" in printed for f in (2, 3, 4))
    model = SRCNN()
    model.load_state_dict(torch.load(out, weights_only=True))


def test_train_srcnn_writes_to_artifacts_unless_told_to_replace_the_shipped_weights():
    assert output_path() == paths.repo_root() / "artifacts" / "train-srcnn" / WEIGHTS
    assert output_path(replace_shipped=True) == paths.repo_root() / "data" / WEIGHTS


def test_an_out_that_is_the_shipped_file_needs_the_explicit_flag():
    with pytest.raises(ValueError, match="say --replace-shipped"):
        output_path(str(paths.repo_root() / "data" / WEIGHTS))


def test_a_training_run_without_options_leaves_the_shipped_weights_alone(tmp_path, monkeypatch, capsys):
    shipped = data_path(WEIGHTS)
    before = hashlib.sha256(shipped.read_bytes()).hexdigest()
    monkeypatch.setattr(paths, "artifacts_dir", lambda stem: tmp_path / stem)
    cli.main(["train-srcnn", "--steps", "1", "--batch", "1", "--patch", "24"])
    assert (tmp_path / "train-srcnn" / WEIGHTS).is_file()
    assert hashlib.sha256(shipped.read_bytes()).hexdigest() == before
    assert "to ship them: labkit train-srcnn --replace-shipped" in capsys.readouterr().out


def test_out_and_replace_shipped_cannot_be_combined(capsys):
    with pytest.raises(SystemExit):
        cli.main(["train-srcnn", "--out", "x.pth", "--replace-shipped"])
    assert "not allowed with argument" in capsys.readouterr().err


def test_shipped_weights_are_small_and_load_with_weights_only():
    path = data_path(WEIGHTS)
    assert path.stat().st_size < 1024 * 1024
    state = torch.load(path, weights_only=True)
    assert {name: tuple(t.shape) for name, t in state.items()} == {
        name: tuple(t.shape) for name, t in SRCNN().state_dict().items()}


def test_shipped_weights_beat_bicubic_at_x2_on_a_held_out_face_crop():
    face = load_image(data_path(f"images/{HELD_OUT[0]}"))[0:96, 96:192]  # the astronaut's face, 96 x 96 px
    ours, base = evaluate(load_srcnn(), face, 2)
    assert ours > base + 0.2, f"SRCNN {ours:.2f} dB vs bicubic {base:.2f} dB"  # measured: +0.5 dB


def test_to_image_inverts_to_tensor_and_clips():
    image = np.random.default_rng(0).integers(0, 256, (6, 8, 3), dtype=np.uint8)
    assert np.array_equal(to_image(to_tensor(image)), image)
    assert to_image(np.full((1, 3, 2, 2), 2.0)).max() == 255
    with pytest.raises(ValueError, match="RGB uint8"):
        to_tensor(image.astype(np.float32))
    with pytest.raises(ValueError, match=r"\(1, 3, H, W\)"):
        to_image(np.zeros((3, 2, 2)))


def test_crop_to_multiple_keeps_the_centre():
    image = np.arange(26 * 15).reshape(26, 15)
    cropped = crop_to_multiple(image, 12)
    assert cropped.shape == (24, 12)
    assert cropped[0, 0] == image[1, 1]


def test_downscale_gives_8_bit_levels_and_rejects_sizes_that_do_not_divide():
    lr = downscale(torch.rand(1, 3, 24, 36), 3)
    assert tuple(lr.shape) == (1, 3, 8, 12)
    assert torch.equal(lr, (lr * 255).round() / 255)
    with pytest.raises(ValueError, match="crop_to_multiple"):
        downscale(torch.rand(1, 3, 25, 36), 3)


def test_luma_is_bt601_and_psnr_uses_it_with_a_border():
    black = np.zeros((10, 10, 3), dtype=np.uint8)
    white = np.full((10, 10, 3), 255, dtype=np.uint8)
    assert luma(black)[0, 0] == pytest.approx(16.0)
    assert luma(white)[0, 0] == pytest.approx(235.0)
    one_level = np.full((10, 10, 3), 1, dtype=np.uint8)
    expected = 10 * np.log10(255**2 / (219 / 255) ** 2)
    assert luma_psnr(black, one_level) == pytest.approx(expected)
    noisy = black.copy()
    noisy[0, :] = 255  # damage only the border row
    assert luma_psnr(black, noisy, border=1) == float("inf")
    with pytest.raises(ValueError, match="differ in shape"):
        luma_psnr(black, white[:5])


# --- what training writes: never non-finite weights, never worse weights over the shipped ones ----

@pytest.fixture
def checkout(tmp_path, monkeypatch):
    """A copy of the checkout's data/ (photos linked, the shipped weights copied), so a test may replace them."""
    import shutil

    (tmp_path / "notebooks").mkdir()
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "images").symlink_to(paths.repo_root() / "data" / "images")
    shutil.copyfile(paths.repo_root() / "data" / WEIGHTS, tmp_path / "data" / WEIGHTS)
    monkeypatch.setattr(paths, "repo_root", lambda: tmp_path)
    return tmp_path


TINY = ["train-srcnn", "--steps", "4", "--batch", "2", "--patch", "24"]


@pytest.mark.parametrize("where", [["--out", "mine.pth"], ["--replace-shipped"], []],
                         ids=["--out", "--replace-shipped", "default"])
def test_a_run_that_diverges_writes_nothing_and_names_the_learning_rate(checkout, monkeypatch, capsys, where):
    monkeypatch.chdir(checkout)
    shipped = (checkout / "data" / WEIGHTS).read_bytes()
    assert cli.main([*TINY, "--lr", "1e6", *where]) == 1
    captured = capsys.readouterr()
    assert "diverged" in captured.err and "lower --lr" in captured.err
    assert "train longer" not in captured.out + captured.err
    assert not (checkout / "mine.pth").exists() and not (checkout / "artifacts" / "train-srcnn" / WEIGHTS).exists()
    assert (checkout / "data" / WEIGHTS).read_bytes() == shipped


def test_weights_weaker_than_the_shipped_ones_do_not_replace_them_and_are_kept_in_artifacts(checkout, capsys):
    shipped = (checkout / "data" / WEIGHTS).read_bytes()
    assert cli.main([*TINY, "--replace-shipped"]) == 1
    out = capsys.readouterr().out
    assert (checkout / "data" / WEIGHTS).read_bytes() == shipped
    assert (checkout / "artifacts" / "train-srcnn" / WEIGHTS).is_file()
    assert f"kept data/{WEIGHTS}: the new weights score" in out and "wrote artifacts/train-srcnn/" in out


@pytest.mark.parametrize("spoil", ["random weights", "NaN"])
def test_weights_better_than_the_shipped_ones_replace_them(checkout, capsys, spoil):
    torch.manual_seed(0)
    state = SRCNN().state_dict()  # no identity init: far worse than bicubic
    if spoil == "NaN":
        state["conv3.bias"][0] = float("nan")
    torch.save(state, checkout / "data" / WEIGHTS)
    cli.main([*TINY, "--replace-shipped"])
    assert f"wrote data/{WEIGHTS}" in capsys.readouterr().out
    assert not any(torch.isnan(t).any() for t in torch.load(checkout / "data" / WEIGHTS, weights_only=True).values())


def test_the_trained_weights_are_never_saved_when_they_hold_nan(tmp_path):
    from labkit import train_srcnn

    model = SRCNN()
    with torch.no_grad():
        model.conv2.bias[0] = float("inf")
    with pytest.raises(ValueError, match=r"hold NaN or infinity in 1 tensor \(e.g. 'conv2.bias'\): nothing was written"):
        train_srcnn.save_trained(model, tmp_path / "x.pth")
    assert not (tmp_path / "x.pth").exists()


def test_srcnn_weights_holding_nan_are_refused_naming_the_tensor(tmp_path):
    state = SRCNN().state_dict()
    state["conv1.weight"][0, 0, 0, 0] = float("nan")
    torch.save(state, tmp_path / "nan.pth")
    with pytest.raises(ValueError, match=r"'nan.pth' holds NaN or infinity in 1 tensor \(e.g. 'conv1.weight'\)"):
        load_srcnn(path=tmp_path / "nan.pth")

"""Lesson 08's plumbing: the byte tokenizer, the corpus, the shipped weights, the training command, the model's source."""
from __future__ import annotations

import argparse
import inspect
import json
import re

import pytest
import torch

from labkit import paths, tinylm, train_tinylm
from labkit.weights import file_sha256
from labkit.commands import train_tinylm as command

NOTEBOOK = "08_tiny_language_model.ipynb"


# ------------------------------------------------------------------------ tokenizer and corpus
def test_encode_and_decode_round_trip_any_unicode_text():
    text = "ONNX — a KV cache, 2× faster? Ünïcode ✓"
    assert tinylm.decode(tinylm.encode(text)) == text
    assert len(tinylm.encode("—")) == 3  # one token per UTF-8 byte


def test_decode_accepts_a_tensor_and_replaces_a_broken_byte_sequence():
    assert tinylm.decode(torch.tensor([72, 105])) == "Hi"
    assert tinylm.decode([0xE2, 0x80]) == "\ufffd"


def test_decode_rejects_ids_outside_the_byte_range():
    with pytest.raises(ValueError, match="bytes"):
        tinylm.decode([65, 256])


def test_encode_asks_for_text_not_bytes():
    with pytest.raises(TypeError, match="decode bytes first"):
        tinylm.encode(b"abc")


def test_the_corpus_is_the_prose_of_lessons_00_to_07_only():
    text = tinylm.corpus_text()
    assert "# Lesson 00" in text and "# Lesson 07" in text
    assert "# Lesson 08" not in text  # the lesson about the model is not in its training text
    assert "import torch" not in text  # markdown cells only


def test_the_held_out_part_is_the_last_tenth_of_the_corpus():
    text = "abcdefghij" * 10
    train, held = tinylm.split_corpus(text)
    assert train + held == text and len(held) == 10


# ------------------------------------------------------------------------ shipped weights
def test_the_shipped_weights_hash_is_the_one_recorded_in_code_and_in_data_readme():
    path = paths.data_path(tinylm.WEIGHTS)
    assert file_sha256(path) == tinylm.WEIGHTS_SHA256
    assert tinylm.WEIGHTS_SHA256 in (paths.repo_root() / "data" / "README.md").read_text(encoding="utf-8")
    assert path.stat().st_size <= 5 * 2**20


def test_load_weights_refuses_a_shipped_file_whose_hash_differs(monkeypatch):
    monkeypatch.setattr(tinylm, "WEIGHTS_SHA256", "0" * 64)
    with pytest.raises(ValueError, match="git checkout data/tinylm_bytes.pt"):
        tinylm.load_weights()


def test_load_weights_names_a_foreign_file(tmp_path):
    foreign = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, foreign)
    with pytest.raises(ValueError, match="'other.pt' is not a tiny LM checkpoint"):
        tinylm.load_weights(foreign)


def test_load_weights_names_the_command_for_a_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="labkit train-tinylm"):
        tinylm.load_weights(tmp_path / "missing.pt")


@pytest.fixture(scope="module")
def shipped():
    config, state = tinylm.load_weights()
    model = train_tinylm.TinyLM(**config)
    model.load_state_dict(state)
    return model.eval()


def test_the_shipped_model_gives_the_same_logits_with_and_without_its_cache(shipped):
    ids = torch.tensor([tinylm.encode("The exported model")])
    with torch.no_grad():
        full, _ = shipped(ids)
        _, past = shipped(ids[:, :7])
        rest, present = shipped(ids[:, 7:], past)
    torch.testing.assert_close(rest, full[:, 7:], atol=1e-5, rtol=1e-4)
    assert present[0][0].shape == (1, 2, ids.shape[1], 32)


def test_the_shipped_model_predicts_held_out_prose_far_better_than_chance(shipped):
    held = torch.tensor(tinylm.encode(tinylm.split_corpus(tinylm.corpus_text())[1][:4096]))
    loss = train_tinylm.held_out_loss(shipped, held)
    assert loss < 2.0, f"held-out loss {loss:.2f} nats/byte (chance is {torch.log(torch.tensor(256.0)):.2f})"


# ------------------------------------------------------------------------ the model shown in the lesson
def _notebook_code() -> str:
    cells = json.loads((paths.repo_root() / "notebooks" / NOTEBOOK).read_text(encoding="utf-8"))["cells"]
    return "\n\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")


@pytest.mark.parametrize("cls", [train_tinylm.Block, train_tinylm.TinyLM], ids=lambda c: c.__name__)
def test_the_lesson_shows_the_same_model_class_the_training_command_trains(cls):
    source = inspect.getsource(cls).rstrip()
    assert source in _notebook_code(), (f"labkit/train_tinylm.py's {cls.__name__} and the one in notebooks/{NOTEBOOK} "
                                        "differ: change both (the lesson shows the class the command trains)")


def test_the_model_in_the_lesson_is_about_forty_lines():
    lines = [line for cls in (train_tinylm.Block, train_tinylm.TinyLM)
             for line in inspect.getsource(cls).splitlines() if line.strip() and not line.strip().startswith(("#", '"""'))]
    assert len(lines) <= 50


# ------------------------------------------------------------------------ the training command
def _args(**values):
    defaults = dict(steps=2, batch=2, length=16, lr=5e-3, seed=0, out=None, replace_shipped=False)
    return argparse.Namespace(**(defaults | values))


def test_train_returns_a_finite_model_and_its_held_out_loss():
    model, loss = train_tinylm.train(steps=2, batch=2, length=16)
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert 0 < loss < 10 and not model.training


def test_out_may_not_point_at_the_shipped_file():
    with pytest.raises(ValueError, match="--replace-shipped"):
        train_tinylm.output_path(out=str(paths.data_path(tinylm.WEIGHTS)))


def test_the_default_output_is_under_artifacts():
    assert train_tinylm.output_path().parts[-3:] == ("artifacts", "train-tinylm", tinylm.WEIGHTS)


def test_non_finite_weights_are_never_written(tmp_path, monkeypatch, shipped):
    broken = train_tinylm.TinyLM()
    with torch.no_grad():
        broken.head.weight[0, 0] = float("nan")
    monkeypatch.setattr(train_tinylm, "train", lambda **kwargs: (broken, 1.0))
    out = tmp_path / "nan.pt"
    with pytest.raises(ValueError, match="NaN or infinity in 1 tensor \\(e.g. 'head.weight'\\): nothing was written"):
        command.main(_args(out=str(out)))
    assert not out.exists()


def test_replace_shipped_keeps_the_shipped_file_when_the_new_loss_is_not_better(monkeypatch, shipped, capsys):
    before = file_sha256(paths.data_path(tinylm.WEIGHTS))
    monkeypatch.setattr(train_tinylm, "train", lambda **kwargs: (shipped, 99.0))
    assert command.main(_args(replace_shipped=True)) == 1
    assert "not replacing data/tinylm_bytes.pt" in capsys.readouterr().out
    assert file_sha256(paths.data_path(tinylm.WEIGHTS)) == before


def test_the_command_is_registered_in_the_cli():
    from labkit.cli import COMMANDS

    assert "train-tinylm" in COMMANDS and re.search(r"language model", COMMANDS["train-tinylm"])


def test_the_command_writes_a_checkpoint_load_weights_reads(tmp_path, capsys):
    from labkit import cli

    out = tmp_path / "mine.pt"
    assert cli.main(["train-tinylm", "--steps", "2", "--batch", "2", "--length", "16", "--out", str(out)]) == 0
    config, state = tinylm.load_weights(out)
    assert config == train_tinylm.CONFIG and set(state) == set(train_tinylm.TinyLM().state_dict())
    assert f"labkit.tinylm.load_weights('{out}')" in capsys.readouterr().out


def test_out_and_replace_shipped_cannot_be_combined():
    from labkit import cli

    with pytest.raises(SystemExit):
        cli.main(["train-tinylm", "--out", "x.pt", "--replace-shipped"])

"""Lesson 00's exercise: right answer Correct, wrong answers Incorrect with a precise reason."""
import warnings

import pytest
import torch

from labkit.exercises.lesson00 import q1


@pytest.fixture
def torch_model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU()).eval()


def _export(model, path, **names):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.randn(2, 4),), path, dynamo=False, **names)
    return path


def test_not_attempted_without_the_variable(torch_model):
    assert repr(q1.check(torch_model=torch_model)).startswith("Not attempted (Exercise 1): set `ex1_path`")


def test_default_names_are_incorrect_and_say_what_was_found(tmp_path, torch_model):
    path = _export(torch_model, tmp_path / "a.onnx")
    outcome = q1.check(ex1_path=path, torch_model=torch_model)
    assert not outcome
    assert "expected 1 graph input(s) ['pixels'], found 1: ['onnx::Gemm_0']" in repr(outcome)


def test_wrong_output_name_is_incorrect(tmp_path, torch_model):
    path = _export(torch_model, tmp_path / "b.onnx", input_names=["pixels"], output_names=["scores"])
    assert "should be named 'logits', found ['scores']" in repr(q1.check(ex1_path=path, torch_model=torch_model))


def test_another_models_weights_are_incorrect(tmp_path, torch_model):
    other = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU()).eval()
    path = _export(other, tmp_path / "c.onnx", input_names=["pixels"], output_names=["logits"])
    assert "ORT's output differs from torch_model's" in repr(q1.check(ex1_path=path, torch_model=torch_model))


def test_a_missing_file_is_incorrect(tmp_path, torch_model):
    outcome = q1.check(ex1_path=tmp_path / "none.onnx", torch_model=torch_model)
    assert "no such file exists: run your export first" in repr(outcome)


def test_the_solution_is_correct(tmp_path, torch_model):
    path = _export(torch_model, tmp_path / "d.onnx", input_names=["pixels"], output_names=["logits"])
    assert q1.check(ex1_path=path, torch_model=torch_model)

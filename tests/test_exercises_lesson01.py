"""Lesson 01's exercises: right answers Correct, wrong ones Incorrect with the reason, missing ones Not attempted.

A tiny stand-in for AlexNet (same signature: [N, 3, 224, 224] -> [N, 1000]) keeps the exports fast.
"""
from __future__ import annotations

import warnings

import numpy as np
import onnxruntime as ort
import pytest
import torch

from labkit.exercises.lesson01 import q1, q2, q3


def _stand_in(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(3, 1000)).eval()


@pytest.fixture(scope="module")
def torch_model():
    return _stand_in(0)


def _export(model, path, *, batch=1, size=224, dynamo=False, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        args = (torch.randn(batch, 3, size, size),)
        if dynamo:
            torch.onnx.export(model, args, path, dynamo=True, verbose=False, **kwargs)
        else:
            torch.onnx.export(model, args, path, dynamo=False, **kwargs)
    return path


NAMES = {"input_names": ["image"], "output_names": ["logits"]}
DYNAMIC = {"dynamic_axes": {"image": {0: "batch"}, "logits": {0: "batch"}}}


@pytest.fixture(scope="module")
def solution_path(tmp_path_factory, torch_model):
    return _export(torch_model, tmp_path_factory.mktemp("q") / "solution.onnx", **NAMES, **DYNAMIC)


@pytest.fixture(scope="module")
def other_weights_path(tmp_path_factory):
    return _export(_stand_in(1), tmp_path_factory.mktemp("q") / "other.onnx", **NAMES, **DYNAMIC)


# --- q1: dynamic batch, input `image`, output `logits` ---------------------------------------

def test_q1_not_attempted_without_ex1_path(torch_model):
    assert repr(q1.check(torch_model=torch_model)).startswith("Not attempted (Exercise 1): set `ex1_path`")


def test_q1_missing_file_is_incorrect(tmp_path, torch_model):
    outcome = q1.check(ex1_path=tmp_path / "none.onnx", torch_model=torch_model)
    assert not outcome and "no such file exists: run your export first" in repr(outcome)


def test_q1_default_input_name_is_incorrect(tmp_path, torch_model):
    path = _export(torch_model, tmp_path / "a.onnx", output_names=["logits"])
    outcome = q1.check(ex1_path=path, torch_model=torch_model)
    assert outcome.status == "Incorrect" and "expected 1 graph input(s) ['image']" in outcome.message


def test_q1_wrong_output_name_is_incorrect(tmp_path, torch_model):
    path = _export(torch_model, tmp_path / "b.onnx", input_names=["image"], output_names=["output1"])
    assert "should be named 'logits', found ['output1']" in repr(q1.check(ex1_path=path, torch_model=torch_model))


def test_q1_static_batch_is_incorrect_and_names_both_fixes(tmp_path, torch_model):
    path = _export(torch_model, tmp_path / "c.onnx", batch=2, **NAMES)
    outcome = q1.check(ex1_path=path, torch_model=torch_model)
    assert outcome.status == "Incorrect"
    assert "batch dimension of 'image' is fixed at 2" in outcome.message
    assert "dynamic_axes" in outcome.message and "dynamic_shapes" in outcome.message


def test_q1_wrong_image_size_is_incorrect(tmp_path, torch_model):
    path = _export(torch_model, tmp_path / "d.onnx", size=64, **NAMES, **DYNAMIC)
    outcome = q1.check(ex1_path=path, torch_model=torch_model)
    assert "should have shape [batch, 3, 224, 224], found [batch, 3, 64, 64]" in outcome.message


def test_q1_another_models_weights_are_incorrect(other_weights_path, torch_model):
    outcome = q1.check(ex1_path=other_weights_path, torch_model=torch_model)
    assert outcome.status == "Incorrect" and "logits differ from torch_model's" in outcome.message


def test_q1_legacy_solution_is_correct(solution_path, torch_model):
    outcome = q1.check(ex1_path=solution_path, torch_model=torch_model)
    assert outcome, repr(outcome)
    assert "[batch, 3, 224, 224]" in outcome.message


def test_q1_default_exporter_with_dynamic_shapes_is_correct(tmp_path, torch_model):
    path = _export(torch_model, tmp_path / "e.onnx", batch=2, dynamo=True, **NAMES,
                   dynamic_shapes=({0: torch.export.Dim("batch")},))
    assert q1.check(ex1_path=path, torch_model=torch_model), "a dynamo export must be accepted too"


# --- q2: ORT on a batch of 3, compared with torch ----------------------------------------------

@pytest.fixture(scope="module")
def session(solution_path):
    return ort.InferenceSession(str(solution_path), providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def batch3():
    return np.random.default_rng(0).standard_normal((3, 3, 224, 224), dtype=np.float32)


def _q2(session, batch, logits, torch_model):
    return q2.check(ex2_session=session, ex2_batch=batch, ex2_logits=logits, torch_model=torch_model)


def test_q2_not_attempted_names_every_missing_variable(torch_model):
    outcome = q2.check(torch_model=torch_model)
    assert outcome.status == "Not attempted"
    assert "`ex2_session`, `ex2_batch`, `ex2_logits`" in outcome.message


def test_q2_a_path_instead_of_a_session_is_incorrect(solution_path, batch3, session, torch_model):
    logits = session.run(None, {"image": batch3})[0]
    outcome = _q2(str(solution_path), batch3, logits, torch_model)
    assert outcome.status == "Incorrect" and "`ex2_session` should be a InferenceSession" in outcome.message


def test_q2_a_batch_of_one_is_incorrect(session, torch_model):
    batch = np.zeros((1, 3, 224, 224), np.float32)
    outcome = _q2(session, batch, session.run(None, {"image": batch})[0], torch_model)
    assert "should be a batch of 3 images" in outcome.message and "(1, 3, 224, 224)" in outcome.message


def test_q2_a_float64_batch_is_incorrect(session, batch3, torch_model):
    outcome = _q2(session, batch3.astype(np.float64), session.run(None, {"image": batch3})[0], torch_model)
    assert "should be float32" in outcome.message


def test_q2_the_output_list_instead_of_the_array_is_incorrect(session, batch3, torch_model):
    outcome = _q2(session, batch3, session.run(None, {"image": batch3}), torch_model)
    assert "`ex2_logits` should be a ndarray, but it is a list" in outcome.message


def test_q2_logits_of_another_batch_are_incorrect(session, batch3, torch_model):
    other = session.run(None, {"image": batch3 + 1})[0]
    outcome = _q2(session, batch3, other, torch_model)
    assert "is not what `ex2_session` computes for `ex2_batch`" in outcome.message


def test_q2_a_session_on_another_model_is_incorrect(other_weights_path, batch3, torch_model):
    other = ort.InferenceSession(str(other_weights_path), providers=["CPUExecutionProvider"])
    outcome = _q2(other, batch3, other.run(None, {"image": batch3})[0], torch_model)
    assert outcome.status == "Incorrect" and "differs from torch_model's output" in outcome.message


def test_q2_the_solution_is_correct(session, batch3, torch_model):
    outcome = _q2(session, batch3, session.run(["logits"], {"image": batch3})[0], torch_model)
    assert outcome, repr(outcome)


# --- q3: op versions that change between opsets 11 and 13 --------------------------------------

def test_q3_not_attempted_without_ex3_changed():
    assert q3.check().status == "Not attempted"


@pytest.mark.parametrize("answer, words", [
    ("Relu", "`ex3_changed` should be a set or frozenset or list or tuple"),
    ({"Relu", "Softmax"}, "['Softmax'] are not op types of the AlexNet graph"),
    ({"Relu", "Gemm"}, "2 changed op type(s) missing"),
    ({"AveragePool", "Conv", "Flatten", "Gemm", "MaxPool", "Relu"}, "['AveragePool', 'Conv'] did not change"),
])
def test_q3_wrong_answers_are_incorrect_with_the_reason(answer, words):
    outcome = q3.check(ex3_changed=answer)
    assert outcome.status == "Incorrect" and words in outcome.message, repr(outcome)


@pytest.mark.parametrize("answer", [{"Flatten", "Gemm", "MaxPool", "Relu"}, ["Relu", "MaxPool", "Gemm", "Flatten"]])
def test_q3_the_four_changed_ops_are_correct_as_set_or_list(answer):
    outcome = q3.check(ex3_changed=answer)
    assert outcome, repr(outcome)

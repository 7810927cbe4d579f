"""Lesson 02 exercises: wrong answers are Incorrect with a message that says why, right ones are Correct
(missing variables: test_exercises_all)."""
from __future__ import annotations

import math
import warnings

import pytest
import torch

from labkit.exercises.core import CORRECT
from labkit.exercises.lesson02 import q1, q2, q3
from wrong_answers import WrongAnswer, assert_rejected, params


@pytest.fixture(autouse=True)
def _quiet_exporters():
    # The legacy exporter and torch.jit print deprecation and tracer warnings; they are not under test here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _export_legacy(model, args, path, **kwargs):
    torch.onnx.export(model, args, path, dynamo=False, **kwargs)
    return path


def _export_default(model, args, path, **kwargs):
    torch.onnx.export(model, args, path, dynamo=True, verbose=False, external_data=False, **kwargs)
    return path


# --- q1: a loop that keeps its count ------------------------------------------------------------

class _TracedDoubler(torch.nn.Module):
    def forward(self, x, n):
        for _ in range(n):
            x = x * 2
        return x


def _scripted(function):
    """torch.jit.script without its FutureWarning (at import time no fixture is active yet)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return torch.jit.script(function)


def _double_n_times_py(x, n):
    for _ in range(int(n)):
        x = x * 2
    return x


_double_n_times = _scripted(_double_n_times_py)


class _ScriptedDoubler(torch.nn.Module):
    def forward(self, x, n):
        return _double_n_times(x, n)


def _add_n_times_py(x, n):
    for _ in range(int(n)):
        x = x + 2
    return x


_add_n_times = _scripted(_add_n_times_py)


class _ScriptedAdder(torch.nn.Module):
    def forward(self, x, n):
        return _add_n_times(x, n)


class _WhileDoubler(torch.nn.Module):
    def forward(self, x, n):
        def cond_fn(i, x):
            return i < n

        def body_fn(i, x):
            return i + 1, x * 2

        return torch.while_loop(cond_fn, body_fn, (torch.zeros_like(n), x))[1]


DOUBLER_ARGS = (torch.ones(2, 3), torch.tensor(2))


def test_q1_scripted_loop_is_correct(tmp_path):
    path = _export_legacy(_ScriptedDoubler(), DOUBLER_ARGS, tmp_path / "scripted.onnx", input_names=["x", "n"])
    outcome = q1.check(ex1_path=path)
    assert outcome.status == CORRECT, outcome.message
    assert bool(outcome)


def test_q1_while_loop_on_the_default_exporter_is_correct(tmp_path):
    path = tmp_path / "while.onnx"
    torch.onnx.export(_WhileDoubler().eval(), DOUBLER_ARGS, path, dynamo=True, verbose=False,
                      external_data=False, input_names=["x", "n"])
    outcome = q1.check(ex1_path=path)
    assert outcome.status == CORRECT, outcome.message


# --- q2: a loop the data decides --------------------------------------------------------------------
# The reference is passed by keyword: the check would otherwise look for `HalveUntilSmall` in this module.

class _HalveUntilSmall(torch.nn.Module):
    def forward(self, x):
        while x.abs().max() > 1:
            x = x / 2
        return x


class _WhileHalve(torch.nn.Module):
    def forward(self, x):
        return torch.while_loop(lambda x: x.abs().max() > 1, lambda x: (x / 2,), (x,))[0]


def _halve_py(x):
    while bool(x.abs().max() > 1):
        x = x / 2
    return x


def _halve_no_abs_py(x):
    while bool(x.max() > 1):
        x = x / 2
    return x


def _halve_one_too_many_py(x):
    while bool(x.abs().max() >= 1):
        x = x / 2
    return x


def _module(function):
    scripted = _scripted(function)

    class Scripted(torch.nn.Module):
        def forward(self, x):
            return scripted(x)

    return Scripted().eval()


HALVE_EXAMPLE = (torch.tensor([[3.0, -1.0, 0.5], [0.1, 2.0, 1.0]]),)


def _q2(path):
    return q2.check(ex2_path=path, HalveUntilSmall=_HalveUntilSmall)


def test_q2_scripted_while_is_correct(tmp_path):
    path = _export_legacy(_module(_halve_py), HALVE_EXAMPLE, tmp_path / "scripted.onnx")
    outcome = _q2(path)
    assert outcome.status == CORRECT, outcome.message
    assert "0, 0, 1, 3, 102 halvings" in outcome.message


def test_q2_while_loop_on_the_default_exporter_is_correct(tmp_path):
    path = _export_default(_WhileHalve().eval(), HALVE_EXAMPLE, tmp_path / "while.onnx")
    outcome = _q2(path)
    assert outcome.status == CORRECT, outcome.message


# --- q3: a length that must stay in the graph -------------------------------------------------------

class _SqrtNPool(torch.nn.Module):
    def forward(self, x):
        return x.sum(dim=1) / math.sqrt(x.shape[1])


class _PowPool(torch.nn.Module):
    def forward(self, x):
        return x.sum(dim=1) / x.shape[1] ** 0.5


class _MeanPool(torch.nn.Module):
    def forward(self, x):
        return x.mean(dim=1)


SEQUENCES = (torch.rand(2, 5, 8),)
NAMED_STEPS = {"x": {0: "batch", 1: "steps"}}


def _q3(path):
    return q3.check(ex3_path=path, SqrtNPool=_SqrtNPool)


def test_q3_pow_with_named_dynamic_axes_is_correct(tmp_path):
    path = _export_legacy(_PowPool(), SEQUENCES, tmp_path / "pow.onnx", input_names=["x"], dynamic_axes=NAMED_STEPS)
    outcome = _q3(path)
    assert outcome.status == CORRECT, outcome.message
    assert "[batch, steps, 8]" in outcome.message


def test_q3_pow_on_the_default_exporter_is_correct(tmp_path):
    Dim = torch.export.Dim
    path = _export_default(_PowPool(), SEQUENCES, tmp_path / "pow_default.onnx",
                           dynamic_shapes={"x": {0: Dim("batch"), 1: Dim("steps")}})
    outcome = _q3(path)
    assert outcome.status == CORRECT, outcome.message


# --- the catalogue: each wrong answer is rejected, and the message names its fault --------------------------

def _float_count_py(x, n):
    for _ in range(int(n)):
        x = x * 2
    return x


_float_count = _scripted(_float_count_py)


class _FloatCountDoubler(torch.nn.Module):
    def forward(self, x, n):
        return _float_count(x, n)


class _AttributeDoubler(torch.nn.Module):
    """The loop over a module attribute (section 4): every exporter unrolls it, and `n` is never read."""

    def __init__(self, n=2):
        super().__init__()
        self.n = n

    def forward(self, x, n):
        for _ in range(self.n):
            x = x * 2
        return x


def _legacy(model, args, tmp_path, **kwargs):
    return _export_legacy(model, args, tmp_path / "ex.onnx", **kwargs)


WRONG_ANSWERS = [
    WrongAnswer(q1, "traced: the loop unrolled", lambda t: {"ex1_path": _legacy(
        _TracedDoubler(), DOUBLER_ARGS, t, input_names=["x", "n"])}, fault="the loop was unrolled at export time"),
    WrongAnswer(q1, "a scripted loop with the wrong body (adds 2)", lambda t: {"ex1_path": _legacy(
        _ScriptedAdder(), DOUBLER_ARGS, t, input_names=["x", "n"])}, fault="with n = 3 the model returned"),
    WrongAnswer(q1, "the count as a float tensor", lambda t: {"ex1_path": _legacy(
        _FloatCountDoubler(), (torch.ones(2, 3), torch.tensor(2.0)), t, input_names=["x", "n"])},
        fault="expected inputs x: float32 and n: int64"),
    WrongAnswer(q1, "a loop over a module attribute", lambda t: {"ex1_path": _legacy(
        _AttributeDoubler(), DOUBLER_ARGS, t, input_names=["x", "n"])}, fault="no Loop node"),
    WrongAnswer(q1, "the artifacts folder as the path", lambda t: {"ex1_path": t}, fault="which is a folder"),
    WrongAnswer(q1, "never exported", lambda t: {"ex1_path": t / "never_exported.onnx"}, fault="no such file"),
    WrongAnswer(q2, "traced: the while ran in Python", lambda t: {"ex2_path": _legacy(
        _HalveUntilSmall(), HALVE_EXAMPLE, t), "HalveUntilSmall": _HalveUntilSmall},
        fault="the while loop ran in Python at export time"),
    WrongAnswer(q2, "the condition without abs()", lambda t: {"ex2_path": _legacy(
        _module(_halve_no_abs_py), HALVE_EXAMPLE, t), "HalveUntilSmall": _HalveUntilSmall},
        fault="largest |x| is 2 (a negative element) your file halved 0 time(s); HalveUntilSmall halves 1"),
    WrongAnswer(q2, ">= 1 instead of > 1 (one halving too many)", lambda t: {"ex2_path": _legacy(
        _module(_halve_one_too_many_py), HALVE_EXAMPLE, t), "HalveUntilSmall": _HalveUntilSmall},
        fault="halved 2 time(s)"),
    WrongAnswer(q3, "traced math.sqrt: the length frozen", lambda t: {"ex3_path": _legacy(
        _SqrtNPool(), SEQUENCES, t, input_names=["x"], dynamic_axes=NAMED_STEPS), "SqrtNPool": _SqrtNPool},
        fault="divides by √5 whatever the length"),
    WrongAnswer(q3, "math.sqrt on the default exporter: the steps made static", lambda t: {
        "ex3_path": _export_default(_SqrtNPool(), SEQUENCES, t / "ex.onnx", dynamic_shapes={
            "x": {0: torch.export.Dim("batch"), 1: torch.export.Dim("steps")}}), "SqrtNPool": _SqrtNPool},
        fault="forced it static"),
    WrongAnswer(q3, "dynamic_axes as a list (no names)", lambda t: {"ex3_path": _legacy(
        _PowPool(), SEQUENCES, t, input_names=["x"], dynamic_axes={"x": [0, 1]}), "SqrtNPool": _SqrtNPool},
        fault="batch (dim 0) has no name of yours"),
    WrongAnswer(q3, "a mean instead of a sum over √steps", lambda t: {"ex3_path": _legacy(
        _MeanPool(), SEQUENCES, t, input_names=["x"], dynamic_axes=NAMED_STEPS), "SqrtNPool": _SqrtNPool},
        fault="differs from SqrtNPool's"),
]


@pytest.mark.parametrize("wrong", params(WRONG_ANSWERS))
def test_wrong_answer_is_rejected_naming_its_fault(wrong, tmp_path):
    assert_rejected(wrong, tmp_path)

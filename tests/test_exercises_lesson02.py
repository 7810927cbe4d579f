"""Lesson 02 exercises: wrong answers are Incorrect with a message that says why, right ones are Correct,
missing variables are Not attempted."""
from __future__ import annotations

import math
import warnings

import pytest
import torch

from labkit.exercises.core import CORRECT, INCORRECT, NOT_ATTEMPTED
from labkit.exercises.lesson02 import q1, q2, q3


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


def test_q1_traced_loop_is_incorrect_and_says_it_was_unrolled(tmp_path):
    path = _export_legacy(_TracedDoubler(), DOUBLER_ARGS, tmp_path / "traced.onnx", input_names=["x", "n"])
    outcome = q1.check(ex1_path=path)
    assert outcome.status == INCORRECT
    assert "no Loop node" in outcome.message and "unrolled" in outcome.message


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


def test_q1_loop_with_the_wrong_body_is_incorrect_and_names_the_count(tmp_path):
    path = _export_legacy(_ScriptedAdder(), DOUBLER_ARGS, tmp_path / "adder.onnx", input_names=["x", "n"])
    outcome = q1.check(ex1_path=path)
    assert outcome.status == INCORRECT
    assert "n = 0" not in outcome.message and "with n = 3" in outcome.message


def test_q1_missing_file_is_incorrect_not_a_traceback(tmp_path):
    outcome = q1.check(ex1_path=tmp_path / "never_exported.onnx")
    assert outcome.status == INCORRECT
    assert "no such file" in outcome.message


def test_q1_missing_variable_is_not_attempted():
    outcome = q1.check()
    assert outcome.status == NOT_ATTEMPTED
    assert "ex1_path" in outcome.message
    assert not outcome


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


def test_q2_traced_while_is_incorrect_and_says_the_stopping_test_ran_in_python(tmp_path):
    path = _export_legacy(_HalveUntilSmall(), HALVE_EXAMPLE, tmp_path / "traced.onnx")
    outcome = _q2(path)
    assert outcome.status == INCORRECT
    assert "no Loop node" in outcome.message and "ran in Python" in outcome.message


def test_q2_scripted_while_is_correct(tmp_path):
    path = _export_legacy(_module(_halve_py), HALVE_EXAMPLE, tmp_path / "scripted.onnx")
    outcome = _q2(path)
    assert outcome.status == CORRECT, outcome.message
    assert "0, 0, 1, 3, 102 halvings" in outcome.message


def test_q2_while_loop_on_the_default_exporter_is_correct(tmp_path):
    path = _export_default(_WhileHalve().eval(), HALVE_EXAMPLE, tmp_path / "while.onnx")
    outcome = _q2(path)
    assert outcome.status == CORRECT, outcome.message


def test_q2_condition_without_abs_is_incorrect_on_a_negative_element(tmp_path):
    path = _export_legacy(_module(_halve_no_abs_py), HALVE_EXAMPLE, tmp_path / "no_abs.onnx")
    outcome = _q2(path)
    assert outcome.status == INCORRECT
    assert "largest |x| is 2 (a negative element) your file halved 0 time(s); HalveUntilSmall halves 1" \
        in outcome.message


def test_q2_condition_that_also_halves_a_one_is_incorrect(tmp_path):
    path = _export_legacy(_module(_halve_one_too_many_py), HALVE_EXAMPLE, tmp_path / "ge.onnx")
    outcome = _q2(path)
    assert outcome.status == INCORRECT
    assert "largest |x| is 2" in outcome.message and "halved 2 time(s)" in outcome.message


def test_q2_missing_variable_is_not_attempted():
    outcome = q2.check(HalveUntilSmall=_HalveUntilSmall)
    assert outcome.status == NOT_ATTEMPTED
    assert "ex2_path" in outcome.message


def test_q2_missing_reference_model_says_run_the_cells_above(tmp_path):
    outcome = q2.check(ex2_path=tmp_path / "whatever.onnx")
    assert outcome.status == NOT_ATTEMPTED
    assert "`HalveUntilSmall` comes from the lesson's cells above" in outcome.message


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


def test_q3_traced_math_sqrt_is_incorrect_and_names_the_frozen_length(tmp_path):
    path = _export_legacy(_SqrtNPool(), SEQUENCES, tmp_path / "frozen.onnx", input_names=["x"],
                          dynamic_axes=NAMED_STEPS)
    outcome = _q3(path)
    assert outcome.status == INCORRECT
    assert "divides by √5 whatever the length" in outcome.message and "frozen" in outcome.message


def test_q3_math_sqrt_on_the_default_exporter_is_incorrect_because_the_steps_came_out_static(tmp_path):
    Dim = torch.export.Dim
    path = _export_default(_SqrtNPool(), SEQUENCES, tmp_path / "static_default.onnx",
                           dynamic_shapes={"x": {0: Dim("batch"), 1: Dim("steps")}})
    outcome = _q3(path)
    assert outcome.status == INCORRECT
    assert "steps (dim 1) is fixed at 5: make it dynamic" in outcome.message and "forced it static" in outcome.message


def test_q3_list_form_axes_are_incorrect_because_unnamed(tmp_path):
    path = _export_legacy(_PowPool(), SEQUENCES, tmp_path / "list.onnx", input_names=["x"],
                          dynamic_axes={"x": [0, 1]})
    outcome = _q3(path)
    assert outcome.status == INCORRECT
    assert "batch (dim 0) has no name of yours" in outcome.message


def test_q3_a_model_that_averages_is_incorrect(tmp_path):
    path = _export_legacy(_MeanPool(), SEQUENCES, tmp_path / "mean.onnx", input_names=["x"], dynamic_axes=NAMED_STEPS)
    outcome = _q3(path)
    assert outcome.status == INCORRECT
    assert "differs from SqrtNPool's" in outcome.message


def test_q3_missing_variable_is_not_attempted():
    outcome = q3.check(SqrtNPool=_SqrtNPool)
    assert outcome.status == NOT_ATTEMPTED
    assert "ex3_path" in outcome.message

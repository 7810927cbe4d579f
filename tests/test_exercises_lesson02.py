"""Lesson 02 exercises: wrong answers are not Correct, right ones are, missing variables are Not attempted."""
from __future__ import annotations

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


# --- q1: a loop that really loops ---------------------------------------------------------------

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


# --- q2: batch, height and width, dynamic and named ---------------------------------------------

@pytest.fixture
def conv():
    torch.manual_seed(0)
    return torch.nn.Conv2d(3, 3, 3).eval()


IMAGE = (torch.rand(1, 3, 10, 10),)
NAMED_AXES = {"in": {0: "batch", 2: "height", 3: "width"}, "out": {0: "batch", 2: "h_out", 3: "w_out"}}


def test_q2_static_export_is_incorrect_and_names_the_fixed_dim(tmp_path, conv):
    path = _export_legacy(conv, IMAGE, tmp_path / "static.onnx", input_names=["in"], output_names=["out"])
    outcome = q2.check(ex2_model=conv, ex2_path=path)
    assert outcome.status == INCORRECT
    assert "batch (dim 0) is fixed at 1" in outcome.message


def test_q2_batch_only_is_incorrect_and_names_the_height(tmp_path, conv):
    path = _export_legacy(conv, IMAGE, tmp_path / "batch.onnx", input_names=["in"], output_names=["out"],
                          dynamic_axes={"in": {0: "batch"}, "out": {0: "batch"}})
    outcome = q2.check(ex2_model=conv, ex2_path=path)
    assert outcome.status == INCORRECT
    assert "height (dim 2) is fixed at 10" in outcome.message


def test_q2_list_form_axes_are_incorrect_because_unnamed(tmp_path, conv):
    path = _export_legacy(conv, IMAGE, tmp_path / "list.onnx", input_names=["in"], output_names=["out"],
                          dynamic_axes={"in": [0, 2, 3], "out": [0, 2, 3]})
    outcome = q2.check(ex2_model=conv, ex2_path=path)
    assert outcome.status == INCORRECT
    assert "no name of yours" in outcome.message


def test_q2_named_dynamic_axes_are_correct(tmp_path, conv):
    path = _export_legacy(conv, IMAGE, tmp_path / "named.onnx", input_names=["in"], output_names=["out"],
                          dynamic_axes=NAMED_AXES)
    outcome = q2.check(ex2_model=conv, ex2_path=path)
    assert outcome.status == CORRECT, outcome.message


def test_q2_named_dims_on_the_default_exporter_are_correct(tmp_path, conv):
    path = tmp_path / "default.onnx"
    Dim = torch.export.Dim
    torch.onnx.export(conv, IMAGE, path, dynamo=True, verbose=False, external_data=False, input_names=["in"],
                      dynamic_shapes={"input": {0: Dim("batch"), 2: Dim("height"), 3: Dim("width")}})
    outcome = q2.check(ex2_model=conv, ex2_path=path)
    assert outcome.status == CORRECT, outcome.message


def test_q2_export_of_a_different_model_is_incorrect(tmp_path, conv):
    other = torch.nn.Conv2d(3, 3, 3).eval()  # different random weights
    path = _export_legacy(other, IMAGE, tmp_path / "other.onnx", input_names=["in"], output_names=["out"],
                          dynamic_axes=NAMED_AXES)
    outcome = q2.check(ex2_model=conv, ex2_path=path)
    assert outcome.status == INCORRECT
    assert "differs from ex2_model" in outcome.message


def test_q2_model_that_is_not_a_module_is_incorrect(tmp_path, conv):
    path = _export_legacy(conv, IMAGE, tmp_path / "named.onnx", input_names=["in"], dynamic_axes=NAMED_AXES)
    outcome = q2.check(ex2_model="conv", ex2_path=path)
    assert outcome.status == INCORRECT
    assert "`ex2_model` should be a Module" in outcome.message


def test_q2_missing_variables_are_not_attempted():
    outcome = q2.check()
    assert outcome.status == NOT_ATTEMPTED
    assert "ex2_model" in outcome.message and "ex2_path" in outcome.message


# --- q3: unfreeze .item() --------------------------------------------------------------------

class _ItemRescale(torch.nn.Module):
    def forward(self, x):
        return x * x[0].item()


class _TensorRescale(torch.nn.Module):
    def forward(self, x):
        return x * x[0]


class _LastRescale(torch.nn.Module):
    def forward(self, x):
        return x * x[-1]


VECTOR = (torch.arange(1.0, 5.0),)


def test_q3_item_trace_is_incorrect_and_says_the_factor_was_frozen(tmp_path):
    path = _export_legacy(_ItemRescale(), VECTOR, tmp_path / "item.onnx", input_names=["x"])
    outcome = q3.check(ex3_path=path)
    assert outcome.status == INCORRECT
    assert "multiplies by 1 whatever the input" in outcome.message and "frozen" in outcome.message


def test_q3_tensor_only_model_is_correct(tmp_path):
    path = _export_legacy(_TensorRescale(), VECTOR, tmp_path / "tensor.onnx", input_names=["x"])
    outcome = q3.check(ex3_path=path)
    assert outcome.status == CORRECT, outcome.message


def test_q3_wrong_element_is_incorrect(tmp_path):
    path = _export_legacy(_LastRescale(), VECTOR, tmp_path / "last.onnx", input_names=["x"])
    outcome = q3.check(ex3_path=path)
    assert outcome.status == INCORRECT
    assert "expected x * x[0]" in outcome.message


def test_q3_two_dimensional_export_is_incorrect_with_a_hint(tmp_path):
    path = _export_legacy(_TensorRescale(), (torch.ones(2, 4),), tmp_path / "matrix.onnx", input_names=["x"])
    outcome = q3.check(ex3_path=path)
    assert outcome.status == INCORRECT
    assert "1-D" in outcome.message


def test_q3_missing_variable_is_not_attempted():
    outcome = q3.check()
    assert outcome.status == NOT_ATTEMPTED
    assert "ex3_path" in outcome.message

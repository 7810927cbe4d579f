"""Lesson 05 exercises: each wrong answer is Incorrect with a useful message, the right one is Correct."""
from __future__ import annotations

import warnings

import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from labkit.exercises import lesson05
from labkit.exercises.lesson05 import Q1_BIAS, Q1_WEIGHT, broken_mlp, q1, q2, q3


# ------------------------------------------------------------------------------------------------ q1
def _gemm_relu(*, shape=("N", 3), trans_b=1, ir_version=10, opset=20, order=("Gemm", "Relu")) -> onnx.ModelProto:
    gemm = helper.make_node("Gemm", ["x", "W", "B"], ["h"], transB=trans_b)
    relu = helper.make_node("Relu", ["h"], ["y"])
    weight = Q1_WEIGHT if trans_b else Q1_WEIGHT.T.copy()
    nodes = [gemm, relu] if order == ("Gemm", "Relu") else [
        helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Gemm", ["r", "W", "B"], ["y"], transB=1)]
    graph = helper.make_graph(
        nodes, "gemm_relu", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [shape[0], 2])],
        initializer=[numpy_helper.from_array(weight, "W"), numpy_helper.from_array(Q1_BIAS, "B")])
    if ir_version is None:
        return helper.make_model(graph)
    return helper.make_model(graph, ir_version=ir_version, opset_imports=[helper.make_opsetid("", opset)])


def test_q1_not_attempted_when_the_variable_is_missing():
    outcome = q1.check()
    assert outcome.status == "Not attempted" and "ex1_model" in outcome.message


def test_q1_accepts_a_gemm_then_relu_with_pinned_versions():
    assert q1.check(ex1_model=_gemm_relu())


def test_q1_rejects_unpinned_versions_and_names_the_fix():
    outcome = q1.check(ex1_model=_gemm_relu(ir_version=None))
    assert outcome.status == "Incorrect" and "ir_version=10" in outcome.message


def test_q1_rejects_a_fixed_batch():
    outcome = q1.check(ex1_model=_gemm_relu(shape=(1, 3)))
    assert outcome.status == "Incorrect" and "['N', 3]" in outcome.message


def test_q1_rejects_the_wrong_node_order():
    outcome = q1.check(ex1_model=_gemm_relu(order=("Relu", "Gemm")))
    assert outcome.status == "Incorrect" and "Gemm then Relu" in outcome.message


def test_q1_rejects_a_wrong_function():
    wrong = _gemm_relu()
    wrong.graph.initializer[1].CopyFrom(numpy_helper.from_array(-Q1_BIAS, "B"))
    outcome = q1.check(ex1_model=wrong)
    assert outcome.status == "Incorrect" and "transB" in outcome.message


def test_q1_rejects_a_path_instead_of_a_model():
    outcome = q1.check(ex1_model="model.onnx")
    assert outcome.status == "Incorrect" and "ModelProto" in outcome.message


def test_q1_rejects_a_graph_the_checker_refuses():
    broken = _gemm_relu()
    broken.graph.node[1].input[0] = "missing"
    outcome = q1.check(ex1_model=broken)
    assert outcome.status == "Incorrect" and "checker rejects" in outcome.message


# ------------------------------------------------------------------------------------------------ q2
@pytest.fixture(name="tiny_path", scope="module")
def _tiny_path(tmp_path_factory):
    """The lesson's `tiny`: a Linear(3, 2) + ReLU exported by the legacy exporter for a batch of 1."""
    torch.manual_seed(0)
    tiny = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.ReLU()).eval()
    path = tmp_path_factory.mktemp("q2") / "tiny.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(tiny, (torch.randn(1, 3),), path, dynamo=False, input_names=["x"], output_names=["y"])
    return path


def _with_batch(tiny_path, input_dim="N", output_dim="N") -> onnx.ModelProto:
    model = onnx.load(tiny_path)
    for vi, dim in ((model.graph.input[0], input_dim), (model.graph.output[0], output_dim)):
        target = vi.type.tensor_type.shape.dim[0]
        if isinstance(dim, str):
            target.dim_param = dim
        else:
            target.dim_value = dim
    return model


def test_q2_accepts_a_symbolic_batch_on_input_and_output(tiny_path):
    outcome = q2.check(ex2_model=_with_batch(tiny_path), tiny_path=tiny_path)
    assert outcome, outcome


def test_q2_rejects_the_untouched_file(tiny_path):
    outcome = q2.check(ex2_model=onnx.load(tiny_path), tiny_path=tiny_path)
    assert outcome.status == "Incorrect" and "'x' still has a fixed batch dimension 1" in outcome.message


def test_q2_rejects_an_edited_input_with_the_output_left_at_1(tiny_path):
    outcome = q2.check(ex2_model=_with_batch(tiny_path, output_dim=1), tiny_path=tiny_path)
    assert outcome.status == "Incorrect" and "'y' still has a fixed batch dimension 1" in outcome.message


def test_q2_rejects_a_batch_fixed_at_another_number(tiny_path):
    outcome = q2.check(ex2_model=_with_batch(tiny_path, 5, 5), tiny_path=tiny_path)
    assert outcome.status == "Incorrect" and "fixed batch dimension 5" in outcome.message


def test_q2_rejects_changed_weights(tiny_path):
    model = _with_batch(tiny_path)
    weight = model.graph.initializer[0]
    weight.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(weight) * 2, weight.name))
    outcome = q2.check(ex2_model=model, tiny_path=tiny_path)
    assert outcome.status == "Incorrect" and "does not compute what the original file computes" in outcome.message


def test_q2_asks_to_run_the_lesson_cells_without_tiny_path(tiny_path):
    outcome = q2.check(ex2_model=_with_batch(tiny_path))
    assert outcome.status == "Not attempted" and "`tiny_path` comes from the lesson's cells above" in outcome.message


def test_q2_not_attempted_without_the_answer(tiny_path):
    outcome = q2.check(tiny_path=tiny_path)
    assert outcome.status == "Not attempted" and "ex2_model" in outcome.message


# ------------------------------------------------------------------------------------------------ q3
@pytest.fixture(name="planted", scope="module")
def _planted(tmp_path_factory):
    """broken_mlp once for the module (a default-exporter export takes seconds); restored for each test."""
    model, x, path = broken_mlp(tmp_path_factory.mktemp("q3") / "broken.onnx")
    return dict(lesson05._planted)


@pytest.fixture
def broken(planted, monkeypatch):
    monkeypatch.setattr(lesson05, "_planted", dict(planted))
    return planted


def test_q3_the_planted_file_really_diverges_at_the_named_layer(broken):
    import labkit

    report = labkit.find_divergence(broken["model"], broken["path"], broken["input"])
    assert not report and report.first.torch == "blocks.1.fc1 output"


def test_q3_accepts_the_broken_layer(broken):
    outcome = q3.check(ex3_module="blocks.1.fc1")
    assert outcome, outcome


@pytest.mark.parametrize("answer, message", [
    ("blocks.1.fc2", "further upstream"),
    ("head", "further upstream"),
    ("blocks.0.fc1", "agrees with torch"),
    ("embed", "agrees with torch"),
    ("blocks.1", "name the innermost module"),
    ("node_linear_3", "is a name in the ONNX file"),
    ("linear_3", "is a name in the ONNX file"),
    ("blocks.2.fc1", "has no module 'blocks.2.fc1'"),
])
def test_q3_explains_each_wrong_answer(broken, answer, message):
    outcome = q3.check(ex3_module=answer)
    assert outcome.status == "Incorrect" and message in outcome.message, outcome


def test_q3_asks_for_the_broken_model_first(monkeypatch):
    monkeypatch.setattr(lesson05, "_planted", {})
    outcome = q3.check(ex3_module="embed")
    assert outcome.status == "Incorrect" and "broken_mlp" in outcome.message


def test_q3_not_attempted_without_the_answer():
    assert q3.check().status == "Not attempted"

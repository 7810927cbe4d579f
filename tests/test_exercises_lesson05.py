"""Lesson 05 exercises: each wrong answer is Incorrect with a useful message, the right one is Correct."""
from __future__ import annotations


import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from labkit.exercises import lesson05
from labkit.exercises.lesson05 import Q1_BIAS, Q1_WEIGHT, plant_fault, q1, q2, q3


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


# ------------------------------------------------------------------------------------------- q2, q3


def _module_output(path, module: str) -> str:
    """The output of the last node whose name (legacy) or producer weights (both) belong to `module`."""
    model = onnx.load(path)
    owned = [n for n in model.graph.node if any(i.startswith(module + ".") for i in n.input)]
    return owned[-1].output[0]


def _extract(branchy_exports, exporter, start, stop, name):
    _, _, paths, folder = branchy_exports
    target = folder / name
    onnx.utils.extract_model(paths[exporter], target, [_module_output(paths[exporter], start)],
                             [_module_output(paths[exporter], stop)])
    return target


@pytest.mark.parametrize("exporter", ["legacy", "dynamo"])
def test_q2_accepts_the_convs3_branch_from_either_exporter(branchy_exports, exporter):
    assert q2.check(ex2_path=_extract(branchy_exports, exporter, "convs1", "convs3", f"q2_{exporter}.onnx"))


def test_q2_rejects_the_other_branch_and_names_it(branchy_exports):
    outcome = q2.check(ex2_path=_extract(branchy_exports, "legacy", "convs1", "convs2", "q2_convs2.onnx"))
    assert outcome.status == "Incorrect" and "convs2.0" in outcome.message


def test_q2_rejects_a_sub_model_that_starts_at_the_model_input(branchy_exports):
    _, _, paths, folder = branchy_exports
    target = folder / "q2_from_input.onnx"
    onnx.utils.extract_model(paths["legacy"], target, ["input.1"], [_module_output(paths["legacy"], "convs3")])
    outcome = q2.check(ex2_path=target)
    assert outcome.status == "Incorrect" and "convs1.0" in outcome.message


def test_q2_rejects_a_missing_file(tmp_path):
    outcome = q2.check(ex2_path=tmp_path / "nothing.onnx")
    assert outcome.status == "Incorrect" and "no such file" in outcome.message


def test_q3_asks_for_the_broken_model_first(monkeypatch):
    monkeypatch.setattr(lesson05, "_planted", {})
    outcome = q3.check(ex3_node="anything")
    assert outcome.status == "Incorrect" and "plant_fault" in outcome.message


@pytest.mark.parametrize("exporter", ["legacy", "dynamo"])
def test_q3_accepts_the_node_that_reads_the_edited_weight(branchy_exports, exporter):
    _, _, paths, folder = branchy_exports
    broken_path = plant_fault(paths[exporter], folder / f"q3_{exporter}.onnx")
    broken = onnx.load(broken_path)
    culprit = next(n for n in broken.graph.node if "convs2.1.weight" in n.input)
    original = onnx.load(paths[exporter])
    changed = [i.name for i, j in zip(broken.graph.initializer, original.graph.initializer)
               if not np.array_equal(numpy_helper.to_array(i), numpy_helper.to_array(j))]
    assert changed == ["convs2.1.weight"]
    assert q3.check(ex3_node=culprit.name)


def test_q3_explains_each_wrong_answer(branchy_exports):
    _, _, paths, folder = branchy_exports
    broken = onnx.load(plant_fault(paths["dynamo"], folder / "q3_wrong.onnx"))
    culprit_index = next(i for i, n in enumerate(broken.graph.node) if "convs2.1.weight" in n.input)
    nodes = broken.graph.node
    add = next(n for n in nodes if n.op_type == "Add")
    parallel = next(n for n in nodes if "convs3.0.weight" in n.input)
    cases = {
        nodes[culprit_index].output[0]: "is a tensor",
        add.name: "further upstream",
        parallel.name: "agrees with torch",
        nodes[0].name: "agrees with torch",
        "node_conv2d_99": "there is no node named",
    }
    for answer, message in cases.items():
        outcome = q3.check(ex3_node=answer)
        assert outcome.status == "Incorrect" and message in outcome.message, (answer, outcome)


def test_plant_fault_rejects_a_model_without_the_weight(tmp_path):
    path = tmp_path / "other.onnx"
    onnx.save(_gemm_relu(), path)
    with pytest.raises(ValueError, match="has no initializer 'convs2.1.weight'"):
        plant_fault(path, tmp_path / "broken.onnx")

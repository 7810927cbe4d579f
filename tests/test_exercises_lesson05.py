"""Lesson 05 exercises: each wrong answer is Incorrect with a useful message, the right one is Correct."""
from __future__ import annotations

import functools
import tempfile
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

import labkit
from labkit.exercises.lesson05 import Q1_BIAS, Q1_WEIGHT, edited_mlp, q1, q2, q3
from wrong_answers import WrongAnswer, assert_rejected, params


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


def test_q1_accepts_a_gemm_then_relu_with_pinned_versions():
    assert q1.check(ex1_model=_gemm_relu())














# ------------------------------------------------------------------------------------------------ q2
@functools.lru_cache(maxsize=None)
def _tiny() -> Path:
    """The lesson's `tiny`: a Linear(3, 2) + ReLU exported by the legacy exporter for a batch of 1."""
    torch.manual_seed(0)
    tiny = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.ReLU()).eval()
    path = Path(tempfile.mkdtemp(prefix="lesson05_q2_")) / "tiny.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(tiny, (torch.randn(1, 3),), path, dynamo=False, input_names=["x"], output_names=["y"])
    return path


@pytest.fixture(name="tiny_path")
def _tiny_path():
    return _tiny()


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










def _bias_negated():
    model = _gemm_relu()
    model.graph.initializer[1].CopyFrom(numpy_helper.from_array(-Q1_BIAS, "B"))
    return model


def _dangling_relu_input():
    model = _gemm_relu()
    model.graph.node[1].input[0] = "missing"
    return model


def _doubled_weights(tiny_path):
    model = _with_batch(tiny_path)
    weight = model.graph.initializer[0]
    weight.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(weight) * 2, weight.name))
    return model


def _q2(make):
    return lambda tmp: {"ex2_model": make(_tiny()), "tiny_path": _tiny()}


# ------------------------------------------------------------------------------------------------ q3
def _intermediates(proto: onnx.ModelProto, x) -> dict:
    exposed = onnx.ModelProto()
    exposed.CopyFrom(proto)
    known = {vi.name for vi in exposed.graph.output}
    exposed.graph.output.extend(helper.make_empty_tensor_value_info(name) for node in exposed.graph.node
                                for name in node.output if name not in known)
    return labkit.run_onnx(exposed, x.numpy())


def _differs(expected, got, tensor) -> bool:
    return not np.allclose(got[tensor], expected[tensor], atol=1e-4, rtol=1e-3)


def first_difference(reference, suspect, x):
    """The right answer: the first node, in graph order, whose output differs from the reference file's."""
    expected, got = _intermediates(reference, x), _intermediates(suspect, x)
    return next((node.name for node in suspect.graph.node if any(_differs(expected, got, t) for t in node.output)),
                None)


def last_difference(reference, suspect, x):
    expected, got = _intermediates(reference, x), _intermediates(suspect, x)
    differing = [node.name for node in suspect.graph.node if any(_differs(expected, got, t) for t in node.output)]
    return differing[-1] if differing else None


def first_differing_tensor(reference, suspect, x):
    expected, got = _intermediates(reference, x), _intermediates(suspect, x)
    return next((t for node in suspect.graph.node for t in node.output if _differs(expected, got, t)), None)


def final_outputs_only(reference, suspect, x):
    """Compares only what the graph returns, then blames the node that writes it."""
    expected, got = labkit.run_onnx(reference, x.numpy()), labkit.run_onnx(suspect, x.numpy())
    if all(np.allclose(got[name], expected[name], atol=1e-4, rtol=1e-3) for name in expected):
        return None
    return next(node.name for node in suspect.graph.node if suspect.graph.output[0].name in node.output)


def the_first_node_always(reference, suspect, x):
    return suspect.graph.node[0].name


WRONG_ANSWERS = [
    WrongAnswer(q1, "versions left to helper.make_model's defaults", lambda tmp: {"ex1_model": _gemm_relu(ir_version=None)},
                fault="ir_version=10"),
    WrongAnswer(q1, "a batch fixed at 1", lambda tmp: {"ex1_model": _gemm_relu(shape=(1, 3))}, fault="['N', 3]"),
    WrongAnswer(q1, "Relu before Gemm", lambda tmp: {"ex1_model": _gemm_relu(order=("Relu", "Gemm"))},
                fault="Gemm then Relu"),
    WrongAnswer(q1, "the bias negated", lambda tmp: {"ex1_model": _bias_negated()}, fault="is not relu(x @ Q1_WEIGHT.T"),
    WrongAnswer(q1, "a path instead of the model", lambda tmp: {"ex1_model": "model.onnx"}, fault="ModelProto"),
    WrongAnswer(q1, "the Relu reads a name nobody writes", lambda tmp: {"ex1_model": _dangling_relu_input()},
                fault="checker rejects"),
    WrongAnswer(q2, "the file left as it was", _q2(lambda path: onnx.load(path)),
                fault="'x' still has a fixed batch dimension 1"),
    WrongAnswer(q2, "the input edited, the output left at 1", _q2(lambda path: _with_batch(path, output_dim=1)),
                fault="'y' still has a fixed batch dimension 1"),
    WrongAnswer(q2, "the batch fixed at another number", _q2(lambda path: _with_batch(path, 5, 5)),
                fault="fixed batch dimension 5"),
    WrongAnswer(q2, "the weights changed too", _q2(_doubled_weights),
                fault="does not compute what the original file computes"),
    WrongAnswer(q3, "the notebook's answer typed in", lambda tmp: {"ex3_first_difference": lambda r, s, x: "node_linear_3"},
                fault="an earlier node's output already differs"),
    WrongAnswer(q3, "the last differing node", lambda tmp: {"ex3_first_difference": last_difference},
                fault="an earlier node's output already differs"),
    WrongAnswer(q3, "the tensor's name, not its node's", lambda tmp: {"ex3_first_difference": first_differing_tensor},
                fault="a tensor name"),
    WrongAnswer(q3, "only the final outputs compared", lambda tmp: {"ex3_first_difference": final_outputs_only},
                fault="an earlier node's output already differs"),
    WrongAnswer(q3, "the first node, whatever differs", lambda tmp: {"ex3_first_difference": the_first_node_always},
                fault="whose outputs are the same in both files"),
    WrongAnswer(q3, "None whatever the files", lambda tmp: {"ex3_first_difference": lambda r, s, x: None},
                fault="compare every node's outputs"),
    WrongAnswer(q3, "a node name as a string", lambda tmp: {"ex3_first_difference": "node_linear_3"},
                fault="should be a function"),
]


@pytest.mark.parametrize("wrong", params(WRONG_ANSWERS))
def test_wrong_answer_is_rejected_naming_its_fault(wrong, tmp_path):
    assert_rejected(wrong, tmp_path)


def test_q3_accepts_the_first_differing_node():
    outcome = q3.check(ex3_first_difference=first_difference)
    assert outcome, outcome


def test_q3_the_notebooks_pair_differs_first_at_the_edited_layer(tmp_path):
    reference, edited, x = edited_mlp(tmp_path / "reference.onnx", tmp_path / "edited.onnx")
    reader = next(node.name for node in edited.graph.node if "blocks.1.fc1.weight" in node.input)
    assert first_difference(reference, edited, x) == reader





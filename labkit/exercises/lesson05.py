"""Lesson 05 exercises: build a graph by hand, extract a named sub-model, locate a planted fault.

    from labkit.exercises.lesson05 import q1, q2, q3, Q1_WEIGHT, Q1_BIAS, plant_fault
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from ..backends import run_onnx
from ..onnxfile import input_specs, output_specs
from ..report import first_line
from .checks import require_inputs, require_onnx_file, require_ops, require_type
from .core import Exercise, Incorrect, bind

__all__ = ["q1", "q2", "q3", "Q1_WEIGHT", "Q1_BIAS", "plant_fault"]

# q1: y = relu(x @ Q1_WEIGHT.T + Q1_BIAS), the function a Linear(3, 2) + ReLU computes.
Q1_WEIGHT = np.array([[1.0, -2.0, 0.5], [0.0, 1.0, -1.0]], dtype=np.float32)
Q1_BIAS = np.array([0.5, -1.0], dtype=np.float32)
_PINNED_IR, _PINNED_OPSET = 10, 20


def _default_opset(model: onnx.ModelProto) -> int | None:
    return next((imp.version for imp in model.opset_import if imp.domain in ("", "ai.onnx")), None)


def _check_q1(ex1_model) -> str:
    require_type("ex1_model", ex1_model, onnx.ModelProto)
    if ex1_model.ir_version != _PINNED_IR or _default_opset(ex1_model) != _PINNED_OPSET:
        raise Incorrect(
            f"`ex1_model` has IR version {ex1_model.ir_version} and opset {_default_opset(ex1_model)}: pin them with "
            f"helper.make_model(graph, ir_version={_PINNED_IR}, "
            f"opset_imports=[helper.make_opsetid('', {_PINNED_OPSET})])"
        )
    try:
        onnx.checker.check_model(ex1_model, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as error:
        raise Incorrect(f"the ONNX checker rejects `ex1_model`: {first_line(error)}") from None
    require_inputs(ex1_model, ["x"])
    require_ops(ex1_model, "Gemm", "Relu")
    nodes = list(ex1_model.graph.node)
    if [n.op_type for n in nodes] != ["Gemm", "Relu"]:
        raise Incorrect(f"expected exactly two nodes, Gemm then Relu; found {[n.op_type for n in nodes]}")
    if nodes[1].input[0] != nodes[0].output[0]:
        raise Incorrect(f"the Relu reads {nodes[1].input[0]!r}, but the Gemm writes {nodes[0].output[0]!r}: "
                        "an edge is a shared tensor name")
    outputs = [s.name for s in output_specs(ex1_model)]
    if outputs != ["y"]:
        raise Incorrect(f"the graph output should be named 'y', found {outputs}")
    shape = input_specs(ex1_model)[0].shape
    if len(shape) != 2 or isinstance(shape[0], int):
        raise Incorrect(f"input 'x' has shape {list(shape)}: declare it as ['N', 3] so any batch size works")
    x = np.random.default_rng(5).standard_normal((4, 3)).astype(np.float32)
    expected = np.maximum(x @ Q1_WEIGHT.T + Q1_BIAS, 0)
    got = run_onnx(ex1_model, {"x": x})["y"]
    if got.shape != expected.shape:
        raise Incorrect(f"for a batch of 4 rows the output has shape {got.shape}, expected (4, 2)")
    if not np.allclose(got, expected, atol=1e-5):
        raise Incorrect("for a batch of 4 rows the output is not relu(x @ Q1_WEIGHT.T + Q1_BIAS): "
                        "check transB and which initializer is B and which is C")
    return "a Gemm then a Relu, checker-clean, IR 10 / opset 20, any batch size"




def _conv_chain(x: np.ndarray, layers: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Valid (unpadded) convolutions with stride 1 in numpy: an independent check of the extracted nodes."""
    for weight, bias in layers:
        k = weight.shape[-1]
        windows = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(2, 3))  # N, C, H', W', k, k
        x = np.einsum("nchwij,ocij->nohw", windows, weight) + bias[None, :, None, None]
    return x


def _check_q2(ex2_path) -> str:
    model = require_onnx_file("ex2_path", ex2_path)
    inputs, outputs = input_specs(model), output_specs(model)
    if len(inputs) != 1 or len(outputs) != 1:
        raise Incorrect(f"expected one input and one output, found inputs {[s.name for s in inputs]} "
                        f"and outputs {[s.name for s in outputs]}: pass one name in each list to extract_model")
    params = sorted({i.name.rsplit(".", 1)[0] for i in model.graph.initializer})
    if params != ["convs3.0", "convs3.1"]:
        raise Incorrect(f"the sub-model holds the weights of {params}; the convs3 branch is convs3.0 and convs3.1: "
                        "start at the tensor convs1 outputs and stop at the one convs3 outputs")
    if tuple(inputs[0].shape) != (1, 3, 14, 14):
        raise Incorrect(f"its input {inputs[0].name!r} has shape {list(inputs[0].shape)}; the output of convs1 "
                        "is [1, 3, 14, 14]")
    weights = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    layers = [(weights[f"convs3.{k}.weight"], weights[f"convs3.{k}.bias"]) for k in (0, 1)]
    x = np.random.default_rng(2).standard_normal((1, 3, 14, 14)).astype(np.float32)
    got = next(iter(run_onnx(model, {inputs[0].name: x}).values()))
    if not np.allclose(got, _conv_chain(x, layers), atol=1e-4):
        raise Incorrect("the sub-model does not compute convs3.1(convs3.0(h)) from its input h")
    return f"{inputs[0].name!r} -> {outputs[0].name!r}: the two Convs of convs3"



_FAULT_PARAMETER = "convs2.1.weight"
_planted: dict[str, Path] = {}


def plant_fault(onnx_path: str | Path, broken_path: str | Path) -> Path:
    """Write a copy of the lesson model with one weight changed (for q3) and remember where it is."""
    model = onnx.load(str(onnx_path))
    init = next((i for i in model.graph.initializer if i.name == _FAULT_PARAMETER), None)
    if init is None:
        raise ValueError(f"'{Path(onnx_path).name}' has no initializer {_FAULT_PARAMETER!r}: "
                         "pass the branched model exported in section 6")
    weight = numpy_helper.to_array(init).copy()
    weight[1] = -weight[1]
    init.CopyFrom(numpy_helper.from_array(weight, init.name))
    onnx.save(model, str(broken_path))
    _planted["path"] = Path(broken_path)
    return Path(broken_path)


def _check_q3(ex3_node) -> str:
    require_type("ex3_node", ex3_node, str)
    if "path" not in _planted or not _planted["path"].is_file():
        raise Incorrect("run the cell that calls plant_fault(...) first: it writes the broken model")
    model = onnx.load(str(_planted["path"]))
    names = [node.name for node in model.graph.node]
    culprit = next(node for node in model.graph.node if _FAULT_PARAMETER in node.input)
    if ex3_node == culprit.name:
        return f"{culprit.op_type} node {culprit.name!r} holds the edited weight"
    producers = {out: node.name for node in model.graph.node for out in node.output}
    if ex3_node in producers:
        raise Incorrect(f"{ex3_node!r} is a tensor (written by node {producers[ex3_node]!r}); give the node's name")
    if ex3_node not in names:
        raise Incorrect(f"there is no node named {ex3_node!r}; node names look like {names[0]!r}")
    tainted = set(culprit.output)
    for node in model.graph.node:  # graph order is topological: a node diverges if it reads a diverged tensor
        if tainted.intersection(node.input):
            tainted.update(node.output)
            if node.name == ex3_node:
                raise Incorrect(f"{ex3_node!r} does diverge, but so does a tensor it reads: "
                                "the fault is further upstream (look for the first divergence)")
    raise Incorrect(f"node {ex3_node!r} agrees with torch: it is not downstream of the fault")


q1, q2, q3 = bind('05_onnx_construction', [
    Exercise(
        title='a Relu after a Gemm, by hand',
        answers=['ex1_model'],
        check=_check_q1,
        hints=[
        "Gemm computes alpha * A @ B' + beta * C; with transB=1, B' is B transposed, so B = Q1_WEIGHT as stored.",
        "Put the weight and bias in the graph as initializers: "
        "helper.make_graph(nodes, name, inputs, outputs, initializer=[numpy_helper.from_array(Q1_WEIGHT, 'W'), ...]).",
        "Input: helper.make_tensor_value_info('x', TensorProto.FLOAT, ['N', 3]); output 'y' is ['N', 2].",
    ],
    ),
    Exercise(
        title='extract the convs3 branch',
        answers=['ex2_path'],
        check=_check_q2,
        hints=[
        "The branch starts at the tensor that convs1 outputs and ends at the tensor that convs3 outputs.",
        "Look both names up the way section 6 did (the module scope of each node), not by hard-coding them.",
        "onnx.utils.extract_model(source, target, [input_name], [output_name]) writes the sub-model.",
    ],
    ),
    Exercise(
        title='which node is broken?',
        answers=['ex3_node'],
        check=_check_q3,
        hints=[
        "find_divergence(torch_model, broken_path, x) compares every intermediate with torch.",
        "The report's `.first_node` is the ONNX node that wrote the first tensor over tolerance; "
        "answer with its `.name`.",
    ],
    ),
])

"""Lesson 05 exercises: a graph by hand, a fixed batch made dynamic by editing the file, the node an edit broke.

    from labkit.exercises.lesson05 import q1, q2, q3, Q1_WEIGHT, Q1_BIAS, edited_mlp
"""
from __future__ import annotations

import copy
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from ..backends import run_onnx
from ..onnxfile import input_specs, output_specs
from ..report import first_line
from .checks import agrees, require_inputs, require_ops, require_type
from .core import Exercise, Incorrect, bind

__all__ = ["q1", "q2", "q3", "Q1_WEIGHT", "Q1_BIAS", "edited_mlp"]

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
    if not agrees(expected, got):
        raise Incorrect("for a batch of 4 rows the output is not relu(x @ Q1_WEIGHT.T + Q1_BIAS): "
                        "check transB and which initializer is B and which is C")
    return "a Gemm then a Relu, checker-clean, IR 10 / opset 20, any batch size"


# ------------------------------------------------------------------------------------------------ q2
def _batch_dim(spec) -> int | str | None:
    return spec.shape[0] if spec.shape else None


def _check_q2(ex2_model, tiny_path) -> str:
    require_type("ex2_model", ex2_model, onnx.ModelProto)
    try:
        onnx.checker.check_model(ex2_model, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as error:
        raise Incorrect(f"the ONNX checker rejects `ex2_model`: {first_line(error)}") from None
    original = onnx.load(str(tiny_path))
    require_inputs(ex2_model, [s.name for s in input_specs(original)])
    for spec in [*input_specs(ex2_model), *output_specs(ex2_model)]:
        dim = _batch_dim(spec)
        if isinstance(dim, int):
            raise Incorrect(f"{spec.name!r} still has a fixed batch dimension {dim} (shape {spec.shape_text()}): "
                            "set dim[0].dim_param = 'N' on the graph input and on the graph output")
    rng = np.random.default_rng(7)
    for batch in (5, 2):
        rows = rng.standard_normal((batch, 3), dtype=np.float32)
        expected = np.concatenate([run_onnx(original, row[None])["y"] for row in rows])  # the file, one row a time
        got = next(iter(run_onnx(ex2_model, {"x": rows}).values()))
        if got.shape != expected.shape or not agrees(expected, got):
            raise Incorrect(f"for a batch of {batch} rows `ex2_model` does not compute what the original file "
                            "computes row by row: edit only the shapes, keep the nodes and weights")
    return "batches of 5 and 2 give, row for row, what the batch-1 file gives"


# ------------------------------------------------------------------------------------------------ q3
# The notebook's pair differs in one place; the check plants other edits in its own copy of the network.
_NOTEBOOK_EDIT = "blocks.1.fc1.weight"


def _mlp():
    import torch

    class Block(torch.nn.Module):
        def __init__(self, width: int):
            super().__init__()
            self.fc1, self.act, self.fc2 = torch.nn.Linear(width, width), torch.nn.GELU(), torch.nn.Linear(width, width)

        def forward(self, x):
            return x + self.fc2(self.act(self.fc1(x)))

    class ResidualMLP(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = torch.nn.Linear(6, 8)
            self.blocks = torch.nn.Sequential(Block(8), Block(8))
            self.head = torch.nn.Linear(8, 3)

        def forward(self, x):
            return self.head(torch.relu(self.blocks(self.embed(x))))

    torch.manual_seed(5)
    return ResidualMLP().eval()


@lru_cache(maxsize=1)
def _exported_mlp() -> bytes:
    """The residual MLP through the default exporter, serialized (an export takes seconds: done once)."""
    import torch

    x = torch.randn(4, 6, generator=torch.Generator().manual_seed(6))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        proto = torch.onnx.export(_mlp(), (x,), dynamo=True, external_data=False, verbose=False).model_proto
    return proto.SerializeToString()


def _fresh_mlp() -> onnx.ModelProto:
    return onnx.load_from_string(_exported_mlp())


def _transpose(model: onnx.ModelProto, name: str) -> str:
    """Store initializer `name` transposed, as a converter writing weights by hand might; returns its reader."""
    init = next(i for i in model.graph.initializer if i.name == name)
    init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init).T.copy(), name))
    return next(node.name for node in model.graph.node if name in node.input)


def _shift(model: onnx.ModelProto, name: str) -> str:
    init = next(i for i in model.graph.initializer if i.name == name)
    init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) + np.float32(0.5), name))
    return next(node.name for node in model.graph.node if name in node.input)


def _swap_op(model: onnx.ModelProto, op_type: str, which: int, new_op_type: str) -> str:
    node = [n for n in model.graph.node if n.op_type == op_type][which]
    node.op_type = new_op_type
    del node.attribute[:]
    return node.name


def edited_mlp(reference_path: str | Path, edited_path: str | Path):
    """A small residual MLP's default export, an edited copy of it that computes something else, and an input.

    Returns (reference, edited, x): two ModelProtos (also saved to the paths) and a torch input.
    """
    import torch

    reference, edited = _fresh_mlp(), _fresh_mlp()
    _transpose(edited, _NOTEBOOK_EDIT)
    onnx.save(reference, str(reference_path))
    onnx.save(edited, str(edited_path))
    return reference, edited, torch.randn(4, 6, generator=torch.Generator().manual_seed(6))


def _q3_cases():
    """(what was edited, the edit) for the check's own copies: places the notebook's pair does not show."""
    return [
        ("the second Linear of block 0 stores its weight transposed", lambda m: _transpose(m, "blocks.0.fc2.weight")),
        ("block 1's residual Add became a Sub", lambda m: _swap_op(m, "Add", 1, "Sub")),
        ("the head's bias moved by 0.5", lambda m: _shift(m, "head.bias")),
        ("block 0's Gelu became a Relu", lambda m: _swap_op(m, "Gelu", 0, "Relu")),
        ("nothing: the two files are equal", None),
    ]


def _check_q3(ex3_first_difference) -> str:
    import torch

    if not callable(ex3_first_difference):
        raise Incorrect(f"`ex3_first_difference` should be a function (reference, suspect, x) -> a node name or "
                        f"None, but it is a {type(ex3_first_difference).__name__}: {ex3_first_difference!r:.60}")
    x = torch.randn(4, 6, generator=torch.Generator().manual_seed(55))  # new values, not the notebook's input
    for what, edit in _q3_cases():
        reference, suspect = _fresh_mlp(), _fresh_mlp()
        want = edit(suspect) if edit else None
        nodes = [node.name for node in suspect.graph.node]
        got = ex3_first_difference(_fresh_mlp(), copy.deepcopy(suspect), x.clone())
        if got == want:
            continue
        if want is None:
            raise Incorrect(f"for two equal files your function returned {got!r}: when no node's output differs, "
                            "return None")
        if got is None:
            raise Incorrect(f"in a copy where {what}, your function returned None, but the outputs differ: compare "
                            "every node's outputs (all intermediates exposed), not only what the graph returns")
        if got not in nodes:
            writer = next((node.name for node in suspect.graph.node if got in node.output), None)
            if writer is not None:
                raise Incorrect(f"in a copy where {what}, your function returned {got!r}, a tensor name: return the "
                                f"name of the node that writes it (node.name, here {writer!r})")
            raise Incorrect(f"in a copy where {what}, your function returned {got!r}, which names no node of the "
                            "suspect file")
        if nodes.index(got) > nodes.index(want):
            raise Incorrect(f"in a copy where {what}, your function returned {got!r}, but an earlier node's output "
                            "already differs: walk the nodes in graph order and stop at the first difference")
        raise Incorrect(f"in a copy where {what}, your function returned {got!r}, whose outputs are the same in both "
                        "files (within atol=1e-4, rtol=1e-3): a node differs only when its output does")
    return ("the first differing node found in four edited copies of a network you did not see (a transposed "
            "weight, an Add turned Sub, a Gelu turned Relu, a moved bias), and None for two equal files")


q1, q2, q3 = bind("05_onnx_construction", [
    Exercise(
        title="A Gemm and a Relu, by hand",
        kind="warm-up",
        answers=["ex1_model"],
        check=_check_q1,
        hints=[
            "Gemm computes alpha * A @ B' + beta * C; with transB=1, B' is B transposed, so B = Q1_WEIGHT as stored.",
            "Put the weight and bias in the graph as initializers: helper.make_graph(nodes, name, inputs, outputs, "
            "initializer=[numpy_helper.from_array(Q1_WEIGHT, 'W'), ...]).",
            "Input: helper.make_tensor_value_info('x', TensorProto.FLOAT, ['N', 3]); output 'y' is ['N', 2]; then "
            "helper.make_model(graph, ir_version=10, opset_imports=[helper.make_opsetid('', 20)]).",
        ],
    ),
    Exercise(
        title="Any batch size for a fixed-batch file",
        answers=["ex2_model"],
        context=["tiny_path"],
        check=_check_q2,
        hints=[
            "A graph input or output is a ValueInfoProto: its dims are in vi.type.tensor_type.shape.dim, the same "
            "fields section 3 read with d.dim_param or d.dim_value.",
            "A dimension holds either a dim_value (a number) or a dim_param (a name): assigning dim_param = 'N' "
            "replaces the fixed 1. Do it on the graph input and on the graph output.",
            "for vi in [*ex2_model.graph.input, *ex2_model.graph.output]: "
            "vi.type.tensor_type.shape.dim[0].dim_param = 'N'",
        ],
    ),
    Exercise(
        title="Which node did the edit break?",
        kind="transfer",
        answers=["ex3_first_difference"],
        check=_check_q3,
        hints=[
            "No torch model this time: the reference *file* is the truth. Section 6's first step still applies to "
            "both files: `onnx_intermediates(proto, x)` runs one copy with every node output exposed.",
            "The two files are the same graph, so a tensor has the same name in both: pair the two dicts of "
            "intermediates by name, no module scopes needed. Walk `suspect.graph.node` in order (a topological "
            "order) and compare each node's outputs with np.allclose(..., atol=1e-4, rtol=1e-3).",
            "expected, got = onnx_intermediates(reference, x), onnx_intermediates(suspect, x); for node in "
            "suspect.graph.node: if any(not np.allclose(got[t], expected[t], atol=1e-4, rtol=1e-3) for t in "
            "node.output): return node.name — and return None after the loop.",
        ],
    ),
])

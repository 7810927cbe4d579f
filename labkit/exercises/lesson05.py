"""Lesson 05 exercises: a graph by hand, a fixed batch made dynamic by editing the file, a broken layer found.

    from labkit.exercises.lesson05 import q1, q2, q3, Q1_WEIGHT, Q1_BIAS, broken_mlp
"""
from __future__ import annotations

import copy
import warnings
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from ..backends import run_onnx
from ..onnxfile import input_specs, output_specs
from ..report import first_line
from .checks import require_inputs, require_ops, require_type
from .core import Exercise, Incorrect, bind

__all__ = ["q1", "q2", "q3", "Q1_WEIGHT", "Q1_BIAS", "broken_mlp"]

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
        if got.shape != expected.shape or not np.allclose(got, expected, atol=1e-5, rtol=1e-4):
            raise Incorrect(f"for a batch of {batch} rows `ex2_model` does not compute what the original file "
                            "computes row by row: edit only the shapes, keep the nodes and weights")
    return "batches of 5 and 2 give, row for row, what the batch-1 file gives"


# ------------------------------------------------------------------------------------------------ q3
_FAULTY_MODULE = "blocks.1.fc1"
_planted: dict = {}


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


def broken_mlp(broken_path: str | Path):
    """A small residual MLP, an input for it, and its default-exporter export with one weight corrupted.

    Returns (q3_model, q3_input, broken_path). The file's copy of one square Linear weight is stored
    transposed, a slip that a converter writing weights by hand makes easily: shapes still fit, numbers do not.
    """
    import torch

    model = _mlp()
    x = torch.randn(4, 6, generator=torch.Generator().manual_seed(6))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        proto = torch.onnx.export(model, (x,), dynamo=True, external_data=False, verbose=False).model_proto
    init = next(i for i in proto.graph.initializer if i.name == f"{_FAULTY_MODULE}.weight")
    init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init).T.copy(), init.name))
    onnx.save(proto, str(broken_path))
    _planted.update(model=model, input=x, path=Path(broken_path))
    return model, x, Path(broken_path)


def _module_outputs(model, x) -> dict:
    import torch

    seen, hooks = {}, []
    for name, module in model.named_modules():
        hooks.append(module.register_forward_hook(
            lambda mod, args, out, name=name: seen.update({name: out.detach().clone()})))
    try:
        with torch.no_grad():
            model(x)
    finally:
        for hook in hooks:
            hook.remove()
    return seen


def _diverging_modules(model, x) -> set[str]:
    """Modules whose output changes when the planted fault is applied to torch itself (an independent truth)."""
    import torch

    broken = copy.deepcopy(model)
    weight = dict(broken.named_modules())[_FAULTY_MODULE].weight
    with torch.no_grad():
        weight.copy_(weight.T.clone())
    clean, faulty = _module_outputs(model, x), _module_outputs(broken, x)
    return {name for name in clean if not torch.allclose(clean[name], faulty[name], atol=1e-4, rtol=1e-3)}


def _check_q3(ex3_module) -> str:
    require_type("ex3_module", ex3_module, str)
    if "path" not in _planted or not _planted["path"].is_file():
        raise Incorrect("run the cell that calls broken_mlp(...) first: it writes the broken model")
    model, x = _planted["model"], _planted["input"]
    if ex3_module == _FAULTY_MODULE:
        return (f"{_FAULTY_MODULE!r}: the first module whose output leaves torch's, while its input still agrees "
                "(the file stores its weight transposed)")
    modules = dict(model.named_modules())
    if ex3_module not in modules:
        graph = onnx.load(str(_planted["path"]), load_external_data=False).graph
        if ex3_module in {n.name for n in graph.node} | {o for n in graph.node for o in n.output}:
            raise Incorrect(f"{ex3_module!r} is a name in the ONNX file; give the torch module that it belongs to, "
                            "as q3_model.named_modules() spells it (e.g. 'embed')")
        raise Incorrect(f"q3_model has no module {ex3_module!r}; its modules are "
                        f"{', '.join(repr(m) for m in modules if m)}")
    if _FAULTY_MODULE.startswith(ex3_module + ".") or ex3_module == "":
        raise Incorrect(f"{ex3_module or 'the whole model'!r} contains the faulty layer, but so do other layers "
                        "that agree with torch: name the innermost module, the first one whose output fails")
    if ex3_module in _diverging_modules(model, x):
        raise Incorrect(f"{ex3_module!r} does differ from torch, but so does what it reads: the fault is further "
                        "upstream (walk the graph in order and stop at the first failure)")
    raise Incorrect(f"{ex3_module!r} agrees with torch: the fault is further downstream")


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
        title="Which layer is broken?",
        answers=["ex3_module"],
        check=_check_q3,
        hints=[
            "The walk of section 6 works on any model exported with module scopes: "
            "first_divergence(q3_model, onnx.load(q3_path), q3_input).",
            "The node it returns writes a tensor; torch_counterparts(proto, dict(q3_model.named_modules())) maps "
            "that tensor to its module. labkit.find_divergence(q3_model, q3_path, q3_input) names it too, in the "
            "torch column of its first FAILED row.",
            "ex3_module is the module of the first FAILED row, without ' output', e.g. 'blocks.0.fc2'.",
        ],
    ),
])

"""Small reusable assertions for exercise checks; each raises Incorrect with a message a learner can act on.

One way to judge a learner's ONNX file, the same in every lesson:

    model = require_onnx_file("ex1_path", ex1_path)          # a file (not a folder) the ONNX checker accepts
    specs = require_input_specs("ex1_path", model)            # its real inputs; none at all is named as the fault
    outputs = run_learner_file("ex1_path", model, feeds, "a batch of 3")   # ORT; its refusal names the input
    require_close("ex1_path", "a batch of 3", expected, outputs[0])        # ONE tolerance rule: compare_arrays

and one way to run the learner's own PyTorch model (`call_learner_model`), so that their model
raising, or a `forward` that returns nothing, is named as such and never blamed on the export.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from ..compare import compare_arrays
from ..onnxfile import OnnxFile, TensorSpec, graph_inputs
from ..report import first_line
from .core import Incorrect

__all__ = ["ATOL", "RTOL", "require_type", "require_file", "require_onnx_file", "require_inputs", "require_input_specs",
           "require_outputs", "require_ops", "exporter_of", "require_exporter", "learner_session",
           "run_learner_file", "agrees", "require_close", "call_learner_model"]

ATOL, RTOL = 1e-4, 1e-3  # labkit.compare's defaults: the one tolerance every exercise check uses
DEFAULT_EXPORTER_KEY = "pkg.torch.onnx.name_scopes"  # node metadata that only the default exporter writes
_EXPORTERS = {"legacy": "the legacy exporter (dynamo=False)", "default": "the default exporter (dynamo=True)"}


def require_type(name: str, value: Any, *types: type) -> None:
    """`name` must be an instance of one of `types`."""
    if not isinstance(value, types):
        wanted = " or ".join(t.__name__ for t in types)
        raise Incorrect(f"`{name}` should be a {wanted}, but it is a {type(value).__name__}: {value!r:.60}")


def require_file(name: str, path: Any) -> Path:
    """`path` must be a str or Path naming an existing file, not a folder; returns it as a Path."""
    require_type(name, path, str, Path)
    path = Path(path)
    if path.is_dir():
        raise Incorrect(f"`{name}` is '{path.name}', which is a folder: give the path of the .onnx file itself "
                        "(the folder / 'name.onnx' you passed to the export)")
    if not path.is_file():
        raise Incorrect(f"`{name}` is '{path.name}', but no such file exists: run your export first")
    return path


def require_onnx_file(name: str, path: Any) -> onnx.ModelProto:
    """`path` must name an existing file (not a folder) that the ONNX checker accepts; returns the loaded model."""
    path = require_file(name, path)
    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(model)
    except Exception as error:
        raise Incorrect(f"`{name}` ('{path.name}') is not a valid ONNX model: {first_line(error)}") from None
    return model


def require_input_specs(name: str, model: onnx.ModelProto, count: int | None = None) -> list[TensorSpec]:
    """The model's real inputs (not initializers); a file with none, or not `count` of them, is named as the fault."""
    specs = OnnxFile.open(model).inputs
    if not specs:
        raise Incorrect(f"`{name}` has no graph inputs at all: every input became a constant at export time. "
                        "Export a model whose forward uses its argument(s), and pass them in the example tuple")
    if count is not None and len(specs) != count:
        found = ", ".join(f"'{s.name}' {s.shape_text()}" for s in specs)
        raise Incorrect(f"`{name}` should have {count} graph input(s), found {len(specs)}: {found}")
    return specs


def require_inputs(model: onnx.ModelProto, expected: list[str]) -> None:
    """The model's real graph inputs must be exactly `expected`, in order."""
    found = [i.name for i in graph_inputs(model.graph)]
    if found != expected:
        raise Incorrect(f"expected {len(expected)} graph input(s) {expected}, found {len(found)}: {found}")


def require_outputs(model: onnx.ModelProto, expected: list[str]) -> None:
    """The model's graph outputs must be exactly `expected`, in order; the fix names output_names=."""
    found = [o.name for o in model.graph.output]
    if found != expected:
        raise Incorrect(f"the output(s) should be named {expected}, found {found}: pass output_names={expected} "
                        "to torch.onnx.export")


def require_ops(model: onnx.ModelProto, *ops: str) -> None:
    """The main graph must contain each op type in `ops`."""
    present = {node.op_type for node in model.graph.node}
    missing = [op for op in ops if op not in present]
    if missing:
        raise Incorrect(f"the graph has no {', '.join(missing)} node; its ops are: {', '.join(sorted(present))}")


def exporter_of(model: onnx.ModelProto) -> str:
    """'default' when the default exporter (dynamo=True) wrote `model` (its nodes carry scopes), else 'legacy'."""
    default = any(p.key == DEFAULT_EXPORTER_KEY for node in model.graph.node for p in node.metadata_props)
    return "default" if default else "legacy"


def require_exporter(name: str, model: onnx.ModelProto, exporter: str) -> None:
    """The file must come from `exporter` ("legacy" or "default"), told apart by `exporter_of`."""
    if exporter not in _EXPORTERS:
        raise ValueError(f"exporter must be 'legacy' or 'default', got {exporter!r}")
    found = exporter_of(model)
    if found != exporter:
        raise Incorrect(f"`{name}` was written by {_EXPORTERS[found]}, and this exercise asks for "
                        f"{_EXPORTERS[exporter]}: export again with dynamo={exporter == 'default'}")


def learner_session(name: str, model: onnx.ModelProto):
    """An ORT session (labkit.backends.make_session) on the learner's model; ORT's refusal is named as such."""
    from ..backends import make_session

    try:
        return make_session(model)
    except Exception as error:
        raise Incorrect(f"ONNX Runtime refuses to load `{name}`: {first_line(error)}") from None


def run_learner_file(name: str, model: Any, feeds: Mapping[str, np.ndarray], what: str) -> list[np.ndarray]:
    """Run the learner's model (a ModelProto or a session from `learner_session`) on `feeds`, all outputs in order.

    `what` describes the inputs ("a batch of 3 photos"), so a failure names the case that failed.
    """
    is_session = hasattr(model, "run") and not isinstance(model, onnx.ModelProto)
    session = model if is_session else learner_session(name, model)
    try:
        return [np.asarray(v) for v in session.run(None, dict(feeds))]
    except Exception as error:
        shapes = ", ".join(f"'{k}' {tuple(np.shape(v))}" for k, v in feeds.items())
        raise Incorrect(f"`{name}` fails in ONNX Runtime on {what} ({shapes}): {first_line(error)}") from None


def agrees(expected: Any, actual: Any, *, atol: float = ATOL, rtol: float = RTOL) -> bool:
    """True when `actual` matches `expected` by compare_arrays' rule (for checks that word their own message)."""
    expected, actual = np.asarray(expected), np.asarray(actual)
    if expected.dtype.kind == "f" and actual.dtype.kind == "f":
        actual = actual.astype(expected.dtype, copy=False)
    return compare_arrays("", "", expected, actual, atol, rtol).passed


def require_close(name: str, what: str, expected: Any, actual: Any, *, atol: float = ATOL, rtol: float = RTOL,
                  fix: str = "", allow_nonfinite: bool = False) -> None:
    """`actual` must match `expected` by labkit.compare's one rule (shape, dtype, atol + rtol * |expected|)."""
    expected, actual = np.asarray(expected), np.asarray(actual)
    if expected.dtype.kind == "f" and actual.dtype.kind == "f":
        actual = actual.astype(expected.dtype, copy=False)  # float32 vs float64 is not the learner's fault here
    row = compare_arrays(name, what, expected, actual, atol, rtol, allow_nonfinite=allow_nonfinite)
    if not row.passed:
        raise Incorrect(f"`{name}` on {what}: {row.detail}" + (f": {fix}" if fix else ""))


def call_learner_model(name: str, model: Any, *args: Any) -> list[np.ndarray]:
    """Run the learner's own torch model (labkit.backends.run_torch); its own failure is reported as its own."""
    import torch

    from ..backends import run_torch

    if not callable(model):
        raise Incorrect(f"`{name}` should be a torch.nn.Module, but it is a {type(model).__name__}")
    cloned = tuple(a.clone() if isinstance(a, torch.Tensor) else a for a in args)  # a forward may edit its input
    shapes = ", ".join(str(tuple(a.shape)) for a in args if hasattr(a, "shape"))
    try:
        outputs = run_torch(model, cloned)
    except Exception as error:
        raise Incorrect(f"your `{name}` itself raises {type(error).__name__} when called on an input of shape "
                        f"{shapes}: {first_line(error)}. Fix the model in PyTorch first (call it on a new input), "
                        "then export it") from None
    if any(output.dtype == object for output in outputs):  # None (or a non-tensor) where a tensor belongs
        raise Incorrect(f"`{name}`'s forward returns None: end forward with `return` and the output tensor "
                        "(the exporter has nothing to write otherwise)")
    return outputs

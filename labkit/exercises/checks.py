"""Small reusable assertions for exercise checks; each raises Incorrect with a message a learner can act on."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import onnx

from ..onnxfile import graph_inputs
from ..report import first_line
from .core import Incorrect

__all__ = ["require_type", "require_onnx_file", "require_inputs", "require_ops"]


def require_type(name: str, value: Any, *types: type) -> None:
    """`name` must be an instance of one of `types`."""
    if not isinstance(value, types):
        wanted = " or ".join(t.__name__ for t in types)
        raise Incorrect(f"`{name}` should be a {wanted}, but it is a {type(value).__name__}: {value!r:.60}")


def require_onnx_file(name: str, path: Any) -> onnx.ModelProto:
    """`path` must name an existing file that the ONNX checker accepts; returns the loaded model."""
    require_type(name, path, str, Path)
    path = Path(path)
    if not path.is_file():
        raise Incorrect(f"`{name}` is '{path.name}', but no such file exists: run your export first")
    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(model)
    except Exception as error:
        raise Incorrect(f"`{name}` ('{path.name}') is not a valid ONNX model: {first_line(error)}") from None
    return model


def require_inputs(model: onnx.ModelProto, expected: list[str]) -> None:
    """The model's real graph inputs must be exactly `expected`, in order."""
    found = [i.name for i in graph_inputs(model.graph)]
    if found != expected:
        raise Incorrect(f"expected {len(expected)} graph input(s) {expected}, found {len(found)}: {found}")


def require_ops(model: onnx.ModelProto, *ops: str) -> None:
    """The main graph must contain each op type in `ops`."""
    present = {node.op_type for node in model.graph.node}
    missing = [op for op in ops if op not in present]
    if missing:
        raise Incorrect(f"the graph has no {', '.join(missing)} node; its ops are: {', '.join(sorted(present))}")

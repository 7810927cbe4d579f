"""An ONNX file as labkit reads it: loaded once, with its real inputs and outputs, and errors that say what to do.

`OnnxFile.open(model)` parses a path (or takes a ModelProto) once, without the weights of an
external-data file; every public function below accepts a path, a ModelProto or an OnnxFile, so
one call parses a model once however many backends it runs on.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Union

import numpy as np
import onnx
from google.protobuf.message import DecodeError

from .report import first_line

__all__ = ["ModelLike", "TensorSpec", "OnnxFile", "load_model", "input_specs", "output_specs", "graph_inputs",
           "np_dtype"]


@dataclass(frozen=True)
class TensorSpec:
    """Name, numpy dtype and shape of a graph input or output; a dim is an int, a name, or None."""

    name: str
    dtype: np.dtype | None
    shape: tuple

    def shape_text(self) -> str:
        """The shape as `[N, 3, 224, 224]`: symbolic dims by name, unknown dims as `?`."""
        return "[" + ", ".join("?" if d is None else str(d) for d in self.shape) + "]"


def np_dtype(elem_type: int) -> np.dtype | None:
    """The numpy dtype of an ONNX element type; None when it is undefined (0) or has no numpy twin."""
    if not elem_type:
        return None
    try:
        return np.dtype(onnx.helper.tensor_dtype_to_np_dtype(elem_type))
    except (KeyError, TypeError, ValueError):
        return None


def _spec(value_info: onnx.ValueInfoProto) -> TensorSpec:
    tensor_type = value_info.type.tensor_type
    dims = []
    if tensor_type.HasField("shape"):
        for dim in tensor_type.shape.dim:
            if dim.HasField("dim_value"):
                dims.append(dim.dim_value)
            elif dim.HasField("dim_param"):
                dims.append(dim.dim_param)
            else:
                dims.append(None)
    return TensorSpec(value_info.name, np_dtype(tensor_type.elem_type), tuple(dims))


def graph_inputs(graph: onnx.GraphProto) -> list[onnx.ValueInfoProto]:
    """The inputs a caller must feed: graph inputs that are not initializers (old files list weights as inputs)."""
    initializers = {init.name for init in graph.initializer}
    return [vi for vi in graph.input if vi.name not in initializers]


def _external_files(proto: onnx.ModelProto) -> set[str]:
    files = set()
    for init in proto.graph.initializer:
        if init.data_location == onnx.TensorProto.EXTERNAL:
            files.update(entry.value for entry in init.external_data if entry.key == "location")
    return files


def _parse(path: Path) -> onnx.ModelProto:
    if not path.is_file():
        raise FileNotFoundError(f"no ONNX model at '{path}': export it first, or check the path")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except (DecodeError, RuntimeError, ValueError) as error:
        raise ValueError(f"'{path.name}' is not an ONNX model: {first_line(error)}") from None
    if proto.ir_version == 0 or not proto.HasField("graph"):
        raise ValueError(f"'{path.name}' is not an ONNX model: it has no IR version or graph")
    missing = sorted(name for name in _external_files(proto) if not (path.parent / name).is_file())
    if missing:
        raise FileNotFoundError(
            f"'{path.name}' keeps its weights in {', '.join(map(repr, missing))}, which is not next to it: copy the "
            "weights file along with the model, or re-export with external_data=False (one self-contained file)"
        )
    return proto


@dataclass
class OnnxFile:
    """One ONNX model parsed once: its graph (weights of an external-data file not loaded) and its path, if any."""

    proto: onnx.ModelProto
    path: Path | None = None
    _full: onnx.ModelProto | None = field(default=None, repr=False)

    @classmethod
    def open(cls, model: "ModelLike") -> "OnnxFile":
        """Parse `model` (a path, a ModelProto or an OnnxFile) once; a missing or non-ONNX file raises a clear error."""
        if isinstance(model, OnnxFile):
            return model
        if isinstance(model, onnx.ModelProto):
            return cls(model)
        if not isinstance(model, (str, Path)):
            raise TypeError(f"expected a path to an .onnx file or an onnx.ModelProto, got {type(model).__name__}")
        path = Path(model)
        return cls(_parse(path), path)

    @property
    def name(self) -> str:
        return self.path.name if self.path else self.proto.graph.name or "model"

    @property
    def inputs(self) -> list[TensorSpec]:
        return [_spec(vi) for vi in graph_inputs(self.proto.graph)]

    @property
    def outputs(self) -> list[TensorSpec]:
        return [_spec(vi) for vi in self.proto.graph.output]

    def full(self) -> onnx.ModelProto:
        """The model with every weight in memory (an external-data file read in), loaded on first use."""
        if self._full is None:
            if self.path is not None and _external_files(self.proto):
                self._full = onnx.load(str(self.path), load_external_data=True)
            else:
                self._full = self.proto
        return self._full


ModelLike = Union[str, Path, onnx.ModelProto, OnnxFile]


def load_model(model: ModelLike, *, load_external_data: bool = True) -> onnx.ModelProto:
    """Return a ModelProto from a path, a ModelProto or an OnnxFile; a missing or non-ONNX file raises a clear error."""
    loaded = OnnxFile.open(model)
    return loaded.full() if load_external_data else loaded.proto


def input_specs(model: ModelLike) -> list[TensorSpec]:
    """The inputs a caller must feed: graph inputs that are not initializers."""
    return OnnxFile.open(model).inputs


def output_specs(model: ModelLike) -> list[TensorSpec]:
    """The graph outputs, in order."""
    return OnnxFile.open(model).outputs

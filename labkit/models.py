"""Loading ONNX models and describing their real inputs, with errors that say what to do."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Union

import numpy as np
import onnx
from google.protobuf.message import DecodeError

__all__ = ["ModelLike", "TensorSpec", "load_model", "input_specs", "output_specs"]

ModelLike = Union[str, Path, onnx.ModelProto]


@dataclass(frozen=True)
class TensorSpec:
    """Name, numpy dtype and shape of a graph input or output; a dim is an int, a name, or None."""

    name: str
    dtype: np.dtype
    shape: tuple

    def shape_text(self) -> str:
        """The shape as `[N, 3, 224, 224]`: symbolic dims by name, unknown dims as `?`."""
        return "[" + ", ".join("?" if d is None else str(d) for d in self.shape) + "]"


def load_model(model: ModelLike, *, load_external_data: bool = True) -> onnx.ModelProto:
    """Return a ModelProto from a path or a ModelProto; a missing or non-ONNX file raises a clear error."""
    if isinstance(model, onnx.ModelProto):
        return model
    if not isinstance(model, (str, Path)):
        raise TypeError(f"expected a path to an .onnx file or an onnx.ModelProto, got {type(model).__name__}")
    path = Path(model)
    if not path.is_file():
        raise FileNotFoundError(f"no ONNX model at '{path}': export it first, or check the path")
    try:
        proto = onnx.load(str(path), load_external_data=load_external_data)
    except (DecodeError, RuntimeError, ValueError) as error:
        raise ValueError(f"'{path.name}' is not an ONNX model: {_first_line(error)}") from None
    if proto.ir_version == 0 or not proto.HasField("graph"):
        raise ValueError(f"'{path.name}' is not an ONNX model: it has no IR version or graph")
    return proto


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _spec(value_info: onnx.ValueInfoProto) -> TensorSpec:
    tensor_type = value_info.type.tensor_type
    dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tensor_type.elem_type)) if tensor_type.elem_type else None
    dims = []
    if tensor_type.HasField("shape"):
        for dim in tensor_type.shape.dim:
            if dim.HasField("dim_value"):
                dims.append(dim.dim_value)
            elif dim.HasField("dim_param"):
                dims.append(dim.dim_param)
            else:
                dims.append(None)
    return TensorSpec(value_info.name, dtype, tuple(dims))


def input_specs(model: ModelLike) -> list[TensorSpec]:
    """The inputs a caller must feed: graph inputs that are not initializers."""
    proto = load_model(model, load_external_data=False)
    initializers = {init.name for init in proto.graph.initializer}
    return [_spec(vi) for vi in proto.graph.input if vi.name not in initializers]


def output_specs(model: ModelLike) -> list[TensorSpec]:
    """The graph outputs, in order."""
    proto = load_model(model, load_external_data=False)
    return [_spec(vi) for vi in proto.graph.output]

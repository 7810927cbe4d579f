"""A stable text summary of an ONNX model: what a learner checks first after an export."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import onnx

from .onnxfile import ModelLike, OnnxFile, TensorSpec, np_dtype

__all__ = ["ModelSummary", "summarize", "op_counts", "op_label"]


def op_label(node: onnx.NodeProto) -> str:
    """The op type, prefixed by its domain when it is not the default one: 'Conv', 'com.microsoft::FusedConv'."""
    return node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}::{node.op_type}"


def op_counts(model: ModelLike) -> Counter:
    """How many nodes of each op type the main graph holds (subgraphs of Loop/If not counted)."""
    return Counter(op_label(node) for node in OnnxFile.open(model).proto.graph.node)


def _human_bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def _initializer_stats(proto: onnx.ModelProto) -> tuple[int, int, int, int]:
    """(initializers, values, bytes, initializers of an undefined or non-numeric type whose bytes are not counted)."""
    count = values = nbytes = untyped = 0
    for init in proto.graph.initializer:
        count += 1
        n = int(np.prod(init.dims)) if len(init.dims) else 1
        values += n
        dtype = np_dtype(init.data_type)
        if dtype is None or dtype.kind == "O":
            untyped += 1
        else:
            nbytes += n * dtype.itemsize
    return count, values, nbytes, untyped


@dataclass(frozen=True)
class ModelSummary:
    """The facts `summarize` reports; `print()` or display it for the text form."""

    ir_version: int
    opsets: dict
    inputs: list
    outputs: list
    ops: Counter
    initializers: int
    parameters: int
    parameter_bytes: int
    untyped_initializers: int = 0

    @property
    def node_count(self) -> int:
        return sum(self.ops.values())

    def __repr__(self) -> str:
        opsets = ", ".join(f"{d or 'ai.onnx'} {v}" for d, v in sorted(self.opsets.items()))
        io = self.inputs + self.outputs
        width = max((len(s.name) for s in io), default=0)

        def line(spec: TensorSpec) -> str:
            return f"    {spec.name:<{width}}  {str(spec.dtype):<8} {spec.shape_text()}"

        ops = ", ".join(f"{op} {n}" for op, n in sorted(self.ops.items(), key=lambda kv: (-kv[1], kv[0])))
        lines = [f"IR version {self.ir_version}, opsets: {opsets}",
                 f"inputs ({len(self.inputs)}):", *map(line, self.inputs),
                 f"outputs ({len(self.outputs)}):", *map(line, self.outputs),
                 f"nodes ({self.node_count}): {ops}",
                 f"initializers ({self.initializers}): {self.parameters:,} values, "
                 f"{_human_bytes(self.parameter_bytes)}"
                 + (f" (not counting {self.untyped_initializers} of undefined or non-numeric type)"
                    if self.untyped_initializers else "")]
        return "\n".join(lines)


def summarize(model: ModelLike) -> ModelSummary:
    """IR version, opsets, inputs/outputs with symbolic dims, op counts and initializer sizes."""
    loaded = OnnxFile.open(model)
    proto = loaded.proto
    count, values, nbytes, untyped = _initializer_stats(proto)
    return ModelSummary(ir_version=proto.ir_version, opsets={imp.domain: imp.version for imp in proto.opset_import},
                        inputs=loaded.inputs, outputs=loaded.outputs, ops=op_counts(loaded), initializers=count,
                        parameters=values, parameter_bytes=nbytes, untyped_initializers=untyped)

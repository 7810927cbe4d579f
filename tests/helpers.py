"""Builders the unit tests share: tiny models with a known function, and a model exported both ways."""
from __future__ import annotations

import warnings

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper


def make_affine_model(batch: int | str = "N") -> onnx.ModelProto:
    """y = relu(x @ W + b) with x: [batch, 4] float32, W: [4, 3]; a fixed, checkable function."""
    weight = numpy_helper.from_array(np.arange(12, dtype=np.float32).reshape(4, 3) / 10, "W")
    bias = numpy_helper.from_array(np.array([-1.0, 0.0, 1.0], dtype=np.float32), "b")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["xw"]), helper.make_node("Add", ["xw", "b"], ["z"]),
         helper.make_node("Relu", ["z"], ["y"])],
        "affine",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 3])],
        initializer=[weight, bias],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    return model


def affine_numpy(x: np.ndarray) -> np.ndarray:
    weight = np.arange(12, dtype=np.float32).reshape(4, 3) / 10
    return np.maximum(x @ weight + np.array([-1.0, 0.0, 1.0], dtype=np.float32), 0)


class Branchy(torch.nn.Module):
    """Lesson 05's branched model: convs1, then two branches added, then convs4."""

    def __init__(self):
        super().__init__()

        def convs(n):
            return torch.nn.Sequential(*(torch.nn.Conv2d(3, 3, 3) for _ in range(n)))

        self.convs1, self.convs2, self.convs3, self.convs4 = convs(3), convs(2), convs(2), convs(3)

    def forward(self, x):
        x = self.convs1(x)
        return self.convs4(self.convs2(x) + self.convs3(x))


def export_both(model: torch.nn.Module, x: torch.Tensor, folder) -> dict:
    """`model` exported for input `x` by the legacy and the default exporter: {"legacy": path, "dynamo": path}."""
    paths = {"legacy": folder / "legacy.onnx", "dynamo": folder / "dynamo.onnx"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's DeprecationWarning is not under test
        torch.onnx.export(model, (x,), paths["legacy"], dynamo=False)
        torch.onnx.export(model, (x,), paths["dynamo"], dynamo=True, verbose=False, external_data=False)
    return paths

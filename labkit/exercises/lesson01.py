"""Exercises of Lesson 01 (AlexNet end to end): a dynamic-batch export, an ORT run, opset versions."""
from __future__ import annotations

import numpy as np
import onnx

from .checks import require_inputs, require_onnx_file, require_type
from .core import Exercise, Incorrect, bind

__all__ = ["q1", "q2", "q3"]

ALEXNET_OPS = ("AveragePool", "Conv", "Flatten", "Gemm", "MaxPool", "Relu")


def _torch_logits(torch_model, batch: np.ndarray) -> np.ndarray:
    """The notebook's `torch_model` on `batch`: the truth the learner's ONNX model must match."""
    import torch

    torch_model.eval()
    with torch.no_grad():
        return torch_model(torch.from_numpy(np.ascontiguousarray(batch))).numpy()


def _agrees(expected: np.ndarray, actual: np.ndarray) -> bool:
    return expected.shape == actual.shape and bool(np.allclose(actual, expected, atol=1e-4, rtol=1e-3))


def _batch_dim_text(dim) -> str:
    if dim.HasField("dim_value"):
        return str(dim.dim_value)
    return dim.dim_param or "?"


def _check_q1(ex1_path, torch_model) -> str:
    import onnxruntime as ort

    model = require_onnx_file("ex1_path", ex1_path)
    require_inputs(model, ["image"])
    outputs = [o.name for o in model.graph.output]
    if outputs != ["logits"]:
        raise Incorrect(f"the output should be named 'logits', found {outputs}: pass output_names=['logits']")
    dims = model.graph.input[0].type.tensor_type.shape.dim
    shape = [_batch_dim_text(d) for d in dims]
    if len(dims) != 4 or shape[1:] != ["3", "224", "224"]:
        raise Incorrect(f"input 'image' should have shape [batch, 3, 224, 224], found [{', '.join(shape)}]: "
                        "export torch_model with an example image batch such as x[:1]")
    if dims[0].HasField("dim_value"):
        raise Incorrect(f"the batch dimension of 'image' is fixed at {dims[0].dim_value}: make it dynamic with "
                        "dynamic_axes={'image': {0: 'batch'}, 'logits': {0: 'batch'}} (dynamo=False) or "
                        "dynamic_shapes=({0: torch.export.Dim('batch')},) (dynamo=True)")
    session = ort.InferenceSession(str(ex1_path), providers=["CPUExecutionProvider"])
    batch = np.random.default_rng(1).standard_normal((2, 3, 224, 224), dtype=np.float32)
    got = session.run(["logits"], {"image": batch})[0]
    if not _agrees(_torch_logits(torch_model, batch), got):
        raise Incorrect("ORT runs a batch of 2, but its logits differ from torch_model's: "
                        "export the lesson's torch_model itself")
    return f"input 'image' [{', '.join(shape)}], output 'logits', and ORT agrees with torch on a batch of 2"


def _check_q2(ex2_session, ex2_batch, ex2_logits, torch_model) -> str:
    import onnxruntime as ort

    require_type("ex2_session", ex2_session, ort.InferenceSession)
    require_type("ex2_batch", ex2_batch, np.ndarray)
    require_type("ex2_logits", ex2_logits, np.ndarray)
    if ex2_batch.shape != (3, 3, 224, 224):
        raise Incorrect(f"`ex2_batch` should be a batch of 3 images, shape (3, 3, 224, 224); "
                        f"its shape is {ex2_batch.shape}")
    if ex2_batch.dtype != np.float32:
        raise Incorrect(f"`ex2_batch` should be float32 (what the model expects), not {ex2_batch.dtype}: "
                        "use .astype(np.float32)")
    if ex2_logits.shape != (3, 1000):
        raise Incorrect(f"`ex2_logits` should hold one row of 1000 logits per image, shape (3, 1000); "
                        f"its shape is {ex2_logits.shape}: take the first output, session.run(...)[0]")
    name = ex2_session.get_inputs()[0].name
    rerun = ex2_session.run(None, {name: ex2_batch})[0]
    if not np.allclose(rerun, ex2_logits, atol=1e-5, rtol=1e-4):
        raise Incorrect("`ex2_logits` is not what `ex2_session` computes for `ex2_batch`: "
                        "run the session on that very batch")
    if not _agrees(_torch_logits(torch_model, ex2_batch), ex2_logits):
        raise Incorrect("`ex2_logits` differs from torch_model's output for `ex2_batch`: "
                        "open the session on the model of exercise 1")
    return "ORT's logits for your batch of 3 match torch_model's"


def _check_q3(ex3_changed) -> str:
    require_type("ex3_changed", ex3_changed, set, frozenset, list, tuple)
    answer = {str(op) for op in ex3_changed}
    expected = {op for op in ALEXNET_OPS
                if onnx.defs.get_schema(op, 11).since_version != onnx.defs.get_schema(op, 13).since_version}
    unknown = sorted(answer - set(ALEXNET_OPS))
    if unknown:
        raise Incorrect(f"{unknown} are not op types of the AlexNet graph; its op types are {list(ALEXNET_OPS)}")
    missing, extra = sorted(expected - answer), sorted(answer - expected)
    if missing or extra:
        parts = ([f"{len(missing)} changed op type(s) missing"] if missing else []) + \
                ([f"{extra} did not change between opsets 11 and 13"] if extra else [])
        raise Incorrect("; ".join(parts) + ": compare onnx.defs.get_schema(op, 11).since_version with opset 13's")
    return f"{sorted(expected)} changed; the other AlexNet ops kept their opset-11 versions"


q1, q2, q3 = bind('01_alexnet_export', [
    Exercise(
        title='TODO title',
        answers=['ex1_path'],
        context=['torch_model'],
        check=_check_q1,
        hints=["input_names=['image'] and output_names=['logits'] rename the input and the output.",
           "Legacy: dynamic_axes={'image': {0: 'batch'}, 'logits': {0: 'batch'}}. "
           "Default: dynamic_shapes=({0: torch.export.Dim('batch')},)."],
    ),
    Exercise(
        title='TODO title',
        answers=['ex2_session', 'ex2_batch', 'ex2_logits'],
        context=['torch_model'],
        check=_check_q2,
        hints=["ort.InferenceSession(path, providers=['CPUExecutionProvider']) opens the model.",
           "session.run(None, {'image': batch}) returns a list of outputs; the logits are its first element. "
           "np.random.default_rng(0).standard_normal((3, 3, 224, 224), dtype=np.float32) makes the batch."],
    ),
    Exercise(
        title='TODO title',
        answers=['ex3_changed'],
        check=_check_q3,
        hints=["onnx.defs.get_schema(op, opset).since_version is the version of `op` in effect at `opset`.",
           "Keep the op types whose since_version at opset 11 differs from the one at opset 13."],
    ),
])

"""Lesson 06 exercises: session knobs, the int8-sensitive layer of another network, dynamic int8 where it pays.

    from labkit.exercises.lesson06 import q1, q2, q3, trap_cnn, token_mlp
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import onnx

from ..measure import Timing
from .checks import require_onnx_file, require_type
from .core import Exercise, Incorrect, bind

__all__ = ["q1", "q2", "q3", "trap_cnn", "token_mlp"]

# q2: the mixed model must follow torch this closely (mean logit cosine on the check's own images).
MIN_MIXED_COSINE = 0.999
# q3: dynamic int8 may move the MLP's output by at most this much, relative to its largest value.
MAX_DYNAMIC_ERROR = 0.05
MIN_REPEATS = 5


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.reshape(len(a), -1), b.reshape(len(b), -1)
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def _session(model, threads: int = 1):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    source = model.SerializeToString() if isinstance(model, onnx.ModelProto) else str(model)
    return ort.InferenceSession(source, sess_options=options, providers=["CPUExecutionProvider"])


# --------------------------------------------------------------------------- q1

def _check_q1(ex1_session, onnx_path) -> str:
    import onnxruntime as ort

    require_type("ex1_session", ex1_session, ort.InferenceSession)
    options = ex1_session.get_session_options()
    if options.intra_op_num_threads != 1:
        raise Incorrect(f"`ex1_session` uses intra_op_num_threads={options.intra_op_num_threads}; set "
                        "options.intra_op_num_threads = 1 on the SessionOptions before creating the session")
    wanted = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    if options.graph_optimization_level != wanted:
        raise Incorrect(f"`ex1_session` has graph_optimization_level {options.graph_optimization_level.name}; "
                        f"it should be {wanted.name}")
    if ex1_session.get_providers() != ["CPUExecutionProvider"]:
        raise Incorrect(f"`ex1_session` runs on {ex1_session.get_providers()}; pass providers=['CPUExecutionProvider']")
    names = [i.name for i in ex1_session.get_inputs()]
    if names != ["image"]:
        raise Incorrect(f"`ex1_session` has inputs {names}; build it from the fp32 EfficientNet (`onnx_path`), "
                        "whose input is 'image'")
    shape = [d if isinstance(d, int) else 1 for d in ex1_session.get_inputs()[0].shape]
    image = np.random.default_rng(6).standard_normal(shape).astype(np.float32)
    got = ex1_session.run(None, {"image": image})[0]
    expected = _session(onnx_path).run(None, {"image": image})[0]
    if got.shape != expected.shape or not np.allclose(got, expected, atol=1e-4, rtol=1e-3):
        difference = np.abs(got - expected).max() if got.shape == expected.shape else f"shape {got.shape}"
        raise Incorrect(f"`ex1_session` computes something else than the fp32 model in `onnx_path` "
                        f"(max difference {difference}): build it from that file, not from a quantized one")
    return "1 intra-op thread, level ORT_ENABLE_EXTENDED, on the CPU, and the same logits as the fp32 model"


# --------------------------------------------------------------------------- q2

def _rgbd_images(count: int, generator) -> np.ndarray:
    """`count` 4-channel 32x32 images: smooth colour in [0, 1] and depth in millimetres (500 to 4000)."""
    import torch
    import torch.nn.functional as F

    coarse = torch.rand((count, 4, 8, 8), generator=generator)
    images = F.interpolate(coarse, size=(32, 32), mode="bilinear", align_corners=False)
    images[:, 3] = 500 + 3500 * images[:, 3]
    return images.numpy()


def trap_cnn():
    """(model, calibration images, test images): a small seeded CNN reading colour and depth (4 channels).

    Its fp32 function is ordinary; which layer breaks in int8, and why, is for the learner to measure.
    """
    import torch
    from torch import nn

    generator = torch.Generator().manual_seed(6)
    model = nn.Sequential(
        nn.Conv2d(4, 16, 3, padding=1), nn.ReLU(),
        nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(),
        nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10),
    )
    with torch.no_grad():
        for layer in model:
            if isinstance(layer, (nn.Conv2d, nn.Linear)):
                fan_in = layer.weight[0].numel()
                layer.weight.copy_(torch.randn(layer.weight.shape, generator=generator) * (2 / fan_in) ** 0.5)
                layer.bias.copy_(0.1 * torch.randn(layer.bias.shape, generator=generator))
        model[0].weight[:, 3] /= 1000.0  # depth arrives in millimetres: its weights are scaled to match
        model[0].bias -= model[0].weight[:, 3].sum(dim=(1, 2)) * 2250.0  # centre the depth's contribution
    return model.eval(), _rgbd_images(32, generator), _rgbd_images(16, generator)


@lru_cache(maxsize=1)
def _trap_reference():
    """The first convolution's weight, the check's own test images, and torch's logits on them."""
    import torch

    model, _, _ = trap_cnn()
    images = _rgbd_images(16, torch.Generator().manual_seed(60))
    with torch.no_grad():
        logits = model(torch.from_numpy(images)).numpy()
    return model[0].weight.detach().numpy(), images, logits


def _conv_kinds(model: onnx.ModelProto) -> list[tuple[onnx.NodeProto, str]]:
    """(node, 'int8' or 'float') of every Conv in graph order: int8 when its weight comes from a DequantizeLinear."""
    producers = {out: node for node in model.graph.node for out in node.output}
    kinds = []
    for node in model.graph.node:
        if node.op_type == "Conv":
            weight = producers.get(node.input[1])
            kinds.append((node, "int8" if weight is not None and weight.op_type == "DequantizeLinear" else "float"))
    return kinds


def _float_weight(model: onnx.ModelProto, node: onnx.NodeProto) -> np.ndarray | None:
    for init in model.graph.initializer:
        if init.name == node.input[1]:
            return onnx.numpy_helper.to_array(init)
    return None


def _check_q2(ex2_layer, ex2_path) -> str:
    require_type("ex2_layer", ex2_layer, str)
    model = require_onnx_file("ex2_path", ex2_path)
    kinds = _conv_kinds(model)
    if len(kinds) != 4:
        raise Incorrect(f"`ex2_path` has {len(kinds)} convolutions; quantize the export of `q2_model`, which has 4")
    floats = [node for node, kind in kinds if kind == "float"]
    if not floats:
        raise Incorrect("every convolution in `ex2_path` is int8: keep the most sensitive one in float with "
                        "nodes_to_exclude=[ex2_layer]")
    if len(floats) > 1:
        raise Incorrect(f"{len(floats)} convolutions stayed in float ({', '.join(n.name for n in floats)}): "
                        "exclude only the most sensitive one and quantize the rest")
    kept = floats[0]
    if kept.name != ex2_layer:
        raise Incorrect(f"`ex2_layer` is {ex2_layer!r}, but the convolution kept in float in `ex2_path` is "
                        f"{kept.name!r}: exclude the layer your scan found")
    trap_weight, test, expected = _trap_reference()
    weight = _float_weight(model, kept)
    if weight is None or weight.shape != trap_weight.shape or not np.allclose(weight, trap_weight):
        raise Incorrect(f"{ex2_layer!r} is not the layer whose int8 version costs most: quantize one layer at a "
                        "time (nodes_to_quantize, the Conv with its Relu), compare each with fp32 on the same "
                        "images, and exclude the one that moves the logits most")
    got = _session(model).run(None, {model.graph.input[0].name: test})[0]
    cosine = float(_cosine(got, expected).mean())
    if cosine < MIN_MIXED_COSINE:
        raise Incorrect(f"with {ex2_layer!r} in float the model still follows torch only to a mean logit cosine "
                        f"of {cosine:.4f} on the check's images: use per_channel=True and calibrate on "
                        "`q2_calibration`")
    return (f"{ex2_layer!r} is the layer int8 cannot represent; with it in float the rest is int8 and the logits "
            f"follow torch (mean cosine >= {MIN_MIXED_COSINE})")


# --------------------------------------------------------------------------- q3

def token_mlp():
    """(model, tokens): a seeded two-layer MLP applied to every token of a (batch, tokens, 256) input."""
    import torch
    from torch import nn

    generator = torch.Generator().manual_seed(7)
    model = nn.Sequential(nn.Linear(256, 1024), nn.GELU(), nn.Linear(1024, 256))
    with torch.no_grad():
        for layer in (model[0], model[2]):
            layer.weight.copy_(torch.randn(layer.weight.shape, generator=generator) / layer.in_features ** 0.5)
            layer.bias.zero_()
    tokens = torch.randn((8, 64, 256), generator=generator).numpy()
    return model.eval(), tokens


@lru_cache(maxsize=1)
def _mlp_reference():
    import torch

    model, tokens = token_mlp()
    test = np.random.default_rng(8).standard_normal((3, 17, 256)).astype(np.float32)
    with torch.no_grad():
        return test, model(torch.from_numpy(test)).numpy()


def _check_q3(ex3_path, ex3_timings, ex3_speedup) -> str:
    model = require_onnx_file("ex3_path", ex3_path)
    ops = {node.op_type for node in model.graph.node}
    if "QuantizeLinear" in ops:
        raise Incorrect("`ex3_path` has QuantizeLinear nodes, so it was quantized statically, with calibrated "
                        "ranges: use quantize_dynamic, which measures the ranges in every call")
    if not ops & {"MatMulInteger", "DynamicQuantizeMatMul", "MatMulIntegerToFloat"}:
        raise Incorrect(f"`ex3_path` has no integer matmul (its ops: {', '.join(sorted(ops))}): quantize the "
                        "exported MLP with quantize_dynamic, whose integer kernels replace MatMul nodes")
    test, expected = _mlp_reference()
    name = model.graph.input[0].name
    got = _session(model).run(None, {name: test})[0]
    if got.shape != expected.shape:
        raise Incorrect(f"on an input of shape {test.shape} the model returns {got.shape}, torch {expected.shape}: "
                        "export with the batch and token dimensions dynamic")
    error = float(np.abs(got - expected).max() / np.abs(expected).max())
    if error > MAX_DYNAMIC_ERROR:
        raise Incorrect(f"the int8 model moves the output by {error:.1%} of its largest value: quantize the fp32 "
                        "export of `q3_model` with weight_type=QuantType.QInt8")
    require_type("ex3_timings", ex3_timings, dict)
    if sorted(ex3_timings) != ["fp32", "int8"]:
        raise Incorrect(f"`ex3_timings` has the keys {sorted(ex3_timings)}; it should have 'fp32' and 'int8'")
    for key, timing in ex3_timings.items():
        require_type(f"ex3_timings[{key!r}]", timing, Timing)
        if len(timing.seconds) < MIN_REPEATS:
            raise Incorrect(f"`ex3_timings[{key!r}]` has {len(timing.seconds)} timed calls: time at least "
                            f"{MIN_REPEATS} (repeat=...), after warm-up calls")
    require_type("ex3_speedup", ex3_speedup, float, np.floating)
    ratio = ex3_timings["fp32"].median_ms / ex3_timings["int8"].median_ms
    if not np.isclose(float(ex3_speedup), ratio, rtol=1e-6):
        raise Incorrect(f"`ex3_speedup` is {float(ex3_speedup):.3f}, but your timings give fp32 median / int8 median "
                        f"= {ratio:.3f}")
    return (f"MatMuls in int8 with ranges measured at run time, output within {MAX_DYNAMIC_ERROR:.0%} of torch's, "
            "and a speed-up computed from medians of repeated, warmed-up calls")


q1, q2, q3 = bind("06_cpu_performance", [
    Exercise(
        title="Knobs on one session",
        kind="warm-up",
        answers=["ex1_session"],
        context=["onnx_path"],
        check=_check_q1,
        hints=["Every knob lives on an onnxruntime.SessionOptions object, passed as sess_options=... when the "
               "session is created; afterwards they cannot change.",
               "options.intra_op_num_threads = 1 and options.graph_optimization_level = "
               "ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED, then ort.InferenceSession(onnx_path, "
               "sess_options=options, providers=['CPUExecutionProvider'])."],
    ),
    Exercise(
        title="The layer int8 breaks, in another network",
        kind="transfer",
        answers=["ex2_layer", "ex2_path"],
        check=_check_q2,
        hints=["Export `q2_model`, run quant_pre_process, then repeat section 5's scan one layer at a time: "
               "nodes_to_quantize=[the Conv, the Relu after it], everything else stays float.",
               "Compare each one-layer model's logits on `q2_test` with the fp32 ones (1 - mean cosine): one "
               "layer stands far above the others. Its ONNX node name is `ex2_layer`.",
               "A calibration cache (calibration_cache_path=...) makes the scan quick. Finally quantize_static("
               "pre, ex2_path, reader, per_channel=True, nodes_to_exclude=[ex2_layer]) with the same settings."],
    ),
    Exercise(
        title="Dynamic int8 where it is meant to pay",
        kind="transfer",
        answers=["ex3_path", "ex3_timings", "ex3_speedup"],
        check=_check_q3,
        hints=["Export `q3_model` with `q3_tokens` as the example, the batch and token dimensions dynamic: on a "
               "3-D input each Linear becomes MatMul + Add, which quantize_dynamic knows (it does not quantize Gemm).",
               "quantize_dynamic(fp32_path, ex3_path, weight_type=QuantType.QInt8); then time both files with "
               "measure.time_it on the same `q3_tokens`, with warm-up calls and repeat >= 5.",
               "ex3_timings = {'fp32': timing_fp32, 'int8': timing_int8}; ex3_speedup = "
               "timing_fp32.median_ms / timing_int8.median_ms."],
    ),
])

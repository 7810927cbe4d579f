"""Lesson 06 exercises: session knobs, an int8 trap fixed at its cause in another network, dynamic int8 where it pays.

    from labkit.exercises.lesson06 import q1, q2, q3, trap_cnn, token_mlp
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import onnx

from ..measure import Timing
from .checks import agrees, require_onnx_file, require_type
from .core import Exercise, Incorrect, bind

__all__ = ["q1", "q2", "q3", "trap_cnn", "token_mlp"]

# q2: the all-int8 model must follow torch this closely (mean logit cosine on the check's own images).
MIN_MIXED_COSINE = 0.999
# q3: dynamic int8 may move the MLP's output by at most this much, relative to its largest value.
MAX_DYNAMIC_ERROR = 0.05
MIN_REPEATS = 5
# q3: a learner's fastest call must lie within this factor of the check's own fastest call of the same kind of
# file (the fastest, because a busy machine only ever adds time; the factor leaves room for other CPUs and loads).
TIMING_FACTOR = 10.0


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
    if got.shape != expected.shape or not agrees(expected, got):
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
    Depth arrives in millimetres: the first convolution's depth weights are scaled to match.
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
    """The check's own test images (depth in millimetres, as the camera gives it) and torch's logits on them."""
    import torch

    model, _, _ = trap_cnn()
    images = _rgbd_images(16, torch.Generator().manual_seed(60))
    with torch.no_grad():
        logits = model(torch.from_numpy(images)).numpy()
    return images, logits


def _conv_kinds(model: onnx.ModelProto) -> list[tuple[onnx.NodeProto, str]]:
    """(node, 'int8' or 'float') of every Conv in graph order: int8 when its weight comes from a DequantizeLinear."""
    producers = {out: node for node in model.graph.node for out in node.output}
    kinds = []
    for node in model.graph.node:
        if node.op_type == "Conv":
            weight = producers.get(node.input[1])
            kinds.append((node, "int8" if weight is not None and weight.op_type == "DequantizeLinear" else "float"))
    return kinds


def _check_q2(ex2_path) -> str:
    model = require_onnx_file("ex2_path", ex2_path)
    kinds = _conv_kinds(model)
    if len(kinds) != 4:
        raise Incorrect(f"`ex2_path` has {len(kinds)} convolutions; quantize an export of `q2_model`, which has 4")
    floats = [node.name for node, kind in kinds if kind == "float"]
    if floats:
        raise Incorrect(f"{len(floats)} convolution(s) stayed in float ({', '.join(floats)}): this time every "
                        "convolution must run in int8. Excluding the sensitive layer is section 5's fix; here fix "
                        "what its input holds, so that it survives int8")
    images, expected = _trap_reference()
    inputs = [i.name for i in model.graph.input if i.name not in {init.name for init in model.graph.initializer}]
    got = _session(model).run(None, {inputs[0]: images})[0]
    cosine = float(_cosine(got, expected).mean())
    if cosine >= MIN_MIXED_COSINE:
        return (f"every convolution in int8, and on the check's own camera images (depth in millimetres) the logits "
                f"follow torch to a mean cosine of at least {MIN_MIXED_COSINE}")
    in_metres = images.copy()
    in_metres[:, 3] /= 1000.0
    metres = float(_cosine(_session(model).run(None, {inputs[0]: in_metres})[0], expected).mean())
    if metres >= MIN_MIXED_COSINE:
        raise Incorrect(f"on the check's own images the logits follow torch only to a mean cosine of {cosine:.4f}, "
                        f"yet to {metres:.4f} with the depth given in metres: the camera gives millimetres, so the "
                        "file must take millimetres and convert inside the model")
    quantized_input = any(node.op_type == "QuantizeLinear" and node.input[0] == inputs[0] for node in model.graph.node)
    cause = (f"the camera image itself enters a QuantizeLinear ('{inputs[0]}'): one uint8 scale must cover colour "
             "(0 to 1) and depth in millimetres (500 to 4000), so every colour value rounds to the same level. "
             "Bring depth to the colour's scale in a float op before the first convolution (and keep that op out "
             "of quantization)" if quantized_input else
             "check that the model still takes the camera's images, depth in millimetres, and computes what "
             "`q2_model` computes")
    raise Incorrect(f"every convolution is int8, but on the check's own images the logits follow torch only to a "
                    f"mean cosine of {cosine:.4f} (at least {MIN_MIXED_COSINE} needed): {cause}")


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
        if len(set(timing.seconds)) == 1:
            raise Incorrect(f"`ex3_timings[{key!r}]` holds {len(timing.seconds)} identical durations: no two measured "
                            "calls take exactly the same time. Measure them with measure.time_it")
    own = _own_timings(model)
    for key, timing in ex3_timings.items():
        fastest, own_fastest = 1e3 * min(timing.seconds), 1e3 * min(own[key].seconds)
        ratio = fastest / own_fastest
        if not 1 / TIMING_FACTOR <= ratio <= TIMING_FACTOR:
            raise Incorrect(f"the fastest call in `ex3_timings[{key!r}]` took {fastest:.3g} ms, but the check's own "
                            f"fastest call of a {key} model on `q3_tokens` took {own_fastest:.3g} ms: {ratio:.2g} "
                            "times as long, more than a busy machine explains. Time the {key} file's session.run on "
                            "all of `q3_tokens` with measure.time_it".replace("{key}", key))
    require_type("ex3_speedup", ex3_speedup, float, np.floating)
    ratio = ex3_timings["fp32"].median_ms / ex3_timings["int8"].median_ms
    if not np.isclose(float(ex3_speedup), ratio, rtol=1e-6):
        raise Incorrect(f"`ex3_speedup` is {float(ex3_speedup):.3f}, but your timings give fp32 median / int8 median "
                        f"= {ratio:.3f}")
    calls = f"{len(ex3_timings['fp32'].seconds)} and {len(ex3_timings['int8'].seconds)}"
    return (f"MatMuls in int8 with ranges measured at run time, output within {MAX_DYNAMIC_ERROR:.0%} of torch's on "
            f"an input of another shape; a speed-up computed from the medians of your {calls} timed calls, whose "
            f"fastest calls are within {TIMING_FACTOR:g}x of the check's own timing of such models")


@lru_cache(maxsize=1)
def _fp32_mlp() -> bytes:
    """token_mlp() exported (the legacy exporter: quick), dynamic batch and tokens, as serialized bytes."""
    import io
    import warnings

    import torch

    model, tokens = token_mlp()
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.from_numpy(tokens),), buffer, dynamo=False, input_names=["tokens"],
                          output_names=["features"], dynamic_axes={"tokens": {0: "batch", 1: "tokens"}})
    return buffer.getvalue()


def _own_timings(int8_model: onnx.ModelProto) -> dict[str, Timing]:
    """The check's own timing of an fp32 export of the MLP and of the learner's int8 file, on `q3_tokens`."""
    from ..measure import time_it

    _, tokens = token_mlp()
    timings = {}
    for key, model in (("fp32", onnx.load_from_string(_fp32_mlp())), ("int8", int8_model)):
        session = _session(model, threads=2)
        name = session.get_inputs()[0].name
        timings[key] = time_it(lambda: session.run(None, {name: tokens}), warmup=2, repeat=5)
    return timings


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
        title="An int8 trap in another network, fixed at its cause",
        kind="transfer",
        answers=["ex2_path"],
        check=_check_q2,
        hints=["Measure first, as section 5 did: export `q2_model`, pre-process it, quantize one convolution "
               "(with its Relu) at a time and compare each with fp32 on `q2_test`. One layer stands far above the "
               "others. Then ask what that layer reads: print the range of each channel of `q2_calibration`.",
               "QuantizeLinear gives a whole tensor one scale. The image holds colour in [0, 1] and depth in "
               "millimetres (500 to 4000): with one uint8 step of about 16 for 0..4000, every colour value "
               "rounds to 0. The model must still take millimetres (the camera's unit), but nothing stops it "
               "from converting depth to metres itself, in a float Mul before the first convolution — whose depth "
               "weights then need the factor 1000 back. Quantize only the ops that should be int8 "
               "(op_types_to_quantize), so the Mul and the camera image stay float.",
               "class InMetres(nn.Module) whose forward returns inner(x * scale), scale = [1, 1, 1, 1e-3] shaped "
               "(1, 4, 1, 1) as a buffer; inner = copy.deepcopy(q2_model) with inner[0].weight[:, 3] *= 1000 under "
               "torch.no_grad(). Export it, quant_pre_process, then quantize_static(pre, ex2_path, reader, "
               "quant_format=QuantFormat.QDQ, per_channel=True, op_types_to_quantize=['Conv', 'Relu', 'Gemm'])."],
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

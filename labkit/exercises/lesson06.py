"""Exercises of Lesson 06 (CPU performance): session knobs, a layer kept in float in a dynamic model, a measured loss."""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import onnx

from .checks import require_onnx_file, require_ops, require_type
from .core import Exercise, Incorrect, bind

__all__ = ["q1", "q2", "q3"]

# The lesson's target: an int8 SRCNN loses at most this much PSNR (dB) against fp32 on the test photo.
MAX_LOSS_DB = 0.2
# How closely a learner's own PSNR figure must match the check's measurement (dB).
LOSS_TOLERANCE_DB = 0.02


def _check_q1(ex1_session) -> str:
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
    if names != ["lr"]:
        raise Incorrect(f"`ex1_session` has inputs {names}; build it from the fp32 SRCNN (`srcnn_path`), input 'lr'")
    return "1 intra-op thread, level ORT_ENABLE_EXTENDED, on the CPU, for SRCNN"




@lru_cache(maxsize=1)
def _reference() -> tuple[np.ndarray, np.ndarray, float]:
    """The test photo's low-resolution input, the photo itself, and fp32 SRCNN x3's PSNR on it (from PyTorch)."""
    import torch

    from .. import srcnn
    from ..images import load_image
    from ..paths import data_path

    truth = srcnn.to_tensor(srcnn.crop_to_multiple(load_image(data_path(f"images/{srcnn.HELD_OUT[0]}"))))
    low = srcnn.downscale(truth, 3)
    with torch.no_grad():
        restored = srcnn.load_srcnn(3)(low)
    truth_image = srcnn.to_image(truth)
    return low.numpy(), truth_image, srcnn.luma_psnr(truth_image, srcnn.to_image(restored), border=3)


def _psnr_loss(model: onnx.ModelProto) -> float:
    """fp32 SRCNN's PSNR minus `model`'s, on the test photo (the lesson's section 6 measurement)."""
    import onnxruntime as ort

    from .. import srcnn

    low, truth_image, fp32_psnr = _reference()
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    if [i.name for i in session.get_inputs()] != ["lr"]:
        raise Incorrect("the model's input should be 'lr': quantize the lesson's SRCNN (`srcnn_pre`)")
    output = session.run(None, {"lr": low})[0]
    if output.shape[-2:] != truth_image.shape[:2]:
        raise Incorrect(f"the model turns a {low.shape} input into {output.shape}; SRCNN x3 gives "
                        f"{truth_image.shape[:2]}: quantize the lesson's SRCNN (`srcnn_pre`)")
    return fp32_psnr - srcnn.luma_psnr(truth_image, srcnn.to_image(output), border=3)


def _conv_kinds(model: onnx.ModelProto) -> list[tuple[str, str]]:
    """(name, kind) of every convolution in graph order; kind is 'float', 'qdq' (int8 weight) or 'integer'."""
    producers = {out: node for node in model.graph.node for out in node.output}
    kinds = []
    for node in model.graph.node:
        if node.op_type == "ConvInteger":  # quantize_dynamic renames the node '<name>_quant'
            kinds.append((node.name.removesuffix("_quant"), "integer"))
        elif node.op_type == "Conv":
            weight = producers.get(node.input[1])
            kinds.append((node.name, "qdq" if weight is not None and weight.op_type == "DequantizeLinear" else "float"))
    return kinds


def _require_first_conv_float(model: onnx.ModelProto, quantized: str) -> list[tuple[str, str]]:
    kinds = _conv_kinds(model)
    if len(kinds) != 3:
        raise Incorrect(f"expected SRCNN's 3 convolutions, found {len(kinds)}: quantize the lesson's SRCNN (`srcnn_pre`)")
    (first, first_kind), rest = kinds[0], kinds[1:]
    if first_kind != "float":
        raise Incorrect(f"the first convolution ({first!r}) is quantized: keep it in float with "
                        "nodes_to_exclude=sensitive")
    still_float = [name for name, kind in rest if kind != quantized]
    if still_float:
        raise Incorrect(f"{still_float} stayed in float too: exclude only the layers in `sensitive`")
    return kinds


def _check_q2(ex2_path) -> str:
    model = require_onnx_file("ex2_path", ex2_path)
    if not any(node.op_type == "DynamicQuantizeLinear" for node in model.graph.node):
        ops = sorted({node.op_type for node in model.graph.node})
        raise Incorrect(f"no DynamicQuantizeLinear node (ops: {', '.join(ops)}): use quantize_dynamic, not quantize_static")
    _require_first_conv_float(model, "integer")
    loss = _psnr_loss(model)
    if loss > MAX_LOSS_DB:
        raise Incorrect(f"it loses {loss:.2f} dB against fp32 on the test photo (target <= {MAX_LOSS_DB} dB)")
    return f"first convolution in float, the other two ConvInteger, within {MAX_LOSS_DB} dB of fp32"




def _check_q3(ex3_path, ex3_loss) -> str:
    model = require_onnx_file("ex3_path", ex3_path)
    require_ops(model, "QuantizeLinear", "DequantizeLinear")
    _require_first_conv_float(model, "qdq")
    _require_per_channel(model)
    loss = _psnr_loss(model)
    require_type("ex3_loss", ex3_loss, float, np.floating)
    if not abs(float(ex3_loss) - loss) <= LOSS_TOLERANCE_DB:
        raise Incorrect(f"`ex3_loss` is {float(ex3_loss):.3f} dB, but the model loses {loss:.3f} dB against fp32: "
                        "fp32 PSNR minus the int8 model's, both with sr_psnr on the test photo")
    if loss > MAX_LOSS_DB:
        raise Incorrect(f"it loses {loss:.2f} dB against fp32 (target <= {MAX_LOSS_DB} dB)")
    return f"first convolution in float, QDQ per-channel elsewhere, within {MAX_LOSS_DB} dB of fp32, loss measured right"




def _require_per_channel(model: onnx.ModelProto) -> None:
    """Every int8 convolution weight has one scale per output channel."""
    initializers = {init.name: init for init in model.graph.initializer}
    producers = {out: node for node in model.graph.node for out in node.output}
    for node in model.graph.node:
        if node.op_type != "Conv":
            continue
        dequantize = producers.get(node.input[1])
        if dequantize is None or dequantize.op_type != "DequantizeLinear":
            continue
        scale = initializers.get(dequantize.input[1])
        if scale is None or len(scale.dims) != 1 or scale.dims[0] <= 1:
            raise Incorrect(f"the weight of {node.name!r} has one scale for all channels: pass per_channel=True")


q1, q2, q3 = bind('06_cpu_performance', [
    Exercise(
        title='TODO title',
        answers=['ex1_session'],
        check=_check_q1,
        hints=["Every knob lives on an onnxruntime.SessionOptions object, passed as sess_options=...",
           "options.intra_op_num_threads and options.graph_optimization_level "
           "(ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED)."],
    ),
    Exercise(
        title='TODO title',
        answers=['ex2_path'],
        check=_check_q2,
        hints=["quantize_dynamic takes the same nodes_to_exclude=[...] list of node names as quantize_static.",
           "quantize_dynamic(srcnn_pre, ex2_path, weight_type=QuantType.QInt8, nodes_to_exclude=sensitive)"],
    ),
    Exercise(
        title='TODO title',
        answers=['ex3_path', 'ex3_loss'],
        check=_check_q3,
        hints=["quantize_static(..., calibrate_method=CalibrationMethod.Percentile, nodes_to_exclude=sensitive)",
           "labkit.run_onnx(ex3_path, lr)['sr'] gives the output; sr_psnr(output) its PSNR; "
           "subtract it from psnr['ORT fp32']."],
    ),
])

"""Lesson 06's exercises: the right answers are Correct, plausible wrong ones Incorrect with the reason."""
import copy
import functools
import io
import tempfile
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType, quant_pre_process,
                                      quantize_dynamic, quantize_static)

from labkit import measure
from labkit.exercises.lesson06 import q1, q2, q3, token_mlp, trap_cnn
from wrong_answers import WrongAnswer, assert_rejected, params


class Reader(CalibrationDataReader):
    def __init__(self, name, images, batch=8):
        self.batches = iter([{name: images[i:i + batch]} for i in range(0, len(images), batch)])

    def get_next(self):
        return next(self.batches, None)


@functools.lru_cache(maxsize=None)
def _folder() -> Path:
    return Path(tempfile.mkdtemp(prefix="lesson06_answers_"))


def _export(model, example, path, input_name, output_name, dynamic):
    """The legacy exporter: quick, and the checks do not depend on which exporter made the file."""
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (example,), buffer, dynamo=False, input_names=[input_name],
                          output_names=[output_name], dynamic_axes={input_name: dynamic, output_name: {0: "batch"}})
    path.write_bytes(buffer.getvalue())
    return path


def _session(path, threads=1, level=ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED):
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.graph_optimization_level = level
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


# --------------------------------------------------------------------------- q1

@functools.lru_cache(maxsize=None)
def classifier():
    """A tiny stand-in for the lesson's fp32 EfficientNet (input 'image', 1000 logits), an int8 copy, another model."""
    folder = _folder()
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                                torch.nn.Flatten(), torch.nn.Linear(8, 1000)).eval()
    fp32 = _export(model, torch.rand(2, 3, 16, 16), folder / "classifier.onnx", "image", "logits", {0: "batch"})
    int8 = folder / "classifier_int8.onnx"
    quantize_static(fp32, int8, Reader("image", np.random.default_rng(0).random((16, 3, 16, 16), dtype=np.float32)),
                    quant_format=QuantFormat.QDQ, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    other = _export(torch.nn.Linear(4, 2).eval(), torch.rand(2, 4), folder / "other.onnx", "x", "y", {0: "batch"})
    return {"fp32": fp32, "int8": int8, "other": other}


def _q1(session):
    return lambda tmp: {"ex1_session": session(), "onnx_path": classifier()["fp32"]}


def test_q1_the_lessons_solution_is_correct_on_a_stand_in_model():
    """The notebook's solution text (what q1.solution() shows), with `onnx_path` the stand-in's fp32 file."""
    kernel = {"q1": q1, "ort": ort, "onnx_path": classifier()["fp32"]}
    exec(q1.solution().body, kernel)
    exec("outcome = q1.check()", kernel)
    assert kernel["outcome"], repr(kernel["outcome"])


# --------------------------------------------------------------------------- q2

class InMetres(torch.nn.Module):
    """The fix at the cause: the model takes millimetres and converts depth to metres in a float Mul."""

    def __init__(self, inner):
        super().__init__()
        self.register_buffer("scale", torch.tensor([1.0, 1.0, 1.0, 1e-3]).reshape(1, 4, 1, 1))
        self.inner = inner

    def forward(self, x):
        return self.inner(x * self.scale)


def _metres_inside(model):
    inner = copy.deepcopy(model)
    with torch.no_grad():
        inner[0].weight[:, 3] *= 1000.0
    return inner.eval()


@functools.lru_cache(maxsize=None)
def trap():
    """trap_cnn() exported and pre-processed, as it is and with the unit fixed inside; quantize(...) builds a file."""
    folder = _folder()
    model, calibration, test = trap_cnn()
    example = torch.from_numpy(test[:2])
    pre = {}
    for name, network in [("plain", model), ("in_metres", InMetres(_metres_inside(model)).eval()),
                          ("takes_metres", _metres_inside(model))]:
        fp32 = _export(network, example, folder / f"trap_{name}.onnx", "image", "logits", {0: "batch"})
        pre[name] = folder / f"trap_{name}_pre.onnx"
        quant_pre_process(fp32, pre[name], skip_symbolic_shape=True)
    metres = calibration.copy()
    metres[:, 3] /= 1000.0

    def quantize(source, name, images=calibration, **options):
        path = folder / name
        quantize_static(pre[source], path, Reader("image", images), quant_format=QuantFormat.QDQ,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        **{"per_channel": True, **options})
        return path

    convs = [node.name for node in onnx.load(pre["plain"]).graph.node if node.op_type == "Conv"]
    return {"pre": pre, "convs": convs, "quantize": quantize, "metres": metres}


def _q2(build):
    return lambda tmp: {"ex2_path": build(trap())}


def test_q2_the_unit_fixed_inside_the_model_with_every_conv_int8_is_correct():
    path = trap()["quantize"]("in_metres", "fixed.onnx", op_types_to_quantize=["Conv", "Relu", "Gemm"])
    outcome = q2.check(ex2_path=path)
    assert outcome, repr(outcome)


# --------------------------------------------------------------------------- q3

@functools.lru_cache(maxsize=None)
def mlp():
    """token_mlp() exported with dynamic batch and tokens, its dynamic int8 copy, and fresh timings of both."""
    folder = _folder()
    model, tokens = token_mlp()
    fp32 = _export(model, torch.from_numpy(tokens), folder / "mlp.onnx", "tokens", "features",
                   {0: "batch", 1: "tokens"})
    int8 = folder / "mlp_int8.onnx"
    quantize_dynamic(fp32, int8, weight_type=QuantType.QInt8)
    timings = {}
    for name, path in [("fp32", fp32), ("int8", int8)]:
        session = _session(path, threads=2)
        timings[name] = measure.time_it(lambda: session.run(None, {"tokens": tokens}), warmup=2, repeat=5)
    return {"fp32": fp32, "int8": int8, "tokens": tokens, "timings": timings}


def _speedup(timings):
    return timings["fp32"].median_ms / timings["int8"].median_ms


def _q3(path="int8", timings=None, speedup=None):
    def make(tmp):
        files = mlp()
        chosen = timings(files) if timings else files["timings"]
        return {"ex3_path": files[path] if path in files else path(files), "ex3_timings": chosen,
                "ex3_speedup": speedup(chosen) if speedup else _speedup(chosen)}
    return make


def _static_mlp(files):
    path = _folder() / "mlp_static.onnx"
    quantize_static(files["fp32"], path, Reader("tokens", files["tokens"], batch=4), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    return path


def _one_call(files):
    session = _session(files["int8"])
    return {"fp32": files["timings"]["fp32"],
            "int8": measure.time_it(lambda: session.run(None, {"tokens": files["tokens"]}), warmup=0, repeat=1)}


def _empty_calls(files):
    """time_it around a lambda that builds nothing and runs nothing."""
    return {key: measure.time_it(lambda: None, repeat=5) for key in ("fp32", "int8")}


MADE_UP = {"fp32": measure.Timing((0.2, 0.2, 0.2, 0.2, 0.2)), "int8": measure.Timing((0.1, 0.1, 0.1, 0.1, 0.1))}
MADE_UP_SPREAD = {"fp32": measure.Timing((0.21, 0.2, 0.19, 0.2, 0.22)),
                  "int8": measure.Timing((0.1, 0.11, 0.09, 0.1, 0.1))}


def test_q3_accepts_dynamic_int8_with_measured_timings_and_does_not_claim_a_warm_up():
    outcome = q3.check(**_q3()(None))
    assert outcome, repr(outcome)
    assert "warmed-up" not in outcome.message  # the check cannot see warm-up calls, so it does not claim them


# --------------------------------------------------------------------------- the catalogue

WRONG_ANSWERS = [
    WrongAnswer(q1, "a path instead of a session", lambda tmp: {"ex1_session": str(classifier()["fp32"]),
                                                               "onnx_path": classifier()["fp32"]},
                fault="should be a InferenceSession"),
    WrongAnswer(q1, "two threads", _q1(lambda: _session(classifier()["fp32"], threads=2)),
                fault="intra_op_num_threads=2"),
    WrongAnswer(q1, "the default level 'all'",
                _q1(lambda: _session(classifier()["fp32"], level=ort.GraphOptimizationLevel.ORT_ENABLE_ALL)),
                fault="ORT_ENABLE_ALL; it should be ORT_ENABLE_EXTENDED"),
    WrongAnswer(q1, "another model's session", _q1(lambda: _session(classifier()["other"])),
                fault="build it from the fp32 EfficientNet"),
    WrongAnswer(q1, "the int8 model's session", _q1(lambda: _session(classifier()["int8"])),
                fault="not from a quantized one"),
    WrongAnswer(q2, "every layer int8, nothing fixed", _q2(lambda t: t["quantize"]("plain", "all_int8.onnx")),
                fault="enters a QuantizeLinear"),
    WrongAnswer(q2, "section 5's fix: the sensitive layer kept in float",
                _q2(lambda t: t["quantize"]("plain", "excluded.onnx", nodes_to_exclude=[t["convs"][0]])),
                fault="stayed in float"),
    WrongAnswer(q2, "the unit fixed, but the camera image still quantized",
                _q2(lambda t: t["quantize"]("in_metres", "mul_quantized.onnx")), fault="enters a QuantizeLinear"),
    WrongAnswer(q2, "a model that takes metres (the data rescaled, not the model)",
                _q2(lambda t: t["quantize"]("takes_metres", "takes_metres.onnx", images=t["metres"])),
                fault="depth given in metres"),
    WrongAnswer(q2, "the fp32 file", _q2(lambda t: t["pre"]["plain"]), fault="4 convolution(s) stayed in float"),
    WrongAnswer(q3, "the fp32 file", _q3(path="fp32"), fault="has no integer matmul"),
    WrongAnswer(q3, "static int8", _q3(path=_static_mlp), fault="it was quantized statically"),
    WrongAnswer(q3, "the inverse ratio", _q3(speedup=lambda t: 1 / _speedup(t)),
                fault="but your timings give fp32 median / int8 median"),
    WrongAnswer(q3, "a single timed call", _q3(timings=_one_call), fault="has 1 timed calls"),
    WrongAnswer(q3, "timings under other names",
                _q3(timings=lambda f: {"float": f["timings"]["fp32"], "int8": f["timings"]["int8"]}, speedup=lambda t: 1.0),
                fault="it should have 'fp32' and 'int8'"),
    WrongAnswer(q3, "made-up timings, all equal", _q3(timings=lambda f: MADE_UP), fault="identical durations"),
    WrongAnswer(q3, "made-up timings with a spread", _q3(timings=lambda f: MADE_UP_SPREAD),
                fault="more than a busy machine explains"),
    WrongAnswer(q3, "a lambda that runs nothing, timed", _q3(timings=_empty_calls),
                fault="more than a busy machine explains"),
]


@pytest.mark.parametrize("wrong", params(WRONG_ANSWERS))
def test_wrong_answer_is_rejected_naming_its_fault(wrong, tmp_path):
    assert_rejected(wrong, tmp_path)



"""Lesson 06's exercises: the right answers are Correct, plausible wrong ones Incorrect with the reason."""
import io
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType, quant_pre_process,
                                      quantize_dynamic, quantize_static)

from labkit import measure
from labkit.exercises.lesson06 import q1, q2, q3, token_mlp, trap_cnn


class Reader(CalibrationDataReader):
    def __init__(self, name, images, batch=8):
        self.batches = iter([{name: images[i:i + batch]} for i in range(0, len(images), batch)])

    def get_next(self):
        return next(self.batches, None)


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

@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    """A tiny stand-in for the lesson's fp32 EfficientNet: input 'image', 1000 logits; and an int8 copy of it."""
    folder = tmp_path_factory.mktemp("lesson06_q1")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                                torch.nn.Flatten(), torch.nn.Linear(8, 1000)).eval()
    fp32 = _export(model, torch.rand(2, 3, 16, 16), folder / "classifier.onnx", "image", "logits", {0: "batch"})
    int8 = folder / "classifier_int8.onnx"
    quantize_static(fp32, int8, Reader("image", np.random.default_rng(0).random((16, 3, 16, 16), dtype=np.float32)),
                    quant_format=QuantFormat.QDQ, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    return {"fp32": fp32, "int8": int8}


def test_q1_not_attempted_without_the_variable(classifier):
    assert repr(q1.check(onnx_path=classifier["fp32"])).startswith("Not attempted (Exercise 1 — Knobs on one session): "
                                                                    "set `ex1_session`")


def test_q1_without_the_lessons_model_asks_to_run_the_cells_above(classifier):
    outcome = q1.check(ex1_session=_session(classifier["fp32"]))
    assert not outcome and "`onnx_path` comes from the lesson's cells above" in repr(outcome)


def test_q1_a_path_instead_of_a_session_is_incorrect(classifier):
    outcome = q1.check(ex1_session=str(classifier["fp32"]), onnx_path=classifier["fp32"])
    assert not outcome and "`ex1_session` should be a InferenceSession" in repr(outcome)


def test_q1_two_threads_are_incorrect(classifier):
    outcome = q1.check(ex1_session=_session(classifier["fp32"], threads=2), onnx_path=classifier["fp32"])
    assert not outcome and "intra_op_num_threads=2" in repr(outcome)


def test_q1_the_default_level_is_incorrect(classifier):
    outcome = q1.check(ex1_session=_session(classifier["fp32"], level=ort.GraphOptimizationLevel.ORT_ENABLE_ALL),
                       onnx_path=classifier["fp32"])
    assert not outcome and "ORT_ENABLE_ALL; it should be ORT_ENABLE_EXTENDED" in repr(outcome)


def test_q1_another_model_is_incorrect(affine_path, classifier):
    outcome = q1.check(ex1_session=_session(affine_path), onnx_path=classifier["fp32"])
    assert not outcome and "build it from the fp32 EfficientNet" in repr(outcome)


def test_q1_a_quantized_model_is_incorrect(classifier):
    outcome = q1.check(ex1_session=_session(classifier["int8"]), onnx_path=classifier["fp32"])
    assert not outcome and "not from a quantized one" in repr(outcome)


def test_q1_the_solution_is_correct(classifier):
    outcome = q1.check(ex1_session=_session(classifier["fp32"]), onnx_path=classifier["fp32"])
    assert outcome, repr(outcome)


# --------------------------------------------------------------------------- q2

@pytest.fixture(scope="module")
def trap(tmp_path_factory):
    """trap_cnn() exported and pre-processed, its conv names, and a quantize(name, **options) helper."""
    folder = tmp_path_factory.mktemp("lesson06_q2")
    model, calibration, test = trap_cnn()
    fp32 = _export(model, torch.from_numpy(test[:2]), folder / "trap.onnx", "image", "logits", {0: "batch"})
    pre = folder / "trap_pre.onnx"
    quant_pre_process(fp32, pre, skip_symbolic_shape=True)
    convs = [node.name for node in onnx.load(pre).graph.node if node.op_type == "Conv"]
    ranges = folder / "ranges.json"

    def quantize(name, **options):
        path = folder / name
        quantize_static(pre, path, Reader("image", calibration), quant_format=QuantFormat.QDQ,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibration_cache_path=ranges, **{"per_channel": True, **options})
        return path

    return {"convs": convs, "quantize": quantize}


def test_q2_not_attempted_without_the_variables():
    assert repr(q2.check()).startswith("Not attempted (Exercise 2 — The layer int8 breaks, in another network): set "
                                       "`ex2_layer`, `ex2_path`")


def test_q2_every_layer_in_int8_is_incorrect(trap):
    path = trap["quantize"]("all_int8.onnx")
    outcome = q2.check(ex2_layer=trap["convs"][0], ex2_path=path)
    assert not outcome and "every convolution in `ex2_path` is int8" in repr(outcome)


def test_q2_another_layer_in_float_is_incorrect(trap):
    path = trap["quantize"]("wrong_layer.onnx", nodes_to_exclude=[trap["convs"][2]])
    outcome = q2.check(ex2_layer=trap["convs"][2], ex2_path=path)
    assert not outcome and "is not the layer whose int8 version costs most" in repr(outcome)


def test_q2_two_layers_in_float_are_incorrect(trap):
    path = trap["quantize"]("two_float.onnx", nodes_to_exclude=trap["convs"][:2])
    outcome = q2.check(ex2_layer=trap["convs"][0], ex2_path=path)
    assert not outcome and "2 convolutions stayed in float" in repr(outcome)


def test_q2_a_name_that_is_not_the_float_layer_is_incorrect(trap):
    path = trap["quantize"]("mixed_for_name.onnx", nodes_to_exclude=[trap["convs"][0]])
    outcome = q2.check(ex2_layer=trap["convs"][1], ex2_path=path)
    assert not outcome and "the convolution kept in float in `ex2_path` is" in repr(outcome)


def test_q2_the_solution_is_correct(trap):
    path = trap["quantize"]("mixed.onnx", nodes_to_exclude=[trap["convs"][0]])
    outcome = q2.check(ex2_layer=trap["convs"][0], ex2_path=path)
    assert outcome, repr(outcome)


# --------------------------------------------------------------------------- q3

@pytest.fixture(scope="module")
def mlp(tmp_path_factory):
    """token_mlp() exported with dynamic batch and tokens, its dynamic int8 copy, and fresh timings of both."""
    folder = tmp_path_factory.mktemp("lesson06_q3")
    model, tokens = token_mlp()
    fp32 = _export(model, torch.from_numpy(tokens), folder / "mlp.onnx", "tokens", "features",
                   {0: "batch", 1: "tokens"})
    int8 = folder / "mlp_int8.onnx"
    quantize_dynamic(fp32, int8, weight_type=QuantType.QInt8)
    timings = {}
    for name, path in [("fp32", fp32), ("int8", int8)]:
        session = _session(path)
        timings[name] = measure.time_it(lambda: session.run(None, {"tokens": tokens}), warmup=1, repeat=5)
    return {"folder": folder, "fp32": fp32, "int8": int8, "tokens": tokens, "timings": timings}


def _speedup(timings):
    return timings["fp32"].median_ms / timings["int8"].median_ms


def test_q3_not_attempted_without_the_variables(mlp):
    assert repr(q3.check(ex3_path=mlp["int8"])).startswith("Not attempted (Exercise 3 — Dynamic int8 where it is meant "
                                                           "to pay): set `ex3_timings`, `ex3_speedup`")


def test_q3_the_fp32_file_is_incorrect(mlp):
    outcome = q3.check(ex3_path=mlp["fp32"], ex3_timings=mlp["timings"], ex3_speedup=_speedup(mlp["timings"]))
    assert not outcome and "has no integer matmul" in repr(outcome)


def test_q3_a_static_model_is_incorrect(mlp):
    path = mlp["folder"] / "mlp_static.onnx"
    quantize_static(mlp["fp32"], path, Reader("tokens", mlp["tokens"], batch=4), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    outcome = q3.check(ex3_path=path, ex3_timings=mlp["timings"], ex3_speedup=_speedup(mlp["timings"]))
    assert not outcome and "it was quantized statically" in repr(outcome)


def test_q3_the_inverse_ratio_is_incorrect(mlp):
    outcome = q3.check(ex3_path=mlp["int8"], ex3_timings=mlp["timings"], ex3_speedup=1 / _speedup(mlp["timings"]))
    assert not outcome and "but your timings give fp32 median / int8 median" in repr(outcome)


def test_q3_a_single_timed_call_is_incorrect(mlp):
    session = _session(mlp["int8"])
    once = measure.time_it(lambda: session.run(None, {"tokens": mlp["tokens"]}), warmup=0, repeat=1)
    timings = {"fp32": mlp["timings"]["fp32"], "int8": once}
    outcome = q3.check(ex3_path=mlp["int8"], ex3_timings=timings, ex3_speedup=_speedup(timings))
    assert not outcome and "has 1 timed calls" in repr(outcome)


def test_q3_timings_under_other_names_are_incorrect(mlp):
    timings = {"float": mlp["timings"]["fp32"], "int8": mlp["timings"]["int8"]}
    outcome = q3.check(ex3_path=mlp["int8"], ex3_timings=timings, ex3_speedup=1.0)
    assert not outcome and "it should have 'fp32' and 'int8'" in repr(outcome)


def test_q3_the_solution_is_correct(mlp):
    outcome = q3.check(ex3_path=mlp["int8"], ex3_timings=mlp["timings"], ex3_speedup=_speedup(mlp["timings"]))
    assert outcome, repr(outcome)

"""Lesson 06's exercises: the right answers are Correct, wrong ones Incorrect with the reason."""
import io
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                      quant_pre_process, quantize_dynamic, quantize_static)

import labkit
from labkit import srcnn
from labkit.exercises.lesson06 import _reference, q1, q2, q3

CALIB_PHOTOS = ["brick.jpg", "chelsea.jpg", "coffee.jpg", "grass.jpg"]


class Reader(CalibrationDataReader):
    def __init__(self, images):
        self.batches = iter([{"lr": images}])

    def get_next(self):
        return next(self.batches, None)


def _tile(name, size=48):
    low = srcnn.downscale(srcnn.to_tensor(srcnn.crop_to_multiple(labkit.load_image(labkit.data_path(f"images/{name}")))), 3)
    top, left = (low.shape[2] - size) // 2, (low.shape[3] - size) // 2
    return low[:, :, top:top + size, left:left + size].numpy()


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """The lesson's SRCNN x3 (fp32 and pre-processed), calibration tiles, and the name of its first Conv."""
    folder = tmp_path_factory.mktemp("lesson06")
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(srcnn.load_srcnn(3), (torch.rand(1, 3, 16, 16),), buffer, dynamo=False,
                          input_names=["lr"], output_names=["sr"], dynamic_axes={"lr": {0: "batch", 2: "h", 3: "w"}})
    fp32 = folder / "srcnn.onnx"
    fp32.write_bytes(buffer.getvalue())
    pre = folder / "srcnn_pre.onnx"
    quant_pre_process(fp32, pre)
    first = next(node.name for node in onnx.load(pre).graph.node if node.op_type == "Conv")
    calib = np.concatenate([_tile(name) for name in CALIB_PHOTOS])
    return {"folder": folder, "fp32": fp32, "pre": pre, "first": first, "calib": calib}


def _static(models, name, **options):
    path = models["folder"] / name
    settings = dict(quant_format=QuantFormat.QDQ, per_channel=True, activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8)
    settings.update(options)
    quantize_static(models["pre"], path, Reader(models["calib"]), **settings)
    return path


def _measured_loss(path):
    low, truth_image, fp32_psnr = _reference()
    output = labkit.run_onnx(path, low)["sr"]
    return fp32_psnr - srcnn.luma_psnr(truth_image, srcnn.to_image(output), border=3)


def _session(path, threads=1, level=ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED):
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.graph_optimization_level = level
    return ort.InferenceSession(path, sess_options=options, providers=["CPUExecutionProvider"])


# --------------------------------------------------------------------------- q1

def test_q1_not_attempted_without_the_variable():
    assert repr(q1.check()).startswith("Not attempted (Exercise 1): set `ex1_session`")


def test_q1_a_path_instead_of_a_session_is_incorrect(models):
    assert "`ex1_session` should be a InferenceSession" in repr(q1.check(ex1_session=str(models["fp32"])))


def test_q1_two_threads_are_incorrect(models):
    outcome = q1.check(ex1_session=_session(str(models["fp32"]), threads=2))
    assert not outcome and "intra_op_num_threads=2" in repr(outcome)


def test_q1_the_default_level_is_incorrect(models):
    outcome = q1.check(ex1_session=_session(str(models["fp32"]), level=ort.GraphOptimizationLevel.ORT_ENABLE_ALL))
    assert not outcome and "ORT_ENABLE_ALL; it should be ORT_ENABLE_EXTENDED" in repr(outcome)


def test_q1_another_model_is_incorrect(affine_path):
    outcome = q1.check(ex1_session=_session(str(affine_path)))
    assert not outcome and "build it from the fp32 SRCNN" in repr(outcome)


def test_q1_the_solution_is_correct(models):
    assert q1.check(ex1_session=_session(str(models["fp32"])))


# --------------------------------------------------------------------------- q2

def test_q2_a_static_model_is_incorrect(models):
    path = _static(models, "static_mixed.onnx", nodes_to_exclude=[models["first"]])
    assert "use quantize_dynamic, not quantize_static" in repr(q2.check(ex2_path=path))


def test_q2_quantizing_every_layer_is_incorrect(models):
    path = models["folder"] / "dynamic_all.onnx"
    quantize_dynamic(models["pre"], path, weight_type=QuantType.QInt8)
    outcome = q2.check(ex2_path=path)
    assert not outcome and f"the first convolution ({models['first']!r}) is quantized" in repr(outcome)


def test_q2_excluding_more_than_the_sensitive_layer_is_incorrect(models):
    convs = [n.name for n in onnx.load(models["pre"]).graph.node if n.op_type == "Conv"]
    path = models["folder"] / "dynamic_two_float.onnx"
    quantize_dynamic(models["pre"], path, weight_type=QuantType.QInt8, nodes_to_exclude=convs[:2])
    assert "stayed in float too" in repr(q2.check(ex2_path=path))


def test_q2_a_missing_file_is_incorrect(tmp_path):
    assert "no such file exists" in repr(q2.check(ex2_path=tmp_path / "none.onnx"))


def test_q2_the_solution_is_correct(models):
    path = models["folder"] / "dynamic_mixed.onnx"
    quantize_dynamic(models["pre"], path, weight_type=QuantType.QInt8, nodes_to_exclude=[models["first"]])
    assert q2.check(ex2_path=path)


# --------------------------------------------------------------------------- q3

@pytest.fixture(scope="module")
def percentile_mixed(models):
    return _static(models, "percentile_mixed.onnx", calibrate_method=CalibrationMethod.Percentile,
                   nodes_to_exclude=[models["first"]])


def test_q3_needs_both_variables(percentile_mixed):
    assert repr(q3.check(ex3_path=percentile_mixed)).startswith("Not attempted (Exercise 3): set `ex3_loss`")


def test_q3_a_wrong_loss_figure_is_incorrect(percentile_mixed):
    loss = _measured_loss(percentile_mixed)
    outcome = q3.check(ex3_path=percentile_mixed, ex3_loss=loss + 0.5)
    assert not outcome and "but the model loses" in repr(outcome)


def test_q3_the_sign_of_the_loss_matters(percentile_mixed):
    loss = _measured_loss(percentile_mixed)
    if abs(loss) > 0.01:  # a loss of ~0 dB cannot tell the two signs apart
        assert not q3.check(ex3_path=percentile_mixed, ex3_loss=-loss)


def test_q3_per_tensor_weights_are_incorrect(models):
    path = _static(models, "per_tensor_mixed.onnx", per_channel=False, nodes_to_exclude=[models["first"]])
    assert "one scale for all channels: pass per_channel=True" in repr(q3.check(ex3_path=path, ex3_loss=0.0))


def test_q3_the_first_layer_in_int8_is_incorrect(models):
    path = _static(models, "all_int8.onnx")
    assert "is quantized: keep it in float" in repr(q3.check(ex3_path=path, ex3_loss=_measured_loss(path)))


def test_q3_the_solution_is_correct(percentile_mixed):
    assert q3.check(ex3_path=percentile_mixed, ex3_loss=_measured_loss(percentile_mixed))

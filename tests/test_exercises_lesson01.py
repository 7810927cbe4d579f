"""Lesson 01's exercises: right answers Correct, wrong ones Incorrect with the reason, missing ones Not attempted.

A tiny stand-in for the trained classifier (same signature: [N, 3, 224, 224] -> [N, 1000], and not
mirror-symmetric) keeps the exports fast; the preprocessing exercise runs on the shipped photos.
"""
from __future__ import annotations

import warnings

import cv2
import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

from labkit import imagenet
from labkit.exercises.core import CORRECT, INCORRECT, NOT_ATTEMPTED
from labkit.exercises.lesson01 import q1, q2, q3, q4

NAMES = ["astronaut", "chelsea", "coffee", "rocket", "retina"]


@pytest.fixture(autouse=True)
def _quiet_exporters():
    with warnings.catch_warnings():  # the legacy exporter's DeprecationWarning is not under test
        warnings.simplefilter("ignore")
        yield


def _stand_in(seed: int) -> torch.nn.Module:
    """Averages the left and right halves of each channel, then a Linear: mirroring changes its logits."""
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d((1, 2)), torch.nn.Flatten(),
                               torch.nn.Linear(6, 1000)).eval()


@pytest.fixture(scope="module")
def classifier():
    return _stand_in(0)


@pytest.fixture(scope="module")
def photo_batch():
    ramp = np.linspace(-2, 2, 224, dtype=np.float32)  # left and right differ, so mirroring matters
    noise = np.random.default_rng(0).standard_normal((len(NAMES), 3, 224, 224), dtype=np.float32)
    return noise + ramp * np.arange(1, len(NAMES) + 1, dtype=np.float32)[:, None, None, None]


def _logits(model, batch):
    with torch.no_grad():
        return model(torch.from_numpy(np.ascontiguousarray(batch))).numpy()


def _top3(logits):
    labels = imagenet.categories()
    return {name: [labels[k] for k in np.argsort(-row)[:3]] for name, row in zip(NAMES, logits)}


# --- q1: the top-3 of the mirrored photos ------------------------------------------------------------

def _q1(answer, classifier, photo_batch):
    return q1.check(ex1_top3=answer, classifier=classifier, photo_batch=photo_batch, photo_names=NAMES)


def test_q1_the_mirrored_top3_is_correct(classifier, photo_batch):
    outcome = _q1(_top3(_logits(classifier, photo_batch[..., ::-1])), classifier, photo_batch)
    assert outcome.status == CORRECT, repr(outcome)
    assert f"all {len(NAMES)} mirrored photos" in outcome.message


def test_q1_not_attempted_without_ex1_top3(classifier, photo_batch):
    outcome = q1.check(classifier=classifier, photo_batch=photo_batch, photo_names=NAMES)
    assert outcome.status == NOT_ATTEMPTED and "set `ex1_top3`" in outcome.message


def test_q1_without_the_lessons_cells_asks_to_run_them():
    scope = {"q1": q1}  # a fresh kernel: the learner's answer exists, the lesson's cells never ran
    exec("outcome = q1.check(ex1_top3={})", scope)
    outcome = scope["outcome"]
    assert outcome.status == NOT_ATTEMPTED and "run them first" in outcome.message
    assert "`classifier`, `photo_batch`, `photo_names`" in outcome.message


def test_q1_the_photos_as_they_are_are_incorrect(classifier, photo_batch):
    outcome = _q1(_top3(_logits(classifier, photo_batch)), classifier, photo_batch)
    assert outcome.status == INCORRECT and "top-3 of the photo as it is" in outcome.message


def test_q1_worst_first_is_incorrect(classifier, photo_batch):
    answer = {name: row[::-1] for name, row in _top3(_logits(classifier, photo_batch[..., ::-1])).items()}
    outcome = _q1(answer, classifier, photo_batch)
    assert outcome.status == INCORRECT and "best first" in outcome.message


def test_q1_class_indices_are_incorrect(classifier, photo_batch):
    logits = _logits(classifier, photo_batch[..., ::-1])
    answer = {name: list(np.argsort(-row)[:3]) for name, row in zip(NAMES, logits)}
    outcome = _q1(answer, classifier, photo_batch)
    assert outcome.status == INCORRECT and "holds class indices" in outcome.message


def test_q1_a_missing_photo_is_incorrect(classifier, photo_batch):
    answer = _top3(_logits(classifier, photo_batch[..., ::-1]))
    del answer["chelsea"]
    outcome = _q1(answer, classifier, photo_batch)
    assert outcome.status == INCORRECT and "missing: ['chelsea']" in outcome.message


# --- q2: a dynamic batch for the classifier ------------------------------------------------------------

def _export(model, path, *, batch=2, dynamo=False, **kwargs):
    example = (torch.randn(batch, 3, 224, 224),)
    with warnings.catch_warnings():  # module-scoped fixtures export outside the autouse fixture
        warnings.simplefilter("ignore")
        if dynamo:
            torch.onnx.export(model, example, path, dynamo=True, verbose=False, external_data=False, **kwargs)
        else:
            torch.onnx.export(model, example, path, dynamo=False, **kwargs)
    return path


IO_NAMES = {"input_names": ["image"], "output_names": ["logits"]}
DYNAMIC_AXES = {"dynamic_axes": {"image": {0: "batch"}, "logits": {0: "batch"}}}


@pytest.fixture(scope="module")
def dynamic_path(tmp_path_factory, classifier):
    return _export(classifier, tmp_path_factory.mktemp("q2") / "dynamic.onnx", **IO_NAMES, **DYNAMIC_AXES)


def _q2(path, logits, classifier, photo_batch):
    return q2.check(ex2_path=path, ex2_logits=logits, classifier=classifier, photo_batch=photo_batch)


def test_q2_a_dynamic_default_export_is_correct(tmp_path, classifier, photo_batch):
    path = _export(classifier, tmp_path / "default.onnx", dynamo=True, **IO_NAMES,
                   dynamic_shapes=({0: torch.export.Dim("batch")},))
    outcome = _q2(path, _logits(classifier, photo_batch[:3]), classifier, photo_batch)
    assert outcome.status == CORRECT, repr(outcome)
    assert "[batch, 3, 224, 224]" in outcome.message


def test_q2_not_attempted_names_both_variables(classifier, photo_batch):
    outcome = q2.check(classifier=classifier, photo_batch=photo_batch)
    assert outcome.status == NOT_ATTEMPTED and "`ex2_path`, `ex2_logits`" in outcome.message


def test_q2_a_static_batch_is_incorrect_and_says_how_to_fix_it(tmp_path, classifier, photo_batch):
    path = _export(classifier, tmp_path / "static.onnx", **IO_NAMES)
    outcome = _q2(path, _logits(classifier, photo_batch[:3]), classifier, photo_batch)
    assert outcome.status == INCORRECT
    assert "fixed at 2 in the saved file" in outcome.message and "dynamic_shapes" in outcome.message


def test_q2_a_wrong_output_name_is_incorrect(tmp_path, classifier, photo_batch):
    path = _export(classifier, tmp_path / "named.onnx", input_names=["image"], output_names=["output1"],
                   dynamic_axes={"image": {0: "batch"}})
    outcome = _q2(path, _logits(classifier, photo_batch[:3]), classifier, photo_batch)
    assert outcome.status == INCORRECT and "should be named 'logits', found ['output1']" in outcome.message


def test_q2_another_models_file_is_incorrect(tmp_path, classifier, photo_batch):
    path = _export(_stand_in(1), tmp_path / "other.onnx", **IO_NAMES, **DYNAMIC_AXES)
    outcome = _q2(path, _logits(classifier, photo_batch[:3]), classifier, photo_batch)
    assert outcome.status == INCORRECT and "differ from classifier's" in outcome.message


def test_q2_logits_of_all_photos_are_incorrect(dynamic_path, classifier, photo_batch):
    outcome = _q2(dynamic_path, _logits(classifier, photo_batch), classifier, photo_batch)
    assert outcome.status == INCORRECT and f"its shape is ({len(NAMES)}, 1000)" in outcome.message


def test_q2_logits_of_other_photos_are_incorrect(dynamic_path, classifier, photo_batch):
    outcome = _q2(dynamic_path, _logits(classifier, photo_batch[2:5]), classifier, photo_batch)
    assert outcome.status == INCORRECT and "not what classifier computes for photo_batch[:3]" in outcome.message


def test_q2_a_legacy_dynamic_export_is_accepted(dynamic_path, classifier, photo_batch):
    assert _q2(dynamic_path, _logits(classifier, photo_batch[:3]), classifier, photo_batch).status == CORRECT


# --- q3: the ResNet-50 V2 preprocessing recipe -------------------------------------------------------

def _antialias_matrix(n_in, n_out):
    scale = n_in / n_out
    support = max(scale, 1.0)
    centres = (np.arange(n_out) + 0.5) * scale
    taps = np.clip(1 - np.abs((np.arange(n_in)[None, :] + 0.5 - centres[:, None]) / support), 0, None)
    return taps / taps.sum(axis=1, keepdims=True)


def _recipe(image, resize=232, crop=224, antialias=True):
    h, w = image.shape[:2]
    size = (resize, int(resize * w / h)) if h <= w else (int(resize * h / w), resize)
    if antialias:
        resized = np.einsum("oh,hwc,pw->opc", _antialias_matrix(h, size[0]), image.astype(np.float64),
                            _antialias_matrix(w, size[1]), optimize=True)
    else:
        resized = cv2.resize(image.astype(np.float32), size[::-1], interpolation=cv2.INTER_LINEAR)
    top, left = round((size[0] - crop) / 2), round((size[1] - crop) / 2)
    pixels = resized[top:top + crop, left:left + crop] / 255.0
    normalised = (pixels - np.array(imagenet.MEAN)) / np.array(imagenet.STD)
    return normalised.transpose(2, 0, 1)[None].astype(np.float32)


def test_q3_the_antialiased_232_recipe_is_correct():
    outcome = q3.check(ex3_preprocess=_recipe)
    assert outcome.status == CORRECT, repr(outcome)


def test_q3_not_attempted_without_a_function():
    assert q3.check().status == NOT_ATTEMPTED


def test_q3_opencv_bilinear_is_right_only_when_enlarging():
    outcome = q3.check(ex3_preprocess=lambda image: _recipe(image, antialias=False))
    assert outcome.status == INCORRECT and "right when the image is enlarged, wrong when it is shrunk" in outcome.message


def test_q3_the_lessons_256_recipe_is_incorrect():
    outcome = q3.check(ex3_preprocess=imagenet.preprocess)
    assert outcome.status == INCORRECT and "shorter side 256" in outcome.message


def test_q3_a_missing_batch_dimension_is_incorrect():
    outcome = q3.check(ex3_preprocess=lambda image: _recipe(image)[0])
    assert outcome.status == INCORRECT and "add the batch dimension" in outcome.message


def test_q3_float64_is_incorrect():
    outcome = q3.check(ex3_preprocess=lambda image: _recipe(image).astype(np.float64))
    assert outcome.status == INCORRECT and "should return float32" in outcome.message


def test_q3_a_wrong_crop_offset_is_incorrect():
    def off_by_a_few(image):
        h, w = image.shape[:2]
        size = (232, int(232 * w / h)) if h <= w else (int(232 * h / w), 232)
        resized = np.einsum("oh,hwc,pw->opc", _antialias_matrix(h, size[0]), image.astype(np.float64),
                            _antialias_matrix(w, size[1]), optimize=True)
        pixels = resized[:224, :224] / 255.0  # top-left crop instead of the centre
        return ((pixels - np.array(imagenet.MEAN)) / np.array(imagenet.STD)).transpose(2, 0, 1)[None].astype(
            np.float32)

    outcome = q3.check(ex3_preprocess=off_by_a_few)
    assert outcome.status == INCORRECT and "crop offsets" in outcome.message


def test_q3_a_value_that_is_not_a_function_is_incorrect():
    outcome = q3.check(ex3_preprocess=np.zeros((1, 3, 224, 224), np.float32))
    assert outcome.status == INCORRECT and "should be a function" in outcome.message


# --- q4: op versions that change between opsets 17 and 20 ---------------------------------------------

@pytest.fixture(scope="module")
def default_path(tmp_path_factory):
    """A small opset-20 file with the classifier's op types (the check reads only the op types)."""
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"]), helper.make_node("Clip", ["c", "lo", "hi"], ["r"]),
             helper.make_node("Add", ["r", "c"], ["a"]), helper.make_node("ReduceMean", ["a", "axes"], ["m"]),
             helper.make_node("Reshape", ["m", "shape"], ["f"]), helper.make_node("Gemm", ["f", "g", "b"], ["y"])]
    graph = helper.make_graph(nodes, "ops", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])], initializer=[
        onnx.numpy_helper.from_array(np.ones((4, 3, 3, 3), np.float32), "w"),
        onnx.numpy_helper.from_array(np.array(0, np.float32), "lo"),
        onnx.numpy_helper.from_array(np.array(6, np.float32), "hi"),
        onnx.numpy_helper.from_array(np.array([2, 3], np.int64), "axes"),
        onnx.numpy_helper.from_array(np.array([1, 4], np.int64), "shape"),
        onnx.numpy_helper.from_array(np.ones((4, 2), np.float32), "g"),
        onnx.numpy_helper.from_array(np.zeros(2, np.float32), "b")])
    path = tmp_path_factory.mktemp("q4") / "ops.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)], ir_version=10), path)
    return path


def test_q4_the_two_changed_ops_are_correct_as_set_or_list(default_path):
    for answer in ({"ReduceMean", "Reshape"}, ["Reshape", "ReduceMean"]):
        outcome = q4.check(ex4_changed=answer, classifier_default_path=default_path)
        assert outcome.status == CORRECT, repr(outcome)


def test_q4_not_attempted_without_ex4_changed(default_path):
    assert q4.check(classifier_default_path=default_path).status == NOT_ATTEMPTED


@pytest.mark.parametrize("answer, words", [
    ("ReduceMean", "`ex4_changed` should be a set or frozenset or list or tuple"),
    ({"ReduceMean", "Relu"}, "['Relu'] are not op types of the classifier's default export"),
    ({"ReduceMean"}, "1 op type(s) that changed are missing"),
    ({"Add", "Clip", "Conv", "Gemm", "ReduceMean", "Reshape"}, "have the same version at opsets 17 and 20"),
])
def test_q4_wrong_answers_are_incorrect_with_the_reason(default_path, answer, words):
    outcome = q4.check(ex4_changed=answer, classifier_default_path=default_path)
    assert outcome.status == INCORRECT and words in outcome.message, repr(outcome)

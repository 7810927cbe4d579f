"""Lesson 01's exercises: right answers Correct, wrong ones Incorrect with the reason (missing ones: test_exercises_all).

A tiny stand-in for the trained classifier (same signature: [N, 3, H, W] -> [N, 1000], any photo size, and
not mirror-symmetric) keeps the exports fast; the preprocessing exercise runs on the shipped photos.
"""
from __future__ import annotations

import contextlib
import io
import warnings

import cv2
import numpy as np
import onnx
import pytest
import torch

from labkit import imagenet
from labkit.exercises.core import CORRECT
from labkit.exercises.lesson01 import q1, q2, q3, q4
from wrong_answers import WrongAnswer, assert_rejected, params

NAMES = ["astronaut", "chelsea", "coffee", "rocket", "retina"]


@pytest.fixture(autouse=True)
def _quiet_exporters():
    with warnings.catch_warnings():  # the legacy exporter's DeprecationWarning is not under test
        warnings.simplefilter("ignore")
        yield


class _StandIn(torch.nn.Module):
    """A strided conv, a global mean and a Linear: any photo size works, and mirroring changes its logits."""

    def __init__(self):
        super().__init__()
        self.conv, self.fc = torch.nn.Conv2d(3, 6, 3, stride=2), torch.nn.Linear(6, 1000)

    def forward(self, x):
        y = self.conv(x).relu().mean(dim=(2, 3), keepdim=True)
        return self.fc(y.reshape(y.shape[0], -1))


def _stand_in(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return _StandIn().eval()


CLASSIFIER = _stand_in(0)
_RAMP = np.linspace(-2, 2, 224, dtype=np.float32)  # left and right differ, so mirroring matters
PHOTOS = (np.random.default_rng(0).standard_normal((10, 3, 224, 224), dtype=np.float32)
          + _RAMP * np.arange(1, 11, dtype=np.float32)[:, None, None, None]
          + _RAMP[:, None] * np.arange(10, 0, -1, dtype=np.float32)[:, None, None, None])  # top and bottom too
NAMES = NAMES + [f"photo{k}" for k in range(5, 10)]
CONTEXT = {"classifier": CLASSIFIER, "photo_batch": PHOTOS}


def _logits(model, batch):
    with torch.no_grad():
        return model(torch.from_numpy(np.ascontiguousarray(batch))).numpy()


def _top3(logits):
    labels = imagenet.categories()
    return {name: [labels[k] for k in np.argsort(-row)[:3]] for name, row in zip(NAMES, logits)}


def _ort(path, batch):
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"image": batch})[0]


# --- q1: the top-3 of the mirrored photos ------------------------------------------------------------

MIRRORED_TOP3 = _top3(_logits(CLASSIFIER, PHOTOS[..., ::-1]))


def _q1(answer):
    return {"ex1_top3": answer, **CONTEXT, "photo_names": NAMES}


def _without_chelsea():
    answer = dict(MIRRORED_TOP3)
    del answer["chelsea"]
    return answer


def test_q1_the_mirrored_top3_is_correct():
    outcome = q1.check(**_q1(MIRRORED_TOP3))
    assert outcome.status == CORRECT, repr(outcome)
    assert f"all {len(NAMES)} mirrored photos" in outcome.message


# --- q2: the classifier for photos of any size, on the default exporter ----------------------------------

def _export(model, path, *, batch=2, dynamo=False, **kwargs):
    example = (torch.randn(batch, 3, 224, 224),)
    with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):  # deprecations and converter logs
        warnings.simplefilter("ignore")
        if dynamo:
            torch.onnx.export(model, example, path, dynamo=True, verbose=False, external_data=False, **kwargs)
        else:
            torch.onnx.export(model, example, path, dynamo=False, **kwargs)
    return path


IO_NAMES = {"input_names": ["image"], "output_names": ["logits"]}
Dim = torch.export.Dim
ANY_SIZE = {"dynamic_shapes": ({0: Dim("batch"), 2: Dim("height"), 3: Dim("width")},)}
BAND = np.ascontiguousarray(PHOTOS[:3, :, 32:192, :])


def _q2(tmp_path, model=CLASSIFIER, logits=None, dynamo=True, **kwargs):
    path = _export(model, tmp_path / "ex2.onnx", dynamo=dynamo, **({**IO_NAMES, **ANY_SIZE} | kwargs))
    return {"ex2_path": path, "ex2_logits": _ort(path, BAND) if logits is None else logits, **CONTEXT}


def test_q2_a_default_export_with_batch_height_and_width_free_is_correct(tmp_path):
    outcome = q2.check(**_q2(tmp_path))
    assert outcome.status == CORRECT, repr(outcome)
    assert "[batch, 3, height, width]" in outcome.message


def test_q2_torch_and_ort_logits_of_the_stand_in_differ_bit_for_bit(tmp_path):
    """What the 'computed in PyTorch' wrong answer relies on: the two runtimes do not agree to the last bit."""
    path = _q2(tmp_path)["ex2_path"]
    assert not np.array_equal(_ort(path, BAND), _logits(CLASSIFIER, BAND))


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


def _off_centre(image):
    h, w = image.shape[:2]
    size = (232, int(232 * w / h)) if h <= w else (int(232 * h / w), 232)
    resized = np.einsum("oh,hwc,pw->opc", _antialias_matrix(h, size[0]), image.astype(np.float64),
                        _antialias_matrix(w, size[1]), optimize=True)
    pixels = resized[:224, :224] / 255.0  # top-left crop instead of the centre
    return ((pixels - np.array(imagenet.MEAN)) / np.array(imagenet.STD)).transpose(2, 0, 1)[None].astype(np.float32)


def _torchvision_itself(image):
    from torchvision.models import ResNet50_Weights

    transform = ResNet50_Weights.IMAGENET1K_V2.transforms()
    return transform(torch.from_numpy(image).permute(2, 0, 1).float() / 255).numpy()[None]


def test_q3_the_antialiased_232_recipe_is_correct():
    outcome = q3.check(ex3_preprocess=_recipe)
    assert outcome.status == CORRECT, repr(outcome)


# --- q4: the classifier for a runtime that loads opset 17 at most ------------------------------------

def _changed(path, opsets=(17, 20)):
    return {op for op in {n.op_type for n in onnx.load(path).graph.node}
            if len({onnx.defs.get_schema(op, o).since_version for o in opsets}) > 1}


def _q4(tmp_path, model=CLASSIFIER, changed=None, **kwargs):
    path = _export(model, tmp_path / "ex4.onnx", **({**IO_NAMES, "opset_version": 17} | kwargs))
    return {"ex4_path": path, "ex4_changed": _changed(path) if changed is None else changed, **CONTEXT}


def test_q4_a_legacy_export_at_opset_17_with_its_changed_ops_is_correct(tmp_path):
    values = _q4(tmp_path)
    assert values["ex4_changed"] == {"Constant", "ReduceMean", "Reshape"}  # what the wrong answers below rely on
    for answer in (values["ex4_changed"], sorted(values["ex4_changed"])):
        outcome = q4.check(**{**values, "ex4_changed": answer})
        assert outcome.status == CORRECT, repr(outcome)


# --- the catalogue ----------------------------------------------------------------------------------------

WRONG_ANSWERS = [
    WrongAnswer(q1, "the photos as they are", lambda t: _q1(_top3(_logits(CLASSIFIER, PHOTOS))),
                fault="top-3 of the photo as it is"),
    WrongAnswer(q1, "worst first", lambda t: _q1({n: row[::-1] for n, row in MIRRORED_TOP3.items()}),
                fault="best first"),
    WrongAnswer(q1, "class indices, not labels", lambda t: _q1(
        {n: list(np.argsort(-row)[:3]) for n, row in zip(NAMES, _logits(CLASSIFIER, PHOTOS[..., ::-1]))}),
        fault="holds class indices"),
    WrongAnswer(q1, "a photo left out", lambda t: _q1(_without_chelsea()), fault="missing: ['chelsea']"),
    WrongAnswer(q1, "mirrored upside down (the height axis)", lambda t: _q1(_top3(_logits(CLASSIFIER,
                                                                                          PHOTOS[:, :, ::-1]))),
                fault="flipped top to bottom"),
    # q2
    WrongAnswer(q2, "the legacy exporter with dynamic_axes", lambda t: _q2_legacy(t),
                fault="this exercise asks for the default exporter"),
    WrongAnswer(q2, "no dynamic_shapes at all", lambda t: _q2(t, dynamic_shapes=None, logits=np.zeros((3, 1000))),
                fault="the batch (dim 0) is fixed at 2"),
    WrongAnswer(q2, "only the batch freed, as in section 4",
                lambda t: _q2(t, dynamic_shapes=({0: Dim("batch")},), logits=np.zeros((3, 1000))),
                fault="the height (dim 2) is fixed at 224"),
    WrongAnswer(q2, "the output named output1", lambda t: _q2(t, output_names=["output1"]),
                fault="should be named ['logits'], found ['output1']"),
    WrongAnswer(q2, "a file of other weights", lambda t: _q2(t, model=_stand_in(1)),
                fault="export the trained classifier itself"),
    WrongAnswer(q2, "logits computed in PyTorch", lambda t: _q2(t, logits=_logits(CLASSIFIER, BAND)),
                fault="PyTorch's logits, bit for bit"),
    WrongAnswer(q2, "logits of the full 224x224 photos", lambda t: _q2_full_photos(t),
                fault="ex2_logits` on photo_batch[:3, :, 32:192, :]"),
    # q3
    WrongAnswer(q3, "OpenCV's bilinear resize (no antialiasing)", lambda t: {
        "ex3_preprocess": lambda image: _recipe(image, antialias=False)}, fault="wrong when it is shrunk"),
    WrongAnswer(q3, "section 5's 256 recipe", lambda t: {"ex3_preprocess": imagenet.preprocess},
                fault="shorter side 256"),
    WrongAnswer(q3, "no batch dimension", lambda t: {"ex3_preprocess": lambda image: _recipe(image)[0]},
                fault="add the batch dimension"),
    WrongAnswer(q3, "float64", lambda t: {"ex3_preprocess": lambda image: _recipe(image).astype(np.float64)},
                fault="should return float32"),
    WrongAnswer(q3, "a top-left crop", lambda t: {"ex3_preprocess": _off_centre}, fault="crop offsets"),
    WrongAnswer(q3, "an array, not a function", lambda t: {"ex3_preprocess": np.zeros((1, 3, 224, 224), np.float32)},
                fault="should be a function"),
    WrongAnswer(q3, "torchvision's transform called inside", lambda t: {"ex3_preprocess": _torchvision_itself},
                fault="ex3_preprocess calls torchvision"),
    # q4
    WrongAnswer(q4, "the default exporter at opset 17 (it keeps 18)", lambda t: _q4(t, dynamo=True),
                fault="logged 'Failed to convert' and kept opset 18"),
    WrongAnswer(q4, "no opset given (20)", lambda t: _q4(t, opset_version=20), fault="declares opset 20"),
    WrongAnswer(q4, "an older opset than the runtime loads", lambda t: _q4(t, opset_version=11),
                fault="declares opset 11: pass opset_version=17"),
    WrongAnswer(q4, "the changed ops of another export (one with Pad)",
                lambda t: _q4(t, changed={"Pad", "ReduceMean", "Reshape"}),
                fault="are not op types of your opset-17 file"),
    WrongAnswer(q4, "one changed op left out", lambda t: _q4(t, changed={"Constant", "Reshape"}),
                fault="1 op type(s) that changed are missing"),
    WrongAnswer(q4, "a file of other weights", lambda t: _q4(t, model=_stand_in(1)),
                fault="export the trained classifier itself"),
]


def _q2_legacy(tmp_path):
    path = _export(CLASSIFIER, tmp_path / "legacy.onnx", **IO_NAMES,
                   dynamic_axes={"image": {0: "batch", 2: "height", 3: "width"}})
    return {"ex2_path": path, "ex2_logits": _ort(path, BAND), **CONTEXT}


def _q2_full_photos(tmp_path):
    values = _q2(tmp_path)
    return {**values, "ex2_logits": _ort(values["ex2_path"], PHOTOS[:3])}


@pytest.mark.parametrize("wrong", params(WRONG_ANSWERS))
def test_wrong_answer_is_rejected_naming_its_fault(wrong, tmp_path):
    assert_rejected(wrong, tmp_path)

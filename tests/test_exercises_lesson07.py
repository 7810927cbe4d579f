"""Lesson 07 exercises: the right fix is Correct, plausible wrong fixes are Incorrect with a message that says why."""
from __future__ import annotations

import warnings

import onnx
import pytest
import torch
from onnx import numpy_helper
from onnxscript import opset20 as op
from torch.export import Dim

import functools
import tempfile
from pathlib import Path

from labkit.exercises.lesson07 import q1, q2, q3
from wrong_answers import WrongAnswer, assert_rejected, params


# ------------------------------------------------------------------------ the lesson's models, rebuilt
class Smoother(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv1d(2, 2, kernel_size=3, padding=1, groups=2)

    def forward(self, x):
        if x.shape[-1] == 1:
            return x
        return self.conv(x)


class Scorer(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(6, 5)

    def forward(self, x):
        return self.fc(x).softmax(dim=-1)


class Pooler(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Linear(8, 32)
        self.head = torch.nn.Linear(32, 3)

    def forward(self, tokens):
        return self.head(torch.tanh(self.proj(tokens)).mean(dim=1))


def _seeded(cls, seed=0):
    torch.manual_seed(seed)
    return cls().eval()


def _export(model, example, path, **kwargs):
    torch.onnx.export(model, (example,), dynamo=True, verbose=False, **kwargs).save(path)
    return path


def stable_softmax(x, dim: int, dtype: int = -1):
    axes = op.Constant(value_ints=[dim])
    e = op.Exp(op.Sub(x, op.ReduceMax(x, axes, keepdims=1)))
    return op.Div(e, op.ReduceSum(e, axes, keepdims=1))


def textbook_softmax(x, dim: int, dtype: int = -1):
    e = op.Exp(x)
    return op.Div(e, op.ReduceSum(e, op.Constant(value_ints=[dim]), keepdims=1))


def clipped_softmax(x, dim: int, dtype: int = -1):
    """A plausible wrong fix: clip the scores below exp's overflow; large scores then tie."""
    e = op.Exp(op.Min(x, op.Constant(value_float=80.0)))
    return op.Div(e, op.ReduceSum(e, op.Constant(value_ints=[dim]), keepdims=1))


def half_shifted_softmax(x, dim: int, dtype: int = -1):
    """A plausible wrong fix: the numerator shifted by the maximum, the denominator not."""
    axes = op.Constant(value_ints=[dim])
    top = op.Exp(op.Sub(x, op.ReduceMax(x, axes, keepdims=1)))
    return op.Div(top, op.ReduceSum(op.Exp(x), axes, keepdims=1))


# ------------------------------------------------------------------------ the files, exported once
@functools.lru_cache(maxsize=None)
def _folder() -> Path:
    return Path(tempfile.mkdtemp(prefix="lesson07_answers_"))


@functools.lru_cache(maxsize=None)
def smoother_files():
    folder = _folder()
    smoother = _seeded(Smoother)
    right = _export(smoother, torch.randn(2, 2, 8), folder / "right.onnx",
                    dynamic_shapes={"x": {0: Dim("batch", min=1), 2: Dim("time", min=2)}})
    broken = _export(smoother, torch.randn(1, 2, 1), folder / "broken.onnx",
                     dynamic_shapes={"x": {0: Dim("batch", min=1), 2: Dim("time", min=1)}})
    model = onnx.load(right)
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 2
    onnx.save(model, folder / "fixed_batch.onnx")
    no_dims = _export(smoother, torch.randn(2, 2, 8), folder / "static.onnx")
    return {"smoother": smoother, "right": right, "broken": broken, "fixed_batch": folder / "fixed_batch.onnx",
            "static": no_dims}


@functools.lru_cache(maxsize=None)
def scorer_files():
    folder = _folder()
    scorer = _seeded(Scorer)
    example = torch.randn(4, 6)
    files = {"scorer": scorer}
    for translation in (stable_softmax, textbook_softmax, clipped_softmax, half_shifted_softmax):
        name = translation.__name__
        files[name] = _export(scorer, example, folder / f"{name}.onnx",
                              custom_translation_table={torch.ops.aten.softmax.int: translation})
    return files


def _legacy_pooler(path, pooler, **kwargs):
    with warnings.catch_warnings():  # the legacy exporter's DeprecationWarnings: used on purpose here
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(pooler, (torch.randn(2, 5, 8),), path, dynamo=False, opset_version=17, **kwargs)
    return path


def _variant(source, target, edit):
    model = onnx.load(source)
    edit(model)
    onnx.save(model, target)
    return target


def _scale_a_weight(model):
    init = model.graph.initializer[0]
    init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) * 2, init.name))


@functools.lru_cache(maxsize=None)
def pooler_files():
    folder = _folder()
    pooler = _seeded(Pooler)
    legacy = _legacy_pooler(folder / "legacy17.onnx", pooler, input_names=["tokens"], output_names=["pooled"],
                            dynamic_axes={"tokens": {0: "batch", 1: "tokens"}, "pooled": {0: "batch"}})
    fixed = _legacy_pooler(folder / "legacy17_fixed.onnx", pooler)  # every axis as the example had it
    default = folder / "default.onnx"
    torch.onnx.export(pooler, (torch.randn(2, 5, 8),), default, dynamo=True, verbose=False)  # weights in .data
    single = _variant(default, folder / "single20.onnx", lambda model: None)  # onnx.load reads the weights in
    converted = onnx.version_converter.convert_version(onnx.load(default), 17)
    converted.ir_version = 8
    onnx.save(converted, folder / "converted.onnx")
    return {"pooler": pooler, "legacy": legacy, "fixed": fixed, "default": default, "single": single,
            "converted": folder / "converted.onnx",
            "ir10": _variant(legacy, folder / "ir10.onnx", lambda model: setattr(model, "ir_version", 10)),
            "ir7": _variant(legacy, folder / "ir7.onnx", lambda model: setattr(model, "ir_version", 7)),
            "scaled": _variant(legacy, folder / "scaled.onnx", _scale_a_weight)}


def _q1(key, smoother=None):
    return lambda tmp: {"ex1_path": smoother_files()[key], "smoother": smoother or smoother_files()["smoother"]}


def _q2(key, scorer=None):
    return lambda tmp: {"ex2_path": scorer_files()[key], "scorer": scorer or scorer_files()["scorer"]}


def _q3(key):
    return lambda tmp: {"ex3_path": pooler_files()[key], "pooler": pooler_files()["pooler"]}


# --------------------------------------------------------------- wrong answers, each rejected naming its fault
WRONG_ANSWERS = [
    WrongAnswer(q1, "exported with a time axis of length 1", _q1("broken"), fault="axis 2 (time) is fixed to 1"),
    WrongAnswer(q1, "the batch fixed in the file", _q1("fixed_batch"), fault="axis 0 (batch) is fixed to 2"),
    WrongAnswer(q1, "no dynamic_shapes at all", _q1("static"), fault="is fixed to"),
    WrongAnswer(q1, "an export of other weights", _q1("right", smoother=_seeded(Smoother, seed=1)),
                fault="does not match the torch model"),
    WrongAnswer(q1, "the file was never written",
                lambda tmp: {"ex1_path": tmp / "nothing.onnx", "smoother": smoother_files()["smoother"]},
                fault="no such file"),
    WrongAnswer(q2, "the textbook exp / sum", _q2("textbook_softmax"), fault="returns NaN where torch does not"),
    WrongAnswer(q2, "scores clipped below exp's overflow", _q2("clipped_softmax"),
                fault="inputs scaled by 1000"),
    WrongAnswer(q2, "the numerator shifted, the denominator not", _q2("half_shifted_softmax"),
                fault="ordinary inputs"),
    WrongAnswer(q2, "an export of another model", _q2("stable_softmax", scorer=_seeded(Scorer, seed=3)),
                fault="does not match the torch model for ordinary inputs"),
    WrongAnswer(q3, "the default export (weights in a .data file)", _q3("default"), fault="default.onnx.data"),
    WrongAnswer(q3, "one file, but opset 20", _q3("single"), fault="uses opset 20"),
    WrongAnswer(q3, "version_converter's ReduceMean", _q3("converted"), fault="noop_with_empty_axes"),
    WrongAnswer(q3, "IR version 10", _q3("ir10"), fault="IR version 10"),
    WrongAnswer(q3, "IR version 7 with opset 17", _q3("ir7"), fault="older than opset 17 allows"),
    WrongAnswer(q3, "the legacy export with every axis fixed", _q3("fixed"), fault="axis 0 (batch) is fixed to 2"),
    WrongAnswer(q3, "a weight changed on the way", _q3("scaled"), fault="does not match the torch model"),
]


@pytest.mark.parametrize("wrong", params(WRONG_ANSWERS))
def test_wrong_answer_is_rejected_naming_its_fault(wrong, tmp_path):
    assert_rejected(wrong, tmp_path)


# ------------------------------------------------------------------------------------ right answers
def test_q1_accepts_an_export_with_dynamic_batch_and_time():
    files = smoother_files()
    outcome = q1.check(ex1_path=files["right"], smoother=files["smoother"])
    assert outcome, outcome.message


def test_q2_accepts_a_translation_shifted_by_the_maximum():
    files = scorer_files()
    outcome = q2.check(ex2_path=files["stable_softmax"], scorer=files["scorer"])
    assert outcome, outcome.message


def test_q3_accepts_a_single_file_at_ir_8_opset_17_with_dynamic_batch_and_tokens():
    files = pooler_files()
    outcome = q3.check(ex3_path=files["legacy"], pooler=files["pooler"])
    assert outcome, outcome.message
    assert "(1, 9, 8)" in outcome.message






def test_q3_a_folder_given_as_the_path_is_named_as_a_folder(tmp_path):
    outcome = q3.check(ex3_path=tmp_path, pooler=torch.nn.Identity())
    assert outcome.status == "Incorrect" and "which is a folder" in outcome.message

"""Lesson 07 exercises: the right fix is Correct, plausible wrong fixes are Incorrect with a message that says why."""
from __future__ import annotations

import warnings

import onnx
import pytest
import torch
from onnx import numpy_helper
from onnxscript import opset20 as op
from torch.export import Dim

from labkit.exercises.lesson07 import q1, q2, q3


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


# ------------------------------------------------------------------------------------------------ q1
@pytest.fixture(scope="module")
def smoother_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("q1")
    smoother = _seeded(Smoother)
    right = _export(smoother, torch.randn(2, 2, 8), folder / "right.onnx",
                    dynamic_shapes={"x": {0: Dim("batch", min=1), 2: Dim("time", min=2)}})
    broken = _export(smoother, torch.randn(1, 2, 1), folder / "broken.onnx",
                     dynamic_shapes={"x": {0: Dim("batch", min=1), 2: Dim("time", min=1)}})
    return smoother, right, broken, folder


def test_q1_not_attempted_without_an_answer(smoother_files):
    outcome = q1.check(smoother=smoother_files[0])
    assert outcome.status == "Not attempted" and "ex1_path" in outcome.message


def test_q1_accepts_an_export_with_dynamic_batch_and_time(smoother_files):
    smoother, right, _, _ = smoother_files
    outcome = q1.check(ex1_path=right, smoother=smoother)
    assert outcome, outcome.message


def test_q1_rejects_the_length_one_export_and_names_the_axis(smoother_files):
    smoother, _, broken, _ = smoother_files
    outcome = q1.check(ex1_path=broken, smoother=smoother)
    assert outcome.status == "Incorrect" and "axis 2 (time) is fixed to 1" in outcome.message


def test_q1_rejects_a_fixed_batch(smoother_files):
    smoother, right, _, folder = smoother_files
    model = onnx.load(right)
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 2
    onnx.save(model, folder / "fixed_batch.onnx")
    outcome = q1.check(ex1_path=folder / "fixed_batch.onnx", smoother=smoother)
    assert outcome.status == "Incorrect" and "axis 0 (batch) is fixed to 2" in outcome.message


def test_q1_rejects_an_export_of_other_weights(smoother_files):
    smoother, right, _, _ = smoother_files
    outcome = q1.check(ex1_path=right, smoother=_seeded(Smoother, seed=1))
    assert outcome.status == "Incorrect" and "does not match the torch model" in outcome.message


def test_q1_rejects_a_missing_file(smoother_files, tmp_path):
    outcome = q1.check(ex1_path=tmp_path / "nothing.onnx", smoother=smoother_files[0])
    assert outcome.status == "Incorrect" and "no such file" in outcome.message


# ------------------------------------------------------------------------------------------------ q2
@pytest.fixture(scope="module")
def scorer_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("q2")
    scorer = _seeded(Scorer)
    example = torch.randn(4, 6)
    files = {}
    for translation in (stable_softmax, textbook_softmax, clipped_softmax, half_shifted_softmax):
        name = translation.__name__
        files[name] = _export(scorer, example, folder / f"{name}.onnx",
                              custom_translation_table={torch.ops.aten.softmax.int: translation})
    return scorer, files


def test_q2_not_attempted_without_an_answer(scorer_files):
    outcome = q2.check(scorer=scorer_files[0])
    assert outcome.status == "Not attempted" and "ex2_path" in outcome.message


def test_q2_accepts_a_translation_shifted_by_the_maximum(scorer_files):
    scorer, files = scorer_files
    outcome = q2.check(ex2_path=files["stable_softmax"], scorer=scorer)
    assert outcome, outcome.message


def test_q2_rejects_the_textbook_translation_and_explains_the_overflow(scorer_files):
    scorer, files = scorer_files
    outcome = q2.check(ex2_path=files["textbook_softmax"], scorer=scorer)
    assert outcome.status == "Incorrect" and "NaN" in outcome.message and "maximum" in outcome.message


def test_q2_rejects_clipped_scores_that_only_fail_on_large_inputs(scorer_files):
    scorer, files = scorer_files
    outcome = q2.check(ex2_path=files["clipped_softmax"], scorer=scorer)
    assert outcome.status == "Incorrect" and "inputs scaled by 1000" in outcome.message
    assert "NaN" not in outcome.message


def test_q2_rejects_a_shift_in_the_numerator_only(scorer_files):
    scorer, files = scorer_files
    outcome = q2.check(ex2_path=files["half_shifted_softmax"], scorer=scorer)
    assert outcome.status == "Incorrect" and "ordinary inputs" in outcome.message


def test_q2_rejects_an_export_of_another_model(scorer_files):
    _, files = scorer_files
    outcome = q2.check(ex2_path=files["stable_softmax"], scorer=_seeded(Scorer, seed=3))
    assert outcome.status == "Incorrect" and "ordinary inputs" in outcome.message


# ------------------------------------------------------------------------------------------------ q3
@pytest.fixture(scope="module")
def pooler_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("q3")
    pooler = _seeded(Pooler)
    example = torch.randn(2, 5, 8)
    legacy = folder / "legacy17.onnx"
    with warnings.catch_warnings():  # the legacy exporter's DeprecationWarnings: used on purpose here
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(pooler, (example,), legacy, dynamo=False, opset_version=17)
    default = folder / "default.onnx"
    torch.onnx.export(pooler, (example,), default, dynamo=True, verbose=False)  # weights go to default.onnx.data
    return pooler, legacy, default, folder


def _variant(source, target, edit):
    model = onnx.load(source)
    edit(model)
    onnx.save(model, target)
    return target


def test_q3_not_attempted_without_an_answer(pooler_files):
    outcome = q3.check(pooler=pooler_files[0])
    assert outcome.status == "Not attempted" and "ex3_path" in outcome.message


def test_q3_accepts_a_single_file_at_ir_8_opset_17(pooler_files):
    pooler, legacy, _, _ = pooler_files
    outcome = q3.check(ex3_path=legacy, pooler=pooler)
    assert outcome, outcome.message


def test_q3_rejects_the_default_export_for_its_external_weights(pooler_files):
    pooler, _, default, _ = pooler_files
    outcome = q3.check(ex3_path=default, pooler=pooler)
    assert outcome.status == "Incorrect" and "default.onnx.data" in outcome.message


def test_q3_rejects_a_single_file_at_opset_20(pooler_files):
    pooler, _, default, folder = pooler_files
    single = _variant(default, folder / "single20.onnx", lambda model: None)  # onnx.load reads the weights in
    outcome = q3.check(ex3_path=single, pooler=pooler)
    assert outcome.status == "Incorrect" and "opset 20" in outcome.message


def test_q3_rejects_the_converters_invalid_reduce_mean(pooler_files):
    pooler, _, default, folder = pooler_files
    converted = onnx.version_converter.convert_version(onnx.load(default), 17)
    converted.ir_version = 8
    onnx.save(converted, folder / "converted.onnx")
    outcome = q3.check(ex3_path=folder / "converted.onnx", pooler=pooler)
    assert outcome.status == "Incorrect" and "full_check=True" in outcome.message
    assert "noop_with_empty_axes" in outcome.message


def test_q3_rejects_an_ir_version_the_target_cannot_read(pooler_files):
    pooler, legacy, _, folder = pooler_files
    newer = _variant(legacy, folder / "ir10.onnx", lambda model: setattr(model, "ir_version", 10))
    outcome = q3.check(ex3_path=newer, pooler=pooler)
    assert outcome.status == "Incorrect" and "IR version 10" in outcome.message


def test_q3_rejects_an_ir_version_older_than_the_opset_allows(pooler_files):
    pooler, legacy, _, folder = pooler_files
    older = _variant(legacy, folder / "ir7.onnx", lambda model: setattr(model, "ir_version", 7))
    outcome = q3.check(ex3_path=older, pooler=pooler)
    assert outcome.status == "Incorrect" and "older than opset 17 allows" in outcome.message


def test_q3_rejects_an_export_of_other_weights(pooler_files):
    _, legacy, _, folder = pooler_files

    def scale_a_weight(model):
        init = model.graph.initializer[0]
        init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) * 2, init.name))

    scaled = _variant(legacy, folder / "scaled.onnx", scale_a_weight)
    outcome = q3.check(ex3_path=scaled, pooler=pooler_files[0])
    assert outcome.status == "Incorrect" and "does not match the torch model" in outcome.message

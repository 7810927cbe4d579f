"""Lesson 03 exercises: a wrong answer is never Correct, the lesson's answer is, a missing one is Not attempted."""
from __future__ import annotations

import warnings

import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as F

from labkit.exercises.core import CORRECT, INCORRECT, NOT_ATTEMPTED
from labkit.exercises.lesson03 import q1, q2, q3
from labkit.srcnn import SRCNN, load_srcnn

X = torch.rand(1, 3, 24, 20, generator=torch.Generator().manual_seed(0))


def _legacy_export(model, args, path, input_names, dynamic_axes=None):
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation and tracer notices
        torch.onnx.export(model, args, path, dynamo=False, opset_version=11, input_names=input_names,
                          output_names=["output"], dynamic_axes=dynamic_axes)
    return path


class _ResizeTo(torch.autograd.Function):
    @staticmethod
    def forward(ctx, image, sizes):
        return F.interpolate(image, size=sizes.tolist()[-2:], mode="bicubic", align_corners=False)

    @staticmethod
    def symbolic(g, image, sizes):
        empty = g.op("Constant", value_t=torch.tensor([], dtype=torch.float32))
        return g.op("Resize", image, empty, empty, sizes, mode_s="cubic", cubic_coeff_a_f=-0.75,
                    coordinate_transformation_mode_s="pytorch_half_pixel", nearest_mode_s="floor")


class _ResizeBy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, image, scales):
        return F.interpolate(image, scale_factor=scales.tolist()[-2:], mode="bicubic", align_corners=False)

    @staticmethod
    def symbolic(g, image, scales):
        roi = g.op("Constant", value_t=torch.tensor([], dtype=torch.float32))
        return g.op("Resize", image, roi, scales, mode_s="cubic", cubic_coeff_a_f=-0.75,
                    coordinate_transformation_mode_s="pytorch_half_pixel", nearest_mode_s="floor")


class _SizesSRCNN(SRCNN):
    def upsample(self, x, sizes):
        return _ResizeTo.apply(x, sizes)


class _ScalesSRCNN(SRCNN):
    def upsample(self, x, scales):
        return _ResizeBy.apply(x, scales)


class _IntFactorSRCNN(SRCNN):
    def upsample(self, x, upscale_factor):
        factor = upscale_factor.item()
        torch._check(factor >= 1)
        return F.interpolate(x, size=(x.shape[2] * factor, x.shape[3] * factor), mode="bicubic",
                             align_corners=False)


def _trained(cls):
    model = cls()
    model.load_state_dict(load_srcnn().state_dict())
    return model.eval()


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lesson03")
    paths = {}
    paths["fixed_x3"] = _legacy_export(_trained(lambda: SRCNN(3)), (X,), folder / "fixed_x3.onnx", ["input"])
    paths["sizes"] = _legacy_export(_trained(_SizesSRCNN), (X, torch.tensor([1, 3, 50, 40])), folder / "sizes.onnx",
                                    ["input", "sizes"], {"input": {2: "height", 3: "width"}})
    paths["sizes_random"] = _legacy_export(_SizesSRCNN().eval(), (X, torch.tensor([1, 3, 50, 40])),
                                           folder / "sizes_random.onnx", ["input", "sizes"])
    paths["scales"] = _legacy_export(_trained(_ScalesSRCNN), (X, torch.tensor([1.0, 1.0, 3.0, 3.0])),
                                     folder / "scales.onnx", ["input", "scales"], {"input": {2: "height", 3: "width"}})
    for factor in (2, 3):
        model = onnx.load(paths["scales"])
        model.graph.input.remove(next(i for i in model.graph.input if i.name == "scales"))
        value = np.array([1, 1, factor, factor], dtype=np.float32)
        model.graph.initializer.append(onnx.numpy_helper.from_array(value, "scales"))
        paths[f"frozen_x{factor}"] = folder / f"frozen_x{factor}.onnx"
        onnx.save(model, paths[f"frozen_x{factor}"])
    paths["int_factor"] = folder / "int_factor.onnx"
    torch.onnx.export(_trained(_IntFactorSRCNN), (X, torch.tensor(3)), paths["int_factor"], dynamo=True,
                      external_data=False, verbose=False, input_names=["input", "factor"], output_names=["output"])
    paths["not_onnx"] = folder / "notes.onnx"
    paths["not_onnx"].write_text("not a model")
    return paths


def test_every_exercise_says_not_attempted_without_its_variable():
    for exercise in (q1, q2, q3):
        outcome = exercise.check()
        assert outcome.status == NOT_ATTEMPTED and not outcome
        assert exercise.variables[0] in outcome.message


def test_every_exercise_has_hints_and_a_solution():
    for exercise in (q1, q2, q3):
        assert "Hint 1/2" in repr(exercise.hint(1))
        assert "torch" in exercise.solution().body or "onnx" in exercise.solution().body


def test_q1_accepts_a_sizes_input_that_matches_the_shipped_srcnn(models):
    outcome = q1.check(ex1_path=models["sizes"])
    assert outcome.status == CORRECT, outcome.message


def test_q1_rejects_a_frozen_model_and_says_so(models):
    outcome = q1.check(ex1_path=models["fixed_x3"])
    assert outcome.status == INCORRECT
    assert "2 graph inputs" in outcome.message and "frozen" in outcome.message


def test_q1_rejects_a_float_scales_input(models):
    outcome = q1.check(ex1_path=models["scales"])
    assert outcome.status == INCORRECT and "int64" in outcome.message


def test_q1_rejects_untrained_weights(models):
    outcome = q1.check(ex1_path=models["sizes_random"])
    assert outcome.status == INCORRECT and "srcnn_x234.pth" in outcome.message


def test_q1_reports_missing_and_broken_files(models, tmp_path):
    assert "no such file" in q1.check(ex1_path=tmp_path / "nothing.onnx").message
    assert "not a valid ONNX model" in q1.check(ex1_path=models["not_onnx"]).message
    assert "should be a str or Path" in q1.check(ex1_path=3).message


def test_q2_accepts_the_edited_x2_model(models):
    outcome = q2.check(ex2_path=models["frozen_x2"])
    assert outcome.status == CORRECT, outcome.message


def test_q2_rejects_the_unedited_dynamic_model(models):
    outcome = q2.check(ex2_path=models["scales"])
    assert outcome.status == INCORRECT and "1 graph input" in outcome.message


def test_q2_rejects_a_model_frozen_at_the_wrong_factor(models):
    outcome = q2.check(ex2_path=models["frozen_x3"])
    assert outcome.status == INCORRECT and "output shape" in outcome.message


def test_q3_accepts_an_integer_factor_model_from_the_default_exporter(models):
    outcome = q3.check(ex3_path=models["int_factor"])
    assert outcome.status == CORRECT, outcome.message


def test_q3_rejects_a_float_scales_input_and_a_frozen_model(models):
    scales = q3.check(ex3_path=models["scales"])
    assert scales.status == INCORRECT and "int64 scalar" in scales.message
    frozen = q3.check(ex3_path=models["fixed_x3"])
    assert frozen.status == INCORRECT and "2 graph inputs" in frozen.message


def test_q3_rejects_custom_domain_nodes(models, tmp_path):
    model = onnx.load(models["int_factor"])
    model.graph.node[0].domain = "custom"
    model.opset_import.append(onnx.helper.make_opsetid("custom", 1))
    path = tmp_path / "custom.onnx"
    onnx.save(model, path)
    outcome = q3.check(ex3_path=path)
    assert outcome.status == INCORRECT and "non-standard ops custom::" in outcome.message

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
from onnxscript import opset20 as op

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


@torch.library.custom_op("labkit_tests::resize_by", mutates_args=())
def _resize_by(image: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    return F.interpolate(image, scale_factor=scales.tolist()[-2:], mode="bicubic", align_corners=False)


@_resize_by.register_fake
def _(image, scales):
    ctx = torch.library.get_ctx()
    return image.new_empty(image.shape[0], image.shape[1], ctx.new_dynamic_size(), ctx.new_dynamic_size())


def _resize_by_onnx(image, scales):
    return op.Resize(image, None, scales, mode="cubic", cubic_coeff_a=-0.75,
                     coordinate_transformation_mode="pytorch_half_pixel", nearest_mode="floor")


class _OpSRCNN(SRCNN):
    def upsample(self, x, scales):
        return torch.ops.labkit_tests.resize_by(x, scales)


def _default_export(model, args, path, dims):
    Dim = torch.export.Dim
    shapes = ({axis: Dim(name) for axis, name in dims.items()}, None)
    torch.onnx.export(model, args, path, dynamo=True, external_data=False, verbose=False,
                      input_names=["input", "scales"], output_names=["output"], dynamic_shapes=shapes,
                      custom_translation_table={torch.ops.labkit_tests.resize_by.default: _resize_by_onnx})
    return path


class _SizesSRCNN(SRCNN):
    def upsample(self, x, sizes):
        return _ResizeTo.apply(x, sizes)


class _ScalesSRCNN(SRCNN):
    def upsample(self, x, scales):
        return _ResizeBy.apply(x, scales)


class _IntFactorSRCNN(SRCNN):
    def upsample(self, x, upscale_factor):
        factor = upscale_factor.item()
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
    scales = torch.tensor([1.0, 1.0, 2.5, 2.5])
    paths["batch"] = _default_export(_trained(_OpSRCNN), (X, scales), folder / "batch.onnx",
                                     {0: "batch", 2: "height", 3: "width"})
    paths["static_batch"] = _default_export(_trained(_OpSRCNN), (X, scales), folder / "static_batch.onnx",
                                            {2: "height", 3: "width"})
    paths["batch_legacy"] = _legacy_export(_trained(_ScalesSRCNN), (X, torch.tensor([1.0, 1.0, 3.0, 3.0])),
                                           folder / "batch_legacy.onnx", ["input", "scales"],
                                           {"input": {0: "batch", 2: "height", 3: "width"}})
    paths["batch_random"] = _default_export(_OpSRCNN().eval(), (X, scales), folder / "batch_random.onnx",
                                            {0: "batch", 2: "height", 3: "width"})
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
        assert "Hint 1/" in repr(exercise.hint(1))
        assert "torch" in exercise.solution().body or "onnx" in exercise.solution().body


def test_q1_accepts_a_dynamic_batch_from_either_exporter(models):
    for name in ("batch", "batch_legacy"):
        outcome = q1.check(ex1_path=models[name])
        assert outcome.status == CORRECT, (name, outcome.message)


def test_q1_rejects_a_fixed_batch_and_names_the_dim(models):
    outcome = q1.check(ex1_path=models["static_batch"])
    assert outcome.status == INCORRECT
    assert "batch (dim 0) is fixed at 1" in outcome.message


def test_q1_rejects_the_lessons_legacy_file_and_a_frozen_factor(models):
    outcome = q1.check(ex1_path=models["scales"])  # dynamic height and width, batch fixed at 1
    assert outcome.status == INCORRECT and "batch (dim 0)" in outcome.message
    frozen = q1.check(ex1_path=models["fixed_x3"])
    assert frozen.status == INCORRECT and "frozen" in frozen.message


def test_q1_rejects_untrained_weights(models):
    outcome = q1.check(ex1_path=models["batch_random"])
    assert outcome.status == INCORRECT and "srcnn_x234.pth" in outcome.message


def test_q2_accepts_a_sizes_input_that_matches_the_shipped_srcnn(models):
    outcome = q2.check(ex2_path=models["sizes"])
    assert outcome.status == CORRECT, outcome.message


def test_q2_rejects_a_frozen_model_and_says_so(models):
    outcome = q2.check(ex2_path=models["fixed_x3"])
    assert outcome.status == INCORRECT
    assert "2 graph inputs" in outcome.message and "frozen" in outcome.message


def test_q2_rejects_a_float_scales_input(models):
    outcome = q2.check(ex2_path=models["scales"])
    assert outcome.status == INCORRECT and "int64" in outcome.message


def test_q2_rejects_untrained_weights(models):
    outcome = q2.check(ex2_path=models["sizes_random"])
    assert outcome.status == INCORRECT and "srcnn_x234.pth" in outcome.message


def test_q2_reports_missing_and_broken_files(models, tmp_path):
    assert "no such file" in q2.check(ex2_path=tmp_path / "nothing.onnx").message
    assert "not a valid ONNX model" in q2.check(ex2_path=models["not_onnx"]).message
    assert "should be a str or Path" in q2.check(ex2_path=3).message


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

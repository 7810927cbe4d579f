"""Lesson 03 exercises: a wrong answer is never Correct, a right one is (a missing one: test_exercises_all)."""
from __future__ import annotations

import warnings

import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as F

from labkit.exercises.core import CORRECT
from labkit.exercises.lesson03 import q1, q2, q3
from labkit.srcnn import SRCNN, load_srcnn
from onnxscript import opset20 as op
from wrong_answers import WrongAnswer, assert_rejected, params

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


def test_q1_accepts_a_dynamic_batch_from_either_exporter(models):
    for name in ("batch", "batch_legacy"):
        outcome = q1.check(ex1_path=models[name])
        assert outcome.status == CORRECT, (name, outcome.message)


def test_q2_accepts_a_sizes_input_that_matches_the_shipped_srcnn(models):
    outcome = q2.check(ex2_path=models["sizes"])
    assert outcome.status == CORRECT, outcome.message


def test_q3_accepts_an_integer_factor_model_from_the_default_exporter(models):
    outcome = q3.check(ex3_path=models["int_factor"])
    assert outcome.status == CORRECT, outcome.message


# --- the catalogue: plausible wrong answers, each rejected naming its fault ----------------------------------

@torch.library.custom_op("labkit_tests::resize_int", mutates_args=())
def _resize_int(image: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return F.interpolate(image, scale_factor=float(factor), mode="bicubic", align_corners=False)


@_resize_int.register_fake
def _(image, factor):
    ctx = torch.library.get_ctx()
    return image.new_empty(image.shape[0], image.shape[1], ctx.new_dynamic_size(), ctx.new_dynamic_size())


def _resize_int_onnx(image, factor):
    side = op.Cast(op.Reshape(factor, op.Constant(value_ints=[1])), to=1)
    scales = op.Concat(op.Constant(value_floats=[1.0, 1.0]), side, side, axis=0)
    return op.Resize(image, None, scales, mode="cubic", cubic_coeff_a=-0.75,
                     coordinate_transformation_mode="pytorch_half_pixel", nearest_mode="floor")


class _IntOpSRCNN(SRCNN):
    """Section 4's technique on an integer factor: standard ONNX ops in the file, but a custom op all the same."""

    def upsample(self, x, factor):
        return torch.ops.labkit_tests.resize_int(x, factor)


class _ResizeByInt(torch.autograd.Function):
    @staticmethod
    def forward(ctx, image, factor):
        return F.interpolate(image, scale_factor=float(factor), mode="bicubic", align_corners=False)

    @staticmethod
    def symbolic(g, image, factor):
        side = g.op("Cast", g.op("Reshape", factor, g.op("Constant", value_t=torch.tensor([1]))), to_i=1)
        scales = g.op("Concat", g.op("Constant", value_t=torch.tensor([1.0, 1.0])), side, side, axis_i=0)
        roi = g.op("Constant", value_t=torch.tensor([], dtype=torch.float32))
        return g.op("Resize", image, roi, scales, mode_s="cubic", cubic_coeff_a_f=-0.75,
                    coordinate_transformation_mode_s="pytorch_half_pixel", nearest_mode_s="floor")


class _SymbolicIntSRCNN(SRCNN):
    def upsample(self, x, factor):
        return _ResizeByInt.apply(x, factor)


def _int_op_file(tmp_path):
    path = tmp_path / "int_op.onnx"
    torch.onnx.export(_trained(_IntOpSRCNN), (X, torch.tensor(3)), path, dynamo=True, external_data=False,
                      verbose=False, input_names=["input", "factor"], output_names=["output"],
                      custom_translation_table={torch.ops.labkit_tests.resize_int.default: _resize_int_onnx})
    return {"ex3_path": path}


def _symbolic_int_file(tmp_path):
    return {"ex3_path": _legacy_export(_trained(_SymbolicIntSRCNN), (X, torch.tensor(3)), tmp_path / "sym.onnx",
                                       ["input", "factor"], {"input": {2: "height", 3: "width"}})}


def _scales_rewired(source, tmp_path, order):
    """The batch file with its scales permuted before Resize: what a swapped or single factor looks like."""
    model = onnx.load(source)
    resize = next(node for node in model.graph.node if node.op_type == "Resize")
    model.graph.initializer.append(onnx.numpy_helper.from_array(np.array(order, np.int64), "order"))
    model.graph.node.insert(0, onnx.helper.make_node("Gather", [resize.input[2], "order"], ["rewired"]))
    resize.input[2] = "rewired"
    onnx.save(model, tmp_path / "rewired.onnx")
    return {"ex1_path": tmp_path / "rewired.onnx"}


def _no_inputs(tmp_path):
    """The fixed x3 file with its image baked in as a constant: a file with no graph inputs at all."""
    model = onnx.load(MODELS["fixed_x3"])
    image = model.graph.input[0]
    model.graph.initializer.append(onnx.numpy_helper.from_array(X.numpy(), image.name))
    del model.graph.input[0]
    onnx.save(model, tmp_path / "no_inputs.onnx")
    return {"ex2_path": tmp_path / "no_inputs.onnx"}


MODELS = {}  # filled once by the module fixture below: the catalogue's makers read it


@pytest.fixture(scope="module", autouse=True)
def _catalogue_models(models):
    MODELS.update(models)


WRONG_ANSWERS = [
    WrongAnswer(q1, "the batch left fixed", lambda t: {"ex1_path": MODELS["static_batch"]},
                fault="batch (dim 0) is fixed at 1"),
    WrongAnswer(q1, "section 3's legacy file as it is", lambda t: {"ex1_path": MODELS["scales"]},
                fault="its batch (dim 0) is fixed"),
    WrongAnswer(q1, "the fixed x3 model", lambda t: {"ex1_path": MODELS["fixed_x3"]}, fault="frozen"),
    WrongAnswer(q1, "untrained weights", lambda t: {"ex1_path": MODELS["batch_random"]}, fault="srcnn_x234.pth"),
    WrongAnswer(q1, "height and width factors swapped", lambda t: _scales_rewired(MODELS["batch"], t, [0, 1, 3, 2]),
                fault="height and width factors are swapped"),
    WrongAnswer(q1, "one factor for both axes", lambda t: _scales_rewired(MODELS["batch"], t, [0, 1, 2, 2]),
                fault="one factor was used for both sides"),
    WrongAnswer(q2, "the fixed x3 model (sizes frozen)", lambda t: {"ex2_path": MODELS["fixed_x3"]},
                fault="the value was frozen into a constant"),
    WrongAnswer(q2, "float scales instead of int64 sizes", lambda t: {"ex2_path": MODELS["scales"]},
                fault="should be int64 (Resize's sizes)"),
    WrongAnswer(q2, "untrained weights", lambda t: {"ex2_path": MODELS["sizes_random"]}, fault="srcnn_x234.pth"),
    WrongAnswer(q2, "a file that is not ONNX", lambda t: {"ex2_path": MODELS["not_onnx"]},
                fault="not a valid ONNX model"),
    WrongAnswer(q2, "a file with no inputs at all", _no_inputs, fault="has no graph inputs at all"),
    WrongAnswer(q2, "a number, not a path", lambda t: {"ex2_path": 3}, fault="should be a str or Path"),
    WrongAnswer(q3, "float scales (section 4's file)", lambda t: {"ex3_path": MODELS["batch"]},
                fault="int64 scalar"),
    WrongAnswer(q3, "the fixed x3 model", lambda t: {"ex3_path": MODELS["fixed_x3"]}, fault="2 graph inputs"),
    WrongAnswer(q3, "section 4's custom op on an int factor", _int_op_file,
                fault="exported through the custom op labkit_tests::resize_int"),
    WrongAnswer(q3, "the legacy symbolic on an int factor", _symbolic_int_file,
                fault="this exercise asks for the default exporter"),
    WrongAnswer(q3, "a custom-domain node", lambda t: _custom_domain(t), fault="non-standard ops custom::"),
]


def _custom_domain(tmp_path):
    model = onnx.load(MODELS["int_factor"])
    model.graph.node[0].domain = "custom"
    model.opset_import.append(onnx.helper.make_opsetid("custom", 1))
    onnx.save(model, tmp_path / "custom.onnx")
    return {"ex3_path": tmp_path / "custom.onnx"}


@pytest.mark.parametrize("wrong", params(WRONG_ANSWERS))
def test_wrong_answer_is_rejected_naming_its_fault(wrong, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert_rejected(wrong, tmp_path)

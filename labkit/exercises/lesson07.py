"""Lesson 07 exercises: three broken exports the lesson did not show, each checked on the fixed file.

    from labkit.exercises.lesson07 import q1, q2, q3

Every check re-runs the learner's saved file in ONNX Runtime on inputs the export never saw and
compares it with the torch model the lesson defined (the context variable); none reads source text.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import helper

from ..compare import compare_with_torch
from ..onnxfile import TensorSpec, input_specs, output_specs
from ..report import first_line
from .checks import require_file, require_onnx_file
from .core import Exercise, Incorrect, bind

__all__ = ["q1", "q2", "q3"]

_TARGET_IR, _TARGET_OPSET = 8, 17
CHECK_SHAPES_Q3 = ((3, 4, 8), (1, 9, 8))  # batch and token counts the lesson's examples never had


def _default_opset(model: onnx.ModelProto) -> int | None:
    return next((imp.version for imp in model.opset_import if imp.domain in ("", "ai.onnx")), None)


def _shape_for(spec: TensorSpec, sizes: dict[int, int]) -> tuple[int, ...]:
    """A concrete shape for `spec`: fixed dims as declared, symbolic ones from `sizes` (by axis), else 3."""
    return tuple(d if isinstance(d, int) else sizes.get(axis, 3) for axis, d in enumerate(spec.shape))


def _compare(name: str, torch_model, model: onnx.ModelProto, x: np.ndarray, what: str) -> None:
    """Raise Incorrect unless ONNX Runtime on `model` matches `torch_model` for input `x` (described by `what`)."""
    try:
        result = compare_with_torch(torch_model, model, x, backends=("onnxruntime",))
    except Exception as error:  # ORT refused the input: the file cannot take this shape
        raise Incorrect(f"`{name}` fails for {what}: {first_line(error)}") from None
    if not result:
        raise Incorrect(f"`{name}` does not match the torch model for {what}: {repr(result).splitlines()[-1]}")


def _one_input_with_free_axes(model, layout: str, module: str, axes, fix) -> TensorSpec:
    """The model's one input of rank 3 (`layout`), with each (axis, label) of `axes` left free, else Incorrect.

    `fix(label)` ends the message for a fixed axis with what to change in the export.
    """
    specs = input_specs(model)
    if len(specs) != 1 or len(specs[0].shape) != 3:
        raise Incorrect(f"expected one input of rank 3 {layout}, found "
                        f"{[(s.name, s.shape_text()) for s in specs]}: export `{module}` itself")
    spec = specs[0]
    for axis, label in axes:
        if isinstance(spec.shape[axis], int):
            raise Incorrect(f"input {spec.name!r} is saved as {spec.shape_text()}: axis {axis} ({label}) is fixed "
                            f"to {spec.shape[axis]}{fix(label)}")
    return spec


# ------------------------------------------------------------------------------------------------ q1
def _check_q1(ex1_path, smoother) -> str:
    model = require_onnx_file("ex1_path", ex1_path)
    spec = _one_input_with_free_axes(
        model, "(batch, 2, time)", "smoother", ((0, "batch"), (2, "time")),
        lambda label: f". Declare it in dynamic_shapes and export with an example whose {label} size is at least 2")
    rng = np.random.default_rng(7)
    for shape in [(3, 2, 7), (2, 2, 16)]:
        x = rng.standard_normal(shape).astype(np.float32)
        _compare("ex1_path", smoother, model, x, f"an input of shape {shape}")
    return f"input {spec.shape_text()}: matches torch for shapes (3, 2, 7) and (2, 2, 16)"


# ------------------------------------------------------------------------------------------------ q2
def _check_q2(ex2_path, scorer) -> str:
    model = require_onnx_file("ex2_path", ex2_path)
    specs, outputs = input_specs(model), output_specs(model)
    if len(specs) != 1 or len(outputs) != 1 or len(specs[0].shape) != 2:
        raise Incorrect(f"expected one input (batch, 6) and one output, found inputs "
                        f"{[s.shape_text() for s in specs]} and {len(outputs)} output(s): export `scorer` itself")
    rng = np.random.default_rng(11)
    shape = _shape_for(specs[0], {0: 3})
    usual = rng.standard_normal(shape).astype(np.float32)
    _compare("ex2_path", scorer, model, usual, "ordinary inputs (values around 1)")
    large = (rng.standard_normal(shape) * 1000).astype(np.float32)  # scores in the hundreds: exp() overflows
    try:
        got = next(iter(compare_with_torch(scorer, model, large, backends=("onnxruntime",)).rows))
    except Exception as error:
        raise Incorrect(f"`ex2_path` fails for large inputs: {first_line(error)}") from None
    if not got.passed:
        nan = " and returns NaN where torch does not: exp(x) overflows float32 above about 88" \
            if "nan" in got.detail else ""
        raise Incorrect(f"`ex2_path` matches torch for ordinary inputs, but not for inputs scaled by 1000 "
                        f"(scores in the hundreds){nan}. Shift the scores by their maximum before Exp")
    return "matches torch for ordinary inputs and for scores in the hundreds (no overflow)"


# ------------------------------------------------------------------------------------------------ q3
def _external_files(model: onnx.ModelProto) -> list[str]:
    return sorted({entry.value for init in model.graph.initializer if init.data_location == onnx.TensorProto.EXTERNAL
                   for entry in init.external_data if entry.key == "location"})


def _check_q3(ex3_path, pooler) -> str:
    path = require_file("ex3_path", ex3_path)  # loaded below without its external data, to name that fault
    header = onnx.load(str(path), load_external_data=False)
    external = _external_files(header)
    if external:
        raise Incorrect(f"'{path.name}' keeps its weights in {', '.join(external)}: the target takes one file. "
                        "Load it with onnx.load (which reads the weights) and onnx.save it again, "
                        "or export with external_data=False")
    opset = _default_opset(header)
    if opset is None or opset > _TARGET_OPSET:
        raise Incorrect(f"'{path.name}' uses opset {opset}; the target reads opsets up to {_TARGET_OPSET}")
    lowest = helper.find_min_ir_version_for(list(header.opset_import))
    if header.ir_version > _TARGET_IR:
        raise Incorrect(f"'{path.name}' has IR version {header.ir_version}; the target reads IR versions up to "
                        f"{_TARGET_IR}")
    if header.ir_version < lowest:
        raise Incorrect(f"'{path.name}' has IR version {header.ir_version}, older than opset {opset} allows "
                        f"(helper.find_min_ir_version_for says {lowest})")
    with tempfile.TemporaryDirectory() as folder:  # the file alone, as it would travel
        alone = Path(folder) / path.name
        shutil.copy(path, alone)
        model = onnx.load(str(alone))
    try:
        onnx.checker.check_model(model, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as error:
        raise Incorrect(f"onnx.checker (full_check=True) rejects '{path.name}': {first_line(error)}") from None
    spec = _one_input_with_free_axes(
        model, "(batch, tokens, 8)", "pooler", ((0, "batch"), (1, "tokens")),
        lambda label: ", so the target could only feed that size. Declare the batch and token axes dynamic "
                      "(dynamic_axes on the legacy exporter)")
    rng = np.random.default_rng(5)
    for shape in CHECK_SHAPES_Q3:  # sizes no example in the lesson used
        x = rng.standard_normal(shape).astype(np.float32)
        _compare("ex3_path", pooler, model, x, f"a new input of shape {shape}")
    shapes = " and ".join(str(s) for s in CHECK_SHAPES_Q3)
    return (f"one file, IR version {header.ir_version}, opset {opset}, checker-clean, input {spec.shape_text()}; "
            f"matches torch on new inputs of shapes {shapes}")


q1, q2, q3 = bind("07_export_clinic", [
    Exercise(
        title="A time axis that came out fixed",
        kind="transfer",
        answers=["ex1_path"],
        context=["smoother"],
        check=_check_q1,
        hints=[
            "Read the saved shape first: labkit.input_specs(q1_broken_path)[0].shape_text(). Which axis is a "
            "number instead of a name, and what did the example input have on that axis?",
            "`smoother` looks at x.shape[-1]. An example of size 1 on that axis lets the exporter fix the axis "
            "to 1 without a word; an example of size 2 or more keeps it symbolic.",
            "torch.onnx.export(smoother, (torch.randn(2, 2, 8),), dynamo=True, verbose=False, dynamic_shapes="
            "{'x': {0: Dim('batch', min=1), 2: Dim('time', min=2)}}), then .save(ex1_path).",
        ],
    ),
    Exercise(
        title="A softmax that overflows",
        kind="transfer",
        answers=["ex2_path"],
        context=["scorer"],
        check=_check_q2,
        hints=[
            "verify=True only ran the example input. Try inputs whose scores are large: "
            "torch.onnx.testing.assert_onnx_program(q2_program, args=(torch.randn(4, 6) * 1000,)).",
            "verify_onnx_program(q2_program, args=(big,), compare_intermediates=True) names the first value that "
            "differs. exp() of a float32 above about 88 is inf, and inf / inf is NaN.",
            "Softmax does not change when you subtract the row maximum: in the translation, compute "
            "op.Exp(op.Sub(x, op.ReduceMax(x, axes, keepdims=1))) and divide by its ReduceSum; export again "
            "with that function in custom_translation_table and save to ex2_path.",
        ],
    ),
    Exercise(
        title="A file for an older runtime",
        kind="transfer",
        answers=["ex3_path"],
        context=["pooler"],
        check=_check_q3,
        hints=[
            "Start from section 5: onnx.version_converter.convert_version(model, 17), set ir_version, then "
            "onnx.checker.check_model(converted, full_check=True) — and read what the checker says.",
            "The converted ReduceMean keeps an attribute that opset 17 does not know. Asking the default exporter "
            "for opset_version=17 does not help here either: look at the opset of what it writes.",
            "The legacy exporter writes opset 17 itself, in one file with IR version 8; it fixes every axis "
            "unless told otherwise: torch.onnx.export(pooler, (torch.randn(2, 5, 8),), ex3_path, dynamo=False, "
            "opset_version=17, input_names=['tokens'], output_names=['pooled'], "
            "dynamic_axes={'tokens': {0: 'batch', 1: 'tokens'}, 'pooled': {0: 'batch'}}).",
        ],
    ),
])

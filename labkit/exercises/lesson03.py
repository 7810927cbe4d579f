"""Lesson 03 exercises: a dynamic batch too, the SRCNN's output size as an input, integer factors.

Every check runs the learner's ONNX file in ONNX Runtime and compares it with the shipped SRCNN
in PyTorch (the source of truth), so a file that only looks right is not Correct.
"""
from __future__ import annotations

import re

import numpy as np
import onnx

from .checks import require_close, require_exporter, require_input_specs, require_onnx_file, run_learner_file
from .core import Exercise, Incorrect, bind

__all__ = ["q1", "q2", "q3"]

_DEFAULT_SIDES = (40, 48)   # input height, width used where the learner's file leaves them free
_ATOL = 1e-3                # on images in [0, 1]: far above float noise, far below a wrong model


def _reference(image: np.ndarray, *, size=None, factor=None) -> np.ndarray:
    """The shipped SRCNN in PyTorch: bicubic to `size` (or by `factor`, one number or (height, width)), then
    the three convolutions."""
    import torch
    import torch.nn.functional as F

    from ..srcnn import load_srcnn

    model = load_srcnn()
    with torch.no_grad():
        x = torch.from_numpy(image)
        if size is not None:
            up = F.interpolate(x, size=tuple(size), mode="bicubic", align_corners=False)
        else:
            up = model.upsample(x, factor)
        return model.refine(up).numpy()


def _image_input(model: onnx.ModelProto, name: str) -> tuple[str, np.ndarray]:
    """The model's image input (first graph input, float32 rank 4) and a test image that fits its fixed dims."""
    spec = require_input_specs(name, model)[0]
    if spec.dtype != np.float32 or len(spec.shape) != 4:
        raise Incorrect(f"`{name}`: the first input '{spec.name}' should be the image, float32 [1, 3, H, W]; "
                        f"it is {spec.dtype} {spec.shape_text()}")
    h, w = (d if isinstance(d, int) else default for d, default in zip(spec.shape[2:], _DEFAULT_SIDES))
    image = np.random.default_rng(0).random((1, 3, h, w), dtype=np.float32)
    return spec.name, image


def _second_input(model: onnx.ModelProto, name: str, what: str):
    specs = require_input_specs(name, model)
    if len(specs) != 2:
        found = ", ".join(f"'{s.name}'" for s in specs)
        raise Incorrect(f"`{name}` should have 2 graph inputs (the image and {what}), found {len(specs)}: {found}"
                        + (": the value was frozen into a constant" if len(specs) == 1 else ""))
    return specs[1]


def _run(name: str, model: onnx.ModelProto, feeds: dict, what: str) -> np.ndarray:
    return run_learner_file(name, model, feeds, what)[0]


def _compare(name: str, what: str, got: np.ndarray, expected: np.ndarray, factors: tuple | None = None) -> None:
    if got.shape != expected.shape and factors is not None:
        (h, w), (fh, fw) = expected.shape[2:], factors
        side = tuple(got.shape[2:])
        source = (round(h / fh), round(w / fw))  # the input's sides, back from the expected output
        if side == (int(source[0] * fw), int(source[1] * fh)):
            raise Incorrect(f"`{name}` at {what}: output {side[0]}x{side[1]}, expected {h}x{w}: the height and "
                            "width factors are swapped; Resize's scales are [1, 1, height factor, width factor]")
        if side in ((int(source[0] * fh), int(source[1] * fh)), (int(source[0] * fw), int(source[1] * fw))):
            raise Incorrect(f"`{name}` at {what}: output {side[0]}x{side[1]}, expected {h}x{w}: one factor was "
                            "used for both sides, but each axis has its own (scales[2] for the height, scales[3] "
                            "for the width)")
    if got.shape != expected.shape:
        raise Incorrect(f"`{name}` at {what}: output shape {got.shape}, expected {expected.shape}")
    require_close(name, f"{what}, against the shipped SRCNN", expected, got, atol=_ATOL, rtol=0.0,
                  fix="load data/srcnn_x234.pth and keep bicubic, align_corners=False")


# --- q1: a batch too -----------------------------------------------------------------------------

# (batch, height, width, height factor, width factor), all from one file: no run has equal factors, so a file
# that swaps them or uses one for both cannot pass
BATCH_RUNS = ((3, 20, 24, 2.0, 3.0), (2, 17, 13, 2.5, 1.5), (1, 40, 48, 3.0, 2.0))


def _check_q1(ex1_path) -> str:
    model = require_onnx_file("ex1_path", ex1_path)
    image_name, _ = _image_input(model, "ex1_path")
    scales = _second_input(model, "ex1_path", "the scales")
    if scales.dtype != np.float32 or len(scales.shape) != 1:
        raise Incorrect(f"`ex1_path`: input '{scales.name}' should be the float32 scales [1, 1, fh, fw], it is "
                        f"{scales.dtype} {scales.shape_text()}")
    spec = require_input_specs("ex1_path", model)[0]
    for axis, what in ((0, "batch"), (2, "height"), (3, "width")):
        if isinstance(spec.shape[axis], int):
            raise Incorrect(f"`ex1_path`: input '{spec.name}' is {spec.shape_text()}: its {what} (dim {axis}) is "
                            f"fixed at {spec.shape[axis]}; make it dynamic (a torch.export.Dim in dynamic_shapes, "
                            "or an entry in dynamic_axes)")
    rng = np.random.default_rng(1)
    for batch, h, w, fh, fw in BATCH_RUNS:
        images = rng.random((batch, 3, h, w), dtype=np.float32)
        value = np.array([1, 1, fh, fw], dtype=np.float32)
        what = f"batch {batch} of {h}x{w} at scales [1, 1, {fh:g}, {fw:g}]"
        got = _run("ex1_path", model, {image_name: images, scales.name: value}, what)
        _compare("ex1_path", what, got, _reference(images, factor=(fh, fw)), factors=(fh, fw))
    runs = ", ".join(f"{b} x {h}x{w} at x{fh:g}/x{fw:g}" for b, h, w, fh, fw in BATCH_RUNS)
    return f"batches {runs} (height/width factors) from one file, matching PyTorch"


# --- q2: output size as an input -------------------------------------------------------------

def _check_q2(ex2_path) -> str:
    model = require_onnx_file("ex2_path", ex2_path)
    image_name, image = _image_input(model, "ex2_path")
    sizes = _second_input(model, "ex2_path", "the output sizes")
    if sizes.dtype != np.int64:
        raise Incorrect(f"`ex2_path`: input '{sizes.name}' should be int64 (Resize's sizes), it is {sizes.dtype}")
    length = sizes.shape[0] if len(sizes.shape) == 1 and isinstance(sizes.shape[0], int) else 4
    if len(sizes.shape) != 1 or length not in (2, 4):
        raise Incorrect(f"`ex2_path`: input '{sizes.name}' should hold [N, C, out_height, out_width] "
                        f"(shape [4]), it has shape {sizes.shape_text()}")
    h, w = image.shape[2:]
    for target in ((2 * h, 3 * w), (3 * h + 1, 2 * w + 5)):
        value = np.array(target if length == 2 else (1, 3, *target), dtype=np.int64)
        got = _run("ex2_path", model, {image_name: image, sizes.name: value}, f"sizes {value.tolist()}")
        _compare("ex2_path", f"sizes {value.tolist()}", got, _reference(image, size=target))
    return f"output sizes {2 * h}x{3 * w} and {3 * h + 1}x{2 * w + 5} from one file, matching PyTorch"


# --- q3: integer factor, default exporter, no custom op ----------------------------------------

_FX_TARGET = re.compile(r"target=torch\.ops\.(\w+)\.(\w+)")
_PYTORCH_NAMESPACES = {"aten", "prims", "higher_order"}  # PyTorch's own operators, not a custom op


def _custom_ops_translated(model: onnx.ModelProto) -> list[str]:
    """Custom ops (torch.library) that the default exporter translated, read from the nodes' fx metadata."""
    found = set()
    for node in model.graph.node:
        for prop in node.metadata_props:
            if prop.key == "pkg.torch.onnx.fx_node":
                found.update(f"{ns}::{name}" for ns, name in _FX_TARGET.findall(prop.value)
                             if ns not in _PYTORCH_NAMESPACES)
    return sorted(found)


def _check_q3(ex3_path) -> str:
    model = require_onnx_file("ex3_path", ex3_path)
    custom = sorted({f"{n.domain}::{n.op_type}" for n in model.graph.node if n.domain not in ("", "ai.onnx")})
    if custom:
        raise Incorrect(f"`ex3_path` uses non-standard ops {', '.join(custom)}: this exercise asks for standard "
                        "PyTorch ops only (interpolate with size=...)")
    image_name, image = _image_input(model, "ex3_path")
    factor = _second_input(model, "ex3_path", "the integer factor")
    if factor.dtype != np.int64 or len(factor.shape) > 1 or (factor.shape and factor.shape[0] != 1):
        raise Incorrect(f"`ex3_path`: input '{factor.name}' should be an int64 scalar like torch.tensor(3), "
                        f"it is {factor.dtype} {factor.shape_text()}")
    require_exporter("ex3_path", model, "default")
    translated = _custom_ops_translated(model)
    if translated:
        raise Incorrect(f"`ex3_path` was exported through the custom op {', '.join(translated)} (its translation "
                        "wrote the Resize): this exercise asks for no custom op at all, only PyTorch's own ops "
                        "(interpolate with size=...) that torch.export can follow")
    for f in (2, 4):
        value = np.array(f if not factor.shape else [f], dtype=np.int64)
        got = _run("ex3_path", model, {image_name: image, factor.name: value}, f"factor {f}")
        _compare("ex3_path", f"factor {f}", got, _reference(image, factor=f))
    return "x2 and x4 from one file, standard ONNX ops only, matching PyTorch"


q1, q2, q3 = bind("03_dynamic_srcnn", [
    Exercise(
        title="A batch of photos, any size, any factor",
        kind="warm-up",
        answers=["ex1_path"],
        check=_check_q1,
        hints=[
            "Section 4's export already frees the height and the width with `dynamic_shapes`; the batch is dim 0 "
            "of the same input. (Legacy exporter: section 3's `dynamic_axes` dict, with 0 added.)",
            "Export `op_model` as section 4 does, with `dynamic_shapes=({0: torch.export.Dim(\"batch\"), "
            "2: torch.export.Dim(\"height\"), 3: torch.export.Dim(\"width\")}, None)` and the same "
            "`custom_translation_table`.",
        ],
    ),
    Exercise(
        title="The output size as an input",
        answers=["ex2_path"],
        check=_check_q2,
        hints=[
            "ONNX `Resize(X, roi, scales, sizes)` takes the output size as its fourth input; when `sizes` is given, "
            "`scales` must be empty. In PyTorch, `F.interpolate(x, size=(h, w), ...)` is the matching call.",
            "Copy `BicubicResize` (section 3) and change two things: `forward` calls "
            "`F.interpolate(image, size=sizes.tolist()[-2:], ...)`, and `symbolic` passes an empty float "
            "Constant as both `roi` and `scales`, then `sizes`.",
            "`empty = g.op(\"Constant\", value_t=torch.tensor([], dtype=torch.float32))`, then "
            "`g.op(\"Resize\", image, empty, empty, sizes, mode_s=\"cubic\", ...)` with the attributes of section 3; "
            "a `SizesSRCNN(SRCNN)` whose `upsample` applies it; export with "
            "`(x, torch.tensor([1, 3, 300, 200]))`, `dynamo=False, opset_version=11`.",
        ],
    ),
    Exercise(
        title="Integer factors without a custom op",
        answers=["ex3_path"],
        check=_check_q3,
        hints=[
            "Section 2 showed that under `torch.export`, `.item()` gives a symbolic integer (a `SymInt`), and that "
            "`scale_factor=` refuses it. `F.interpolate` has a second way to say how big: `size=(height, width)`, "
            "and sizes may be symbolic.",
            "In `upsample`: `factor = upscale_factor.item()`, then "
            "`F.interpolate(x, size=(x.shape[2] * factor, x.shape[3] * factor), mode=\"bicubic\", "
            "align_corners=False)`; export with `(x, torch.tensor(3))`, `dynamo=True` and "
            "`input_names=[\"input\", \"factor\"]`.",
        ],
    ),
])

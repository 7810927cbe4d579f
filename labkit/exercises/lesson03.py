"""Lesson 03 exercises: the SRCNN's output size as an input, freezing a factor back, integer factors.

Every check runs the learner's ONNX file in ONNX Runtime and compares it with the shipped SRCNN
in PyTorch (the source of truth), so a file that only looks right is not Correct.
"""
from __future__ import annotations

import numpy as np
import onnx

from .checks import require_onnx_file
from .core import Exercise, Incorrect, bind

__all__ = ["q1", "q2", "q3"]

_DEFAULT_SIDES = (40, 48)   # input height, width used where the learner's file leaves them free
_ATOL = 1e-3                # on images in [0, 1]: far above float noise, far below a wrong model


def _reference(image: np.ndarray, *, size=None, factor=None) -> np.ndarray:
    """The shipped SRCNN in PyTorch: bicubic to `size` (or by `factor`), then the three convolutions."""
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
    from ..onnxfile import input_specs

    spec = input_specs(model)[0]
    if spec.dtype != np.float32 or len(spec.shape) != 4:
        raise Incorrect(f"`{name}`: the first input '{spec.name}' should be the image, float32 [1, 3, H, W]; "
                        f"it is {spec.dtype} {spec.shape_text()}")
    h, w = (d if isinstance(d, int) else default for d, default in zip(spec.shape[2:], _DEFAULT_SIDES))
    image = np.random.default_rng(0).random((1, 3, h, w), dtype=np.float32)
    return spec.name, image


def _second_input(model: onnx.ModelProto, name: str, what: str):
    from ..onnxfile import input_specs

    specs = input_specs(model)
    if len(specs) != 2:
        found = ", ".join(f"'{s.name}'" for s in specs)
        raise Incorrect(f"`{name}` should have 2 graph inputs (the image and {what}), found {len(specs)}: {found}"
                        + (": the value was frozen into a constant" if len(specs) == 1 else ""))
    return specs[1]


def _run(model: onnx.ModelProto, feeds: dict) -> np.ndarray:
    from ..backends import make_session

    return make_session(model).run(None, feeds)[0]


def _compare(name: str, what: str, got: np.ndarray, expected: np.ndarray) -> None:
    if got.shape != expected.shape:
        raise Incorrect(f"`{name}` at {what}: output shape {got.shape}, expected {expected.shape}")
    worst = float(np.max(np.abs(got - expected)))
    if worst > _ATOL:
        raise Incorrect(f"`{name}` at {what}: outputs differ from the shipped SRCNN by up to {worst:.3g} "
                        f"(allowed {_ATOL}): load data/srcnn_x234.pth and keep bicubic, align_corners=False")


# --- q1: output size as an input -------------------------------------------------------------

def _check_q1(ex1_path) -> str:
    model = require_onnx_file("ex1_path", ex1_path)
    image_name, image = _image_input(model, "ex1_path")
    sizes = _second_input(model, "ex1_path", "the output sizes")
    if sizes.dtype != np.int64:
        raise Incorrect(f"`ex1_path`: input '{sizes.name}' should be int64 (Resize's sizes), it is {sizes.dtype}")
    length = sizes.shape[0] if len(sizes.shape) == 1 and isinstance(sizes.shape[0], int) else 4
    if len(sizes.shape) != 1 or length not in (2, 4):
        raise Incorrect(f"`ex1_path`: input '{sizes.name}' should hold [N, C, out_height, out_width] "
                        f"(shape [4]), it has shape {sizes.shape_text()}")
    h, w = image.shape[2:]
    for target in ((2 * h, 3 * w), (3 * h + 1, 2 * w + 5)):
        value = np.array(target if length == 2 else (1, 3, *target), dtype=np.int64)
        got = _run(model, {image_name: image, sizes.name: value})
        _compare("ex1_path", f"sizes {value.tolist()}", got, _reference(image, size=target))
    return f"output sizes {2 * h}x{3 * w} and {3 * h + 1}x{2 * w + 5} from one file, matching PyTorch"




# --- q2: freeze the factor back into a constant ----------------------------------------------

def _check_q2(ex2_path) -> str:
    from ..onnxfile import input_specs

    model = require_onnx_file("ex2_path", ex2_path)
    specs = input_specs(model)
    if len(specs) != 1:
        found = ", ".join(f"'{s.name}'" for s in specs)
        raise Incorrect(f"`ex2_path` should have 1 graph input (the image), found {len(specs)}: {found}; "
                        "remove 'scales' from graph.input and add an initializer of that name")
    image_name, image = _image_input(model, "ex2_path")
    got = _run(model, {image_name: image})
    _compare("ex2_path", "its fixed factor", got, _reference(image, factor=2))
    return f"one input, output {got.shape[2]}x{got.shape[3]} from {image.shape[2]}x{image.shape[3]}: a fixed x2 model"




# --- q3: integer factor, default exporter, no custom op ----------------------------------------

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
    for f in (2, 4):
        value = np.array(f if not factor.shape else [f], dtype=np.int64)
        got = _run(model, {image_name: image, factor.name: value})
        _compare("ex3_path", f"factor {f}", got, _reference(image, factor=f))
    return "x2 and x4 from one file, standard ONNX ops only, matching PyTorch"


q1, q2, q3 = bind('03_dynamic_srcnn', [
    Exercise(
        title='output size as an input',
        answers=['ex1_path'],
        check=_check_q1,
        hints=[
        "ONNX `Resize(X, roi, scales, sizes)` takes the output size as its fourth input; when `sizes` is given, "
        "`scales` must be empty. In PyTorch, `F.interpolate(x, size=(h, w), ...)` is the matching call.",
        "Copy `BicubicResize` and change two things: `forward` calls `F.interpolate(image, size=sizes.tolist()[-2:], "
        "...)`, and `symbolic` passes an empty float Constant as both `roi` and `scales`, then `sizes`.",
    ],
    ),
    Exercise(
        title='freeze the factor back',
        answers=['ex2_path'],
        check=_check_q2,
        hints=[
        "A graph input and an initializer are both just named values: the Resize node refers to 'scales' by name. "
        "Remove the input from `model.graph.input` and append an initializer with the same name.",
        "`onnx.numpy_helper.from_array(np.array([1, 1, 2, 2], dtype=np.float32), 'scales')` makes the initializer; "
        "`model.graph.input.remove(...)` takes the ValueInfoProto itself.",
    ],
    ),
    Exercise(
        title='integer factors without a custom op',
        answers=['ex3_path'],
        check=_check_q3,
        hints=[
        "Under torch.export, `.item()` on an int tensor gives a symbolic integer. `scale_factor=` refuses it, "
        "but `F.interpolate(x, size=(x.shape[2] * f, x.shape[3] * f), ...)` accepts symbolic sizes.",
        "If the exporter complains it cannot decide something about the value (a data-dependent guard), "
        "state the fact with `torch._check(f >= 1)` right after `.item()`.",
    ],
    ),
])

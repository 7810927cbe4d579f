"""Lesson 02 exercises: a real ONNX Loop, named dynamic axes, and a trace that follows its input.

    from labkit.exercises.lesson02 import q1, q2, q3
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..backends import run_onnx, run_torch
from ..onnxfile import input_specs
from .checks import require_onnx_file, require_type
from .core import Exercise, Incorrect, bind

__all__ = ["q1", "q2", "q3"]

LOOP_COUNTS = (0, 3, 7)
CONV_SHAPES = ((1, 3, 10, 10), (2, 3, 10, 10), (1, 3, 20, 20), (3, 3, 16, 12))


def _concrete(shape: tuple, fill: int) -> tuple:
    """A run-time shape for a declared one: symbolic or unknown dims become `fill`."""
    return tuple(d if isinstance(d, int) else fill for d in shape)


def _check_q1(ex1_path: Any) -> str:
    model = require_onnx_file("ex1_path", ex1_path)
    ops = sorted({node.op_type for node in model.graph.node})
    if "Loop" not in ops:
        raise Incorrect(f"the main graph has no Loop node (its ops: {', '.join(ops)}): the loop was unrolled "
                        "at export time; script the loop (dynamo=False) or use torch.while_loop (dynamo=True)")
    specs = input_specs(model)
    if len(specs) != 2:
        raise Incorrect(f"expected 2 graph inputs (x, then the count n), found {len(specs)}: "
                        f"{[s.name for s in specs]}; an input that the graph never reads is dropped by the exporter")
    x_spec, n_spec = specs
    if x_spec.dtype != np.float32 or n_spec.dtype != np.int64:
        raise Incorrect(f"expected inputs x: float32 and n: int64, found {x_spec.name}: {x_spec.dtype} and "
                        f"{n_spec.name}: {n_spec.dtype}")
    x = np.linspace(-1.0, 1.0, int(np.prod(_concrete(x_spec.shape, 2)))).astype(np.float32)
    x = x.reshape(_concrete(x_spec.shape, 2))
    for count in LOOP_COUNTS:
        n = np.full(_concrete(n_spec.shape, 1), count, dtype=np.int64)
        got = next(iter(run_onnx(model, {x_spec.name: x, n_spec.name: n}).values()))
        expected = x * 2.0 ** count
        if got.shape != expected.shape or not np.allclose(got, expected, rtol=1e-6, atol=1e-6):
            first = float(got.reshape(-1)[0]) if got.size else float("nan")
            raise Incorrect(f"with n = {count} the model returned {first:g} for x = {float(x.reshape(-1)[0]):g}, "
                            f"expected x * 2**{count} = {float(expected.reshape(-1)[0]):g}")
    return f"a Loop with inputs {x_spec.name}, {n_spec.name}; counts {', '.join(map(str, LOOP_COUNTS))} all give x * 2**n"


def _check_q2(ex2_model: Any, ex2_path: Any) -> str:
    import torch

    require_type("ex2_model", ex2_model, torch.nn.Module)
    model = require_onnx_file("ex2_path", ex2_path)
    specs = input_specs(model)
    if len(specs) != 1 or len(specs[0].shape) != 4:
        raise Incorrect(f"expected one 4-D image input, found {[(s.name, s.shape_text()) for s in specs]}")
    spec = specs[0]
    for axis, what in ((0, "batch"), (2, "height"), (3, "width")):
        dim = spec.shape[axis]
        if isinstance(dim, int):
            raise Incorrect(f"input '{spec.name}' {spec.shape_text()}: the {what} (dim {axis}) is fixed at {dim}; "
                            "make it dynamic with dynamic_axes (dynamo=False) or dynamic_shapes (dynamo=True)")
        if dim is None or "dynamic_axes" in dim:
            raise Incorrect(f"input '{spec.name}' {spec.shape_text()}: the {what} (dim {axis}) has no name of yours; "
                            "use the dict form {axis: 'name'} instead of a list of axes")
    rng = np.random.default_rng(0)
    for shape in CONV_SHAPES:
        x = rng.random(shape, dtype=np.float32)
        got = next(iter(run_onnx(model, {spec.name: x}).values()))
        expected = run_torch(ex2_model, x)[0]
        if got.shape != expected.shape:
            raise Incorrect(f"for an input of shape {shape} the ONNX output has shape {got.shape}, "
                            f"ex2_model gives {expected.shape}")
        if not np.allclose(got, expected, rtol=1e-3, atol=1e-4):
            raise Incorrect(f"for an input of shape {shape} the ONNX output differs from ex2_model (max abs "
                            f"difference {float(np.abs(got - expected).max()):.2g}): export the model you set as ex2_model")
    return f"input {spec.shape_text()}; 4 shapes run and match ex2_model"


def _constant_factor(x: np.ndarray, got: np.ndarray) -> float | None:
    """The factor k if `got == k * x` elementwise, else None."""
    if got.shape != x.shape or np.any(x == 0):
        return None
    factors = got / x
    return float(factors[0]) if np.allclose(factors, factors[0]) else None


def _check_q3(ex3_path: Any) -> str:
    model = require_onnx_file("ex3_path", ex3_path)
    specs = input_specs(model)
    if len(specs) != 1 or len(specs[0].shape) != 1:
        raise Incorrect(f"expected one 1-D input x, found {[(s.name, s.shape_text()) for s in specs]}: "
                        "export from a 1-D example such as torch.arange(1.0, 5.0)")
    spec = specs[0]
    size = _concrete(spec.shape, 4)[0]
    runs = []
    for first in (3.0, -2.0):  # first elements that differ from any sensible export example
        x = np.linspace(first, first + 1.5, size).astype(spec.dtype or np.float32)
        runs.append((x, next(iter(run_onnx(model, {spec.name: x}).values()))))
    for x, got in runs:
        expected = x * x[0]
        if got.shape != expected.shape or not np.allclose(got, expected, rtol=1e-5, atol=1e-6):
            factors = [_constant_factor(x, g) for x, g in runs]
            hint = ""
            if None not in factors and np.isclose(factors[0], factors[1]):
                hint = (f": the model multiplies by {factors[0]:g} whatever the input, so the factor was frozen at "
                        "export (.item() gives the tracer a Python number it cannot follow; keep it a tensor)")
            raise Incorrect(f"for x = {np.round(x, 3).tolist()} the model returned {np.round(got, 3).tolist()}, "
                            f"expected x * x[0] = {np.round(expected, 3).tolist()}{hint}")
    return "the factor follows x[0] on inputs the export never saw"


q1, q2, q3 = bind('02_trace_vs_script', [
    Exercise(
        title='a loop that really loops',
        answers=['ex1_path'],
        check=_check_q1,
        hints=[
        "Tracing runs `range(n)` in Python, so the ONNX file only sees the unrolled additions. "
        "The loop must be captured as control flow.",
        "Put the loop in a `@torch.jit.script` function using `range(int(n))` and call it from forward "
        "(then export with dynamo=False), or write it with `torch.while_loop` (dynamo=True).",
    ],
    ),
    Exercise(
        title='batch, height and width, dynamic and named',
        answers=['ex2_model', 'ex2_path'],
        check=_check_q2,
        hints=[
        "Legacy exporter: dynamic_axes={'in': {0: 'batch', 2: 'height', 3: 'width'}} with input_names=['in']. "
        "Default exporter: dynamic_shapes={'input': {0: Dim('batch'), ...}} keyed by forward's argument name.",
        "A Conv2d's forward argument is called `input`; the list form [0, 2, 3] works but gives generated names.",
    ],
    ),
    Exercise(
        title='unfreeze .item()',
        answers=['ex3_path'],
        check=_check_q3,
        hints=[
        "`x[0].item()` is a Python float: the tracer records its value, not where it came from.",
        "`x * x[0]` broadcasts a 0-d tensor and stays in the graph (a Gather feeding the Mul).",
    ],
    ),
])

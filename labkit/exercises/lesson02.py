"""Lesson 02 exercises: a loop that keeps its count, a loop the data decides, a length that stays in the graph.

    from labkit.exercises.lesson02 import q1, q2, q3

Every check runs the learner's ONNX file in ONNX Runtime on inputs the export never saw.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from .checks import agrees, call_learner_model, require_input_specs, require_onnx_file, run_learner_file
from .core import Exercise, Incorrect, bind

__all__ = ["q1", "q2", "q3"]

LOOP_COUNTS = (0, 3, 7)
# Scales for exercise 2's inputs: 0 and 0.75 need no halving, 2 exactly one (the loop must stop at 1),
# 8 three (reached through a negative element), 3e30 about a hundred (no unrolled file has that many).
HALVING_SCALES = (0.0, 0.75, 2.0, 8.0, 3e30)
POOL_SHAPES = ((1, 1), (3, 7), (2, 64), (4, 2))  # (batch, steps) the check runs for exercise 3


def _concrete(shape: tuple, fill: int) -> tuple:
    """A run-time shape for a declared one: symbolic or unknown dims become `fill`."""
    return tuple(d if isinstance(d, int) else fill for d in shape)


def _only_output(name: str, model, feeds: dict, what: str) -> np.ndarray:
    return run_learner_file(name, model, feeds, what)[0]


def _require_loop(model, what: str) -> None:
    ops = sorted({node.op_type for node in model.graph.node})
    if "Loop" not in ops:
        raise Incorrect(f"the main graph has no Loop node (its ops: {', '.join(ops)}): {what}")


# --- exercise 1 -------------------------------------------------------------------------------------

def _check_q1(ex1_path: Any) -> str:
    model = require_onnx_file("ex1_path", ex1_path)
    _require_loop(model, "the loop was unrolled at export time; script the loop (dynamo=False) or use "
                         "torch.while_loop (default exporter)")
    specs = require_input_specs("ex1_path", model)
    if len(specs) != 2:
        raise Incorrect(f"expected 2 graph inputs (x, then the count n), found {len(specs)}: "
                        f"{[s.name for s in specs]}; an input that the graph never reads is dropped by the exporter")
    x_spec, n_spec = specs
    if x_spec.dtype != np.float32 or n_spec.dtype != np.int64:
        raise Incorrect(f"expected inputs x: float32 and n: int64, found {x_spec.name}: {x_spec.dtype} and "
                        f"{n_spec.name}: {n_spec.dtype}")
    shape = _concrete(x_spec.shape, 2)
    x = np.linspace(-1.0, 1.0, int(np.prod(shape))).astype(np.float32).reshape(shape)
    for count in LOOP_COUNTS:
        n = np.full(_concrete(n_spec.shape, 1), count, dtype=np.int64)
        got = _only_output("ex1_path", model, {x_spec.name: x, n_spec.name: n}, f"n = {count}")
        expected = x * np.float32(2.0 ** count)
        if not agrees(expected, got, rtol=1e-6, atol=1e-6):
            first = float(got.reshape(-1)[0]) if got.size else float("nan")
            raise Incorrect(f"with n = {count} the model returned {first:g} for x = {float(x.reshape(-1)[0]):g}, "
                            f"expected x * 2**{count} = {float(expected.reshape(-1)[0]):g}")
    counts = ", ".join(map(str, LOOP_COUNTS))
    return f"a Loop with inputs {x_spec.name}, {n_spec.name}; counts {counts} all give x * 2**n"


# --- exercise 2 -------------------------------------------------------------------------------------

def _halvings(before: float, after: float) -> str:
    """How many halvings turn max |x| = before into after, as text ('?' when it is not a power of two)."""
    if before == 0 or after == 0:
        return "0" if before == after else "?"
    count = math.log2(before / after)
    return str(round(count)) if abs(count - round(count)) < 1e-6 else "?"


def _check_q2(ex2_path: Any, HalveUntilSmall: Any) -> str:
    import torch

    model = require_onnx_file("ex2_path", ex2_path)
    _require_loop(model, "the while loop ran in Python at export time and only the halvings of the example were "
                         "recorded; the stopping test must be in the graph (torch.while_loop, or a scripted while)")
    specs = require_input_specs("ex2_path", model)
    if len(specs) != 1:
        raise Incorrect(f"expected one graph input x, found {len(specs)}: {[s.name for s in specs]}")
    spec = specs[0]
    if spec.dtype != np.float32:
        raise Incorrect(f"input '{spec.name}' is {spec.dtype}, expected float32: export from a float example")
    reference = HalveUntilSmall()
    shape = _concrete(spec.shape, 3)
    base = np.linspace(-1.0, 0.5, int(np.prod(shape))).astype(np.float32).reshape(shape)  # largest |x| is negative
    counts = []
    for scale in HALVING_SCALES:
        x = (base * np.float32(scale)).astype(np.float32)
        got = _only_output("ex2_path", model, {spec.name: x}, f"an input whose largest |x| is {np.abs(x).max():g}")
        expected = call_learner_model("HalveUntilSmall", reference, torch.from_numpy(x.copy()))[0]
        largest = float(np.abs(x).max())
        needed = _halvings(largest, float(np.abs(expected).max()))
        if not agrees(expected, got, rtol=1e-6, atol=0.0):
            done = _halvings(largest, float(np.abs(got).max())) if got.shape == x.shape else "?"
            raise Incorrect(f"for an input whose largest |x| is {largest:g} (a negative element) your file halved "
                            f"{done} time(s); HalveUntilSmall halves {needed} time(s), until the largest |x| is "
                            "at most 1")
        counts.append(needed)
    return f"a Loop; inputs that need {', '.join(counts)} halvings all match HalveUntilSmall"


# --- exercise 3 -------------------------------------------------------------------------------------

def _check_q3(ex3_path: Any, SqrtNPool: Any) -> str:
    import torch

    model = require_onnx_file("ex3_path", ex3_path)
    specs = require_input_specs("ex3_path", model)
    if len(specs) != 1 or len(specs[0].shape) != 3:
        raise Incorrect(f"expected one 3-D input (batch, steps, features), found "
                        f"{[(s.name, s.shape_text()) for s in specs]}")
    spec = specs[0]
    for axis, what in ((0, "batch"), (1, "steps")):
        dim = spec.shape[axis]
        if isinstance(dim, int):
            forced = ("; if you did, the model's code forced it static: the default exporter does that without an "
                      "error when the code needs the length as a plain Python number") if axis == 1 else ""
            raise Incorrect(f"input '{spec.name}' {spec.shape_text()}: the {what} (dim {axis}) is fixed at {dim}: "
                            f"make it dynamic with dynamic_axes (legacy) or dynamic_shapes (default){forced}")
        if dim is None or "dynamic_axes" in dim:
            raise Incorrect(f"input '{spec.name}' {spec.shape_text()}: the {what} (dim {axis}) has no name of yours; "
                            "use the dict form {axis: 'name'} of dynamic_axes, or a torch.export.Dim")
    features = _concrete(spec.shape, 8)[2]
    reference = SqrtNPool()
    rng = np.random.default_rng(2)
    wrong = []  # (steps, output / expected, max abs difference) for each shape whose numbers differ
    for batch, steps in POOL_SHAPES:
        x = (rng.random((batch, steps, features), dtype=np.float32) + 0.5).astype(np.float32)  # no zeros
        got = _only_output("ex3_path", model, {spec.name: x}, f"an input of shape {x.shape}")
        expected = call_learner_model("SqrtNPool", reference, torch.from_numpy(x.copy()))[0]
        if got.shape != expected.shape:
            raise Incorrect(f"for an input of shape {x.shape} the file's output has shape {got.shape}, "
                            f"SqrtNPool gives {expected.shape}")
        if not agrees(expected, got, rtol=1e-5, atol=1e-6):
            wrong.append((steps, got / expected, float(np.abs(got - expected).max())))
    if wrong:
        steps, ratio, difference = wrong[0]
        plural = "" if steps == 1 else "s"
        # A frozen length L0 gives output / expected = sqrt(steps / L0) at every length, with the same L0.
        frozen = {round(s / float(r.flat[0]) ** 2, 2) for s, r, _ in wrong if np.allclose(r, r.flat[0], rtol=1e-4)}
        if len(frozen) == 1 and all(np.allclose(r, r.flat[0], rtol=1e-4) for _, r, _ in wrong):
            factor = float(ratio.flat[0])
            raise Incorrect(f"for an input with {steps} step{plural} the file's output is {factor:.3g} × SqrtNPool's:"
                            f" it divides by √{frozen.pop():g} whatever the length, so the example's "
                            "length was frozen into a constant; keep the length in the graph (x.shape[1] "
                            "itself is followed; math.sqrt, int() and float() of it are not)")
        raise Incorrect(f"for an input with {steps} step{plural} the file's output differs from SqrtNPool's (max abs "
                        f"difference {difference:.2g}): export a model that computes x.sum(dim=1) / √steps")
    shapes = ", ".join(f"({b}, {s}, {features})" for b, s in POOL_SHAPES)
    return f"input {spec.shape_text()}; shapes {shapes} match SqrtNPool"


q1, q2, q3 = bind("02_trace_vs_script", [
    Exercise(
        title="A loop that keeps its count",
        kind="warm-up",
        answers=["ex1_path"],
        check=_check_q1,
        hints=[
            "Tracing runs `range(n)` in Python, so the ONNX file only sees the unrolled multiplications and the "
            "input `n` disappears (section 2). The loop must be captured as control flow.",
            "Legacy exporter: put the loop in a `@torch.jit.script` function that uses `range(int(n))` and call it "
            "from `forward`, then export with `dynamo=False` (section 2). Default exporter: `torch.while_loop` "
            "with a counter among the carried values (section 3).",
            "`forward(self, x, n)` returns `torch.while_loop(lambda i, x: i < n, lambda i, x: (i + 1, x * 2), "
            "(torch.zeros_like(n), x))[1]`; export it with `dynamo=True` and `input_names=['x', 'n']`.",
        ],
    ),
    Exercise(
        title="A loop the data decides",
        kind="transfer",
        answers=["ex2_path"],
        context=["HalveUntilSmall"],
        check=_check_q2,
        hints=[
            "Export `HalveUntilSmall` by tracing and count its nodes: the `while` ran in Python, so the file holds "
            "as many `Div` nodes as the example needed. The stopping test has to become part of the graph.",
            "`torch.while_loop(cond_fn, body_fn, carried)` takes the condition as a function of the carried values. "
            "Here nothing counts: the only carried value is `x`, and the condition is `x.abs().max() > 1`.",
            "`forward` returns `torch.while_loop(lambda x: x.abs().max() > 1, lambda x: (x / 2,), (x,))[0]`; export "
            "it with `dynamo=True`. (Legacy alternative: a `@torch.jit.script` function with "
            "`while bool(x.abs().max() > 1): x = x / 2`.)",
        ],
    ),
    Exercise(
        title="A length that must stay in the graph",
        kind="transfer",
        answers=["ex3_path"],
        context=["SqrtNPool"],
        check=_check_q3,
        hints=[
            "Export `SqrtNPool` as it is with a dynamic steps dim and run the file on 7 steps. The legacy exporter "
            "prints a `TracerWarning` and the numbers are off; the default exporter writes a file whose steps dim "
            "is fixed (read it with `labkit.input_specs`). Both come from `math.sqrt`, which needs a plain number.",
            "`x.shape[1]` itself stays in the graph (a `Shape` node in a trace, a symbolic int in `torch.export`); "
            "`math.sqrt`, `int()` and `float()` of it become constants. Take the square root with `** 0.5` or "
            "with a tensor op instead.",
            "`return x.sum(dim=1) / x.shape[1] ** 0.5`, exported with `dynamo=False, input_names=['x'], "
            "dynamic_axes={'x': {0: 'batch', 1: 'steps'}}`.",
        ],
    ),
])

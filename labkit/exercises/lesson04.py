"""Lesson 04 exercises: teach the exporters an operator they lack, checked in ONNX Runtime against PyTorch.

    from labkit.exercises.lesson04 import q1, q2, q3, q4

Every check exports a fresh model with the learner's function itself and runs it in ONNX Runtime
on inputs where a plausible wrong answer breaks (the domain's edge, values whose exp overflows,
ties, matrices that need row swaps), with PyTorch as the truth.

`torch.onnx.register_custom_op_symbolic` is global to the process, so a check never relies on what
the notebook registered. It registers the learner's function itself at CHECK_OPSET, exports at that
opset (the exporter picks the registration with the highest opset <= the export opset, so the
learner's registrations at other opsets cannot shadow it), runs it, and unregisters it again.
Registrations the learner made at other opsets are left as they were.
"""
from __future__ import annotations

import contextlib
import tempfile
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..notebook import hide_native_stdout
from ..report import first_line, strip_ansi
from .checks import ATOL, RTOL, learner_session, require_onnx_file, require_type
from .core import Exercise, Incorrect, bind

__all__ = ["q1", "q2", "q3", "q4", "CHECK_OPSET"]

CHECK_OPSET = 19
_EXP_LIMIT = 88.7  # exp(x) is inf in float32 above this


@contextlib.contextmanager
def _quiet_export() -> Iterator[None]:
    """Silence the exporters' notices and the C++ graph dump the legacy exporter prints to fd 1 on failure."""
    with hide_native_stdout(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


@contextlib.contextmanager
def _registered(name: str, symbolic: Callable) -> Iterator[None]:
    """`symbolic` registered for `name` at CHECK_OPSET inside the block only."""
    import torch

    torch.onnx.register_custom_op_symbolic(name, symbolic, CHECK_OPSET)
    try:
        yield
    finally:
        torch.onnx.unregister_custom_op_symbolic(name, CHECK_OPSET)


def _module(fn: Callable):
    """A torch module whose forward applies `fn` (torch is imported lazily to keep this file cheap to import)."""
    import torch

    class Apply(torch.nn.Module):
        def forward(self, *args):
            return fn(*args)

    return Apply().eval()


def _legacy_export(model, args: tuple, folder: str, stem: str):
    import onnx
    import torch

    path = Path(folder) / f"{stem}.onnx"
    with _quiet_export():
        torch.onnx.export(model, args, path, dynamo=False, opset_version=CHECK_OPSET, output_names=["y"])
    return onnx.load(str(path))


def _default_export(model, args: tuple, table: dict):
    """The default exporter's ModelProto; its failure becomes Incorrect with the line that names the cause."""
    import torch

    try:
        with _quiet_export():
            return torch.onnx.export(model, args, dynamo=True, verbose=False,
                                     custom_translation_table=table).model_proto
    except torch.onnx.OnnxExporterError as error:
        lines = [line for line in strip_ansi(str(error)).splitlines() if line.startswith("<class")]
        cause = lines[0].split(": ", 1)[-1] if lines else first_line(error)
        raise Incorrect(f"the default exporter failed with your translation: {cause}") from None


def _ops(model) -> str:
    from ..inspect import op_counts

    return ", ".join(sorted(op_counts(model)))


def _run(model, args: tuple) -> np.ndarray:
    from ..backends import run_onnx

    return next(iter(run_onnx(model, [a.numpy() for a in args]).values()))


def _first_mismatch(got: np.ndarray, expected: np.ndarray) -> tuple | None:
    """The index of the first element outside the kit's one rule, atol + rtol * |expected| (non-finite values equal)."""
    close = np.isclose(got, expected, rtol=RTOL, atol=ATOL) | (got == expected)
    bad = np.argwhere(~close)
    return tuple(int(i) for i in bad[0]) if len(bad) else None


def _require_function(name: str, value) -> None:
    if not callable(value):
        raise Incorrect(f"`{name}` should be a function (g, ...) -> value, but it is a {type(value).__name__}")


def _require_shape_and_dtype(name: str, got: np.ndarray, expected: np.ndarray, what: str) -> None:
    if got.shape != expected.shape:
        raise Incorrect(f"{name}: the output has shape {got.shape}, {what} gives {expected.shape}")
    if got.dtype != expected.dtype:
        raise Incorrect(f"{name}: the output is {got.dtype}, {what} gives {expected.dtype}")


# --- exercise 1: acosh ------------------------------------------------------------------------------

ACOSH_INPUTS = (1.0, 1.0 + 1e-6, 1.5, 2.0, 10.0, 1e4, 1e30)  # the domain's edge, ordinary values, huge values


def _check_q1(ex1_symbolic: Any) -> str:
    import torch

    _require_function("ex1_symbolic", ex1_symbolic)
    x = torch.tensor([ACOSH_INPUTS, [1.25, 3.0, 5.0, 7.5, 100.0, 1e3, 1e20]], dtype=torch.float32)
    torch_model = _module(torch.acosh)
    with tempfile.TemporaryDirectory() as folder, _registered("aten::acosh", ex1_symbolic):
        model = _legacy_export(torch_model, (x,), folder, "acosh")
    got, expected = _run(model, (x,)), torch.acosh(x).numpy()
    _require_shape_and_dtype("ex1_symbolic", got, expected, "torch.acosh")
    where = _first_mismatch(got, expected)
    if where is not None:
        value = float(x[where])
        hint = (": x * x overflows float32 there; emit the ONNX Acosh node itself" if value > 1e19 else
                ": the symbolic should emit one Acosh node on its input")
        raise Incorrect(f"at x = {value:g} ONNX Runtime gives {float(got[where]):g}, torch.acosh gives "
                        f"{float(expected[where]):g} (the graph's ops: {_ops(model)}){hint}")
    return f"exported with ops [{_ops(model)}]; ONNX Runtime matches torch.acosh from x = 1 to x = 1e30"


# --- exercise 2: logcumsumexp -----------------------------------------------------------------------

def _logcumsumexp_rows(length: int = 6):
    """Rows a decomposition must survive: ordinary values, values near +100 and -100, ramps -100 -> 100 and back.

    The falling ramp puts each value far below an earlier one: a shift by each position's own value
    overflows there, while the rising ramp (the lesson's case) cannot tell it from the right shift.
    """
    import torch

    noise = torch.randn(3, length, generator=torch.Generator().manual_seed(2))
    ramp = torch.linspace(-100, 100, length)
    return torch.stack([noise[0], 100 + noise[1], -100 + noise[2], ramp, ramp.flip(0)])


def _diagnose_logcumsumexp(x, dim: int, where: tuple, got: np.ndarray, expected: np.ndarray) -> str:
    import torch

    position = where[dim]
    line = x[tuple(slice(None) if a == dim % x.dim() else where[a] for a in range(x.dim()))]  # the row along dim
    prefix = line[: position + 1]
    value, truth = float(got[where]), float(expected[where])
    text = (f"for torch.logcumsumexp(x, dim={dim}) at position {position} along dim (its prefix's largest value is "
            f"{float(prefix.max()):.4g}, the whole axis's {float(line.max()):.4g}) ONNX Runtime gives {value:g}, "
            f"torch gives {truth:.6g}")
    if value == np.inf and float(line[position]) < float(prefix.max()) - _EXP_LIMIT:
        return (text + f": x here is {float(line[position]):.4g}, far below an earlier value of its prefix, so "
                "exp(earlier - here) overflows float32. Shifting each position by its own value protects only a "
                "rising row: shift by the maximum of the prefix (q2.hint(2))")
    if not np.isfinite(value) and value != -np.inf and float(prefix.max()) > _EXP_LIMIT:
        return (text + f": exp(x) overflows float32 for x > {_EXP_LIMIT}; subtract the maximum before Exp and add "
                "it back after Log")
    if value == -np.inf:
        return (text + ": every exp in this prefix underflowed to 0. Shifting by the maximum of the whole axis "
                "protects the sum from overflow, not a prefix that lies far below that maximum: each position "
                "needs the maximum of its own prefix (q2.hint(2))")
    return text + ": use the dim argument as the axis, and check the formula"


def _check_q2(ex2_symbolic: Any) -> str:
    import torch

    _require_function("ex2_symbolic", ex2_symbolic)
    rows = _logcumsumexp_rows()
    cases = {1: rows.T[None].contiguous(), -1: rows[None].expand(2, -1, -1).contiguous()}
    ops = ""
    with tempfile.TemporaryDirectory() as folder, _registered("aten::logcumsumexp", ex2_symbolic):
        for dim, x in cases.items():
            torch_model = _module(lambda t, dim=dim: torch.logcumsumexp(t, dim))
            model = _legacy_export(torch_model, (x,), folder, f"logcumsumexp_{dim}")
            got, expected = _run(model, (x,)), torch.logcumsumexp(x, dim).numpy()
            _require_shape_and_dtype("ex2_symbolic", got, expected, f"torch.logcumsumexp(x, dim={dim})")
            where = _first_mismatch(got, expected)
            if where is not None:
                raise Incorrect(_diagnose_logcumsumexp(x, dim, where, got, expected))
            ops = _ops(model)
    return (f"exported with ops [{ops}] for dim=1 and dim=-1; ONNX Runtime matches torch on values near 0, "
            "+100, -100 and on ramps from -100 to 100 and back")


# --- exercise 3: searchsorted -----------------------------------------------------------------------

SORTED = (-2.0, 0.0, 0.0, 1.5, 3.0, 3.0, 3.0, 7.0)   # ties, so left and right differ
VALUES = ((-5.0, -2.0, 0.0, 0.5), (3.0, 7.0, 8.0, float("inf")), (float("-inf"), 1.5, 2.0, 3.0))


def _check_q3(ex3_table: Any) -> str:
    import torch

    require_type("ex3_table", ex3_table, dict)
    key = torch.ops.aten.searchsorted.Tensor
    if key not in ex3_table:
        keys = ", ".join(str(k) for k in ex3_table) or "nothing"
        raise Incorrect(f"`ex3_table` maps {keys}; it needs the key torch.ops.aten.searchsorted.Tensor "
                        "(the overload the export error names)")
    sorted_1d, values = torch.tensor(SORTED), torch.tensor(VALUES)
    sorted_2d = torch.stack([sorted_1d, sorted_1d * 2, sorted_1d - 1])  # one sorted row per row of values
    calls = {"torch.searchsorted(s, v)": {}, "torch.searchsorted(s, v, right=True)": {"right": True},
             "torch.searchsorted(s, v, side='right')": {"side": "right"}}

    def every_variant(s1, s2, v):  # one export for all four calls: the default exporter takes seconds per export
        return tuple(torch.searchsorted(s1, v, **kwargs) for kwargs in calls.values()) + (torch.searchsorted(s2, v),)

    torch_model, args = _module(every_variant), (sorted_1d, sorted_2d, values)
    model = _default_export(torch_model, args, ex3_table)
    from ..backends import run_onnx

    outputs = list(run_onnx(model, [a.numpy() for a in args]).values())
    names = list(calls) + ["torch.searchsorted(s, v) with one sorted row of s per row of v"]
    for call, got, expected in zip(names, outputs, torch_model(*args)):
        expected = expected.numpy()
        _require_shape_and_dtype("ex3_table", got, expected, call)
        wrong = np.argwhere(got != expected)
        if len(wrong):
            where = tuple(int(i) for i in wrong[0])
            row = sorted_1d if "one sorted row" not in call else sorted_2d[where[0]]
            raise Incorrect(f"{call}: for v = {float(values[where]):g} in s = {[float(s) for s in row]} ONNX Runtime "
                            f"gives index {int(got[where])}, torch gives {int(expected[where])} (the graph's ops: "
                            f"{_ops(model)})")
    return ("exported with ops [" + _ops(model) + "]; left, right=True, side='right' and one sorted row per row "
            "match torch on ties, ±inf and values outside the sequence")


# --- exercise 4: a matrix inverse through com.microsoft ---------------------------------------------

def _hard_matrices(batch: int, n: int) -> dict[str, np.ndarray]:
    """Batches of invertible n x n matrices: well conditioned, scaled permutations (zero diagonal), triangular."""
    rng = np.random.default_rng(4)
    scales = np.logspace(-3, 3, n)
    shift = np.roll(np.eye(n), 1, axis=0)  # a cyclic permutation: every diagonal entry is 0
    cases = {
        "a well-conditioned random matrix": [rng.standard_normal((n, n)) + n * np.eye(n) for _ in range(batch)],
        "a permutation scaled from 1e-3 to 1e3 (zeros on the diagonal: it needs row swaps)":
            [shift * np.roll(scales, k)[:, None] for k in range(batch)],
        "an upper-triangular matrix": [np.triu(rng.standard_normal((n, n))) + 2 * np.eye(n) for _ in range(batch)],
    }
    return {what: np.stack(ms).astype(np.float32) for what, ms in cases.items()}


def _nodes_computing_outputs(graph) -> list:
    """The nodes the graph outputs depend on, walking back from them (a dangling node is left out)."""
    producer = {out: node for node in graph.node for out in node.output}
    needed, stack, seen = [], [o.name for o in graph.output], set()
    while stack:
        node = producer.get(stack.pop())
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        needed.append(node)
        stack.extend(node.input)
    return needed


def _check_q4(ex4_path: Any) -> str:
    import torch

    from ..inspect import op_label
    from ..onnxfile import input_specs

    model = require_onnx_file("ex4_path", ex4_path)
    labels = sorted({op_label(node) for node in model.graph.node})
    used = _nodes_computing_outputs(model.graph)
    if not any(node.domain == "com.microsoft" and node.op_type == "Inverse" for node in used):
        unused = sorted({op_label(node) for node in model.graph.node} - {op_label(node) for node in used})
        note = f" ({', '.join(unused)} computes nothing the output needs)" if unused else ""
        raise Incorrect(f"`ex4_path`: the graph's ops are {', '.join(labels)}{note}; no com.microsoft::Inverse "
                        "node computes the output. ONNX Runtime's inverse kernel is that node: the output must "
                        "come from it")
    specs = input_specs(model)
    if len(specs) != 1 or specs[0].dtype != np.float32 or len(specs[0].shape) not in (2, 3):
        found = ", ".join(f"'{s.name}' {s.dtype} {s.shape_text()}" for s in specs)
        raise Incorrect(f"`ex4_path` should have one float32 input of matrices [batch, n, n] or [n, n]; it has {found}")
    spec = specs[0]
    shape = [d if isinstance(d, int) else default for d, default in zip(spec.shape[-3:], (3, 4, 4)[-len(spec.shape):])]
    n = shape[-1]
    if shape[-2] != n or n < 2:
        raise Incorrect(f"`ex4_path`: input '{spec.name}' {spec.shape_text()} does not hold square matrices of size >= 2")
    session = learner_session("ex4_path", model)
    for what, matrices in _hard_matrices(shape[0] if len(shape) == 3 else 1, n).items():
        feed = matrices if len(shape) == 3 else matrices[0]
        got = session.run(None, {spec.name: feed})[0]
        expected = torch.linalg.inv(torch.from_numpy(feed)).numpy()
        _require_shape_and_dtype("`ex4_path`", got, expected, "torch.linalg.inv")
        where = _first_mismatch(got, expected)
        if where is not None:
            raise Incorrect(f"`ex4_path` on {what}: entry {list(where)} of the inverse is {float(got[where]):g}, "
                            f"torch.linalg.inv gives {float(expected[where]):g}")
    return (f"ops [{', '.join(labels)}]; ONNX Runtime inverts well-conditioned, scaled-permutation and triangular "
            f"{n}x{n} matrices as torch.linalg.inv does")


q1, q2, q3, q4 = bind("04_operator_support", [
    Exercise(
        title="A symbolic for aten::acosh",
        kind="warm-up",
        answers=["ex1_symbolic"],
        check=_check_q1,
        hints=[
            "The schema is `aten::acosh(Tensor self) -> Tensor` (print `torch.ops.aten.acosh.default._schema`), so "
            "the function is `def ex1_symbolic(g, self): ...` and returns one `g.op(...)` value; ONNX has `Acosh` "
            "since opset 9.",
            "`return g.op(\"Acosh\", self)`. To use it in your own exports, register it: "
            "`torch.onnx.register_custom_op_symbolic(\"aten::acosh\", ex1_symbolic, 9)` (the check registers it "
            "itself).",
        ],
    ),
    Exercise(
        title="A logcumsumexp that does not overflow",
        kind="transfer",
        answers=["ex2_symbolic"],
        check=_check_q2,
        hints=[
            "Start with the direct decomposition `Log(CumSum(Exp(x)))` (`@symbolic_helper.parse_args(\"v\", \"i\")` "
            "makes `dim` a Python int; CumSum takes the axis as a tensor input) and run the check. In float32, "
            "exp(x) is inf for x > 88.7. The classic cure for a log-sum-exp is to shift by the maximum m: "
            "log Σ exp(x) = m + log Σ exp(x − m), so no exp can overflow.",
            "A cumulative sum needs more than one shift. With m the maximum of the whole axis, the row "
            "[−100, …, 100] has a first prefix 200 below m: exp(−200) is 0 in float32 and log(0) = −inf. Each "
            "position i needs the maximum of *its own* prefix x_0..x_i, and ONNX has no cumulative max. But "
            "`ReduceLogSumExp` computes one row's log-sum-exp with the row's own shift (ONNX Runtime subtracts the "
            "row's max): make every prefix a row of a matrix, pad the missing entries with −inf, and reduce.",
            "`pairs = g.op(\"Unsqueeze\", self, axes)` with axes = [dim] gives pairs[..., i, j, ...] = x_j. Keep "
            "j <= i with `g.op(\"Where\", keep, pairs, minus_inf)`, where `keep` is the Constant "
            "`torch.ones(n, n, dtype=torch.bool).tril().reshape([n, n] + [1] * (rank - dim - 1))`, then "
            "`g.op(\"ReduceLogSumExp\", masked, axis, keepdims_i=0)` with axis = [dim + 1]. `self.type().dim()` and "
            "`self.type().sizes()` give rank and sizes; `dim % rank` turns dim = -1 into the last axis.",
        ],
    ),
    Exercise(
        title="torch.searchsorted on the default exporter",
        kind="transfer",
        answers=["ex3_table"],
        check=_check_q3,
        hints=[
            "Export a model that calls `torch.searchsorted` with `dynamo=True` and read the error as section 3 did: "
            "it names the overload without a translation, `torch.ops.aten.searchsorted.Tensor`. The translation "
            "takes the schema's arguments: `(sorted_sequence, self, out_int32=False, right=False, side=None, "
            "sorter=None)`.",
            "An insertion index is a count: how many entries of the sorted sequence are < v (the default, "
            "side 'left'), or <= v (`right=True` or `side='right'`). Broadcasting compares every value with every "
            "entry at once: `op.Unsqueeze(sorted_sequence, [-2])` against `op.Unsqueeze(self, [-1])`; a Python "
            "`if` on `right` and `side` picks `op.Less` or `op.LessOrEqual`.",
            "`below = op.LessOrEqual(s, v) if right or side == \"right\" else op.Less(s, v)` on the unsqueezed pair, "
            "then `op.ReduceSum(op.Cast(below, to=onnx.TensorProto.INT64), [-1], keepdims=0)`; "
            "`ex3_table = {torch.ops.aten.searchsorted.Tensor: searchsorted_onnx}`.",
        ],
    ),
    Exercise(
        title="A matrix inverse through ONNX Runtime's own domain",
        kind="transfer",
        answers=["ex4_path"],
        check=_check_q4,
        hints=[
            "ONNX has no matrix inverse, and neither exporter maps `torch.linalg.inv` (`aten::linalg_inv`; the "
            "default exporter's error names `aten.linalg_inv_ex`). ONNX Runtime ships kernels for its own domain, "
            "`com.microsoft`, as section 5 showed with `CDist`, and `Inverse` is one of them (it takes one input, "
            "a batch of square matrices, and has no attributes).",
            "Legacy exporter: a symbolic for `aten::linalg_inv` that returns `g.op(\"com.microsoft::Inverse\", "
            "self)`, registered with `torch.onnx.register_custom_op_symbolic`; ONNX cannot infer a custom op's "
            "output type, so copy the input's: `.setType(self.type())`. Default exporter: inside `forward`, "
            "`torch.onnx.ops.symbolic(\"com.microsoft::Inverse\", (m,), dtype=m.dtype, shape=m.shape, version=1)` "
            "when `torch.onnx.is_in_onnx_export()`.",
            "`def inverse_symbolic(g, self): return g.op(\"com.microsoft::Inverse\", self).setType(self.type())`; "
            "`torch.onnx.register_custom_op_symbolic(\"aten::linalg_inv\", inverse_symbolic, 9)`; then "
            "`torch.onnx.export(MatrixInverse(), (torch.rand(2, 3, 3) + torch.eye(3),), ex4_path, dynamo=False, "
            "input_names=[\"m\"])`.",
        ],
    ),
])

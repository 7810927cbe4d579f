"""Comparing outputs across backends: one verdict per output, the same text on every machine.

The rule every labkit check shares (`compare_arrays`): same shape and dtype; integers and
booleans exactly equal; floats of every width (float16 to float64, and ml_dtypes' bfloat16 and
float8 types that numpy lacks) within `atol + rtol * |expected|` (numpy's allclose), computed in
float64; NaN or infinity fails unless the caller allows non-finite values, and then they must
match exactly. Outputs are paired by name whenever both sides name them. A comparison of
nothing is an error, never a pass.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .backends import BACKENDS, check_backends, prepare_inputs, run_onnx, run_torch, to_numpy
from .onnxfile import ModelLike, OnnxFile
from .report import format_table, summary_line, verdict_rows

__all__ = ["Comparison", "Row", "compare_arrays", "compare_outputs", "compare_with_torch", "compare_models",
           "check_tolerances"]


@dataclass(frozen=True)
class Row:
    """One output of one backend checked against the expected value."""

    backend: str
    output: str
    shape: tuple
    dtype: str
    passed: bool
    max_abs: float
    max_rel: float
    needed_atol: float
    detail: str

    @property
    def subject(self) -> str:
        return f"{self.backend} '{self.output}'"


class Comparison:
    """Rows of PASSED/FAILED checks; truthy when every row passed, so code can branch on it."""

    def __init__(self, rows: list[Row], atol: float, rtol: float, expected_name: str):
        if not rows:
            raise ValueError("nothing was compared: give at least one output of one backend")
        self.rows = rows
        self.atol = atol
        self.rtol = rtol
        self.expected_name = expected_name

    def __bool__(self) -> bool:
        return all(row.passed for row in self.rows)

    @property
    def failed(self) -> list[Row]:
        return [row for row in self.rows if not row.passed]

    @property
    def max_abs(self) -> float:
        """Largest absolute difference over every row (a raw float: print it in an ignored cell)."""
        return max(row.max_abs for row in self.rows)

    @property
    def needed_atol(self) -> float:
        """The smallest atol (with this rtol) that would pass every row; inf when a row cannot pass."""
        return max(row.needed_atol for row in self.rows)

    def __repr__(self) -> str:
        table = verdict_rows((r.passed, r.subject, f"{r.shape} {r.dtype}" if r.passed else r.detail)
                             for r in self.rows)
        summary = summary_line(len(self.rows) - len(self.failed), len(self.rows), f"outputs match {self.expected_name}",
                               suffix=f"(atol={self.atol:.0e}, rtol={self.rtol:.0e})",
                               failed=[r.subject for r in self.failed])
        return f"{table}\n{summary}"

    def details(self) -> str:
        """Raw error figures and the smallest atol that passes each row (machine-dependent: ignore in nbval)."""
        rows = [(r.subject, f"max abs {r.max_abs:.3e}", f"max rel {r.max_rel:.3e}",
                 f"passes with atol >= {r.needed_atol:.1e}") for r in self.rows]
        return (format_table(None, rows) +
                f"\nsmallest atol that passes every row (rtol={self.rtol:.0e}): {self.needed_atol:.1e}")


def check_tolerances(atol: Any, rtol: Any) -> tuple[float, float]:
    """Both tolerances as floats, after checking they are finite numbers >= 0."""
    for name, value in (("atol", atol), ("rtol", rtol)):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise ValueError(f"{name} must be a number such as 1e-4, got {type(value).__name__} {value!r}")
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{name} must be a finite number >= 0, got {value}: "
                             "0 asks for exact equality, and no tolerance can be infinite")
    return float(atol), float(rtol)


def _where(flat_index: int, shape: tuple) -> list[int]:
    return [int(i) for i in np.unravel_index(flat_index, shape)] if shape else []


def _value(x: Any) -> str:
    return f"{x:.6g}" if isinstance(x, (float, np.floating)) else str(x)


def _row(backend, name, actual, passed, detail, max_abs=0.0, max_rel=0.0, needed=0.0) -> Row:
    return Row(backend, name, tuple(actual.shape), str(actual.dtype), passed, max_abs, max_rel, needed, detail)


def _wide_type(dtype: np.dtype) -> type | None:
    """complex128 or float64 for a complex or floating dtype (ml_dtypes' bfloat16 and float8 too), else None."""
    if dtype.kind in "fc":
        return np.complex128 if dtype.kind == "c" else np.float64
    if dtype.kind != "V" or dtype.names is not None:
        return None
    try:  # numpy files bfloat16 and some float8 types under kind 'V'; ml_dtypes knows which are floats
        import ml_dtypes
    except ImportError:
        return None
    if "complex" in dtype.name:
        return np.complex128
    try:
        ml_dtypes.finfo(dtype)
    except (ValueError, TypeError):  # int4 and the like: integers, compared exactly
        return None
    return np.float64


def compare_arrays(backend: str, name: str, expected: Any, actual: Any, atol: float, rtol: float, *,
                   allow_nonfinite: bool = False) -> Row:
    """One verdict row for one pair of arrays, by the rule in this module's docstring."""
    atol, rtol = check_tolerances(atol, rtol)
    expected, actual = np.asarray(expected), np.asarray(actual)
    inf = float("inf")
    if expected.shape != actual.shape:
        return _row(backend, name, actual, False, f"shape {tuple(actual.shape)}, expected {tuple(expected.shape)}",
                    inf, inf, inf)
    if expected.dtype != actual.dtype:
        return _row(backend, name, actual, False, f"dtype {actual.dtype}, expected {expected.dtype}", inf, inf, inf)
    if expected.size == 0:
        return _row(backend, name, actual, True, "")
    wide = _wide_type(expected.dtype)
    if wide is None:  # integers, booleans, strings: exactly equal
        differ = np.flatnonzero(expected.reshape(-1) != actual.reshape(-1))
        if not differ.size:
            return _row(backend, name, actual, True, "")
        first = int(differ[0])
        detail = (f"{differ.size} of {expected.size} values differ, first at {_where(first, expected.shape)}: "
                  f"got {_value(actual.reshape(-1)[first])}, expected {_value(expected.reshape(-1)[first])}")
        gap = inf if expected.dtype.kind not in "iub" else float(
            np.max(np.abs(expected.astype(np.float64) - actual.astype(np.float64))))
        return _row(backend, name, actual, False, detail, gap, inf, inf)
    exp, act = expected.astype(wide), actual.astype(wide)
    odd = ~(np.isfinite(exp) & np.isfinite(act))
    if odd.any():
        same = (np.isnan(exp) & np.isnan(act)) | (exp == act)
        bad = odd & ~same if allow_nonfinite else odd
        if bad.any():
            first = int(np.flatnonzero(bad.reshape(-1))[0])
            got, want = act.reshape(-1)[first], exp.reshape(-1)[first]
            why = "" if allow_nonfinite else " (pass allow_nonfinite=True if NaN or infinity is the right answer)"
            return _row(backend, name, actual, False,
                        f"got {_value(got)} at {_where(first, exp.shape)}, expected {_value(want)}{why}", inf, inf, inf)
    exp, act = np.where(odd, 0, exp), np.where(odd, 0, act)  # non-finite values were judged above
    diff = np.abs(exp - act)
    allowed = atol + rtol * np.abs(exp)
    max_abs = float(diff.max())
    max_rel = float(np.max(diff / np.maximum(np.abs(exp), 1e-12)))
    needed = float(np.max(np.maximum(diff - rtol * np.abs(exp), 0.0)))
    passed = bool(np.all(diff <= allowed))
    detail = ""
    if not passed:
        worst = int(np.argmax((diff - allowed).reshape(-1)))
        detail = (f"max abs {max_abs:.2e}; at {_where(worst, exp.shape)} got {_value(act.reshape(-1)[worst])}, "
                  f"expected {_value(exp.reshape(-1)[worst])} (> atol {atol:.0e} + rtol {rtol:.0e} * |expected|)")
    return _row(backend, name, actual, passed, detail, max_abs, max_rel, needed)


def _as_named(values: Any, names: Sequence[str] | None, who: str) -> dict[str, np.ndarray]:
    if isinstance(values, Mapping):
        return {str(k): to_numpy(v) for k, v in values.items()}
    values = list(values) if isinstance(values, (tuple, list)) else [values]
    names = list(names) if names is not None else [f"output_{i}" for i in range(len(values))]
    if len(values) != len(names):
        raise ValueError(f"{who} has {len(values)} output(s), but {len(names)} name(s) were given: {names}")
    return {n: to_numpy(v) for n, v in zip(names, values)}


def _pair(reference: dict, got: dict, by_name: bool, expected_name: str, backend: str) -> list[tuple]:
    """(name, expected, actual) triples: by name when both sides are named, else in order."""
    if len(got) != len(reference):
        raise ValueError(
            f"{expected_name} has {len(reference)} output(s) ({', '.join(reference)}), "
            f"{backend} has {len(got)} ({', '.join(got)}): they are not the same model's outputs"
        )
    if by_name:
        if set(got) != set(reference):
            raise ValueError(f"{backend}'s outputs are named {sorted(got)}, {expected_name}'s {sorted(reference)}: "
                             "outputs are matched by name, so the names must be the same")
        return [(name, reference[name], got[name]) for name in reference]
    return [(name, value, actual) for (name, value), actual in zip(reference.items(), got.values())]


def compare_outputs(expected: Any, candidates: Mapping[str, Any], *, names: Sequence[str] | None = None,
                    atol: float = 1e-4, rtol: float = 1e-3, expected_name: str = "expected",
                    allow_nonfinite: bool = False) -> Comparison:
    """Check each candidate's outputs against `expected`, paired by name when both sides are named.

    `expected` is named when it is a dict or when `names` is given; a candidate when it is a dict.
    A candidate given as a sequence is taken in `expected`'s order.
    """
    atol, rtol = check_tolerances(atol, rtol)
    if not isinstance(candidates, Mapping):
        raise ValueError(f"candidates must be a dict {{backend name: outputs}}, got {type(candidates).__name__}")
    if not candidates:
        raise ValueError("nothing to compare: candidates is empty; give at least one backend's outputs")
    reference = _as_named(expected, names, expected_name)
    if not reference:
        raise ValueError(f"nothing to compare: {expected_name} has no outputs")
    expected_is_named = isinstance(expected, Mapping) or names is not None
    rows = []
    for backend, values in candidates.items():
        named = isinstance(values, Mapping)
        got = _as_named(values, None if named else list(reference), backend)
        for name, exp, act in _pair(reference, got, named and expected_is_named, expected_name, backend):
            rows.append(compare_arrays(backend, name, exp, act, atol, rtol, allow_nonfinite=allow_nonfinite))
    return Comparison(rows, atol, rtol, expected_name)


def compare_with_torch(torch_model, onnx_model: ModelLike, inputs: Any, *,
                       backends: Sequence[str] = BACKENDS, atol: float = 1e-4, rtol: float = 1e-3,
                       session=None, allow_nonfinite: bool = False) -> Comparison:
    """Run `inputs` through PyTorch and through `onnx_model` on each backend; PyTorch is the truth.

    The inputs are checked against the model before anything runs. Pass an existing ONNX Runtime
    `session` of that model to skip building one (large models).
    """
    backends = check_backends(backends)
    atol, rtol = check_tolerances(atol, rtol)
    if session is not None and "onnxruntime" not in backends:
        raise ValueError("a session was given but 'onnxruntime' is not among the backends: add it, or drop session=")
    model = OnnxFile.open(onnx_model)
    feeds = prepare_inputs(model, inputs)  # labkit's input check first: clearer than torch's own dtype errors
    names = [spec.name for spec in model.outputs]
    expected = run_torch(torch_model, feeds)
    if len(expected) != len(names):
        raise ValueError(
            f"torch model returned {len(expected)} output(s), the ONNX model has {len(names)} "
            f"({', '.join(map(repr, names))}): export the same model, or compare outputs by hand"
        )
    candidates = {b: run_onnx(model, feeds, backend=b, session=session if b == "onnxruntime" else None)
                  for b in backends}
    return compare_outputs(dict(zip(names, expected)), candidates, atol=atol, rtol=rtol, expected_name="torch",
                           allow_nonfinite=allow_nonfinite)


def compare_models(reference_model: ModelLike, candidate_model: ModelLike, inputs: Any, *,
                   backend: str = "onnxruntime", atol: float = 1e-4, rtol: float = 1e-3,
                   allow_nonfinite: bool = False) -> Comparison:
    """Run two ONNX models on the same inputs (e.g. before and after an edit); the first is the truth.

    Outputs are paired by name, so a candidate that lists the same outputs in another order still matches.
    """
    expected = run_onnx(reference_model, inputs, backend=backend)
    actual = run_onnx(candidate_model, inputs, backend=backend)
    if set(expected) != set(actual):
        raise ValueError(
            f"the reference model's outputs are {sorted(expected)}, the candidate's {sorted(actual)}: outputs are "
            "paired by name, so compare models with the same output names (rename them, or use compare_outputs "
            "with a list to pair them in order)"
        )
    return compare_outputs(expected, {"candidate": actual}, atol=atol, rtol=rtol,
                           expected_name="reference model", allow_nonfinite=allow_nonfinite)

"""Comparing outputs across backends, printed as a short table that is the same on every machine."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .backends import BACKENDS, run_onnx, run_torch, to_numpy
from .models import ModelLike, output_specs

__all__ = ["Comparison", "Row", "compare_arrays", "compare_outputs", "compare_with_torch", "compare_models"]


@dataclass(frozen=True)
class Row:
    """One output of one backend checked against the expected value."""

    backend: str
    output: str
    shape: tuple
    passed: bool
    max_abs: float
    max_rel: float
    needed_atol: float
    detail: str


class Comparison:
    """Rows of PASSED/FAILED checks; truthy when every row passed, so code can branch on it."""

    def __init__(self, rows: list[Row], atol: float, rtol: float, expected_name: str):
        self.rows = rows
        self.atol = atol
        self.rtol = rtol
        self.expected_name = expected_name

    def __bool__(self) -> bool:
        return all(row.passed for row in self.rows)

    @property
    def max_abs(self) -> float:
        """Largest absolute difference over every row (a raw float: print it in an ignored cell)."""
        return max((row.max_abs for row in self.rows), default=0.0)

    def __repr__(self) -> str:
        header = ("backend", "output", "shape", "verdict")
        lines = [(r.backend, r.output, str(r.shape), "OK" if r.passed else f"FAIL ({r.detail})") for r in self.rows]
        widths = [max(len(str(x)) for x in column) for column in zip(header, *lines)]
        fmt = "  ".join(f"{{:<{w}}}" for w in widths)
        table = [fmt.format(*header).rstrip()] + [fmt.format(*line).rstrip() for line in lines]
        passed = sum(r.passed for r in self.rows)
        verdict = "PASSED" if self else "FAILED"
        table.append(
            f"{verdict}: {passed}/{len(self.rows)} outputs match {self.expected_name} "
            f"(atol={self.atol:.0e}, rtol={self.rtol:.0e})"
        )
        return "\n".join(table)

    def details(self) -> str:
        """Raw error figures and the smallest atol that would pass (machine-dependent: ignore in nbval)."""
        lines = []
        for r in self.rows:
            lines.append(f"{r.backend:<12} {r.output:<24} max abs {r.max_abs:.3e}  max rel {r.max_rel:.3e}")
        needed = max((row.needed_atol for row in self.rows), default=0.0)
        lines.append(f"smallest atol that passes every row (rtol={self.rtol:.0e}): {needed:.1e}")
        return "\n".join(lines)


def _as_named(values: Any, names: Sequence[str] | None, who: str) -> dict[str, np.ndarray]:
    if isinstance(values, Mapping):
        return {k: to_numpy(v) for k, v in values.items()}
    values = list(values) if isinstance(values, (tuple, list)) else [values]
    names = list(names) if names is not None else [f"output_{i}" for i in range(len(values))]
    if len(values) != len(names):
        raise ValueError(f"{who} returned {len(values)} output(s), but {len(names)} name(s) were given: {names}")
    return {n: to_numpy(v) for n, v in zip(names, values)}


def compare_arrays(backend: str, name: str, expected: np.ndarray, actual: np.ndarray, atol: float, rtol: float) -> Row:
    """One verdict row for one pair of arrays; the tolerance rule (numpy allclose) every labkit check shares."""
    if expected.shape != actual.shape:
        return Row(backend, name, tuple(actual.shape), False, float("inf"), float("inf"), float("inf"),
                   f"shape {tuple(actual.shape)}, expected {tuple(expected.shape)}")
    if expected.size == 0:
        return Row(backend, name, tuple(actual.shape), True, 0.0, 0.0, 0.0, "")
    exp = expected.astype(np.float64)
    act = actual.astype(np.float64)
    diff = np.abs(exp - act)
    max_abs = float(np.nanmax(diff)) if np.isfinite(diff).any() else float("inf")
    max_rel = float(np.nanmax(diff / np.maximum(np.abs(exp), 1e-12)))
    needed = float(np.nanmax(np.maximum(diff - rtol * np.abs(exp), 0.0)))
    ok = bool(np.allclose(act, exp, atol=atol, rtol=rtol, equal_nan=True))
    detail = ""
    if not ok:
        where = np.unravel_index(int(np.nanargmax(diff)), diff.shape)
        detail = f"max abs {max_abs:.2e} at {list(map(int, where))}"
    return Row(backend, name, tuple(actual.shape), ok, max_abs, max_rel, needed, detail)


def compare_outputs(expected: Any, candidates: Mapping[str, Any], *, names: Sequence[str] | None = None,
                    atol: float = 1e-4, rtol: float = 1e-3, expected_name: str = "expected") -> Comparison:
    """Check each candidate's outputs against `expected` (dicts by name, or sequences in order)."""
    if atol < 0 or rtol < 0:
        raise ValueError(f"tolerances must be >= 0, got atol={atol}, rtol={rtol}")
    reference = _as_named(expected, names, expected_name)
    rows = []
    for backend, values in candidates.items():
        got = _as_named(values, names if not isinstance(values, Mapping) else None, backend)
        if len(got) != len(reference):
            raise ValueError(
                f"{expected_name} has {len(reference)} output(s) ({', '.join(reference)}), "
                f"{backend} has {len(got)} ({', '.join(got)}): they are not the same model's outputs"
            )
        for (name, exp), act in zip(reference.items(), got.values()):
            rows.append(compare_arrays(backend, name, exp, act, atol, rtol))
    return Comparison(rows, atol, rtol, expected_name)


def compare_with_torch(torch_model, onnx_model: ModelLike, inputs: Any, *,
                       backends: Sequence[str] = BACKENDS, atol: float = 1e-4, rtol: float = 1e-3,
                       session=None) -> Comparison:
    """Run `inputs` through PyTorch and through `onnx_model` on each backend; PyTorch is the truth.

    Pass an existing ONNX Runtime `session` of that model to skip building one (large models).
    """
    names = [spec.name for spec in output_specs(onnx_model)]
    expected = run_torch(torch_model, inputs)
    if len(expected) != len(names):
        raise ValueError(
            f"torch model returned {len(expected)} output(s), the ONNX model has {len(names)} "
            f"({', '.join(map(repr, names))}): export the same model, or compare outputs by hand"
        )
    candidates = {b: run_onnx(onnx_model, inputs, backend=b, session=session if b == "onnxruntime" else None)
                  for b in backends}
    return compare_outputs(dict(zip(names, expected)), candidates, atol=atol, rtol=rtol, expected_name="torch")


def compare_models(reference_model: ModelLike, candidate_model: ModelLike, inputs: Any, *,
                   backend: str = "onnxruntime", atol: float = 1e-4, rtol: float = 1e-3) -> Comparison:
    """Run two ONNX models on the same inputs (e.g. before and after an edit); the first is the truth."""
    expected = run_onnx(reference_model, inputs, backend=backend)
    actual = run_onnx(candidate_model, inputs, backend=backend)
    if len(expected) != len(actual):
        raise ValueError(
            f"the reference model has {len(expected)} output(s) ({', '.join(expected)}), the candidate has "
            f"{len(actual)} ({', '.join(actual)}): compare models with the same outputs"
        )
    return compare_outputs(expected, {"candidate": list(actual.values())}, atol=atol, rtol=rtol,
                           expected_name="reference model")

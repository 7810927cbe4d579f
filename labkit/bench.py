"""Timing an ONNX model in ONNX Runtime (CPU) at several batch sizes: the logic behind `labkit bench`.

Before anything is allocated or timed, every setting is checked (`check_settings`, the one place),
every input is sized for every batch, inputs that are settings rather than data need a value,
and the memory of the largest batch is estimated from shape inference and refused, with the
number, when it is more than half of what the machine has available (`max_memory` changes that).
The measuring itself is labkit.measure's (time_it, fp32_ceiling, count_flops), as in Lesson 06.
labkit/commands/bench.py parses the command's options and prints the table.
"""
from __future__ import annotations

import math
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # numpy, onnx and labkit's model modules are imported inside the functions
    from .onnxfile import OnnxFile, TensorSpec

__all__ = ["MEMORY_SHARE", "check_settings", "is_batched", "resolve_shapes", "fixed_values", "random_inputs",
           "check_memory", "BenchRow", "BenchResult", "run_bench"]

MEMORY_SHARE = 0.5  # of the memory available now: the default ceiling for one benchmark run
_GIB = 1024**3
_STANDARD_DOMAINS = {"", "ai.onnx", "ai.onnx.ml", "com.microsoft", "ai.onnx.preview.training"}


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_settings(batches: Sequence[int], *, threads: int | None = None, warmup: int = 3, repeat: int = 20,
                   gflop: float | None = None, max_memory: float | None = None) -> None:
    """Every numeric setting of a benchmark, checked in one place, each error naming the option."""
    if not batches:
        raise ValueError("give at least one batch size, e.g. --batch 1,8,32")
    bad = [b for b in batches if not _is_count(b) or b < 1]
    if bad:
        raise ValueError(f"batch sizes must be >= 1, got {bad[0]}")
    for option, value, least in (("--threads", threads, 1), ("--warmup", warmup, 0), ("--repeat", repeat, 1)):
        unset = option == "--threads" and value is None  # no --threads: ONNX Runtime's choice
        if not unset and (not _is_count(value) or value < least):
            raise ValueError(f"{option} must be >= {least}, got {value}")
    if gflop is not None and not (math.isfinite(gflop) and gflop > 0):
        raise ValueError(f"--gflop must be a number > 0, got {gflop}")
    if max_memory is not None and not (math.isfinite(max_memory) and max_memory > 0):
        raise ValueError(f"--max-memory must be a number of GiB > 0, got {max_memory}")


def is_batched(spec: TensorSpec) -> bool:
    """Whether an input carries the batch on dim 0: rank >= 2, or rank 1 with a symbolic dim.

    A scalar or a fixed 1-D input (a size, an index, a scale factor) is a setting, not data.
    """
    return len(spec.shape) >= 2 or (len(spec.shape) == 1 and not _is_count(spec.shape[0]))


def _size_hint(spec: TensorSpec) -> str:
    example = "x".join(str(d) if _is_count(d) else ("1" if i == 0 else "224") for i, d in enumerate(spec.shape))
    return f"--shape {spec.name}={example}"


def resolve_shapes(specs: Sequence[TensorSpec], batch: int, overrides: Mapping[str, Sequence[int]] | None = None
                   ) -> dict[str, tuple[int, ...]]:
    """Concrete input shapes for one batch size: the model's dims, `overrides` (--shape), and `batch` on dim 0.

    Dim 0 of a batched input takes `batch` when the model leaves it symbolic; a fixed dim 0 must
    equal `batch`. Any other symbolic dim must be sized by an override, else the error names the
    --shape to add. Inputs that are not batched (`is_batched`) keep their own fixed shape.
    """
    overrides = dict(overrides or {})
    names = [s.name for s in specs]
    for name in overrides:
        if name not in names:
            raise ValueError(f"model has no input {name!r} (from --shape); its inputs are: {', '.join(map(repr, names))}")
    resolved = {}
    for spec in specs:
        dims = list(spec.shape)
        if spec.name in overrides:
            given = list(overrides[spec.name])
            if len(given) != len(dims):
                raise ValueError(f"--shape {spec.name} has {len(given)} dims, but input '{spec.name}' has rank "
                                 f"{len(dims)} {spec.shape_text()}")
            for axis, (want, got) in enumerate(zip(dims, given)):
                if _is_count(want) and want != got and axis != 0:
                    raise ValueError(f"--shape {spec.name}: dim {axis} is fixed at {want} in the model, got {got}")
            dims = [want if _is_count(want) else got for want, got in zip(dims, given)]
            if not _is_count(spec.shape[0]):
                dims[0] = None  # filled by the batch below
        if is_batched(spec):
            if _is_count(spec.shape[0]):
                if spec.shape[0] != batch:
                    raise ValueError(f"input '{spec.name}' has a fixed batch of {spec.shape[0]} {spec.shape_text()}, "
                                     f"so --batch {batch} cannot run: use --batch {spec.shape[0]}, or export with a "
                                     "dynamic batch dim (dynamic_axes / dynamic_shapes)")
            else:
                dims[0] = batch
        unsized = [d for d in dims if not _is_count(d)]
        if unsized:
            raise ValueError(f"input '{spec.name}' has symbolic dims {spec.shape_text()} that no option sizes: "
                             f"add {_size_hint(spec)} (dim 0 follows --batch)")
        resolved[spec.name] = tuple(dims)
    return resolved


def fixed_values(specs: Sequence[TensorSpec], values: Mapping[str, Sequence[float]] | None = None) -> dict:
    """The arrays of the inputs that are settings (not batched), from --value; each such input needs one."""
    import numpy as np

    values = dict(values or {})
    by_name = {s.name: s for s in specs}
    for name in values:
        if name not in by_name:
            raise ValueError(f"model has no input {name!r} (from --value); its inputs are: "
                             f"{', '.join(map(repr, by_name))}")
        if is_batched(by_name[name]):
            raise ValueError(f"--value {name}: input '{name}' {by_name[name].shape_text()} is a batch of data; "
                             "--value is for inputs that are settings (a scalar or a fixed 1-D input)")
    arrays = {}
    for spec in specs:
        if is_batched(spec):
            continue
        dtype = spec.dtype if spec.dtype is not None else np.dtype(np.float32)
        count = math.prod(spec.shape)
        if spec.name not in values:
            example = ",".join(["1"] * count)
            raise ValueError(f"input '{spec.name}' ({dtype} {spec.shape_text()}) has no batch dim: it is a setting "
                             "(a size, an index, a factor) that random numbers cannot stand for; give its value, "
                             f"e.g. --value {spec.name}={example}")
        given = values[spec.name]
        if len(given) != count:
            raise ValueError(f"--value {spec.name} gives {len(given)} number(s), but input '{spec.name}' "
                             f"{spec.shape_text()} holds {count}")
        arrays[spec.name] = np.array(given, dtype=dtype).reshape(spec.shape)
    return arrays


def random_inputs(specs: Sequence[TensorSpec], shapes: Mapping[str, Sequence[int]], seed: int = 0,
                  fixed: Mapping | None = None) -> dict:
    """Seeded inputs of the right dtype (normal floats, integers 0/1, False booleans); `fixed` ones as given."""
    import numpy as np

    rng = np.random.default_rng(seed)
    feeds = dict(fixed or {})
    for spec in specs:
        if spec.name in feeds:
            continue
        shape = tuple(shapes[spec.name])
        dtype = np.dtype(spec.dtype) if spec.dtype is not None else np.dtype(np.float32)
        if dtype.kind == "f":
            wide = dtype if dtype in (np.float32, np.float64) else np.dtype(np.float32)
            feeds[spec.name] = rng.standard_normal(shape, dtype=wide).astype(dtype, copy=False)
        elif dtype.kind in "iu":
            feeds[spec.name] = rng.integers(0, 2, size=shape).astype(dtype)
        elif dtype.kind == "b":
            feeds[spec.name] = np.zeros(shape, dtype=dtype)
        else:
            raise ValueError(f"input '{spec.name}' has dtype {dtype}, which labkit bench cannot generate")
    return feeds


def check_memory(model: OnnxFile, batch: int, shapes: Mapping[str, Sequence[int]],
                 max_memory_gib: float | None = None) -> None:
    """Refuse, with the numbers, a batch whose estimated memory is more than the ceiling (nothing allocated)."""
    from .measure import available_memory, estimate_memory

    if max_memory_gib is not None:
        budget, why = max_memory_gib * _GIB, "set by --max-memory"
    else:
        available = available_memory()
        if available is None:
            return
        budget = MEMORY_SHARE * available
        why = f"half of the {available / _GIB:.1f} GiB this machine has available now; --max-memory changes it"
    estimate = estimate_memory(model, shapes)
    if estimate.total <= budget:
        return
    per_item = (estimate.inputs + estimate.activations) / batch
    fits = int((budget - estimate.weights) // per_item) if per_item else 0
    advice = f"use --batch {fits} or less" if fits >= 1 else "even --batch 1 does not fit: use a smaller --shape"
    raise ValueError(f"--batch {batch} would need about {estimate.total / _GIB:.1f} GiB (inputs "
                     f"{estimate.inputs / _GIB:.1f}, intermediate and output tensors {estimate.activations / _GIB:.1f}, "
                     f"weights {estimate.weights / _GIB:.1f}), more than the {budget / _GIB:.1f} GiB allowed ({why}): "
                     f"{advice}")


@dataclass(frozen=True)
class BenchRow:
    batch: int
    median_ms: float
    p90_ms: float
    throughput: float
    percent_of_peak: float | None


@dataclass
class BenchResult:
    """Everything `labkit bench` measured, with the context needed to read it."""

    model: str
    threads: int | None
    shapes: dict
    gflop_per_item: float | None
    flops_source: str
    peak_gflops: float | None
    peak_source: str | None = None  # what set the ceiling: the theoretical FMA peak or a measured matmul
    rows: list = field(default_factory=list)

    def to_json(self) -> dict:
        from .doctor import package_versions
        from .measure import cpu_facts

        return {
            "model": self.model, "threads": self.threads, "inputs": {k: list(v) for k, v in self.shapes.items()},
            "gflop_per_item": self.gflop_per_item, "flops_source": self.flops_source,
            "peak_gflops": self.peak_gflops, "peak_source": self.peak_source, "rows": [vars(row) for row in self.rows],
            "machine": cpu_facts(), "versions": package_versions(("onnxruntime", "onnx", "torch", "numpy")),
        }


def _unknown_ops(proto) -> list[str]:
    local = {f.domain for f in proto.functions}
    return sorted({f"{n.domain}::{n.op_type}" for n in proto.graph.node
                   if n.domain not in _STANDARD_DOMAINS and n.domain not in local})


def _session(model: OnnxFile, threads: int | None):
    """An ORT session for `model`, or a ValueError that says why ORT refused it (custom ops named)."""
    import onnxruntime as ort

    from .backends import make_session
    from .report import first_line

    options = ort.SessionOptions()
    options.log_severity_level = 4  # fatal only: labkit reports ORT's errors itself, in one line
    try:
        return make_session(model, threads=threads, options=options)
    except Exception as error:
        unknown = _unknown_ops(model.proto)
        if unknown:
            raise ValueError(f"ONNX Runtime cannot load '{model.name}': it uses {', '.join(unknown)}, which ONNX "
                             "Runtime does not implement; register the library that does "
                             "(SessionOptions.register_custom_ops_library) or export the op as standard ONNX ops "
                             "(see Lesson 04)") from None
        raise ValueError(f"ONNX Runtime cannot load '{model.name}': {first_line(error)}") from None


def run_bench(model_path: str, batches: Sequence[int] | None = None, *, threads: int | None = None,
              shapes: Mapping[str, Sequence[int]] | None = None, values: Mapping[str, Sequence[float]] | None = None,
              warmup: int = 3, repeat: int = 20, gflop_per_item: float | None = None, max_memory: float | None = None,
              measure_peak: bool = True, progress: bool = True) -> BenchResult:
    """Time `model_path` in ONNX Runtime (CPU) at each batch size; FLOPs counted unless `gflop_per_item` is given.

    `batches` defaults to the model's fixed batch size, or 1 when the batch dim is symbolic.
    Every check (settings, shapes, values, memory) happens before anything is allocated or timed.
    """
    from .measure import count_flops, fp32_ceiling, time_it
    from .onnxfile import OnnxFile
    from .report import first_line

    model = OnnxFile.open(model_path)  # clear errors for missing / non-ONNX files and missing weights files
    specs = model.inputs
    if batches is None:
        fixed_batch = {s.shape[0] for s in specs if is_batched(s) and _is_count(s.shape[0])}
        batches = [fixed_batch.pop()] if len(fixed_batch) == 1 else [1]
    batches = list(batches)
    check_settings(batches, threads=threads, warmup=warmup, repeat=repeat, gflop=gflop_per_item,
                   max_memory=max_memory)
    per_batch = {b: resolve_shapes(specs, b, shapes) for b in batches}
    fixed = fixed_values(specs, values)
    largest = max(batches)
    check_memory(model, largest, per_batch[largest], max_memory)

    source = "given"
    if gflop_per_item is None:
        counted = count_flops(model, per_batch[batches[0]])
        source = "counted"
        gflop_per_item = counted.gflop / batches[0] if counted.total and not counted.skipped else None
        if gflop_per_item is None:
            source = "unknown (give --gflop)"
    session = _session(model, threads)
    ceiling = fp32_ceiling(threads or os.cpu_count() or 1) if (measure_peak and gflop_per_item) else None
    peak = ceiling.gflops if ceiling else None
    result = BenchResult(model.name, threads, per_batch[batches[0]], gflop_per_item, source, peak,
                         ceiling.source if ceiling else None)
    bar = None
    if progress:
        from tqdm import tqdm  # the plain text bar: this runs in terminals

        bar = tqdm(total=len(batches) * (warmup + repeat), unit="run", desc="bench", file=sys.stderr, leave=False)
    try:
        for batch in batches:
            feeds = random_inputs(specs, per_batch[batch], fixed=fixed)
            if bar is not None:
                bar.set_postfix_str(f"batch {batch}")
            try:
                session.run(None, feeds)
            except Exception as error:
                raise ValueError(f"ONNX Runtime could not run '{model.name}' at batch {batch} on random inputs: "
                                 f"{first_line(error)}") from None
            timing = time_it(lambda: session.run(None, feeds), warmup=warmup, repeat=repeat, items=batch,
                             progress=bar.update if bar is not None else None)
            share = timing.percent_of_peak(gflop_per_item, peak) if (gflop_per_item and peak) else None
            result.rows.append(BenchRow(batch, timing.median_ms, timing.p90_ms, timing.throughput, share))
            del feeds
    finally:
        if bar is not None:
            bar.close()
    return result

"""Measuring inference honestly, and the `labkit bench` command.

Three measuring helpers that Lesson 06 uses and explains:
- `time_it`: warm-up calls (discarded), then timed repeats; reports the median and the 90th percentile.
- `sgemm_peak`: this machine's practical fp32 ceiling, the GFLOP/s of a large single-precision matmul.
- `count_flops`: the multiply-adds of a model's Conv / Gemm / MatMul nodes, read from ONNX shape inference.

`labkit bench MODEL.onnx --batch 1,8,32` puts them together for any model a learner brings.
Figures are machine- and moment-dependent: print them, never compare them in a checked cell.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import onnx

from .models import ModelLike, TensorSpec, input_specs, load_model

__all__ = ["Timing", "time_it", "sgemm_peak", "cpu_name", "FlopCount", "count_flops", "parse_batches", "parse_shape",
           "resolve_shapes", "random_inputs", "BenchRow", "BenchResult", "run_bench", "format_table",
           "TABLE_HEADER"]


# --------------------------------------------------------------------------- timing

@dataclass(frozen=True)
class Timing:
    """Seconds of each timed call (warm-up excluded) and how many items (images) one call processed."""

    seconds: tuple
    items: int = 1

    @property
    def median_ms(self) -> float:
        return 1e3 * float(np.median(self.seconds))

    @property
    def p90_ms(self) -> float:
        """90th percentile: the slow end of the spread a user will also see."""
        return 1e3 * float(np.percentile(self.seconds, 90))

    @property
    def throughput(self) -> float:
        """Items per second at the median latency."""
        return self.items / (self.median_ms / 1e3)

    def percent_of_peak(self, gflop_per_item: float, peak_gflops: float) -> float:
        """Achieved GFLOP/s (at the median) as a percentage of `peak_gflops`."""
        return 100.0 * self.throughput * gflop_per_item / peak_gflops

    def __repr__(self) -> str:
        return (f"Timing(median {self.median_ms:.2f} ms, p90 {self.p90_ms:.2f} ms, "
                f"{self.throughput:.1f} items/s, {len(self.seconds)} repeats)")


def time_it(fn: Callable[[], object], *, warmup: int = 2, repeat: int = 10, items: int = 1,
            progress: Callable[[], object] | None = None) -> Timing:
    """Call `fn` `warmup` times untimed, then `repeat` times timed one by one with `time.perf_counter`.

    `progress`, if given, is called after every call (e.g. a tqdm bar's `update`).
    """
    if warmup < 0:
        raise ValueError(f"warmup must be >= 0, got {warmup}")
    if repeat < 1:
        raise ValueError(f"repeat must be >= 1, got {repeat}")
    if items < 1:
        raise ValueError(f"items must be >= 1, got {items}")
    for _ in range(warmup):
        fn()
        if progress:
            progress()
    seconds = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        seconds.append(time.perf_counter() - start)
        if progress:
            progress()
    return Timing(tuple(seconds), items)


def sgemm_peak(n: int = 2048, *, threads: int | None = None, repeat: int = 5) -> float:
    """GFLOP/s of the fastest of `repeat` n x n float32 matmuls in torch (2 n^3 FLOPs each).

    The best run, not the median: noise only ever adds time, so the fastest run is the closest
    to what the hardware can do. `threads` pins torch's intra-op threads for the measurement.
    """
    import torch

    if n < 1 or repeat < 1:
        raise ValueError(f"n and repeat must be >= 1, got n={n}, repeat={repeat}")
    before = torch.get_num_threads()
    if threads is not None:
        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        torch.set_num_threads(threads)
    try:
        generator = torch.Generator().manual_seed(0)
        a = torch.randn(n, n, generator=generator)
        b = torch.randn(n, n, generator=generator)
        torch.mm(a, b)  # warm-up: thread pool start, first-touch of the output
        timing = time_it(lambda: torch.mm(a, b), warmup=0, repeat=repeat)
    finally:
        torch.set_num_threads(before)
    return 2.0 * n**3 / min(timing.seconds) / 1e9


# --------------------------------------------------------------------------- FLOPs

# op type -> (index of the input that carries the activation, index of the weight/B input)
_CONV_OPS = {"Conv": (0, 1), "FusedConv": (0, 1), "ConvInteger": (0, 1), "QLinearConv": (0, 3),
             "NhwcFusedConv": (0, 1)}
_GEMM_OPS = {"Gemm": (0, 1), "FusedGemm": (0, 1)}
_MATMUL_OPS = {"MatMul": (0, 1), "MatMulInteger": (0, 1), "QLinearMatMul": (0, 3), "FusedMatMul": (0, 1),
               "DynamicQuantizeMatMul": (0, 1), "MatMulIntegerToFloat": (0, 1)}
_SMALL_INITIALIZER = 1024  # bytes: shape constants stay so shape inference can read them


@dataclass(frozen=True)
class FlopCount:
    """FLOPs (2 per multiply-add) of the counted nodes, per op type; `skipped` names nodes whose shapes were unknown."""

    total: int
    by_op: dict
    nodes: int
    skipped: tuple = ()

    @property
    def gflop(self) -> float:
        return self.total / 1e9

    def __repr__(self) -> str:
        parts = ", ".join(f"{op} {flops / 1e9:.3f}" for op, flops in sorted(self.by_op.items(), key=lambda kv: -kv[1]))
        text = f"{self.gflop:.3f} GFLOP in {self.nodes} nodes ({parts or 'no Conv/Gemm/MatMul'})"
        if self.skipped:
            text += f"; {len(self.skipped)} node(s) skipped, shapes unknown: {', '.join(self.skipped[:5])}"
        return text


def _shape_only_copy(proto: onnx.ModelProto, shapes: Mapping[str, Sequence[int]]) -> onnx.ModelProto:
    """A light copy for shape inference: big initializers become typed graph inputs, inputs get concrete dims."""
    graph = onnx.GraphProto()
    graph.name = proto.graph.name
    graph.node.extend(proto.graph.node)
    graph.output.extend(proto.graph.output)
    initializer_names = set()
    for init in proto.graph.initializer:
        initializer_names.add(init.name)
        nbytes = len(init.raw_data) or 8 * max(len(init.float_data), len(init.int64_data), len(init.int32_data))
        if init.data_location == onnx.TensorProto.EXTERNAL or nbytes > _SMALL_INITIALIZER:
            graph.input.append(onnx.helper.make_tensor_value_info(init.name, init.data_type, list(init.dims)))
        else:
            graph.initializer.append(init)
    for value in proto.graph.input:
        if value.name in initializer_names:
            continue
        if value.name in shapes:
            elem = value.type.tensor_type.elem_type
            graph.input.append(onnx.helper.make_tensor_value_info(value.name, elem, list(shapes[value.name])))
        else:
            graph.input.append(value)
    light = onnx.helper.make_model(graph, opset_imports=list(proto.opset_import))
    light.ir_version = proto.ir_version
    return light


def _known_shapes(model: onnx.ModelProto) -> dict[str, tuple]:
    known = {}
    for value in [*model.graph.input, *model.graph.value_info, *model.graph.output]:
        tensor_type = value.type.tensor_type
        if not tensor_type.HasField("shape"):
            continue
        dims = tuple(d.dim_value if d.HasField("dim_value") else None for d in tensor_type.shape.dim)
        known[value.name] = dims
    for init in model.graph.initializer:
        known[init.name] = tuple(init.dims)
    return known


def _node_flops(node: onnx.NodeProto, shapes: Mapping[str, tuple]) -> int | None:
    """2 x multiply-adds of one Conv/Gemm/MatMul-like node, or None when a needed shape is unknown."""
    def shape(name):
        dims = shapes.get(name)
        return None if dims is None or any(d is None or d <= 0 for d in dims) else dims

    out = shape(node.output[0]) if node.output else None
    if node.op_type in _CONV_OPS:
        weight = shape(node.input[_CONV_OPS[node.op_type][1]])
        if out is None or weight is None:
            return None
        # every output value is a dot product over (C_in / group) x kernel window = weight.shape[1:]
        return 2 * math.prod(out) * math.prod(weight[1:])
    if node.op_type in _GEMM_OPS:
        a = shape(node.input[0])
        if out is None or a is None or len(a) != 2:
            return None
        trans_a = next((attr.i for attr in node.attribute if attr.name == "transA"), 0)
        k = a[0] if trans_a else a[1]
        return 2 * math.prod(out) * k
    if node.op_type in _MATMUL_OPS:
        a = shape(node.input[0])
        if out is None or a is None:
            return None
        return 2 * math.prod(out) * a[-1]
    return 0


def count_flops(model: ModelLike, shapes: Mapping[str, Sequence[int]] | None = None) -> FlopCount:
    """FLOPs of one run of `model` with inputs of `shapes` (name -> concrete shape; default: the model's own).

    Counts Conv, Gemm and MatMul (and their quantized/fused forms), 2 FLOPs per multiply-add, from
    shapes given by `onnx.shape_inference`. Element-wise ops, pooling and softmax are left out:
    they are a rounding error next to the matmuls in CNNs and transformers alike.
    """
    proto = load_model(model, load_external_data=False)
    shapes = dict(shapes or {})
    names = {spec.name for spec in input_specs(proto)}
    unknown = [name for name in shapes if name not in names]
    if unknown:
        raise ValueError(f"model has no input {unknown[0]!r}; its inputs are: {', '.join(map(repr, sorted(names)))}")
    inferred = onnx.shape_inference.infer_shapes(_shape_only_copy(proto, shapes), data_prop=True)
    known = _known_shapes(inferred)
    by_op: Counter = Counter()
    counted, skipped = 0, []
    for node in inferred.graph.node:
        flops = _node_flops(node, known)
        if flops is None:
            skipped.append(node.name or node.op_type)
        elif flops:
            by_op[node.op_type] += flops
            counted += 1
    return FlopCount(sum(by_op.values()), dict(by_op), counted, tuple(skipped))


# --------------------------------------------------------------------------- inputs of the benchmark

def parse_batches(text: str) -> list[int]:
    """'1,8,32' -> [1, 8, 32]; every batch must be a whole number >= 1."""
    batches = []
    for piece in str(text).split(","):
        piece = piece.strip()
        try:
            value = int(piece)
        except ValueError:
            raise ValueError(f"--batch takes whole numbers separated by commas, such as 1,8,32; got {text!r}") from None
        if value <= 0:
            raise ValueError(f"batch sizes must be >= 1, got {value} in --batch {text}")
        batches.append(value)
    return batches


def parse_shape(text: str) -> tuple[str, tuple[int, ...]]:
    """'image=1x3x224x224' -> ('image', (1, 3, 224, 224))."""
    name, sep, dims = str(text).partition("=")
    try:
        shape = tuple(int(d) for d in dims.lower().split("x")) if sep and dims else None
    except ValueError:
        shape = None
    if not name or shape is None or any(d <= 0 for d in shape):
        raise ValueError(f"--shape takes NAME=DxDx...D with positive sizes, such as image=1x3x224x224; got {text!r}")
    return name, shape


def _size_hint(spec: TensorSpec) -> str:
    example = "x".join(str(d) if isinstance(d, int) else ("1" if i == 0 else "224") for i, d in enumerate(spec.shape))
    return f"--shape {spec.name}={example}"


def resolve_shapes(specs: Sequence[TensorSpec], batch: int, overrides: Mapping[str, Sequence[int]] | None = None
                   ) -> dict[str, tuple[int, ...]]:
    """Concrete input shapes for one batch size: the model's dims, `overrides` (--shape), and `batch` on dim 0.

    Dim 0 of an input takes `batch` when the model leaves it symbolic; a fixed dim 0 must equal `batch`.
    Any other symbolic dim must be sized by an override, else the error names the --shape to add.
    """
    if batch <= 0:
        raise ValueError(f"batch sizes must be >= 1, got {batch}")
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
                if isinstance(want, int) and want != got and axis != 0:
                    raise ValueError(f"--shape {spec.name}: dim {axis} is fixed at {want} in the model, got {got}")
            dims = [want if isinstance(want, int) else got for want, got in zip(dims, given)]
            if not isinstance(spec.shape[0], int):
                dims[0] = None  # filled by the batch below
        if dims:
            if isinstance(spec.shape[0], int):
                if spec.shape[0] != batch:
                    raise ValueError(f"input '{spec.name}' has a fixed batch of {spec.shape[0]} {spec.shape_text()}, "
                                     f"so --batch {batch} cannot run: use --batch {spec.shape[0]}, or export with a "
                                     "dynamic batch dim (dynamic_axes / dynamic_shapes)")
            else:
                dims[0] = batch
        unsized = [d for d in dims if not isinstance(d, int)]
        if unsized:
            raise ValueError(f"input '{spec.name}' has symbolic dims {spec.shape_text()} that no option sizes: "
                             f"add {_size_hint(spec)} (dim 0 follows --batch)")
        resolved[spec.name] = tuple(dims)
    return resolved


def random_inputs(specs: Sequence[TensorSpec], shapes: Mapping[str, Sequence[int]], seed: int = 0
                  ) -> dict[str, np.ndarray]:
    """Seeded inputs of the right dtype: normal floats, small non-negative integers, False booleans."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for spec in specs:
        shape = tuple(shapes[spec.name])
        dtype = np.dtype(spec.dtype) if spec.dtype is not None else np.dtype(np.float32)
        if dtype.kind == "f":
            feeds[spec.name] = rng.standard_normal(shape).astype(dtype)
        elif dtype.kind in "iu":
            feeds[spec.name] = rng.integers(0, 2, size=shape).astype(dtype)
        elif dtype.kind == "b":
            feeds[spec.name] = np.zeros(shape, dtype=dtype)
        else:
            raise ValueError(f"input '{spec.name}' has dtype {dtype}, which labkit bench cannot generate")
    return feeds


# --------------------------------------------------------------------------- the benchmark

TABLE_HEADER = ("batch", "median ms", "p90 ms", "items/s", "% of fp32 peak")


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
    rows: list = field(default_factory=list)

    def to_json(self) -> dict:
        return {
            "model": self.model, "threads": self.threads, "inputs": {k: list(v) for k, v in self.shapes.items()},
            "gflop_per_item": self.gflop_per_item, "flops_source": self.flops_source,
            "peak_gflops": self.peak_gflops, "rows": [vars(row) for row in self.rows],
            "machine": {"cpu": cpu_name(), "cores": os.cpu_count(), "python": platform.python_version()},
            "versions": _versions(),
        }


def format_table(rows: Sequence[BenchRow]) -> str:
    """An aligned table with the fixed header TABLE_HEADER and one line per batch size."""
    cells = [TABLE_HEADER] + [
        (str(r.batch), f"{r.median_ms:.2f}", f"{r.p90_ms:.2f}", f"{r.throughput:.1f}",
         "-" if r.percent_of_peak is None else f"{r.percent_of_peak:.1f}") for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(TABLE_HEADER))]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in cells)


def cpu_name() -> str:
    """The processor's model name (from /proc/cpuinfo on Linux)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _versions() -> dict:
    from importlib import metadata

    found = {}
    for dist in ("onnxruntime", "onnx", "torch", "numpy"):
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return found


def run_bench(model_path: str, batches: Sequence[int] | None = None, *, threads: int | None = None,
              shapes: Mapping[str, Sequence[int]] | None = None, warmup: int = 3, repeat: int = 20,
              gflop_per_item: float | None = None, measure_peak: bool = True, progress: bool = True) -> BenchResult:
    """Time `model_path` in ONNX Runtime (CPU) at each batch size; FLOPs counted unless `gflop_per_item` is given.

    `batches` defaults to the model's fixed batch size, or 1 when the batch dim is symbolic.
    """
    import onnxruntime as ort

    proto = load_model(model_path, load_external_data=False)  # clear errors for missing / non-ONNX files
    specs = input_specs(proto)
    if batches is None:
        fixed = {s.shape[0] for s in specs if s.shape and isinstance(s.shape[0], int)}
        batches = [fixed.pop()] if len(fixed) == 1 else [1]
    batches = list(batches)
    if not batches:
        raise ValueError("give at least one batch size, e.g. --batch 1,8,32")
    bad = [b for b in batches if not isinstance(b, int) or b <= 0]
    if bad:
        raise ValueError(f"batch sizes must be >= 1, got {bad[0]}")
    if warmup < 0 or repeat < 1:
        raise ValueError(f"--warmup must be >= 0 and --repeat >= 1, got {warmup} and {repeat}")
    if threads is not None and threads < 1:
        raise ValueError(f"--threads must be >= 1, got {threads}")
    if gflop_per_item is not None and gflop_per_item <= 0:
        raise ValueError(f"--gflop must be > 0, got {gflop_per_item}")
    per_batch = {b: resolve_shapes(specs, b, shapes) for b in batches}  # every shape error before any timing

    source = "given"
    if gflop_per_item is None:
        first = batches[0]
        counted = count_flops(proto, per_batch[first])
        source = "counted"
        gflop_per_item = counted.gflop / first if counted.total and not counted.skipped else None
        if gflop_per_item is None:
            source = "unknown (give --gflop)"
    del proto
    peak = sgemm_peak(threads=threads) if (measure_peak and gflop_per_item) else None

    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: warnings about unused initializers are noise here
    if threads is not None:
        options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(model_path), sess_options=options, providers=["CPUExecutionProvider"])
    result = BenchResult(os.path.basename(str(model_path)), threads, per_batch[batches[0]], gflop_per_item,
                         source, peak)
    bar = None
    if progress:
        from tqdm import tqdm  # the plain text bar: this runs in terminals, and notebooks keep no widget state

        bar = tqdm(total=len(batches) * (warmup + repeat), unit="run", desc="bench", file=sys.stderr, leave=False)
    try:
        for batch in batches:
            feeds = random_inputs(specs, per_batch[batch])
            if bar is not None:
                bar.set_postfix_str(f"batch {batch}")
            timing = time_it(lambda: session.run(None, feeds), warmup=warmup, repeat=repeat, items=batch,
                             progress=bar.update if bar is not None else None)
            share = timing.percent_of_peak(gflop_per_item, peak) if (gflop_per_item and peak) else None
            result.rows.append(BenchRow(batch, timing.median_ms, timing.p90_ms, timing.throughput, share))
    finally:
        if bar is not None:
            bar.close()
    return result


def _describe(result: BenchResult) -> str:
    inputs = ", ".join(f"{name} {'x'.join(map(str, shape))}" for name, shape in result.shapes.items())
    flops = (f"{result.gflop_per_item:.3f} GFLOP per item ({result.flops_source})"
             if result.gflop_per_item else f"FLOPs {result.flops_source}")
    peak = f"fp32 peak {result.peak_gflops:.0f} GFLOP/s (torch sgemm)" if result.peak_gflops else "fp32 peak not measured"
    threads = f"{result.threads} intra-op threads" if result.threads else f"ORT default threads ({os.cpu_count()} cores)"
    return "\n".join([f"model {result.model}: inputs {inputs} at the first batch",
                      f"{flops}; {peak}; {threads}"])


# --------------------------------------------------------------------------- command line

def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="path to an .onnx file")
    parser.add_argument("--batch", default=None,
                        help="batch sizes, comma-separated (default: the model's fixed batch, else 1), e.g. 1,8,32")
    parser.add_argument("--threads", type=int, default=None, help="ORT intra-op threads (default: ORT's choice)")
    parser.add_argument("--shape", action="append", default=[], metavar="NAME=DxD...",
                        help="size an input's symbolic dims, e.g. image=1x3x224x224 (dim 0 follows --batch); repeatable")
    parser.add_argument("--warmup", type=int, default=3, help="untimed runs per batch size (default 3)")
    parser.add_argument("--repeat", type=int, default=20, help="timed runs per batch size (default 20)")
    parser.add_argument("--gflop", type=float, default=None,
                        help="GFLOP per item, when counting Conv/Gemm/MatMul misses the model's work")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")


def main(args: argparse.Namespace) -> int:
    load_model(args.model, load_external_data=False)  # missing file / not ONNX: a clear error first
    batches = parse_batches(args.batch) if args.batch is not None else None
    shapes = dict(parse_shape(text) for text in args.shape)
    result = run_bench(args.model, batches, threads=args.threads, shapes=shapes, warmup=args.warmup,
                       repeat=args.repeat, gflop_per_item=args.gflop)
    if args.json:
        print(json.dumps(result.to_json(), indent=2))
    else:
        print(_describe(result))
        print(format_table(result.rows))
    return 0

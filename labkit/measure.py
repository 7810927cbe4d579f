"""Measuring inference honestly: timings, this machine's fp32 ceiling, FLOPs and memory from shape inference.

The helpers Lesson 06 uses and explains (and `labkit bench` builds on):
- `time_it`: warm-up calls (discarded), then timed repeats; reports the median and the 90th percentile.
- `sgemm_peak`: the GFLOP/s of a large single-precision matmul in torch (the best of a few runs).
- `fp32_ceiling`: a ceiling no fp32 kernel measured here can beat: the theoretical FMA peak where the
  clock and vector width can be read, and never below the fastest large matmul measured in torch and ORT.
- `count_flops`: the multiply-adds of a model's Conv / Gemm / MatMul nodes, read from ONNX shape inference.
- `estimate_memory`: the bytes of a model's inputs, intermediate tensors and weights for given input shapes.
- `cpu_name`, `cpu_facts`, `cpu_flags`, `cpu_max_ghz`, `load_average`, `available_memory`: what the numbers
  were measured on, each None where this operating system does not tell.

Figures are machine- and moment-dependent: print them, never compare them in a checked cell.
"""
from __future__ import annotations

import math
import os
import platform
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import onnx

from .onnxfile import ModelLike, input_specs, load_model, np_dtype

__all__ = ["Timing", "time_it", "SpeedVerdict", "speed_verdict", "sgemm_peak", "ort_matmul_gflops", "Ceiling", "fp32_ceiling",
           "fma_peak", "FlopCount", "count_flops", "MemoryEstimate", "estimate_memory",
           "cpu_name", "cpu_facts", "cpu_flags", "cpu_max_ghz", "load_average", "available_memory"]


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
    for name, value, least in (("warmup", warmup, 0), ("repeat", repeat, 1), ("items", items, 1)):
        if value < least:
            raise ValueError(f"{name} must be >= {least}, got {value}")
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


@dataclass(frozen=True)
class SpeedVerdict:
    """How two timings compare on this run, by one noise rule: their interquartile ranges must not overlap.

    `faster` is the name of the faster one, or None when the spreads overlap ("within noise on this run").
    `ratio` is the slower median over the faster one (>= 1).
    """

    names: tuple
    medians_ms: tuple
    ratio: float
    faster: str | None

    @property
    def within_noise(self) -> bool:
        return self.faster is None

    def __str__(self) -> str:
        a, b = self.names
        if self.faster is None:
            return f"{a} vs {b}: within noise on this run (medians differ {self.ratio:.2f}x; their spreads overlap)"
        slower = b if self.faster == a else a
        return f"{self.faster} is {self.ratio:.2f}x faster than {slower} on this run (spreads do not overlap)"

    __repr__ = __str__


def speed_verdict(a: Timing, b: Timing, names: Sequence[str] = ("A", "B")) -> SpeedVerdict:
    """Compare two timings (best taken from interleaved rounds) with the kit's noise rule.

    A direction is claimed only when the 25th-75th percentile ranges of the two sets of calls do not
    overlap; otherwise the verdict is "within noise on this run", whatever the medians say.
    """
    if len(names) != 2:
        raise ValueError(f"names must be two labels, got {names!r}")
    lo_a, hi_a = np.percentile(a.seconds, [25, 75]) / a.items
    lo_b, hi_b = np.percentile(b.seconds, [25, 75]) / b.items
    med_a, med_b = a.median_ms / a.items, b.median_ms / b.items
    ratio = max(med_a, med_b) / min(med_a, med_b)
    if hi_a < lo_b:
        faster = names[0]
    elif hi_b < lo_a:
        faster = names[1]
    else:
        faster = None
    return SpeedVerdict(tuple(names), (med_a, med_b), ratio, faster)


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


def ort_matmul_gflops(n: int = 2048, *, threads: int = 1, repeat: int = 5) -> float:
    """GFLOP/s of the fastest of `repeat` n x n float32 MatMuls in ONNX Runtime on `threads` intra-op threads."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    if n < 1 or repeat < 1 or threads < 1:
        raise ValueError(f"n, repeat and threads must be >= 1, got n={n}, repeat={repeat}, threads={threads}")
    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(rng.standard_normal((n, n), dtype=np.float32), "b")
    graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["c"])], "matmul",
                              [helper.make_tensor_value_info("a", TensorProto.FLOAT, [n, n])],
                              [helper.make_tensor_value_info("c", TensorProto.FLOAT, [n, n])], initializer=[weight])
    model = helper.make_model(graph, ir_version=10, opset_imports=[helper.make_opsetid("", 20)])
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(model.SerializeToString(), sess_options=options, providers=["CPUExecutionProvider"])
    a = rng.standard_normal((n, n), dtype=np.float32)
    timing = time_it(lambda: session.run(None, {"a": a}), warmup=1, repeat=repeat)
    return 2.0 * n**3 / min(timing.seconds) / 1e9


def fma_peak(threads: int, flags: frozenset | None = None, ghz: float | None = None) -> float | None:
    """Theoretical fp32 GFLOP/s of `threads` cores: GHz x vector lanes x 2 (an FMA) x 2 FMA units per core.

    Two FMA units is the most any x86 core has, and each thread is counted as a core of its own, so this
    is an upper bound when the clock is the highest the processor reaches. None where the flags or the
    clock cannot be read, or the vector width is not known from them (any non-x86 processor).
    """
    flags = cpu_flags() if flags is None else flags
    ghz = cpu_max_ghz() if ghz is None else ghz
    if not flags or not ghz or threads < 1:
        return None
    if "avx512f" in flags:
        lanes = 16
    elif "avx2" in flags and "fma" in flags:
        lanes = 8
    else:
        return None
    return threads * ghz * lanes * 2 * 2


@dataclass(frozen=True)
class Ceiling:
    """The fp32 ceiling: the larger of the theoretical FMA peak (None when unknown) and the fastest measured matmul."""

    gflops: float
    theoretical: float | None
    measured: dict

    @property
    def source(self) -> str:
        if self.theoretical is not None and self.theoretical >= max(self.measured.values()):
            return "the theoretical FMA peak"
        return "the fastest measured matmul (" + max(self.measured, key=self.measured.get) + ")"

    def __repr__(self) -> str:
        measured = ", ".join(f"{name} {value:.0f}" for name, value in self.measured.items())
        theory = f"{self.theoretical:.0f}" if self.theoretical is not None else "unknown on this machine"
        return (f"fp32 ceiling {self.gflops:.0f} GFLOP/s, {self.source} (theoretical FMA peak: {theory}; "
                f"measured matmuls: {measured})")


def fp32_ceiling(threads: int, *, n: int = 2048, repeat: int = 5) -> Ceiling:
    """A ceiling no fp32 kernel measured on `threads` threads can honestly beat (see `fma_peak`, `Ceiling`).

    Where the theoretical peak is unknown the fastest measured matmul stands in, and a kernel can beat
    that one: a share of it above 100 % then says the measured matmuls were not the best this CPU does.
    """
    measured = {"torch": sgemm_peak(n, threads=threads, repeat=repeat),
                "ONNX Runtime": ort_matmul_gflops(n, threads=threads, repeat=repeat)}
    theoretical = fma_peak(threads)
    return Ceiling(max([theoretical or 0.0, *measured.values()]), theoretical, measured)


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


def _inferred(model: ModelLike, shapes: Mapping[str, Sequence[int]] | None
              ) -> tuple[onnx.ModelProto, onnx.ModelProto]:
    """(the model without external weights, its light copy after shape inference with `shapes` as input shapes)."""
    proto = load_model(model, load_external_data=False)
    shapes = dict(shapes or {})
    names = {spec.name for spec in input_specs(proto)}
    unknown = [name for name in shapes if name not in names]
    if unknown:
        raise ValueError(f"model has no input {unknown[0]!r}; its inputs are: {', '.join(map(repr, sorted(names)))}")
    return proto, onnx.shape_inference.infer_shapes(_shape_only_copy(proto, shapes), data_prop=True)


def count_flops(model: ModelLike, shapes: Mapping[str, Sequence[int]] | None = None) -> FlopCount:
    """FLOPs of one run of `model` with inputs of `shapes` (name -> concrete shape; default: the model's own).

    Counts Conv, Gemm and MatMul (and their quantized/fused forms), 2 FLOPs per multiply-add, from
    shapes given by `onnx.shape_inference`. Element-wise ops, pooling and softmax are left out:
    they are a rounding error next to the matmuls in CNNs and transformers alike.
    """
    _, inferred = _inferred(model, shapes)
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


# --------------------------------------------------------------------------- memory

def _itemsize(elem_type: int) -> int | None:
    dtype = np_dtype(elem_type)
    return None if dtype is None else dtype.itemsize


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes of one run's inputs, of every intermediate and output tensor, and of the weights.

    An upper bound for the tensors: ONNX Runtime reuses buffers, so its peak is usually lower.
    `unsized` names tensors whose shape inference could not size (not counted).
    """

    inputs: int
    activations: int
    weights: int
    unsized: tuple = ()

    @property
    def total(self) -> int:
        return self.inputs + self.activations + self.weights

    def __repr__(self) -> str:
        gib = 1024**3
        text = (f"{self.total / gib:.2f} GiB (inputs {self.inputs / gib:.2f}, intermediate and output tensors "
                f"{self.activations / gib:.2f}, weights {self.weights / gib:.2f})")
        return text + (f"; {len(self.unsized)} tensor(s) of unknown size not counted" if self.unsized else "")


def estimate_memory(model: ModelLike, shapes: Mapping[str, Sequence[int]]) -> MemoryEstimate:
    """The memory one run of `model` needs with inputs of `shapes`, from shape inference (nothing is allocated)."""
    proto, inferred = _inferred(model, shapes)
    weights = 0
    initializer_names = set()
    for init in proto.graph.initializer:
        initializer_names.add(init.name)
        weights += math.prod(init.dims) * (_itemsize(init.data_type) or 0)
    inputs = 0
    for spec in input_specs(proto):
        dims = shapes.get(spec.name, spec.shape)
        if all(isinstance(d, int) for d in dims):
            inputs += math.prod(dims) * (spec.dtype.itemsize if spec.dtype is not None else 4)
    activations, unsized = 0, []
    fed = {spec.name for spec in input_specs(proto)} | initializer_names
    for value in [*inferred.graph.value_info, *inferred.graph.output]:
        if value.name in fed:
            continue
        tensor_type = value.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else None for d in tensor_type.shape.dim]
        size = _itemsize(tensor_type.elem_type)
        if not tensor_type.HasField("shape") or size is None or any(d is None for d in dims):
            unsized.append(value.name)
        else:
            activations += math.prod(dims) * size
    return MemoryEstimate(inputs, activations, weights, tuple(unsized))


# --------------------------------------------------------------------------- the machine

def _cpuinfo(*keys: str) -> list[str]:
    """The values of /proc/cpuinfo's lines whose key (lower case) is one of `keys`; [] where it cannot be read."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            return [value.strip() for key, _, value in (line.partition(":") for line in info)
                    if key.strip().lower() in keys]
    except OSError:
        return []


def cpu_name() -> str:
    """The processor's model name (from /proc/cpuinfo on Linux)."""
    names = _cpuinfo("model name")
    return names[0] if names else platform.processor() or platform.machine()


def cpu_facts() -> dict:
    """The processor, its logical cores and the Python version: the context every timing needs."""
    return {"cpu": cpu_name(), "cores": os.cpu_count(), "python": platform.python_version()}


def cpu_flags() -> frozenset | None:
    """The processor's feature flags ('avx2', 'avx512_vnni', ...; 'Features' on ARM Linux), None where unreadable.

    Only Linux publishes them in /proc/cpuinfo; on macOS and Windows this returns None: unknown, not "absent".
    """
    flags = _cpuinfo("flags", "features")
    return frozenset(flags[0].split()) if flags else None


def cpu_max_ghz() -> float | None:
    """The highest clock the operating system reports for cpu0, in GHz (cpufreq's maximum, else 'cpu MHz')."""
    try:
        with open("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq", encoding="utf-8") as freq:
            return int(freq.read().strip()) / 1e6
    except (OSError, ValueError):
        pass
    try:
        mhz = [float(value) for value in _cpuinfo("cpu mhz")]
    except ValueError:
        return None
    return max(mhz) / 1e3 if mhz else None


def load_average() -> tuple | None:
    """The 1, 5 and 15 minute load averages, or None where the operating system has none (Windows)."""
    try:
        return os.getloadavg()
    except (AttributeError, OSError):
        return None


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation now (Linux MemAvailable), or None when unknown."""
    try:
        with open("/proc/meminfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None

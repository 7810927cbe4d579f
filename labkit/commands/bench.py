"""`labkit bench MODEL.onnx [--batch 1,8,32]`: time a model in ONNX Runtime (CPU) at several batch sizes.

This module parses the options (`parse_batches`, `parse_shape`, `parse_value`) and prints the
table; checking the settings, sizing the inputs, refusing a batch that would not fit in memory
and timing are labkit/bench.py's (`run_bench`).
"""
from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # labkit.bench imports numpy and onnx inside its functions; commands import nothing at top
    from ..bench import BenchResult, BenchRow

__all__ = ["TABLE_HEADER", "parse_batches", "parse_shape", "parse_value", "format_rows", "configure", "main"]

TABLE_HEADER = ("batch", "median ms", "p90 ms", "items/s", "% of fp32 peak")


def parse_batches(text: str) -> list[int]:
    """'1,8,32' -> [1, 8, 32] (whole numbers; their range is check_settings' job)."""
    batches = []
    for piece in str(text).split(","):
        try:
            batches.append(int(piece.strip()))
        except ValueError:
            raise ValueError(f"--batch takes whole numbers separated by commas, such as 1,8,32; got {text!r}") from None
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


def parse_value(text: str) -> tuple[str, list[float]]:
    """'k=5' -> ('k', [5]); 'scales=1,1,3,3' -> ('scales', [1, 1, 3, 3])."""
    name, sep, numbers = str(text).partition("=")
    try:
        values = [float(v) if any(c in v for c in ".eE") else int(v) for v in numbers.split(",")] if sep else None
    except ValueError:
        values = None
    if not name or not values:
        raise ValueError(f"--value takes NAME=V or NAME=V,V,... with numbers, such as k=5; got {text!r}")
    return name, values


def format_rows(rows: Sequence[BenchRow]) -> str:
    """An aligned table with the fixed header TABLE_HEADER and one line per batch size."""
    from ..report import format_table

    cells = [(r.batch, f"{r.median_ms:.2f}", f"{r.p90_ms:.2f}", f"{r.throughput:.1f}",
              "-" if r.percent_of_peak is None else f"{r.percent_of_peak:.1f}") for r in rows]
    return format_table(TABLE_HEADER, cells, align="rrrrr")


def _describe(result: BenchResult) -> str:
    import os

    inputs = ", ".join(f"{name} {'x'.join(map(str, shape))}" for name, shape in result.shapes.items())
    flops = (f"{result.gflop_per_item:.3f} GFLOP per item ({result.flops_source})"
             if result.gflop_per_item else f"FLOPs {result.flops_source}")
    peak = (f"fp32 peak {result.peak_gflops:.0f} GFLOP/s ({result.peak_source})" if result.peak_gflops
            else "fp32 peak not measured")
    threads = f"{result.threads} intra-op threads" if result.threads else f"ORT default threads ({os.cpu_count()} cores)"
    return f"model {result.model}: inputs {inputs} at the first batch\n{flops}; {peak}; {threads}"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="path to an .onnx file")
    parser.add_argument("--batch", default=None,
                        help="batch sizes, comma-separated (default: the model's fixed batch, else 1), e.g. 1,8,32")
    parser.add_argument("--threads", type=int, default=None, help="ORT intra-op threads (default: ORT's choice)")
    parser.add_argument("--shape", action="append", default=[], metavar="NAME=DxD...",
                        help="size an input's symbolic dims, e.g. image=1x3x224x224 (dim 0 follows --batch); repeatable")
    parser.add_argument("--value", action="append", default=[], metavar="NAME=V,...",
                        help="the value of an input that is a setting (a scalar or fixed 1-D input), e.g. k=5; repeatable")
    parser.add_argument("--warmup", type=int, default=3, help="untimed runs per batch size (default 3)")
    parser.add_argument("--repeat", type=int, default=20, help="timed runs per batch size (default 20)")
    parser.add_argument("--gflop", type=float, default=None,
                        help="GFLOP per item, when counting Conv/Gemm/MatMul misses the model's work")
    parser.add_argument("--max-memory", type=float, default=None, metavar="GIB",
                        help="refuse batches estimated to need more than this many GiB "
                             "(default: half of the memory available now)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")


def main(args: argparse.Namespace) -> int:
    from ..bench import run_bench

    batches = parse_batches(args.batch) if args.batch is not None else None
    shapes = dict(parse_shape(text) for text in args.shape)
    values = dict(parse_value(text) for text in args.value)
    result = run_bench(args.model, batches, threads=args.threads, shapes=shapes, values=values, warmup=args.warmup,
                       repeat=args.repeat, gflop_per_item=args.gflop, max_memory=args.max_memory)
    if args.json:
        print(json.dumps(result.to_json(), indent=2))
    else:
        print(_describe(result))
        print(format_rows(result.rows))
    return 0

"""`labkit run [NN ...] [--inplace [--allow-busy]]`: execute lesson notebooks in order, one verdict row each.

With --inplace, a lesson that measures time is saved only from a quiet machine (labkit.machine_load)
unless --allow-busy: committed timings come from a quiet run.
"""
from __future__ import annotations

import argparse
import sys

__all__ = ["configure", "main"]


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("notebooks", nargs="*",
                        help="lesson numbers (01), name prefixes of 3+ characters (01_al) or notebook paths "
                             "(default: every lesson, in order)")
    parser.add_argument("--inplace", action="store_true",
                        help="save fresh outputs into each notebook that passes (for committing)")
    parser.add_argument("--allow-busy", action="store_true",
                        help="with --inplace, save lessons that measure time even when the machine is busy "
                             "(by default they are refused, with the load, CPU share and steal measured)")
    parser.add_argument("--timeout", type=int, default=600, help="seconds allowed per cell (default 600)")


def _announce(path, number: int, total: int) -> None:
    from ..paths import display_path

    print(f"[{number}/{total}] running {display_path(path)}", file=sys.stderr, flush=True)


def main(args: argparse.Namespace) -> int:
    from ..lessons import Interrupted, format_results, run_notebooks, select_notebooks

    if args.timeout <= 0:
        raise ValueError(f"--timeout must be a positive number of seconds, got {args.timeout}")
    paths = select_notebooks(args.notebooks)
    try:
        results = run_notebooks(paths, inplace=args.inplace, timeout=args.timeout, allow_busy=args.allow_busy,
                                on_start=_announce)
    except Interrupted as stop:
        if stop.results:
            print(format_results(stop.results))
        raise
    print(format_results(results))
    return 0 if all(r.ok for r in results) else 1

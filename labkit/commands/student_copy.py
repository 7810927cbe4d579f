"""`labkit student-copy [NN ...] [--out DIR] [--force]`: make the learner's copies, never overwriting their work.

A missing copy is written; a copy still exactly as generated is replaced by a newer lesson; an
edited (or run) copy is kept and the newer lesson written beside it as NN_name.updated.ipynb;
`--force` first moves the learner's copy to DIR/.backup/. A lesson that cannot be read is skipped and
named (exit 1); the others are still copied.
"""
from __future__ import annotations

import argparse

__all__ = ["configure", "main"]


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("notebooks", nargs="*",
                        help="lesson numbers (01), name prefixes (01_al) or notebook paths (default: every lesson)")
    parser.add_argument("--out", default=None, help="the workspace folder (default: workspace/ in the checkout)")
    parser.add_argument("--force", action="store_true",
                        help="replace edited copies too, after moving each to DIR/.backup/<name>.<time>.ipynb")


def main(args: argparse.Namespace) -> int:
    from ..lessons import select_notebooks
    from ..workspace import format_copies, update_workspace

    results = update_workspace(select_notebooks(args.notebooks), args.out, force=args.force)
    print(format_copies(results, args.out))
    return 1 if any(r.action == "skipped" for r in results) else 0  # a lesson that could not be read

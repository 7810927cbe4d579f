"""`labkit progress [--workspace DIR]`: per lesson, what each exercise's saved check says in your copies."""
from __future__ import annotations

import argparse

__all__ = ["configure", "main"]


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workspace", default=None, help="your workspace folder (default: workspace/ in the checkout)")


def main(args: argparse.Namespace) -> int:
    from ..workspace import format_progress, read_progress

    print(format_progress(read_progress(args.workspace)))
    return 0

"""`labkit progress [--workspace DIR]`: per lesson, what each exercise's saved check says in your copies.

`labkit progress --class DIR [--csv FILE] [NN ...]`: the instructor's view of a room: per learner and per
exercise, Correct / Incorrect / Not attempted / not run, read from every learner's workspace under DIR (one
folder per learner, e.g. /home, or a glob such as '/home/learner*'); nothing of theirs is written.
"""
from __future__ import annotations

import argparse

__all__ = ["configure", "main"]


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("lessons", nargs="*", help="lesson numbers or name prefixes to show (default: every lesson)")
    parser.add_argument("--workspace", default=None,
                        help="your workspace folder (default: workspace/ in the checkout, or in $LABKIT_HOME)")
    parser.add_argument("--class", dest="klass", metavar="DIR", default=None,
                        help="the instructor's view: a folder with one folder per learner (e.g. /home), or a glob of "
                             "their homes; each learner's onnx-labkit/workspace/ (or workspace/) is read, never written")
    parser.add_argument("--csv", metavar="FILE", default=None,
                        help="with --class: also write one line per learner and exercise to FILE ('-': standard output)")


def main(args: argparse.Namespace) -> int:
    from ..lessons import select_notebooks
    from ..workspace import format_progress, read_progress

    lessons = select_notebooks(args.lessons) if args.lessons else None
    if args.klass is None:
        if args.csv:
            raise ValueError("--csv exports the class view: give --class DIR too (e.g. --class /home)")
        print(format_progress(read_progress(args.workspace, lessons)))
        return 0
    if args.workspace:
        raise ValueError("--workspace and --class read different things: give one (--class reads every learner's)")
    from pathlib import Path

    from ..classroom import class_csv, format_class, read_class

    progress = read_class(args.klass, lessons)
    if args.csv == "-":
        print(class_csv(progress), end="")
        return 0
    print(format_class(progress))
    if args.csv:
        Path(args.csv).write_text(class_csv(progress), encoding="utf-8")
        print(f"CSV: {args.csv} ({sum(len(p.rows) for p in progress)} rows)")
    return 0

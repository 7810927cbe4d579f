"""Seats of a room, measured: one learner running a lesson alone, then N learners running it at the same moment.

    .venv/bin/python benchmarks/room_seats.py 05             # Lesson 05: 1 alone, then 3 at once
    .venv/bin/python benchmarks/room_seats.py 00 --learners 3 --threads 1

Each learner is a fresh kernel running the solved lesson top to bottom (lesson_footprint.py's method: nbclient,
the kernel's peak and private memory probed around each cell), with its own LABKIT_HOME (a temporary folder, as the hub's
spawner gives each learner), so their artifacts never mix; disk is what the lesson left in that learner's
artifacts/. Thread caps as the hub sets them: OMP/MKL/OpenBLAS/ORT_INTRA_OP_NUM_THREADS = --threads (default:
cores / learners, at least 1) for the learners at once; the learner alone gets the same cap, so the comparison
shows the cost of sharing the cores, not of a different cap. docs/workshop.md's sizing table quotes a run.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "ORT_INTRA_OP_NUM_THREADS")


def one_learner(lesson: str, timeout: int) -> dict:
    """Run the lesson once in this process's LABKIT_HOME; what lesson_footprint measures, as a dict."""
    sys.path.insert(0, str(HERE))
    from dataclasses import asdict

    from lesson_footprint import footprint

    from labkit.lessons import select_notebooks

    [path] = select_notebooks([lesson])
    return asdict(footprint(path, timeout))  # its artifacts: this learner's LABKIT_HOME


def run_learners(lesson: str, count: int, threads: int, timeout: int) -> list[dict]:
    """`count` learners started at the same moment, each in its own LABKIT_HOME; their results, in order."""
    with tempfile.TemporaryDirectory(prefix="room-seats-") as scratch:
        children = []
        for index in range(count):
            home = Path(scratch) / f"learner{index}"
            env = {**os.environ, "LABKIT_HOME": str(home), **{name: str(threads) for name in THREAD_VARIABLES}}
            children.append(subprocess.Popen([sys.executable, __file__, "--one", lesson, "--timeout", str(timeout)],
                                             env=env, stdout=subprocess.PIPE, text=True))
        results = []
        for child in children:
            out, _ = child.communicate()
            if child.returncode != 0:
                raise RuntimeError(f"a learner's run of {lesson} failed (exit {child.returncode})")
            results.append(json.loads(out.strip().splitlines()[-1]))
        return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("lesson", help="one lesson number or name")
    parser.add_argument("--learners", type=int, default=3, help="learners at once (default 3)")
    parser.add_argument("--threads", type=int, default=0, help="threads per seat (default: cores / learners)")
    parser.add_argument("--timeout", type=int, default=900, help="seconds per cell (default 900)")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(one_learner(args.lesson, args.timeout)))
        return 0

    from labkit.report import format_table

    cores = len(os.sched_getaffinity(0))
    threads = args.threads or max(1, cores // args.learners)
    start = time.perf_counter()
    alone = run_learners(args.lesson, 1, threads, args.timeout)
    together_start = time.perf_counter()
    together = run_learners(args.lesson, args.learners, threads, args.timeout)
    together_wall = time.perf_counter() - together_start
    def row(run: str, result: dict) -> tuple[str, ...]:
        return (run, f"{result['seconds']:.0f}", f"{result['peak_gib']:.2f}", f"{result['private_gib']:.2f}",
                f"{result['artifacts_mib']:.0f}")

    rows = [row("alone", alone[0])] + [row(f"{args.learners} at once: learner {i + 1}", r) for i, r in enumerate(together)]
    load = " ".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"{alone[0]['lesson']}: {cores} cores, {threads} thread(s) per seat; {args.learners} at once took "
          f"{together_wall:.0f} s wall (all done), whole benchmark {time.perf_counter() - start:.0f} s; "
          f"load average after {load}")
    print(format_table(["run", "run s", "kernel peak GiB", "private GiB", "artifacts MiB"], rows, align="lrrrr"))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What each lesson needs of a seat: wall time of a full run, the kernel's peak memory, and its files on disk.

    .venv/bin/python benchmarks/lesson_footprint.py            # every lesson, one after the other (~10 min)
    .venv/bin/python benchmarks/lesson_footprint.py 01 06      # some of them

An instructor runs it once on a machine like the room's before a workshop (docs/workshop.md quotes a run).
Each lesson is executed in a fresh kernel, as `labkit run` does, on a copy in memory (nothing is saved to the
notebook); one extra cell at the end reads the kernel's own peak resident memory (VmHWM in /proc/self/status).
The memory of processes a lesson starts (Lesson 00's inner pytest, Lesson 04's C++ compiler) is not included.
Disk is what the lesson leaves under artifacts/<lesson>/ (exported models, traces), measured after its run.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from labkit.lessons import select_notebooks
from labkit.notebook import clean_env
from labkit.paths import repo_root
from labkit.report import format_table

PEAK_CELL = "print([line.split()[1] for line in open('/proc/self/status') if line.startswith('VmHWM')][0])"


def folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file()) if folder.is_dir() else 0


def footprint(path: Path, timeout: int) -> tuple[float, float, float]:
    """(seconds, peak kernel memory in GiB, artifacts in GiB) of one full run of the notebook at `path`."""
    notebook = nbformat.read(path, as_version=4)
    notebook.cells.append(nbformat.v4.new_code_cell(PEAK_CELL))
    start = time.perf_counter()
    client = NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    client.execute(env=clean_env())  # the kernel's environment: no caller's setting changes what a lesson does
    seconds = time.perf_counter() - start
    peak_kib = int(notebook.cells[-1].outputs[0]["text"])
    disk = folder_bytes(repo_root() / "artifacts" / path.stem)
    return seconds, peak_kib / 1024**2, disk / 1024**3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("lessons", nargs="*", help="lesson numbers or names (default: all)")
    parser.add_argument("--timeout", type=int, default=900, help="seconds per cell (default 900)")
    args = parser.parse_args(argv)
    rows, total_seconds, peak, disk = [], 0.0, 0.0, 0.0
    for path in select_notebooks(args.lessons):
        print(f"running {path.name} ...", file=sys.stderr, flush=True)
        seconds, gib, artifacts = footprint(path, args.timeout)
        rows.append((path.stem, f"{seconds:.0f}", f"{gib:.2f}", f"{1024 * artifacts:.0f}"))
        total_seconds, peak, disk = total_seconds + seconds, max(peak, gib), disk + artifacts
    rows.append(("all", f"{total_seconds:.0f}", f"{peak:.2f} (max)", f"{1024 * disk:.0f}"))
    load = " ".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"{os.cpu_count()} logical cores; load average after the runs {load}")
    print(format_table(["lesson", "run s", "kernel peak GiB", "artifacts MiB"], rows, align="lrrr"))
    return 0


if __name__ == "__main__":
    sys.exit(main())

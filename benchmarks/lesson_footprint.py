"""What each lesson needs of a seat: wall time of a full run, the kernel's peak memory, and its files on disk.

    .venv/bin/python benchmarks/lesson_footprint.py            # every lesson, one after the other (~10 min)
    .venv/bin/python benchmarks/lesson_footprint.py 01 06      # some of them

An instructor runs it once on a machine like the room's before a workshop (docs/workshop.md quotes a run).
Each lesson is executed in a fresh kernel, as `labkit run` does, on a copy in memory (nothing is saved to the
notebook). Around each of the lesson's code cells the copy has two probe cells of its own: one before resets the
kernel's peak resident memory (writing 5 to /proc/self/clear_refs) and notes its file-backed pages (RssFile), one
after reads the peak the cell reached (VmHWM). So the report names the cell where the lesson peaks, and splits the
peak in two:
- peak: all the kernel's resident memory at its highest (what `top` shows; the figure a per-learner container
  limit counts);
- private: that peak less the file-backed pages (the libraries torch, ONNX Runtime and friends map from the one
  install, about 0.4 GiB): what each further learner on one server adds, since those pages are shared by every
  kernel that maps the same files. An upper bound: the file-backed pages are counted as they were when the cell
  started, and they only grow while it runs.
The memory of processes a lesson starts (Lesson 00's inner pytest, Lesson 04's C++ compiler) is not included.
Disk is what the lesson leaves under its artifacts folder (exported models, traces), measured after its run.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from labkit.lessons import select_notebooks
from labkit.notebook import clean_env
from labkit.paths import learner_root
from labkit.report import format_table

BEFORE_CELL = ("print([line.split()[1] for line in open('/proc/self/status') if line.startswith('RssFile')][0]); "
               "open('/proc/self/clear_refs', 'w').write('5')")
AFTER_CELL = "print([line.split()[1] for line in open('/proc/self/status') if line.startswith('VmHWM')][0])"


@dataclass
class Footprint:
    lesson: str
    seconds: float
    peak_gib: float  # the kernel's resident memory at its highest
    private_gib: float  # that peak less the file-backed pages shared with every other kernel of the install
    peak_cell: int  # the lesson's own cell index where the peak happened
    artifacts_mib: float

    def row(self) -> tuple[str, ...]:
        return (self.lesson, f"{self.seconds:.0f}", f"{self.peak_gib:.2f}", f"{self.private_gib:.2f}",
                str(self.peak_cell), f"{self.artifacts_mib:.0f}")


HEADER = ["lesson", "run s", "kernel peak GiB", "private GiB", "at cell", "artifacts MiB"]


def folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file()) if folder.is_dir() else 0


def _probe_value(cell) -> int:
    """The number a probe cell printed (its last line: output a lesson cell left in flight may come first)."""
    printed = "".join(output["text"] for output in cell.outputs if output.get("name") == "stdout").split()
    if not printed or not printed[-1].isdigit():
        raise RuntimeError(f"a memory probe printed no number: {cell.outputs}")
    return int(printed[-1])


def footprint(path: Path, timeout: int) -> Footprint:
    """One full run of the notebook at `path`, in a fresh kernel, probed around each code cell."""
    notebook = nbformat.read(path, as_version=4)
    cells, probed = [], []  # probed: (index of the lesson's cell in `cells`, its index in the lesson)
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type == "code":
            cells.append(nbformat.v4.new_code_cell(BEFORE_CELL))
            probed.append((len(cells), index))
            cells += [cell, nbformat.v4.new_code_cell(AFTER_CELL)]
    notebook.cells = cells
    start = time.perf_counter()
    client = NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    client.execute(env=clean_env())  # the kernel's environment: no caller's setting changes what a lesson does
    seconds = time.perf_counter() - start
    peak_kib, private_kib, peak_cell = 0, 0, 0
    for position, index in probed:
        high, file_pages = _probe_value(cells[position + 1]), _probe_value(cells[position - 1])
        if high > peak_kib:
            peak_kib, peak_cell = high, index
        private_kib = max(private_kib, high - file_pages)
    disk = folder_bytes(learner_root() / "artifacts" / path.stem)
    return Footprint(path.stem, seconds, peak_kib / 2**20, private_kib / 2**20, peak_cell, disk / 2**20)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("lessons", nargs="*", help="lesson numbers or names (default: all)")
    parser.add_argument("--timeout", type=int, default=900, help="seconds per cell (default 900)")
    args = parser.parse_args(argv)
    results = []
    for path in select_notebooks(args.lessons):
        print(f"running {path.name} ...", file=sys.stderr, flush=True)
        results.append(footprint(path, args.timeout))
    rows = [result.row() for result in results]
    rows.append(("all", f"{sum(r.seconds for r in results):.0f}", f"{max(r.peak_gib for r in results):.2f} (max)",
                 f"{max(r.private_gib for r in results):.2f} (max)", "",
                 f"{sum(r.artifacts_mib for r in results):.0f}"))
    load = " ".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"{os.cpu_count()} logical cores; load average after the runs {load}")
    print(format_table(HEADER, rows, align="lrrrrr"))
    return 0


if __name__ == "__main__":
    sys.exit(main())

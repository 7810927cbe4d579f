"""`labkit student-copy`: the learner's version of a lesson, made from the tested instructor copy.

Solutions sit between `### BEGIN SOLUTION` and `### END SOLUTION` in code cells (nbgrader's
markers). The student copy replaces each region with a `# YOUR CODE HERE` stub (so the
following `qN.check()` reports "Not attempted") and clears every output. A nested or unclosed
marker is an error, never a silent pass.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from .paths import display_path, repo_root

__all__ = ["strip_solutions", "make_student_copy"]

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
STUB = "# YOUR CODE HERE (q.hint() helps, q.solution() shows one answer)"


def strip_solutions(source: str, where: str = "cell") -> tuple[str, int]:
    """Replace every solution region in `source` with the stub; return the new source and the region count."""
    out, inside, regions, indent = [], False, 0, ""
    for number, line in enumerate(source.splitlines(), start=1):
        marker = line.strip()
        if marker == BEGIN:
            if inside:
                raise ValueError(f"{where}, line {number}: '{BEGIN}' inside another solution region")
            inside, regions = True, regions + 1
            indent = line[: len(line) - len(line.lstrip())]
            out.append(f"{indent}{STUB}")
        elif marker == END:
            if not inside:
                raise ValueError(f"{where}, line {number}: '{END}' without a '{BEGIN}' before it")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError(f"{where}: '{BEGIN}' is never closed by '{END}'")
    return "\n".join(out), regions


def make_student_copy(source: Path, target: Path) -> int:
    """Write the student copy of one notebook; returns how many solution regions were replaced."""
    import nbformat

    notebook = nbformat.read(source, as_version=4)
    total = 0
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "code":
            continue
        cell.source, regions = strip_solutions(cell.source, f"{source.name}, cell {index}")
        total += regions
        cell.outputs, cell.execution_count = [], None
    target.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, target)
    return total


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("notebooks", nargs="*", help="notebooks to convert (default: every lesson)")
    parser.add_argument("--out", default=None, help="output folder (default: student/ in the checkout)")


def main(args: argparse.Namespace) -> int:
    from .runner import find_notebooks

    out = Path(args.out) if args.out else repo_root() / "student"
    for path in find_notebooks(args.notebooks):
        regions = make_student_copy(path, out / path.name)
        print(f"{display_path(out / path.name)}: {regions} solution region(s) replaced")
    return 0

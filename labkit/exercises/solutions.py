"""Solution regions, the one source of every exercise's answer (nbgrader's markers).

In a lesson notebook a solution sits between `### BEGIN SOLUTION` and `### END SOLUTION` in a
code cell. The regions before the cell that runs `qN.check()` are exercise N's solution:
`qN.solution()` shows their text, and the learner's copy replaces each region with `STUB`.
A nested or unclosed marker is an error, never a silent pass.
"""
from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

__all__ = ["BEGIN", "END", "STUB", "strip_solutions", "solution_regions", "exercise_solutions", "solution_text"]

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
STUB = "# YOUR CODE HERE (qN.hint() helps, qN.solution() shows one answer)"
_CHECK = re.compile(r"^\s*q(\d+)\.check\(\)", re.MULTILINE)


def _scan(source: str, where: str) -> tuple[list[str], list[str]]:
    """(source lines with each region replaced by the stub, the text of each region)."""
    out, regions, inside, indent, current = [], [], False, "", []
    for number, line in enumerate(source.splitlines(), start=1):
        marker = line.strip()
        if marker == BEGIN:
            if inside:
                raise ValueError(f"{where}, line {number}: '{BEGIN}' inside another solution region")
            inside, current = True, []
            indent = line[: len(line) - len(line.lstrip())]
            out.append(f"{indent}{STUB}")
        elif marker == END:
            if not inside:
                raise ValueError(f"{where}, line {number}: '{END}' without a '{BEGIN}' before it")
            inside = False
            regions.append("\n".join(text[len(indent):] if text.startswith(indent) else text for text in current))
        elif inside:
            current.append(line)
        else:
            out.append(line)
    if inside:
        raise ValueError(f"{where}: '{BEGIN}' is never closed by '{END}'")
    return out, regions


def strip_solutions(source: str, where: str = "cell") -> tuple[str, int]:
    """Replace every solution region in `source` with the stub; return the new source and the region count."""
    out, regions = _scan(source, where)
    return "\n".join(out), len(regions)


def solution_regions(source: str, where: str = "cell") -> list[str]:
    """The text inside each solution region of `source`, without the markers (dedented to the marker)."""
    return _scan(source, where)[1]


def exercise_solutions(notebook: Path) -> dict[int, str]:
    """{N: solution text} for a lesson notebook: the regions between `q(N-1).check()` and `qN.check()`."""
    import nbformat

    cells = nbformat.read(notebook, as_version=4).cells
    found: dict[int, str] = {}
    pending: list[str] = []
    for index, cell in enumerate(cells):
        if cell.cell_type != "code":
            continue
        pending += solution_regions(cell.source, f"{notebook.name}, cell {index}")
        for number in map(int, _CHECK.findall(cell.source)):
            if number in found:
                raise ValueError(f"{notebook.name}, cell {index}: q{number}.check() appears twice")
            if not pending:
                raise ValueError(f"{notebook.name}, cell {index}: q{number}.check() has no solution region before it")
            found[number], pending = "\n\n".join(region.strip("\n") for region in pending), []
    if pending:
        raise ValueError(f"{notebook.name}: a solution region after the last qN.check() belongs to no exercise")
    return found


@lru_cache(maxsize=None)
def _cached(path: str, mtime: float) -> dict[int, str]:
    return exercise_solutions(Path(path))


def solution_text(lesson: str, number: int) -> str:
    """Exercise `number`'s solution, read from the tested lesson `notebooks/<lesson>.ipynb`."""
    from ..paths import repo_root

    path = repo_root() / "notebooks" / f"{lesson}.ipynb"
    if not path.is_file():
        raise FileNotFoundError(f"the lesson notebook {path.name} is missing from notebooks/: restore it with git")
    solutions = _cached(str(path), path.stat().st_mtime)
    if number not in solutions:
        raise LookupError(f"{path.name} has no solution region before q{number}.check(): the lesson is incomplete")
    return solutions[number]

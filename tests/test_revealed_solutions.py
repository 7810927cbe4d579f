"""What `qN.solution()` shows a learner is a working answer, not only the notebook's own solution cell.

Each lesson is run once more with every solution region replaced by the text its exercise
reveals; every `qN.check()` in it must then say Correct. (nbval already proves the notebook's
own solutions; the revealed texts are separate strings that could drift from them unseen.)
"""
import importlib
from pathlib import Path

import nbformat
import pytest

from labkit.runner import run_notebook
from labkit.student import STUB, strip_solutions

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def exercises_of(notebook: Path) -> list:
    """q1, q2, ... of the lesson's exercise module, in order."""
    module = importlib.import_module(f"labkit.exercises.lesson{notebook.name[:2]}")
    found, number = [], 1
    while hasattr(module, f"q{number}"):
        found.append(getattr(module, f"q{number}"))
        number += 1
    return found


def with_revealed_solutions(notebook: Path, exercises: list):
    """The notebook with its n-th solution region replaced by exercise n's revealed solution."""
    lesson = nbformat.read(notebook, as_version=4)
    answers = [exercise.solution().body.strip("\n") for exercise in exercises]
    used = 0
    for index, cell in enumerate(lesson.cells):
        if cell.cell_type != "code":
            continue
        stubbed, regions = strip_solutions(cell.source, f"{notebook.name}, cell {index}")
        if not regions:
            continue
        lines = []
        for line in stubbed.splitlines():
            if line.strip() != STUB:
                lines.append(line)
                continue
            assert used < len(answers), f"{notebook.name}: more solution regions than exercises"
            indent = line[: len(line) - len(line.lstrip())]
            lines += [indent + text if text else text for text in answers[used].splitlines()]
            used += 1
        cell.source = "\n".join(lines)
    assert used == len(answers), f"{notebook.name}: {len(answers)} exercises but {used} solution regions"
    return lesson


def verdicts(lesson) -> dict[str, str]:
    """`qN.check()` source -> the plain text it displayed."""
    found = {}
    for cell in lesson.cells:
        source = cell.source.strip()
        if cell.cell_type == "code" and source.endswith(".check()"):
            found[source] = " ".join("".join(output.get("data", {}).get("text/plain", ""))
                                     for output in cell.get("outputs", []))
    return found


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda path: path.stem)
def test_every_revealed_solution_passes_its_check(notebook, tmp_path):
    exercises = exercises_of(notebook)
    assert exercises, f"{notebook.name}: no exercises in labkit.exercises.lesson{notebook.name[:2]}"
    copy = tmp_path / notebook.name
    nbformat.write(with_revealed_solutions(notebook, exercises), copy)

    result = run_notebook(copy, inplace=True)

    assert result.status == "ok", f"{notebook.name} with the revealed solutions failed: {result.error}"
    shown = verdicts(nbformat.read(copy, as_version=4))
    assert len(shown) == len(exercises), f"{notebook.name}: expected {len(exercises)} checks, found {list(shown)}"
    for check, text in shown.items():
        assert text.startswith("Correct"), f"{notebook.name}: {check} said {text!r}"

"""The committed notebooks themselves: executed, free of machine paths, laid out like every lesson.

nbval re-runs the notebooks and compares outputs; these tests catch what nbval cannot see:
a notebook saved without outputs, outputs that leak the author's machine, a broken skeleton.
"""
import re
from pathlib import Path

import nbformat
import pytest

from labkit.student import strip_solutions

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))
ABSOLUTE_PATH = re.compile(r"(/(home|root|tmp|work|Users|usr|opt|var)/[\w.-]+|[A-Z]:\\\\)")


def _id(path: Path) -> str:
    return path.stem


def _outputs_text(cell) -> str:
    parts = []
    for output in cell.get("outputs", []):
        parts.append(output.get("text", ""))
        parts.extend(str(output.get("data", {}).get(kind, "")) for kind in ("text/plain", "text/html", "image/svg+xml"))
        parts.extend(output.get("traceback", []))
    return "\n".join(parts)


def test_every_notebook_is_a_numbered_lesson():
    assert NOTEBOOKS, "no notebooks found"
    for path in NOTEBOOKS:
        assert re.fullmatch(r"\d\d_[a-z0-9_]+\.ipynb", path.name), f"{path.name}: name it NN_lower_snake.ipynb"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_id)
def test_every_code_cell_was_executed_in_one_top_to_bottom_run(path):
    cells = [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code" and c.source.strip()]
    counts = [c.execution_count for c in cells]
    assert None not in counts, f"{path.name}: unexecuted cells; refresh with `labkit run --inplace {path.stem[:2]}`"
    assert counts == list(range(1, len(cells) + 1)), f"{path.name}: cells were run out of order: {counts}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_id)
def test_outputs_hold_no_absolute_paths_of_the_machine_that_ran_them(path):
    for index, cell in enumerate(nbformat.read(path, as_version=4).cells):
        if cell.cell_type == "code":
            found = ABSOLUTE_PATH.search(_outputs_text(cell))
            assert not found, f"{path.name}, cell {index}: output shows the path {found.group(0)!r}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_id)
def test_no_saved_output_is_an_error(path):
    for index, cell in enumerate(nbformat.read(path, as_version=4).cells):
        for output in cell.get("outputs", []):
            assert output.output_type != "error", f"{path.name}, cell {index}: saved with an error output"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_id)
def test_lesson_skeleton_opens_and_closes_the_same_way(path):
    cells = nbformat.read(path, as_version=4).cells
    first = cells[0].source
    assert cells[0].cell_type == "markdown" and first.startswith(f"# Lesson {path.name[:2]} — ")
    for needed in ("In this notebook you will", "Prerequisites", "Time"):
        assert re.search(rf"\*\*{needed}:?\*\*:?", first), f"{path.name}: the first cell needs **{needed}:**"
    headings = [line for c in cells if c.cell_type == "markdown" for line in c.source.splitlines()
                if line.startswith("## ")]
    assert headings[-3:] == ["## Summary", "## Exercises", "## Where next"], f"{path.name}: ends with {headings[-3:]}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_id)
def test_exercise_answers_live_only_inside_solution_regions(path):
    """The student copy removes solution regions, so an answer assigned elsewhere would leak into it."""
    code = [c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
    regions = 0
    for index, source in enumerate(code):
        stripped, found = strip_solutions(source, f"{path.name}, code cell {index}")
        regions += found
        leaked = re.search(r"^\s*(ex\d+_\w+)\s*=", stripped, re.MULTILINE)
        assert not leaked, f"{path.name}: `{leaked.group(1)}` is assigned outside a solution region"
    assert regions >= 1, f"{path.name}: no exercise solution region"

"""Every lesson's core path runs alone: the cells before section 1, the sections marked core and the core
exercises (solved, as the lesson has them), in a fresh kernel, with nothing from the deep dives.

The workshop guide and each lesson promise that a learner may follow the core path and skip the deep
dives; a name defined only in a deep dive breaks that promise with a NameError on the day.
"""
import re

import nbformat
import pytest

from labkit.lessons import lesson_notebooks, run_notebook
from labkit.syllabus import core_cells

LESSONS = lesson_notebooks()


def _core_copy(path, folder):
    """The lesson cut down to its core path, written to `folder`; and for each code cell, its cell in the lesson."""
    notebook = nbformat.read(path, as_version=4)
    keep = core_cells(path)
    origin = [index for index in keep if notebook.cells[index].cell_type == "code"]
    notebook.cells = [notebook.cells[index] for index in keep]
    copy = folder / path.name
    nbformat.write(notebook, copy)
    return copy, origin


def _where(error: str, origin: list[int], path) -> str:
    """'Cell N' of the core copy, told as the lesson's own cell (index and id)."""
    found = re.match(r"Cell (\d+): (.*)", error, re.DOTALL)
    if not found:
        return error
    index = origin[int(found.group(1))]
    cell = nbformat.read(path, as_version=4).cells[index]
    return f"cell {index} (id {cell.get('id')}, first line {cell.source.splitlines()[0]!r}): {found.group(2)}"


def test_core_cells_are_the_intro_core_sections_summary_and_core_exercises(tmp_path):
    cells = [nbformat.v4.new_markdown_cell("# Lesson\n\n**Time:** ..."), nbformat.v4.new_code_cell("a = 1"),
             nbformat.v4.new_markdown_cell("## 1. First (core)"), nbformat.v4.new_code_cell("b = a"),
             nbformat.v4.new_markdown_cell("## 2. Second (deep dive)"), nbformat.v4.new_code_cell("c = b"),
             nbformat.v4.new_markdown_cell("## Summary\n\n* b"), nbformat.v4.new_markdown_cell("## Exercises"),
             nbformat.v4.new_code_cell("from x import q1, q2"),
             nbformat.v4.new_markdown_cell("**Exercise 1 — One** *(warm-up, core)*"), nbformat.v4.new_code_cell("q1"),
             nbformat.v4.new_markdown_cell("**Exercise 2 — Two** *(transfer, deep dive)*"),
             nbformat.v4.new_code_cell("q2"), nbformat.v4.new_markdown_cell("## Where next"),
             nbformat.v4.new_markdown_cell("## Sources")]
    path = tmp_path / "99_lesson.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=cells), path)
    assert core_cells(path) == [0, 1, 2, 3, 6, 7, 8, 9, 10]


@pytest.mark.slow
@pytest.mark.parametrize("path", LESSONS, ids=[p.stem for p in LESSONS])
def test_the_core_path_runs_alone_in_a_fresh_kernel(path, tmp_path, monkeypatch):
    monkeypatch.setenv("LABKIT_HOME", str(tmp_path / "home"))  # its artifacts stay out of the checkout's
    copy, origin = _core_copy(path, tmp_path)
    assert origin, f"{path.name} has no code cell on its core path"
    result = run_notebook(copy, timeout=600)
    assert result.ok, f"Lesson {path.stem[:2]} ({path.name}), core path alone: {_where(result.error, origin, path)}"

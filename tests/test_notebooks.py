"""The committed lessons themselves: executed, self-contained, true to their outputs, laid out like every lesson.

nbval re-runs the notebooks and compares outputs; these tests catch what nbval cannot see: a
notebook saved without outputs, outputs that leak the author's machine, internal words or
acceptance targets a learner would meet, a broken skeleton, stated times that are not the
text's, exercises whose solutions, checks and declarations do not line up.
"""
import ast
import importlib
import re
from pathlib import Path

import nbformat
import pytest

from labkit.exercises.solutions import exercise_solutions, solution_regions
from labkit.lessons import lesson_notebooks
from labkit.paths import repo_root
from labkit.syllabus import read_syllabus
from labkit.workspace import learner_copy, saved_outcomes

NOTEBOOKS = lesson_notebooks()
ABSOLUTE_PATH = re.compile(r"(/(home|root|tmp|work|Users|usr|opt|var)/[\w.-]+|[A-Z]:\\\\)")
INTERNAL_WORDS = re.compile(r"seed (tutorial|document|material|example|lesson|notes?)|\bthe seeds?\b(?!\s*=)|seed's|"
                            r"seed 00\d|the issue\b|acceptance target|reference machine", re.I)
TARGET_VERDICT = re.compile(r"target\s*(<|>|≤|≥|<=|>=)|target[^\n]{0,20}\b(met|not met)\b", re.I)
UNROUNDED = re.compile(r"(?<![\w.])-?\d+\.\d{7,}(?![\w.])")
MAX_CODE_LINES = 25
LESSON_CORE_MAX_MIN = 30  # the most one lesson's core path may take; the three-hour path's total: tests/test_workshop_guide.py


def _id(path: Path) -> str:
    return path.stem


def _cells(path: Path):
    return nbformat.read(path, as_version=4).cells


def _ignored(cell) -> bool:
    return cell.source.lstrip().startswith("# NBVAL_IGNORE_OUTPUT")


def _outputs_text(cell) -> str:
    parts = []
    for output in cell.get("outputs", []):
        parts.append(output.get("text", ""))
        parts.extend(str(output.get("data", {}).get(kind, "")) for kind in ("text/plain", "text/html", "image/svg+xml"))
        parts.extend(output.get("traceback", []))
    return "\n".join(parts)


def _rounded(minutes: float) -> int:
    return max(5, 5 * round(minutes / 5))


def test_every_notebook_is_a_numbered_lesson():
    assert NOTEBOOKS, "no notebooks found"
    strays = sorted(set((repo_root() / "notebooks").glob("*.ipynb")) - set(NOTEBOOKS))
    assert not strays, f"{[p.name for p in strays]}: name a lesson NN_lower_snake.ipynb, or move it out of notebooks/"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_id)
def test_every_code_cell_was_executed_in_one_top_to_bottom_run(path):
    cells = [c for c in _cells(path) if c.cell_type == "code" and c.source.strip()]
    counts = [c.execution_count for c in cells]
    assert None not in counts, f"{path.name}: unexecuted cells; refresh with `labkit run --inplace {path.stem[:2]}`"
    assert counts == list(range(1, len(cells) + 1)), f"{path.name}: cells were run out of order: {counts}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_id)
def test_outputs_hold_no_absolute_paths_of_the_machine_that_ran_them(path):
    for index, cell in enumerate(_cells(path)):
        if cell.cell_type == "code":
            found = ABSOLUTE_PATH.search(_outputs_text(cell))
            assert not found, f"{path.name}, cell {index}: output shows the path {found.group(0)!r}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_id)
def test_no_saved_output_is_an_error(path):
    for index, cell in enumerate(_cells(path)):
        for output in cell.get("outputs", []):
            assert output.output_type != "error", f"{path.name}, cell {index}: saved with an error output"


# --- what a learner reads --------------------------------------------------------------------------

@pytest.mark.parametrize("path", NOTEBOOKS, ids=_id)
def test_a_learner_never_meets_the_projects_internal_words(path):
    for index, cell in enumerate(_cells(path)):
        found = INTERNAL_WORDS.search(cell.source) or (cell.cell_type == "code" and INTERNAL_WORDS.search(
            _outputs_text(cell)))
        assert not found, f"{path.name}, cell {index}: {found.group(0)!r} means nothing to a learner: name the thing"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_id)
def test_no_output_prints_an_acceptance_target(path):
    for index, cell in enumerate(_cells(path)):
        if cell.cell_type == "code":
            found = TARGET_VERDICT.search(_outputs_text(cell))
            assert not found, f"{path.name}, cell {index}: prints a target ({found.group(0)!r}): keep it in a benchmark"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_id)
def test_internal_apis_sit_in_cells_that_say_so(path):
    cells = _cells(path)
    for index, cell in enumerate(cells):
        if cell.cell_type != "code" or "_internal" not in cell.source and "onnx._constants" not in cell.source:
            continue
        assert "# internal API:" in cell.source, f"{path.name}, cell {index}: mark the internal use `# internal API:`"
        before = next((c.source for c in reversed(cells[:index]) if c.cell_type == "markdown"), "")
        assert re.search(r"\binternal\b", before, re.I), (
            f"{path.name}, cell {index}: the markdown before it must say this API is internal and may break")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_id)
def test_code_cells_stay_short(path):
    for index, cell in enumerate(_cells(path)):
        if cell.cell_type == "code":
            lines = len(cell.source.splitlines())
            assert lines <= MAX_CODE_LINES, f"{path.name}, cell {index}: {lines} lines; split it (aim for 15)"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_id)
def test_checked_text_outputs_hold_no_unrounded_floats(path):
    for index, cell in enumerate(_cells(path)):
        if cell.cell_type == "code" and not _ignored(cell):
            found = UNROUNDED.search(_outputs_text(cell).replace("<svg", ""))
            assert not found, f"{path.name}, cell {index}: prints {found.group(0)}: round what a person reads"


# --- the skeleton and the times ----------------------------------------------------------------------

@pytest.mark.parametrize("path", NOTEBOOKS, ids=_id)
def test_lesson_skeleton_opens_and_closes_the_same_way(path):
    cells = _cells(path)
    first = cells[0].source
    assert cells[0].cell_type == "markdown" and first.startswith(f"# Lesson {path.name[:2]} — ")
    for needed in ("In this notebook you will", "Prerequisites", "Time"):
        assert re.search(rf"\*\*{needed}:?\*\*:?", first), f"{path.name}: the first cell needs **{needed}:**"
    headings = [line for c in cells if c.cell_type == "markdown" for line in c.source.splitlines()
                if line.startswith("## ")]
    assert headings[-4:] == ["## Summary", "## Exercises", "## Where next", "## Sources"], \
        f"{path.name}: ends with {headings[-4:]}"
    numbered = [h for h in headings if re.match(r"## \d+\.", h)]
    assert numbered, f"{path.name}: no numbered sections"
    for number, heading in enumerate(numbered, start=1):
        assert re.fullmatch(rf"## {number}\. .+ \((core|deep dive)\)", heading), (
            f"{path.name}: section heading {heading!r} should read '## {number}. Title (core)' or '(deep dive)'")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_id)
def test_stated_times_are_the_ones_the_text_takes(path):
    syllabus = read_syllabus(path)
    assert syllabus.stated_core is not None, (
        f"{path.name}: the first cell needs '**Time:** about N min on the core path (...), M min for everything.'")
    assert (syllabus.stated_core, syllabus.stated_total) == (_rounded(syllabus.core_minutes),
                                                             _rounded(syllabus.total_minutes)), (
        f"{path.name}: states {syllabus.stated_core} / {syllabus.stated_total} min; the text takes "
        f"{_rounded(syllabus.core_minutes)} / {_rounded(syllabus.total_minutes)} (labkit.syllabus)")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_id)
def test_each_lessons_core_path_fits_in_half_an_hour(path):
    minutes = read_syllabus(path).core_minutes
    assert minutes <= LESSON_CORE_MAX_MIN, f"{path.name}: the core path takes {minutes:.0f} min"


# --- exercises ---------------------------------------------------------------------------------------

def _exercises(path: Path) -> list:
    module = importlib.import_module(f"labkit.exercises.lesson{path.name[:2]}")
    found, number = [], 1
    while hasattr(module, f"q{number}"):
        found.append(getattr(module, f"q{number}"))
        number += 1
    return found


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_id)
def test_each_lesson_has_three_or_four_exercises_two_of_them_transfer(path):
    exercises = _exercises(path)
    assert 3 <= len(exercises) <= 4, f"{path.name}: {len(exercises)} exercises"
    transfer = [e for e in exercises if e.kind == "transfer"]
    assert len(transfer) >= 2, f"{path.name}: {len(transfer)} transfer exercise(s), at least 2 wanted"
    assert all(e.lesson == path.stem for e in exercises), f"{path.name}: exercises bound to another lesson"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_id)
def test_every_exercise_has_a_prompt_a_solution_and_a_check_saved_correct(path):
    exercises, cells = _exercises(path), _cells(path)
    solutions = exercise_solutions(path)
    assert sorted(solutions) == [e.number for e in exercises], f"{path.name}: solutions for {sorted(solutions)}"
    prompts = read_syllabus(path).exercises
    assert [(p.number, p.title, p.kind) for p in prompts] == [(e.number, e.title, e.kind) for e in exercises], (
        f"{path.name}: the prompts '**Exercise N — Title** *(kind, core)*' must match the declared exercises")
    outcomes = saved_outcomes(nbformat.read(path, as_version=4))  # the one reader of saved outcomes (labkit.workspace)
    for exercise in exercises:
        outcome = outcomes.get(exercise.number)
        assert outcome is not None and cells[outcome.cell].source.strip() == f"q{exercise.number}.check()", (
            f"{path.name}: no cell that is exactly `q{exercise.number}.check()`")
        assert (outcome.state, outcome.label) == ("Correct", exercise.label), (
            f"{path.name}: q{exercise.number} saved {outcome.state}: {outcome.text[:80]!r}")
        assert exercise.solution().body == solutions[exercise.number]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_id)
def test_the_learner_copy_holds_no_answer(path):
    """The learner copy stubs the solution regions; an answer assigned (or shown) anywhere else would leak into it."""
    answers = {name for exercise in _exercises(path) for name in exercise.answers}
    copy = learner_copy(path)
    assert not any(cell.get("outputs") for cell in copy.cells if cell.cell_type == "code"), f"{path.name}: outputs kept"
    for index, cell in enumerate(copy.cells):
        for name in answers:
            if cell.cell_type == "markdown":
                code = "\n".join(re.findall(r"```[a-z]*\n(.*?)```", cell.source, re.S) +
                                 re.findall(r"`([^`]+)`", cell.source))
                leaked = re.search(rf"(^|;)\s*{name}\s*=(?!=)", code, re.M)
            else:
                leaked = re.search(rf"^\s*{name}\s*(=|\+=)(?!=)", cell.source, re.M) or re.search(
                    rf"\bfor\s+{name}\b|\bas\s+{name}\b", cell.source)
            assert not leaked, f"{path.name}, cell {index}: the learner copy shows `{name} = ...` outside a stub"


def _names(source: str, context: type) -> set[str]:
    """Names a cell stores (ast.Store) or reads (ast.Load); IPython magics and shell lines are left out."""
    code = "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())
    return {node.id for node in ast.walk(ast.parse(code)) if isinstance(node, ast.Name) and isinstance(node.ctx, context)}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_id)
def test_a_learner_copy_runs_all_before_any_answer_is_written(path):
    """A name that only a solution defines is read by no other cell but the checks: in the learner copy, that cell
    would raise NameError and stop Run All at the first unanswered exercise (make test-lab runs the copies too)."""
    cells = [cell for cell in _cells(path) if cell.cell_type == "code"]
    in_solutions = {name for cell in cells for region in solution_regions(cell.source) for name in
                    _names(region, ast.Store)}
    copy = [cell for cell in learner_copy(path).cells if cell.cell_type == "code"]
    elsewhere = {name for cell in copy for name in _names(cell.source, ast.Store)}
    only_in_solutions = in_solutions - elsewhere
    for index, cell in enumerate(learner_copy(path).cells):
        if cell.cell_type != "code" or re.fullmatch(r"q\d+\.check\(\)", cell.source.strip()):
            continue
        read = _names(cell.source, ast.Load) & only_in_solutions
        assert not read, (f"{path.name}, cell {index} reads {sorted(read)}, which only a solution defines: "
                          "move it into the solution region, or into the exercise's check")

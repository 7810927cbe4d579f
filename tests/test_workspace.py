"""labkit.workspace and `labkit student-copy` / `labkit progress`: the learner's copies, their work never lost."""
import json

import nbformat
import pytest

from labkit import workspace
from labkit.cli import main as cli_main
from labkit.exercises.solutions import BEGIN, STUB
from labkit.lessons import lesson_notebooks
from labkit.paths import repo_root


def _lesson(path, *, answer="ex1 = 1", title="Square a number"):
    """A tiny lesson: an exercise prompt, a solution region, and its check cell (with a saved Correct)."""
    cells = [
        nbformat.v4.new_markdown_cell("## Exercises"),
        nbformat.v4.new_markdown_cell(f"**Exercise 1 — {title}** *(transfer, core)*\n\nSquare it."),
        nbformat.v4.new_code_cell(f"{BEGIN}\n{answer}\n### END SOLUTION", execution_count=1,
                                  outputs=[nbformat.v4.new_output("stream", text="hi")]),
        nbformat.v4.new_code_cell("q1.check()", execution_count=2, outputs=[nbformat.v4.new_output(
            "execute_result", data={"text/plain": f"Correct (Exercise 1 — {title}): fine"}, execution_count=2)]),
    ]
    nbformat.write(nbformat.v4.new_notebook(cells=cells), path)
    return path


@pytest.fixture
def lesson(tmp_path):
    (tmp_path / "lessons").mkdir()
    return _lesson(tmp_path / "lessons" / "01_square.ipynb")


@pytest.fixture
def out(tmp_path):
    return tmp_path / "workspace"


def _edit(path, text="ex1 = 1  # my own answer"):
    notebook = nbformat.read(path, as_version=4)
    notebook.cells[2].source = text
    nbformat.write(notebook, path)


def _actions(results):
    return [(r.path.name, r.action) for r in results]


# --------------------------------------------------------------------------- the copies

def test_a_learner_copy_has_stubs_instead_of_solutions_and_no_outputs(lesson, out):
    assert _actions(workspace.update_workspace([lesson], out)) == [("01_square.ipynb", "written")]
    copy = nbformat.read(out / lesson.name, as_version=4)
    assert copy.cells[2].source == STUB
    assert all(c.outputs == [] and c.execution_count is None for c in copy.cells if c.cell_type == "code")


def test_an_edited_copy_survives_two_more_runs(lesson, out):
    workspace.update_workspace([lesson], out)
    _edit(out / lesson.name)
    for _ in range(2):
        results = workspace.update_workspace([lesson], out)
        assert _actions(results) == [("01_square.ipynb", "kept")]
    assert nbformat.read(out / lesson.name, as_version=4).cells[2].source == "ex1 = 1  # my own answer"


def test_a_copy_that_was_run_counts_as_the_learners_work(lesson, out):
    workspace.update_workspace([lesson], out)
    copy = nbformat.read(out / lesson.name, as_version=4)
    copy.cells[3].outputs = [nbformat.v4.new_output("stream", text="Not attempted (Exercise 1 — x)")]
    nbformat.write(copy, out / lesson.name)
    _lesson(lesson, answer="ex1 = 2")  # the lesson changes
    results = workspace.update_workspace([lesson], out)
    assert _actions(results) == [("01_square.ipynb", "kept")]
    assert nbformat.read(out / lesson.name, as_version=4).cells[3].outputs != []


def test_a_newer_lesson_goes_beside_an_edited_copy_and_the_command_says_so(lesson, out, capsys):
    workspace.update_workspace([lesson], out)
    _edit(out / lesson.name)
    _lesson(lesson, title="Square a bigger number")
    assert cli_main(["student-copy", str(lesson), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "kept" in printed and "01_square.updated.ipynb" in printed
    beside = nbformat.read(out / "01_square.updated.ipynb", as_version=4)
    assert "Square a bigger number" in beside.cells[1].source
    assert nbformat.read(out / lesson.name, as_version=4).cells[2].source == "ex1 = 1  # my own answer"


def test_an_untouched_copy_is_replaced_by_a_newer_lesson(lesson, out):
    workspace.update_workspace([lesson], out)
    _lesson(lesson, title="Square a bigger number")
    assert _actions(workspace.update_workspace([lesson], out)) == [("01_square.ipynb", "updated")]
    assert "Square a bigger number" in nbformat.read(out / lesson.name, as_version=4).cells[1].source
    assert not (out / "01_square.updated.ipynb").exists()


def test_a_copy_the_manifest_does_not_know_is_never_overwritten(lesson, out):
    workspace.update_workspace([lesson], out)
    _edit(out / lesson.name)
    (out / workspace.MANIFEST).write_text("{ damaged")
    assert _actions(workspace.update_workspace([lesson], out)) == [("01_square.ipynb", "kept")]
    assert nbformat.read(out / lesson.name, as_version=4).cells[2].source == "ex1 = 1  # my own answer"


def test_force_keeps_a_backup_of_the_learners_copy(lesson, out):
    workspace.update_workspace([lesson], out)
    _edit(out / lesson.name)
    results = workspace.update_workspace([lesson], out, force=True)
    assert _actions(results) == [("01_square.ipynb", "replaced")]
    backups = list((out / workspace.BACKUP).glob("01_square.*.ipynb"))
    assert len(backups) == 1 and "moved to" in results[0].note
    assert nbformat.read(backups[0], as_version=4).cells[2].source == "ex1 = 1  # my own answer"
    assert nbformat.read(out / lesson.name, as_version=4).cells[2].source == STUB


def test_the_manifest_records_a_hash_of_each_generated_copy(lesson, out):
    workspace.update_workspace([lesson], out)
    copies = json.loads((out / workspace.MANIFEST).read_text())["copies"]
    assert copies == {"01_square.ipynb": workspace.cells_hash(workspace.learner_copy(lesson))}


# --------------------------------------------------------------------------- refusals

def test_a_copy_onto_its_own_source_is_refused_and_the_source_is_untouched(lesson):
    before = lesson.read_text()
    with pytest.raises(ValueError, match="refusing to overwrite the source notebook"):
        workspace.update_workspace([lesson], lesson.parent)
    assert lesson.read_text() == before


@pytest.mark.parametrize("inside", ["", "sub"])
def test_no_copy_is_ever_written_into_notebooks(lesson, inside):
    target = repo_root() / "notebooks" / inside
    with pytest.raises(ValueError, match="refusing to write learner copies into notebooks"):
        workspace.update_workspace([lesson], target)
    assert not (repo_root() / "notebooks" / "sub").exists()


def test_an_out_folder_that_is_a_file_is_refused_by_the_command(lesson, tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("mine")
    assert cli_main(["student-copy", str(lesson), "--out", str(afile)]) == 2
    err = capsys.readouterr().err
    assert "labkit student-copy: error: --out" in err and "is a file, not a folder" in err
    assert afile.read_text() == "mine"


def test_learner_copies_of_the_real_lessons_keep_every_check_and_no_solution(tmp_path):
    for path in lesson_notebooks():
        copy = workspace.learner_copy(path)
        text = "\n".join(c.source for c in copy.cells)
        assert BEGIN not in text and "### END SOLUTION" not in text, path.name
        solved = nbformat.read(path, as_version=4)
        checks = [c.source for c in solved.cells if c.cell_type == "code" and ".check()" in c.source]
        assert checks == [c.source for c in copy.cells if c.cell_type == "code" and ".check()" in c.source]
        assert not any(c.get("outputs") for c in copy.cells), path.name


# --------------------------------------------------------------------------- progress

def _run_copy(path, outcome_text):
    """Pretend the learner ran their copy: execution counts and the check's saved output."""
    notebook = nbformat.read(path, as_version=4)
    notebook.cells[2].execution_count = 1
    check = notebook.cells[3]
    check.execution_count = 2
    check.outputs = [nbformat.v4.new_output("execute_result", data={"text/plain": outcome_text}, execution_count=2)]
    nbformat.write(notebook, path)


@pytest.mark.parametrize("saved, state", [
    ("Correct (Exercise 1 — Square a number): 4 is 2 squared", "Correct"),
    ("Incorrect (Exercise 1 — Square a number): `ex1` is 3, not a square", "Incorrect"),
    ("Not attempted (Exercise 1 — Square a number): set `ex1` in the cell above", "Not attempted"),
])
def test_progress_reads_the_saved_check_of_the_learners_copy(lesson, out, saved, state):
    workspace.update_workspace([lesson], out)
    _run_copy(out / lesson.name, saved)
    [row] = workspace.read_progress(out, [lesson])
    assert (row.lesson, row.number, row.title, row.state) == ("01_square", 1, "Square a number", state)
    assert row.detail == saved.split("): ", 1)[1]


def test_progress_says_a_copy_was_never_run(lesson, out):
    workspace.update_workspace([lesson], out)
    [row] = workspace.read_progress(out, [lesson])
    assert row.state == workspace.NOT_RUN and "never run" in row.detail


def test_progress_says_a_check_that_raised_was_not_run(lesson, out):
    workspace.update_workspace([lesson], out)
    notebook = nbformat.read(out / lesson.name, as_version=4)
    notebook.cells[3].execution_count = 1
    notebook.cells[3].outputs = [nbformat.v4.new_output("error", ename="NameError", evalue="name 'q1' is not defined",
                                                        traceback=[])]
    nbformat.write(notebook, out / lesson.name)
    [row] = workspace.read_progress(out, [lesson])
    assert row.state == workspace.NOT_RUN and "NameError: name 'q1' is not defined" in row.detail


def test_progress_names_a_missing_copy_and_the_command_that_makes_it(lesson, out):
    out.mkdir()
    [row] = workspace.read_progress(out, [lesson])
    assert row.state == workspace.NOT_RUN and f"labkit student-copy 01 --out {out}" in row.detail


def test_progress_command_prints_an_aligned_table_and_counts(lesson, out, capsys, monkeypatch):
    workspace.update_workspace([lesson], out)
    _run_copy(out / lesson.name, "Correct (Exercise 1 — Square a number): fine")
    monkeypatch.setattr("labkit.lessons.lesson_notebooks", lambda folder=None: [lesson])
    assert cli_main(["progress", "--workspace", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["lesson", "exercise", "state", "detail"]
    assert lines[1].split()[:2] == ["01_square", "1"] and "Correct" in lines[1]
    assert lines[-1] == "1 of 1 exercises correct (Correct 1, Incorrect 0, Not attempted 0, not run yet 0)"


def test_progress_without_a_workspace_names_the_command_that_makes_one(tmp_path, capsys):
    assert cli_main(["progress", "--workspace", str(tmp_path / "none")]) == 2
    assert "no workspace at" in capsys.readouterr().err

"""labkit.workspace and `labkit student-copy` / `labkit progress`: the learner's copies, their work never lost."""
import json
from pathlib import Path

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
    assert copies == {"01_square.ipynb": workspace.copy_hash(workspace.learner_copy(lesson))}


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
    assert lines[-2] == ("1 of 1 exercises correct (Correct 1, Incorrect 0, Not attempted 0, not run yet 0, "
                         "out of date 0)")
    assert lines[-1].startswith("Read from the outputs saved in your copies")


def test_progress_without_a_workspace_names_the_command_that_makes_one(tmp_path, capsys):
    assert cli_main(["progress", "--workspace", str(tmp_path / "none")]) == 2
    assert "no workspace at" in capsys.readouterr().err


# --------------------------------------------------------------------------- round two: any edit is the learner's

def _change(path, change):
    notebook = nbformat.read(path, as_version=4)
    change(notebook)
    nbformat.write(notebook, path)


@pytest.mark.parametrize("edit", [
    lambda nb: nb.cells[2].metadata.setdefault("tags", []).append("my-tag"),
    lambda nb: nb.cells[1].metadata.update(my_note="read again"),
    lambda nb: nb.metadata.update(my_course={"week": 2}),
    lambda nb: nb.cells.append(nbformat.v4.new_markdown_cell("my notes")),
    lambda nb: nb.cells.pop(0),
    lambda nb: nb.cells[0].update(cell_type="raw"),
], ids=["cell tag", "cell metadata", "notebook metadata", "added cell", "removed cell", "cell type"])
def test_any_change_the_learner_made_keeps_their_copy_when_the_lesson_changes(lesson, out, edit):
    workspace.update_workspace([lesson], out)
    _change(out / lesson.name, edit)
    mine = (out / lesson.name).read_text()
    _lesson(lesson, title="Square a bigger number")
    assert _actions(workspace.update_workspace([lesson], out)) == [("01_square.ipynb", "kept")]
    assert (out / lesson.name).read_text() == mine
    assert (out / "01_square.updated.ipynb").is_file()


def test_what_jupyterlab_adds_on_opening_is_not_an_edit(lesson, out):
    workspace.update_workspace([lesson], out)
    _change(out / lesson.name, lambda nb: nb.metadata.update(
        language_info={"name": "python", "version": "3.11.9"}, kernelspec={"name": "python3", "display_name": "P"}))
    _lesson(lesson, title="Square a bigger number")
    assert _actions(workspace.update_workspace([lesson], out)) == [("01_square.ipynb", "updated")]


# --------------------------------------------------------------------------- round two: where copies may go

@pytest.mark.parametrize("where", ["", " ", ".", "artifacts/mywork", "artifacts", ".pytest_cache/ws", ".venv/ws",
                                   "labkit/__pycache__/ws", "tests/ws", "data", "labkit"])
def test_copies_are_refused_inside_the_checkouts_own_or_generated_folders(lesson, where, monkeypatch):
    monkeypatch.chdir(repo_root())
    created = not Path(repo_root(), where.strip() or ".").exists()
    with pytest.raises(ValueError, match="refusing to write learner copies into"):
        workspace.update_workspace([lesson], where)
    if created:
        assert not Path(repo_root(), where).exists()
    assert not (repo_root() / lesson.name).exists() and not (repo_root() / workspace.MANIFEST).exists()


def test_every_folder_make_clean_removes_is_refused_as_a_workspace(lesson):
    recipe = (repo_root() / "Makefile").read_text().split("\nclean:", 1)[1].split("\n\n", 1)[0]
    removed = [word for line in recipe.splitlines() if "rm -rf" in line
               for word in line.split("rm -rf", 1)[1].split() if not word.startswith(("-", "{", "+", "\\", ";"))]
    removed += [word for line in recipe.splitlines() if line.strip().startswith("find")
                for word in line.split()[1:line.split().index("-name")]]
    assert "artifacts" in removed, recipe
    for folder in removed:
        with pytest.raises(ValueError, match="refusing to write learner copies into"):
            workspace.update_workspace([lesson], repo_root() / folder / "mywork")


def test_an_empty_out_is_refused_by_the_command(lesson, capsys):
    assert cli_main(["student-copy", str(lesson), "--out", ""]) == 2
    assert "refusing to write learner copies into" in capsys.readouterr().err
    assert not (repo_root() / lesson.name).exists()


def test_the_default_workspace_and_a_folder_of_ones_own_are_accepted(lesson, tmp_path):
    workspace.check_targets([lesson], workspace.default_workspace())
    workspace.check_targets([lesson], tmp_path / "elsewhere")


# --------------------------------------------------------------------------- round two: the .updated copy

def test_a_second_lesson_change_never_writes_updated_updated_and_says_what_happened(lesson, out):
    workspace.update_workspace([lesson], out)
    _edit(out / lesson.name)
    _lesson(lesson, title="Second version")
    workspace.update_workspace([lesson], out)
    _edit(out / "01_square.updated.ipynb", "ex1 = 1  # answered in the updated copy")
    [again] = workspace.update_workspace([lesson], out)  # the lesson has not changed since the .updated copy
    assert again.action == "kept" and "was not written" not in again.note
    assert "01_square.updated.ipynb" in again.note
    _lesson(lesson, title="Third version")
    [result] = workspace.update_workspace([lesson], out)
    assert result.action == "kept"
    assert not list(out.glob("*.updated.updated.ipynb"))
    assert "was not written" in result.note and "01_square.updated.ipynb" in result.note
    assert "answered in the updated copy" in (out / "01_square.updated.ipynb").read_text()


def test_an_untouched_updated_copy_is_refreshed_by_the_next_lesson_change(lesson, out):
    workspace.update_workspace([lesson], out)
    _edit(out / lesson.name)
    _lesson(lesson, title="Second version")
    workspace.update_workspace([lesson], out)
    _lesson(lesson, title="Third version")
    [result] = workspace.update_workspace([lesson], out)
    assert result.action == "kept" and "01_square.updated.ipynb" in result.note
    assert "Third version" in (out / "01_square.updated.ipynb").read_text()


def test_progress_reads_the_updated_copy_the_learner_works_in(lesson, out):
    workspace.update_workspace([lesson], out)
    _edit(out / lesson.name)
    _lesson(lesson, title="Square a bigger number")
    workspace.update_workspace([lesson], out)
    _run_copy(out / "01_square.updated.ipynb", "Correct (Exercise 1 — Square a bigger number): fine")
    [row] = workspace.read_progress(out, [lesson])
    assert row.state == "Correct" and row.lesson == "01_square.updated"


# --------------------------------------------------------------------------- round two: unreadable notebooks

@pytest.mark.parametrize("damage", ["{}", "cut"], ids=["empty object", "cut short"])
def test_an_unreadable_copy_is_named_and_the_other_lessons_are_still_reported(tmp_path, out, damage):
    (tmp_path / "lessons").mkdir()
    first = _lesson(tmp_path / "lessons" / "01_square.ipynb")
    second = _lesson(tmp_path / "lessons" / "02_cube.ipynb", title="Cube a number")
    workspace.update_workspace([first, second], out)
    text = (out / first.name).read_text()
    (out / first.name).write_text("{}" if damage == "{}" else text[: len(text) // 2])
    _run_copy(out / second.name, "Correct (Exercise 1 — Cube a number): fine")
    rows = workspace.read_progress(out, [first, second])
    assert [r.state for r in rows] == [workspace.NOT_RUN, "Correct"]
    assert "01_square.ipynb is not a readable notebook" in rows[0].detail and "labkit student-copy 01" in rows[0].detail


def test_student_copy_offers_a_fresh_copy_beside_an_unreadable_one(lesson, out):
    workspace.update_workspace([lesson], out)
    (out / lesson.name).write_text("{}")
    [result] = workspace.update_workspace([lesson], out)
    assert result.action == "kept" and "not a readable notebook" in result.note and "your work" not in result.note
    assert (out / lesson.name).read_text() == "{}"
    assert nbformat.read(out / "01_square.updated.ipynb", as_version=4).cells[2].source == STUB


@pytest.mark.parametrize("damage", ["{}", "cut"], ids=["empty object", "cut short"])
def test_an_unreadable_lesson_is_named_and_the_others_are_copied(tmp_path, out, capsys, damage):
    (tmp_path / "lessons").mkdir()
    broken = _lesson(tmp_path / "lessons" / "01_square.ipynb")
    good = _lesson(tmp_path / "lessons" / "02_cube.ipynb")
    broken.write_text("{}" if damage == "{}" else broken.read_text()[:200])
    assert cli_main(["student-copy", str(broken), str(good), "--out", str(out)]) == 1
    printed = capsys.readouterr().out
    assert "01_square.ipynb is not a readable notebook" in printed
    assert (out / "02_cube.ipynb").is_file() and not (out / "01_square.ipynb").exists()
    rows = workspace.read_progress(out, [broken, good])
    assert "01_square.ipynb is not a readable notebook" in rows[0].detail
    assert rows[-1].lesson == "02_cube"


def test_a_damaged_cell_in_a_lesson_names_the_cell_and_the_fault(lesson):
    data = json.loads(lesson.read_text())
    data["cells"][2]["source"] = 42
    lesson.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"01_square.ipynb is not a readable notebook: cell 2: 'source' is 42"):
        workspace.learner_copy(lesson)


# --------------------------------------------------------------------------- round two: reading saved outcomes

def _lesson_with_check(path, check_source, output):
    notebook = nbformat.read(_lesson(path), as_version=4)
    notebook.cells[3].source = check_source
    notebook.cells[3].outputs = [output]
    nbformat.write(notebook, path)
    return path


@pytest.mark.parametrize("source, output", [
    ("q1.check(ex1=a)", nbformat.v4.new_output("execute_result", data={"text/plain": "Incorrect (Exercise 1 — Sq): no"},
                                                  execution_count=2)),
    ("print(q1.check())", nbformat.v4.new_output("stream", text="Incorrect (Exercise 1 — Sq): no\n")),
    ("a = 2\nq1.check(\n    ex1=a,\n)", nbformat.v4.new_output("execute_result",
                                                                  data={"text/plain": "Incorrect (Exercise 1 — Sq): no"},
                                                                  execution_count=2)),
    ("display(q1.check())  # see the result", nbformat.v4.new_output(
        "display_data", data={"text/plain": "Incorrect (Exercise 1 — Sq): no", "text/markdown": "**Incorrect**"})),
], ids=["keyword", "print", "multi-line", "display"])
def test_progress_reads_a_check_however_the_learner_wrote_it(tmp_path, out, source, output):
    (tmp_path / "lessons").mkdir()
    lesson = tmp_path / "lessons" / "01_square.ipynb"
    _lesson_with_check(lesson, source, output)
    workspace.update_workspace([lesson], out)
    _change(out / lesson.name, lambda nb: (nb.cells[2].update(execution_count=1),
                                           nb.cells[3].update(execution_count=2, outputs=[output])))
    [row] = workspace.read_progress(out, [lesson])
    assert (row.state, row.detail) == ("Incorrect", "no")


def test_a_check_older_than_the_answer_it_checked_is_not_shown_correct(lesson, out):
    workspace.update_workspace([lesson], out)
    _run_copy(out / lesson.name, "Correct (Exercise 1 — Square a number): fine")
    _change(out / lesson.name, lambda nb: nb.cells[2].update(execution_count=7))  # the answer re-run after the check
    [row] = workspace.read_progress(out, [lesson])
    assert row.state == workspace.OUT_OF_DATE and "run `q1.check()` again" in row.detail


def test_the_saved_outcomes_of_a_notebook_are_read_in_one_place(lesson):
    notebook = nbformat.read(lesson, as_version=4)
    [outcome] = workspace.saved_outcomes(notebook).values()
    assert (outcome.number, outcome.cell, outcome.state, outcome.label, outcome.detail) == (
        1, 3, "Correct", "Exercise 1 — Square a number", "fine")


def test_the_progress_table_says_what_saved_outputs_can_and_cannot_show(lesson, out):
    workspace.update_workspace([lesson], out)
    text = workspace.format_progress(workspace.read_progress(out, [lesson]))
    assert "saved" in text.splitlines()[-1] and "cannot show" in text.splitlines()[-1]


# --------------------------------------------------------------------------- round two: commands and links

def test_suggested_commands_quote_a_workspace_with_a_space(lesson, tmp_path):
    spaced = tmp_path / "my work"
    spaced.mkdir()
    [row] = workspace.read_progress(spaced, [lesson])
    assert f"labkit student-copy 01 --out '{spaced}'" in row.detail


def _outside(tmp_path, text="not the kit's"):
    victim = tmp_path / "outside" / "victim.ipynb"
    victim.parent.mkdir()
    victim.write_text(text)
    return victim


@pytest.mark.parametrize("link", ["01_square.ipynb", "01_square.updated.ipynb", workspace.MANIFEST,
                                  ".labkit-workspace.tmp"])
def test_no_workspace_file_is_written_through_a_link_that_leads_outside(lesson, out, tmp_path, link):
    workspace.update_workspace([lesson], out)
    if link != lesson.name:
        _edit(out / lesson.name)
        _lesson(lesson, title="Second version")
        workspace.update_workspace([lesson], out)  # writes 01_square.updated.ipynb
    victim = _outside(tmp_path, (out / link).read_text() if (out / link).exists() else "outside")
    (out / link).unlink(missing_ok=True)
    (out / link).symlink_to(victim)
    _lesson(lesson, title="Third version")
    try:
        workspace.update_workspace([lesson], out)
    except ValueError as refusal:
        assert f"refusing to write {out / link}" in str(refusal) and "a link to" in str(refusal)
    assert victim.read_text() != "" and "Third version" not in victim.read_text()


def test_no_backup_goes_through_a_link_that_leads_outside(lesson, out, tmp_path):
    workspace.update_workspace([lesson], out)
    _edit(out / lesson.name)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (out / workspace.BACKUP).symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(ValueError, match="refusing to write .*a link to"):
        workspace.update_workspace([lesson], out, force=True)
    assert list(elsewhere.iterdir()) == [] and "my own answer" in (out / lesson.name).read_text()


def test_a_lessons_artifacts_never_go_through_a_link_that_leads_out_of_the_checkout(tmp_path, monkeypatch):
    from labkit import paths

    checkout, elsewhere = tmp_path / "checkout", tmp_path / "elsewhere"
    for folder in (checkout / "data", checkout / "notebooks", elsewhere):
        folder.mkdir(parents=True)
    monkeypatch.setattr(paths, "repo_root", lambda: checkout)
    assert paths.artifacts_dir("01_x") == checkout / "artifacts" / "01_x"
    (checkout / "artifacts" / "02_y").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(ValueError, match="refusing to write .*02_y.* is a link to"):
        paths.artifacts_dir("02_y")
    (checkout / "artifacts" / "inside").mkdir()
    (checkout / "artifacts" / "03_z").symlink_to(checkout / "artifacts" / "inside", target_is_directory=True)
    assert paths.artifacts_dir("03_z") == checkout / "artifacts" / "03_z"  # a link that stays inside is fine

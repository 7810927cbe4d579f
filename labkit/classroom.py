"""The instructor's view of a room: every learner's progress, read from their own workspaces, never written.

A class is a folder holding one folder per learner (e.g. /home on a JupyterHub with system users), or a
glob of such folders (`/home/*`). A learner's workspace is the first of `<folder>/onnx-labkit/workspace`
(what the hub's spawner sets up: LABKIT_HOME=$HOME/onnx-labkit), `<folder>/workspace`, or the folder itself
when it holds lesson copies. Each is read with `workspace.read_progress` (and so `workspace.saved_outcomes`,
the kit's one reader of saved checks): a learner whose files cannot be read is named in their rows, the
others are still read. Nothing here opens a learner's file for writing.
"""
from __future__ import annotations

import csv
import glob
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .exercises.core import CORRECT
from .paths import HOME_VARIABLE
from .report import format_table
from .workspace import NOT_RUN, WORKSPACE, ExerciseProgress, read_progress

__all__ = ["HUB_FOLDER", "UNREADABLE", "NO_WORKSPACE", "Learner", "find_learners", "learner_workspace",
           "LearnerProgress", "read_class", "format_class", "class_csv", "CSV_COLUMNS"]

HUB_FOLDER = "onnx-labkit"            # $HOME/onnx-labkit: the LABKIT_HOME the hub's spawner gives each learner
UNREADABLE = "unreadable"             # the learner's workspace (or a notebook in it) cannot be read by this user
NO_WORKSPACE = "no workspace"         # the learner has not logged in yet (nothing copied)
CSV_COLUMNS = ("learner", "lesson", "exercise", "title", "state", "detail", "workspace")


@dataclass(frozen=True)
class Learner:
    """One learner of the class: their name (their folder's name) and their home folder."""

    name: str
    folder: Path


def find_learners(spec: str | Path) -> list[Learner]:
    """The learners `spec` names: a folder of learners' folders, or a glob of them (`/home/*`), sorted by name.
    Hidden folders and files are not learners. Raises FileNotFoundError naming what was given."""
    text = str(spec)
    if glob.has_magic(text):
        folders = [Path(p) for p in glob.glob(text) if Path(p).is_dir()]
    else:
        root = Path(text).expanduser()
        if not root.is_dir():
            raise FileNotFoundError(f"no class folder at {text}: give the folder that holds one folder per learner "
                                    "(e.g. /home) or a glob of their homes (e.g. '/home/learner*')")
        try:
            folders = [p for p in root.iterdir() if p.is_dir()]
        except OSError as error:
            raise PermissionError(f"cannot list {text} ({error.strerror}): run this as a user who can read the "
                                  "learners' homes (the hub's admin, or root)") from None
    learners = sorted((Learner(p.name, p) for p in folders if not p.name.startswith(".")), key=lambda x: x.name)
    if not learners:
        raise FileNotFoundError(f"no learner folders in {text}: give the folder that holds one folder per learner "
                                "or a glob of their homes")
    return learners


def learner_workspace(folder: str | Path) -> Path | None:
    """The learner's workspace inside their folder: onnx-labkit/workspace (the hub), workspace/ (a checkout), or the
    folder itself when it holds lesson copies; None when there is none (or it cannot be looked into)."""
    folder = Path(folder)
    for candidate in (folder / HUB_FOLDER / WORKSPACE, folder / WORKSPACE):
        try:
            if candidate.is_dir():
                return candidate
        except OSError:
            continue
    try:
        if any(folder.glob("[0-9][0-9]_*.ipynb")):
            return folder
    except OSError:
        pass
    return None


@dataclass(frozen=True)
class LearnerProgress:
    """One learner's rows: one per exercise of every lesson read (state Correct, Incorrect, ... or UNREADABLE)."""

    learner: Learner
    workspace: Path | None
    rows: tuple[ExerciseProgress, ...]


def _every_exercise(lessons: Sequence[Path] | None) -> list[tuple[str, int, str]]:
    """(lesson, number, title) of every exercise of `lessons` (default: the install's lessons)."""
    from .lessons import NotebookError, lesson_notebooks, read_notebook
    from .syllabus import read_syllabus

    every = []
    for source in lesson_notebooks() if lessons is None else lessons:
        try:
            read_notebook(source)
            every += [(source.stem, e.number, e.title) for e in read_syllabus(source).exercises]
        except NotebookError:
            every.append((source.stem, 0, "every exercise"))
    return every


def _same_rows(exercises, state: str, detail: str) -> tuple[ExerciseProgress, ...]:
    return tuple(ExerciseProgress(lesson, number, title, state, detail) for lesson, number, title in exercises)


def read_class(spec: str | Path, lessons: Sequence[Path] | None = None) -> list[LearnerProgress]:
    """Every learner's progress on every exercise of `lessons` (default: the install's lessons), read-only.
    A learner without a workspace, or whose workspace cannot be read by this user, gets rows saying so."""
    every = _every_exercise(lessons)
    result = []
    for learner in find_learners(spec):
        found = learner_workspace(learner.folder)
        if found is None:
            try:
                learner.folder.stat()
                list(learner.folder.iterdir())
            except OSError as error:
                why = (f"cannot read {learner.folder} ({error.strerror}): run this as a user who can read the "
                       "learners' homes (the hub's admin, or root)")
                result.append(LearnerProgress(learner, None, _same_rows(every, UNREADABLE, why)))
                continue
            why = (f"no workspace in {learner.folder}: the learner has not started their server yet (the hub makes "
                   f"{HUB_FOLDER}/{WORKSPACE}/ at their first login; ${HOME_VARIABLE} with `labkit student-copy` "
                   "elsewhere)")
            result.append(LearnerProgress(learner, None, _same_rows(every, NO_WORKSPACE, why)))
            continue
        try:
            rows = read_progress(found, lessons)
        except OSError as error:
            why = f"cannot read {found} ({error.strerror or error}): run this as a user who can read it"
            rows = _same_rows(every, UNREADABLE, why)
        rows = tuple(_unreadable(row) for row in rows)
        result.append(LearnerProgress(learner, found, rows))
    return result


def _unreadable(row: ExerciseProgress) -> ExerciseProgress:
    """A row whose notebook could not be read for lack of permission says UNREADABLE, not 'not run yet'."""
    if row.state == NOT_RUN and "Permission denied" in row.detail:
        return ExerciseProgress(row.lesson, row.number, row.title, UNREADABLE, row.detail)
    return row


def _lesson_of(row: ExerciseProgress) -> str:
    """The lesson's stem, without the `.updated` a learner's working copy may carry."""
    return row.lesson.removesuffix(".updated")


def format_class(progress: Sequence[LearnerProgress]) -> str:
    """Per lesson, one table: a row per learner, a column per exercise (its state); then each learner's count of
    Correct, and every problem reading a learner's files (unreadable notebooks, missing workspaces) with its fix."""
    lessons: dict[str, list[tuple[int, str]]] = {}
    for learner in progress:
        for row in learner.rows:
            columns = lessons.setdefault(_lesson_of(row), [])
            if (row.number, row.title) not in columns:
                columns.append((row.number, row.title))
    blocks = []
    for lesson, columns in lessons.items():
        header = ("learner", *(f"q{n}" if n else title for n, title in columns))
        table = []
        for learner in progress:
            states = {row.number: row.state for row in learner.rows if _lesson_of(row) == lesson}
            table.append((learner.learner.name, *(states.get(n, "") for n, _ in columns)))
        titles = "; ".join(f"q{n} {title}" for n, title in columns if n)
        blocks.append(f"{lesson}" + (f" ({titles})" if titles else "") + "\n" + format_table(header, table))
    totals = format_table(("learner", "correct", "workspace"), [
        (p.learner.name, f"{sum(r.state == CORRECT for r in p.rows)} of {len(p.rows)}",
         str(p.workspace) if p.workspace else "-") for p in progress])
    problems = sorted({f"{p.learner.name}: {r.detail}" for p in progress for r in p.rows
                       if r.state in (UNREADABLE, NO_WORKSPACE) or (r.state == NOT_RUN and "not a readable" in r.detail)})
    text = "\n\n".join(blocks) + "\n\n" + totals
    if problems:
        text += "\n\nNot read:\n" + "\n".join(f"  {line}" for line in problems)
    return text + ("\nRead from the outputs saved in each learner's copies (nothing of theirs was written): a check "
                   "counts as it last ran and was saved.")


def class_csv(progress: Sequence[LearnerProgress]) -> str:
    """One CSV line per learner and exercise: CSV_COLUMNS (a spreadsheet's long format)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for learner in progress:
        for row in learner.rows:
            writer.writerow((learner.learner.name, _lesson_of(row), row.number, row.title, row.state, row.detail,
                             str(learner.workspace or "")))
    return buffer.getvalue()

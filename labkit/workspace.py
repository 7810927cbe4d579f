"""The learner's workspace: their copies of the lessons (solutions stubbed, outputs cleared) and their progress.

A learner's work is never lost. `update_workspace` writes a copy that is missing; replaces a copy
only while it is still exactly as generated (the manifest `.labkit-workspace.json` keeps a hash
of each generated copy's cells: sources and outputs); and for a copy the learner has edited or
run, writes the newer lesson beside it as `NN_name.updated.ipynb`. With `force`, the learner's
copy is first moved to `.backup/NN_name.<time>.ipynb`. It never writes into notebooks/ or onto
a source notebook.

`read_progress` reads the saved `qN.check()` outputs of the learner's copies: Correct, Incorrect,
Not attempted, or not run yet.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .exercises.core import CORRECT, INCORRECT, NOT_ATTEMPTED
from .paths import display_path, repo_root
from .report import format_table

__all__ = ["WORKSPACE", "MANIFEST", "BACKUP", "NOT_RUN", "default_workspace", "learner_copy", "cells_hash",
           "check_targets", "CopyResult", "update_workspace", "format_copies", "ExerciseProgress", "read_progress",
           "format_progress"]

WORKSPACE = "workspace"                 # in the checkout, git-ignored
MANIFEST = ".labkit-workspace.json"
BACKUP = ".backup"
NOT_RUN = "not run yet"
UPDATED_SUFFIX = ".updated"


def default_workspace() -> Path:
    """`workspace/` in the checkout: where `make lab` opens JupyterLab."""
    return repo_root() / WORKSPACE


def _shown(path: Path) -> str:
    """A path as the learner should read it: relative to the checkout when inside it, else as given."""
    path = Path(path)
    try:
        path.resolve().relative_to(repo_root())
    except ValueError:
        return str(path)
    return display_path(path)


def _copy_command(number: str, workspace: Path) -> str:
    out = "" if Path(workspace).resolve() == default_workspace().resolve() else f"--out {_shown(workspace)}"
    return "`" + " ".join(part for part in ("labkit student-copy", number, out) if part) + "`"


# --------------------------------------------------------------------------- making copies

def learner_copy(source: str | Path):
    """The learner's version of a lesson notebook: every solution region a stub, every output cleared."""
    import nbformat

    from .exercises.solutions import strip_solutions

    source = Path(source)
    notebook = nbformat.read(source, as_version=4)
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "code":
            continue
        cell.source, _ = strip_solutions(cell.source, f"{source.name}, cell {index}")
        cell.outputs, cell.execution_count = [], None
    notebook.metadata.pop("widgets", None)
    return notebook


def cells_hash(notebook) -> str:
    """SHA-256 of a notebook's cells (type, source, outputs): equal exactly when a learner changed nothing."""
    cells = [[c.cell_type, c.source, c.get("outputs", [])] for c in notebook.cells]
    return hashlib.sha256(json.dumps(cells, sort_keys=True).encode()).hexdigest()


def _read_hash(path: Path) -> str | None:
    import nbformat

    try:
        return cells_hash(nbformat.read(path, as_version=4))
    except Exception:  # not a readable notebook: treat it as the learner's, never as ours
        return None


def check_targets(sources: Sequence[Path], out: Path) -> None:
    """Refuse a workspace that is a file, lies in notebooks/, or would overwrite a source notebook."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--out '{out}' is a file, not a folder: give a folder (default {WORKSPACE}/)")
    lessons = (repo_root() / "notebooks").resolve()
    where = out.resolve()
    if where == lessons or lessons in where.parents:
        raise ValueError(f"refusing to write learner copies into {_shown(out)}: notebooks/ holds the tested "
                         f"lessons; use the default {WORKSPACE}/ or another folder")
    sources = {Path(s).resolve() for s in sources}
    for source in sorted(sources):
        if (where / source.name).resolve() in sources:
            raise ValueError(f"refusing to overwrite the source notebook {_shown(source)} with its learner "
                             "copy: choose another --out")


@dataclass(frozen=True)
class CopyResult:
    """What happened to one learner copy: written, updated, unchanged, kept, or replaced (with a backup)."""

    path: Path
    action: str
    note: str = ""


def _manifest(out: Path) -> dict:
    try:
        data = json.loads((out / MANIFEST).read_text())
        return dict(data.get("copies", {}))
    except (OSError, ValueError, AttributeError):
        return {}  # no (or an unreadable) record: every existing copy counts as the learner's


def _save_manifest(out: Path, copies: dict) -> None:
    path = out / MANIFEST
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps({"version": 1, "copies": copies}, indent=1, sort_keys=True) + "\n")
    os.replace(temporary, path)


def _backup(path: Path, out: Path) -> Path:
    folder = out / BACKUP
    folder.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = folder / f"{path.stem}.{stamp}.ipynb"
    number = 1
    while target.exists():
        target, number = folder / f"{path.stem}.{stamp}-{number}.ipynb", number + 1
    shutil.move(str(path), target)
    return target


def _write(notebook, target: Path, digest: str, copies: dict) -> None:
    import nbformat

    nbformat.write(notebook, target)
    copies[target.name] = digest


def _place(notebook, digest: str, target: Path, out: Path, copies: dict, force: bool) -> CopyResult:
    """Put one generated copy at `target` without ever overwriting the learner's work."""
    if not target.exists():
        _write(notebook, target, digest, copies)
        return CopyResult(target, "written")
    current = _read_hash(target)
    if current == digest:
        copies[target.name] = digest
        return CopyResult(target, "unchanged")
    generated = copies.get(target.name)
    if current is not None and current == generated:  # still exactly as we made it: nothing of theirs to lose
        _write(notebook, target, digest, copies)
        return CopyResult(target, "updated", "the lesson changed; your copy was untouched, so it was replaced")
    if force:
        backup = _backup(target, out)
        _write(notebook, target, digest, copies)
        return CopyResult(target, "replaced", f"your copy was moved to {_shown(backup)}")
    if generated == digest:
        return CopyResult(target, "kept", "your work; the lesson has not changed since this copy was made")
    beside = target.with_name(f"{target.stem}{UPDATED_SUFFIX}.ipynb")
    placed = _place(notebook, digest, beside, out, copies, force=False)
    if placed.action == "kept":
        return CopyResult(target, "kept", f"your work; {_shown(beside)} is yours too, so the newer lesson "
                                          "was not written: move one of them away and run this again")
    return CopyResult(target, "kept", f"your work; the newer lesson is in {_shown(beside)}")


def update_workspace(sources: Sequence[Path], out: str | Path | None = None, *, force: bool = False
                     ) -> list[CopyResult]:
    """Make or refresh the learner copies of `sources` in `out` (default workspace/), never losing the learner's work."""
    out = default_workspace() if out is None else Path(out)
    sources = [Path(s) for s in sources]
    check_targets(sources, out)
    out.mkdir(parents=True, exist_ok=True)
    copies = _manifest(out)
    results = []
    try:
        for source in sources:
            notebook = learner_copy(source)
            results.append(_place(notebook, cells_hash(notebook), out / source.name, out, copies, force))
    finally:
        _save_manifest(out, copies)
    return results


def format_copies(results: Sequence[CopyResult], out: str | Path | None = None) -> str:
    """One aligned row per copy (what happened, the file, a note), then where the copies are and what next."""
    out = default_workspace() if out is None else Path(out)
    table = format_table(("copy", "file", "note"), [(r.action, _shown(r.path), r.note) for r in results])
    return (f"{table}\nlearner copies in {_shown(out)}/ (solutions replaced by stubs, outputs cleared); "
            "`make lab` opens workspace/, `labkit progress` shows your checks")


# --------------------------------------------------------------------------- progress

_STATES = (CORRECT, INCORRECT, NOT_ATTEMPTED)


@dataclass(frozen=True)
class ExerciseProgress:
    """One exercise of one lesson as the learner's saved copy shows it."""

    lesson: str
    number: int
    title: str
    state: str          # Correct, Incorrect, Not attempted, or NOT_RUN
    detail: str = ""


def _check_cell(cells, number: int):
    call = re.compile(rf"^\s*q{number}\.check\(\)", re.MULTILINE)
    return next((c for c in cells if c.cell_type == "code" and call.search(c.source)), None)


def _saved_outcome(cell) -> tuple[str, str]:
    """(state, detail) from the outputs a `qN.check()` cell saved."""
    from .report import first_line

    if cell is None:
        return NOT_RUN, ("no `qN.check()` cell in your copy: make a fresh one with `labkit student-copy --force` "
                         "(your copy goes to .backup/)")
    for output in cell.get("outputs", []):
        if output.get("output_type") == "error":
            error = f"{output.get('ename')}: {first_line(output.get('evalue', ''))}"
            return NOT_RUN, f"the check raised {error}; run the cells above it first"
        text = output.get("data", {}).get("text/plain", "") or output.get("text", "")
        text = "".join(text) if isinstance(text, list) else text
        for state in _STATES:
            if text.startswith(f"{state} ("):
                _, _, detail = text.partition("): ")
                return state, first_line(detail) if detail else ""
    return NOT_RUN, "run the check cell"


def read_progress(workspace: str | Path | None = None, lessons: Sequence[Path] | None = None
                  ) -> list[ExerciseProgress]:
    """Every exercise of every lesson (default: the checkout's lessons) as the learner's copies in `workspace` show it."""
    import nbformat

    from .lessons import lesson_notebooks
    from .syllabus import read_syllabus

    workspace = default_workspace() if workspace is None else Path(workspace)
    if not workspace.is_dir():
        raise FileNotFoundError(f"no workspace at {_shown(workspace)}/: make the learner copies first with "
                                f"{_copy_command('', workspace)} "
                                "(or `make lab`)")
    rows = []
    for source in lesson_notebooks() if lessons is None else lessons:
        exercises = read_syllabus(source).exercises
        copy = workspace / source.name
        if not copy.is_file():
            rows += [ExerciseProgress(source.stem, e.number, e.title, NOT_RUN,
                                      f"no copy in {_shown(workspace)}/: run "
                                      f"{_copy_command(source.name[:2], workspace)}") for e in exercises]
            continue
        cells = nbformat.read(copy, as_version=4).cells
        if not any(c.cell_type == "code" and c.get("execution_count") for c in cells):
            rows += [ExerciseProgress(source.stem, e.number, e.title, NOT_RUN,
                                      "this notebook was never run: open it in JupyterLab and run its cells")
                     for e in exercises]
            continue
        for exercise in exercises:
            state, detail = _saved_outcome(_check_cell(cells, exercise.number))
            rows.append(ExerciseProgress(source.stem, exercise.number, exercise.title, state, detail))
    return rows


def format_progress(rows: Sequence[ExerciseProgress]) -> str:
    """An aligned table (lesson, exercise, state, detail) and one line of counts."""
    table = format_table(("lesson", "exercise", "state", "detail"),
                         [(r.lesson, f"{r.number} — {r.title}", r.state, r.detail) for r in rows])
    counts = {state: sum(r.state == state for r in rows) for state in (*_STATES, NOT_RUN)}
    summary = (f"{counts[CORRECT]} of {len(rows)} exercises correct (" +
               ", ".join(f"{state} {n}" for state, n in counts.items()) + ")")
    return f"{table}\n{summary}"

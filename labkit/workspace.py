"""The learner's workspace: their copies of the lessons (solutions stubbed, outputs cleared) and their progress.

A learner's work is never lost or hidden. `update_workspace` writes a copy that is missing;
replaces a copy only while it is still exactly as generated (the manifest `.labkit-workspace.json`
keeps a hash of each generated copy: every cell with its metadata and outputs, and the notebook's
metadata, so any change a learner made counts); and for a copy the learner has changed, run, or
that cannot be read, writes the newer lesson beside it as `NN_name.updated.ipynb` (never a
third name: when both copies are the learner's, it says so and writes nothing). With `force`,
the learner's copy is first moved to `.backup/NN_name.<time>.ipynb`. It never writes into
notebooks/, the checkout's own or generated folders (what `make clean` removes), onto a source
notebook, or through a link that leads outside the workspace.

`saved_outcomes` is the one reader of the `qN.check()` outcomes a notebook saved (progress, the
notebook tests and the browser tests use it). `read_progress` shows them for the learner's copies:
Correct, Incorrect, Not attempted, not run yet, or out of date (an answer cell re-run after its check).
"""
from __future__ import annotations

import ast
import hashlib
import json
import os
import re
import shlex
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .exercises.core import CORRECT, INCORRECT, NOT_ATTEMPTED
from .paths import GENERATED, kit_folder_of, learner_root, repo_root, shown_path, write_target
from .report import format_table

__all__ = ["WORKSPACE", "MANIFEST", "BACKUP", "NOT_RUN", "OUT_OF_DATE", "default_workspace", "learner_copy",
           "copy_hash", "check_targets", "CopyResult", "update_workspace", "format_copies", "SavedOutcome",
           "check_calls", "saved_outcomes", "ExerciseProgress", "read_progress", "format_progress"]

WORKSPACE = "workspace"                 # in the learner's area (the checkout, git-ignored; or $LABKIT_HOME)
MANIFEST = ".labkit-workspace.json"
MANIFEST_VERSION = 2                    # version 1 hashed cell sources and outputs only: its copies count as the learner's
BACKUP = ".backup"
NOT_RUN = "not run yet"
OUT_OF_DATE = "out of date"
UPDATED_SUFFIX = ".updated"
# Notebook metadata that Jupyter writes by itself when a notebook is opened or saved: not the learner's edit.
_WRITTEN_BY_JUPYTER = ("kernelspec", "language_info", "widgets")


def default_workspace() -> Path:
    """`workspace/` in the learner's area: the checkout (where `make lab` opens JupyterLab), or $LABKIT_HOME on a
    shared install."""
    return learner_root() / WORKSPACE


def _copy_command(number: str, workspace: Path, *options: str) -> str:
    """The `labkit student-copy` command for lesson `number` in `workspace`, quoted for a shell."""
    out = () if Path(workspace).resolve() == default_workspace().resolve() else ("--out", shown_path(workspace))
    words = ["labkit", "student-copy", *([number] if number else []), *out, *options]
    return "`" + " ".join(shlex.quote(word) for word in words) + "`"


def _restore(source: Path) -> str:
    """How to get a damaged lesson back: from git when it is the checkout's, else from wherever it came."""
    try:
        inside = Path(source).resolve().relative_to(repo_root()).as_posix()
    except ValueError:
        inside = None
    if inside:
        return f"restore it with `git checkout -- {shlex.quote(inside)}`"
    return "restore it from where it came, or give a readable notebook"


def _beside(target: Path) -> Path:
    """Where the newer lesson goes when the learner's copy stays: NN_name.updated.ipynb."""
    return target.with_name(f"{target.stem}{UPDATED_SUFFIX}.ipynb")


# --------------------------------------------------------------------------- making copies

def learner_copy(source: str | Path):
    """The learner's version of a lesson notebook: every solution region a stub, every output cleared."""
    from .exercises.solutions import strip_solutions
    from .lessons import read_notebook

    source = Path(source)
    notebook = read_notebook(source)
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "code":
            continue
        cell.source, _ = strip_solutions(cell.source, f"{source.name}, cell {index}")
        cell.outputs, cell.execution_count = [], None
    notebook.metadata.pop("widgets", None)
    return notebook


def copy_hash(notebook) -> str:
    """SHA-256 of everything a learner can change: every cell (type, source, metadata, outputs, counts) and the
    notebook's metadata, less what Jupyter writes by itself. Equal exactly when the learner changed nothing."""
    metadata = {k: v for k, v in notebook.metadata.items() if k not in _WRITTEN_BY_JUPYTER}
    cells = [{k: v for k, v in cell.items() if k != "id"} for cell in notebook.cells]
    return hashlib.sha256(json.dumps([metadata, cells], sort_keys=True, default=str).encode()).hexdigest()


def _read_hash(path: Path) -> tuple[str | None, str]:
    """(hash, '') of a readable copy; (None, why) when it is not a readable notebook (then it is the learner's)."""
    from .lessons import NotebookError, read_notebook

    try:
        return copy_hash(read_notebook(path)), ""
    except NotebookError as error:
        return None, str(error).split(" is not a readable notebook: ", 1)[-1]


def check_targets(sources: Sequence[Path], out: str | Path) -> None:
    """Refuse a workspace that is empty, a file, inside the checkout's own or generated folders (notebooks/,
    artifacts/, what `make clean` removes), the checkout itself, or one that would overwrite a source notebook."""
    if not str(out).strip():
        raise ValueError("refusing to write learner copies into the checkout itself: --out is empty; give a folder "
                         f"(default {WORKSPACE}/)")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--out '{out}' is a file, not a folder: give a folder (default {WORKSPACE}/)")
    folder = kit_folder_of(out)
    if folder is not None:
        name = folder.strip("/")
        why = ("the kit generates it, and `make clean` (or a rebuild) deletes it" if name in GENERATED else
               "the tested lessons live there" if name == "notebooks" else "it holds the kit's own files")
        raise ValueError(f"refusing to write learner copies into {folder}: {why}; use the default {WORKSPACE}/ or "
                         "a folder of your own")
    where = out.resolve()
    sources = {Path(s).resolve() for s in sources}
    for source in sorted(sources):
        if (where / source.name).resolve() in sources:
            raise ValueError(f"refusing to overwrite the source notebook {shown_path(source)} with its learner "
                             "copy: choose another --out")


@dataclass(frozen=True)
class CopyResult:
    """What happened to one learner copy: written, updated, unchanged, kept, or replaced (with a backup)."""

    path: Path
    action: str
    note: str = ""


def _manifest(out: Path) -> dict:
    try:
        data = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
        if data.get("version") != MANIFEST_VERSION:
            return {}  # hashes of another kind: every existing copy counts as the learner's
        return dict(data.get("copies", {}))
    except (OSError, ValueError, AttributeError):
        return {}  # no (or an unreadable) record: every existing copy counts as the learner's


def _manifest_paths(out: Path) -> tuple[Path, Path]:
    path = out / MANIFEST
    return write_target(path, out), write_target(path.with_suffix(".tmp"), out)


def _save_manifest(out: Path, copies: dict) -> None:
    path, temporary = _manifest_paths(out)
    temporary.write_text(json.dumps({"version": MANIFEST_VERSION, "copies": copies}, indent=1, sort_keys=True) + "\n",
                         encoding="utf-8")
    os.replace(temporary, path)


def _backup(path: Path, out: Path) -> Path:
    folder = out / BACKUP
    write_target(folder, out)
    folder.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = folder / f"{path.stem}.{stamp}.ipynb"
    number = 1
    while target.exists():
        target, number = folder / f"{path.stem}.{stamp}-{number}.ipynb", number + 1
    shutil.move(str(path), write_target(target, out))
    return target


def _write(notebook, target: Path, digest: str, copies: dict, out: Path) -> None:
    import nbformat

    nbformat.write(notebook, write_target(target, out))
    copies[target.name] = digest


def _place(notebook, digest: str, target: Path, out: Path, copies: dict, force: bool) -> CopyResult:
    """Put one generated copy at `target` without ever overwriting the learner's work."""
    if not target.exists() and not target.is_symlink():
        _write(notebook, target, digest, copies, out)
        return CopyResult(target, "written")
    current, fault = _read_hash(target)
    if current == digest:
        copies[target.name] = digest
        return CopyResult(target, "unchanged")
    generated = copies.get(target.name)
    if current is not None and current == generated:  # still exactly as we made it: nothing of theirs to lose
        _write(notebook, target, digest, copies, out)
        return CopyResult(target, "updated", "the lesson changed; your copy was untouched, so it was replaced")
    if force:
        backup = _backup(target, out)
        _write(notebook, target, digest, copies, out)
        return CopyResult(target, "replaced", f"your copy was moved to {shown_path(backup)}")
    if current is not None and generated == digest:
        return CopyResult(target, "kept", "your work; the lesson has not changed since this copy was made")
    mine = (f"{shown_path(target)} is not a readable notebook ({fault}), so it was left as it is" if fault else
            "your work")
    return CopyResult(target, "kept", f"{mine}; {_place_beside(notebook, digest, target, out, copies)}")


def _place_beside(notebook, digest: str, target: Path, out: Path, copies: dict) -> str:
    """Write the newer lesson as NN_name.updated.ipynb unless that copy is the learner's too; say what happened."""
    beside = _beside(target)
    fresh = "a fresh copy" if copies.get(target.name) == digest else "the newer lesson"
    if not beside.exists() and not beside.is_symlink():
        _write(notebook, beside, digest, copies, out)
        return f"{fresh} is in {shown_path(beside)}"
    current, fault = _read_hash(beside)
    if current == digest:
        copies[beside.name] = digest
        return f"{fresh} is in {shown_path(beside)}"
    if current is not None and current == copies.get(beside.name):  # an untouched older lesson: refresh it
        _write(notebook, beside, digest, copies, out)
        return f"{fresh} replaced the untouched {shown_path(beside)}"
    if copies.get(beside.name) == digest:  # the learner works in it, and the lesson has not changed since
        return f"you work in {shown_path(beside)}, made from this version of the lesson"
    state = f"is not a readable notebook ({fault})" if fault else "is yours too (you changed or ran it)"
    return (f"{shown_path(beside)} {state}, so the newer lesson was not written: move {shown_path(beside)} or "
            f"{shown_path(target)} away and run this again, or run {_copy_command(target.name[:2], out, '--force')} "
            f"to move {target.name} to {BACKUP}/ and replace it")


def update_workspace(sources: Sequence[Path], out: str | Path | None = None, *, force: bool = False
                     ) -> list[CopyResult]:
    """Make or refresh the learner copies of `sources` in `out` (default workspace/), never losing the learner's work.

    A source that is not a readable notebook is skipped (its result says why); the others are copied.
    """
    from .lessons import NotebookError

    if out is None:
        out = write_target(default_workspace(), learner_root())  # workspace/ must not lead out of the learner's area
    sources = [Path(s) for s in sources]
    check_targets(sources, out)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _manifest_paths(out)
    copies = _manifest(out)
    results = []
    try:
        for source in sources:
            try:
                notebook = learner_copy(source)
            except NotebookError as error:
                results.append(CopyResult(out / source.name, "skipped", f"{error}: {_restore(source)}"))
                continue
            results.append(_place(notebook, copy_hash(notebook), out / source.name, out, copies, force))
    finally:
        _save_manifest(out, copies)
    return results


def format_copies(results: Sequence[CopyResult], out: str | Path | None = None) -> str:
    """One aligned row per copy (what happened, the file, a note), then where the copies are and what next."""
    out = default_workspace() if out is None else Path(out)
    table = format_table(("copy", "file", "note"), [(r.action, shown_path(r.path), r.note) for r in results])
    return (f"{table}\nlearner copies in {shown_path(out)}/ (solutions replaced by stubs, outputs cleared); "
            "`make lab` opens workspace/, `labkit progress` shows your checks")


# --------------------------------------------------------------------------- saved outcomes

_STATES = (CORRECT, INCORRECT, NOT_ATTEMPTED)
_OUTCOME = re.compile(rf"^({'|'.join(_STATES)}) \((Exercise (\d+) — .*?|[^()]*)\)(?:: (.*))?$", re.MULTILINE)
_CHECK_CALL = re.compile(r"(?<![\w.])q(\d+)\s*\.\s*check\s*\(")


@dataclass(frozen=True)
class SavedOutcome:
    """What a notebook's saved outputs say of exercise `number`: the state its `qN.check()` cell showed."""

    number: int
    cell: int                     # index of the check cell in the notebook's cells
    state: str                    # Correct, Incorrect, Not attempted, NOT_RUN or OUT_OF_DATE
    label: str = ""               # 'Exercise 1 — Title' as the check printed it
    detail: str = ""
    text: str = ""                # every text the cell's outputs saved
    execution_count: int | None = None


def check_calls(source: str) -> list[int]:
    """The exercise numbers N of every `qN.check(...)` call in a cell's code, however it is written
    (`q1.check()`, `q3.check(ex3=a)`, `print(q2.check())`, over several lines); comments are not calls."""
    code = "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())
    try:
        tree = ast.parse(code)
    except SyntaxError:  # the learner's half-written cell: read it as text, comments dropped
        return sorted({int(n) for n in _CHECK_CALL.findall(re.sub(r"#.*", "", code))})
    numbers = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "check"
                and isinstance(node.func.value, ast.Name) and re.fullmatch(r"q\d+", node.func.value.id)):
            numbers.append(int(node.func.value.id[1:]))
    return sorted(set(numbers))


def _text(output) -> str:
    if output.get("output_type") == "stream":
        text = output.get("text", "")
    else:
        text = output.get("data", {}).get("text/plain", "")
    return "".join(text) if isinstance(text, list) else str(text)


def _read_check(cell, index: int, number: int) -> SavedOutcome:
    from .report import first_line

    count = cell.get("execution_count")
    texts = []
    for output in cell.get("outputs", []):
        if output.get("output_type") == "error":
            error = f"{output.get('ename')}: {first_line(output.get('evalue', ''))}"
            return SavedOutcome(number, index, NOT_RUN, detail=f"the check raised {error}; run the cells above it "
                                "first", text=error, execution_count=count)
        texts.append(_text(output))
    text = "\n".join(texts).strip()
    for match in _OUTCOME.finditer(text):
        if match.group(3) is None or int(match.group(3)) == number:
            detail = first_line(match.group(4)) if match.group(4) else ""
            return SavedOutcome(number, index, match.group(1), match.group(2), detail, text, count)
    why = "run the check cell" if count is None else "the check cell's saved output shows no outcome: run it again"
    return SavedOutcome(number, index, NOT_RUN, detail=why, text=text, execution_count=count)


def _exercise_start(cells, number: int, check: int) -> int:
    """Index of the first cell of exercise `number`: its prompt, else the cell after the previous check cell."""
    prompt = re.compile(rf"^\*\*Exercise {number}\b", re.MULTILINE)
    for index in range(check - 1, -1, -1):
        cell = cells[index]
        if cell.cell_type == "markdown" and prompt.search(cell.source):
            return index
        if cell.cell_type == "code" and check_calls(cell.source):
            return index + 1
    return check  # nothing marks where it starts: no cell is taken for its answer


def saved_outcomes(notebook) -> dict[int, SavedOutcome]:
    """Exercise number -> what its check cell saved, read the same way for every notebook (a learner's copy or a
    lesson). Where several cells check one exercise, the one that ran last counts. A saved outcome is OUT_OF_DATE
    when a cell of its exercise ran after it (a higher execution count): the answer changed, the check did not.
    Saved outputs cannot show an answer edited but not re-run, a notebook not saved, or counts from another kernel."""
    cells = notebook.cells
    chosen: dict[int, int] = {}
    for index, cell in enumerate(cells):
        if cell.cell_type != "code":
            continue
        for number in check_calls(cell.source):
            before = chosen.get(number)
            if before is None or (cell.get("execution_count") or 0) > (cells[before].get("execution_count") or 0):
                chosen[number] = index
    outcomes = {}
    for number, index in sorted(chosen.items()):
        outcome = _read_check(cells[index], index, number)
        ran = outcome.execution_count or 0
        later = [(i, cells[i].get("execution_count")) for i in range(_exercise_start(cells, number, index), index)
                 if cells[i].cell_type == "code" and (cells[i].get("execution_count") or 0) > ran > 0]
        if later and outcome.state in _STATES:
            where, count = later[-1]
            outcome = SavedOutcome(number, index, OUT_OF_DATE, outcome.label,
                                   f"it said {outcome.state}, but cell {where} of this exercise ran after it "
                                   f"(run {count} > {ran}): run `q{number}.check()` again", outcome.text, ran)
        outcomes[number] = outcome
    return outcomes


# --------------------------------------------------------------------------- progress

SAVED_NOTE = ("read from the outputs saved in your copies: a check counts as it last ran; saved outputs cannot show "
              "an answer edited but not re-run, changes not yet saved, or a kernel restarted since the check")


@dataclass(frozen=True)
class ExerciseProgress:
    """One exercise of one lesson as the learner's saved copy shows it (number 0: every exercise of the lesson)."""

    lesson: str
    number: int
    title: str
    state: str          # Correct, Incorrect, Not attempted, NOT_RUN or OUT_OF_DATE
    detail: str = ""


def _choose_copy(source: Path, workspace: Path):
    """(copy, notebook or None, why unreadable) of the copy the learner works in: of NN_name.ipynb and
    NN_name.updated.ipynb, the one run and saved last; None when there is no copy at all."""
    from .lessons import NotebookError, read_notebook

    readable, broken = [], []
    for copy in (workspace / source.name, _beside(workspace / source.name)):
        if not copy.is_file():
            continue
        try:
            readable.append((copy, read_notebook(copy)))
        except NotebookError as error:
            broken.append((copy, str(error)))
    if not readable:
        return (broken[0][0], None, broken[0][1]) if broken else None
    run = [(copy, nb) for copy, nb in readable if any(c.get("execution_count") for c in nb.cells
                                                      if c.cell_type == "code")]
    copy, notebook = max(run, key=lambda pair: pair[0].stat().st_mtime) if run else readable[0]
    return copy, notebook, ""


def read_progress(workspace: str | Path | None = None, lessons: Sequence[Path] | None = None
                  ) -> list[ExerciseProgress]:
    """Every exercise of every lesson (default: the checkout's lessons) as the learner's copies in `workspace` show it.

    A lesson's copy is NN_name.ipynb or, when the learner works there, NN_name.updated.ipynb (the one run last).
    A notebook that cannot be read is named in its rows; the other lessons are still read.
    """
    from .lessons import NotebookError, lesson_notebooks, read_notebook
    from .syllabus import read_syllabus

    workspace = default_workspace() if workspace is None else Path(workspace)
    if not workspace.is_dir():
        raise FileNotFoundError(f"no workspace at {shown_path(workspace)}/: make the learner copies first with "
                                f"{_copy_command('', workspace)} (or `make lab`)")
    rows = []
    for source in lesson_notebooks() if lessons is None else lessons:
        number = source.name[:2]
        try:
            read_notebook(source)
            exercises = read_syllabus(source).exercises
        except NotebookError as error:
            rows.append(ExerciseProgress(source.stem, 0, "every exercise", NOT_RUN,
                                         f"{error}: {_restore(source)}"))
            continue
        found = _choose_copy(source, workspace)
        copy, notebook, unreadable = found or (source, None, "")
        if found is None:
            why = f"no copy in {shown_path(workspace)}/: run {_copy_command(number, workspace)}"
        elif notebook is None:
            why = (f"{unreadable}: {_copy_command(number, workspace)} writes a fresh copy beside it as "
                   f"{_beside(workspace / source.name).name}")
        elif not any(c.cell_type == "code" and c.get("execution_count") for c in notebook.cells):
            why = "this notebook was never run: open it in JupyterLab and run its cells"
        else:
            why = ""
        if why:  # no copy to read checks from: every exercise of the lesson says why
            rows += [ExerciseProgress(copy.stem, e.number, e.title, NOT_RUN, why) for e in exercises]
            continue
        outcomes = saved_outcomes(notebook)
        for exercise in exercises:
            outcome = outcomes.get(exercise.number)
            if outcome is None:
                state, detail = NOT_RUN, (f"no `q{exercise.number}.check()` cell in {copy.name}: make a fresh copy "
                                          f"with {_copy_command(number, workspace, '--force')} (your copy goes to "
                                          f"{BACKUP}/)")
            else:
                state, detail = outcome.state, outcome.detail
            rows.append(ExerciseProgress(copy.stem, exercise.number, exercise.title, state, detail))
    return rows


def format_progress(rows: Sequence[ExerciseProgress]) -> str:
    """An aligned table (lesson, exercise, state, detail), one line of counts, and what saved outputs can show."""
    table = format_table(("lesson", "exercise", "state", "detail"),
                         [(r.lesson, f"{r.number} — {r.title}" if r.number else r.title, r.state, r.detail)
                          for r in rows])
    counts = {state: sum(r.state == state for r in rows) for state in (*_STATES, NOT_RUN, OUT_OF_DATE)}
    summary = (f"{counts[CORRECT]} of {len(rows)} exercises correct (" +
               ", ".join(f"{state} {n}" for state, n in counts.items()) + ")")
    return f"{table}\n{summary}\n{SAVED_NOTE[0].upper()}{SAVED_NOTE[1:]}."

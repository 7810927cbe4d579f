"""labkit.classroom and `labkit progress --class`: the instructor's view of a room, read from every learner's own
workspace and never written; and LABKIT_HOME, the learner's own area on a shared read-only install."""
import csv
import hashlib
import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from labkit import classroom, workspace
from labkit.cli import main as cli_main
from labkit.exercises.solutions import BEGIN
from labkit.paths import repo_root

TITLES = {1: "Square a number", 2: "Halve a number"}


def _lesson(path):
    """A tiny lesson with two exercises: each a prompt, a solution region and its check cell."""
    cells = [nbformat.v4.new_markdown_cell("## Exercises")]
    for number, title in TITLES.items():
        cells += [
            nbformat.v4.new_markdown_cell(f"**Exercise {number} — {title}** *(transfer, core)*\n\nDo it."),
            nbformat.v4.new_code_cell(f"{BEGIN}\nex{number} = 1\n### END SOLUTION"),
            nbformat.v4.new_code_cell(f"q{number}.check()"),
        ]
    nbformat.write(nbformat.v4.new_notebook(cells=cells), path)
    return path


@pytest.fixture
def lesson(tmp_path):
    (tmp_path / "lessons").mkdir()
    return _lesson(tmp_path / "lessons" / "01_numbers.ipynb")


def _saved(number, state):
    detail = {"Correct": "fine", "Incorrect": "not a square", "Not attempted": "set the answer"}[state]
    return f"{state} (Exercise {number} — {TITLES[number]}): {detail}"


def _learner(home, lesson, outcomes, folder=classroom.HUB_FOLDER):
    """A learner's home with their copy of `lesson`, run with each check showing `outcomes[n]` (None: not run)."""
    out = home / folder / workspace.WORKSPACE if folder else home / workspace.WORKSPACE
    workspace.update_workspace([lesson], out)
    path = out / lesson.name
    notebook = nbformat.read(path, as_version=4)
    count = 0
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "code":
            continue
        number = int(cell.source.split("check")[0][1]) if cell.source.startswith("q") else None
        if number is not None and outcomes.get(number) is None:
            continue
        count += 1
        cell.execution_count = count
        if number is not None:
            cell.outputs = [nbformat.v4.new_output("execute_result", execution_count=count,
                                                   data={"text/plain": _saved(number, outcomes[number])})]
    nbformat.write(notebook, path)
    return out


@pytest.fixture
def room(tmp_path, lesson):
    """Four learners: ann right then wrong, bob wrong then untouched, cem never logged in, dee a checkout layout."""
    homes = tmp_path / "home"
    _learner(homes / "ann", lesson, {1: "Correct", 2: "Incorrect"})
    _learner(homes / "bob", lesson, {1: "Incorrect", 2: "Not attempted"})
    (homes / "cem").mkdir(parents=True)
    _learner(homes / "dee", lesson, {1: "Correct"}, folder=None)
    (homes / ".cache").mkdir()
    return homes


def _states(progress):
    return {(p.learner.name, r.number): r.state for p in progress for r in p.rows}


def test_each_learner_and_exercise_has_the_state_their_saved_check_shows(room, lesson):
    progress = classroom.read_class(room, [lesson])
    assert [p.learner.name for p in progress] == ["ann", "bob", "cem", "dee"]  # hidden folders are not learners
    assert _states(progress) == {
        ("ann", 1): "Correct", ("ann", 2): "Incorrect",
        ("bob", 1): "Incorrect", ("bob", 2): "Not attempted",
        ("cem", 1): classroom.NO_WORKSPACE, ("cem", 2): classroom.NO_WORKSPACE,
        ("dee", 1): "Correct", ("dee", 2): workspace.NOT_RUN,
    }
    assert progress[0].workspace == room / "ann" / "onnx-labkit" / "workspace"
    assert progress[3].workspace == room / "dee" / "workspace"


def test_a_glob_of_homes_selects_the_learners(room, lesson):
    progress = classroom.read_class(str(room / "[ab]*"), [lesson])
    assert [p.learner.name for p in progress] == ["ann", "bob"]


def _snapshot(folder):
    return {p: (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
            for p in sorted(Path(folder).rglob("*")) if p.is_file()}


def test_reading_the_class_writes_nothing_into_any_learners_folder(room, lesson, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("labkit.lessons.lesson_notebooks", lambda folder=None: [lesson])
    before, every = _snapshot(room), sorted(Path(room).rglob("*"))
    assert cli_main(["progress", "--class", str(room), "--csv", str(tmp_path / "room.csv")]) == 0
    assert _snapshot(room) == before and sorted(Path(room).rglob("*")) == every  # no file changed, none added


def test_a_learner_whose_notebook_is_damaged_is_named_and_the_others_still_read(room, lesson):
    (room / "bob" / "onnx-labkit" / "workspace" / lesson.name).write_text('{"cells": [', encoding="utf-8")
    states = _states(classroom.read_class(room, [lesson]))
    assert states[("bob", 1)] == workspace.NOT_RUN and states[("ann", 1)] == "Correct"
    text = classroom.format_class(classroom.read_class(room, [lesson]))
    assert "bob: " in text.split("Not read:")[1] and "ends early" in text


def test_a_learner_this_user_cannot_read_is_named_unreadable_not_fatal(room, lesson, monkeypatch):
    real = classroom.read_progress

    def guarded(found, lessons=None):
        if "bob" in str(found):
            raise PermissionError(13, "Permission denied", str(found))
        return real(found, lessons)

    monkeypatch.setattr(classroom, "read_progress", guarded)
    progress = classroom.read_class(room, [lesson])
    states = _states(progress)
    assert states[("bob", 1)] == states[("bob", 2)] == classroom.UNREADABLE and states[("ann", 1)] == "Correct"
    assert "Permission denied" in progress[1].rows[0].detail and "can read" in progress[1].rows[0].detail


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file: the permission is checked as a learner in "
                    "tests/hub (runuser), and simulated in the test above")
def test_a_home_closed_to_this_user_is_unreadable(room, lesson):
    (room / "bob").chmod(0o000)
    try:
        states = _states(classroom.read_class(room, [lesson]))
    finally:
        (room / "bob").chmod(0o755)
    assert states[("bob", 1)] == classroom.UNREADABLE and states[("ann", 1)] == "Correct"


def test_the_class_table_has_a_column_per_exercise_and_a_row_per_learner(room, lesson):
    lines = classroom.format_class(classroom.read_class(room, [lesson])).splitlines()
    assert lines[0] == "01_numbers (q1 Square a number; q2 Halve a number)"
    assert lines[1].split() == ["learner", "q1", "q2"]
    assert lines[2].split() == ["ann", "Correct", "Incorrect"]
    assert lines[3].split() == ["bob", "Incorrect", "Not", "attempted"]
    totals = lines[lines.index("") + 1:]
    assert totals[1].split()[:4] == ["ann", "1", "of", "2"]


def test_csv_export_has_one_line_per_learner_and_exercise(room, lesson, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("labkit.lessons.lesson_notebooks", lambda folder=None: [lesson])
    target = tmp_path / "room.csv"
    assert cli_main(["progress", "--class", str(room), "--csv", str(target)]) == 0
    rows = list(csv.DictReader(io.StringIO(target.read_text(encoding="utf-8"))))
    assert tuple(rows[0]) == classroom.CSV_COLUMNS and len(rows) == 8
    assert [(r["learner"], r["exercise"], r["state"]) for r in rows[:2]] == [("ann", "1", "Correct"),
                                                                          ("ann", "2", "Incorrect")]
    assert "CSV: " in capsys.readouterr().out
    assert cli_main(["progress", "--class", str(room), "--csv", "-"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == ",".join(classroom.CSV_COLUMNS)


def test_csv_without_class_and_a_missing_class_folder_name_the_fix(tmp_path, capsys):
    assert cli_main(["progress", "--csv", str(tmp_path / "x.csv")]) == 2
    assert "give --class DIR" in capsys.readouterr().err
    assert cli_main(["progress", "--class", str(tmp_path / "nobody")]) == 2
    assert "one folder per learner" in capsys.readouterr().err
    assert not (tmp_path / "x.csv").exists()


# --------------------------------------------------------------------------- LABKIT_HOME: a shared install

def test_labkit_home_moves_the_workspace_and_artifacts_to_the_learners_area(tmp_path, monkeypatch):
    from labkit import paths

    monkeypatch.setenv("LABKIT_HOME", str(tmp_path / "me"))
    assert workspace.default_workspace() == tmp_path / "me" / "workspace"
    assert paths.artifacts_dir("00_setup") == tmp_path / "me" / "artifacts" / "00_setup"
    assert paths.display_path(tmp_path / "me" / "artifacts" / "00_setup" / "m.onnx") == "artifacts/00_setup/m.onnx"
    assert paths.repo_root() == repo_root()  # the shipped lessons and data are still the install's
    monkeypatch.setenv("LABKIT_HOME", "relative/me")
    with pytest.raises(ValueError, match="absolute path"):
        paths.learner_root()


def test_without_labkit_home_the_checkout_is_the_learners_area(monkeypatch):
    from labkit import paths

    monkeypatch.delenv("LABKIT_HOME", raising=False)
    assert paths.learner_root() == repo_root()
    assert workspace.default_workspace() == repo_root() / "workspace"


def _tree(root):
    return {p.relative_to(root): (p.stat().st_mtime_ns, p.stat().st_size) for p in root.rglob("*")
            if "__pycache__" not in p.parts}


def test_a_read_only_install_writes_only_into_labkit_home(tmp_path):
    """The kit as a room installs it: a read-only copy of the checkout. student-copy and a lesson's artifacts
    land in LABKIT_HOME; nothing in the install changes (checked file by file, and by its permissions)."""
    install = tmp_path / "install"
    shutil.copytree(repo_root(), install, symlinks=True, ignore=shutil.ignore_patterns(
        ".venv", ".git", "artifacts", "workspace", "wheelhouse", "node_modules", "__pycache__", ".pytest_cache",
        "*.onnx", "*.onnx.data"))
    subprocess.run(["chmod", "-R", "a-w", str(install)], check=True)
    home = tmp_path / "learner"
    before = _tree(install)
    env = {**os.environ, "LABKIT_HOME": str(home), "PYTHONPATH": str(install), "PYTHONDONTWRITEBYTECODE": "1"}
    code = ("import sys; from labkit.cli import main; from labkit import paths; import labkit;"
            "assert labkit.__file__.startswith(sys.argv[1]), labkit.__file__;"
            "rc = main(['student-copy', '00', '05']);"
            "(paths.artifacts_dir('05_onnx_construction') / 'm.onnx').write_bytes(b'onnx');"
            "print(paths.artifacts_dir('05_onnx_construction')); sys.exit(rc)")
    try:
        done = subprocess.run([sys.executable, "-c", code, str(install)], env=env, cwd=home.parent,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert done.stdout.splitlines()[-1] == str(home / "artifacts" / "05_onnx_construction")
        assert sorted(p.name for p in (home / "workspace").glob("*.ipynb")) == ["00_setup.ipynb",
                                                                                "05_onnx_construction.ipynb"]
        assert (home / "artifacts" / "05_onnx_construction" / "m.onnx").read_bytes() == b"onnx"
        assert _tree(install) == before
    finally:
        subprocess.run(["chmod", "-R", "u+w", str(install)], check=True)


# --------------------------------------------------------------------------- the hub's configuration

def _hub_config(monkeypatch, **env):
    """hub/jupyterhub_config.py loaded as JupyterHub loads it (traitlets), with `env` as the room's settings."""
    from traitlets.config.loader import PyFileConfigLoader

    for name in [n for n in os.environ if n.startswith("LABKIT_HUB_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return PyFileConfigLoader("jupyterhub_config.py", path=str(repo_root() / "hub")).load_config()


def test_the_hub_listens_on_loopback_only_and_caps_each_seats_threads(monkeypatch, tmp_path):
    config = _hub_config(monkeypatch, LABKIT_HUB_USERS="root", LABKIT_HUB_PASSWORD="a room password",
                         LABKIT_HUB_DIR=str(tmp_path), LABKIT_HUB_PORT="8123", LABKIT_HUB_SEATS="1")
    assert (config.JupyterHub.ip, config.JupyterHub.hub_ip, config.Spawner.ip) == ("127.0.0.1",) * 3
    assert config.ConfigurableHTTPProxy.api_url == "http://127.0.0.1:8125"
    env = config.Spawner.environment
    cores = len(os.sched_getaffinity(0))
    assert env["OMP_NUM_THREADS"] == env["ORT_INTRA_OP_NUM_THREADS"] == env["MKL_NUM_THREADS"] == str(cores)
    assert config.Authenticator.allowed_users == {"root"}
    assert [s["name"] for s in config.JupyterHub.services] == ["idle-culler"]
    crowded = _hub_config(monkeypatch, LABKIT_HUB_USERS="root", LABKIT_HUB_PASSWORD="a room password",
                          LABKIT_HUB_DIR=str(tmp_path), LABKIT_HUB_SEATS=str(cores * 30))
    assert crowded.Spawner.environment["OMP_NUM_THREADS"] == "1"  # thirty seats a core: one thread each, not zero


@pytest.mark.parametrize("env, message", [
    ({"LABKIT_HUB_USERS": "root", "LABKIT_HUB_PASSWORD": "short"}, "at least 8 characters"),
    ({"LABKIT_HUB_USERS": "no-such-learner-27", "LABKIT_HUB_PASSWORD": "a room password"}, "useradd -m"),
    ({"LABKIT_HUB_GROUP": "no-such-group-27", "LABKIT_HUB_PASSWORD": "a room password"}, "LABKIT_HUB_USERS="),
])
def test_the_hub_refuses_to_start_without_what_a_room_needs_naming_it(monkeypatch, tmp_path, env, message):
    with pytest.raises(SystemExit, match=message):
        _hub_config(monkeypatch, LABKIT_HUB_DIR=str(tmp_path), **env)

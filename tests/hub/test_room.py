"""A room on one real JupyterHub: three temporary learners log in through Chromium, each opens their own copy of
Lesson 00, answers Exercise 3 (one right, one wrong, one untouched) and runs it all; then the instructor's view
shows exactly that, no learner can read another's work or write into the install, nothing listens beyond
127.0.0.1, and the hub stops with every learner's server. The users are removed afterwards, pass or fail.
"""
from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hubroom import (ARTIFACTS, BIN, REPO, RUN_TIMEOUT, HubNotebookPage, LearnerServer, Room,  # noqa: E402
                     as_user, launch_chromium, log_in)

LESSON = "00_setup.ipynb"
EXERCISE = 3
RIGHT = 'ex3_since = {op_type: version_at(op_type, 20) for op_type in ["Pad", "Flatten", "Cast"]}'
WRONG = 'ex3_since = {"Pad": 1, "Flatten": 1, "Cast": 1}'
# Learner a answers right, b wrong, c leaves the exercise untouched; every other exercise stays a stub.
EXPECTED = {0: "Correct", 1: "Incorrect", 2: "Not attempted"}
TIMINGS: dict[str, float] = {}


@pytest.fixture(scope="module")
def room(tmp_path_factory):
    room = Room()
    try:
        room.create_users()
        room.open_install()
        probe = as_user(room.learners[0], str(BIN / "python"), "-c", "import labkit, jupyterhub")
        assert probe.returncode == 0, f"a learner cannot run the shared install: {probe.stderr}"
        start = time.monotonic()
        room.start(tmp_path_factory.mktemp("hub"))
        TIMINGS["hub start"] = time.monotonic() - start
        yield room
    finally:
        forced = room.close()
        TIMINGS["forced at cleanup"] = len(forced)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        (ARTIFACTS / "room-measures.json").write_text(json.dumps({k: round(v, 1) for k, v in TIMINGS.items()},
                                                                 indent=1) + "\n")


def _answer_cell(notebook) -> int:
    """Index of the cell where Exercise 3's answer goes: the first code cell after its prompt."""
    prompt = next(i for i, c in enumerate(notebook.cells)
                  if c.cell_type == "markdown" and c.source.startswith(f"**Exercise {EXERCISE}"))
    return next(i for i in range(prompt + 1, len(notebook.cells)) if notebook.cells[i].cell_type == "code")


@pytest.fixture(scope="module")
def played(room):
    """Each learner: log in, open their own copy of Lesson 00, answer (or not), Run All (all three at once), save."""
    from playwright.sync_api import sync_playwright

    playwright = sync_playwright().start()
    browser, pages = None, []
    try:
        browser = launch_chromium(playwright)
        start = time.monotonic()
        for index, user in enumerate(room.learners):
            context = browser.new_context(viewport={"width": 1400, "height": 900})
            page = context.new_page()
            log_in(page, room, user)
            notebook = HubNotebookPage(page, LearnerServer(room, user), LESSON)
            notebook.open()
            if index < 2:
                notebook.type_into_cell(_answer_cell(notebook.saved()), RIGHT if index == 0 else WRONG)
            pages.append(notebook)
        TIMINGS["3 logins and lessons open"] = time.monotonic() - start
        start = time.monotonic()
        for notebook in pages:
            notebook.start_run_all()
        quiet = {id(n): 0 for n in pages}
        deadline = start + RUN_TIMEOUT
        while any(q < 3 for q in quiet.values()):
            if time.monotonic() > deadline:
                raise TimeoutError(f"Run All of {LESSON} in three servers at once took over {RUN_TIMEOUT:.0f} s")
            for notebook in pages:
                quiet[id(notebook)] = quiet[id(notebook)] + 1 if notebook.finished() else 0
            pages[0].page.wait_for_timeout(500)
        TIMINGS["3 Run All at once"] = time.monotonic() - start
        for notebook in pages:
            notebook.save()
        for who, mib in room.memory_mib().items():
            TIMINGS[f"{who} MiB" + (" (server + Lesson 00 kernel)" if who in room.learners else "")] = mib
        yield room
    except Exception:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        for notebook in pages:
            notebook.page.screenshot(path=str(ARTIFACTS / f"{notebook.server.user}.png"))
        raise
    finally:
        if browser is not None:
            browser.close()
        playwright.stop()


def test_each_learner_works_in_their_own_copy_in_their_own_home(played):
    for user in played.learners:
        copy = played.workspace(user) / LESSON
        assert copy.stat().st_uid == as_uid(user), f"{copy} is not {user}'s"
        assert (played.home(user) / "onnx-labkit").stat().st_mode & 0o077 == 0, "the learner's area is open to others"
        assert any(c.get("execution_count") for c in nbformat.read(copy, as_version=4).cells)


def as_uid(user: str) -> int:
    import pwd

    return pwd.getpwnam(user).pw_uid


def test_the_instructors_view_shows_exactly_what_each_learner_did(played):
    command = [str(BIN / "labkit"), "progress", "--class", f"/home/{played.prefix}*", "00", "--csv", "-"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    states = {(r["learner"], int(r["exercise"])): r["state"] for r in rows}
    numbers = sorted({number for _, number in states})
    assert numbers == [1, 2, 3, 4]
    expected = {(user, number): EXPECTED[index] if number == EXERCISE else "Not attempted"
                for index, user in enumerate(played.learners) for number in numbers}
    assert states == expected
    table = subprocess.run(command[:-2], capture_output=True, text=True, timeout=120).stdout
    print(table)


def test_a_learner_who_restarts_their_server_loses_nothing(played):
    user = played.learners[0]
    copy = played.workspace(user) / LESSON
    before = copy.read_bytes()
    played.api("DELETE", f"/hub/api/users/{user}/server")
    _wait(lambda: not _server(played, user), "the server to stop")
    played.api("POST", f"/hub/api/users/{user}/server")
    _wait(lambda: (_server(played, user) or {}).get("ready"), "the server to start again")
    assert copy.read_bytes() == before
    assert sorted(p.name for p in played.workspace(user).glob("00_*")) == [LESSON]  # no .updated: nothing changed


def _server(room, user):
    return (room.api("GET", f"/hub/api/users/{user}") or {}).get("servers", {}).get("")


def _wait(condition, what, timeout=120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(1)
    raise TimeoutError(f"waited {timeout:.0f} s for {what}")


def test_one_learner_cannot_read_or_change_anothers_work_nor_the_install(played):
    a, b = played.learners[:2]
    theirs = played.workspace(a) / LESSON
    read = as_user(b, "cat", str(theirs))
    assert read.returncode != 0 and "Permission denied" in read.stderr
    listing = as_user(b, "ls", str(played.workspace(a)))
    assert listing.returncode != 0 and "Permission denied" in listing.stderr
    write = as_user(b, "touch", str(played.home(a) / "onnx-labkit" / "from-b"))
    assert write.returncode != 0
    assert as_user(a, "cat", str(theirs)).returncode == 0  # the owner can: the check above is not a broken runuser
    for target in (REPO / "notebooks" / "from-learner", REPO / "from-learner", REPO / "data" / "from-learner"):
        assert as_user(b, "touch", str(target)).returncode != 0, f"a learner could write {target}"
    # and what a learner's progress shows is read from their own area, not the install's workspace/
    mine = as_user(a, "env", f"LABKIT_HOME={played.home(a)}/onnx-labkit", str(BIN / "labkit"), "progress", "00")
    assert mine.returncode == 0 and "Correct" in mine.stdout, mine.stderr


def test_nothing_listens_beyond_loopback(played):
    listening = played.listening()
    ports = {port for _, port, _ in listening}
    assert {played.port, played.port + 1, played.port + 2} <= ports  # the proxy, the hub, the proxy's API
    assert len(listening) >= 3 + len(played.learners)  # and every learner's server
    beyond = [entry for entry in listening if entry[0] != "127.0.0.1"]
    assert beyond == []
    ss = subprocess.run(["ss", "-ltnH"], capture_output=True, text=True, timeout=30).stdout
    assert not [line for line in ss.splitlines() if f":{played.port} " in line and "127.0.0.1:" not in line]


def test_the_hub_and_every_server_stop_cleanly(played):
    servers = played.api("GET", "/hub/api/users")
    assert sorted(u["name"] for u in servers if u.get("server")) == sorted(played.learners)
    took = played.stop()
    TIMINGS["stop"] = took
    assert played.process.returncode == 0, played.log_tail()
    assert played.processes() == [], "left running after the hub stopped"
    assert played.listening() == []

"""Serve the lessons with JupyterLab and drive them in Debian's Chromium (Playwright, sync API).

Used only by tests/browser (see conftest.py for when those tests run). Everything here keeps off the
network: JupyterLab binds 127.0.0.1 with a random token and no news/update checks, Chromium starts
with the flags that stop its background connections, and the page may only load from the server.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import nbformat

from labkit.childenv import kernel_env
from labkit.lessons import lesson_notebooks  # one pattern for the runner, the learner copies and the tests

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "artifacts" / "browser"
CHROMIUM = Path(os.environ.get("LABKIT_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
# Bounded waits, in seconds. Run All of the slowest lesson takes ~1.5-4 min on 2 cores shared with
# other work; the per-notebook bound leaves room for a machine several times busier.
NOTEBOOK_TIMEOUT = float(os.environ.get("LABKIT_BROWSER_NOTEBOOK_TIMEOUT", "600"))
STARTUP_TIMEOUT = 120.0
PAGE_TIMEOUT = 90.0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def fresh_log_path() -> Path:
    """artifacts/browser/jupyterlab-<pid>.log for this run; logs of runs that have ended are removed.

    One file per run, so two runs at once (two terminals, two helpers) never write into each other's log.
    """
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in ARTIFACTS.glob("jupyterlab-*.log"):
        pid = old.stem.removeprefix("jupyterlab-")
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            old.unlink(missing_ok=True)
    return ARTIFACTS / f"jupyterlab-{os.getpid()}.log"


def log_tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError as err:
        return f"(no log: {err})"
    return "\n".join(text[-lines:])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def copy_lessons(root: Path) -> list[Path]:
    """Copies of the lesson notebooks in `root`, outputs and execution counts cleared.

    The committed notebooks are never opened by the browser, so a save cannot change them.
    """
    root.mkdir(parents=True, exist_ok=True)
    for path in lesson_notebooks():
        notebook = nbformat.read(path, as_version=4)
        for cell in notebook.cells:
            if cell.cell_type == "code":
                cell.outputs, cell.execution_count = [], None
        nbformat.write(notebook, root / path.name)
    return [root / path.name for path in lesson_notebooks()]


def make_learner_copies(lessons: list[Path], out: Path) -> None:
    """The learners' notebooks, made the way a learner gets them: `labkit student-copy NN.ipynb ... --out DIR`.

    Made from the served copies of the lessons, so both sides test the same snapshot even while
    someone edits notebooks/.
    """
    labkit = Path(sys.executable).parent / "labkit"
    command = [str(labkit), "student-copy", *map(str, lessons), "--out", str(out)]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        raise RuntimeError(f"`labkit student-copy ... --out {out}` failed (exit {result.returncode}):\n"
                           f"{result.stdout[-2000:]}\n{result.stderr[-3000:]}")


@dataclass
class LabServer:
    """`jupyter lab` from this venv on 127.0.0.1:<free port>, serving `root`, its log in `log_path`."""

    root: Path
    home: Path  # config, settings, workspaces and runtime files of this server only
    log_path: Path
    port: int = 0
    token: str = field(default_factory=lambda: secrets.token_hex(24))
    process: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _settings(self) -> Path:
        """User settings for this server: no news/update checks, no autosave, every cell in the DOM."""
        settings = self.home / "settings"
        values = {
            "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
            "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
            "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
        }
        for name, value in values.items():
            target = settings / f"{name}.jupyterlab-settings"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(json.dumps(value))
        return settings

    def start(self) -> None:
        self.port = _free_port()
        for sub in ("config", "data", "runtime", "ipython", "workspaces"):
            (self.home / sub).mkdir(parents=True, exist_ok=True)
        venv_bin = Path(sys.executable).parent
        env = kernel_env(  # the kernels get what nbval's kernels get (labkit.childenv decides it)
            LABKIT_BROWSER_TESTS=None,
            JUPYTER_TOKEN=self.token,
            JUPYTER_CONFIG_DIR=str(self.home / "config"),
            JUPYTER_DATA_DIR=str(self.home / "data"),
            JUPYTER_RUNTIME_DIR=str(self.home / "runtime"),
            JUPYTER_PREFER_ENV_PATH="1",
            IPYTHONDIR=str(self.home / "ipython"),
            PATH=f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}",  # ninja and jupyter for the kernels too
        )
        command = [
            sys.executable, "-m", "jupyterlab", "--no-browser",
            "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={self.port}", "--ServerApp.port_retries=0",
            f"--ServerApp.root_dir={self.root}",
            f"--LabApp.user_settings_dir={self._settings()}",
            f"--LabApp.workspaces_dir={self.home / 'workspaces'}",
            "--LabApp.news_url=None",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            "--LabApp.extension_manager=readonly",
        ]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            command.append("--allow-root")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "w")
        log.write("$ " + " ".join(command) + "\n")
        log.flush()
        self.process = subprocess.Popen(command, cwd=self.root, env=env, stdout=log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"JupyterLab exited with code {self.process.returncode} while starting; "
                                   f"its log ({self.log_path}):\n{log_tail(self.log_path)}")
            try:
                self.api("GET", "/api/status")
                return
            except (OSError, urllib.error.URLError):
                time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"JupyterLab did not answer on {self.base_url} within {STARTUP_TIMEOUT:.0f} s; "
                           f"its log ({self.log_path}):\n{log_tail(self.log_path)}")

    def api(self, method: str, path: str, timeout: float = 10.0):
        request = urllib.request.Request(self.base_url + path, method=method,
                                         headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read()
        return json.loads(body) if body else None

    def session_for(self, path: str) -> dict | None:
        for session in self.api("GET", "/api/sessions"):
            if session.get("path") == path:
                return session
        return None

    def shutdown_kernels(self) -> None:
        """Stop every kernel (each test starts its own), so tests share no state and free their memory."""
        try:
            for session in self.api("GET", "/api/sessions"):
                self.api("DELETE", f"/api/sessions/{session['id']}", timeout=30)
            for kernel in self.api("GET", "/api/kernels"):
                self.api("DELETE", f"/api/kernels/{kernel['id']}", timeout=30)
        except (OSError, urllib.error.URLError):
            pass

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.shutdown_kernels()
        self.process.send_signal(signal.SIGTERM)  # jupyter_server shuts its kernels down on SIGTERM
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


def launch_chromium(playwright):
    """Debian's Chromium (never a browser Playwright downloads), off the network, with a fresh profile.

    Playwright's launch() always adds `--user-data-dir=<new empty temporary folder>` (it refuses one
    in `args`) and deletes that folder when the browser closes; each test then gets its own context.
    """
    return playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, chromium_sandbox=False,
                                      args=CHROMIUM_FLAGS, timeout=STARTUP_TIMEOUT * 1000)


# --- one notebook in the page -------------------------------------------------------------------

_PROMPTS_JS = """panel => Array.from(panel.querySelectorAll('.jp-Notebook .jp-CodeCell')).map(
    cell => (cell.querySelector('.jp-InputPrompt') || {}).textContent || '')"""


class NotebookPage:
    """One notebook opened in JupyterLab in `page`; the failure helpers live in the conftest fixture."""

    def __init__(self, page, server: LabServer, path: str):
        self.page, self.server, self.path = page, server, path
        self.file = server.root / path
        self.panel = page.locator(".jp-NotebookPanel:visible").first

    def open(self) -> None:
        self.page.goto(f"{self.server.base_url}/lab/tree/{quote(self.path)}?reset&token={self.server.token}",
                       timeout=PAGE_TIMEOUT * 1000)
        self.panel.locator(".jp-Notebook .jp-Cell").first.wait_for(timeout=PAGE_TIMEOUT * 1000)
        self.wait_kernel_idle(STARTUP_TIMEOUT, "the kernel to start")

    def kernel_state(self) -> str:
        return self.kernel().get("execution_state", "no kernel")

    def wait_kernel_idle(self, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        state = "no kernel"
        while time.monotonic() < deadline:
            state = self.kernel_state()
            if state == "idle":
                return
            self.page.wait_for_timeout(500)
        raise TimeoutError(f"waited {timeout:.0f} s for {what}; kernel state: {state}")

    def prompts(self) -> list[str]:
        return self.panel.evaluate(_PROMPTS_JS)

    def menu(self, menu: str, command: str) -> None:
        """Click a main-menu item, as a learner does (e.g. Run > Run All Cells)."""
        self.page.locator(".lm-MenuBar-item", has_text=re.compile(rf"^{menu}$")).click()
        item = self.page.locator(f'.lm-Menu-item[data-command="{command}"]:visible').first
        item.click()

    def kernel(self) -> dict:
        session = self.server.session_for(self.path)
        return (session or {}).get("kernel") or {}

    def run_all(self, timeout: float = NOTEBOOK_TIMEOUT) -> float:
        """Run > Run All Cells, then wait until no cell is queued or running and the kernel is idle."""
        activity = self.kernel().get("last_activity")
        start = time.monotonic()
        self.menu("Run", "runmenu:run-all")
        deadline = start + min(timeout, 60.0)
        # Started: a cell shows [*] (Run All queues every cell at once) or the kernel has done something.
        while not any("*" in p for p in self.prompts()) and self.kernel().get("last_activity") == activity:
            if time.monotonic() > deadline:
                raise TimeoutError("Run All did not start: no cell showed [*] and the kernel did nothing "
                                   "for 60 s after Run > Run All Cells")
            self.page.wait_for_timeout(200)
        deadline, quiet = start + timeout, 0
        while time.monotonic() < deadline:
            self.fail_on_dialog()
            running = any("*" in p for p in self.prompts())
            quiet = quiet + 1 if not running and self.kernel_state() == "idle" else 0
            if quiet >= 3:  # idle at three polls in a row: not a gap between two cells
                return time.monotonic() - start
            self.page.wait_for_timeout(500)
        running = [i for i, p in enumerate(self.prompts()) if "*" in p]
        where = "no cell shows [*]"
        if running:
            cells = nbformat.read(self.file, as_version=4).cells  # as opened: not saved since
            code = [i for i, cell in enumerate(cells) if cell.cell_type == "code"]
            first = code[running[0]] if running[0] < len(code) else None
            where = (f"{_where(self.path, first, cells[first]) if first is not None else 'a code cell'} "
                     f"still running, {len(running) - 1} more queued")
        raise TimeoutError(f"Run All did not finish within {timeout:.0f} s: {where}; kernel {self.kernel_state()}")

    def fail_on_dialog(self) -> None:
        """Fail fast on a modal dialog (a kernel chooser, an error box): nothing in a lesson should open one."""
        dialog = self.page.locator(".jp-Dialog")
        if dialog.count():
            raise AssertionError(f"JupyterLab opened a dialog: {dialog.first.inner_text()[:500]!r}")

    def save(self) -> None:
        """File > Save Notebook, then wait until the file on disk is rewritten and the tab is clean."""
        before = self.file.stat().st_mtime_ns
        self.menu("File", "docmanager:save")
        deadline = time.monotonic() + PAGE_TIMEOUT
        while time.monotonic() < deadline:
            self.fail_on_dialog()
            dirty = self.page.locator(".lm-TabBar-tab.jp-mod-current.jp-mod-dirty").count()
            if self.file.stat().st_mtime_ns != before and not dirty:
                return
            self.page.wait_for_timeout(250)
        raise TimeoutError(f"saving {self.path} did not finish within {PAGE_TIMEOUT:.0f} s")

    def saved(self):
        return nbformat.read(self.file, as_version=4)


# --- what the saved file must show ----------------------------------------------------------------

def _where(name: str, index: int, cell) -> str:
    first = next((line for line in cell.source.splitlines() if line.strip()), "")
    return f"{name}, cell {index} ({first[:70]!r})"


def run_problems(notebook, name: str) -> list[str]:
    """Error outputs and unexecuted code cells of a saved notebook, each naming the notebook and the cell.

    Run All stops at the first error, so the cells after it are summed up in one line, not listed.
    """
    errors, unexecuted = [], []
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "code":
            continue
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                errors.append((index, f"{_where(name, index, cell)}: error output "
                                      f"{output.get('ename')}: {str(output.get('evalue'))[:300]}"))
        if cell.get("execution_count") is None:
            unexecuted.append((index, _where(name, index, cell)))
    problems = [text for _, text in errors]
    after = [where for index, where in unexecuted if errors and index > errors[0][0]]
    before = [where for index, where in unexecuted if not errors or index < errors[0][0]]
    problems += [f"{where}: not executed (no execution count)" for where in before[:10]]
    if len(before) > 10:
        problems.append(f"... and {len(before) - 10} more code cells not executed")
    if after:
        problems.append(f"{len(after)} code cells after the error not executed (Run All stops there), "
                        f"from {after[0]}")
    return problems


def check_outcomes(notebook, name: str) -> tuple[list[str], list[str]]:
    """(text of every `qN.check()` cell's result, problems): each must say "Not attempted" in a learner copy.

    A check cell that did not run is left to `run_problems`, which reports it already.
    """
    from labkit.exercises.core import NOT_ATTEMPTED
    from labkit.workspace import saved_outcomes  # the one reader of saved outcomes

    texts, problems = [], []
    for outcome in saved_outcomes(notebook).values():
        texts.append(outcome.text)
        if outcome.execution_count is not None and outcome.state != NOT_ATTEMPTED:
            cell = notebook.cells[outcome.cell]
            problems.append(f"{_where(name, outcome.cell, cell)}: expected 'Not attempted', got {outcome.state}: "
                            f"{outcome.text[:200]!r}")
    if not texts:
        problems.append(f"{name}: no `qN.check()` cell found")
    return texts, problems

"""A real room for tests/hub: temporary system users, the kit's JupyterHub (hub/jupyterhub_config.py) on a free
loopback port, and each learner driven in Debian's Chromium (tests/browser/labdriver.py's launch and page helpers).

Everything it creates is removed by `Room.close()`, pass or fail: the hub (SIGTERM, then the kill of what is
left of the processes it started), every process of the temporary users (by id), the users, their homes and
their group. Nothing here listens beyond 127.0.0.1.
"""
from __future__ import annotations

import os
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

import psutil

REPO = Path(__file__).resolve().parents[2]
HUB = REPO / "hub"
PROXY = HUB / "node_modules" / ".bin" / "configurable-http-proxy"
BIN = Path(sys.executable).parent
ARTIFACTS = REPO / "artifacts" / "hub"
sys.path.insert(0, str(REPO / "tests" / "browser"))
from labdriver import CHROMIUM, NotebookPage, launch_chromium  # noqa: E402  (the kit's one way to drive JupyterLab)

START_TIMEOUT = 120.0      # the hub up, or one learner's server up after login
STOP_TIMEOUT = 60.0        # the hub and every learner's server gone after SIGTERM
RUN_TIMEOUT = float(os.environ.get("LABKIT_HUB_RUN_TIMEOUT", "600"))  # Run All of one lesson, three at once


def free_port_block(size: int = 3) -> int:
    """A loopback port p with p .. p+size-1 free (the room, the hub's API, the proxy's API)."""
    for _ in range(200):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if port + size >= 65535:
            continue
        try:
            for offset in range(size):
                with socket.socket() as other:
                    other.bind(("127.0.0.1", port + offset))
        except OSError:
            continue
        return port
    raise RuntimeError("no block of 3 free loopback ports found")


def _run(*command: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=check)


def as_user(user: str, *command: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """`command` run as `user` (runuser), never raising: the test reads its exit status and messages."""
    return _run("runuser", "-u", user, "--", *command, check=False, timeout=timeout)


@dataclass
class Room:
    """Three (or more) temporary learners and the kit's hub serving them on 127.0.0.1."""

    size: int = 3
    prefix: str = field(default_factory=lambda: "lk" + secrets.token_hex(3))
    learners: list[str] = field(default_factory=list)
    password: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    token: str = field(default_factory=lambda: secrets.token_hex(24))
    port: int = 0
    process: subprocess.Popen | None = None
    run_dir: Path | None = None
    log_path: Path | None = None
    started: list[int] = field(default_factory=list)    # every process id the hub started (kept for the cleanup)
    opened: list[tuple[Path, int]] = field(default_factory=list)  # folders given o+x for the test, and their mode

    def open_install(self) -> None:
        """Learners must reach the shared install: its checkout, its venv, and the Python the venv was made from.
        A folder on the way that others cannot enter (here: /root, where pyenv's Python lives) gets the
        traverse bit (o+x: enter, not list) for the test's time, and its mode back in close()."""
        real_python = Path(os.path.realpath(BIN / "python"))
        for target in (real_python, REPO / ".venv" / "bin" / "python", HUB / "start-learner"):
            for folder in reversed(Path(target).parents):
                mode = folder.stat().st_mode & 0o7777
                if not mode & 0o001 and folder not in [f for f, _ in self.opened]:
                    folder.chmod(mode | 0o001)
                    self.opened.append((folder, mode))

    @property
    def group(self) -> str:
        return self.prefix

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def home(self, user: str) -> Path:
        return Path("/home") / user

    def workspace(self, user: str) -> Path:
        return self.home(user) / "onnx-labkit" / "workspace"

    # --- setup ---------------------------------------------------------------------------------
    def create_users(self) -> None:
        _run("groupadd", self.group)
        for index in range(self.size):
            name = f"{self.prefix}{chr(ord('a') + index)}"
            _run("useradd", "--create-home", "--shell", "/bin/sh", "--gid", self.group, name)
            self.learners.append(name)

    def start(self, run_dir: Path) -> None:
        self.run_dir, self.port = run_dir, free_port_block()
        run_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = ARTIFACTS / f"jupyterhub-{self.prefix}.log"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "PATH": f"{BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}",
               "LABKIT_HUB_USERS": ",".join(self.learners), "LABKIT_HUB_PASSWORD": self.password,
               "LABKIT_HUB_DIR": str(run_dir), "LABKIT_HUB_PORT": str(self.port),
               "LABKIT_HUB_API_TOKEN": self.token, "LABKIT_HUB_CULL_AFTER": "3600"}
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen([str(BIN / "jupyterhub"), "-f", str(HUB / "jupyterhub_config.py")],
                                            cwd=run_dir, env=env, stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the hub exited ({self.process.returncode}) while starting:\n{self.log_tail()}")
            try:
                self.api("GET", "/hub/api/")
                return
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.5)
        raise TimeoutError(f"the hub did not answer within {START_TIMEOUT:.0f} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except (OSError, AttributeError):
            return "(no log)"

    def api(self, method: str, path: str, timeout: float = 15.0):
        """A hub or learner-server API call with the room's service token; the parsed JSON (or None)."""
        import json

        request = urllib.request.Request(self.url + path, method=method,
                                         headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read()
        return json.loads(body) if body.strip() else None

    # --- what runs -------------------------------------------------------------------------------
    def processes(self) -> list[psutil.Process]:
        """The hub, everything it started, and every process of the room's users."""
        found: dict[int, psutil.Process] = {}
        if self.process is not None:
            try:
                hub = psutil.Process(self.process.pid)
                found[hub.pid] = hub
                found.update((child.pid, child) for child in hub.children(recursive=True))
            except psutil.NoSuchProcess:
                pass
        uids = set()
        for name in self.learners:
            try:
                import pwd

                uids.add(pwd.getpwnam(name).pw_uid)
            except KeyError:
                continue
        for proc in psutil.process_iter(["uids"]):
            if proc.info["uids"] and proc.info["uids"].real in uids:
                found[proc.pid] = proc
        self.started = sorted(set(self.started) | set(found))
        return list(found.values())

    def memory_mib(self) -> dict[str, float]:
        """Resident memory of each learner's processes (their server and kernels), and of the hub with its proxy."""
        totals: dict[str, float] = {}
        for proc in self.processes():
            try:
                owner = proc.username()
                rss = proc.memory_info().rss / 1024**2
            except psutil.NoSuchProcess:
                continue
            key = owner if owner in self.learners else "hub + proxy + culler"
            totals[key] = round(totals.get(key, 0.0) + rss)
        return totals

    def listening(self) -> list[tuple[str, int, str]]:
        """(address, port, process name) of every socket the room's processes listen on."""
        pids = {proc.pid: proc for proc in self.processes()}
        result = []
        for conn in psutil.net_connections(kind="inet"):
            if conn.status == psutil.CONN_LISTEN and conn.pid in pids:
                try:
                    name = pids[conn.pid].name()
                except psutil.NoSuchProcess:
                    name = "?"
                result.append((conn.laddr.ip, conn.laddr.port, name))
        return result

    # --- teardown ----------------------------------------------------------------------------------
    def stop(self) -> float:
        """SIGTERM to the hub (it stops every learner's server and the proxy); seconds until all were gone."""
        self.processes()
        start = time.monotonic()
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                pass
        deadline = start + STOP_TIMEOUT
        while time.monotonic() < deadline and self.processes():
            time.sleep(0.5)
        return time.monotonic() - start

    def close(self) -> list[str]:
        """Remove everything the room made, whatever state it is in; returns what had to be forced."""
        forced = []
        if self.process is not None and self.process.poll() is None:
            self.stop()
        for proc in self.processes():
            try:
                forced.append(f"{proc.pid} {proc.name()}")
                proc.kill()
            except psutil.NoSuchProcess:
                continue
        psutil.wait_procs([p for p in (psutil.Process(pid) for pid in self.started if psutil.pid_exists(pid))],
                          timeout=10)
        for name in self.learners:
            _run("userdel", "--remove", "--force", name, check=False)
        _run("groupdel", self.group, check=False)
        for folder, mode in reversed(self.opened):
            folder.chmod(mode)
        self.opened.clear()
        return forced


class LearnerServer:
    """What labdriver.NotebookPage needs of a server, for one learner's JupyterLab behind the hub."""

    def __init__(self, room: Room, user: str):
        self.room, self.user = room, user
        self.root = room.workspace(user)
        self.base_url = f"{room.url}/user/{user}"
        self.token = room.token

    def session_for(self, path: str) -> dict | None:
        sessions = self.room.api("GET", f"/user/{self.user}/api/sessions") or []
        return next((s for s in sessions if s.get("path") == path), None)


class HubNotebookPage(NotebookPage):
    """NotebookPage in a learner's logged-in browser: the hub's cookie, not a token in the URL."""

    def open(self) -> None:
        from labdriver import PAGE_TIMEOUT, STARTUP_TIMEOUT

        self.page.goto(f"{self.server.base_url}/lab/tree/{quote(self.path)}?reset", timeout=PAGE_TIMEOUT * 1000)
        self.panel.locator(".jp-Notebook .jp-Cell").first.wait_for(timeout=PAGE_TIMEOUT * 1000)
        self.wait_kernel_idle(STARTUP_TIMEOUT, "the kernel to start")

    def type_into_cell(self, index: int, text: str) -> None:
        """Replace cell `index`'s text as a learner does: click into it, select all, type (no auto-brackets)."""
        editor = self.panel.locator(".jp-Notebook .jp-Cell").nth(index).locator(".cm-content")
        editor.scroll_into_view_if_needed()
        editor.click()
        self.page.keyboard.press("Control+A")
        self.page.keyboard.insert_text(text)
        self.page.keyboard.press("Escape")

    def start_run_all(self) -> None:
        self.menu("Run", "runmenu:run-all")

    def finished(self) -> bool:
        """True once no cell is queued or running and the kernel is idle (checked by the caller three times)."""
        self.fail_on_dialog()
        return not any("*" in p for p in self.prompts()) and self.kernel_state() == "idle" and \
            any(p.strip("[]: ") for p in self.prompts())


def log_in(page, room: Room, user: str) -> None:
    """The hub's login form, as a learner fills it; then wait for their JupyterLab (the server starts on login)."""
    page.goto(f"{room.url}/hub/login", timeout=START_TIMEOUT * 1000)
    page.fill("#username_input", user)
    page.fill("#password_input", room.password)
    page.click("#login_submit")
    page.wait_for_load_state()
    refused = page.locator(".login_error")
    if "/hub/login" in page.url and refused.count():
        raise AssertionError(f"the hub refused {user}'s login: {refused.first.inner_text()!r}")
    page.wait_for_url(f"**/user/{user}/lab**", timeout=START_TIMEOUT * 1000)
    page.locator(".jp-LabShell, #jp-main-dock-panel").first.wait_for(timeout=START_TIMEOUT * 1000)


__all__ = ["Room", "LearnerServer", "HubNotebookPage", "log_in", "as_user", "launch_chromium", "CHROMIUM", "PROXY",
           "ARTIFACTS", "RUN_TIMEOUT"]

"""JupyterLab in a real browser (Debian's Chromium driven by Playwright): `make test-lab`.

Kept out of the default `pytest` run: files in this folder are collected only when
LABKIT_BROWSER_TESTS=1 (what `make test-lab` sets) or when this folder or a file in it is named on the
command line (`pytest tests/browser`). Otherwise `pytest_ignore_collect` below skips them silently.
They need /usr/bin/chromium (`apt-get install -y chromium`) and the `browser` extra (playwright).
"""
from __future__ import annotations

import contextlib
import hashlib
import re
import shutil
from pathlib import Path

import pytest

from opt_in import ignore_unless_asked

HERE = Path(__file__).resolve().parent
ENV_FLAG = "LABKIT_BROWSER_TESTS"


def pytest_ignore_collect(collection_path, config):
    return ignore_unless_asked(config, HERE, ENV_FLAG)


def pytest_collection_modifyitems(session, config, items):
    """One clear message, before anything starts, when the browser or Playwright is missing."""
    if not any(HERE in Path(str(item.path)).parents for item in items):
        return
    from labdriver import CHROMIUM

    missing = []
    if not CHROMIUM.exists():
        missing.append(f"{CHROMIUM} not found: install Debian's Chromium as root with "
                       "`apt-get update && apt-get install -y chromium` (never `playwright install`)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("the Python package playwright is not installed: run `make test-lab` "
                       "(it installs the `browser` extra as pinned: pip install --no-deps -r constraints-browser.txt)")
    if missing:
        pytest.exit("browser tests cannot run:\n  " + "\n  ".join(missing), returncode=4)


@pytest.fixture(scope="session")
def lab_root(tmp_path_factory):
    """Folder JupyterLab serves: copies of notebooks/*.ipynb (and learner/, see `learner_copies`)."""
    from labdriver import copy_lessons

    root = tmp_path_factory.mktemp("lab") / "root"
    copy_lessons(root)
    return root


@pytest.fixture(scope="session")
def learner_copies(lab_root):
    """learner/ in the served folder, written by `labkit student-copy --out` (only the learner tests need it)."""
    from labdriver import lesson_notebooks, make_learner_copies

    make_learner_copies(lesson_notebooks(lab_root), lab_root / "learner")
    return lab_root / "learner"


@pytest.fixture(scope="session")
def lab_server(lab_root):
    from labdriver import LabServer, fresh_log_path

    server = LabServer(root=lab_root, home=lab_root.parent / "home", log_path=fresh_log_path())
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def chromium():
    from playwright.sync_api import sync_playwright

    from labdriver import launch_chromium

    playwright = sync_playwright().start()
    browser = None
    try:
        browser = launch_chromium(playwright)
        yield browser
    finally:
        if browser is not None:
            browser.close()
        playwright.stop()


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-")


class Lab:
    """A fresh browser context on the server for one test, with failure reports that keep a screenshot."""

    def __init__(self, context, page, server, test_name: str):
        from labdriver import ARTIFACTS

        self.context, self.page, self.server = context, page, server
        self.screenshot = ARTIFACTS / f"{_safe(test_name)}.png"
        self.console_errors: list[str] = []
        self.blocked: list[str] = []
        self.timings: dict[str, float] = {}
        self.notes: list[str] = []
        page.on("console", lambda msg: msg.type == "error" and self.console_errors.append(msg.text[:300]))
        page.on("pageerror", lambda err: self.console_errors.append(f"page error: {str(err)[:300]}"))

    def notebook(self, path: str):
        from labdriver import NotebookPage

        if not (self.server.root / path).exists():
            raise AssertionError(f"{path} is not in the served folder {self.server.root}")
        notebook = NotebookPage(self.page, self.server, path)
        notebook.open()
        return notebook

    def copy(self, name: str, folder: str) -> str:
        """A private copy of a served notebook in `folder`/, so this test depends on no other."""
        target = self.server.root / folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.server.root / name, target)
        return f"{folder}/{name}"

    def fail(self, message: str):
        from labdriver import REPO, log_tail

        try:
            self.screenshot.parent.mkdir(parents=True, exist_ok=True)
            self.page.screenshot(path=str(self.screenshot), timeout=30_000)
            shot = f"screenshot: {self.screenshot.relative_to(REPO)}"
        except Exception as err:  # the page may be gone; the message must still come out
            shot = f"no screenshot ({type(err).__name__}: {str(err)[:200]})"
        parts = [message, shot,
                 f"JupyterLab log ({self.server.log_path.relative_to(REPO)}), last lines:\n"
                 + log_tail(self.server.log_path, 30)]
        if self.console_errors:
            parts.append("browser console errors:\n  " + "\n  ".join(self.console_errors[-10:]))
        if self.blocked:
            parts.append("requests off 127.0.0.1 that were blocked:\n  " + "\n  ".join(sorted(set(self.blocked))))
        # `from None`: called from guard() while an exception is handled; its chained traceback would repeat it.
        raise pytest.fail.Exception("\n".join(parts), pytrace=False) from None

    @contextlib.contextmanager
    def guard(self):
        """Turn any failure inside (an assert, a timeout, a Playwright error) into one report with a screenshot."""
        try:
            yield
        except Exception as err:  # pytest.fail raises a BaseException, which passes through
            self.fail(f"{type(err).__name__}: {err}")

    def expect(self, condition, message: str) -> None:
        if not condition:
            self.fail(message)

    def image_digest(self, locator) -> str:
        """SHA-256 of the bytes behind an <img> (blob: or data: URL), read in the page."""
        values = locator.evaluate(
            """async img => { const r = await fetch(img.src); const b = new Uint8Array(await r.arrayBuffer());
                 return Array.from(b); }""")
        return hashlib.sha256(bytes(values)).hexdigest()


@pytest.fixture
def lab(request, chromium, lab_server):
    from labdriver import PAGE_TIMEOUT

    context = chromium.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(PAGE_TIMEOUT * 1000)
    page = context.new_page()
    session = Lab(context, page, lab_server, request.node.name)
    session.screenshot.unlink(missing_ok=True)  # only failures of the last run stay

    def only_local(route):
        if route.request.url.startswith(lab_server.base_url + "/"):
            route.continue_()
        else:
            session.blocked.append(route.request.url[:200])
            route.abort()

    context.route("**/*", only_local)
    try:
        yield session
    finally:
        request.config.stash.setdefault(_TIMINGS, {}).update(session.timings)
        request.config.stash.setdefault(_NOTES, []).extend(session.notes)
        with contextlib.suppress(Exception):
            context.close()
        lab_server.shutdown_kernels()


_TIMINGS = pytest.StashKey[dict]()
_NOTES = pytest.StashKey[list]()


def pytest_terminal_summary(terminalreporter, config):
    timings, notes = config.stash.get(_TIMINGS, {}), config.stash.get(_NOTES, [])
    if timings:
        terminalreporter.section("Run All in JupyterLab (seconds)")
        for name, seconds in timings.items():
            terminalreporter.write_line(f"{seconds:7.1f}  {name}")
    for note in notes:
        terminalreporter.write_line(note)

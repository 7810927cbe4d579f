"""The lesson notebooks: finding them (one pattern for the runner, the workspace, progress and the tests)
and running one so that it always stops and says why.

`run_notebook` drives nbclient's asynchronous client cell by cell: a cell that runs past
`timeout` fails with "timed out", a kernel that dies is reported as such (never waited for),
SIGINT or SIGTERM stop the kernel and raise `Interrupted`, and every kernel is shut down when
its notebook ends. The kernel is this Python (`sys.executable`) with this process's environment
(where the kit sets ORT_DISABLE_TELEMETRY=1); its sockets live in a short temporary folder, since a
Unix socket's path holds at most 107 bytes.

`read_notebook` is the one reader of a notebook file for the runner and the learner's workspace: a
cut-short, empty or damaged file raises `NotebookError` naming the file, the cell and the fault.

A timing lesson (one whose code reads a clock) is saved by `--inplace` only from a quiet machine
(`labkit.machine_load`), unless `allow_busy`: committed timings come from a quiet run.
"""
from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .paths import display_path, repo_root, shown_path, write_target
from .report import first_line, status, strip_ansi, summary_line, verdict_rows

__all__ = ["LESSON_PATTERN", "lesson_notebooks", "select_notebooks", "NotebookError", "read_notebook",
           "is_timing_lesson", "NotebookResult", "Interrupted", "run_notebook", "run_notebooks", "format_results"]

LESSON_PATTERN = "[0-9][0-9]_*.ipynb"   # the glob; _LESSON_STEM then drops copies such as 01_x.updated.ipynb
_LESSON_STEM = re.compile(r"\d\d_[a-z0-9_]+")
MIN_PREFIX = 3
SOCKET_PATH_MAX = 107   # bytes in a Unix socket's path (sun_path is 108 with its NUL)
# Calls that read a clock: a lesson whose code makes one measures time (`labkit.measure` and the standard library).
# Notebook metadata {"labkit": {"timings": true|false}} overrides the finding.
TIMING_CALLS = re.compile(r"\b(time_it|speed_verdict|sgemm_peak|perf_counter|perf_counter_ns|process_time|timeit)\s*\(|"
                          r"%%?timeit\b")


def lesson_notebooks(folder: str | Path | None = None) -> list[Path]:
    """The lesson notebooks `NN_name.ipynb` of `folder` (default: the checkout's notebooks/), in order."""
    folder = repo_root() / "notebooks" if folder is None else Path(folder)
    return sorted(p for p in folder.glob(LESSON_PATTERN) if _LESSON_STEM.fullmatch(p.stem))


def _select_one(name: str, every: list[Path]) -> Path:
    listing = ", ".join(p.stem for p in every)
    text = str(name).strip()
    if text.endswith(".ipynb") or "/" in text or os.sep in text:
        path = Path(text).expanduser()
        if path.is_file():
            return path.resolve()
        lesson = [p for p in every if p.name == text]
        if lesson:
            return lesson[0]
        raise FileNotFoundError(f"no notebook at '{text}'; the lessons are: {listing}")
    if re.fullmatch(r"\d\d", text):
        matches = [p for p in every if p.name.startswith(f"{text}_")]
    elif len(text) >= MIN_PREFIX:
        matches = [p for p in every if p.stem.startswith(text)]
    else:
        raise ValueError(f"{name!r} names no lesson: give a lesson number such as 01, at least {MIN_PREFIX} "
                         f"characters of a name such as 01_al, or a notebook path; the lessons are: {listing}")
    if not matches:
        raise FileNotFoundError(f"no notebook matches {name!r}; the lessons are: {listing}")
    exact = [p for p in matches if p.stem == text]
    if exact:  # a lesson's whole name is never ambiguous, even beside NN_name_v2
        return exact[0]
    if len(matches) > 1:
        raise ValueError(f"{name!r} matches {len(matches)} lessons ({', '.join(p.stem for p in matches)}): "
                         "give more of the name")
    return matches[0]


def select_notebooks(names: Sequence[str] = ()) -> list[Path]:
    """The notebooks `names` select, each once, in the order given; no names: every lesson.

    A name is a lesson number (`01`), a name prefix of at least 3 characters (`01_al`), or a path.
    """
    every = lesson_notebooks()
    if not names:
        return every
    chosen: list[Path] = []
    for name in names:
        path = _select_one(name, every)
        if path not in chosen:
            chosen.append(path)
    return chosen


class NotebookError(ValueError):
    """A notebook file that cannot be read: cut short, not a notebook, or with a damaged cell (named)."""


def _describe_invalid(error) -> str:
    """nbformat's validation error as 'cell 3 'metadata': <what is wrong>' (the cell named when there is one)."""
    where = list(getattr(error, "absolute_path", None) or [])
    message = first_line(getattr(error, "message", error))
    if len(where) >= 2 and where[0] == "cells" and isinstance(where[1], int):
        field = f" {where[2]!r}" if len(where) > 2 else ""
        return f"cell {where[1]}{field}: {message}"
    return message


def _plausible(key: str, value) -> bool:
    """Whether a cell's field has the type a notebook needs (the damage seen in the wild: "source": 42)."""
    if key == "cell_type":
        return value in ("code", "markdown", "raw")
    if key == "source":
        return isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value))
    if key == "outputs":
        return isinstance(value, list)
    return isinstance(value, dict)


def read_notebook(path: str | Path):
    """The notebook at `path` (nbformat 4), or NotebookError naming the file and what is wrong with it."""
    import nbformat

    path = Path(path)

    def fault(reason: str) -> NotebookError:
        return NotebookError(f"{shown_path(path)} is not a readable notebook: {reason}")

    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as error:
        raise fault(f"byte {error.start} is not UTF-8 text") from None
    except OSError as error:
        raise fault(error.strerror or type(error).__name__) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        if error.pos >= len(text.rstrip()):
            raise fault("the file ends early (cut short while it was saved?)") from None
        raise fault(f"not JSON at line {error.lineno}, column {error.colno}: {error.msg}") from None
    if not isinstance(data, dict) or not ("cells" in data or "worksheets" in data) or "nbformat" not in data:
        found = "an empty object {}" if data == {} else f"JSON without them ({type(data).__name__})"
        raise fault(f"no 'cells' or 'nbformat' key: {found}, not a Jupyter notebook")
    for index, cell in enumerate(data.get("cells") if isinstance(data.get("cells"), list) else []):
        if not isinstance(cell, dict):
            raise fault(f"cell {index} is {cell!r:.60}, not a cell")
        wrong = next((key for key in ("cell_type", "source", "outputs", "metadata")
                      if key in cell and not _plausible(key, cell[key])), None)
        if wrong:
            raise fault(f"cell {index}: {wrong!r} is {cell[wrong]!r:.60}, which a notebook cell cannot hold")
    captured: dict = {}
    try:
        notebook = nbformat.reads(text, as_version=4, capture_validation_error=captured)
    except Exception as error:  # nbformat could not even convert it: the schema says where
        captured["ValidationError"] = error
    if "ValidationError" in captured:
        error = captured["ValidationError"]
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # nbformat's own advice (missing cell ids) is not the fault
                nbformat.validate(data)
        except Exception as located:
            error = located
        raise fault(_describe_invalid(error))
    return notebook


def is_timing_lesson(notebook) -> bool:
    """Whether a notebook measures time: its metadata says so (`labkit.timings`), else a code cell reads a clock."""
    declared = notebook.metadata.get("labkit", {}).get("timings") if isinstance(notebook.metadata.get("labkit"),
                                                                                dict) else None
    if isinstance(declared, bool):
        return declared
    return any(cell.cell_type == "code" and TIMING_CALLS.search(cell.source) for cell in notebook.cells)


@dataclass(frozen=True)
class NotebookResult:
    """How one notebook ran: ok or not, seconds, where and why it failed ('Cell 3: ValueError: ...'), and a note
    (for a saved timing lesson: how busy the machine was)."""

    path: Path
    ok: bool
    seconds: float
    error: str = ""
    note: str = ""

    @property
    def status(self) -> str:
        return status(self.ok)


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived while a notebook ran; its kernel has been stopped."""

    def __init__(self, signum: int, path: Path, results: Sequence[NotebookResult] = ()):
        self.signum, self.path, self.results = signum, path, list(results)
        super().__init__(f"interrupted by {signal.Signals(signum).name} while running {display_path(path)}; "
                         "its kernel was stopped")

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def _kernel_manager(folder: str):
    """An asynchronous kernel manager that starts this Python over local sockets in `folder`."""
    from jupyter_client.manager import AsyncKernelManager

    manager = AsyncKernelManager(kernel_name="python3", transport="ipc", ip=os.path.join(folder, "kernel"))
    manager.kernel_spec.argv[0] = sys.executable
    return manager


def _code_cell_number(cells, index: int) -> int:
    """nbval's number for cell `index`: code cells counted from 0 (`pytest notebook.ipynb::Cell 3`)."""
    return sum(1 for cell in cells[:index] if cell.cell_type == "code")


def _describe(error: BaseException, cell: str, timeout: int) -> str:
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    if isinstance(error, CellTimeoutError):
        return f"{cell}: timed out after {timeout} s (give a larger --timeout if the cell needs longer)"
    if isinstance(error, DeadKernelError):
        return f"{cell}: the kernel died (its process exited or was killed, for example when out of memory)"
    if isinstance(error, CellExecutionError):
        message = first_line(strip_ansi(error.evalue or ""))
        return f"{cell}: {error.ename}: {message}" if message else f"{cell}: {error.ename}"
    return f"{cell}: {type(error).__name__}: {first_line(error)}"


async def _shutdown(client) -> None:
    """Stop the kernel (and its process group) and close the client's channels, whatever state they are in."""
    try:
        if client.km.has_kernel:
            await client.km.shutdown_kernel(now=True)
    except Exception:  # already gone: nothing left to stop
        pass
    finally:
        if client.kc is not None:
            client.kc.stop_channels()
            client.kc = None


async def _execute(client, position: list) -> int | None:
    """Run every cell; return the signal number if SIGINT/SIGTERM arrived, else None. Always shuts down."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    received: list[int] = []

    def on_signal(signum: int) -> None:
        if not received:
            received.append(signum)
            task.cancel()

    installed = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(signum, on_signal, signum)
            installed.append(signum)
        except (RuntimeError, ValueError, NotImplementedError):  # not the main thread: the caller handles signals
            pass
    try:
        from .childenv import kernel_env  # the environment nbval's kernels get: telemetry off, no caller's COLUMNS...

        await client.async_start_new_kernel(env=kernel_env())
        await client.async_start_new_kernel_client()
        info = await client.async_wait_for_reply(client.kc.kernel_info())
        if info and "language_info" in info["content"]:
            client.nb.metadata["language_info"] = info["content"]["language_info"]
        for index, cell in enumerate(client.nb.cells):
            position[0] = index
            await client.async_execute_cell(cell, index, execution_count=client.code_cells_executed + 1)
        client.set_widgets_metadata()
    except BaseException:
        if received:
            return received[0]
        raise
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)
        await _shutdown(client)
    return received[0] if received else None


def _socket_candidates() -> list[str]:
    """Where a kernel's sockets may live, in order of preference: TMPDIR's folder, then the usual short ones."""
    return [tempfile.gettempdir(), os.environ.get("XDG_RUNTIME_DIR", ""), "/tmp", "/var/tmp", "/dev/shm"]


def _socket_folder() -> str:
    """A writable folder short enough that `<folder>/labkit-kernel-XXXXXXXX/kernel-NN` fits a Unix socket path."""
    room = len("/labkit-kernel-") + 8 + len("/kernel-99")
    tried = []
    for folder in _socket_candidates():
        if not folder or folder in tried:
            continue
        tried.append(folder)
        if len(os.fsencode(folder)) + room <= SOCKET_PATH_MAX and os.path.isdir(folder) and os.access(folder, os.W_OK):
            return folder
    longest = max(tried, key=len) if tried else ""
    raise OSError(f"no temporary folder is short enough for the kernel's sockets (a Unix socket's path holds at "
                  f"most {SOCKET_PATH_MAX} bytes; TMPDIR is {len(os.fsencode(longest))} bytes): set TMPDIR to a "
                  "short folder such as /tmp and run this again")


def _machine_check(load: Callable[[], object], allow_busy: bool) -> tuple[str, str]:
    """(refusal, note) for saving a timing lesson now: a refusal when the machine is busy and that is not allowed,
    else a note with the numbers the saved timings came from."""
    measured = load()
    if measured.quiet:
        return "", f"timings saved from a quiet machine ({measured.describe()})"
    if allow_busy:
        return "", f"timings saved from a busy machine, as --allow-busy asked ({measured.describe()})"
    return (f"not run: this lesson measures time, and --inplace saves timings only from a quiet machine, but "
            f"{'; '.join(measured.reasons)} ({measured.describe()}): stop other work and run it again, or pass "
            "--allow-busy to save these timings anyway"), ""


def run_notebook(path: str | Path, *, inplace: bool = False, timeout: int = 600, allow_busy: bool = False,
                 load: Callable[[], object] | None = None) -> NotebookResult:
    """Execute one notebook in its own folder; with `inplace`, save the fresh outputs when every cell passed.

    With `inplace`, a timing lesson runs only when `load()` (default: `machine_load.measure_load`) finds the
    machine quiet, or with `allow_busy`. Raises `Interrupted` on SIGINT/SIGTERM (after stopping the kernel);
    every other failure is a FAILED result.
    """
    from nbclient import NotebookClient

    if isinstance(timeout, bool) or not isinstance(timeout, int) or timeout <= 0:
        raise ValueError(f"timeout must be a whole number of seconds >= 1, got {timeout!r}")
    path = Path(path)
    start = time.perf_counter()
    try:
        notebook = read_notebook(path)
        if inplace:
            write_target(path, path.parent)
    except ValueError as error:
        reason = str(error).split(" is not a readable notebook: ", 1)[-1]
        label = "not a readable notebook" if isinstance(error, NotebookError) else "not saved"
        return NotebookResult(path, False, 0.0, f"{label}: {first_line(reason)}")
    note = ""
    if inplace and is_timing_lesson(notebook):
        if load is None:
            from . import machine_load

            load = machine_load.measure_load
        refusal, note = _machine_check(load, allow_busy)
        if refusal:
            return NotebookResult(path, False, time.perf_counter() - start, refusal)
    try:
        sockets_in = _socket_folder()
    except OSError as error:
        return NotebookResult(path, False, 0.0, f"the kernel cannot start: {error}")
    position = [0]
    with tempfile.TemporaryDirectory(prefix="labkit-kernel-", dir=sockets_in) as sockets:
        client = NotebookClient(notebook, km=_kernel_manager(sockets), timeout=timeout, record_timing=False,
                                store_widget_state=False, resources={"metadata": {"path": str(path.parent)}})
        try:
            signum = asyncio.run(_execute(client, position))
        except Exception as error:
            cell = f"Cell {_code_cell_number(notebook.cells, position[0])}"
            return NotebookResult(path, False, time.perf_counter() - start, _describe(error, cell, timeout))
    if signum is not None:
        raise Interrupted(signum, path)
    if inplace:
        import nbformat

        notebook.metadata.pop("widgets", None)  # live widget state is meaningless once the kernel is gone
        nbformat.write(notebook, write_target(path, path.parent))
    return NotebookResult(path, True, time.perf_counter() - start, note=note)


def run_notebooks(paths: Sequence[Path], *, inplace: bool = False, timeout: int = 600, allow_busy: bool = False,
                  on_start: Callable[[Path, int, int], object] | None = None) -> list[NotebookResult]:
    """Run notebooks one after another; `on_start(path, n, total)` is called before each. One result per notebook."""
    results: list[NotebookResult] = []
    for number, path in enumerate(paths, start=1):
        if on_start is not None:
            on_start(path, number, len(paths))
        try:
            results.append(run_notebook(path, inplace=inplace, timeout=timeout, allow_busy=allow_busy))
        except Interrupted as stop:
            stop.results = results
            raise
    return results


def format_results(results: Sequence[NotebookResult]) -> str:
    """`PASSED | notebook | seconds` rows (the error or note after the seconds), one summary line naming the failures."""
    rows = verdict_rows((r.ok, display_path(r.path), "; ".join(part for part in (f"{r.seconds:.1f} s", r.error, r.note)
                                                                if part)) for r in results)
    failed = [r.path.stem for r in results if not r.ok]
    return f"{rows}\n" + summary_line(len(results) - len(failed), len(results), "notebooks ran without errors",
                                      failed=failed)

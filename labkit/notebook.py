"""Notebook plumbing: expected errors that never stop Run All, warnings without machine paths, native output,
memory handed back when a section is done.

`clean_env` (a child process's environment) lives in labkit.childenv; Lesson 00 imports it from here.
"""
from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import re
import sys
import tempfile
import traceback
import warnings
from types import TracebackType

from .childenv import clean_env
from .report import first_line

__all__ = ["expect_error", "ExpectedError", "short_warnings", "hide_native_stdout", "capture_native_stdout",
           "clean_env", "free_memory"]


class ExpectedError:
    """Context manager: the block must raise one of `types`; its first line is printed and the cell goes on.

    A block that raises nothing fails loudly (AssertionError), so the lesson's claim is tested.
    Any other exception type propagates unchanged.
    """

    def __init__(self, *types: type[BaseException], match: str | None = None, show: bool = True):
        if not types:
            raise ValueError("name the exception type(s) the block must raise, e.g. expect_error(TypeError)")
        self.types = types
        self.match = match
        self.show = show
        self.error: BaseException | None = None

    @property
    def message(self) -> str:
        """First line of the caught error's message ('' before anything was caught)."""
        return "" if self.error is None else first_line(self.error)

    def __enter__(self) -> "ExpectedError":
        return self

    def __exit__(self, exc_type, exc: BaseException | None, tb: TracebackType | None) -> bool:
        names = " or ".join(t.__name__ for t in self.types)
        if exc is None:
            raise AssertionError(f"expected {names}, but the block ran without error")
        if not isinstance(exc, self.types):
            return False
        self.error = exc
        _forget_frames(exc)
        if self.match is not None and not re.search(self.match, str(exc)):
            raise AssertionError(
                f"{type(exc).__name__} was raised, but its message does not match {self.match!r}: {self.message}"
            ) from exc
        if self.show:
            print(f"{type(exc).__name__} (expected): {self.message}")
        return True


def _forget_frames(error: BaseException | None) -> None:
    """Clear the locals of every frame the error (and its causes) passed through; keep the error and its message.

    `caught` lives as long as the notebook's kernel, and so would whatever those frames held: an ONNX Runtime
    session whose `run` raised keeps its copy of the weights (233 MiB for AlexNet) alive through them.
    """
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        traceback.clear_frames(error.__traceback__)  # skips the frame still running (the cell itself)
        error = error.__cause__ or error.__context__


def expect_error(*types: type[BaseException], match: str | None = None, show: bool = True) -> ExpectedError:
    """`with expect_error(TypeError): ...` — catch exactly that error, print its first line, fail if absent."""
    return ExpectedError(*types, match=match, show=show)


def _format_short(message, category, filename, lineno, line=None) -> str:
    return f"{category.__name__}: {first_line(str(message))}\n"


def short_warnings() -> None:
    """Print warnings as `Category: first line`, without the file path and source line of the emitter."""
    warnings.formatwarning = _format_short


@contextlib.contextmanager
def hide_native_stdout():
    """Discard what C/C++ code writes straight to file descriptor 1 inside the block.

    The legacy exporter's C++ core dumps its half-built graph (full of file paths) to the process's
    stdout when an export fails; Python-level output is unaffected outside the block.
    """
    with capture_native_stdout():
        yield


class NativeOutput:
    """What `capture_native_stdout` collected; `.text` is filled when the block ends."""

    text = ""


@contextlib.contextmanager
def capture_native_stdout():
    """Collect what C/C++ code writes to file descriptor 1 inside the block (e.g. `verbose=True` exports)."""
    captured = NativeOutput()
    sys.stdout.flush()
    saved = os.dup(1)
    with tempfile.TemporaryFile(mode="w+", encoding="utf-8", errors="replace") as log:
        os.dup2(log.fileno(), 1)
        try:
            yield captured
        finally:
            sys.stdout.flush()
            os.dup2(saved, 1)
            os.close(saved)
            log.seek(0)
            captured.text = log.read()


def _resident_gib() -> float:
    """This process's resident memory (Linux; 0.0 elsewhere)."""
    with contextlib.suppress(OSError), open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS")) / 2**20
    return 0.0


def free_memory() -> str:
    """After `del`, hand what the kernel no longer uses back to the system; says the kernel's memory before and after.

    Three things keep memory that no name reaches: objects in reference cycles (`gc.collect`); the default
    exporter's optimizer (onnxscript), whose module-level rewrite rules keep the last graph they matched, with its
    weights, until the next export (reset here through private attributes: tests/test_notebook_helpers.py fails
    when onnxscript moves them); and the C heap, which keeps freed pages until asked to trim (glibc's malloc_trim).
    """
    before = _resident_gib()
    with contextlib.suppress(ImportError):
        from onnxscript.rewriter._matcher import SimplePatternMatcher

        with warnings.catch_warnings():  # isinstance() reads __class__, which some deprecated torch objects warn on
            warnings.simplefilter("ignore")
            matchers = [obj for obj in gc.get_objects() if isinstance(obj, SimplePatternMatcher)]
        for matcher in matchers:
            matcher._init_match(0)  # a fresh match result, no current node
            matcher._graph = matcher._tracer = None
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    return f"kernel memory: {before:.2f} GiB -> {_resident_gib():.2f} GiB"

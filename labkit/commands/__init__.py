"""One module per `labkit` command, each with `configure(parser)` and `main(args) -> exit code`.

Command modules import only the standard library at module top (labkit's own modules, numpy,
onnx and torch inside `main`), so `labkit doctor` starts even when one of those fails to import.
"""
from __future__ import annotations

import os
import sys

__all__ = ["DEBUG_ENV", "print_error"]

DEBUG_ENV = "LABKIT_DEBUG"
# errors whose message is written for the user (it names the fix); other types are shown with their name
_WORDED = (ValueError, LookupError, FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError,
           PermissionError, ConnectionError)


def print_error(command: str, error: BaseException) -> None:
    """`labkit CMD: error: <first line>` on stderr; for an unexpected error type, how to see the traceback."""
    import traceback

    from ..report import first_line

    text = first_line(error)
    worded = isinstance(error, _WORDED) and text != type(error).__name__
    if not worded:
        text = f"{type(error).__name__}: {text}" if text != type(error).__name__ else text
    print(f"labkit {command}: error: {text}", file=sys.stderr)
    if os.environ.get(DEBUG_ENV, "") not in ("", "0"):
        traceback.print_exception(error)
    elif not worded:  # a message written for the user needs no traceback; anything else may be a labkit bug
        print(f"labkit {command}: run again with {DEBUG_ENV}=1 to see the traceback", file=sys.stderr)

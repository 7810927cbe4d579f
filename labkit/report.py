"""How labkit prints for people: one verdict vocabulary, aligned tables, and an error's first line.

Every check in the kit reads the same way, after Polygraphy's comparator:

    PASSED | onnxruntime 'logits' | (2, 1000) float32
    FAILED | reference 'logits'   | max abs 2.1e-02 at [0, 5] > atol 1e-04 + rtol 1e-03 * |expected|
    FAILED: 1/2 outputs match torch (atol=1e-04, rtol=1e-03); failed: reference 'logits'

Rows are `STATUS | subject | detail`; one summary line follows, and a failing summary names
what failed. Output must be the same on every machine, so details hold shapes, names and
verdicts; raw figures belong in a `.details()` text printed in an ignored cell.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

__all__ = ["PASSED", "FAILED", "status", "first_line", "format_table", "verdict_rows", "summary_line",
           "strip_ansi"]

PASSED, FAILED = "PASSED", "FAILED"
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def status(ok: bool) -> str:
    """PASSED or FAILED."""
    return PASSED if ok else FAILED


def strip_ansi(text: str) -> str:
    """`text` without terminal colour codes (tracebacks from kernels carry them)."""
    return _ANSI.sub("", text)


def first_line(error: BaseException | str) -> str:
    """The first non-empty line of an error's message, or its type name when the message is empty."""
    line = next((line.strip() for line in strip_ansi(str(error)).splitlines() if line.strip()), "")
    return line or (type(error).__name__ if isinstance(error, BaseException) else "")


def format_table(header: Sequence[str] | None, rows: Iterable[Sequence[object]], *, sep: str = "  ",
                 align: str = "") -> str:
    """Aligned columns; `align` is one letter per column, 'l' (default) or 'r' for numbers."""
    body = [[str(cell) for cell in row] for row in rows]
    lines = ([list(map(str, header))] if header else []) + body
    if not lines:
        return ""
    columns = max(len(line) for line in lines)
    lines = [line + [""] * (columns - len(line)) for line in lines]
    widths = [max(len(line[i]) for line in lines) for i in range(columns)]
    sides = (align + "l" * columns)[:columns]
    out = []
    for line in lines:
        cells = [cell.rjust(w) if side == "r" else cell.ljust(w) for cell, w, side in zip(line, widths, sides)]
        out.append(sep.join(cells).rstrip())
    return "\n".join(out)


def verdict_rows(rows: Iterable[Sequence]) -> str:
    """`PASSED | subject | detail` lines, aligned, from (ok, subject, detail, ...) rows; no `|` before an empty end."""
    table = format_table(None, [(status(ok), *cells) for ok, *cells in rows], sep=" | ")
    return "\n".join(line.removesuffix(" |").rstrip() for line in table.splitlines())


def summary_line(passed: int, total: int, what: str, *, failed: Sequence[str] = (), suffix: str = "") -> str:
    """`PASSED: 2/2 outputs match torch (...)` or `FAILED: 1/2 ... ; failed: a, b`; nothing checked is FAILED: 0/0."""
    text = f"{status(0 < passed == total)}: {passed}/{total} {what}"
    if suffix:
        text += f" {suffix}"
    if failed:
        shown = ", ".join(failed[:5]) + (f" and {len(failed) - 5} more" if len(failed) > 5 else "")
        text += f"; failed: {shown}"
    return text

"""The exercise machinery, learntools-style: an exercise is data plus one check function.

    q1 = Exercise(
        name="Export with a dynamic batch",
        variables=["ex1_path"],                  # read from the notebook's globals by check()
        check=_check_q1,                         # raises Incorrect("...") or returns a detail string
        hints=["dynamic_axes maps an input name to {axis: name}"],
        solution="torch.onnx.export(..., dynamic_axes={'image': {0: 'batch'}})",
    )

Three outcomes: Correct, Incorrect (with a message naming the variable and what is wrong),
Not attempted (a variable is missing). An exception from the learner's own code is reported as
Incorrect with its first line, never as a traceback.
"""
from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Exercise", "Incorrect", "Outcome", "CORRECT", "INCORRECT", "NOT_ATTEMPTED"]

CORRECT, INCORRECT, NOT_ATTEMPTED = "Correct", "Incorrect", "Not attempted"
_COLORS = {CORRECT: "#33925D", INCORRECT: "#CC3333", NOT_ATTEMPTED: "#CC8800"}


class Incorrect(Exception):
    """Raised by a check function with a message that says what is wrong and how to fix it."""


@dataclass(frozen=True)
class Outcome:
    """The result of a check; truthy only when correct. Displays as one line of text (or coloured markdown)."""

    status: str
    exercise: str
    message: str = ""

    def __bool__(self) -> bool:
        return self.status == CORRECT

    def __repr__(self) -> str:
        text = f"{self.status} ({self.exercise})"
        return f"{text}: {self.message}" if self.message else text

    def _repr_markdown_(self) -> str:
        color = _COLORS[self.status]
        body = f": {self.message}" if self.message else ""
        return f'<span style="color:{color}">**{self.status}** ({self.exercise})</span>{body}'


class _Text:
    """A block of text for hints and solutions: plain in text/plain, formatted in markdown."""

    def __init__(self, title: str, body: str, code: bool):
        self.title, self.body, self.code = title, body, code

    def __repr__(self) -> str:
        return f"{self.title}:\n{self.body}"

    def _repr_markdown_(self) -> str:
        body = f"```python\n{self.body}\n```" if self.code else self.body
        return f"**{self.title}:**\n\n{body}"


class Exercise:
    """One auto-checked exercise bound to notebook variables by name."""

    def __init__(self, name: str, variables: Sequence[str], check: Callable[..., str | None],
                 hints: Sequence[str], solution: str):
        if not variables:
            raise ValueError(f"exercise {name!r} must name at least one notebook variable to check")
        if not hints:
            raise ValueError(f"exercise {name!r} needs at least one hint")
        self.name = name
        self.variables = list(variables)
        self._check = check
        self._hints = list(hints)
        self._solution = solution.strip()

    def __repr__(self) -> str:
        return f"<Exercise {self.name!r}: checks {', '.join(self.variables)}>"

    def check(self, **values: Any) -> Outcome:
        """Check the learner's variables (from the calling notebook's globals, or passed by keyword)."""
        unknown = set(values) - set(self.variables)
        if unknown:
            raise TypeError(f"{self.name} checks {', '.join(self.variables)}; unexpected: {', '.join(sorted(unknown))}")
        scope = sys._getframe(1).f_globals
        missing = [v for v in self.variables if v not in values and v not in scope]
        if missing:
            names = ", ".join(f"`{m}`" for m in missing)
            return Outcome(NOT_ATTEMPTED, self.name, f"set {names} in the cell above, then run this check again")
        args = {v: values[v] if v in values else scope[v] for v in self.variables}
        try:
            detail = self._check(**args)
        except Incorrect as wrong:
            return Outcome(INCORRECT, self.name, str(wrong))
        except Exception as error:  # the learner's model or function failed: report it, no traceback
            first = (str(error).strip().splitlines() or [""])[0]
            return Outcome(INCORRECT, self.name, f"running your answer raised {type(error).__name__}: {first}")
        return Outcome(CORRECT, self.name, detail or "")

    def hint(self, n: int = 1) -> _Text:
        """The n-th hint (1-based); later hints say more."""
        if not 1 <= n <= len(self._hints):
            raise ValueError(f"{self.name} has hints 1..{len(self._hints)}, not {n}")
        return _Text(f"Hint {n}/{len(self._hints)}", self._hints[n - 1], code=False)

    def solution(self) -> _Text:
        """A worked solution."""
        return _Text("Solution", self._solution, code=True)

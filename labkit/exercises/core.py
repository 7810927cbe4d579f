"""The exercise machinery, learntools-style: an exercise is data plus one check function.

A lesson's module declares its exercises and binds them once, which numbers them and checks
that each checker fits what it declares:

    q1, q2 = bind("01_alexnet_export", [
        Exercise(
            title="Export with a dynamic batch",
            kind="warm-up",                      # or "transfer": the technique on a case the lesson did not show
            answers=["ex1_path"],                # the learner's variables
            context=["torch_model"],             # variables the lesson's own cells define
            check=_check_q1,                     # _check_q1(ex1_path, torch_model): raises Incorrect or returns a detail
            hints=["...", "the last hint nearly gives it away"],
        ),
        ...
    ])

Three outcomes: Correct, Incorrect (the message names the variable and what is wrong),
Not attempted (an answer is missing, or the lesson's cells above were not run). An exception
from the learner's own code is reported as Incorrect with its first line, never a traceback.

A solution has one source: the lesson notebook's `### BEGIN SOLUTION` / `### END SOLUTION`
region(s) before `qN.check()`. `qN.solution()` shows that text, so the suite's run of the solved
lesson proves exactly what a learner is shown.
"""
from __future__ import annotations

import inspect
import numbers
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..report import first_line

__all__ = ["Exercise", "Incorrect", "Outcome", "bind", "CORRECT", "INCORRECT", "NOT_ATTEMPTED", "KINDS"]

CORRECT, INCORRECT, NOT_ATTEMPTED = "Correct", "Incorrect", "Not attempted"
KINDS = ("warm-up", "transfer")
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
    """One auto-checked exercise, bound to notebook variables by name; `bind` numbers it within its lesson."""

    def __init__(self, title: str, answers: Sequence[str], check: Callable[..., str | None],
                 hints: Sequence[str], *, context: Sequence[str] = (), kind: str = "transfer"):
        if not answers:
            raise ValueError(f"exercise {title!r} must name at least one answer variable to check")
        if not hints:
            raise ValueError(f"exercise {title!r} needs at least one hint")
        if kind not in KINDS:
            raise ValueError(f"exercise {title!r}: kind must be one of {', '.join(KINDS)}, got {kind!r}")
        overlap = set(answers) & set(context)
        if overlap:
            raise ValueError(f"exercise {title!r}: {', '.join(sorted(overlap))} cannot be both an answer and context")
        self.title = title
        self.kind = kind
        self.answers = list(answers)
        self.context = list(context)
        self._check = check
        self._hints = list(hints)
        self.lesson: str | None = None
        self.number: int | None = None

    @property
    def variables(self) -> list[str]:
        """Every variable `check()` reads: the answers, then the context."""
        return self.answers + self.context

    @property
    def label(self) -> str:
        """'Exercise 2 — Export with a dynamic batch' once bound (the same form in every lesson)."""
        return f"Exercise {self.number} — {self.title}" if self.number else self.title

    def __repr__(self) -> str:
        return f"<{self.label} ({self.kind}): checks {', '.join(self.variables)}>"

    def check(self, **values: Any) -> Outcome:
        """Check the learner's variables (from the calling notebook's globals, or passed by keyword)."""
        unknown = set(values) - set(self.variables)
        if unknown:
            raise TypeError(f"{self.label} checks {', '.join(self.variables)}; unexpected: {', '.join(sorted(unknown))}")
        scope = sys._getframe(1).f_globals
        missing_context = [v for v in self.context if v not in values and v not in scope]
        if missing_context:
            names = ", ".join(f"`{m}`" for m in missing_context)
            return Outcome(NOT_ATTEMPTED, self.label,
                           f"{names} comes from the lesson's cells above, which have not run in this kernel: "
                           "run them first (Run > Run All Above Selected Cell)")
        missing = [v for v in self.answers if v not in values and v not in scope]
        if missing:
            names = ", ".join(f"`{m}`" for m in missing)
            return Outcome(NOT_ATTEMPTED, self.label, f"set {names} in the cell above, then run this check again")
        args = {v: values[v] if v in values else scope[v] for v in self.variables}
        try:
            detail = self._check(**args)
        except Incorrect as wrong:
            return Outcome(INCORRECT, self.label, str(wrong))
        except Exception as error:  # the learner's model or function failed: report it, no traceback
            return Outcome(INCORRECT, self.label, f"running your answer raised {type(error).__name__}: {first_line(error)}")
        return Outcome(CORRECT, self.label, detail or "")

    def hint(self, n: int = 1) -> _Text:
        """The n-th hint (1-based); later hints say more, the last nearly gives the answer away."""
        if isinstance(n, bool) or not isinstance(n, numbers.Integral):
            raise TypeError(f"{self.label}: hints are numbered 1..{len(self._hints)}, so n is a whole number, "
                            f"not {type(n).__name__} {n!r}: ask for hint(1) first, then hint(2), ...")
        n = int(n)
        if not 1 <= n <= len(self._hints):
            raise ValueError(f"{self.label} has hints 1..{len(self._hints)}, not {n}")
        return _Text(f"Hint {n}/{len(self._hints)}", self._hints[n - 1], code=False)

    def solution(self) -> _Text:
        """The worked solution: the lesson notebook's solution region(s) for this exercise."""
        from .solutions import solution_text

        if self.lesson is None or self.number is None:
            raise RuntimeError(f"{self.title!r} is not bound to a lesson: declare it with bind(lesson, [...])")
        return _Text("Solution", solution_text(self.lesson, self.number), code=True)


def _check_signature(exercise: Exercise, lesson: str, number: int) -> None:
    """A checker must take exactly the declared variables, so its own bug never reaches a learner as theirs."""
    try:
        parameters = inspect.signature(exercise._check).parameters
    except (TypeError, ValueError):
        return  # a builtin or C callable: nothing to inspect
    names = [name for name, p in parameters.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    required = {name for name in names if parameters[name].default is inspect.Parameter.empty}
    declared = set(exercise.variables)
    if any(p.kind == p.VAR_KEYWORD for p in parameters.values()):
        return
    if not required <= declared or not declared <= set(names):
        raise TypeError(
            f"lesson {lesson}, exercise {number} ({exercise.title!r}): its checker takes ({', '.join(names)}) "
            f"but the exercise declares answers {exercise.answers} and context {exercise.context}: "
            "make the checker's parameters and the declared variables the same"
        )


def bind(lesson: str, exercises: Sequence[Exercise]) -> list[Exercise]:
    """Number a lesson's exercises 1..N, tie them to the lesson notebook, and check each checker's signature."""
    if not exercises:
        raise ValueError(f"lesson {lesson} binds no exercises")
    for number, exercise in enumerate(exercises, start=1):
        if exercise.lesson is not None:
            raise ValueError(f"{exercise.label!r} is already bound to lesson {exercise.lesson}")
        _check_signature(exercise, lesson, number)
        exercise.lesson, exercise.number = lesson, number
    return list(exercises)

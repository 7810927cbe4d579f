"""Plausible wrong answers as data: each exercise keeps the mistakes people really make beside it.

A test module for lesson NN declares

    WRONG_ANSWERS = [
        WrongAnswer(q1, "exported with dynamo=True",            # what the learner did
                    lambda tmp_path: {"ex1_path": ..., ...},     # keyword values for q1.check(...)
                    fault="the legacy exporter"),                # a fragment the Incorrect message must hold
        ...
    ]

and one parametrised test, `test_wrong_answer_is_rejected_naming_its_fault`, proves each is
Incorrect with a message naming the fault. `tests/test_wrong_answers.py` keeps the catalogue
honest: every bound exercise of every lesson carries at least `MINIMUM` of them.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

MINIMUM = 3


@dataclass(frozen=True)
class WrongAnswer:
    exercise: Any                       # a bound Exercise (q1, q2, ...)
    mistake: str                        # what the learner did, in a few words (the test id)
    make: Callable[[Any], dict]         # tmp_path -> keyword values for exercise.check(**values)
    fault: str                          # must appear in the Incorrect message: it names the fault

    @property
    def id(self) -> str:
        return f"q{self.exercise.number}: {self.mistake}"


def params(wrong_answers: list[WrongAnswer]):
    """pytest parameters for a lesson's catalogue, one id per mistake."""
    return [pytest.param(w, id=w.id) for w in wrong_answers]


def assert_rejected(wrong: WrongAnswer, tmp_path) -> None:
    """The exercise says Incorrect, and its message names the fault (not a crash, not a generic message)."""
    outcome = wrong.exercise.check(**wrong.make(tmp_path))
    assert outcome.status == "Incorrect", f"{wrong.id} was accepted: {outcome!r}"
    assert wrong.fault.lower() in outcome.message.lower(), (
        f"{wrong.id} was rejected, but the message does not name the fault {wrong.fault!r}: {outcome.message}")

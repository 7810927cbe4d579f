"""What every exercise of every lesson does the same way: an answer or a lesson variable missing is Not attempted
and named, a path to no file is Incorrect and says so. Each check runs as in a notebook: from a fresh scope whose
globals hold only what the learner (or the lesson's cells) defined."""
import importlib

import pytest
import torch

from labkit.exercises.core import INCORRECT, NOT_ATTEMPTED
from labkit.lessons import lesson_notebooks


def _every_exercise():
    found = []
    for notebook in lesson_notebooks():
        module = importlib.import_module(f"labkit.exercises.lesson{notebook.name[:2]}")
        number = 1
        while hasattr(module, f"q{number}"):
            found.append(getattr(module, f"q{number}"))
            number += 1
    return found


EXERCISES = _every_exercise()


def _id(exercise):
    return f"{exercise.lesson[:2]}-q{exercise.number}"


def _check_in_a_fresh_kernel(exercise, defined):
    """`qN.check()` typed in a notebook whose globals hold only `defined` (no keyword arguments)."""
    scope = {"q": exercise, **defined}
    exec("outcome = q.check()", scope)
    return scope["outcome"]


def _names(variables):
    return ", ".join(f"`{name}`" for name in variables)


@pytest.mark.parametrize("exercise", EXERCISES, ids=_id)
def test_every_exercise_is_not_attempted_without_its_answers_and_names_them(exercise):
    outcome = _check_in_a_fresh_kernel(exercise, {name: object() for name in exercise.context})
    assert not outcome and outcome.status == NOT_ATTEMPTED
    assert outcome.message == f"set {_names(exercise.answers)} in the cell above, then run this check again"


@pytest.mark.parametrize("exercise", [e for e in EXERCISES if len(e.answers) > 1], ids=_id)
def test_an_exercise_with_several_answers_names_only_the_one_missing(exercise):
    for missing in exercise.answers:
        given = {name: object() for name in exercise.variables if name != missing}
        outcome = _check_in_a_fresh_kernel(exercise, given)
        assert outcome.status == NOT_ATTEMPTED and outcome.message.startswith(f"set `{missing}` in the cell above")


@pytest.mark.parametrize("exercise", [e for e in EXERCISES if e.context], ids=_id)
def test_every_exercise_that_reads_the_lessons_variables_asks_to_run_the_cells_above_without_them(exercise):
    outcome = _check_in_a_fresh_kernel(exercise, {name: object() for name in exercise.answers})
    assert not outcome and outcome.status == NOT_ATTEMPTED
    assert outcome.message.startswith(f"{_names(exercise.context)} comes from the lesson's cells above, "
                                      "which have not run in this kernel: run them first")


# Answers other than the path that a checker validates before it opens the file: a plausible value for each.
_BEFORE_THE_PATH = {"ex2_model": lambda: torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.Tanh()).eval(),
                    "ex2_input": lambda: torch.ones(2, 1, 6, 6)}


@pytest.mark.parametrize("exercise", [e for e in EXERCISES if any(a.endswith("_path") for a in e.answers)], ids=_id)
def test_every_exercise_that_takes_a_path_says_when_no_file_is_there(exercise, tmp_path):
    [path] = [name for name in exercise.answers if name.endswith("_path")]
    given = {name: _BEFORE_THE_PATH.get(name, object)() for name in exercise.variables}
    outcome = _check_in_a_fresh_kernel(exercise, {**given, path: tmp_path / "never_exported.onnx"})
    assert outcome.status == INCORRECT
    assert outcome.message == (f"`{path}` is 'never_exported.onnx', but no such file exists: run your export first")

"""Every exercise of every lesson carries plausible wrong answers, each proven rejected by its lesson's tests."""
import importlib
from collections import Counter

import pytest

from labkit.lessons import lesson_notebooks
from wrong_answers import MINIMUM, WrongAnswer


def _lesson_modules():
    for lesson in lesson_notebooks():
        number = lesson.name[:2]
        yield (importlib.import_module(f"labkit.exercises.lesson{number}"),
               importlib.import_module(f"test_exercises_lesson{number}"))


@pytest.mark.parametrize("exercises, tests", list(_lesson_modules()), ids=lambda m: m.__name__.rsplit(".", 1)[-1])
def test_each_exercise_carries_wrong_answers_its_tests_reject(exercises, tests):
    catalogue = getattr(tests, "WRONG_ANSWERS", [])
    assert all(isinstance(w, WrongAnswer) for w in catalogue)
    assert any(name.startswith("test_wrong_answer_is_rejected") for name in dir(tests)), \
        f"{tests.__name__} declares WRONG_ANSWERS but no test runs them"
    counts = Counter(w.exercise.number for w in catalogue if w.exercise.lesson and
                     w.exercise.lesson.startswith(exercises.__name__[-2:]))
    bound = sorted({q.number for name, q in vars(exercises).items() if name[:1] == "q" and name[1:].isdigit()})
    short = {f"q{n}": counts[n] for n in bound if counts[n] < MINIMUM}
    assert not short, f"{tests.__name__}: fewer than {MINIMUM} wrong answers for {short}"

"""labkit.exercises.core: the three outcomes, hints and solutions, and no tracebacks for learners."""
import pytest

from labkit.exercises import Exercise, Incorrect


def _check_square(ex_square):
    if not callable(ex_square):
        raise Incorrect(f"`ex_square` should be a function, got {type(ex_square).__name__}")
    if ex_square(3) != 9:
        raise Incorrect(f"ex_square(3) returned {ex_square(3)!r}, expected 9")
    return "ex_square(3) == 9"


square = Exercise("Exercise 1", ["ex_square"], _check_square,
                  hints=["multiply the number by itself", "x * x"], solution="def ex_square(x):\n    return x * x")


def test_missing_variable_is_not_attempted():
    outcome = square.check()
    assert not outcome
    assert repr(outcome) == "Not attempted (Exercise 1): set `ex_square` in the cell above, then run this check again"


def test_wrong_answer_is_incorrect_with_the_learners_value():
    outcome = square.check(ex_square=lambda x: x + x)
    assert not outcome
    assert repr(outcome) == "Incorrect (Exercise 1): ex_square(3) returned 6, expected 9"


def test_right_answer_is_correct():
    outcome = square.check(ex_square=lambda x: x * x)
    assert outcome
    assert repr(outcome) == "Correct (Exercise 1): ex_square(3) == 9"


def test_the_learners_exception_is_reported_as_incorrect_not_raised():
    def broken(x):
        raise ZeroDivisionError("division by zero")

    outcome = square.check(ex_square=broken)
    assert repr(outcome) == "Incorrect (Exercise 1): running your answer raised ZeroDivisionError: division by zero"


def test_check_reads_the_callers_globals():
    global ex_square

    def ex_square(x):
        return x * x

    try:
        assert square.check()
    finally:
        del ex_square


def test_unexpected_keyword_is_a_type_error():
    with pytest.raises(TypeError, match="unexpected: ex_cube"):
        square.check(ex_cube=1)


def test_hints_are_numbered_and_bounded():
    assert repr(square.hint()) == "Hint 1/2:\nmultiply the number by itself"
    assert repr(square.hint(2)) == "Hint 2/2:\nx * x"
    with pytest.raises(ValueError, match="has hints 1..2, not 3"):
        square.hint(3)


def test_solution_renders_as_python_code_in_markdown():
    assert "```python\ndef ex_square(x):" in square.solution()._repr_markdown_()


def test_outcome_markdown_is_coloured_by_status():
    assert "#33925D" in square.check(ex_square=lambda x: x * x)._repr_markdown_()
    assert "#CC3333" in square.check(ex_square=lambda x: 0)._repr_markdown_()


def test_an_exercise_needs_variables_and_hints():
    with pytest.raises(ValueError, match="must name at least one notebook variable"):
        Exercise("E", [], _check_square, hints=["h"], solution="s")
    with pytest.raises(ValueError, match="needs at least one hint"):
        Exercise("E", ["v"], _check_square, hints=[], solution="s")

"""labkit.exercises: three outcomes, a binding step that catches checker bugs, and one source per solution."""
import warnings

import nbformat
import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from labkit.exercises import Exercise, Incorrect, bind, checks
from labkit.exercises.solutions import STUB, exercise_solutions, solution_regions, strip_solutions


def _check_square(ex_square):
    if not callable(ex_square):
        raise Incorrect(f"`ex_square` should be a function, got {type(ex_square).__name__}")
    if ex_square(3) != 9:
        raise Incorrect(f"ex_square(3) returned {ex_square(3)!r}, expected 9")
    return "ex_square(3) == 9"


def _check_scaled(ex_scaled, factor):
    if ex_scaled != 2 * factor:
        raise Incorrect(f"`ex_scaled` is {ex_scaled}, expected twice `factor`")
    return "twice the factor"


[square, scaled] = bind("99_test", [
    Exercise("Square a number", ["ex_square"], _check_square, hints=["multiply the number by itself", "x * x"],
             kind="warm-up"),
    Exercise("Scale the factor", ["ex_scaled"], _check_scaled, hints=["2 * factor"], context=["factor"]),
])


def test_bind_numbers_the_exercises_and_labels_them_the_same_way():
    assert (square.number, scaled.number) == (1, 2)
    assert square.label == "Exercise 1 — Square a number"
    assert repr(scaled) == "<Exercise 2 — Scale the factor (transfer): checks ex_scaled, factor>"


def test_missing_answer_is_not_attempted():
    outcome = square.check()
    assert not outcome
    assert repr(outcome) == ("Not attempted (Exercise 1 — Square a number): set `ex_square` in the cell above, "
                             "then run this check again")


def test_missing_context_tells_the_learner_to_run_the_cells_above():
    outcome = scaled.check(ex_scaled=4)
    assert outcome.status == "Not attempted"
    assert "`factor` comes from the lesson's cells above, which have not run in this kernel" in outcome.message


def test_wrong_answer_is_incorrect_with_the_learners_value():
    outcome = square.check(ex_square=lambda x: x + x)
    assert not outcome
    assert repr(outcome) == "Incorrect (Exercise 1 — Square a number): ex_square(3) returned 6, expected 9"


def test_right_answer_is_correct():
    outcome = square.check(ex_square=lambda x: x * x)
    assert outcome
    assert repr(outcome) == "Correct (Exercise 1 — Square a number): ex_square(3) == 9"
    assert scaled.check(ex_scaled=6, factor=3)


def test_the_learners_exception_is_reported_as_incorrect_not_raised():
    def broken(x):
        raise ZeroDivisionError("division by zero")

    outcome = square.check(ex_square=broken)
    assert repr(outcome) == ("Incorrect (Exercise 1 — Square a number): running your answer raised "
                             "ZeroDivisionError: division by zero")


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


def test_a_checker_whose_parameters_differ_from_the_declared_variables_fails_at_bind_time():
    def check(ex_a, ex_c):
        return ""

    with pytest.raises(TypeError, match=r"its checker takes \(ex_a, ex_c\) but the exercise declares answers "
                                        r"\['ex_a'\] and context \['ex_b'\]"):
        bind("99_test", [Exercise("Broken checker", ["ex_a"], check, hints=["h"], context=["ex_b"])])


def test_an_exercise_is_bound_once_and_declared_completely():
    with pytest.raises(ValueError, match="already bound"):
        bind("99_other", [square])
    with pytest.raises(ValueError, match="must name at least one answer variable"):
        Exercise("E", [], _check_square, hints=["h"])
    with pytest.raises(ValueError, match="needs at least one hint"):
        Exercise("E", ["ex_square"], _check_square, hints=[])
    with pytest.raises(ValueError, match="kind must be one of warm-up, transfer"):
        Exercise("E", ["ex_square"], _check_square, hints=["h"], kind="hard")


def test_hints_are_numbered_and_bounded():
    assert repr(square.hint()) == "Hint 1/2:\nmultiply the number by itself"
    assert repr(square.hint(2)) == "Hint 2/2:\nx * x"
    with pytest.raises(ValueError, match="has hints 1..2, not 3"):
        square.hint(3)


def test_outcome_markdown_is_coloured_by_status():
    assert "#33925D" in square.check(ex_square=lambda x: x * x)._repr_markdown_()
    assert "#CC3333" in square.check(ex_square=lambda x: 0)._repr_markdown_()


# --- solution regions: the one source of each answer ---------------------------------------------

CELL = "x = 1\n### BEGIN SOLUTION\nex_a = 2\n### END SOLUTION\nprint(x)"


def test_strip_solutions_replaces_each_region_with_the_stub():
    assert strip_solutions(CELL) == (f"x = 1\n{STUB}\nprint(x)", 1)


def test_solution_regions_are_dedented_to_their_marker():
    assert solution_regions("def f():\n    ### BEGIN SOLUTION\n    return 1\n    ### END SOLUTION") == ["return 1"]


@pytest.mark.parametrize("source, message", [
    ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION", "inside another solution region"),
    ("### END SOLUTION", "without a '### BEGIN SOLUTION' before it"),
    ("### BEGIN SOLUTION\nx = 1", "never closed"),
])
def test_malformed_markers_are_errors(source, message):
    with pytest.raises(ValueError, match=message):
        strip_solutions(source)


def _lesson(tmp_path, cells):
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    path = tmp_path / "99_test.ipynb"
    nbformat.write(notebook, path)
    return path


def test_each_exercise_owns_the_regions_before_its_check(tmp_path):
    path = _lesson(tmp_path, ["### BEGIN SOLUTION\nex_a = 1\n### END SOLUTION", "q1.check()",
                              "### BEGIN SOLUTION\nhelper = 2\n### END SOLUTION", "### BEGIN SOLUTION\nex_b = helper\n"
                              "### END SOLUTION", "q2.check()"])
    assert exercise_solutions(path) == {1: "ex_a = 1", 2: "helper = 2\n\nex_b = helper"}


@pytest.mark.parametrize("cells, message", [
    (["q1.check()"], "has no solution region before it"),
    (["### BEGIN SOLUTION\nex_a = 1\n### END SOLUTION", "q1.check()", "q1.check()"], "appears twice"),
    (["### BEGIN SOLUTION\nex_a = 1\n### END SOLUTION"], "belongs to no exercise"),
])
def test_a_lesson_whose_regions_do_not_pair_with_checks_is_an_error(tmp_path, cells, message):
    with pytest.raises(ValueError, match=message):
        exercise_solutions(_lesson(tmp_path, cells))


def test_an_unbound_exercise_cannot_show_a_solution():
    loose = Exercise("Loose", ["ex_x"], lambda ex_x: "", hints=["h"])
    with pytest.raises(RuntimeError, match="not bound to a lesson"):
        loose.solution()


def test_a_fractional_hint_number_is_a_type_error_that_says_hints_are_whole_numbers():
    with pytest.raises(TypeError, match=r"hints are numbered 1..2, so n is a whole number, not float 1.5"):
        square.hint(1.5)
    assert repr(square.hint(np.int64(2))) == "Hint 2/2:\nx * x"


# --- the shared checks: each names the real cause ------------------------------------------------

def _no_input_model(path):
    graph = helper.make_graph([helper.make_node("Constant", [], ["y"], value=numpy_helper.from_array(
        np.ones(2, np.float32)))], "constant", [], [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)], ir_version=10), path)
    return path


def _rejected(call, *args, **kwargs) -> str:
    with pytest.raises(Incorrect) as caught:
        call(*args, **kwargs)
    return str(caught.value)


def test_a_folder_given_as_the_path_is_named_a_folder_not_a_missing_file(tmp_path):
    message = _rejected(checks.require_onnx_file, "ex1_path", tmp_path)
    assert "which is a folder" in message and "no such file" not in message


def test_a_file_with_no_inputs_is_named_as_such(tmp_path):
    model = checks.require_onnx_file("ex1_path", _no_input_model(tmp_path / "constant.onnx"))
    assert "`ex1_path` has no graph inputs at all" in _rejected(checks.require_input_specs, "ex1_path", model)


def test_the_learners_own_model_raising_is_blamed_on_the_model_not_the_file():
    message = _rejected(checks.call_learner_model, "ex2_model", torch.nn.Linear(4, 3), torch.ones(2, 5))
    assert message.startswith("your `ex2_model` itself raises RuntimeError when called on an input of shape (2, 5)")


def test_a_forward_returning_none_is_named():
    class Forgets(torch.nn.Module):
        def forward(self, x):
            x * 2

    assert "`ex2_model`'s forward returns None" in _rejected(checks.call_learner_model, "ex2_model", Forgets(),
                                                             torch.ones(2))


def test_the_learners_input_is_not_changed_by_their_forward():
    class Scales(torch.nn.Module):
        def forward(self, x):
            x /= 2
            return x

    x = torch.ones(2)
    assert checks.call_learner_model("ex_model", Scales(), x)[0].tolist() == [0.5, 0.5] and x.tolist() == [1, 1]


def test_require_close_uses_compare_arrays_one_rule_and_names_the_case():
    checks.require_close("ex1_path", "a batch of 3", np.ones(3, np.float32), np.ones(3, np.float32) + 5e-5)
    message = _rejected(checks.require_close, "ex1_path", "a batch of 3", np.ones(3, np.float32),
                        np.ones(3, np.float32) + 0.1, fix="export the trained model")
    assert message.startswith("`ex1_path` on a batch of 3: max abs 1.00e-01") and message.endswith(
        ": export the trained model")
    assert "shape (2,), expected (3,)" in _rejected(checks.require_close, "ex", "x", np.ones(3), np.ones(2))


def test_run_learner_file_names_the_inputs_ort_refused(tmp_path):
    model = checks.require_onnx_file("ex_path", _no_input_model(tmp_path / "constant.onnx"))
    assert checks.run_learner_file("ex_path", model, {}, "nothing")[0].tolist() == [1.0, 1.0]
    message = _rejected(checks.run_learner_file, "ex_path", model, {"x": np.ones(2, np.float32)}, "one vector")
    assert message.startswith("`ex_path` fails in ONNX Runtime on one vector ('x' (2,))")


def test_require_exporter_tells_the_two_exporters_apart(tmp_path):
    model = torch.nn.Linear(2, 2)
    legacy, default = tmp_path / "legacy.onnx", tmp_path / "default.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.ones(1, 2),), legacy, dynamo=False)
        torch.onnx.export(model, (torch.ones(1, 2),), dynamo=True, verbose=False).save(default)
    checks.require_exporter("ex", onnx.load(legacy), "legacy")
    checks.require_exporter("ex", onnx.load(default), "default")
    assert "written by the legacy exporter (dynamo=False), and this exercise asks for the default exporter" in \
        _rejected(checks.require_exporter, "ex", onnx.load(legacy), "default")

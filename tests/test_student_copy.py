"""labkit.student: the student copy removes solutions and outputs, and refuses malformed markers."""
import nbformat
import pytest

from labkit.student import STUB, make_student_copy, strip_solutions


def test_solution_region_becomes_a_stub_keeping_indentation():
    source = "x = 1\n    ### BEGIN SOLUTION\n    ex1 = 2\n    ### END SOLUTION\nq1.check()"
    stripped, regions = strip_solutions(source)
    assert regions == 1
    assert stripped == f"x = 1\n    {STUB}\nq1.check()"


@pytest.mark.parametrize("source, message", [
    ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION", "inside another solution region"),
    ("### END SOLUTION", "without a '### BEGIN SOLUTION' before it"),
    ("### BEGIN SOLUTION\nx = 1", "never closed"),
])
def test_malformed_markers_are_errors_not_silent_passes(source, message):
    with pytest.raises(ValueError, match=message):
        strip_solutions(source, "lesson.ipynb, cell 3")


def test_student_copy_clears_outputs_and_counts_regions(tmp_path):
    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# Lesson"),
        nbformat.v4.new_code_cell("### BEGIN SOLUTION\nex1 = 1\n### END SOLUTION", execution_count=3,
                                  outputs=[nbformat.v4.new_output("stream", text="hi")]),
    ])
    source, target = tmp_path / "l.ipynb", tmp_path / "student" / "l.ipynb"
    nbformat.write(notebook, source)
    assert make_student_copy(source, target) == 1
    copy = nbformat.read(target, as_version=4)
    assert copy.cells[1].source == STUB
    assert copy.cells[1].outputs == [] and copy.cells[1].execution_count is None

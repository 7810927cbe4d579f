"""Lesson 00's exercises: each right answer is Correct, plausible wrong ones Incorrect with a precise reason."""
import warnings

import nbformat
import onnx
import pytest
import torch

from labkit.exercises import lesson00
from labkit.exercises.lesson00 import q1, q2, q3, q4, write_drifting_notebook


@pytest.fixture(name="torch_model")  # not a module global: q1.check() must not find it in this file's scope
def _torch_model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU()).eval()


def _export(model, path, example=None, **options):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        example = torch.randn(2, 4) if example is None else example
        if options.pop("dynamo", False):
            torch.onnx.export(model, (example,), dynamo=True, verbose=False, **options).save(path)
        else:
            torch.onnx.export(model, (example,), path, dynamo=False, **options)
    return path


# ------------------------------------------------------------------------------------------------ q1
def test_q1_not_attempted_without_the_variable(torch_model):
    assert repr(q1.check(torch_model=torch_model)).startswith(
        "Not attempted (Exercise 1 — Your names on the legacy exporter): set `ex1_path`")


def test_q1_asks_to_run_the_lesson_cells_when_torch_model_is_missing(tmp_path):
    outcome = q1.check(ex1_path=tmp_path / "x.onnx")
    assert outcome.status == "Not attempted" and "`torch_model` comes from the lesson's cells above" in outcome.message


def test_q1_default_names_are_incorrect_and_say_what_was_found(tmp_path, torch_model):
    outcome = q1.check(ex1_path=_export(torch_model, tmp_path / "a.onnx"), torch_model=torch_model)
    assert not outcome
    assert "expected 1 graph input(s) ['pixels'], found 1: ['onnx::Gemm_0']" in repr(outcome)


def test_q1_wrong_output_name_is_incorrect(tmp_path, torch_model):
    path = _export(torch_model, tmp_path / "b.onnx", input_names=["pixels"], output_names=["scores"])
    assert "should be named 'logits', found ['scores']" in repr(q1.check(ex1_path=path, torch_model=torch_model))


def test_q1_another_models_weights_are_incorrect(tmp_path, torch_model):
    other = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU()).eval()
    path = _export(other, tmp_path / "c.onnx", input_names=["pixels"], output_names=["logits"])
    assert "ORT's output differs from torch_model's" in repr(q1.check(ex1_path=path, torch_model=torch_model))


def test_q1_a_missing_file_is_incorrect(tmp_path, torch_model):
    outcome = q1.check(ex1_path=tmp_path / "none.onnx", torch_model=torch_model)
    assert "no such file exists: run your export first" in repr(outcome)


def test_q1_the_solution_is_correct(tmp_path, torch_model):
    path = _export(torch_model, tmp_path / "d.onnx", input_names=["pixels"], output_names=["logits"])
    assert q1.check(ex1_path=path, torch_model=torch_model)


# ------------------------------------------------------------------------------------------------ q2
def _conv_model():
    torch.manual_seed(1)
    return torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.Tanh(), torch.nn.Flatten(),
                               torch.nn.Linear(2 * 4 * 4, 2)).eval()


NAMES = {"input_names": ["samples"], "output_names": ["predictions"]}


@pytest.fixture(scope="module")
def conv_export(tmp_path_factory):
    """One default-exporter export of a small Conv + Tanh model with the asked-for names (exports take seconds)."""
    model, example = _conv_model(), torch.randn(2, 1, 6, 6)
    path = _export(model, tmp_path_factory.mktemp("q2") / "conv.onnx", example, dynamo=True, **NAMES)
    return model, example, path


def test_q2_accepts_another_model_on_the_default_exporter(conv_export):
    model, example, path = conv_export
    outcome = q2.check(ex2_model=model, ex2_input=example, ex2_path=path)
    assert outcome, outcome
    assert "Conv" in outcome.message and "Tanh" in outcome.message


def test_q2_rejects_a_legacy_export(tmp_path, conv_export):
    model, example, _ = conv_export
    path = _export(model, tmp_path / "legacy.onnx", example, **NAMES)
    outcome = q2.check(ex2_model=model, ex2_input=example, ex2_path=path)
    assert outcome.status == "Incorrect" and "not written by the default exporter" in outcome.message


def test_q2_rejects_the_lessons_own_architecture(tmp_path, torch_model):
    path = _export(torch_model, tmp_path / "lesson.onnx", dynamo=True, **NAMES)
    outcome = q2.check(ex2_model=torch_model, ex2_input=torch.randn(2, 4), ex2_path=path)
    assert outcome.status == "Incorrect" and "uses only Gemm, Relu" in outcome.message


def test_q2_rejects_the_names_the_exporter_chose(tmp_path, conv_export):
    model, example, path = conv_export
    renamed = onnx.load(path)
    renamed.graph.output[0].name = "linear"
    renamed.graph.node[-1].output[0] = "linear"
    onnx.save(renamed, tmp_path / "renamed.onnx")
    outcome = q2.check(ex2_model=model, ex2_input=example, ex2_path=tmp_path / "renamed.onnx")
    assert outcome.status == "Incorrect" and "should be named 'predictions', found ['linear']" in outcome.message


def test_q2_rejects_a_file_of_another_model(conv_export):
    _, example, path = conv_export
    torch.manual_seed(7)
    other = _conv_model()
    with torch.no_grad():
        other[0].weight.add_(1.0)
    outcome = q2.check(ex2_model=other, ex2_input=example, ex2_path=path)
    assert outcome.status == "Incorrect" and "for a new input of shape (2, 1, 6, 6)" in outcome.message


def test_q2_not_attempted_without_the_model():
    outcome = q2.check()
    assert outcome.status == "Not attempted" and "`ex2_model`" in outcome.message


# ------------------------------------------------------------------------------------------------ q3
def test_q3_accepts_the_versions_in_effect_at_opset_20():
    expected = {op: onnx.defs.get_schema(op, 20).since_version for op in ("Pad", "Flatten", "Cast")}
    assert expected == {"Pad": 19, "Flatten": 13, "Cast": 19}  # what the prose of the exercise relies on
    assert q3.check(ex3_since=expected)


def test_q3_rejects_the_newest_versions_and_says_why():
    newest = {op: lesson00._history(op)[-1] for op in ("Pad", "Flatten", "Cast")}
    outcome = q3.check(ex3_since=newest)
    assert outcome.status == "Incorrect" and "newest versions this onnx knows" in outcome.message


def test_q3_rejects_the_first_versions():
    outcome = q3.check(ex3_since={"Pad": 1, "Flatten": 1, "Cast": 1})
    assert outcome.status == "Incorrect" and "first versions" in outcome.message


def test_q3_names_the_one_wrong_entry_and_a_missing_one():
    outcome = q3.check(ex3_since={"Pad": 19, "Flatten": 11, "Cast": 19})
    assert outcome.status == "Incorrect" and "Flatten: 11 is not the version in effect" in outcome.message
    outcome = q3.check(ex3_since={"Pad": 19, "Flatten": 13})
    assert outcome.status == "Incorrect" and "no entry for Cast" in outcome.message


def test_q3_rejects_a_list():
    outcome = q3.check(ex3_since=[19, 13, 19])
    assert outcome.status == "Incorrect" and "should be a dict" in outcome.message


# ------------------------------------------------------------------------------------------------ q4
@pytest.fixture
def drifting(tmp_path, monkeypatch):
    monkeypatch.setattr(lesson00, "_written", {})
    return write_drifting_notebook(tmp_path / "drift.ipynb")


def _fixed(source_path, target, new_source=None, output=None, marker=""):
    notebook = nbformat.read(source_path, as_version=4)
    cell = [c for c in notebook.cells if c.cell_type == "code"][1]
    if new_source is not None:
        cell.source = marker + new_source
    if output is not None:
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=output)]
    nbformat.write(notebook, target)
    return target


def test_q4_the_drifting_notebook_really_fails_at_cell_1(drifting):
    result = lesson00.run_nbval(drifting)
    assert result.returncode == 1 and "Cell 1: Cell outputs differ" in result.stdout, result.stdout[-2000:]


def test_q4_accepts_a_rounded_total(drifting, tmp_path):
    fixed = _fixed(drifting, tmp_path / "fixed.ipynb", 'total = sum(prices)\nprint("total:", round(total, 2))')
    outcome = q4.check(ex4_cell=1, ex4_fixed=fixed)
    assert outcome, outcome


def test_q4_rejects_the_notebooks_cell_index_counting_markdown(drifting, tmp_path):
    outcome = q4.check(ex4_cell=2, ex4_fixed=tmp_path / "never_read.ipynb")
    assert outcome.status == "Incorrect" and "nbval counts code cells only" in outcome.message


def test_q4_rejects_an_ignored_cell(drifting, tmp_path):
    fixed = _fixed(drifting, tmp_path / "ignored.ipynb", 'total = sum(prices)\nprint("total:", total)',
                   marker="# NBVAL_IGNORE_OUTPUT\n")
    outcome = q4.check(ex4_cell=1, ex4_fixed=fixed)
    assert outcome.status == "Incorrect" and "no longer compared" in outcome.message


def test_q4_rejects_saving_the_unrounded_float(drifting, tmp_path):
    fixed = _fixed(drifting, tmp_path / "raw.ipynb", output="total: 0.30000000000000004\n")
    outcome = q4.check(ex4_cell=1, ex4_fixed=fixed)
    assert outcome.status == "Incorrect" and "print it rounded" in outcome.message


def test_q4_runs_nbval_on_the_fix_and_reports_a_cell_that_still_differs(drifting, tmp_path):
    fixed = _fixed(drifting, tmp_path / "wrong_round.ipynb", 'total = sum(prices)\nprint("total:", round(total, 3) + 1)')
    outcome = q4.check(ex4_cell=1, ex4_fixed=fixed)
    assert outcome.status == "Incorrect" and "strict nbval still fails" in outcome.message and "Cell 1" in outcome.message


def test_q4_asks_for_the_notebook_first(monkeypatch):
    monkeypatch.setattr(lesson00, "_written", {})
    outcome = q4.check(ex4_cell=1, ex4_fixed="x.ipynb")
    assert outcome.status == "Incorrect" and "write_drifting_notebook" in outcome.message


def test_q4_not_attempted_without_the_answers():
    assert q4.check().status == "Not attempted"

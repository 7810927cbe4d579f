"""Lesson 00's exercises: each right answer is Correct, each plausible wrong one Incorrect naming its fault."""
import warnings

import nbformat
import onnx
import pytest
import torch

from labkit.exercises import lesson00
from labkit.exercises.lesson00 import q1, q2, q3, q4, write_drifting_notebook
from wrong_answers import WrongAnswer, assert_rejected, params


def _lesson_model():
    """The lesson's Linear + ReLU (a function, not a module global: q1.check() must not find it in this scope)."""
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU()).eval()


@pytest.fixture(name="torch_model")
def _torch_model():
    return _lesson_model()


def _export(model, path, example=None, **options):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        example = torch.randn(2, 4) if example is None else example
        if options.pop("dynamo", False):
            torch.onnx.export(model, (example,), dynamo=True, verbose=False, **options).save(path)
        else:
            torch.onnx.export(model, (example,), path, dynamo=False, **options)
    return path


PIXELS = {"input_names": ["pixels"], "output_names": ["logits"]}
NAMES = {"input_names": ["samples"], "output_names": ["predictions"]}


def _conv_model(seed=1):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.Tanh(), torch.nn.Flatten(),
                               torch.nn.Linear(2 * 4 * 4, 2)).eval()


CONV_INPUT = torch.randn(2, 1, 6, 6, generator=torch.Generator().manual_seed(3))


class _ReturnsNothing(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 2, 3)

    def forward(self, x):
        self.conv(x).tanh()  # forgot `return`


class _Raises(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 2, 3)

    def forward(self, x):
        return self.conv(x).view(x.shape[0], 7)  # the wrong size: the model itself fails


def _q1(path, model=None):
    return {"ex1_path": path, "torch_model": model or _lesson_model()}


def _q2(tmp_path, model, example=CONV_INPUT, path=None, **options):
    if path is None:
        path = _export(model, tmp_path / "ex2.onnx", example, **({"dynamo": True, **NAMES} | options))
    return {"ex2_model": model, "ex2_input": example, "ex2_path": path}


def _renamed_output(tmp_path):
    values = _q2(tmp_path, _conv_model())
    renamed = onnx.load(values["ex2_path"])
    renamed.graph.output[0].name = "linear"
    renamed.graph.node[-1].output[0] = "linear"
    onnx.save(renamed, tmp_path / "renamed.onnx")
    return {**values, "ex2_path": tmp_path / "renamed.onnx"}


def _other_weights(tmp_path):
    values = _q2(tmp_path, _conv_model())
    other = _conv_model(seed=7)
    with torch.no_grad():
        other[0].weight.add_(1.0)
    return {**values, "ex2_model": other}


def _fixed(tmp_path, new_source=None, output=None, marker="", cell=1):
    """The drifting notebook written as the lesson does, and a copy with code cell `cell` changed."""
    source_path = write_drifting_notebook(tmp_path / "drift.ipynb")
    notebook = nbformat.read(source_path, as_version=4)
    code = [c for c in notebook.cells if c.cell_type == "code"][cell]
    if new_source is not None:
        code.source = marker + new_source
    if output is not None:
        code.outputs = [nbformat.v4.new_output("stream", name="stdout", text=output)]
    nbformat.write(notebook, tmp_path / "fixed.ipynb")
    return {"ex4_cell": 1, "ex4_fixed": tmp_path / "fixed.ipynb"}


TOTAL = "total = sum(prices)\n"
WRONG_ANSWERS = [
    # q1: the legacy exporter, named pixels -> logits, and torch_model's own numbers
    WrongAnswer(q1, "exported with dynamo=True", lambda t: _q1(_export(_lesson_model(), t / "a.onnx", dynamo=True,
                                                                       **PIXELS)),
                fault="this exercise asks for the legacy exporter"),
    WrongAnswer(q1, "the exporter's default names", lambda t: _q1(_export(_lesson_model(), t / "a.onnx")),
                fault="expected 1 graph input(s) ['pixels'], found 1: ['onnx::Gemm_0']"),
    WrongAnswer(q1, "output named scores as in the lesson",
                lambda t: _q1(_export(_lesson_model(), t / "a.onnx", input_names=["pixels"],
                                      output_names=["scores"])), fault="should be named ['logits'], found ['scores']"),
    WrongAnswer(q1, "a fresh Linear + ReLU (other weights)",
                lambda t: _q1(_export(torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU()).eval(),
                                      t / "a.onnx", **PIXELS)), fault="ORT's output differs from torch_model's"),
    WrongAnswer(q1, "the folder given as the path", lambda t: _q1(t), fault="which is a folder"),
    WrongAnswer(q1, "checked before exporting", lambda t: _q1(t / "none.onnx"),
                fault="no such file exists: run your export first"),
    # q2: another architecture, on the default exporter, samples -> predictions, checked on new inputs
    WrongAnswer(q2, "exported with the legacy exporter", lambda t: _q2(t, _conv_model(), dynamo=False),
                fault="this exercise asks for the default exporter"),
    WrongAnswer(q2, "the lesson's Linear + ReLU on a 3-D input (MatMul, not Gemm)",
                lambda t: _q2(t, _lesson_model(), torch.randn(2, 5, 4)), fault="like the lesson's Linear + ReLU"),
    WrongAnswer(q2, "the exporter's output name kept", _renamed_output,
                fault="should be named ['predictions'], found ['linear']"),
    WrongAnswer(q2, "the file of another model", _other_weights, fault="export ex2_model itself"),
    WrongAnswer(q2, "a forward that returns nothing", lambda t: _q2(t, _ReturnsNothing(), path=t / "never.onnx"),
                fault="forward returns None"),
    WrongAnswer(q2, "a model that raises by itself", lambda t: _q2(t, _Raises(), path=t / "never.onnx"),
                fault="your `ex2_model` itself raises RuntimeError"),
    # q3: the version in force at opset 20, computed
    WrongAnswer(q3, "the newest versions", lambda t: {"ex3_since": {op: lesson00._history(op)[-1]
                                                                     for op in ("Pad", "Flatten", "Cast")}},
                fault="newest versions this onnx knows"),
    WrongAnswer(q3, "the first versions", lambda t: {"ex3_since": {"Pad": 1, "Flatten": 1, "Cast": 1}},
                fault="first versions"),
    WrongAnswer(q3, "one entry off (Flatten 11)", lambda t: {"ex3_since": {"Pad": 19, "Flatten": 11, "Cast": 19}},
                fault="Flatten: 11 is not the version in effect at opset 20"),
    WrongAnswer(q3, "an entry left out", lambda t: {"ex3_since": {"Pad": 19, "Flatten": 13}},
                fault="no entry for Cast"),
    WrongAnswer(q3, "a list in the order asked", lambda t: {"ex3_since": [19, 13, 19]}, fault="should be a dict"),
    # q4: the cell nbval names, and a fix that keeps every cell compared and still computes the total
    WrongAnswer(q4, "the cell index counting markdown", lambda t: {**_fixed(t), "ex4_cell": 2},
                fault="nbval counts code cells only"),
    WrongAnswer(q4, "the drifting cell marked NBVAL_IGNORE_OUTPUT",
                lambda t: _fixed(t, TOTAL + 'print("total:", total)', marker="# NBVAL_IGNORE_OUTPUT\n"),
                fault="no longer compared"),
    WrongAnswer(q4, "the unrounded float saved", lambda t: _fixed(t, output="total: 0.30000000000000004\n"),
                fault="print it rounded"),
    WrongAnswer(q4, "the total typed in: print('total: 0.3')", lambda t: _fixed(t, 'print("total: 0.3")'),
                fault="never a typed-in number"),
    WrongAnswer(q4, "rounded to a whole number and 'total: 0' saved",
                lambda t: _fixed(t, TOTAL + 'print("total:", round(total))', output="total: 0\n"),
                fault="not to a whole number"),
    WrongAnswer(q4, "another cell's output changed", lambda t: _fixed(
        t, TOTAL + 'print("total:", round(total, 2))') | _changed_count(t), fault="Cell 2 still differ"),
]


def _changed_count(tmp_path):
    notebook = nbformat.read(tmp_path / "fixed.ipynb", as_version=4)
    [c for c in notebook.cells if c.cell_type == "code"][2].source = 'print("items:", len(prices) + 1)'
    nbformat.write(notebook, tmp_path / "fixed.ipynb")
    return {}


@pytest.fixture(autouse=True)
def _fresh_drift_state(monkeypatch):
    monkeypatch.setattr(lesson00, "_written", {})  # each test writes (or not) its own drifting notebook


@pytest.mark.parametrize("wrong", params(WRONG_ANSWERS))
def test_wrong_answer_is_rejected_naming_its_fault(wrong, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert_rejected(wrong, tmp_path)


# ------------------------------------------------------------------------------------------------ q1
def test_q1_the_lessons_solution_is_correct(tmp_path, torch_model):
    """The notebook's solution text (what q1.solution() shows), run where the lesson's cells would have put it."""
    kernel = {"q1": q1, "torch": torch, "torch_model": torch_model, "x": torch.randn(2, 4), "ARTIFACTS": tmp_path}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exec(q1.solution().body, kernel)
    exec("outcome = q1.check()", kernel)
    outcome = kernel["outcome"]
    assert outcome, outcome
    assert "on new inputs" in outcome.message


# ------------------------------------------------------------------------------------------------ q2
def test_q2_accepts_another_model_on_the_default_exporter(tmp_path):
    outcome = q2.check(**_q2(tmp_path, _conv_model()))
    assert outcome, outcome
    assert "Conv" in outcome.message and "Tanh" in outcome.message


# ------------------------------------------------------------------------------------------------ q3
def test_q3_accepts_the_versions_in_effect_at_opset_20():
    expected = {op: onnx.defs.get_schema(op, 20).since_version for op in ("Pad", "Flatten", "Cast")}
    assert expected == {"Pad": 19, "Flatten": 13, "Cast": 19}  # what the prose of the exercise relies on
    assert q3.check(ex3_since=expected)


# ------------------------------------------------------------------------------------------------ q4
def test_q4_the_drifting_notebook_really_fails_at_cell_1(tmp_path):
    result = lesson00.run_nbval(write_drifting_notebook(tmp_path / "drift.ipynb"))
    assert result.returncode == 1 and "Cell 1: Cell outputs differ" in result.stdout, result.stdout[-2000:]


def test_q4_accepts_a_rounded_total(tmp_path):
    outcome = q4.check(**_fixed(tmp_path, TOTAL + 'print("total:", round(total, 2))'))
    assert outcome, outcome


def test_q4_asks_for_the_notebook_first():
    outcome = q4.check(ex4_cell=1, ex4_fixed="x.ipynb")
    assert outcome.status == "Incorrect" and "write_drifting_notebook" in outcome.message



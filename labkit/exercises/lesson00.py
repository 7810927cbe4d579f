"""Exercises of Lesson 00 (setup): names on an export, another model on the default exporter, the version of
an operator that an opset-20 model uses, and a notebook test that fails and is fixed.

    from labkit.exercises.lesson00 import q1, q2, q3, q4, write_drifting_notebook
"""
from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx

from ..report import first_line, strip_ansi
from .checks import (call_learner_model, require_close, require_exporter, require_input_specs, require_inputs,
                     require_onnx_file, require_outputs, require_type, run_learner_file)
from .core import Exercise, Incorrect, bind

__all__ = ["q1", "q2", "q3", "q4", "write_drifting_notebook", "Q3_OPS", "Q3_OPSET"]

_LESSON_LAYERS = {"Linear", "ReLU", "Sequential"}  # the lesson's own model is built from these alone


def _new_inputs(example_shape: tuple, dtype) -> dict[str, "object"]:
    """Inputs the lesson never used, of the exported (fixed) shape: other values, then large ones."""
    import torch

    generator = torch.Generator().manual_seed(2)
    if not dtype.is_floating_point:
        return {"new integer values": torch.randint(0, 3, example_shape, generator=generator, dtype=dtype)}
    fresh = torch.randn(example_shape, generator=generator, dtype=dtype)
    return {"new values": fresh, "values 1000 times larger": fresh * 1000}


def _agrees_on_new_inputs(name: str, model: onnx.ModelProto, torch_name: str, torch_model, fix: str) -> str:
    """Run the learner's file in ORT and their torch model on inputs never used before; one rule for both."""
    import torch

    spec = require_input_specs(name, model, count=1)[0]
    shape = tuple(d if isinstance(d, int) else 2 for d in spec.shape)
    dtype = getattr(torch, str(spec.dtype)) if spec.dtype is not None else torch.float32
    for what, value in _new_inputs(shape, dtype).items():
        expected = call_learner_model(torch_name, torch_model, value)
        got = run_learner_file(name, model, {spec.name: value.numpy()}, f"an input of {what}")
        require_close(name, f"an input of {what} {shape}", expected[0], got[0], fix=fix, allow_nonfinite=True)
    return str(shape)


# ------------------------------------------------------------------------------------------------ q1
def _check_q1(ex1_path, torch_model) -> str:
    model = require_onnx_file("ex1_path", ex1_path)
    require_exporter("ex1_path", model, "legacy")
    require_inputs(model, ["pixels"])
    require_outputs(model, ["logits"])
    _agrees_on_new_inputs("ex1_path", model, "torch_model", torch_model,
                          "ORT's output differs from torch_model's: export torch_model itself, in eval mode")
    return "legacy exporter, input 'pixels', output 'logits', and ORT agrees with torch_model on new inputs"


# ------------------------------------------------------------------------------------------------ q2
def _layers(model) -> set[str]:
    return {type(module).__name__ for module in model.modules()}


def _check_q2(ex2_model, ex2_input, ex2_path) -> str:
    import torch

    require_type("ex2_model", ex2_model, torch.nn.Module)
    require_type("ex2_input", ex2_input, torch.Tensor)
    if _layers(ex2_model) <= _LESSON_LAYERS:
        raise Incorrect(f"ex2_model is built from {', '.join(sorted(_layers(ex2_model) - {'Sequential'}))} only, "
                        "like the lesson's Linear + ReLU (whatever the input's shape): build a different small "
                        "architecture (a Conv2d, a Tanh, a Softmax, ...)")
    call_learner_model("ex2_model", ex2_model, ex2_input)
    model = require_onnx_file("ex2_path", ex2_path)
    require_exporter("ex2_path", model, "default")
    require_inputs(model, ["samples"])
    require_outputs(model, ["predictions"])
    ops = {node.op_type for node in model.graph.node}
    shape = _agrees_on_new_inputs("ex2_path", model, "ex2_model", ex2_model,
                                  "export ex2_model itself (in eval mode), and save it to ex2_path after the export")
    return (f"the default exporter wrote {', '.join(sorted(ops))}; 'samples' -> 'predictions' agrees with "
            f"ex2_model on new inputs of shape {shape}")


# ------------------------------------------------------------------------------------------------ q3
Q3_OPS = ("Pad", "Flatten", "Cast")
Q3_OPSET = 20


def _history(op_type: str) -> list[int]:
    return sorted(s.since_version for s in onnx.defs.get_all_schemas_with_history()
                  if s.name == op_type and s.domain == "")


def _check_q3(ex3_since) -> str:
    require_type("ex3_since", ex3_since, dict)
    expected = {op: onnx.defs.get_schema(op, Q3_OPSET).since_version for op in Q3_OPS}
    missing = [op for op in Q3_OPS if op not in ex3_since]
    if missing:
        raise Incorrect(f"`ex3_since` has no entry for {', '.join(missing)}: give one opset for each of "
                        f"{', '.join(Q3_OPS)}")
    answer = {op: ex3_since[op] for op in Q3_OPS}
    if any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) for v in answer.values()):
        raise Incorrect(f"each value of `ex3_since` should be one opset number (an int), got {answer}")
    if answer == expected:
        return ", ".join(f"{op}-{v}" for op, v in expected.items()) + f": the versions an opset-{Q3_OPSET} model uses"
    newest = {op: _history(op)[-1] for op in Q3_OPS}
    first = {op: _history(op)[0] for op in Q3_OPS}
    if answer == newest:
        raise Incorrect(f"{answer} are the newest versions this onnx knows (up to opset "
                        f"{onnx.defs.onnx_opset_version()}); a model for opset {Q3_OPSET} uses the newest version "
                        f"introduced at or before {Q3_OPSET}")
    if answer == first:
        raise Incorrect(f"{answer} are the first versions of each operator; a model for opset {Q3_OPSET} uses the "
                        f"newest version introduced at or before {Q3_OPSET}")
    wrong = [op for op in Q3_OPS if answer[op] != expected[op]]
    raise Incorrect(f"{', '.join(f'{op}: {answer[op]}' for op in wrong)} is not the version in effect at opset "
                    f"{Q3_OPSET}: list the opsets at which each operator changed and take the last one <= {Q3_OPSET}")


# ------------------------------------------------------------------------------------------------ q4
_DRIFT_CELLS = [
    ("markdown", "# Shopping list\n\nPrices of the two items, their total, and how many there are.", None),
    ("code", "prices = [0.1, 0.2]", None),
    ("code", 'total = sum(prices)\nprint("total:", total)', "total: 0.3\n"),
    ("markdown", "And the count:", None),
    ("code", 'print("items:", len(prices))', "items: 2\n"),
]
_DRIFT_INDEX = 1  # nbval numbers code cells only: the total is its "Cell 1"
_UNROUNDED = re.compile(r"(?<![\w.])-?\d+\.\d{7,}(?![\w.])")
_MARKERS = ("NBVAL_IGNORE_OUTPUT", "NBVAL_SKIP", "NBVAL_RAISES_EXCEPTION")
_written: dict[str, Path] = {}


def write_drifting_notebook(path: str | Path) -> Path:
    """Write a small notebook with one saved output that a fresh run no longer prints (for exercise 4)."""
    import nbformat

    v4, cells, count = nbformat.v4, [], 0
    for kind, source, output in _DRIFT_CELLS:
        if kind == "markdown":
            cells.append(v4.new_markdown_cell(source))
            continue
        count += 1
        outputs = [v4.new_output("stream", name="stdout", text=output)] if output else []
        cells.append(v4.new_code_cell(source, execution_count=count, outputs=outputs))
    notebook = v4.new_notebook(cells=cells)
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = Path(path)
    nbformat.write(notebook, path)
    _written["path"] = path
    return path


def _inner_env() -> dict[str, str]:
    """The environment for an inner pytest run (labkit.childenv decides it): no outer PYTEST_*, CI or COLUMNS."""
    from ..childenv import clean_env

    return clean_env()


def run_nbval(notebook: str | Path, timeout: int = 120) -> subprocess.CompletedProcess:
    """`pytest --nbval` on one notebook, in a scratch folder with an empty pytest.ini (no project settings)."""
    with tempfile.TemporaryDirectory() as folder:
        target = Path(folder) / "notebook.ipynb"
        target.write_bytes(Path(notebook).read_bytes())
        (Path(folder) / "pytest.ini").write_text("[pytest]\n")
        return subprocess.run([sys.executable, "-m", "pytest", "--nbval", "--nbval-current-env", "-p",
                               "no:cacheprovider", "-q", target.name], cwd=folder, capture_output=True, text=True,
                              env=_inner_env(), timeout=timeout)


_OTHER_PRICES = ([0.25, 0.1], [1.15, 2.2, 0.7])  # prices the notebook never had: the total must follow them


def _printed_total(text: str) -> float | None:
    found = re.search(r"total:?\s*(-?\d+(?:\.\d+)?)", text)
    return float(found.group(1)) if found else None


def _require_computed_total(source: str) -> None:
    """Run the fixed total cell on other prices: a hard-coded '0.3' or a whole-number rounding shows up here."""
    import contextlib
    import io

    for prices in _OTHER_PRICES:
        printed = io.StringIO()
        try:
            with contextlib.redirect_stdout(printed):
                exec(compile(source, "<your total cell>", "exec"), {"prices": list(prices)})
        except Exception as error:
            raise Incorrect(f"your total cell raises {type(error).__name__} when prices = {prices}: "
                            f"{first_line(error)}") from None
        value, true = _printed_total(printed.getvalue()), sum(prices)
        if value is None or abs(value - true) > 0.005 + 1e-9 or _UNROUNDED.search(printed.getvalue()):
            raise Incorrect(f"with prices = {prices} your total cell prints {printed.getvalue().strip()!r}, but "
                            f"their total is {true:.2f}: print the computed total rounded to cents "
                            "(round(total, 2)), never a typed-in number")


def _check_q4(ex4_cell, ex4_fixed) -> str:
    import nbformat

    if "path" not in _written or not _written["path"].is_file():
        raise Incorrect("run the cell that calls write_drifting_notebook(...) first: it writes the notebook")
    require_type("ex4_cell", ex4_cell, int)
    if ex4_cell != _DRIFT_INDEX:
        code = [c for kind, c, _ in _DRIFT_CELLS if kind == "code"]
        shown = code[ex4_cell].splitlines()[-1] if 0 <= ex4_cell < len(code) else None
        where = f" (it runs `{shown}`)" if shown else ""
        raise Incorrect(f"nbval does not report Cell {ex4_cell}{where}: read the 'Cell N: Cell outputs differ' "
                        "line of its report; nbval counts code cells only, from 0")
    require_type("ex4_fixed", ex4_fixed, str, Path)
    fixed_path = Path(ex4_fixed)
    if not fixed_path.is_file():
        raise Incorrect(f"`ex4_fixed` is '{fixed_path.name}', but no such file exists: write the fixed notebook")
    if fixed_path.resolve() == _written["path"].resolve():
        raise Incorrect("`ex4_fixed` is the notebook write_drifting_notebook wrote: save your fix as a new file")
    try:
        cells = [c for c in nbformat.read(fixed_path, as_version=4).cells if c.cell_type == "code"]
    except Exception as error:
        raise Incorrect(f"`ex4_fixed` is not a notebook nbformat can read: {first_line(error)}") from None
    if len(cells) != 3 or "total" not in cells[_DRIFT_INDEX].source:
        raise Incorrect(f"the fixed notebook should keep the 3 code cells, the total in Cell {_DRIFT_INDEX}; "
                        f"it has {len(cells)} code cell(s)")
    for index, cell in enumerate(cells):
        tags = cell.get("metadata", {}).get("tags", [])
        if any(m in cell.source for m in _MARKERS) or any(t.startswith("nbval-") for t in tags):
            raise Incorrect(f"Cell {index} is no longer compared (an nbval marker): it would pass but test nothing; "
                            "print a rounded total instead")
    saved = "".join(o.get("text", "") for o in cells[_DRIFT_INDEX].get("outputs", []))
    if "total" not in saved or _UNROUNDED.search(saved):
        raise Incorrect(f"Cell {_DRIFT_INDEX} saves {saved.strip()!r}: a person reads this total, so print it "
                        "rounded (e.g. round(total, 2)) and keep 'total: 0.3' as its saved output")
    saved_total = _printed_total(saved)
    if saved_total is None or abs(saved_total - 0.3) > 1e-9:
        raise Incorrect(f"Cell {_DRIFT_INDEX} saves {saved.strip()!r}, but 0.1 + 0.2 is 0.3 to two decimals: "
                        "round to cents (round(total, 2)), not to a whole number, and save 'total: 0.3'")
    _require_computed_total(cells[_DRIFT_INDEX].source)
    result = run_nbval(fixed_path)
    if result.returncode != 0:
        report = strip_ansi(result.stdout)
        failing = re.findall(r"Cell (\d+): Cell outputs differ", report)
        where = f"Cell {', '.join(failing)} still differ(s)" if failing else first_line(report or result.stderr)
        raise Incorrect(f"strict nbval still fails on '{fixed_path.name}': {where}")
    return (f"Cell {_DRIFT_INDEX} drifted; your fix prints the total of other prices right too and passes "
            "strict nbval with every cell still compared")


q1, q2, q3, q4 = bind("00_setup", [
    Exercise(
        title="Your names on the legacy exporter",
        kind="warm-up",
        answers=["ex1_path"],
        context=["torch_model"],
        check=_check_q1,
        hints=["torch.onnx.export takes input_names=[...] and output_names=[...] lists.",
               "torch.onnx.export(torch_model, (x,), ex1_path, dynamo=False, input_names=['pixels'], "
               "output_names=['logits']) with ex1_path = ARTIFACTS / 'ex1.onnx'."],
    ),
    Exercise(
        title="Another model on the default exporter",
        answers=["ex2_model", "ex2_input", "ex2_path"],
        check=_check_q2,
        hints=["Any small nn.Module that is not just Linear + ReLU works: e.g. nn.Sequential(nn.Conv2d(1, 4, 3), "
               "nn.Tanh(), nn.Flatten(), nn.Linear(4 * 6 * 6, 2)) with an input of shape (2, 1, 8, 8).",
               "The default exporter (dynamo=True) takes input_names= and output_names= like the legacy one, "
               "and returns an ONNXProgram: call .save(ex2_path) on it.",
               "onnx_program = torch.onnx.export(ex2_model.eval(), (ex2_input,), dynamo=True, verbose=False, "
               "input_names=['samples'], output_names=['predictions']); onnx_program.save(ex2_path)"],
    ),
    Exercise(
        title="The version an opset-20 model uses",
        kind="warm-up",
        answers=["ex3_since"],
        check=_check_q3,
        hints=["op_versions(op) from section 2 lists the opsets at which an operator got a new version.",
               "A model for opset 20 uses, for each operator, the newest version introduced at or before 20.",
               "ex3_since = {op: max(v for v in op_versions(op) if v <= 20) for op in ['Pad', 'Flatten', 'Cast']} "
               "(onnx.defs.get_schema(op, 20).since_version gives the same)."],
    ),
    Exercise(
        title="A notebook test that drifts",
        answers=["ex4_cell", "ex4_fixed"],
        check=_check_q4,
        hints=["Run pytest --nbval on the notebook as section 5 does (cwd=q4_path.parent, env=inner_env) and read "
               "the 'Cell N: Cell outputs differ' line; re.search(r'Cell (\\d+): Cell outputs differ', report) "
               "finds it.",
               "nbformat.read(q4_path, as_version=4) gives the notebook; change the source of the drifting code "
               "cell so that it prints the total rounded, then nbformat.write(notebook, ex4_fixed).",
               "print('total:', round(total, 2)) prints 'total: 0.3', the output already saved, so the saved "
               "output can stay as it is."],
    ),
])

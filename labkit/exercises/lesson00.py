"""Exercises of Lesson 00 (setup): names on an export, another model on the default exporter, the version of
an operator that an opset-20 model uses, and a notebook test that fails and is fixed.

    from labkit.exercises.lesson00 import q1, q2, q3, q4, write_drifting_notebook
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx

from ..compare import compare_with_torch
from ..report import first_line, strip_ansi
from .checks import require_inputs, require_onnx_file, require_type
from .core import Exercise, Incorrect, bind

__all__ = ["q1", "q2", "q3", "q4", "write_drifting_notebook", "Q3_OPS", "Q3_OPSET"]

_LESSON_OPS = {"Gemm", "Relu"}  # what the lesson's own model exports to
_DEFAULT_EXPORTER_KEY = "pkg.torch.onnx.name_scopes"  # node metadata only the default exporter writes


def _require_outputs(model: onnx.ModelProto, expected: list[str], fix: str) -> None:
    found = [o.name for o in model.graph.output]
    if found != expected:
        raise Incorrect(f"the output should be named {expected[0]!r}, found {found}: {fix}")


# ------------------------------------------------------------------------------------------------ q1
def _check_q1(ex1_path, torch_model) -> str:
    import torch

    model = require_onnx_file("ex1_path", ex1_path)
    require_inputs(model, ["pixels"])
    _require_outputs(model, ["logits"], "use output_names=['logits']")
    result = compare_with_torch(torch_model, model, torch.randn(2, 4), backends=["onnxruntime"])
    if not result:
        raise Incorrect("ORT's output differs from torch_model's: export torch_model itself, in eval mode")
    return "input 'pixels', output 'logits', and ORT agrees with torch_model"


# ------------------------------------------------------------------------------------------------ q2
def _fresh_like(example):
    """A new input of the example's shape and dtype, different values: the export must not have baked them in."""
    import torch

    generator = torch.Generator().manual_seed(2)
    if example.dtype.is_floating_point:
        return torch.randn(example.shape, generator=generator, dtype=example.dtype)
    high = int(example.max()) + 1 if example.numel() else 1
    return torch.randint(0, max(high, 1), example.shape, generator=generator, dtype=example.dtype)


def _check_q2(ex2_model, ex2_input, ex2_path) -> str:
    import torch

    require_type("ex2_model", ex2_model, torch.nn.Module)
    require_type("ex2_input", ex2_input, torch.Tensor)
    model = require_onnx_file("ex2_path", ex2_path)
    if not any(p.key == _DEFAULT_EXPORTER_KEY for node in model.graph.node for p in node.metadata_props):
        raise Incorrect(f"'{Path(ex2_path).name}' was not written by the default exporter (its nodes carry no "
                        "module scopes): export with dynamo=True and save the ONNXProgram it returns")
    require_inputs(model, ["samples"])
    _require_outputs(model, ["predictions"], "pass output_names=['predictions'] to torch.onnx.export")
    ops = {node.op_type for node in model.graph.node}
    if ops <= _LESSON_OPS:
        raise Incorrect(f"the graph uses only {', '.join(sorted(ops))}, like the lesson's Linear + ReLU: "
                        "build a different small architecture (a Conv2d, a Tanh, a Softmax, ...)")
    fresh = _fresh_like(ex2_input)
    result = compare_with_torch(ex2_model, model, fresh, backends=["onnxruntime"])
    if not result:
        raise Incorrect(f"for a new input of shape {tuple(fresh.shape)}, ORT's output differs from ex2_model's: "
                        "export ex2_model itself (in eval mode), and save it to ex2_path after the export")
    return (f"the default exporter wrote {', '.join(sorted(ops))}; 'samples' -> 'predictions' agrees with "
            f"ex2_model on a new input of shape {tuple(fresh.shape)}")


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
    """The environment for an inner pytest run: without the outer run's PYTEST_* settings (e.g. PYTEST_ADDOPTS)."""
    try:
        from ..notebook import clean_env
    except ImportError:
        return {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
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
    result = run_nbval(fixed_path)
    if result.returncode != 0:
        report = strip_ansi(result.stdout)
        failing = re.findall(r"Cell (\d+): Cell outputs differ", report)
        where = f"Cell {', '.join(failing)} still differ(s)" if failing else first_line(report or result.stderr)
        raise Incorrect(f"strict nbval still fails on '{fixed_path.name}': {where}")
    return f"Cell {_DRIFT_INDEX} drifted; your fix passes strict nbval with every cell still compared"


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

"""Exercises of Lesson 00 (setup): one exercise that shows the mechanism."""
from __future__ import annotations

import torch

import labkit

from .checks import require_inputs, require_onnx_file
from .core import Exercise, Incorrect, bind

__all__ = ["q1"]


def _check_q1(ex1_path, torch_model) -> str:
    model = require_onnx_file("ex1_path", ex1_path)
    require_inputs(model, ["pixels"])
    outputs = [o.name for o in model.graph.output]
    if outputs != ["logits"]:
        raise Incorrect(f"the output should be named 'logits', found {outputs}: use output_names=['logits']")
    result = labkit.compare_with_torch(torch_model, model, torch.randn(2, 4), backends=["onnxruntime"])
    if not result:
        raise Incorrect("ORT's output differs from torch_model's: export torch_model itself, in eval mode")
    return "input 'pixels', output 'logits', and ORT agrees with torch_model"


[q1] = bind('00_setup', [
    Exercise(
        title='TODO title',
        answers=['ex1_path'],
        context=['torch_model'],
        check=_check_q1,
        hints=["torch.onnx.export takes input_names=[...] and output_names=[...] lists.",
           "Pass dynamo=False, and the path to write as the third argument."],
    ),
])

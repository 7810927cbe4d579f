"""Lesson 08 exercises: decode-step exports of the tiny language model, each run in ONNX Runtime and checked.

    from labkit.exercises.lesson08 import q1, q2, q3

Every check runs the learner's saved file in ONNX Runtime on prompts, batch sizes and cache lengths
the lesson never used, and compares with the torch model the lesson defined (a context variable):
generated tokens for a decode loop, logits and cache tensors for single steps. None reads source text.
"""
from __future__ import annotations

import numpy as np
import onnx

from ..onnxfile import TensorSpec, input_specs, output_specs
from ..tinylm import encode
from .checks import learner_session, require_close, require_onnx_file, run_learner_file
from .core import Exercise, Incorrect, bind

__all__ = ["q1", "q2", "q3"]

# Prompts of one length per batch (the model takes no padding), none of them used in the lesson.
_PROMPTS_Q1 = ["Graphs run fast", "Keys and values", "What is a cache"]      # batch 3, 15 bytes
_PROMPTS_Q2 = ["Every layer", "has a cache", "of its own.", "Stack them!"]  # batch 4, 11 bytes
_STEPS = 12


def _torch_run(model, input_ids, past=None):
    """(logits, present) of the torch model, without grad."""
    import torch

    with torch.no_grad():
        return model(torch.as_tensor(input_ids), past)


def _specs_by_name(model: onnx.ModelProto) -> tuple[dict[str, TensorSpec], dict[str, TensorSpec]]:
    return {s.name: s for s in input_specs(model)}, {s.name: s for s in output_specs(model)}


def _require_names(name: str, found: dict, expected: list[str], side: str, fix: str) -> None:
    if sorted(found) != sorted(expected):
        raise Incorrect(f"`{name}` has {side} {sorted(found)}; expected {expected}: {fix}")


def _require_dynamic(name: str, spec: TensorSpec, axes: dict[int, str], fix: str) -> None:
    for axis, label in axes.items():
        size = spec.shape[axis] if axis < len(spec.shape) else None
        if isinstance(size, int):
            raise Incorrect(f"`{name}`: input '{spec.name}' is saved as {spec.shape_text()}, axis {axis} ({label}) "
                            f"is fixed to {size}: {fix}")


def _per_layer_names(n_layers: int) -> tuple[list[str], list[str]]:
    past = [f"past_{kind}_{i}" for i in range(n_layers) for kind in ("key", "value")]
    return past, [p.replace("past", "present") for p in past]


def _greedy_tokens(name, session, model, prompts, to_feeds, from_outputs, output_names, fix: str) -> str:
    """Prefill in torch, then _STEPS greedy decode steps in ORT and in torch; raise Incorrect at the first difference."""
    ids = np.array([encode(p) for p in prompts])
    logits, torch_past = _torch_run(model, ids)
    ort_past = torch_past
    next_torch = next_ort = logits[:, -1:].argmax(-1).numpy()
    for step in range(_STEPS):
        what = f"decode step {step + 1} of a batch of {len(prompts)} prompts (cache length {ids.shape[1] + step})"
        outputs = dict(zip(output_names, run_learner_file(name, session, to_feeds(next_ort, ort_past), what)))
        logits, torch_past = _torch_run(model, next_torch, torch_past)
        if step == 0:
            require_close(name, what, logits.numpy(), outputs["logits"], fix=fix)
        ort_past = from_outputs(outputs)
        next_torch = logits[:, -1:].argmax(-1).numpy()
        next_ort = np.asarray(outputs["logits"])[:, -1:].argmax(-1)
        if not np.array_equal(next_ort, next_torch):
            raise Incorrect(f"`{name}`: generated tokens differ from torch at {what}: the cache your file returns "
                            "does not continue the way the model's does (check the order of keys and values)")
    return f"{_STEPS} greedy tokens equal to torch's for a batch of {len(prompts)} new prompts"


# ------------------------------------------------------------------------------------------------ q1
def _check_q1(ex1_path, mqa_model) -> str:
    model = require_onnx_file("ex1_path", ex1_path)
    n_layers = len(mqa_model.blocks)
    past_names, present_names = _per_layer_names(n_layers)
    inputs, outputs = _specs_by_name(model)
    _require_names("ex1_path", inputs, ["input_ids", *past_names], "inputs",
                   "export the decode step (a token and the cache), with input_names as in section 2")
    _require_names("ex1_path", outputs, ["logits", *present_names], "outputs", "name them with output_names")
    heads = inputs["past_key_0"].shape[1]
    if heads != 1:
        raise Incorrect(f"`ex1_path`'s past_key_0 is {inputs['past_key_0'].shape_text()}: {heads} key/value heads "
                        "where multi-query has 1. Export `mqa_model` (and its cache), not `torch_model`")
    _require_dynamic("ex1_path", inputs["input_ids"], {0: "batch"}, "give input_ids a Dim on axis 0")
    for cache in past_names:
        _require_dynamic("ex1_path", inputs[cache], {0: "batch", 2: "past"},
                         "every cache tensor needs a Dim on axes 0 and 2, in dynamic_shapes['past']")
    session = learner_session("ex1_path", model)

    def to_feeds(token, past):
        feeds = {"input_ids": np.asarray(token)}
        for i, (key, value) in enumerate(past):
            feeds[f"past_key_{i}"], feeds[f"past_value_{i}"] = np.asarray(key), np.asarray(value)
        return feeds

    def from_outputs(named):
        return tuple((named[f"present_key_{i}"], named[f"present_value_{i}"]) for i in range(n_layers))

    detail = _greedy_tokens("ex1_path", session, mqa_model, _PROMPTS_Q1, to_feeds, from_outputs,
                            ["logits", *present_names],
                            fix="the file computes another function than `mqa_model`: export that model itself")
    return f"one key/value head per layer; {detail}"


# ------------------------------------------------------------------------------------------------ q2
def _check_q2(ex2_path, torch_model) -> str:
    model = require_onnx_file("ex2_path", ex2_path)
    inputs, outputs = _specs_by_name(model)
    _require_names("ex2_path", inputs, ["input_ids", "past"], "inputs",
                   "wrap the model so that forward takes (input_ids, past) with past ONE stacked tensor")
    _require_names("ex2_path", outputs, ["logits", "present"], "outputs",
                   "return (logits, present) with present stacked the same way")
    block = torch_model.blocks[0]
    layout = (len(torch_model.blocks), 2, "batch", block.n_kv_heads, "past", block.head_dim)
    spec = inputs["past"]
    fixed = {0: layout[0], 1: 2, 3: layout[3], 5: layout[5]}
    if len(spec.shape) != 6 or any(spec.shape[a] != size for a, size in fixed.items()):
        raise Incorrect(f"`ex2_path`'s input 'past' is saved as {spec.shape_text()}; the layout asked for is "
                        f"(layers, 2, batch, kv_heads, past, head_dim) = {layout}: stack the layers first, then "
                        "key/value, and keep each tensor's own (batch, kv_heads, past, head_dim) order")
    _require_dynamic("ex2_path", spec, {2: "batch", 4: "past"}, "give 'past' a Dim on axes 2 and 4")
    session = learner_session("ex2_path", model)

    def to_feeds(token, past):
        stacked = np.stack([np.stack([np.asarray(k), np.asarray(v)]) for k, v in past])
        return {"input_ids": np.asarray(token), "past": stacked}

    def from_outputs(named):
        return tuple((layer[0], layer[1]) for layer in np.asarray(named["present"]))

    return "the cache as one tensor " + str(layout) + "; " + _greedy_tokens(
        "ex2_path", session, torch_model, _PROMPTS_Q2, to_feeds, from_outputs, ["logits", "present"],
        fix="with the cache stacked as asked, the logits differ from torch's: index 0 of axis 1 must hold the keys "
            "and index 1 the values, one entry per layer on axis 0")


# ------------------------------------------------------------------------------------------------ q3
def _check_q3(ex3_path, torch_model) -> str:
    model = require_onnx_file("ex3_path", ex3_path)
    n_layers = len(torch_model.blocks)
    past_names, present_names = _per_layer_names(n_layers)
    inputs, outputs = _specs_by_name(model)
    _require_names("ex3_path", inputs, ["input_ids", *past_names], "inputs",
                   "export a step that takes tokens and the cache, with input_names as in section 2")
    _require_names("ex3_path", outputs, ["logits", *present_names], "outputs", "name them with output_names")
    _require_dynamic("ex3_path", inputs["input_ids"], {0: "batch", 1: "seq"},
                     "give input_ids a Dim on axes 0 and 1 and export with an example of 2 or more tokens "
                     "(an example of 1 token is fixed to 1 by the 0/1 rule)")
    for cache in past_names:
        _require_dynamic("ex3_path", inputs[cache], {0: "batch", 2: "past"},
                         "every cache tensor needs a Dim on axes 0 and 2")
    session = learner_session("ex3_path", model)
    rng = np.random.default_rng(8)
    text = np.array(encode("Chunks of a prompt go in together, and the cache grows by each chunk."))
    for batch, cached, chunk in [(3, 6, 5), (2, 17, 2), (1, 9, 7)]:
        ids = np.stack([np.roll(text, int(rng.integers(0, 40)))[: cached + chunk] for _ in range(batch)])
        _, past = _torch_run(torch_model, ids[:, :cached])
        logits, present = _torch_run(torch_model, ids[:, cached:], past)
        feeds = {"input_ids": ids[:, cached:]}
        for i, (key, value) in enumerate(past):
            feeds[f"past_key_{i}"], feeds[f"past_value_{i}"] = key.numpy(), value.numpy()
        what = f"a chunk of {chunk} tokens onto a cache of {cached} (batch {batch})"
        got = dict(zip(["logits", *present_names], run_learner_file("ex3_path", session, feeds, what)))
        require_close("ex3_path", what, logits.numpy(), got["logits"],
                      fix="each new token must attend to the whole cache and to the new tokens before it")
        for i, (key, value) in enumerate(present):
            require_close("ex3_path", f"{what}, present_key_{i}", key.numpy(), got[f"present_key_{i}"])
            require_close("ex3_path", f"{what}, present_value_{i}", value.numpy(), got[f"present_value_{i}"])
    return "chunks of 5, 2 and 7 tokens onto caches of 6, 17 and 9 match torch (logits and cache)"


q1, q2, q3 = bind("08_tiny_language_model", [
    Exercise(
        title="One key/value head",
        kind="transfer",
        answers=["ex1_path"],
        context=["mqa_model"],
        check=_check_q1,
        hints=[
            "Run mqa_model on a prompt and print the shape of its cache: past[0][0].shape. Which axis is the "
            "number of key/value heads, and is anything about dynamic_shapes different from section 2?",
            "Nothing in the export call changes except the model and its example cache: the cache tensors are "
            "(batch, 1, past, head_dim), and enable_gqa=True lets all four query heads read the one head.",
            "with torch.no_grad(): _, mqa_past = mqa_model(prefill_ids); then section 2's decode export with "
            "mqa_model and (example_token, mqa_past), saved to ex1_path.",
        ],
    ),
    Exercise(
        title="The whole cache in one tensor",
        kind="transfer",
        answers=["ex2_path"],
        context=["torch_model"],
        check=_check_q2,
        hints=[
            "Write a small nn.Module that holds torch_model. Its forward takes (input_ids, past) where past is "
            "one tensor; it rebuilds the tuple of (key, value) pairs, calls the model, and stacks present.",
            "past.unbind(0) gives one tensor per layer, shape (2, batch, kv_heads, past, head_dim); its [0] is the "
            "key, [1] the value. torch.stack([torch.stack(pair) for pair in present]) builds the output.",
            "dynamic_shapes={'input_ids': {0: batch}, 'past': {2: batch, 4: past_len}} with "
            "input_names=['input_ids', 'past'], output_names=['logits', 'present'].",
        ],
    ),
    Exercise(
        title="Several tokens per step",
        kind="transfer",
        answers=["ex3_path"],
        context=["torch_model"],
        check=_check_q3,
        hints=[
            "The model already handles several new tokens with a cache (the mask compares positions). What "
            "fixes the decode file's seq axis to 1?",
            "Two things: section 2 gave input_ids no Dim on axis 1, and its example has 1 token, which the "
            "0/1 rule would fix even with a Dim (Lesson 07). Give the axis a Dim and an example of 2+ tokens.",
            "torch.onnx.export(torch_model, (prefill_ids[:, -3:], example_past), ex3_path, ..., dynamic_shapes="
            "{'input_ids': {0: batch, 1: Dim('chunk', min=1, max=64)}, 'past': cache_shapes}).",
        ],
    ),
])

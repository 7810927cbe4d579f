"""Lesson 08 exercises: the right exports are Correct; plausible wrong ones are Incorrect with a message naming the fault."""
from __future__ import annotations

import atexit
import shutil
import tempfile
import warnings
from functools import lru_cache
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.export import Dim

from labkit import tinylm
from labkit.exercises.lesson08 import q1, q2, q3
from labkit.train_tinylm import Block, TinyLM
from wrong_answers import WrongAnswer, assert_rejected, params

pytestmark = pytest.mark.filterwarnings("ignore:# The axis name")

BATCH, PAST = Dim("batch", min=1, max=64), Dim("past", min=1, max=255)
PAST_NAMES = ["past_key_0", "past_value_0", "past_key_1", "past_value_1"]
PRESENT_NAMES = [n.replace("past", "present") for n in PAST_NAMES]
CACHE_SHAPES = tuple(({0: BATCH, 2: PAST}, {0: BATCH, 2: PAST}) for _ in range(2))
PROMPTS = torch.tensor([tinylm.encode("Export a model"), tinylm.encode("Run the graph!")])


def _model(seed: int | None = None, **changes) -> TinyLM:
    config, state = tinylm.load_weights()
    if seed is None:
        model = TinyLM(**config)
        model.load_state_dict(state)
    else:
        torch.manual_seed(seed)
        model = TinyLM(**(config | changes))
    return model.eval()


def _cache(model, ids=PROMPTS):
    with torch.no_grad():
        return model(ids)[1]


def _export(model, args, path, dynamic_shapes, names=("input_ids", *PAST_NAMES), outputs=("logits", *PRESENT_NAMES)):
    torch.onnx.export(model, args, path, dynamo=True, verbose=False, external_data=False, input_names=list(names),
                      output_names=list(outputs), dynamic_shapes=dynamic_shapes)
    return path


@lru_cache(maxsize=None)
def _models() -> dict:
    return {"torch_model": _model(), "mqa_model": _model(seed=1, n_kv_heads=1)}


@lru_cache(maxsize=None)
def _files() -> dict:
    """Every file the right and wrong answers need, exported once per test session."""
    folder = Path(tempfile.mkdtemp(prefix="lesson08-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    models = _models()
    torch_model, mqa_model = models["torch_model"], models["mqa_model"]
    token = PROMPTS[:, -1:]
    past, mqa_past = _cache(torch_model), _cache(mqa_model)
    out = {}
    decode_shapes = {"input_ids": {0: BATCH}, "past": CACHE_SHAPES}
    out["decode"] = _export(torch_model, (token, past), folder / "decode.onnx", decode_shapes)
    out["mqa"] = _export(mqa_model, (token, mqa_past), folder / "mqa.onnx", decode_shapes)
    out["mqa_fixed_batch"] = _export(mqa_model, (token, mqa_past), folder / "mqa_fixed_batch.onnx",
                                     {"input_ids": None, "past": tuple(({2: PAST}, {2: PAST}) for _ in range(2))})
    other = _model(seed=2, n_kv_heads=1)
    out["mqa_other_weights"] = _export(other, (token, _cache(other)), folder / "mqa_other.onnx", decode_shapes)
    out["prefill"] = _export(torch_model, (PROMPTS,), folder / "prefill.onnx",
                             {"input_ids": {0: BATCH, 1: Dim("seq", min=1, max=256)}}, names=("input_ids",))
    for name, wrapper, shapes in [
        ("stacked", StackedCache(torch_model), {2: BATCH, 4: PAST}),
        ("stacked_batch_first", BatchFirstCache(torch_model), {0: BATCH, 4: PAST}),
        ("stacked_swapped", SwappedCache(torch_model), {2: BATCH, 4: PAST}),
        ("stacked_fixed_past", StackedCache(torch_model), {2: BATCH}),
    ]:
        stacked = wrapper.stack(past)
        out[name] = _export(wrapper.eval(), (token, stacked), folder / f"{name}.onnx",
                            {"input_ids": {0: BATCH}, "past": shapes}, names=("input_ids", "past"),
                            outputs=("logits", "present"))
    chunk_shapes = {"input_ids": {0: BATCH, 1: Dim("chunk", min=1, max=64)}, "past": CACHE_SHAPES}
    out["chunks"] = _export(torch_model, (PROMPTS[:, -3:], past), folder / "chunks.onnx", chunk_shapes)
    out["chunks_example_1"] = _export(torch_model, (token, past), folder / "chunks_example_1.onnx", chunk_shapes)
    top_left = _model()
    for block in top_left.blocks:
        block.__class__ = TopLeftCausalBlock
    out["chunks_top_left"] = _export(top_left, (PROMPTS[:, -3:], past), folder / "chunks_top_left.onnx", chunk_shapes)
    return out


# ------------------------------------------------------------------------ the learners' models
class StackedCache(nn.Module):
    """The right answer to q2: the cache as (layers, 2, batch, kv_heads, past, head_dim)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    @staticmethod
    def stack(past):
        return torch.stack([torch.stack(pair) for pair in past])

    def unstack(self, past):
        return tuple((layer[0], layer[1]) for layer in past.unbind(0))

    def forward(self, input_ids, past):
        logits, present = self.model(input_ids, self.unstack(past))
        return logits, self.stack(present)


class BatchFirstCache(StackedCache):
    """A plausible wrong layout: batch first, (batch, layers, 2, kv_heads, past, head_dim)."""

    @staticmethod
    def stack(past):
        return StackedCache.stack(past).permute(2, 0, 1, 3, 4, 5)

    def unstack(self, past):
        return super().unstack(past.permute(1, 2, 0, 3, 4, 5))


class SwappedCache(StackedCache):
    """A plausible wrong layout: values at index 0 and keys at index 1."""

    @staticmethod
    def stack(past):
        return torch.stack([torch.stack((value, key)) for key, value in past])

    def unstack(self, past):
        return tuple((layer[1], layer[0]) for layer in past.unbind(0))


class TopLeftCausalBlock(Block):
    """A plausible wrong attention for chunks: `is_causal=True` aligns the triangle to the cache's start."""

    def attend(self, q, k, v, mask):
        return F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)


@pytest.fixture(scope="module")
def models():
    return _models()


@pytest.fixture(scope="module")
def files():
    return _files()


# ------------------------------------------------------------------------ right answers
def test_q1_accepts_the_multi_query_decode_step(models, files):
    outcome = q1.check(ex1_path=files["mqa"], mqa_model=models["mqa_model"])
    assert outcome, outcome.message
    assert "12 greedy tokens equal" in outcome.message


def test_q2_accepts_the_stacked_cache(models, files):
    outcome = q2.check(ex2_path=files["stacked"], torch_model=models["torch_model"])
    assert outcome, outcome.message


def test_q3_accepts_a_step_with_a_dynamic_number_of_tokens(models, files):
    outcome = q3.check(ex3_path=files["chunks"], torch_model=models["torch_model"])
    assert outcome, outcome.message


def test_each_exercise_is_not_attempted_without_an_answer(models):
    assert q1.check(mqa_model=models["mqa_model"]).status == "Not attempted"
    assert q2.check(torch_model=models["torch_model"]).status == "Not attempted"
    assert q3.check(torch_model=models["torch_model"]).status == "Not attempted"


def test_the_single_token_example_really_fixes_the_chunk_axis(files):
    """The 0/1 rule the q3 hints rely on: an example of 1 token saves the axis as 1, with no error."""
    from labkit import input_specs

    assert input_specs(files["chunks_example_1"])[0].shape[1] == 1


# ------------------------------------------------------------------------ wrong answers as data
def _with(exercise_var, file_key, context="torch_model"):
    """make(tmp_path) for a wrong answer: one of the exported files, and the lesson's model it is checked against."""
    return lambda tmp_path: {exercise_var: _files()[file_key], context: _models()[context]}


WRONG_ANSWERS = [
    WrongAnswer(q1, "exported torch_model (two KV heads)", _with("ex1_path", "decode", "mqa_model"),
                fault="2 key/value heads"),
    WrongAnswer(q1, "no Dim for the batch", _with("ex1_path", "mqa_fixed_batch", "mqa_model"),
                fault="axis 0 (batch) is fixed"),
    WrongAnswer(q1, "another model's weights", _with("ex1_path", "mqa_other_weights", "mqa_model"),
                fault="another function than `mqa_model`"),
    WrongAnswer(q1, "the prefill graph", _with("ex1_path", "prefill", "mqa_model"),
                fault="export the decode step"),
    WrongAnswer(q2, "the per-layer cache of section 2", _with("ex2_path", "decode"),
                fault="past ONE stacked tensor"),
    WrongAnswer(q2, "batch first", _with("ex2_path", "stacked_batch_first"),
                fault="stack the layers first"),
    WrongAnswer(q2, "values before keys", _with("ex2_path", "stacked_swapped"),
                fault="index 0 of axis 1 must hold the keys"),
    WrongAnswer(q2, "no Dim for the cache length", _with("ex2_path", "stacked_fixed_past"),
                fault="axis 4 (past) is fixed"),
    WrongAnswer(q3, "the one-token decode graph", _with("ex3_path", "decode"),
                fault="axis 1 (seq) is fixed to 1"),
    WrongAnswer(q3, "a Dim but an example of one token", _with("ex3_path", "chunks_example_1"),
                fault="0/1 rule"),
    WrongAnswer(q3, "is_causal=True instead of the position mask", _with("ex3_path", "chunks_top_left"),
                fault="attend to the whole cache"),
    WrongAnswer(q3, "the prefill graph", _with("ex3_path", "prefill"),
                fault="takes tokens and the cache"),
]


@pytest.mark.parametrize("wrong", params(WRONG_ANSWERS))
def test_wrong_answer_is_rejected_naming_its_fault(wrong, tmp_path):
    assert_rejected(wrong, tmp_path)

"""Lesson 04 exercises: a wrong answer is never Correct, the right one is, and checks leave no registration behind."""
from __future__ import annotations

import warnings

import pytest
import torch
from onnxscript import opset20 as op
from torch.onnx import symbolic_helper

from labkit.exercises.core import CORRECT, INCORRECT, NOT_ATTEMPTED
from labkit.exercises.lesson04 import CHECK_OPSET, q1, q2, q3


# --- answers -------------------------------------------------------------------------------

def acosh_right(g, self):
    return g.op("Acosh", self)


def acosh_wrong_op(g, self):
    return g.op("Asinh", self)


@symbolic_helper.parse_args("v", "i")
def logcumsumexp_right(g, self, dim):
    axis = g.op("Constant", value_t=torch.tensor(dim, dtype=torch.int64))
    return g.op("Log", g.op("CumSum", g.op("Exp", self), axis))


@symbolic_helper.parse_args("v", "i")
def logcumsumexp_axis_zero(g, self, dim):
    axis = g.op("Constant", value_t=torch.tensor(0, dtype=torch.int64))
    return g.op("Log", g.op("CumSum", g.op("Exp", self), axis))


def logcumsumexp_without_parse_args(g, self, dim):
    axis = g.op("Constant", value_t=torch.tensor(dim, dtype=torch.int64))  # dim is a graph value here
    return g.op("Log", g.op("CumSum", g.op("Exp", self), axis))


def atanh_right(x):
    one = op.CastLike(1.0, x)
    return op.CastLike(0.5, x) * op.Log((one + x) / (one - x))


def atanh_wrong_formula(x):
    one = op.CastLike(1.0, x)
    return op.Log((one + x) / (one - x))


def atanh_native(x):
    return op.Atanh(x)


class _Acosh(torch.nn.Module):
    def forward(self, x):
        return torch.acosh(x)


def _legacy_acosh_export_fails(tmp_path) -> bool:
    """True when no symbolic serves aten::acosh at CHECK_OPSET.

    Once a symbolic was registered and unregistered, torch 2.15 reports the missing op with a
    ValueError (min() of an empty registry) instead of UnsupportedOperatorError: accept both.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(_Acosh().eval(), (torch.ones(2) * 2,), tmp_path / "acosh.onnx", dynamo=False,
                              opset_version=CHECK_OPSET)
        except (torch.onnx.errors.UnsupportedOperatorError, ValueError):
            return True
    return False


# --- not attempted -------------------------------------------------------------------------

@pytest.mark.parametrize("question", [q1, q2, q3], ids=["q1", "q2", "q3"])
def test_check_without_the_variable_is_not_attempted(question):
    outcome = question.check()
    assert outcome.status == NOT_ATTEMPTED
    assert question.variables[0] in outcome.message


# --- q1 ------------------------------------------------------------------------------------

def test_q1_acosh_symbolic_is_correct():
    outcome = q1.check(ex1_symbolic=acosh_right)
    assert outcome.status == CORRECT, outcome
    assert "Acosh" in outcome.message


def test_q1_symbolic_emitting_the_wrong_op_is_incorrect_and_names_the_ops():
    outcome = q1.check(ex1_symbolic=acosh_wrong_op)
    assert outcome.status == INCORRECT
    assert "differs from torch.acosh" in outcome.message and "Asinh" in outcome.message


def test_q1_non_function_is_incorrect():
    outcome = q1.check(ex1_symbolic="Acosh")
    assert outcome.status == INCORRECT
    assert "`ex1_symbolic` should be a function" in outcome.message


def test_q1_symbolic_that_raises_is_reported_as_incorrect_not_a_traceback():
    def broken(g, self):
        raise ValueError("not written yet")

    outcome = q1.check(ex1_symbolic=broken)
    assert outcome.status == INCORRECT
    assert "not written yet" in outcome.message


def test_q1_check_unregisters_the_learners_function_afterwards(tmp_path):
    assert q1.check(ex1_symbolic=acosh_right)
    assert _legacy_acosh_export_fails(tmp_path), "the check left aten::acosh registered"


def test_q1_check_uses_the_given_function_even_if_a_wrong_one_is_registered(tmp_path):
    torch.onnx.register_custom_op_symbolic("aten::acosh", acosh_wrong_op, 9)
    try:
        assert q1.check(ex1_symbolic=acosh_right).status == CORRECT
        assert q1.check(ex1_symbolic=acosh_wrong_op).status == INCORRECT
        assert not _legacy_acosh_export_fails(tmp_path), "the check removed the learner's own registration"
    finally:
        torch.onnx.unregister_custom_op_symbolic("aten::acosh", 9)


# --- q2 ------------------------------------------------------------------------------------

def test_q2_decomposition_with_parse_args_is_correct():
    outcome = q2.check(ex2_symbolic=logcumsumexp_right)
    assert outcome.status == CORRECT, outcome
    assert "CumSum" in outcome.message


def test_q2_ignoring_dim_is_incorrect():
    outcome = q2.check(ex2_symbolic=logcumsumexp_axis_zero)
    assert outcome.status == INCORRECT
    assert "dim=1" in outcome.message


def test_q2_without_parse_args_is_incorrect():
    outcome = q2.check(ex2_symbolic=logcumsumexp_without_parse_args)
    assert outcome.status == INCORRECT


# --- q3 ------------------------------------------------------------------------------------

def test_q3_decomposed_translation_is_correct():
    outcome = q3.check(ex3_table={torch.ops.aten.atanh.default: atanh_right})
    assert outcome.status == CORRECT, outcome
    assert "no Atanh" in outcome.message


def test_q3_translation_that_keeps_atanh_is_incorrect():
    outcome = q3.check(ex3_table={torch.ops.aten.atanh.default: atanh_native})
    assert outcome.status == INCORRECT
    assert "still has an Atanh node" in outcome.message


def test_q3_wrong_formula_is_incorrect():
    outcome = q3.check(ex3_table={torch.ops.aten.atanh.default: atanh_wrong_formula})
    assert outcome.status == INCORRECT
    assert "differs from torch.atanh" in outcome.message


def test_q3_table_for_another_op_is_incorrect_and_names_the_key():
    outcome = q3.check(ex3_table={torch.ops.aten.asinh.default: atanh_right})
    assert outcome.status == INCORRECT
    assert "torch.ops.aten.atanh.default" in outcome.message


def test_q3_non_dict_is_incorrect():
    outcome = q3.check(ex3_table=[atanh_right])
    assert outcome.status == INCORRECT
    assert "`ex3_table` should be a dict" in outcome.message

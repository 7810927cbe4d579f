"""Lesson 04 exercises: a wrong answer is never Correct, the right one is, and checks leave no registration behind."""
from __future__ import annotations

import warnings

import onnx
import pytest
import torch
from onnxscript import opset20 as op
from torch.onnx import symbolic_helper

from labkit.exercises.core import CORRECT, INCORRECT
from labkit.exercises.lesson04 import CHECK_OPSET, q1, q2, q3, q4
from wrong_answers import WrongAnswer, assert_rejected, params


@pytest.fixture(autouse=True)
def _quiet_exporters():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation notices are not under test here
        yield


# --- answers -------------------------------------------------------------------------------

def acosh_right(g, self):
    return g.op("Acosh", self)


def acosh_wrong_op(g, self):
    return g.op("Asinh", self)


def acosh_decomposed(g, self):  # log(x + sqrt(x*x - 1)): x*x overflows float32 for x > 1.8e19
    one = g.op("Constant", value_t=torch.tensor(1.0))
    return g.op("Log", g.op("Add", self, g.op("Sqrt", g.op("Sub", g.op("Mul", self, self), one))))


def _masked_on_axis(g, self, dim):
    """Each prefix's log-sum-exp as one row of a matrix padded with -inf (the stable answer)."""
    rank, n = self.type().dim(), self.type().sizes()[dim]
    keep = torch.ones(n, n, dtype=torch.bool).tril().reshape([n, n] + [1] * (rank - dim - 1))
    pairs = g.op("Unsqueeze", self, g.op("Constant", value_t=torch.tensor([dim])))
    minus_inf = g.op("Constant", value_t=torch.tensor(float("-inf")))
    prefixes = g.op("Where", g.op("Constant", value_t=keep), pairs, minus_inf)
    return g.op("ReduceLogSumExp", prefixes, g.op("Constant", value_t=torch.tensor([dim + 1])), keepdims_i=0)


@symbolic_helper.parse_args("v", "i")
def logcumsumexp_right(g, self, dim):
    return _masked_on_axis(g, self, dim % self.type().dim())


@symbolic_helper.parse_args("v", "i")
def logcumsumexp_naive(g, self, dim):
    axis = g.op("Constant", value_t=torch.tensor(dim, dtype=torch.int64))
    return g.op("Log", g.op("CumSum", g.op("Exp", self), axis))


@symbolic_helper.parse_args("v", "i")
def logcumsumexp_axis_max(g, self, dim):  # the textbook shift: safe from overflow, not from a prefix's underflow
    axis = g.op("Constant", value_t=torch.tensor(dim, dtype=torch.int64))
    top = g.op("ReduceMax", self, g.op("Constant", value_t=torch.tensor([dim])), keepdims_i=1)
    return g.op("Add", g.op("Log", g.op("CumSum", g.op("Exp", g.op("Sub", self, top)), axis)), top)


@symbolic_helper.parse_args("v", "i")
def logcumsumexp_axis_zero(g, self, dim):
    return _masked_on_axis(g, self, 0)


@symbolic_helper.parse_args("v", "i")
def logcumsumexp_own_shift(g, self, dim):
    """x_i + log sum_{j<=i} exp(x_j - x_i): each position shifted by its own value, not by its prefix's maximum."""
    dim = dim % self.type().dim()
    rank, n = self.type().dim(), self.type().sizes()[dim]
    keep = torch.ones(n, n, dtype=torch.bool).tril().reshape([n, n] + [1] * (rank - dim - 1))
    pairs = g.op("Unsqueeze", self, g.op("Constant", value_t=torch.tensor([dim])))      # [.., i, j, ..] = x_j
    own = g.op("Unsqueeze", self, g.op("Constant", value_t=torch.tensor([dim + 1])))    # [.., i, j, ..] = x_i
    minus_inf = g.op("Constant", value_t=torch.tensor(float("-inf")))
    shifted = g.op("Where", g.op("Constant", value_t=keep), g.op("Sub", pairs, own), minus_inf)
    total = g.op("ReduceSum", g.op("Exp", shifted), g.op("Constant", value_t=torch.tensor([dim + 1])), keepdims_i=0)
    return g.op("Add", self, g.op("Log", total))


def _searchsorted(strict_only: bool):
    def searchsorted_onnx(sorted_sequence, self, out_int32: bool = False, right: bool = False, side: str = None,
                          sorter=None):
        s, v = op.Unsqueeze(sorted_sequence, [-2]), op.Unsqueeze(self, [-1])
        below = op.LessOrEqual(s, v) if (right or side == "right") and not strict_only else op.Less(s, v)
        return op.ReduceSum(op.Cast(below, to=onnx.TensorProto.INT64), [-1], keepdims=0)

    return searchsorted_onnx


def searchsorted_as_float(sorted_sequence, self, out_int32: bool = False, right: bool = False, side: str = None,
                          sorter=None):
    s, v = op.Unsqueeze(sorted_sequence, [-2]), op.Unsqueeze(self, [-1])
    below = op.LessOrEqual(s, v) if right or side == "right" else op.Less(s, v)
    return op.ReduceSum(op.Cast(below, to=onnx.TensorProto.FLOAT), [-1], keepdims=0)


class _Acosh(torch.nn.Module):
    def forward(self, x):
        return torch.acosh(x)


class _MatrixInverse(torch.nn.Module):
    def forward(self, m):
        return torch.linalg.inv(m)


class _HandMadeInverse2x2(torch.nn.Module):
    """The adjugate over the determinant: right for 2 x 2 matrices, and no com.microsoft::Inverse in it."""

    def forward(self, m):
        a, b, c, d = m[..., 0, 0], m[..., 0, 1], m[..., 1, 0], m[..., 1, 1]
        rows = torch.stack([torch.stack([d, -b], -1), torch.stack([-c, a], -1)], -2)
        return rows / (a * d - b * c)[..., None, None]


def _legacy_acosh_export_fails(tmp_path) -> bool:
    """True when no symbolic serves aten::acosh at CHECK_OPSET.

    Once a symbolic was registered and unregistered, torch 2.15 reports the missing op with a
    ValueError (min() of an empty registry) instead of UnsupportedOperatorError: accept both.
    """
    try:
        torch.onnx.export(_Acosh().eval(), (torch.ones(2) * 2,), tmp_path / "acosh.onnx", dynamo=False,
                          opset_version=CHECK_OPSET)
    except (torch.onnx.errors.UnsupportedOperatorError, ValueError):
        return True
    return False


def _inverse_file(tmp_path, domain: str, name: str = "inverse.onnx", shape=(2, 3, 3)):
    def symbolic(g, self):
        return g.op(f"{domain}::Inverse", self).setType(self.type())

    torch.onnx.register_custom_op_symbolic("aten::linalg_inv", symbolic, 9)
    try:
        path = tmp_path / name
        torch.onnx.export(_MatrixInverse().eval(), (torch.rand(*shape) + torch.eye(shape[-1]),), path, dynamo=False,
                          input_names=["m"])
    finally:
        torch.onnx.unregister_custom_op_symbolic("aten::linalg_inv", 9)
    return path


def _unused_gelu_beside_a_hand_made_inverse(tmp_path):
    """A com.microsoft node is in the file (an unused Gelu), but the inverse is computed by standard ops."""
    path = tmp_path / "gelu_beside.onnx"
    torch.onnx.export(_HandMadeInverse2x2().eval(), (torch.rand(2, 2, 2) + torch.eye(2),), path, dynamo=True,
                      verbose=False, external_data=False)
    model = onnx.load(path)
    model.graph.node.append(onnx.helper.make_node("Gelu", [model.graph.input[0].name], ["unused"],
                                                  domain="com.microsoft"))
    model.opset_import.append(onnx.helper.make_opsetid("com.microsoft", 1))
    onnx.save(model, path)
    return path


def _gelu_instead_of_an_inverse(tmp_path):
    class NotAnInverse(torch.nn.Module):
        def forward(self, m):
            if torch.onnx.is_in_onnx_export():  # a com.microsoft node, but not the inverse
                return torch.onnx.ops.symbolic("com.microsoft::Gelu", (m,), dtype=m.dtype, shape=m.shape, version=1)
            return m

    path = tmp_path / "gelu.onnx"
    torch.onnx.export(NotAnInverse().eval(), (torch.rand(2, 3, 3),), path, dynamo=True, verbose=False)
    return path


def _stub(g, self):
    raise NotImplementedError("write the symbolic here")


# --- wrong answers people give, each rejected with a message naming its fault --------------

WRONG_ANSWERS = [
    WrongAnswer(q1, "emits the wrong op (Asinh)", lambda tmp: {"ex1_symbolic": acosh_wrong_op},
                fault="should emit one Acosh node"),
    WrongAnswer(q1, "decomposes as log(x + sqrt(x*x - 1))", lambda tmp: {"ex1_symbolic": acosh_decomposed},
                fault="x * x overflows"),
    WrongAnswer(q1, "the op's name as a string", lambda tmp: {"ex1_symbolic": "Acosh"},
                fault="should be a function"),
    WrongAnswer(q1, "the stub left in place", lambda tmp: {"ex1_symbolic": _stub},
                fault="NotImplementedError"),
    WrongAnswer(q2, "Log(CumSum(Exp(x)))", lambda tmp: {"ex2_symbolic": logcumsumexp_naive},
                fault="subtract the maximum"),
    WrongAnswer(q2, "shifted by the whole axis's maximum", lambda tmp: {"ex2_symbolic": logcumsumexp_axis_max},
                fault="every exp in this prefix underflowed to 0"),
    WrongAnswer(q2, "each position shifted by its own value", lambda tmp: {"ex2_symbolic": logcumsumexp_own_shift},
                fault="far below an earlier value"),
    WrongAnswer(q2, "dim ignored (always axis 0)", lambda tmp: {"ex2_symbolic": logcumsumexp_axis_zero},
                fault="use the dim argument"),
    WrongAnswer(q3, "right=True / side='right' ignored",
                lambda tmp: {"ex3_table": {torch.ops.aten.searchsorted.Tensor: _searchsorted(strict_only=True)}},
                fault="right=True"),
    WrongAnswer(q3, "counts cast to float", lambda tmp: {"ex3_table": {torch.ops.aten.searchsorted.Tensor:
                                                                     searchsorted_as_float}},
                fault="the output is float32, torch"),
    WrongAnswer(q3, "keyed by another op (bucketize)",
                lambda tmp: {"ex3_table": {torch.ops.aten.bucketize.Tensor: _searchsorted(strict_only=False)}},
                fault="needs the key torch.ops.aten.searchsorted.Tensor"),
    WrongAnswer(q3, "a list instead of a table", lambda tmp: {"ex3_table": [_searchsorted(strict_only=False)]},
                fault="should be a dict"),
    WrongAnswer(q4, "custom::Inverse (a domain no runtime has)",
                lambda tmp: {"ex4_path": _inverse_file(tmp, "custom")}, fault="no com.microsoft::Inverse"),
    WrongAnswer(q4, "an unused com.microsoft Gelu beside a hand-made inverse",
                lambda tmp: {"ex4_path": _unused_gelu_beside_a_hand_made_inverse(tmp)},
                fault="computes nothing the output needs"),
    WrongAnswer(q4, "a com.microsoft node that is not the inverse",
                lambda tmp: {"ex4_path": _gelu_instead_of_an_inverse(tmp)}, fault="no com.microsoft::Inverse"),
    WrongAnswer(q4, "the file was never written", lambda tmp: {"ex4_path": tmp / "nothing.onnx"},
                fault="no such file"),
]


@pytest.mark.parametrize("wrong", params(WRONG_ANSWERS))
def test_wrong_answer_is_rejected_naming_its_fault(wrong, tmp_path):
    assert_rejected(wrong, tmp_path)


def test_the_lesson_has_one_warm_up_then_three_transfers():
    assert [q.kind for q in (q1, q2, q3, q4)] == ["warm-up", "transfer", "transfer", "transfer"]


# --- q1 ------------------------------------------------------------------------------------

def test_q1_acosh_symbolic_is_correct():
    outcome = q1.check(ex1_symbolic=acosh_right)
    assert outcome.status == CORRECT, outcome
    assert "Acosh" in outcome.message




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

def test_q2_masked_prefix_logsumexp_is_correct():
    outcome = q2.check(ex2_symbolic=logcumsumexp_right)
    assert outcome.status == CORRECT, outcome
    assert "ReduceLogSumExp" in outcome.message






# --- q3 ------------------------------------------------------------------------------------

def test_q3_count_translation_is_correct():
    outcome = q3.check(ex3_table={torch.ops.aten.searchsorted.Tensor: _searchsorted(strict_only=False)})
    assert outcome.status == CORRECT, outcome
    assert "LessOrEqual" in outcome.message


# --- q4 ------------------------------------------------------------------------------------

def test_q4_com_microsoft_inverse_is_correct(tmp_path):
    outcome = q4.check(ex4_path=_inverse_file(tmp_path, "com.microsoft"))
    assert outcome.status == CORRECT, outcome
    assert "com.microsoft::Inverse" in outcome.message


def test_q4_single_matrix_input_is_correct_too(tmp_path):
    outcome = q4.check(ex4_path=_inverse_file(tmp_path, "com.microsoft", "one.onnx", shape=(4, 4)))
    assert outcome.status == CORRECT, outcome

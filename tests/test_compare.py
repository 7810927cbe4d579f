"""labkit.compare: a verdict means something — what was compared, by which rule, and what failed."""
import numpy as np
import onnx
import pytest
import torch

import labkit
from helpers import affine_numpy, make_affine_model


class Affine(torch.nn.Module):
    """The torch twin of the helpers' ONNX model (shift moves the bias)."""

    def __init__(self, shift: float = 0.0):
        super().__init__()
        self.weight = torch.arange(12, dtype=torch.float32).reshape(4, 3) / 10
        self.bias = torch.tensor([-1.0, 0.0, 1.0]) + shift

    def forward(self, x):
        return torch.relu(x @ self.weight + self.bias)


def _one(expected, actual, **kwargs):
    return labkit.compare_outputs({"y": np.asarray(expected)}, {"ort": {"y": np.asarray(actual)}}, **kwargs)


# --- the table -------------------------------------------------------------------------------

def test_matching_models_pass_on_both_backends_with_a_stable_table(affine_path):
    result = labkit.compare_with_torch(Affine(), affine_path, torch.ones(3, 4))
    assert result
    assert repr(result) == (
        "PASSED | onnxruntime 'y' | (3, 3) float32\n"
        "PASSED | reference 'y'   | (3, 3) float32\n"
        "PASSED: 2/2 outputs match torch (atol=1e-04, rtol=1e-03)"
    )


def test_a_different_model_fails_and_the_row_and_summary_say_where(affine_path):
    result = labkit.compare_with_torch(Affine(shift=0.5), affine_path, torch.ones(3, 4), backends=["onnxruntime"])
    assert not result
    assert repr(result) == (
        "FAILED | onnxruntime 'y' | max abs 5.00e-01; at [0, 0] got 0.8, expected 1.3 "
        "(> atol 1e-04 + rtol 1e-03 * |expected|)\n"
        "FAILED: 0/1 outputs match torch (atol=1e-04, rtol=1e-03); failed: onnxruntime 'y'"
    )


def test_details_give_raw_figures_and_the_smallest_passing_atol_per_row(affine_path):
    result = labkit.compare_with_torch(Affine(shift=0.5), affine_path, torch.ones(1, 4), rtol=0)
    assert "onnxruntime 'y'  max abs 5.000e-01" in result.details()
    assert "passes with atol >= 5.0e-01" in result.details()
    assert "smallest atol that passes every row (rtol=0e+00): 5.0e-01" in result.details()
    assert result.max_abs == pytest.approx(0.5)


def test_the_first_model_of_compare_models_is_the_truth(affine_path, tmp_path):
    shifted = make_affine_model()
    shifted.graph.initializer[1].CopyFrom(onnx.numpy_helper.from_array(np.array([1.0, 2.0, 3.0], np.float32), "b"))
    onnx.save(shifted, tmp_path / "shifted.onnx")
    x = np.ones((1, 4), np.float32)
    text = repr(labkit.compare_models(affine_path, tmp_path / "shifted.onnx", x))
    assert "got 2.8, expected 0.8" in text and text.endswith("failed: candidate 'y'")
    assert "got 0.8, expected 2.8" in repr(labkit.compare_models(tmp_path / "shifted.onnx", affine_path, x))


# --- a comparison of nothing is an error -------------------------------------------------------

@pytest.mark.parametrize("expected, candidates", [([], {"ort": []}), ([np.zeros(1)], {})], ids=["no outputs", "no backends"])
def test_comparing_nothing_is_an_error_not_a_pass(expected, candidates):
    with pytest.raises(ValueError, match="nothing to compare"):
        labkit.compare_outputs(expected, candidates)


def test_compare_with_torch_needs_at_least_one_backend(affine_path):
    with pytest.raises(ValueError, match="no backend to run"):
        labkit.compare_with_torch(Affine(), affine_path, torch.ones(1, 4), backends=[])


def test_candidates_must_be_a_dict_of_backends():
    with pytest.raises(ValueError, match=r"candidates must be a dict \{backend name: outputs\}, got list"):
        labkit.compare_outputs([np.zeros(1)], [np.zeros(1)])


# --- NaN and infinity ----------------------------------------------------------------------------

def test_all_nan_outputs_fail_even_when_torch_gives_nan_too(affine_path):
    log_model = onnx.helper.make_model(onnx.helper.make_graph(
        [onnx.helper.make_node("Log", ["x"], ["y"])], "log",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [2])]),
        opset_imports=[onnx.helper.make_opsetid("", 17)], ir_version=8)
    result = labkit.compare_with_torch(torch.log, log_model, -torch.ones(2))
    assert not result
    assert "got nan at [0], expected nan (pass allow_nonfinite=True" in repr(result)
    assert labkit.compare_with_torch(torch.log, log_model, -torch.ones(2), allow_nonfinite=True)


def test_the_detail_points_at_the_nan_not_at_another_element():
    assert "got nan at [0], expected 0" in repr(_one([0.0, 1.0], [np.nan, 1.0]))
    assert "got 0 at [1], expected inf" in repr(_one([1.0, np.inf], [1.0, 0.0], allow_nonfinite=True))


def test_with_allow_nonfinite_the_non_finite_values_must_match_exactly():
    assert _one([np.nan, -np.inf, 1.0], [np.nan, -np.inf, 1.0], allow_nonfinite=True)
    assert not _one([np.nan, 1.0], [1.0, 1.0], allow_nonfinite=True)


# --- dtypes and integers -------------------------------------------------------------------------

@pytest.mark.parametrize("expected, actual, message", [
    (np.array([True]), np.array([1]), "dtype int64, expected bool"),
    (np.zeros(2, np.float32), np.zeros(2, np.float64), "dtype float64, expected float32"),
])
def test_different_dtypes_fail_and_say_so(expected, actual, message):
    assert message in repr(_one(expected, actual))


def test_integers_are_compared_exactly_not_as_floats():
    result = _one(np.array([2**53 + 1]), np.array([2**53]), atol=10)
    assert not result
    assert "1 of 1 values differ, first at [0]: got 9007199254740992, expected 9007199254740993" in repr(result)
    assert _one(np.array([3, 4]), np.array([3, 4]))


# --- arguments -----------------------------------------------------------------------------------

@pytest.mark.parametrize("atol, message", [
    (-1, "finite number >= 0"), (float("nan"), "finite number >= 0"), (float("inf"), "finite number >= 0"),
    ("1e-4", "must be a number such as 1e-4, got str"), (True, "got bool"),
])
def test_tolerances_are_validated(atol, message):
    with pytest.raises(ValueError, match=message):
        labkit.compare_outputs([np.zeros(1)], {"ort": [np.zeros(1)]}, atol=atol)


def test_a_float64_input_gets_labkits_message_before_torch_runs(affine_path):
    def must_not_run(x):
        raise AssertionError("torch ran before the inputs were checked")

    with pytest.raises(ValueError, match="input 'x' expects float32, got float64: convert"):
        labkit.compare_with_torch(must_not_run, affine_path, torch.ones(1, 4, dtype=torch.float64))


# --- pairing -------------------------------------------------------------------------------------

def test_dict_outputs_are_paired_by_name_not_by_position():
    a, b = np.zeros(2, np.float32), np.ones(2, np.float32)
    assert labkit.compare_outputs({"a": a, "b": b}, {"ort": {"b": b, "a": a}})


def test_different_output_names_list_both_sets():
    with pytest.raises(ValueError, match=r"ort's outputs are named \['a', 'c'\], expected's \['a', 'b'\]"):
        labkit.compare_outputs({"a": np.zeros(1), "b": np.zeros(1)}, {"ort": {"c": np.zeros(1), "a": np.zeros(1)}})


def test_sequences_are_paired_in_order_under_the_given_names():
    result = labkit.compare_outputs([np.zeros(1), np.ones(1)], {"ort": [np.zeros(1), np.ones(1)]}, names=["p", "q"])
    assert [row.output for row in result.rows] == ["p", "q"]


def test_different_output_counts_raise_instead_of_comparing(affine_path):
    with pytest.raises(ValueError, match=r"torch model returned 2 output\(s\), the ONNX model has 1 \('y'\)"):
        labkit.compare_with_torch(lambda x: (x, x), affine_path, torch.ones(1, 4))
    with pytest.raises(ValueError, match=r"expected has 1 output\(s\) \(y\), ort has 2"):
        labkit.compare_outputs({"y": np.zeros(2)}, {"ort": {"a": np.zeros(2), "b": np.zeros(2)}})


def test_shape_mismatch_is_a_failed_row_not_a_crash():
    result = labkit.compare_outputs([np.zeros((2, 3))], {"ort": [np.zeros((3, 2))]}, names=["y"])
    assert not result
    assert "FAILED | ort 'y' | shape (3, 2), expected (2, 3)" in repr(result)


# --- sessions ------------------------------------------------------------------------------------

def test_compare_with_torch_runs_the_given_session(affine_path, tmp_path):
    shifted = make_affine_model()
    shifted.graph.initializer[1].CopyFrom(onnx.numpy_helper.from_array(np.array([9.0, 9.0, 9.0], np.float32), "b"))
    onnx.save(shifted, tmp_path / "shifted.onnx")
    other_session = labkit.make_session(tmp_path / "shifted.onnx")
    x = torch.ones(2, 4)
    assert labkit.compare_with_torch(Affine(), affine_path, x, backends=["onnxruntime"])
    assert not labkit.compare_with_torch(Affine(), affine_path, x, backends=["onnxruntime"], session=other_session)


def test_a_session_without_the_onnxruntime_backend_is_refused(affine_path):
    with pytest.raises(ValueError, match="'onnxruntime' is not among the backends"):
        labkit.compare_with_torch(Affine(), affine_path, torch.ones(1, 4), backends=["reference"],
                                  session=labkit.make_session(affine_path))


def test_affine_helpers_agree_with_each_other():
    x = np.ones((2, 4), np.float32)
    np.testing.assert_allclose(labkit.run_onnx(make_affine_model(), x)["y"], affine_numpy(x), rtol=1e-6)


# --- names meet names: pairing by name wherever both sides name their outputs ------------------

def test_names_pair_a_list_of_expected_outputs_with_a_dict_of_candidates_by_name():
    a, b = np.zeros(2, np.float32), np.ones(2, np.float32)
    assert labkit.compare_outputs([a, b], {"ort": {"q": b, "p": a}}, names=["p", "q"])
    with pytest.raises(ValueError, match=r"ort's outputs are named \['other'\], expected's \['p'\]"):
        labkit.compare_outputs([a], {"ort": {"other": a}}, names=["p"])


def _two_output_model(outputs: list[str]) -> onnx.ModelProto:
    """y = relu(x), z = -x, with the graph outputs listed in the order given."""
    info = {name: onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, [2]) for name in ("y", "z")}
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("Relu", ["x"], ["y"]), onnx.helper.make_node("Neg", ["x"], ["z"])], "two",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2])], [info[n] for n in outputs])
    return onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)], ir_version=8)


def test_compare_models_pairs_outputs_by_name_not_by_graph_order():
    x = np.array([-1.0, 2.0], np.float32)
    result = labkit.compare_models(_two_output_model(["y", "z"]), _two_output_model(["z", "y"]), x)
    assert result, repr(result)
    assert [row.output for row in result.rows] == ["y", "z"]
    renamed = _two_output_model(["y", "z"])
    renamed.graph.output[1].name = renamed.graph.node[1].output[0] = "w"
    with pytest.raises(ValueError, match=r"reference model's outputs are \['y', 'z'\], the candidate's \['w', 'y'\]"):
        labkit.compare_models(_two_output_model(["y", "z"]), renamed, x)


# --- every floating dtype is compared by the same rule ---------------------------------------------

ml_dtypes = pytest.importorskip("ml_dtypes")
SMALL_FLOATS = [ml_dtypes.bfloat16, ml_dtypes.float8_e4m3fn, ml_dtypes.float8_e5m2, np.float16]


@pytest.mark.parametrize("dtype", SMALL_FLOATS, ids=lambda d: np.dtype(d).name)
def test_small_float_dtypes_follow_the_tolerance_and_non_finite_rules(dtype):
    one, step = np.array([1.0], dtype), np.array([1.0 + float(ml_dtypes.finfo(dtype).eps)], dtype)
    assert not _one(one, step, atol=0, rtol=0)
    assert _one(one, step, atol=0.5, rtol=0)
    nan = np.array([np.nan], dtype)
    assert _one(nan, nan, allow_nonfinite=True)
    assert "pass allow_nonfinite=True" in repr(_one(nan, nan))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float8_e4m3fn, torch.float8_e5m2, torch.float16],
                         ids=str)
def test_torch_tensors_of_dtypes_numpy_lacks_are_compared_not_refused(dtype):
    a, doubled = torch.tensor([1.0, 2.0]).to(dtype), torch.tensor([2.0, 4.0]).to(dtype)
    result = labkit.compare_outputs({"y": a}, {"ort": {"y": a.clone()}})
    assert result, repr(result)
    assert str(dtype).removeprefix("torch.") in repr(result)
    assert not labkit.compare_outputs({"y": a}, {"ort": {"y": doubled}}, atol=0.1, rtol=0)


def test_small_integer_dtypes_stay_exact():
    assert not _one(np.array([1], ml_dtypes.int4), np.array([2], ml_dtypes.int4), atol=10)
    assert _one(np.array([1], ml_dtypes.int4), np.array([1], ml_dtypes.int4))


# --- compare_with_torch leaves the caller's model and inputs as they were --------------------------

class ScalesInPlace(torch.nn.Module):
    """forward divides its input in place, as preprocessing code often does."""

    def forward(self, x):
        x /= 255
        return x * 2


def _scale_model() -> onnx.ModelProto:
    nodes = [onnx.helper.make_node("Div", ["x", "c255"], ["s"]), onnx.helper.make_node("Mul", ["s", "c2"], ["y"])]
    consts = [onnx.numpy_helper.from_array(np.array(255, np.float32), "c255"),
              onnx.numpy_helper.from_array(np.array(2, np.float32), "c2")]
    graph = onnx.helper.make_graph(nodes, "scale", [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [3])],
                                   [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [3])],
                                   initializer=consts)
    return onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)], ir_version=8)


@pytest.mark.parametrize("make_input", [lambda: torch.tensor([0.0, 51.0, 255.0]),
                                        lambda: np.array([0.0, 51.0, 255.0], np.float32)],
                         ids=["tensor", "numpy"])
def test_a_forward_that_changes_its_input_in_place_is_compared_on_the_callers_values(make_input):
    x = make_input()
    result = labkit.compare_with_torch(ScalesInPlace(), _scale_model(), x)
    assert result, repr(result)
    assert np.asarray(x).tolist() == [0.0, 51.0, 255.0]


def test_compare_with_torch_gives_the_model_back_in_the_mode_it_had():
    model = torch.nn.Sequential(ScalesInPlace(), torch.nn.Dropout(0.0))
    model.train()
    model[1].eval()  # a mixed state must come back as it was, module by module
    assert labkit.compare_with_torch(model, _scale_model(), torch.ones(3))
    assert model.training and model[0].training and not model[1].training


def test_a_bfloat16_model_is_compared_with_torch_end_to_end():
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("Relu", ["x"], ["y"])], "relu",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.BFLOAT16, [3])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.BFLOAT16, [3])])
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)], ir_version=8)
    x = torch.tensor([-1.0, 0.5, 2.0], dtype=torch.bfloat16)
    result = labkit.compare_with_torch(torch.relu, model, x, backends=["reference"])
    assert result and "(3,) bfloat16" in repr(result), repr(result)
    assert not labkit.compare_with_torch(lambda t: torch.relu(t) + 1, model, x, backends=["reference"])

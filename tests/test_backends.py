"""labkit.backends: feeding inputs by name and running ONNX Runtime and the reference evaluator."""
import numpy as np
import pytest
import torch

import labkit
from helpers import affine_numpy


@pytest.mark.parametrize("backend", ["onnxruntime", "reference"])
def test_run_onnx_computes_the_model_function_on_each_backend(affine_path, backend):
    x = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    out = labkit.run_onnx(affine_path, x, backend=backend)
    assert list(out) == ["y"]
    np.testing.assert_allclose(out["y"], affine_numpy(x), rtol=1e-6, atol=1e-6)


def test_run_onnx_accepts_torch_tensors_and_dicts_by_name(affine_model):
    x = torch.ones(2, 4)
    out = labkit.run_onnx(affine_model, {"x": x})
    np.testing.assert_allclose(out["y"], affine_numpy(x.numpy()), rtol=1e-6)


def test_unknown_backend_lists_the_known_ones(affine_model):
    with pytest.raises(ValueError, match="unknown backend 'tensorrt'; choose one of onnxruntime, reference"):
        labkit.run_onnx(affine_model, np.ones((1, 4), np.float32), backend="tensorrt")


def test_wrong_input_name_lists_the_model_inputs(affine_model):
    with pytest.raises(ValueError, match="model has no input 'image'; its inputs are: 'x'"):
        labkit.prepare_inputs(affine_model, {"image": np.ones((1, 4), np.float32)})


def test_wrong_number_of_positional_inputs_is_explained(affine_model):
    ones = np.ones((1, 4), np.float32)
    with pytest.raises(ValueError, match=r"model expects 1 input\(s\) \('x'\), got 2"):
        labkit.prepare_inputs(affine_model, (ones, ones))


def test_missing_batch_dimension_suggests_adding_one(affine_model):
    with pytest.raises(ValueError, match=r"input 'x' expects rank 2 \[N, 4\], got shape \(4,\): add a batch dimension"):
        labkit.prepare_inputs(affine_model, np.ones(4, np.float32))


def test_fixed_dimension_mismatch_names_the_axis_and_the_fix(static_affine_path):
    with pytest.raises(ValueError, match=r"expects shape \[2, 4\], got \(3, 4\): dim 0 is fixed at 2 .*dynamic"):
        labkit.prepare_inputs(static_affine_path, np.ones((3, 4), np.float32))


def test_wrong_dtype_says_how_to_convert(affine_model):
    with pytest.raises(ValueError, match=r"input 'x' expects float32, got float64: convert with x.astype\(np.float32\)"):
        labkit.prepare_inputs(affine_model, np.ones((1, 4)))


def test_make_session_rejects_zero_threads(affine_model):
    with pytest.raises(ValueError, match="threads must be a whole number >= 1"):
        labkit.make_session(affine_model, threads=0)


def test_make_session_reports_a_missing_file_before_onnxruntime_does(tmp_path):
    with pytest.raises(FileNotFoundError, match="no ONNX model at"):
        labkit.make_session(tmp_path / "missing.onnx")


def test_run_torch_flattens_tuple_outputs_to_numpy():
    outputs = labkit.run_torch(lambda t: (t + 1, (t * 2,)), torch.zeros(2))
    assert [o.tolist() for o in outputs] == [[1.0, 1.0], [0.0, 0.0]]


def test_a_provider_typo_is_an_error_not_a_silent_cpu_fallback(affine_model):
    with pytest.raises(ValueError, match="execution provider 'CPUExecutionProvder' is not available here"):
        labkit.make_session(affine_model, providers=["CPUExecutionProvder"])


@pytest.mark.parametrize("threads", [0, 1.5, True])
def test_make_session_rejects_threads_that_are_not_whole_numbers(affine_model, threads):
    with pytest.raises(ValueError, match="threads must be a whole number >= 1"):
        labkit.make_session(affine_model, threads=threads)


def test_a_nested_python_list_is_refused_not_read_as_several_inputs(affine_model):
    with pytest.raises(ValueError, match="inputs is a Python list or tuple of plain values"):
        labkit.run_onnx(affine_model, [[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]])


def test_a_session_is_built_once_per_run_and_outputs_are_copies(affine_path):
    session = labkit.make_session(affine_path)
    first = labkit.run_onnx(affine_path, np.ones((1, 4), np.float32), session=session)["y"]
    first[...] = -1
    again = labkit.run_onnx(affine_path, np.ones((1, 4), np.float32), session=session)["y"]
    assert (again >= 0).all()

"""labkit.compare: verdict tables that read the same on every machine, and clear mismatch errors."""
import numpy as np
import pytest
import torch

import labkit
from conftest import affine_numpy


class Affine(torch.nn.Module):
    """The torch twin of the conftest ONNX model."""

    def __init__(self, shift: float = 0.0):
        super().__init__()
        self.weight = torch.arange(12, dtype=torch.float32).reshape(4, 3) / 10
        self.bias = torch.tensor([-1.0, 0.0, 1.0]) + shift

    def forward(self, x):
        return torch.relu(x @ self.weight + self.bias)


def test_matching_models_pass_on_both_backends_with_a_stable_table(affine_path):
    result = labkit.compare_with_torch(Affine(), affine_path, torch.ones(3, 4))
    assert result
    assert repr(result) == (
        "backend      output  shape   verdict\n"
        "onnxruntime  y       (3, 3)  OK\n"
        "reference    y       (3, 3)  OK\n"
        "PASSED: 2/2 outputs match torch (atol=1e-04, rtol=1e-03)"
    )


def test_a_different_model_fails_and_the_row_says_where(affine_path):
    result = labkit.compare_with_torch(Affine(shift=0.5), affine_path, torch.ones(3, 4), backends=["onnxruntime"])
    assert not result
    text = repr(result)
    assert "FAIL (max abs 5.00e-01 at [0, 0])" in text
    assert text.endswith("FAILED: 0/1 outputs match torch (atol=1e-04, rtol=1e-03)")


def test_details_give_raw_figures_and_the_smallest_passing_atol(affine_path):
    result = labkit.compare_with_torch(Affine(shift=0.5), affine_path, torch.ones(1, 4), rtol=0)
    assert "smallest atol that passes every row (rtol=0e+00): 5.0e-01" in result.details()
    assert result.max_abs == pytest.approx(0.5)


def test_different_output_counts_raise_instead_of_comparing(affine_path):
    with pytest.raises(ValueError, match=r"torch model returned 2 output\(s\), the ONNX model has 1 \('y'\)"):
        labkit.compare_with_torch(lambda x: (x, x), affine_path, torch.ones(1, 4))


def test_shape_mismatch_is_a_failed_row_not_a_crash():
    result = labkit.compare_outputs([np.zeros((2, 3))], {"ort": [np.zeros((3, 2))]}, names=["y"])
    assert not result
    assert "FAIL (shape (3, 2), expected (2, 3))" in repr(result)


def test_compare_outputs_rejects_candidates_with_another_output_count():
    with pytest.raises(ValueError, match=r"expected has 1 output\(s\) \(y\), ort has 2"):
        labkit.compare_outputs({"y": np.zeros(2)}, {"ort": {"a": np.zeros(2), "b": np.zeros(2)}})


def test_negative_tolerances_are_rejected():
    with pytest.raises(ValueError, match="tolerances must be >= 0"):
        labkit.compare_outputs([np.zeros(1)], {"ort": [np.zeros(1)]}, atol=-1)


def test_compare_models_uses_the_first_model_as_truth(affine_path, static_affine_path):
    x = np.ones((2, 4), np.float32)
    result = labkit.compare_models(affine_path, static_affine_path, x)
    assert result
    assert "match reference model" in repr(result)
    np.testing.assert_allclose(labkit.run_onnx(affine_path, x)["y"], affine_numpy(x), rtol=1e-6)


def test_compare_with_torch_reuses_a_given_session(affine_path):
    session = labkit.make_session(affine_path)
    assert labkit.compare_with_torch(Affine(), affine_path, torch.ones(2, 4), backends=["onnxruntime"], session=session)

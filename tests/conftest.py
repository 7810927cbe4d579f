"""Shared fixtures: tiny ONNX models built by hand, so most unit tests need no exporter."""
from __future__ import annotations

import onnx
import pytest
import torch

from helpers import Branchy, export_both, make_affine_model


@pytest.fixture
def affine_model() -> onnx.ModelProto:
    return make_affine_model()


@pytest.fixture
def affine_path(tmp_path, affine_model):
    path = tmp_path / "affine.onnx"
    onnx.save(affine_model, path)
    return path


@pytest.fixture
def static_affine_path(tmp_path):
    path = tmp_path / "affine_bs2.onnx"
    onnx.save(make_affine_model(batch=2), path)
    return path


@pytest.fixture(scope="session")
def branchy_exports(tmp_path_factory):
    """A seeded Branchy, its input, both exports of it, and their folder (tests may add files there)."""
    torch.manual_seed(0)
    model = Branchy().eval()
    x = torch.randn(1, 3, 20, 20)
    folder = tmp_path_factory.mktemp("branchy")
    return model, x, export_both(model, x, folder), folder

"""Shared fixtures: tiny ONNX models built by hand, so most unit tests need no exporter."""
from __future__ import annotations

# --- The environment of this run, and of every kernel nbval starts (kernels inherit this process's os.environ):
# labkit.childenv decides it. Importing labkit turns ONNX Runtime's telemetry off before anything below imports
# onnxruntime; kernel_env() leaves out what a caller (a CI, a terminal) sets that changes a checked output. CI and
# BUILD_NUMBER stay, so this run's own report shows full diffs on a CI (clean_env() drops them for a child pytest).
import os

from labkit.childenv import kernel_env

_environment = kernel_env()
os.environ.clear()
os.environ.update(_environment)
# Under pytest-xdist (`make test`: -n 2), each worker and the kernels it starts get their share of the cores for
# torch's intra-op threads (OMP_NUM_THREADS, read when torch starts its thread pool), so two kernels do not fight
# over two cores. A value set by the caller wins; Lesson 06 sets its own thread counts for its measurements.
_workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _workers > 1:
    _cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, _cores // _workers)))

import pytest

from whole_machine import WholeMachine

# onnx, torch and the builders are imported inside the fixtures: under xdist the controller loads this file too and
# runs no test, so it starts the workers without first paying for `import torch`.


def pytest_configure(config):
    # Global, not only for tests/: its hooks order the whole suite, form its units of work under xdist and lock
    # around the notebooks' cells too.
    config.pluginmanager.register(WholeMachine(), "labkit-whole-machine")


@pytest.fixture
def affine_model():
    from helpers import make_affine_model

    return make_affine_model()


@pytest.fixture
def affine_path(tmp_path, affine_model):
    import onnx

    path = tmp_path / "affine.onnx"
    onnx.save(affine_model, path)
    return path


@pytest.fixture
def static_affine_path(tmp_path):
    import onnx
    from helpers import make_affine_model

    path = tmp_path / "affine_bs2.onnx"
    onnx.save(make_affine_model(batch=2), path)
    return path


@pytest.fixture(scope="session")
def branchy_exports(tmp_path_factory):
    """A seeded Branchy, its input, both exports of it, and their folder (tests may add files there)."""
    import torch
    from helpers import Branchy, export_both

    torch.manual_seed(0)
    model = Branchy().eval()
    x = torch.randn(1, 3, 20, 20)
    folder = tmp_path_factory.mktemp("branchy")
    return model, x, export_both(model, x, folder), folder

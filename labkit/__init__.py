"""labkit: the plumbing behind the onnx-labkit lessons (comparing, inspecting, drawing, exercises).

The techniques themselves (export calls, symbolics, onnx.helper graphs) live in the notebooks.
Names are imported lazily, so `labkit doctor` still starts when onnx or torch is broken.
"""
from __future__ import annotations

import importlib

from .childenv import telemetry_off

__version__ = "0.1.0"  # written only here: pyproject.toml reads it
telemetry_off()  # before a lesson, a test or the CLI imports onnxruntime, which reads it once: offline on every route

_EXPORTS = {
    "make_session": "backends", "prepare_inputs": "backends", "run_onnx": "backends", "run_torch": "backends",
    "Comparison": "compare", "compare_models": "compare", "compare_outputs": "compare",
    "compare_with_torch": "compare",
    "find_divergence": "divergence", "module_boundaries": "divergence", "expose_intermediates": "divergence",
    "draw_graph": "graph",
    "load_image": "images", "psnr": "images", "show_images": "images",
    "op_counts": "inspect", "op_label": "inspect", "summarize": "inspect",
    "OnnxFile": "onnxfile", "input_specs": "onnxfile", "load_model": "onnxfile", "output_specs": "onnxfile",
    "PASSED": "report", "FAILED": "report", "format_table": "report", "status": "report",
    "expect_error": "notebook", "short_warnings": "notebook", "hide_native_stdout": "notebook",
    "capture_native_stdout": "notebook", "free_memory": "notebook",
    "artifacts_dir": "paths", "data_path": "paths", "display_path": "paths", "repo_root": "paths",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'labkit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)

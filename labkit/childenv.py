"""The environment a kernel or a child process of the kit runs in: decided here, and nowhere else.

ONNX Runtime reads ORT_DISABLE_TELEMETRY once, at import (telemetry on: a Microsoft host looked up, ~/.cache/Microsoft
written). `import labkit` turns it off on every route; `make setup`'s .pth and environment.yml too, for a kernel that
imports onnxruntime before labkit. A value already set wins."""
from __future__ import annotations

import os

__all__ = ["telemetry_off", "kernel_env", "clean_env"]

# Names (and prefixes) shown to change a checked output: the terminal size (argparse, pytest), warning filters,
# colour switches (a kernel sets TERM and FORCE_COLOR itself), the language of tools a lesson runs (gcc), and a child
# pytest's options and plugins (a CI's PYTEST_ADDOPTS=--junitxml=...).
_CHANGES_OUTPUT = ("COLUMNS", "LINES", "PYTHONWARNINGS", "NO_COLOR", "FORCE_COLOR", "PY_COLORS", "CLICOLOR",
                   "LANGUAGE", "LC_", "PYTEST_ADDOPTS", "PYTEST_PLUGINS")


def telemetry_off() -> None:
    """Turn ONNX Runtime's telemetry off in this process and its children, unless the caller chose."""
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")


def kernel_env(**overrides: str | None) -> dict[str, str]:
    """`os.environ` for a kernel whose outputs are checked (nbval's, `labkit run`'s, JupyterLab's in the browser
    tests): without what a caller's terminal or CI sets that changes an output, one UTF-8 locale, telemetry off;
    keyword arguments set more (None removes one)."""
    env = {name: value for name, value in os.environ.items() if not name.startswith(_CHANGES_OUTPUT)}
    env.update(LC_ALL="C.UTF-8", LANG="C.UTF-8")
    env.setdefault("ORT_DISABLE_TELEMETRY", "1")
    for name, value in overrides.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = str(value)
    return env


def clean_env(**overrides: str | None) -> dict[str, str]:
    """`kernel_env()` for a child pytest whose report a lesson shows or a test checks (Lesson 00's inner nbval run):
    also without the outer run's `PYTEST_*` and the CI flags that make pytest print whole diffs (`CI`,
    `BUILD_NUMBER`), and TERM=dumb: `subprocess.run([...], env=clean_env(), ...)`."""
    env = kernel_env(**{"TERM": "dumb", **overrides})
    return {name: value for name, value in env.items()
            if name in overrides or not (name in ("CI", "BUILD_NUMBER") or name.startswith("PYTEST_"))}

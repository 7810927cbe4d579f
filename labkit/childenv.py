"""The environment a kernel or a child process of the kit runs in: decided here, and nowhere else.

ONNX Runtime reads ORT_DISABLE_TELEMETRY once, when it is imported, and with telemetry on it looks up a Microsoft
host and writes under ~/.cache/Microsoft. `import labkit` turns it off (`telemetry_off`) in every route (make, conda,
pip); `make setup` also writes a .pth file that does it in every Python of its venv, and environment.yml sets it
for the conda environment: a kernel that imports onnxruntime before labkit. A value already set wins.
"""
from __future__ import annotations

import os

__all__ = ["telemetry_off", "kernel_env", "clean_env"]

# Shown to change a checked output: the terminal size (argparse help, pytest reports), warning filters, colour
# switches (a kernel sets TERM and FORCE_COLOR itself; these reach a child pytest), the language of tools a lesson
# runs (gcc), and the options and plugins of a child pytest (a CI's PYTEST_ADDOPTS=--junitxml=...).
_CHANGES_OUTPUT = {"COLUMNS", "LINES", "PYTHONWARNINGS", "NO_COLOR", "FORCE_COLOR", "PY_COLORS", "LANGUAGE",
                   "PYTEST_ADDOPTS", "PYTEST_PLUGINS"}
_ONE_LOCALE = {"LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"}


def telemetry_off() -> None:
    """Turn ONNX Runtime's telemetry off in this process (and its children) unless the caller chose."""
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")


def _environment(drop: set[str], prefixes: tuple[str, ...], overrides: dict[str, str | None]) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if name not in drop and not name.startswith(prefixes)}
    env.update(_ONE_LOCALE)
    env.setdefault("ORT_DISABLE_TELEMETRY", "1")
    for name, value in overrides.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = str(value)
    return env


def kernel_env(**overrides: str | None) -> dict[str, str]:
    """`os.environ` for a kernel whose outputs are checked (nbval's, `labkit run`'s, JupyterLab's in the browser
    tests): without what a caller's terminal or CI sets that changes an output, one UTF-8 locale, telemetry off.

    Keyword arguments set more variables; a value of None removes one. `os.environ` itself is not changed.
    """
    return _environment(_CHANGES_OUTPUT, ("CLICOLOR", "LC_"), overrides)


def clean_env(**overrides: str | None) -> dict[str, str]:
    """`kernel_env()` for a child pytest whose report a lesson shows or a test checks (Lesson 00's inner nbval run):
    also without every `PYTEST_*` of the outer run and the CI flags that make pytest print whole diffs (`CI`,
    `BUILD_NUMBER`), and with TERM=dumb: `subprocess.run([...], env=clean_env(), ...)`.
    """
    return _environment(_CHANGES_OUTPUT | {"CI", "BUILD_NUMBER"}, ("CLICOLOR", "LC_", "PYTEST_"),
                        {"TERM": "dumb", **overrides})

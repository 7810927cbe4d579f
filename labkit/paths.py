"""Where the kit's files live: the repository, its shipped data, and per-lesson artifacts."""
from __future__ import annotations

import re
from pathlib import Path

__all__ = ["repo_root", "data_path", "artifacts_dir", "display_path"]

_STEM = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def repo_root() -> Path:
    """The checkout that holds `labkit/`, `data/` and `notebooks/` (labkit is installed editable)."""
    here = Path(__file__).resolve().parent.parent
    if (here / "data").is_dir() and (here / "notebooks").is_dir():
        return here
    for candidate in [Path.cwd(), *Path.cwd().parents]:
        if (candidate / "data").is_dir() and (candidate / "notebooks").is_dir():
            return candidate
    raise FileNotFoundError(
        "cannot find the onnx-labkit checkout (a folder with data/ and notebooks/): "
        "install labkit with `pip install -e .` from the checkout, or run from inside it"
    )


def data_path(name: str) -> Path:
    """Path of a file shipped in `data/`; a missing name lists what is there."""
    path = repo_root() / "data" / name
    if not path.exists():
        shipped = sorted(p.name for p in (repo_root() / "data").iterdir() if not p.name.startswith("."))
        raise FileNotFoundError(f"no file '{name}' in data/; shipped files: {', '.join(shipped)}")
    return path


def artifacts_dir(lesson: str) -> Path:
    """`artifacts/<lesson>/`, created if needed: every file a lesson writes goes there (git-ignored)."""
    if not isinstance(lesson, str) or not _STEM.fullmatch(lesson):
        raise ValueError(f"lesson must be a notebook stem such as '01_alexnet_export' (letters, digits, '_', '-', "
                         f"'.', not starting with a dot), got {lesson!r}")
    path = repo_root() / "artifacts" / lesson
    path.mkdir(parents=True, exist_ok=True)
    return path


def display_path(path: str | Path) -> str:
    """A path relative to the checkout, so printed paths are the same on every machine."""
    path = Path(path).resolve()
    try:
        return path.relative_to(repo_root()).as_posix()
    except ValueError:
        return path.name

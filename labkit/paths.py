"""Where the kit's files live: the repository, its shipped data, and per-lesson artifacts.

The kit reads what it ships (lessons, data) from its install, and writes only to the learner's area,
`learner_root()`: the checkout itself for one learner (as always), or the folder named by LABKIT_HOME where
one read-only install serves a room (JupyterHub's spawner sets LABKIT_HOME=$HOME/onnx-labkit per learner).
"""
from __future__ import annotations

import os
import re
from pathlib import Path

__all__ = ["repo_root", "HOME_VARIABLE", "learner_root", "data_path", "artifacts_dir", "display_path", "GENERATED", "KIT_FOLDERS", "kit_folder_of",
           "write_target", "shown_path"]

# Folders the kit (or its tools) generates and may remove: `make clean` deletes artifacts/, .pytest_cache/ and
# every __pycache__/; a test checks this list against the Makefile's clean recipe.
GENERATED = ("artifacts", ".pytest_cache", ".venv", "wheelhouse", "__pycache__", ".ipynb_checkpoints")
# Folders that hold the kit itself: nothing of the learner's belongs in them.
KIT_FOLDERS = ("notebooks", "labkit", "tests", "data", "docs", "benchmarks", ".git", ".ci")

HOME_VARIABLE = "LABKIT_HOME"          # the learner's own writable area on a shared install (workspace/, artifacts/)

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


def learner_root() -> Path:
    """Where the learner's files go (`workspace/`, `artifacts/`): $LABKIT_HOME when set (a shared install: the
    learner's own area, made if missing), else the checkout, exactly as for one learner."""
    path = _learner_home()
    if path is None:
        return repo_root()
    path.mkdir(parents=True, exist_ok=True)
    return path


def _learner_home() -> Path | None:
    """$LABKIT_HOME as an absolute path (not created), or None when unset."""
    home = os.environ.get(HOME_VARIABLE, "").strip()
    if not home:
        return None
    path = Path(home).expanduser()
    if not path.is_absolute():
        raise ValueError(f"{HOME_VARIABLE}={home!r} is not an absolute path: set it to the learner's own folder, "
                         f"e.g. {HOME_VARIABLE}=$HOME/onnx-labkit")
    return path


def data_path(name: str) -> Path:
    """Path of a file shipped in `data/`; a missing name lists what is there."""
    path = repo_root() / "data" / name
    if not path.exists():
        shipped = sorted(p.name for p in (repo_root() / "data").iterdir() if not p.name.startswith("."))
        raise FileNotFoundError(f"no file '{name}' in data/; shipped files: {', '.join(shipped)}")
    return path


def artifacts_dir(lesson: str) -> Path:
    """`artifacts/<lesson>/` of the learner's area (`learner_root()`), created if needed: every file a lesson writes
    goes there (git-ignored in a checkout)."""
    if not isinstance(lesson, str) or not _STEM.fullmatch(lesson):
        raise ValueError(f"lesson must be a notebook stem such as '01_alexnet_export' (letters, digits, '_', '-', "
                         f"'.', not starting with a dot), got {lesson!r}")
    root = learner_root()
    path = write_target(root / "artifacts" / lesson, root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def kit_folder_of(path: str | Path) -> str | None:
    """Which of the checkout's own or generated folders holds `path` ('the checkout itself' for its root), else None."""
    root = repo_root()
    where = Path(path).resolve()
    if where == root:
        return "the checkout itself"
    try:
        parts = where.relative_to(root).parts
    except ValueError:
        return None
    if parts[0] in KIT_FOLDERS or parts[0] in GENERATED:
        return f"{parts[0]}/"
    inside = next((part for part in parts if part in GENERATED), None)
    return f"{inside}/" if inside else None


def write_target(path: str | Path, root: str | Path) -> Path:
    """`path`, once checked that writing it lands inside `root`: no link on the way (the file itself included)
    leads elsewhere, so a file the kit writes goes where the kit says. Raises ValueError naming the link."""
    path, root = Path(path), Path(root)
    real_root = root.resolve()
    try:
        below = path.relative_to(root).parts
    except ValueError:
        below = path.parts
    step = root
    for index, part in enumerate(below):
        step = step / part
        if not step.is_symlink():
            continue
        real = step.resolve()
        last = index == len(below) - 1
        outside = real != real_root and real_root not in real.parents
        if outside or (last and not real.is_dir()):  # a file's link: what is written lands in another file
            raise ValueError(f"refusing to write {path}: {step} is a link to {real}, "
                             f"{'so the file would land there' if last else 'outside ' + str(root)}; "
                             f"remove the link (rm '{step}') and run this again")
    return path


def display_path(path: str | Path) -> str:
    """A path relative to the checkout (or to the learner's area, $LABKIT_HOME), so printed paths are the same on
    every machine and for every learner."""
    path = Path(path).resolve()
    for root in (repo_root(), _learner_home() or repo_root()):  # display only: creates nothing
        try:
            return path.relative_to(root.resolve()).as_posix()
        except ValueError:
            continue
    return path.name


def shown_path(path: str | Path) -> str:
    """A path as the learner should read it: relative to the checkout when inside it, else as given."""
    try:
        return Path(path).resolve().relative_to(repo_root()).as_posix()
    except ValueError:
        return str(path)

"""Checks every weights file in the kit gets: its SHA-256, and that no tensor holds NaN or infinity.

Used by the loaders (EfficientNet-Lite0, SRCNN, AlexNet), by `labkit train-srcnn` before it saves,
by `labkit fetch-weights` and by `labkit doctor`; the training commands also share where their
weights go (`training_output`) and how they are written (`save_atomically`). Only the standard
library at module top.
"""
from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["file_sha256", "nonfinite_tensors", "describe_nonfinite", "training_output", "save_atomically"]


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of a file, in hex, read in 1 MiB pieces."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def nonfinite_tensors(state: Mapping[str, Any]) -> list[str]:
    """Names of the floating tensors of a state dict that hold NaN or infinity (weights that cannot work)."""
    import torch

    return [name for name, tensor in state.items()
            if isinstance(tensor, torch.Tensor) and tensor.is_floating_point() and not bool(torch.isfinite(tensor).all())]


def describe_nonfinite(names: list[str]) -> str:
    """'NaN or infinity in 2 tensors (e.g. 'conv1.weight')', the one wording for that fault."""
    return f"NaN or infinity in {len(names)} tensor{'s' if len(names) != 1 else ''} (e.g. {names[0]!r})"


def training_output(out: str | Path | None, replace_shipped: bool, weights: str, artifacts: str) -> Path:
    """Where a training command writes: `out`, the shipped data/<weights> with `replace_shipped`, else
    artifacts/<artifacts>/<weights>. An `out` that is a folder, or the shipped file itself, is refused."""
    from . import paths

    shipped = paths.repo_root() / "data" / weights
    if out:
        out = Path(out)
        if out.is_dir():
            raise IsADirectoryError(f"--out '{out}' is a folder: give a file name such as {out / weights}")
        if out.resolve() == shipped.resolve():
            raise ValueError(f"--out points at the shipped data/{weights}: say --replace-shipped to replace it")
        return out
    return shipped if replace_shipped else paths.artifacts_dir(artifacts) / weights


def save_atomically(obj: Any, out: Path) -> None:
    """`torch.save(obj)` to `out` through a hidden partial file beside it: the old file stays whole until the new
    one is."""
    import torch

    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.partial")
    try:
        torch.save(obj, partial)
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)

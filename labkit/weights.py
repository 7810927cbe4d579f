"""Checks every weights file in the kit gets: its SHA-256, and that no tensor holds NaN or infinity.

Used by the loaders (EfficientNet-Lite0, SRCNN, AlexNet), by `labkit train-srcnn` before it saves,
by `labkit fetch-weights` and by `labkit doctor`. Only the standard library at module top.
"""
from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["file_sha256", "nonfinite_tensors", "describe_nonfinite"]


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

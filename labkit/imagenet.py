"""ImageNet plumbing shared by the lessons: the eval preprocessing, the 1000 labels, and AlexNet's weights.

Nothing here downloads. The only network access is the explicit `labkit fetch-weights` command
(labkit/fetch_weights.py), which puts AlexNet's ImageNet weights into torch's hub cache;
`alexnet()` uses them when they are there (refusing a file with NaN or infinity) and falls back
to seeded random weights otherwise.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # torch is imported inside the functions: `labkit` commands start fast
    import torch

__all__ = ["MEAN", "STD", "RESIZE", "CROP", "WEIGHTS_URL", "WEIGHTS_SHA256_PREFIX", "antialias_matrix",
           "resize_antialiased", "preprocess", "categories",
           "weights_path", "alexnet"]

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
RESIZE = 256  # shorter side after resizing
CROP = 224  # side of the centre crop the network sees
# torchvision's AlexNet_Weights.IMAGENET1K_V1.url; the 8 hex digits before .pth are the start of its SHA-256.
WEIGHTS_URL = "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth"
WEIGHTS_SHA256_PREFIX = "7be5be79"


def _resize_shape(height: int, width: int, short: int) -> tuple[int, int]:
    """torchvision's Resize(int): the shorter side becomes `short`, the longer one keeps the aspect (truncated)."""
    if height <= width:
        return short, int(short * width / height)
    return int(short * height / width), short


def antialias_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) weights of torch's antialiased bilinear resize along one axis (as taught in Lesson 01 §5).

    Row i holds the weights of output pixel i: a normalised triangle filter centred where that pixel
    falls in the input, one input pixel wide when enlarging and as wide as the shrink factor when
    shrinking, which is what `antialias=True` (and PIL's BILINEAR) does.
    """
    scale = n_in / n_out
    support = max(scale, 1.0)  # half-width of the triangle in input pixels: wider when shrinking
    centres = (np.arange(n_out) + 0.5) * scale  # where each output pixel's centre falls in the input
    taps = np.clip(1 - np.abs((np.arange(n_in)[None, :] + 0.5 - centres[:, None]) / support), 0, None)
    return taps / taps.sum(axis=1, keepdims=True)


def resize_antialiased(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """(H, W, C) image -> float64 (height, width, C), with `antialias_matrix` along each axis."""
    rows, columns = antialias_matrix(image.shape[0], height), antialias_matrix(image.shape[1], width)
    return np.einsum("oh,hwc,pw->opc", rows, image.astype(np.float64), columns, optimize=True)


def preprocess(image: np.ndarray) -> np.ndarray:
    """RGB uint8 (H, W, 3) -> float32 (1, 3, 224, 224), as torchvision's ImageNet eval transform does.

    Same steps as `AlexNet_Weights.IMAGENET1K_V1.transforms()`: resize the shorter side to 256
    (bilinear, antialiased), centre-crop 224, scale to [0, 1], normalise with MEAN / STD, HWC -> NCHW.
    Enlarging uses `cv2.resize(INTER_LINEAR)`, which equals torch's bilinear there; shrinking uses
    torch's antialiasing triangle filter in numpy, because OpenCV's INTER_LINEAR does not
    antialias (INTER_AREA is a box filter: neither matches). Agreement with torchvision applied to
    the same pixels: float tensor path within 2e-4 (torch computes its filter weights in float32;
    within 1e-4 on the shipped photos); uint8 tensor path within half a grey level (torchvision then rounds the
    resized image to uint8: ~0.009 after normalisation).
    """
    import cv2

    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an RGB image of shape (H, W, 3), got shape {image.shape}: "
                         "load it with labkit.load_image (grey images: cv2.cvtColor(img, cv2.COLOR_GRAY2RGB))")
    if image.dtype != np.uint8:
        raise ValueError(f"expected uint8 pixels 0..255, got dtype {image.dtype}: "
                         "pass the image as loaded (labkit.load_image), before any scaling")
    height, width = image.shape[:2]
    if min(height, width) < 1:
        raise ValueError(f"the image is empty: shape {image.shape}")
    new_h, new_w = _resize_shape(height, width, RESIZE)
    pixels = image.astype(np.float32)
    if new_h >= height and new_w >= width:
        resized = cv2.resize(pixels, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    else:
        resized = resize_antialiased(pixels, new_h, new_w).astype(np.float32)
    top, left = int(round((new_h - CROP) / 2.0)), int(round((new_w - CROP) / 2.0))
    crop = resized[top:top + CROP, left:left + CROP] / np.float32(255.0)
    normalised = (crop - np.asarray(MEAN, np.float32)) / np.asarray(STD, np.float32)
    return np.ascontiguousarray(normalised.transpose(2, 0, 1)[None], dtype=np.float32)


def categories() -> list[str]:
    """The 1000 ImageNet class names in output order (from torchvision's weights metadata: no download)."""
    from torchvision.models import AlexNet_Weights

    return list(AlexNet_Weights.IMAGENET1K_V1.meta["categories"])


def weights_path() -> Path:
    """Where torch's hub cache keeps AlexNet's ImageNet weights (`$TORCH_HOME/hub/checkpoints/...`)."""
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints" / WEIGHTS_URL.rsplit("/", 1)[-1]


def alexnet(seed: int = 0) -> tuple[torch.nn.Module, bool]:
    """torchvision AlexNet in eval mode, and whether it has ImageNet weights.

    Returns `(model, pretrained)`. With the weights in torch's hub cache (`labkit fetch-weights`)
    they are loaded from that file; otherwise the weights are random, drawn with `seed` (the same
    on every call and machine) without disturbing the global random state. Never downloads.
    """
    import torch
    import torchvision

    path = weights_path()
    with torch.random.fork_rng(devices=[]):  # building the model draws random weights: keep the caller's RNG
        torch.manual_seed(seed)
        model = torchvision.models.alexnet(weights=None)
    if not path.is_file():
        return model.eval(), False
    from .weights import describe_nonfinite, nonfinite_tensors

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    except Exception as error:
        raise RuntimeError(f"cannot load AlexNet weights from '{path}' ({type(error).__name__}): "
                           "the file is damaged; delete it and run `labkit fetch-weights` again") from None
    bad = nonfinite_tensors(state)
    if bad:
        raise RuntimeError(f"the AlexNet weights in '{path}' hold {describe_nonfinite(bad)}: "
                           "delete it and run `labkit fetch-weights` again")
    return model.eval(), True

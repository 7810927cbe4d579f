"""Loading and showing images for the lessons (OpenCV reads BGR; everything here is RGB)."""
from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np

__all__ = ["load_image", "show_images", "psnr"]

_JPEG_START, _JPEG_END = b"\xff\xd8", b"\xff\xd9"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_has_alpha(data: bytes) -> bool:
    """Whether a PNG stores an alpha channel: colour type 4 (grey + alpha) or 6 (RGBA) in its IHDR chunk."""
    return data.startswith(_PNG_SIGNATURE) and len(data) > 25 and data[12:16] == b"IHDR" and data[25] in (4, 6)


def load_image(path: str | Path) -> np.ndarray:
    """An RGB uint8 array of shape (H, W, 3) from an image file, with a clear error if it cannot be read whole.

    A JPEG that stops before its end marker is refused (libjpeg would fill the missing rows and
    only print a warning). An alpha channel is dropped, with a warning that says so.
    """
    import cv2

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no image at '{path}': check the name (shipped images are in data/)")
    data = path.read_bytes()
    if data.startswith(_JPEG_START) and not data.rstrip(b"\x00\r\n ").endswith(_JPEG_END):
        raise ValueError(f"'{path.name}' is a truncated JPEG: it stops before the end-of-image marker (FFD9), so "
                         f"part of the picture is missing; copy or download the file again")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"'{path.name}' is not an image OpenCV can read (PNG, JPEG, BMP, ...)")
    if _png_has_alpha(data):
        warnings.warn(f"'{path.name}' has an alpha (transparency) channel; load_image keeps the RGB channels "
                      "and drops alpha (transparent pixels keep whatever colour they store)", stacklevel=2)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def show_images(images: Mapping[str, np.ndarray], *, size: float = 3.5, pixelated: bool = False) -> None:
    """Show images side by side with their titles (PNG, not compared by nbval).

    Returns None, so a cell ending with this call shows the picture once and nothing else.
    """
    import matplotlib.pyplot as plt

    if not images:
        raise ValueError("give at least one image: show_images({'title': array, ...})")
    fig, axes = plt.subplots(1, len(images), figsize=(size * len(images), size), squeeze=False)
    for ax, (title, image) in zip(axes[0], images.items()):
        array = np.asarray(image)
        ax.imshow(array, interpolation="nearest" if pixelated else "antialiased",
                  cmap="gray" if array.ndim == 2 else None)
        ax.set_title(title)
        ax.axis("off")
    fig.tight_layout()
    plt.show()


def psnr(reference: np.ndarray, image: np.ndarray, *, peak: float = 255.0) -> float:
    """Peak signal-to-noise ratio in dB between two arrays of the same shape (higher is closer)."""
    reference = np.asarray(reference, dtype=np.float64)
    image = np.asarray(image, dtype=np.float64)
    if reference.shape != image.shape:
        raise ValueError(f"images differ in shape: {reference.shape} vs {image.shape}; crop or resize first")
    mse = float(np.mean((reference - image) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(peak**2 / mse)

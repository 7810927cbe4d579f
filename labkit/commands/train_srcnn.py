"""`labkit train-srcnn`: train the kit's SRCNN, write its state dict, and report PSNR on the held-out photo.

The default output is artifacts/train-srcnn/srcnn_x234.pth; the shipped data/srcnn_x234.pth
(the weights the lessons load) is replaced only with `--replace-shipped`.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

__all__ = ["ARTIFACTS", "output_path", "configure", "main"]

ARTIFACTS = "train-srcnn"  # artifacts/<this>/


def output_path(args: argparse.Namespace) -> Path:
    """Where the state dict goes: --out, the shipped data/ file with --replace-shipped, else artifacts/train-srcnn/."""
    from .. import paths
    from ..srcnn import WEIGHTS

    if args.out:
        out = Path(args.out)
        if out.is_dir():
            raise IsADirectoryError(f"--out '{out}' is a folder: give a file name such as {out / WEIGHTS}")
        shipped = paths.repo_root() / "data" / WEIGHTS
        if out.resolve() == shipped.resolve():
            raise ValueError(f"--out points at the shipped data/{WEIGHTS}: say --replace-shipped to replace it")
        return out
    if args.replace_shipped:
        return paths.repo_root() / "data" / WEIGHTS
    return paths.artifacts_dir(ARTIFACTS) / WEIGHTS


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--steps", type=int, default=2000, help="training batches (default 2000)")
    parser.add_argument("--batch", type=int, default=16, help="crops per batch (default 16)")
    parser.add_argument("--patch", type=int, default=48, help="crop side in pixels, a multiple of 12 (default 48)")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate, cosine-decayed (default 1e-3)")
    parser.add_argument("--seed", type=int, default=0, help="seed for weights, crops and factors (default 0)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--out", default=None, help="where to write the state dict "
                                                  "(default artifacts/train-srcnn/srcnn_x234.pth)")
    where.add_argument("--replace-shipped", action="store_true",
                       help="replace data/srcnn_x234.pth, the weights the lessons load")


def main(args: argparse.Namespace) -> int:
    out = output_path(args)  # before importing torch and training: a bad --out fails at once, not after minutes

    import torch

    from ..images import load_image
    from ..paths import data_path, display_path
    from ..report import format_table
    from ..srcnn import HELD_OUT, evaluate
    from ..train_srcnn import FACTORS, train

    start = time.perf_counter()
    model = train(steps=args.steps, batch=args.batch, patch=args.patch, lr=args.lr, seed=args.seed)
    seconds = time.perf_counter() - start
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), out)
    print(f"wrote {display_path(out)} ({out.stat().st_size / 1024:.0f} KiB) after {args.steps} steps "
          f"in {seconds:.0f} s on {torch.get_num_threads()} thread(s), seed {args.seed}")
    rows, worst = [], float("inf")
    for name in HELD_OUT:
        image = load_image(data_path(f"images/{name}"))
        for factor in FACTORS:
            ours, base = evaluate(model, image, factor)
            worst = min(worst, ours - base)
            rows.append((name, f"x{factor}", f"{ours:.2f}", f"{base:.2f}", f"{ours - base:+.2f}"))
    print(format_table(("photo", "factor", "SRCNN dB", "bicubic dB", "gain"), rows, align="lrrrr"))
    if not args.replace_shipped:
        where = args.out or display_path(out)  # --out as the user typed it; else inside the checkout
        print(f"to use them: labkit.srcnn.load_srcnn(path='{where}'); "
              "to ship them: labkit train-srcnn --replace-shipped")
    if worst <= 0:
        print("warning: SRCNN does not beat bicubic at every factor; train longer (--steps)")
        return 1
    return 0

"""`labkit train-srcnn`: train the kit's SRCNN, write its state dict, and report PSNR on the held-out photo.

The default output is artifacts/train-srcnn/srcnn_x234.pth; the shipped data/srcnn_x234.pth
(the weights the lessons load) is replaced only with `--replace-shipped`, and only by weights
that score at least as well. Training, scoring and saving are labkit/train_srcnn.py's; this
module parses the options and prints.
"""
from __future__ import annotations

import argparse
import time

__all__ = ["configure", "main"]


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
                       help="replace data/srcnn_x234.pth, the weights the lessons load, if the new ones score "
                            "at least as well on the held-out photo")


def main(args: argparse.Namespace) -> int:
    from .. import train_srcnn
    from . import print_error

    # before importing torch and training: a bad --out fails at once, not after minutes
    out = train_srcnn.output_path(args.out, args.replace_shipped)

    import torch

    from ..paths import display_path
    from ..report import format_table

    start = time.perf_counter()
    try:
        model = train_srcnn.train(steps=args.steps, batch=args.batch, patch=args.patch, lr=args.lr, seed=args.seed)
        seconds = time.perf_counter() - start
        scores = train_srcnn.held_out_scores(model)
        saved = train_srcnn.save_trained(model, out, replace_shipped=args.replace_shipped, scores=scores)
    except train_srcnn.TrainingDiverged as error:
        print_error("train-srcnn", ValueError(f"{error}; nothing was written: lower --lr (default 1e-3)"))
        return 1
    if saved.kept_shipped:
        print(saved.kept_shipped)
    print(f"wrote {display_path(saved.path)} ({saved.path.stat().st_size / 1024:.0f} KiB) after {args.steps} steps "
          f"in {seconds:.0f} s on {torch.get_num_threads()} thread(s), seed {args.seed}")
    rows = [(name, f"x{factor}", f"{ours:.2f}", f"{base:.2f}", f"{ours - base:+.2f}")
            for name, factor, ours, base in scores]
    print(format_table(("photo", "factor", "SRCNN dB", "bicubic dB", "gain"), rows, align="lrrrr"))
    if saved.path != train_srcnn.output_path(replace_shipped=True):  # not written over the shipped weights
        where = args.out if args.out and saved.path == out else display_path(saved.path)  # --out as typed
        print(f"to use them: labkit.srcnn.load_srcnn(path='{where}'); "
              "to ship them: labkit train-srcnn --replace-shipped")
    if min(ours - base for _, _, ours, base in scores) <= 0:
        print("warning: SRCNN does not beat bicubic at every factor; train longer (--steps)")
        return 1
    return 1 if saved.kept_shipped else 0

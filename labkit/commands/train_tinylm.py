"""`labkit train-tinylm`: train Lesson 08's tiny language model, write its checkpoint, report held-out loss.

The logic is labkit/train_tinylm.py's (output_path, train, save_trained); this module parses and prints.
The default output is artifacts/train-tinylm/tinylm_bytes.pt. The shipped data/tinylm_bytes.pt
(the weights the lesson loads) is replaced only with `--replace-shipped`, and only by weights
whose held-out loss is lower than the shipped ones'. Non-finite weights are never written.
"""
from __future__ import annotations

import argparse
import time

__all__ = ["configure", "main"]


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--steps", type=int, default=1000, help="training batches (default 1000)")
    parser.add_argument("--batch", type=int, default=32, help="windows per batch (default 32)")
    parser.add_argument("--length", type=int, default=128, help="bytes per window (default 128)")
    parser.add_argument("--lr", type=float, default=5e-3, help="AdamW learning rate, cosine-decayed (default 5e-3)")
    parser.add_argument("--seed", type=int, default=0, help="seed for weights and windows (default 0)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--out", default=None, help="where to write the checkpoint "
                                                  "(default artifacts/train-tinylm/tinylm_bytes.pt)")
    where.add_argument("--replace-shipped", action="store_true",
                       help="replace data/tinylm_bytes.pt (the lesson's weights) if the new held-out loss is lower")


def main(args: argparse.Namespace) -> int:
    from .. import train_tinylm

    # before importing torch and training: a bad --out fails at once, not after minutes
    out = train_tinylm.output_path(args.out, args.replace_shipped)

    import torch

    from ..paths import display_path

    start = time.perf_counter()
    model, loss = train_tinylm.train(steps=args.steps, batch=args.batch, length=args.length, lr=args.lr,
                                     seed=args.seed, log_every=max(1, args.steps // 10))
    seconds = time.perf_counter() - start
    print(f"trained {args.steps} steps in {seconds:.0f} s on {torch.get_num_threads()} thread(s), seed {args.seed}: "
          f"held-out loss {loss:.3f} nats/byte")
    saved = train_tinylm.save_trained(model, loss, out, replace_shipped=args.replace_shipped)
    if saved.message:
        print(saved.message)
    if saved.path is None:
        return 1
    print(f"wrote {display_path(saved.path)} ({saved.path.stat().st_size / 1024:.0f} KiB)")
    if not args.replace_shipped:
        where = args.out or display_path(saved.path)
        print(f"to use them: labkit.tinylm.load_weights('{where}'); to ship them: labkit train-tinylm --replace-shipped")
    return 0

"""`labkit train-tinylm`: train Lesson 08's tiny language model, write its checkpoint, report held-out loss.

The default output is artifacts/train-tinylm/tinylm_bytes.pt. The shipped data/tinylm_bytes.pt
(the weights the lesson loads) is replaced only with `--replace-shipped`, and only by weights
whose held-out loss is lower than the shipped ones'. Non-finite weights are never written.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

__all__ = ["ARTIFACTS", "output_path", "configure", "main"]

ARTIFACTS = "train-tinylm"  # artifacts/<this>/


def output_path(args: argparse.Namespace) -> Path:
    """Where the checkpoint goes: --out, the shipped data/ file with --replace-shipped, else artifacts/train-tinylm/."""
    from .. import paths
    from ..tinylm import WEIGHTS

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


def check_finite(state: dict) -> None:
    """Raise ValueError naming the first tensor with NaN or inf: such weights are never saved."""
    import torch

    for name, tensor in state.items():
        if not torch.isfinite(tensor).all():
            raise ValueError(f"training produced non-finite weights in {name!r}: nothing written; "
                             "lower --lr or change --seed")


def main(args: argparse.Namespace) -> int:
    out = output_path(args)  # before importing torch and training: a bad --out fails at once, not after minutes

    import torch

    from ..paths import display_path
    from ..tinylm import WEIGHTS, corpus_text, encode, load_weights, split_corpus
    from ..train_tinylm import CONFIG, TinyLM, held_out_loss, train

    start = time.perf_counter()
    model, loss = train(steps=args.steps, batch=args.batch, length=args.length, lr=args.lr, seed=args.seed,
                        log_every=max(1, args.steps // 10))
    seconds = time.perf_counter() - start
    state = model.state_dict()
    check_finite(state)
    print(f"trained {args.steps} steps in {seconds:.0f} s on {torch.get_num_threads()} thread(s), seed {args.seed}: "
          f"held-out loss {loss:.3f} nats/byte")
    if args.replace_shipped and out.is_file():
        config, old_state = load_weights(out)
        shipped = TinyLM(**config)
        shipped.load_state_dict(old_state)
        old = held_out_loss(shipped.eval(), torch.tensor(encode(split_corpus(corpus_text())[1])))
        if not loss < old:
            print(f"not replacing data/{WEIGHTS}: its held-out loss {old:.3f} is not worse than {loss:.3f}")
            return 1
        print(f"replacing data/{WEIGHTS} (held-out loss {old:.3f} -> {loss:.3f}); record its new SHA-256 in "
              "labkit/tinylm.py and data/README.md")
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"config": dict(CONFIG), "state_dict": state}, out)
    print(f"wrote {display_path(out)} ({out.stat().st_size / 1024:.0f} KiB)")
    if not args.replace_shipped:
        where = args.out or display_path(out)
        print(f"to use them: labkit.tinylm.load_weights('{where}'); to ship them: labkit train-tinylm --replace-shipped")
    return 0

"""Training Lesson 08's tiny language model on the kit's lesson prose (reproducible, minutes on 2 cores).

`TinyLM` below is the lesson's model, kept here so the command can train it; the notebook shows the
same class in its cells, and tests/test_tinylm.py keeps the two sources identical. The command is
`labkit train-tinylm` (labkit/commands/train_tinylm.py):

    labkit train-tinylm                     # writes artifacts/train-tinylm/tinylm_bytes.pt
    labkit train-tinylm --replace-shipped   # replaces data/tinylm_bytes.pt, if its held-out loss is better
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["TinyLM", "Block", "CONFIG", "ARTIFACTS", "train", "held_out_loss", "batches", "output_path", "Saved",
           "save_trained"]

ARTIFACTS = "train-tinylm"  # artifacts/<this>/

CONFIG = {"vocab": 256, "d_model": 128, "n_layers": 2, "n_heads": 4, "n_kv_heads": 2, "max_len": 256}


class Block(nn.Module):
    """Pre-norm transformer block: grouped-query self-attention with a KV cache, then an MLP."""

    def __init__(self, d_model, n_heads, n_kv_heads):
        super().__init__()
        self.n_heads, self.n_kv_heads, self.head_dim = n_heads, n_kv_heads, d_model // n_heads
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.q = nn.Linear(d_model, n_heads * self.head_dim, bias=False)
        self.k = nn.Linear(d_model, n_kv_heads * self.head_dim, bias=False)
        self.v = nn.Linear(d_model, n_kv_heads * self.head_dim, bias=False)
        self.o = nn.Linear(n_heads * self.head_dim, d_model, bias=False)
        self.mlp = nn.Sequential(nn.Linear(d_model, 4 * d_model), nn.GELU(), nn.Linear(4 * d_model, d_model))

    def forward(self, x, mask, past_key=None, past_value=None):
        b, t, _ = x.shape
        h = self.norm1(x)  # q: (b, heads, t, head_dim); k, v: (b, kv_heads, t, head_dim)
        q, k, v = (proj(h).view(b, t, -1, self.head_dim).transpose(1, 2) for proj in (self.q, self.k, self.v))
        if past_key is not None:  # the cache grows here
            k, v = torch.cat([past_key, k], dim=2), torch.cat([past_value, v], dim=2)
        y = self.attend(q, k, v, mask)
        x = x + self.o(y.transpose(1, 2).reshape(b, t, -1))
        return x + self.mlp(self.norm2(x)), k, v

    def attend(self, q, k, v, mask):  # each group of n_heads // n_kv_heads query heads reads one KV head
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=True)


class TinyLM(nn.Module):
    """A decoder-only transformer over bytes; `past` is ((key, value) per layer) and comes back grown."""

    def __init__(self, vocab=256, d_model=128, n_layers=2, n_heads=4, n_kv_heads=2, max_len=256):
        super().__init__()
        self.tok, self.pos = nn.Embedding(vocab, d_model), nn.Embedding(max_len, d_model)
        self.blocks = nn.ModuleList(Block(d_model, n_heads, n_kv_heads) for _ in range(n_layers))
        self.norm, self.head = nn.LayerNorm(d_model), nn.Linear(d_model, vocab, bias=False)

    def forward(self, input_ids, past=None):
        t = input_ids.shape[1]
        start = 0 if past is None else past[0][0].shape[2]  # tokens already cached
        positions = torch.arange(t, device=input_ids.device) + start
        mask = torch.arange(start + t, device=input_ids.device)[None, :] <= positions[:, None]  # causal
        x = self.tok(input_ids) + self.pos(positions)
        present = []
        for i, block in enumerate(self.blocks):
            x, k, v = block(x, mask, *(past[i] if past is not None else ()))
            present.append((k, v))
        return self.head(self.norm(x)), tuple(present)


def batches(ids: torch.Tensor, batch: int, length: int, generator: torch.Generator):
    """Endless (inputs, targets) pairs: `batch` random windows of `length` tokens and the same shifted by one."""
    while True:
        starts = torch.randint(0, len(ids) - length - 1, (batch,), generator=generator)
        window = torch.stack([ids[s:s + length + 1] for s in starts.tolist()])
        yield window[:, :-1], window[:, 1:]


@torch.no_grad()
def held_out_loss(model: TinyLM, ids: torch.Tensor, length: int = 128) -> float:
    """Mean next-byte cross-entropy (nats) over consecutive windows of the held-out ids."""
    model.eval()
    n = (len(ids) - 1) // length
    x = ids[: n * length].view(n, length)
    y = ids[1: n * length + 1].view(n, length)
    losses = [F.cross_entropy(model(x[i:i + 32])[0].flatten(0, 1), y[i:i + 32].flatten()).item() * len(x[i:i + 32])
              for i in range(0, n, 32)]
    return sum(losses) / n


def train(steps: int = 1000, batch: int = 32, length: int = 128, lr: float = 5e-3, seed: int = 0,
          log_every: int = 0) -> tuple[TinyLM, float]:
    """Train TinyLM(**CONFIG) on the training part of the corpus; return it (eval mode) and its held-out loss."""
    from .tinylm import corpus_text, encode, split_corpus

    torch.manual_seed(seed)
    train_text, held_text = split_corpus(corpus_text())
    train_ids, held_ids = torch.tensor(encode(train_text)), torch.tensor(encode(held_text))
    model = TinyLM(**CONFIG)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01, betas=(0.9, 0.98))
    generator = torch.Generator().manual_seed(seed)
    source = batches(train_ids, batch, length, generator)
    model.train()
    for step in range(steps):
        warm = min(1.0, (step + 1) / 100)
        for group in optimizer.param_groups:
            group["lr"] = lr * warm * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * step / steps)))
        x, y = next(source)
        loss = F.cross_entropy(model(x)[0].flatten(0, 1), y.flatten())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if log_every and (step + 1) % log_every == 0:
            print(f"step {step + 1}/{steps}: training loss {loss.item():.3f}", flush=True)
    model.eval()
    return model, held_out_loss(model, held_ids)


def output_path(out: str | Path | None = None, replace_shipped: bool = False) -> Path:
    """Where the checkpoint goes: `out`, the shipped data/ file with `replace_shipped`, else artifacts/train-tinylm/."""
    from .tinylm import WEIGHTS
    from .weights import training_output

    return training_output(out, replace_shipped, WEIGHTS, ARTIFACTS)


@dataclass(frozen=True)
class Saved:
    """What `save_trained` did: the file written (None when the shipped one was kept) and why."""

    path: Path | None
    message: str


def save_trained(model: TinyLM, loss: float, out: Path, *, replace_shipped: bool = False) -> Saved:
    """Write `model`'s checkpoint to `out`: never non-finite weights, never over shipped weights that do better.

    With `replace_shipped`, the file at `out` (the shipped one) is replaced only when `loss`, the new
    held-out loss, is lower than the loss of the weights already there.
    """
    from .tinylm import WEIGHTS, corpus_text, encode, load_weights, split_corpus
    from .weights import describe_nonfinite, nonfinite_tensors, save_atomically

    state = model.state_dict()
    bad = nonfinite_tensors(state)
    if bad or not math.isfinite(loss):
        found = describe_nonfinite(bad) if bad else f"a held-out loss of {loss}"
        raise ValueError(f"training produced {found}: nothing was written; lower --lr or change --seed")
    note = ""
    if replace_shipped and out.is_file():
        config, old_state = load_weights(out)
        shipped = TinyLM(**config)
        shipped.load_state_dict(old_state)
        old = held_out_loss(shipped.eval(), torch.tensor(encode(split_corpus(corpus_text())[1])))
        if not loss < old:
            return Saved(None, f"not replacing data/{WEIGHTS}: its held-out loss {old:.3f} is not worse than {loss:.3f}")
        note = (f"replacing data/{WEIGHTS} (held-out loss {old:.3f} -> {loss:.3f}); record its new SHA-256 in "
                "labkit/tinylm.py and data/README.md")
    save_atomically({"config": dict(CONFIG), "state_dict": state}, out)
    return Saved(out, note)

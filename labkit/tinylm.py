"""Plumbing for Lesson 08's tiny language model: its byte tokenizer, its training text, its shipped weights.

The model itself (`TinyLM`) is written in the lesson notebook; `labkit.train_tinylm` keeps the
same class for the training command, and a test keeps the two identical.

- Tokens are the bytes of UTF-8 text (a vocabulary of 256), so no vocabulary file is needed.
- The training text is the kit's own lesson prose: the markdown cells of Lessons 00-07.
- `load_weights()` reads data/tinylm_bytes.pt after checking its SHA-256 against `WEIGHTS_SHA256`.
"""
from __future__ import annotations

import json
from pathlib import Path

__all__ = ["WEIGHTS", "WEIGHTS_SHA256", "VOCAB", "encode", "decode", "corpus_text", "split_corpus",
           "load_weights"]

WEIGHTS = "tinylm_bytes.pt"   # in data/
WEIGHTS_SHA256 = "26ad790dbeb148b75c55993d602fd01d320e5fe945a70e71f70bb8aac586ac40"
VOCAB = 256                   # one token per byte
HELD_OUT_FRACTION = 0.1       # the end of the corpus, never trained on


def encode(text: str) -> list[int]:
    """Token ids of `text`: its UTF-8 bytes."""
    if not isinstance(text, str):
        raise TypeError(f"encode takes a str, got {type(text).__name__}: decode bytes first")
    return list(text.encode("utf-8"))


def decode(ids) -> str:
    """Text of token ids (a list, or a 1-D tensor / array); bytes that do not form UTF-8 become '\ufffd'."""
    values = [int(i) for i in (ids.tolist() if hasattr(ids, "tolist") else ids)]
    bad = [i for i in values if not 0 <= i < VOCAB]
    if bad:
        raise ValueError(f"token ids must be bytes (0-{VOCAB - 1}), got {bad[:3]}")
    return bytes(values).decode("utf-8", errors="replace")


def corpus_text(notebooks: Path | None = None) -> str:
    """The markdown cells of Lessons 00-07 (`notebooks/0[0-7]_*.ipynb`), in lesson order, joined by blank lines."""
    from .paths import repo_root

    folder = Path(notebooks) if notebooks is not None else repo_root() / "notebooks"
    paths = sorted(p for p in folder.glob("0[0-7]_*.ipynb"))
    if not paths:
        raise FileNotFoundError(f"no lesson notebooks 00-07 in '{folder}': run from the onnx-labkit checkout")
    parts = []
    for path in paths:
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        parts += ["".join(c["source"]) for c in cells if c["cell_type"] == "markdown"]
    return "\n\n".join(parts)


def split_corpus(text: str) -> tuple[str, str]:
    """(training text, held-out text): the last HELD_OUT_FRACTION of the corpus is held out."""
    cut = int(len(text) * (1 - HELD_OUT_FRACTION))
    return text[:cut], text[cut:]


def load_weights(path: str | Path | None = None) -> tuple[dict, dict]:
    """(config, state dict) of the shipped weights, or of the file at `path` (checked only when shipped).

    The config holds TinyLM's constructor arguments; `TinyLM(**config).load_state_dict(state)`.
    """
    import torch

    from .paths import data_path
    from .report import first_line
    from .weights import file_sha256

    shipped = path is None
    path = data_path(WEIGHTS) if shipped else Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no weights at '{path}': train them with `labkit train-tinylm`")
    if shipped and file_sha256(path) != WEIGHTS_SHA256:
        raise ValueError(f"data/{WEIGHTS} does not have the SHA-256 recorded in labkit.tinylm.WEIGHTS_SHA256 "
                         f"(and data/README.md): restore it with `git checkout data/{WEIGHTS}`")
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        config, state = dict(saved["config"]), saved["state_dict"]
    except Exception as error:  # a foreign or truncated file: name the file, not torch's internals
        raise ValueError(f"'{path.name}' is not a tiny LM checkpoint ({{'config', 'state_dict'}}): "
                         f"{first_line(error)}") from None
    return config, state

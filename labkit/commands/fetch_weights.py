"""`labkit fetch-weights`: download AlexNet's ImageNet weights into torch's hub cache, checked by SHA-256.

The only command that uses the network; the downloading and checking are labkit/fetch_weights.py's.
This module parses the options and prints the outcome.
"""
from __future__ import annotations

import argparse
import math
import sys

__all__ = ["configure", "main"]


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--force", action="store_true", help="download again even if a good file is cached")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the server (default 30)")


def main(args: argparse.Namespace) -> int:
    """0 when good weights are cached afterwards, 1 when the download failed, 2 for a bad option."""
    from .. import imagenet
    from ..fetch_weights import cached_weights_ok, fetch_weights
    from . import print_error

    if not (math.isfinite(args.timeout) and args.timeout > 0):
        raise ValueError(f"--timeout must be a positive number of seconds, such as 30; got {args.timeout}")
    path = imagenet.weights_path()
    if path.is_file() and not args.force:
        if cached_weights_ok(path):
            print(f"AlexNet ImageNet weights already cached (SHA-256 {imagenet.WEIGHTS_SHA256_PREFIX}... checked): "
                  f"{path}")
            return 0
        print(f"the cached file {path} is damaged (its SHA-256 does not start with "
              f"{imagenet.WEIGHTS_SHA256_PREFIX}): downloading it again", file=sys.stderr)
    try:
        path = fetch_weights(timeout=args.timeout)
    except ConnectionError as error:
        print_error("fetch-weights", error)
        return 1
    except OSError as error:  # the cache folder cannot be created or written
        print_error("fetch-weights", PermissionError(f"cannot write {path}: {error.strerror or error}; "
                                                     "set TORCH_HOME to a folder you can write"))
        return 1
    print(f"AlexNet ImageNet weights downloaded: {path}\n"
          "labkit.imagenet.alexnet() now returns the pretrained model (Lesson 01 prints real labels)")
    return 0

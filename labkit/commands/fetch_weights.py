"""`labkit fetch-weights`: download AlexNet's ImageNet weights into torch's hub cache, checked by SHA-256.

The only command that uses the network. A file already in the cache counts as cached only when
its SHA-256 starts with the prefix in its name (torchvision's convention); a damaged file is
reported and downloaded again.
"""
from __future__ import annotations

import argparse
import hashlib
import math
import sys
from pathlib import Path

__all__ = ["file_sha256", "cached_weights_ok", "fetch_weights", "configure", "main"]


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file, in hex, read in 1 MiB pieces."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cached_weights_ok(path: Path) -> bool:
    """Whether `path` holds AlexNet's weights: its SHA-256 starts with the prefix torchvision publishes."""
    from .. import imagenet

    return path.is_file() and file_sha256(path).startswith(imagenet.WEIGHTS_SHA256_PREFIX)


def fetch_weights(*, timeout: float = 30.0) -> Path:
    """Download AlexNet's ImageNet weights into torch's hub cache (hash-checked by torch.hub); returns the path.

    Raises ConnectionError naming the URL and the cause when the download fails (e.g. offline).
    """
    import http.client
    import socket
    import urllib.error

    import torch

    from .. import imagenet

    path = imagenet.weights_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout)
    try:
        torch.hub.download_url_to_file(imagenet.WEIGHTS_URL, str(path), hash_prefix=imagenet.WEIGHTS_SHA256_PREFIX,
                                       progress=True)
    except urllib.error.HTTPError as error:  # the server answered, but not with the file
        raise ConnectionError(f"cannot download {imagenet.WEIGHTS_URL}: the server answered HTTP {error.code} "
                              f"{error.reason}; check the URL in a browser") from None
    except (urllib.error.URLError, TimeoutError, ConnectionError, http.client.HTTPException) as error:
        reason = getattr(error, "reason", None) or error
        raise ConnectionError(
            f"cannot download {imagenet.WEIGHTS_URL}: {reason}. This machine seems to be offline or behind a "
            f"proxy (set HTTPS_PROXY). Alternatively copy that file from a machine with internet to "
            f"{path}") from None
    except RuntimeError as error:  # torch.hub's hash check
        raise ConnectionError(f"the file downloaded from {imagenet.WEIGHTS_URL} is damaged ({error}); "
                              "run the command again") from None
    finally:
        socket.setdefaulttimeout(previous)
    return path


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--force", action="store_true", help="download again even if a good file is cached")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the server (default 30)")


def main(args: argparse.Namespace) -> int:
    """0 when good weights are cached afterwards, 1 when the download failed, 2 for a bad option."""
    from .. import imagenet
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

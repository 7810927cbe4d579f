"""Downloading AlexNet's ImageNet weights into torch's hub cache, checked by SHA-256 (`labkit fetch-weights`).

The only code in the kit that uses the network. A file already in the cache counts as cached
only when its SHA-256 starts with the prefix in its name (torchvision's convention); the command
(labkit/commands/fetch_weights.py) reports a damaged one and downloads it again.
"""
from __future__ import annotations

from pathlib import Path

from .weights import file_sha256

__all__ = ["cached_weights_ok", "fetch_weights"]


def cached_weights_ok(path: Path) -> bool:
    """Whether `path` holds AlexNet's weights: its SHA-256 starts with the prefix torchvision publishes."""
    from . import imagenet

    return path.is_file() and file_sha256(path).startswith(imagenet.WEIGHTS_SHA256_PREFIX)


def fetch_weights(*, timeout: float = 30.0) -> Path:
    """Download AlexNet's ImageNet weights into torch's hub cache (hash-checked by torch.hub); returns the path.

    Raises ConnectionError naming the URL and the cause when the download fails (e.g. offline).
    """
    import http.client
    import socket
    import urllib.error

    import torch

    from . import imagenet

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

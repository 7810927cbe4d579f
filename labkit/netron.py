"""Opt-in: open a model in Netron (the seeds' viewer), served on 127.0.0.1 only."""
from __future__ import annotations

from pathlib import Path

__all__ = ["serve", "stop"]


def serve(path: str | Path, port: int = 8081) -> str:
    """Serve `path` with Netron on http://127.0.0.1:PORT and return the address to open in a browser."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no model at '{path}': export it first")
    if not 1024 <= port <= 65535:
        raise ValueError(f"port must be between 1024 and 65535, got {port}")
    try:
        import netron
    except ImportError:
        raise ImportError("netron is not installed: pip install netron") from None
    netron.start(str(path), address=("127.0.0.1", port), browse=False)
    return f"http://127.0.0.1:{port}"


def stop(port: int = 8081) -> None:
    """Stop the Netron server started by `serve` on that port."""
    import netron

    netron.stop(("127.0.0.1", port))

"""labkit.netron: the opt-in viewer refuses bad requests before starting a server."""
import pytest

from labkit import netron


def test_serve_names_a_missing_model(tmp_path):
    with pytest.raises(FileNotFoundError, match="no model at .*export it first"):
        netron.serve(tmp_path / "missing.onnx")


@pytest.mark.parametrize("port", [80, 70000])
def test_serve_refuses_privileged_or_impossible_ports(affine_path, port):
    with pytest.raises(ValueError, match="port must be between 1024 and 65535"):
        netron.serve(affine_path, port=port)


def test_serve_binds_loopback_only_and_returns_the_address(affine_path, monkeypatch):
    calls = {}
    monkeypatch.setattr("netron.start", lambda file, address, browse: calls.update(file=file, address=address, browse=browse))
    assert netron.serve(affine_path, port=18081) == "http://127.0.0.1:18081"
    assert calls == {"file": str(affine_path), "address": ("127.0.0.1", 18081), "browse": False}

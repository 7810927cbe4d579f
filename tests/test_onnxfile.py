"""labkit.onnxfile: loading ONNX files and reading their real inputs."""
import numpy as np
import onnx
import pytest

import labkit


def test_load_model_reports_missing_file_with_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="no ONNX model at .*nope.onnx.*export it first"):
        labkit.load_model(tmp_path / "nope.onnx")


def test_load_model_rejects_a_text_file_as_not_onnx(tmp_path):
    path = tmp_path / "notes.onnx"
    path.write_text("this is a text file, not a protobuf")
    with pytest.raises(ValueError, match="'notes.onnx' is not an ONNX model"):
        labkit.load_model(path)


def test_load_model_rejects_an_empty_file_as_not_onnx(tmp_path):
    path = tmp_path / "empty.onnx"
    path.write_bytes(b"")
    with pytest.raises(ValueError, match="is not an ONNX model"):
        labkit.load_model(path)


def test_load_model_refuses_objects_that_are_neither_paths_nor_models():
    with pytest.raises(TypeError, match="expected a path to an .onnx file or an onnx.ModelProto, got int"):
        labkit.load_model(42)


def test_input_specs_skip_initializers_listed_as_graph_inputs(affine_model):
    affine_model.graph.input.append(onnx.helper.make_tensor_value_info("W", onnx.TensorProto.FLOAT, [4, 3]))
    specs = labkit.input_specs(affine_model)
    assert [s.name for s in specs] == ["x"]
    assert specs[0].dtype == np.float32
    assert specs[0].shape == ("N", 4)
    assert specs[0].shape_text() == "[N, 4]"


def test_output_specs_keep_graph_order(affine_path):
    assert [s.name for s in labkit.output_specs(affine_path)] == ["y"]


def test_a_missing_weights_file_is_named_with_the_fix(tmp_path, affine_model):
    onnx.save(affine_model, tmp_path / "big.onnx", save_as_external_data=True, location="big.onnx.data",
              size_threshold=0)
    (tmp_path / "big.onnx.data").unlink()
    with pytest.raises(FileNotFoundError, match=r"keeps its weights in 'big.onnx.data', which is not next to it: "
                                                r"copy the weights file along"):
        labkit.load_model(tmp_path / "big.onnx")


def test_an_onnx_file_is_parsed_once_and_reused(affine_path, monkeypatch):
    loaded = labkit.OnnxFile.open(affine_path)
    calls = []
    monkeypatch.setattr(onnx, "load", lambda *a, **k: calls.append(a) or pytest.fail("parsed again"))
    assert labkit.OnnxFile.open(loaded) is loaded
    labkit.compare_with_torch(lambda x: np.maximum(x.numpy() @ (np.arange(12, dtype=np.float32).reshape(4, 3) / 10)
                                                   + np.array([-1.0, 0.0, 1.0], np.float32), 0),
                              loaded, np.ones((1, 4), np.float32))
    assert calls == []


def test_weights_in_an_external_file_are_loaded_only_when_asked(tmp_path, affine_model):
    onnx.save(affine_model, tmp_path / "ext.onnx", save_as_external_data=True, location="ext.onnx.data",
              size_threshold=0)
    loaded = labkit.OnnxFile.open(tmp_path / "ext.onnx")
    assert loaded.proto.graph.initializer[0].data_location == onnx.TensorProto.EXTERNAL
    assert loaded.full().graph.initializer[0].data_location == onnx.TensorProto.DEFAULT
    np.testing.assert_allclose(labkit.run_onnx(loaded, np.ones((1, 4), np.float32), backend="reference")["y"],
                               labkit.run_onnx(loaded, np.ones((1, 4), np.float32))["y"])

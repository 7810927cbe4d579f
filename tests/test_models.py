"""labkit.models: loading ONNX files and reading their real inputs."""
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

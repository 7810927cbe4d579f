"""`labkit bench`: every bad model, input or setting is a one-line error before anything is allocated; a fixed table."""
import json
import re

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from labkit import bench, input_specs
from labkit.commands import bench as bench_command
from labkit.cli import main as cli_main
from test_measure import make_conv_model


@pytest.fixture
def conv_path(tmp_path):
    path = tmp_path / "conv.onnx"
    onnx.save(make_conv_model(), path)
    return path


def _run(capsys, *argv):
    status = cli_main(["bench", *map(str, argv)])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


# --------------------------------------------------------------------------- errors of the command

def test_missing_file_is_a_clear_error(tmp_path, capsys):
    status, out, err = _run(capsys, tmp_path / "nothing.onnx")
    assert status == 2 and out == ""
    assert err.startswith("labkit bench: error: no ONNX model at ") and "nothing.onnx" in err


def test_a_file_that_is_not_onnx_is_a_clear_error(tmp_path, capsys):
    path = tmp_path / "notes.onnx"
    path.write_text("these are not protobuf bytes")
    status, _, err = _run(capsys, path)
    assert status == 2
    assert "labkit bench: error: 'notes.onnx' is not an ONNX model" in err


def test_symbolic_dims_name_the_shape_option_to_add(conv_path, capsys):
    status, _, err = _run(capsys, conv_path, "--batch", "1")
    assert status == 2
    assert "input 'x' has symbolic dims [N, 3, H, W] that no option sizes: add --shape x=1x3x224x224" in err


@pytest.mark.parametrize("batches, bad", [("0", "0"), ("1,-8", "-8"), ("4,0,2", "0")])
def test_batch_sizes_below_one_are_rejected(affine_path, capsys, batches, bad):
    status, out, err = _run(capsys, affine_path, "--batch", batches)
    assert status == 2 and out == ""
    assert f"batch sizes must be >= 1, got {bad}" in err


def test_a_batch_that_is_not_a_number_is_rejected(affine_path, capsys):
    status, _, err = _run(capsys, affine_path, "--batch", "1,eight")
    assert status == 2 and "--batch takes whole numbers separated by commas, such as 1,8,32; got '1,eight'" in err


def test_a_malformed_shape_option_shows_the_expected_form(conv_path, capsys):
    status, _, err = _run(capsys, conv_path, "--shape", "x=1x3xbig")
    assert status == 2 and "--shape takes NAME=DxDx...D with positive sizes, such as image=1x3x224x224" in err


def test_a_shape_for_an_unknown_input_lists_the_inputs(conv_path, capsys):
    status, _, err = _run(capsys, conv_path, "--shape", "image=1x3x8x8")
    assert status == 2 and "model has no input 'image' (from --shape); its inputs are: 'x'" in err


def test_a_shape_of_the_wrong_rank_is_rejected(conv_path, capsys):
    status, _, err = _run(capsys, conv_path, "--shape", "x=3x8x8")
    assert status == 2 and "--shape x has 3 dims, but input 'x' has rank 4 [N, 3, H, W]" in err


def test_a_fixed_batch_cannot_be_benchmarked_at_another_size(static_affine_path, capsys):
    status, _, err = _run(capsys, static_affine_path, "--batch", "1,2")
    assert status == 2
    assert "input 'x' has a fixed batch of 2 [2, 4], so --batch 1 cannot run: use --batch 2" in err


# --------------------------------------------------------------------------- the table

def test_table_has_the_fixed_header_and_one_row_per_batch(affine_path, capsys):
    status, out, err = _run(capsys, affine_path, "--batch", "1,2,3", "--warmup", "0", "--repeat", "2", "--threads", "1")
    assert status == 0
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.lstrip().startswith("batch"))
    assert re.split(r"\s{2,}", lines[header].strip()) == list(bench_command.TABLE_HEADER)
    rows = lines[header + 1:]
    assert [row.split()[0] for row in rows] == ["1", "2", "3"]
    assert all(len(row.split()) == 5 for row in rows)
    assert "bench" in err  # the progress bar goes to stderr, never into the table


def test_json_output_is_one_object_with_a_row_per_batch(conv_path, capsys):
    status, out, _ = _run(capsys, conv_path, "--shape", "x=1x3x8x8", "--batch", "1,4", "--warmup", "0",
                          "--repeat", "1", "--json")
    assert status == 0
    result = json.loads(out)
    assert [row["batch"] for row in result["rows"]] == [1, 4]
    assert result["inputs"] == {"x": [1, 3, 8, 8]}
    assert result["gflop_per_item"] == pytest.approx(2 * 4 * 8 * 8 * 27 / 1e9)
    assert set(result["rows"][0]) == {"batch", "median_ms", "p90_ms", "throughput", "percent_of_peak"}


def test_default_batch_is_the_models_fixed_batch(static_affine_path, capsys):
    status, out, _ = _run(capsys, static_affine_path, "--warmup", "0", "--repeat", "1", "--json")
    assert status == 0 and [row["batch"] for row in json.loads(out)["rows"]] == [2]


def test_format_rows_aligns_columns_and_marks_unknown_peak():
    rows = [bench.BenchRow(1, 1.234, 2.5, 810.37, None), bench.BenchRow(32, 123.4, 130.0, 259.3, 45.67)]
    lines = bench_command.format_rows(rows).splitlines()
    assert len({len(line) for line in lines}) == 1
    assert lines[1].split()[-1] == "-" and lines[2].split()[-1] == "45.7"


def test_resolve_shapes_puts_the_batch_on_dim_zero_of_each_symbolic_input():
    shapes = bench.resolve_shapes(input_specs(make_conv_model()), 8, {"x": (1, 3, 32, 16)})
    assert shapes == {"x": (8, 3, 32, 16)}


def test_inputs_without_a_batch_dim_keep_their_own_shape():
    specs = input_specs(_reshape_model())
    assert bench.resolve_shapes(specs, 8) == {"x": (8, 4), "shape": (2,)}


# --------------------------------------------------------------------------- models ONNX Runtime or random inputs cannot run

def _tensor(name, elem, shape):
    return helper.make_tensor_value_info(name, elem, shape)


def _model(name, nodes, inputs, outputs, opsets=(("", 17),), initializer=()):
    graph = helper.make_graph(nodes, name, inputs, outputs, initializer=list(initializer))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid(*o) for o in opsets], ir_version=8)


def _reshape_model():
    """y = Reshape(x, shape): `shape` is an int64 [2] input, a setting rather than a batch of data."""
    return _model("reshape", [helper.make_node("Reshape", ["x", "shape"], ["y"])],
                  [_tensor("x", TensorProto.FLOAT, ["N", 4]), _tensor("shape", TensorProto.INT64, [2])],
                  [_tensor("y", TensorProto.FLOAT, None)])


def test_a_custom_op_names_the_op_and_how_to_provide_it(tmp_path, capsys):
    path = tmp_path / "custom.onnx"
    onnx.save(_model("custom", [helper.make_node("MyOp", ["x"], ["y"], domain="custom")],
                     [_tensor("x", TensorProto.FLOAT, ["N", 4])], [_tensor("y", TensorProto.FLOAT, ["N", 4])],
                     opsets=(("", 17), ("custom", 1))), path)
    status, out, err = _run(capsys, path, "--batch", "1", "--repeat", "1")
    assert status == 2 and out == ""
    assert err.startswith("labkit bench: error: ONNX Runtime cannot load 'custom.onnx': it uses custom::MyOp, "
                          "which ONNX Runtime does not implement; register the library")


def test_a_missing_external_weights_file_is_named(tmp_path, capsys):
    weight = numpy_helper.from_array(np.ones((4, 3), np.float32), "W")
    path = tmp_path / "external.onnx"
    onnx.save(_model("external", [helper.make_node("MatMul", ["x", "W"], ["y"])],
                     [_tensor("x", TensorProto.FLOAT, ["N", 4])], [_tensor("y", TensorProto.FLOAT, ["N", 3])],
                     initializer=[weight]),
              path, save_as_external_data=True, location="external.onnx.data", size_threshold=0)
    (tmp_path / "external.onnx.data").unlink()
    status, _, err = _run(capsys, path)
    assert status == 2
    assert "labkit bench: error: 'external.onnx' keeps its weights in 'external.onnx.data', which is not next to it" in err


@pytest.fixture
def reshape_path(tmp_path):
    path = tmp_path / "reshape.onnx"
    onnx.save(_reshape_model(), path)
    return path


def test_an_input_without_a_batch_dim_asks_for_its_value(reshape_path, capsys):
    status, _, err = _run(capsys, reshape_path, "--batch", "1")
    assert status == 2
    assert ("input 'shape' (int64 [2]) has no batch dim: it is a setting (a size, an index, a factor) that random "
            "numbers cannot stand for; give its value, e.g. --value shape=1,1") in err


def test_the_value_of_a_setting_input_makes_the_model_run(reshape_path, capsys):
    status, out, _ = _run(capsys, reshape_path, "--batch", "2", "--value", "shape=4,2", "--warmup", "0",
                          "--repeat", "1", "--json")
    assert status == 0 and json.loads(out)["inputs"] == {"x": [2, 4], "shape": [2]}


def test_a_value_the_model_cannot_run_with_is_one_line_from_onnx_runtime(reshape_path, capsys):
    status, _, err = _run(capsys, reshape_path, "--batch", "2", "--value", "shape=3,5", "--repeat", "1")
    assert status == 2
    assert "labkit bench: error: ONNX Runtime could not run 'reshape.onnx' at batch 2 on random inputs:" in err
    assert "[E:onnxruntime" not in err  # ORT's own log line is not repeated


@pytest.mark.parametrize("value, message", [("shape=1", "gives 1 number(s), but input 'shape' [2] holds 2"),
                                            ("x=1", "input 'x' [N, 4] is a batch of data"),
                                            ("k=1", "model has no input 'k' (from --value)"),
                                            ("shape=", "--value takes NAME=V or NAME=V,V,... with numbers")])
def test_bad_values_are_named(reshape_path, capsys, value, message):
    status, _, err = _run(capsys, reshape_path, "--value", value)
    assert status == 2 and message in err


def test_a_batch_too_large_for_memory_is_refused_with_the_estimate_before_allocating(tmp_path, capsys):
    path = tmp_path / "conv224.onnx"
    onnx.save(make_conv_model(height=224, width=224), path)
    status, out, err = _run(capsys, path, "--batch", "100000")  # about 131 GiB: numpy would fail to allocate it
    assert status == 2 and out == ""
    assert ("labkit bench: error: --batch 100000 would need about 130.8 GiB (inputs 56.1, intermediate and output "
            "tensors 74.8, weights 0.0), more than the") in err
    assert "GiB allowed (half of the" in err and "use --batch" in err


def test_max_memory_sets_the_ceiling_and_names_the_largest_batch_that_fits(conv_path, capsys):
    status, _, err = _run(capsys, conv_path, "--shape", "x=1x3x64x64", "--batch", "1,3000", "--max-memory", "0.25")
    assert status == 2 and "--batch 3000 would need about 0.3 GiB" in err
    per_item = (3 * 64 * 64 + 4 * 64 * 64) * 4
    fits = int((0.25 * 1024**3 - 4 * 27 * 4) // per_item)
    assert f"more than the 0.2 GiB allowed (set by --max-memory): use --batch {fits} or less" in err


@pytest.mark.parametrize("option, value, message", [
    ("--threads", "0", "--threads must be >= 1, got 0"), ("--warmup", "-1", "--warmup must be >= 0, got -1"),
    ("--repeat", "0", "--repeat must be >= 1, got 0"), ("--gflop", "0", "--gflop must be a number > 0, got 0.0"),
    ("--max-memory", "-2", "--max-memory must be a number of GiB > 0, got -2.0")])
def test_settings_are_checked_naming_the_option(affine_path, capsys, option, value, message):
    status, out, err = _run(capsys, affine_path, option, value)
    assert status == 2 and out == "" and message in err


def test_check_settings_is_the_one_place_for_numeric_settings():
    with pytest.raises(ValueError, match="batch sizes must be >= 1, got 0"):
        bench.check_settings([1, 0])
    with pytest.raises(ValueError, match="--threads must be >= 1, got True"):
        bench.check_settings([1], threads=True)

"""labkit bench and its measuring helpers: clear errors for bad input, a table of fixed form, exact FLOP counts."""
import json
import re

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from helpers import make_affine_model
from labkit import bench, input_specs
from labkit.cli import main as cli_main


def make_conv_model(batch="N", height="H", width="W") -> onnx.ModelProto:
    """y = Conv(x, W) with x: [batch, 3, height, width], W: [4, 3, 3, 3], padding 1 (same-size output)."""
    weight = numpy_helper.from_array(np.ones((4, 3, 3, 3), np.float32) / 27, "W")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "W"], ["y"], pads=[1, 1, 1, 1])], "conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, height, width])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 4, height, width])],
        initializer=[weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model)
    return model


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
    assert re.split(r"\s{2,}", lines[header].strip()) == list(bench.TABLE_HEADER)
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


def test_format_table_aligns_columns_and_marks_unknown_peak():
    rows = [bench.BenchRow(1, 1.234, 2.5, 810.37, None), bench.BenchRow(32, 123.4, 130.0, 259.3, 45.67)]
    lines = bench.format_table(rows).splitlines()
    assert len({len(line) for line in lines}) == 1
    assert lines[1].split()[-1] == "-" and lines[2].split()[-1] == "45.7"


# --------------------------------------------------------------------------- helpers

def test_count_flops_counts_two_per_multiply_add_for_conv():
    flops = bench.count_flops(make_conv_model(), {"x": (2, 3, 16, 16)})
    assert flops.total == 2 * 2 * 4 * 16 * 16 * 3 * 3 * 3
    assert flops.by_op == {"Conv": flops.total} and flops.skipped == ()


def test_count_flops_for_matmul_uses_the_inferred_shapes():
    flops = bench.count_flops(make_affine_model(), {"x": (5, 4)})
    assert flops.total == 2 * 5 * 3 * 4 and flops.nodes == 1


def test_count_flops_reads_gemm_transposes():
    a = helper.make_tensor_value_info("a", TensorProto.FLOAT, [6, 5])  # used transposed: M=5, K=6
    weight = numpy_helper.from_array(np.zeros((7, 6), np.float32), "B")  # transposed: K=6, N=7
    graph = helper.make_graph([helper.make_node("Gemm", ["a", "B"], ["y"], transA=1, transB=1)], "gemm", [a],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [5, 7])], initializer=[weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    assert bench.count_flops(model).total == 2 * 5 * 7 * 6


def test_count_flops_rejects_an_unknown_input_name():
    with pytest.raises(ValueError, match="model has no input 'image'; its inputs are: 'x'"):
        bench.count_flops(make_conv_model(), {"image": (1, 3, 8, 8)})


def test_count_flops_reports_nodes_it_cannot_size():
    flops = bench.count_flops(make_conv_model())  # N, H, W left symbolic
    assert flops.total == 0 and len(flops.skipped) == 1


def test_time_it_runs_warmup_untimed_then_the_timed_repeats():
    calls = []
    timing = bench.time_it(lambda: calls.append(1), warmup=3, repeat=4, items=8)
    assert len(calls) == 7 and len(timing.seconds) == 4 and timing.items == 8
    assert timing.p90_ms >= timing.median_ms >= 0


@pytest.mark.parametrize("kwargs, message", [({"warmup": -1}, "warmup must be >= 0"), ({"repeat": 0}, "repeat must be >= 1"),
                                             ({"items": 0}, "items must be >= 1")])
def test_time_it_rejects_impossible_counts(kwargs, message):
    with pytest.raises(ValueError, match=message):
        bench.time_it(lambda: None, **kwargs)


def test_timing_throughput_and_share_of_peak_follow_the_median():
    timing = bench.Timing((0.010, 0.020, 0.030), items=4)
    assert timing.median_ms == pytest.approx(20.0)
    assert timing.throughput == pytest.approx(200.0)
    assert timing.percent_of_peak(gflop_per_item=0.5, peak_gflops=200.0) == pytest.approx(50.0)


def test_resolve_shapes_puts_the_batch_on_dim_zero_of_each_symbolic_input():
    shapes = bench.resolve_shapes(input_specs(make_conv_model()), 8, {"x": (1, 3, 32, 16)})
    assert shapes == {"x": (8, 3, 32, 16)}

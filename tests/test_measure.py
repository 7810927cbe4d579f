"""labkit.measure: timings, FLOPs and memory read from shape inference, and the machine's facts."""
import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import onnx

from helpers import make_affine_model
from labkit import measure


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


def test_count_flops_counts_two_per_multiply_add_for_conv():
    flops = measure.count_flops(make_conv_model(), {"x": (2, 3, 16, 16)})
    assert flops.total == 2 * 2 * 4 * 16 * 16 * 3 * 3 * 3
    assert flops.by_op == {"Conv": flops.total} and flops.skipped == ()


def test_count_flops_for_matmul_uses_the_inferred_shapes():
    flops = measure.count_flops(make_affine_model(), {"x": (5, 4)})
    assert flops.total == 2 * 5 * 3 * 4 and flops.nodes == 1


def test_count_flops_reads_gemm_transposes():
    a = helper.make_tensor_value_info("a", TensorProto.FLOAT, [6, 5])  # used transposed: M=5, K=6
    weight = numpy_helper.from_array(np.zeros((7, 6), np.float32), "B")  # transposed: K=6, N=7
    graph = helper.make_graph([helper.make_node("Gemm", ["a", "B"], ["y"], transA=1, transB=1)], "gemm", [a],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [5, 7])], initializer=[weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    assert measure.count_flops(model).total == 2 * 5 * 7 * 6


def test_count_flops_rejects_an_unknown_input_name():
    with pytest.raises(ValueError, match="model has no input 'image'; its inputs are: 'x'"):
        measure.count_flops(make_conv_model(), {"image": (1, 3, 8, 8)})


def test_count_flops_reports_nodes_it_cannot_size():
    flops = measure.count_flops(make_conv_model())  # N, H, W left symbolic
    assert flops.total == 0 and len(flops.skipped) == 1


def test_time_it_runs_warmup_untimed_then_the_timed_repeats():
    calls = []
    timing = measure.time_it(lambda: calls.append(1), warmup=3, repeat=4, items=8)
    assert len(calls) == 7 and len(timing.seconds) == 4 and timing.items == 8
    assert timing.p90_ms >= timing.median_ms >= 0


@pytest.mark.parametrize("kwargs, message", [({"warmup": -1}, "warmup must be >= 0"), ({"repeat": 0}, "repeat must be >= 1"),
                                             ({"items": 0}, "items must be >= 1")])
def test_time_it_rejects_impossible_counts(kwargs, message):
    with pytest.raises(ValueError, match=message):
        measure.time_it(lambda: None, **kwargs)


def test_timing_throughput_and_share_of_peak_follow_the_median():
    timing = measure.Timing((0.010, 0.020, 0.030), items=4)
    assert timing.median_ms == pytest.approx(20.0)
    assert timing.throughput == pytest.approx(200.0)
    assert timing.percent_of_peak(gflop_per_item=0.5, peak_gflops=200.0) == pytest.approx(50.0)


def test_estimate_memory_counts_inputs_every_intermediate_tensor_and_the_weights():
    estimate = measure.estimate_memory(make_conv_model(), {"x": (2, 3, 16, 16)})
    assert estimate.inputs == 2 * 3 * 16 * 16 * 4
    assert estimate.activations == 2 * 4 * 16 * 16 * 4  # y, the only non-input tensor
    assert estimate.weights == 4 * 3 * 3 * 3 * 4
    assert estimate.total == estimate.inputs + estimate.activations + estimate.weights
    assert estimate.unsized == ()


def test_estimate_memory_grows_with_the_batch_without_allocating_it():
    small = measure.estimate_memory(make_conv_model(), {"x": (1, 3, 224, 224)})
    huge = measure.estimate_memory(make_conv_model(), {"x": (100_000, 3, 224, 224)})  # ~130 GiB if allocated
    assert huge.inputs == 100_000 * small.inputs and huge.activations == 100_000 * small.activations


def test_estimate_memory_names_the_tensors_it_cannot_size():
    estimate = measure.estimate_memory(make_conv_model(), {})  # N, H, W left symbolic
    assert estimate.unsized == ("y",) and estimate.activations == 0


def test_machine_facts_name_the_cpu_cores_and_python():
    facts = measure.cpu_facts()
    assert set(facts) == {"cpu", "cores", "python"} and facts["cores"] >= 1 and facts["cpu"]
    available = measure.available_memory()
    assert available is None or available > 0


# ------------------------------------------------------------------------------------- the noise rule
def _timing(*ms, items=1):
    from labkit.measure import Timing
    return Timing(tuple(m / 1e3 for m in ms), items)


def test_speed_verdict_names_the_faster_only_when_the_spreads_do_not_overlap():
    from labkit.measure import speed_verdict
    verdict = speed_verdict(_timing(10, 11, 10, 12, 11), _timing(20, 21, 22, 20, 21), names=("ORT", "torch"))
    assert verdict.faster == "ORT" and not verdict.within_noise
    assert str(verdict) == "ORT is 1.91x faster than torch on this run (spreads do not overlap)"


def test_speed_verdict_is_within_noise_when_the_spreads_overlap_even_if_the_medians_differ():
    from labkit.measure import speed_verdict
    verdict = speed_verdict(_timing(10, 14, 18, 22, 11), _timing(12, 16, 20, 13, 15), names=("a", "b"))
    assert verdict.within_noise and "within noise on this run" in str(verdict)


def test_speed_verdict_compares_per_item_time():
    from labkit.measure import speed_verdict
    verdict = speed_verdict(_timing(40, 41, 40, 42, items=4), _timing(20, 21, 20, 21), names=("batch 4", "batch 1"))
    assert verdict.faster == "batch 4"


# --------------------------------------------------------------------------- the ceiling and the machine's facts

def test_fma_peak_counts_lanes_two_flops_per_fma_and_two_fma_units_per_thread():
    assert measure.fma_peak(2, frozenset({"avx2", "fma"}), 3.0) == 2 * 3.0 * 8 * 2 * 2
    assert measure.fma_peak(1, frozenset({"avx2", "fma", "avx512f"}), 2.0) == 2.0 * 16 * 2 * 2


@pytest.mark.parametrize("flags, ghz", [(frozenset({"asimd", "fp"}), 3.0),   # ARM: vector width not in the flags
                                        (frozenset({"avx2", "fma"}), None),  # clock unreadable
                                        (None, 3.0)])                        # flags unreadable (macOS, Windows)
def test_fma_peak_is_unknown_rather_than_guessed(flags, ghz, monkeypatch):
    monkeypatch.setattr(measure, "cpu_flags", lambda: flags)
    monkeypatch.setattr(measure, "cpu_max_ghz", lambda: ghz)
    assert measure.fma_peak(2, flags, ghz) is None


def test_the_ceiling_is_never_below_a_measured_matmul():
    ceiling = measure.Ceiling(max(100.0, 120.0, 90.0), 100.0, {"torch": 120.0, "ONNX Runtime": 90.0})
    assert ceiling.gflops >= max(ceiling.measured.values())
    assert ceiling.source == "the fastest measured matmul (torch)"
    assert "theoretical FMA peak: 100" in repr(ceiling)


def test_fp32_ceiling_measures_both_runtimes_and_takes_the_largest(monkeypatch):
    monkeypatch.setattr(measure, "sgemm_peak", lambda n, threads, repeat: 50.0)
    monkeypatch.setattr(measure, "ort_matmul_gflops", lambda n, threads, repeat: 70.0)
    monkeypatch.setattr(measure, "fma_peak", lambda threads: None)
    ceiling = measure.fp32_ceiling(2)
    assert ceiling.gflops == 70.0 and ceiling.theoretical is None and "unknown on this machine" in repr(ceiling)


def test_ort_matmul_gflops_is_a_positive_rate():
    assert measure.ort_matmul_gflops(64, threads=1, repeat=2) > 0


def test_machine_facts_are_none_where_the_operating_system_does_not_tell(monkeypatch):
    def no_file(*args, **kwargs):
        raise FileNotFoundError(args[0])

    monkeypatch.setattr(measure, "open", no_file, raising=False)
    monkeypatch.delattr(measure.os, "getloadavg")
    assert measure.cpu_flags() is None and measure.cpu_max_ghz() is None and measure.load_average() is None

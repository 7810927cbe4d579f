"""labkit.notebook, labkit.report and labkit.paths: expected errors, short warnings, verdicts, stable paths."""
import warnings

import pytest

import labkit
from labkit.notebook import _format_short
from labkit.report import summary_line, verdict_rows


def test_expect_error_prints_the_first_line_and_lets_the_cell_go_on(capsys):
    with labkit.expect_error(ValueError) as caught:
        raise ValueError("bad shape\nsecond line with details")
    assert capsys.readouterr().out == "ValueError (expected): bad shape\n"
    assert caught.message == "bad shape"
    assert isinstance(caught.error, ValueError)


def test_expect_error_keeps_the_error_but_not_what_its_frames_held():
    import gc
    import weakref

    class Session:  # stands for an ONNX Runtime session whose run() raised: it holds the model's weights
        def run(self):
            raise ValueError("wrong input") from KeyError("cause")

    def call():
        session = Session()
        alive.append(weakref.ref(session))
        session.run()

    alive = []
    with labkit.expect_error(ValueError) as caught:
        call()
    gc.collect()
    assert alive[0]() is None, "the caught error's frames still hold the session"
    assert caught.message == "wrong input" and isinstance(caught.error.__cause__, KeyError)


def test_expect_error_fails_when_nothing_is_raised():
    with pytest.raises(AssertionError, match="expected TypeError or KeyError, but the block ran without error"):
        with labkit.expect_error(TypeError, KeyError):
            pass


def test_expect_error_lets_other_exception_types_through():
    with pytest.raises(KeyError):
        with labkit.expect_error(ValueError):
            raise KeyError("not the one we expected")


def test_expect_error_checks_the_message_when_asked():
    with pytest.raises(AssertionError, match="does not match 'opset'"):
        with labkit.expect_error(RuntimeError, match="opset"):
            raise RuntimeError("something else")


def test_expect_error_needs_at_least_one_type():
    with pytest.raises(ValueError, match="name the exception type"):
        labkit.expect_error()


def test_short_warnings_drop_the_file_path_and_source_line():
    text = _format_short(UserWarning("careful\nmore"), UserWarning, "/very/long/path.py", 12, "code()")
    assert text == "UserWarning: careful\n"


def test_short_warnings_install_the_short_format():
    saved = warnings.formatwarning
    try:
        labkit.short_warnings()
        assert warnings.formatwarning is _format_short
    finally:
        warnings.formatwarning = saved


def test_artifacts_dir_is_created_under_the_checkout():
    path = labkit.artifacts_dir("99_unit_test")
    try:
        assert path.is_dir()
        assert labkit.display_path(path) == "artifacts/99_unit_test"
    finally:
        path.rmdir()


@pytest.mark.parametrize("name", ["../elsewhere", "..", ".", "", "a/b", ".hidden", "a\\b"])
def test_artifacts_dir_rejects_anything_but_a_notebook_stem(name):
    with pytest.raises(ValueError, match="notebook stem"):
        labkit.artifacts_dir(name)


def test_data_path_lists_shipped_files_when_a_name_is_wrong():
    with pytest.raises(FileNotFoundError, match="no file 'nope.png' in data/; shipped files: .*images"):
        labkit.data_path("nope.png")


def test_display_path_of_a_file_outside_the_checkout_is_its_name(tmp_path):
    assert labkit.display_path(tmp_path / "model.onnx") == "model.onnx"


def test_hide_native_stdout_swallows_file_descriptor_output_only_inside_the_block(capfd):
    import os

    with labkit.hide_native_stdout():
        os.write(1, b"native dump\n")
    os.write(1, b"after\n")
    assert capfd.readouterr().out == "after\n"


def test_capture_native_stdout_collects_file_descriptor_output(capfd):
    import os

    with labkit.capture_native_stdout() as captured:
        os.write(1, b"graph(%x : Float)\n")
    assert captured.text == "graph(%x : Float)\n"
    assert capfd.readouterr().out == ""


def test_a_summary_of_nothing_checked_is_failed_never_passed():
    assert summary_line(0, 0, "outputs match torch") == "FAILED: 0/0 outputs match torch"
    assert summary_line(2, 2, "outputs match torch") == "PASSED: 2/2 outputs match torch"
    assert summary_line(1, 2, "outputs match torch", failed=["b"]) == "FAILED: 1/2 outputs match torch; failed: b"


def test_verdict_rows_align_any_number_of_cells_and_an_empty_last_cell_adds_no_bar():
    assert verdict_rows([(True, "a", "long detail", ""), (False, "bbb", "d", "<- first")]).splitlines() == [
        "PASSED | a   | long detail",
        "FAILED | bbb | d           | <- first"]


@pytest.mark.slow
def test_free_memory_lets_go_of_the_weights_the_default_exporters_optimizer_kept():
    """A model exported with the default exporter, then deleted: its weights live on in onnxscript's rewrite rules
    until free_memory() (which resets their private attributes: when onnxscript moves them, this fails)."""
    import gc
    import weakref

    import torch

    model = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 8))
    weight = weakref.ref(model[0].weight)
    program = torch.onnx.export(model, (torch.randn(2, 64),), verbose=False)
    del model, program
    gc.collect()
    assert weight() is not None, "onnxscript no longer keeps the last graph: free_memory's reset may go"
    assert labkit.free_memory().startswith("kernel memory: ")
    assert weight() is None, "the exported weights are still alive after free_memory()"

"""labkit.lessons: which notebooks a name selects, and a notebook run that always stops and says why."""
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import nbformat
import pytest

from labkit import lessons
from labkit.paths import repo_root


def _notebook(path, *sources):
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources]), path)
    return path


def _run_bounded(path, seconds, **options):
    """run_notebook in a thread, so a run that never returns fails the test instead of hanging it."""
    box = {}
    thread = threading.Thread(target=lambda: box.update(result=lessons.run_notebook(path, **options)), daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"run_notebook still running after {seconds} s"
    return box["result"]


def _stems(paths):
    return [p.stem for p in paths]


# --------------------------------------------------------------------------- finding lessons

def test_lesson_notebooks_are_the_numbered_notebooks_in_order():
    every = lessons.lesson_notebooks()
    assert every and every == sorted(every)
    assert all(p.parent == repo_root() / "notebooks" for p in every)
    assert _stems(every)[0].startswith("00_")


def test_lesson_notebooks_skip_copies_that_are_not_lessons(tmp_path):
    for name in ("01_intro.ipynb", "01_intro.updated.ipynb", "notes.ipynb", "1_short.ipynb"):
        _notebook(tmp_path / name)
    assert _stems(lessons.lesson_notebooks(tmp_path)) == ["01_intro"]


def test_no_names_select_every_lesson():
    assert lessons.select_notebooks([]) == lessons.lesson_notebooks()


def test_a_two_digit_number_selects_that_lesson():
    first = lessons.lesson_notebooks()[0]
    assert lessons.select_notebooks([first.name[:2]]) == [first]


def test_a_name_prefix_of_three_characters_selects_a_lesson():
    first = lessons.lesson_notebooks()[0]
    assert lessons.select_notebooks([first.stem[:3]]) == [first]
    assert lessons.select_notebooks([first.stem]) == [first]


def test_a_lesson_named_twice_runs_once():
    first = lessons.lesson_notebooks()[0]
    assert lessons.select_notebooks([first.name[:2], first.stem, str(first)]) == [first]


@pytest.mark.parametrize("name", ["0", "", " ", "1", "ab"])
def test_a_name_too_short_to_mean_one_lesson_is_an_error_that_lists_the_lessons(name):
    with pytest.raises(ValueError, match=r"names no lesson: give a lesson number such as 01.*the lessons are: 00_"):
        lessons.select_notebooks([name])


def test_an_unknown_lesson_lists_the_lessons():
    with pytest.raises(FileNotFoundError, match="no notebook matches '99'; the lessons are: 00_"):
        lessons.select_notebooks(["99"])


def test_a_path_selects_that_notebook_and_a_missing_path_is_named(tmp_path):
    path = _notebook(tmp_path / "mine.ipynb", "x = 1")
    assert lessons.select_notebooks([str(path)]) == [path.resolve()]
    with pytest.raises(FileNotFoundError, match="no notebook at .*gone.ipynb"):
        lessons.select_notebooks([str(tmp_path / "gone.ipynb")])


# --------------------------------------------------------------------------- running one notebook

def test_run_inplace_saves_outputs_of_a_passing_notebook_without_widget_state(tmp_path):
    path = _notebook(tmp_path / "00_ok.ipynb", "print(6 * 7)")
    notebook = nbformat.read(path, as_version=4)
    notebook.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    nbformat.write(notebook, path)
    result = lessons.run_notebook(path, inplace=True, timeout=60)
    assert result.ok and result.status == "PASSED" and result.error == ""
    saved = nbformat.read(path, as_version=4)
    assert saved.cells[0].execution_count == 1 and saved.cells[0].outputs[0]["text"] == "42\n"
    assert "widgets" not in saved.metadata


def test_a_failing_notebook_names_the_cell_and_the_error_and_is_left_untouched(tmp_path):
    path = _notebook(tmp_path / "00_bad.ipynb", "x = 1", "raise ValueError('lesson broke')")
    before = path.read_text()
    result = lessons.run_notebook(path, inplace=True, timeout=60)
    assert not result.ok and result.status == "FAILED"
    assert result.error == "Cell 1: ValueError: lesson broke"  # nbval's numbering: code cells from 0
    assert path.read_text() == before


def test_a_custom_exception_is_reported_by_its_message_without_colour_codes(tmp_path):
    path = _notebook(tmp_path / "00_custom.ipynb", "class LessonError(Exception):\n    pass",
                     "raise LessonError('the export lost its batch dim')")
    result = lessons.run_notebook(path, timeout=60)
    assert result.error == "Cell 1: LessonError: the export lost its batch dim"
    table = lessons.format_results([result])
    assert "\x1b[" not in table and "LessonError: the export lost its batch dim" in table


def test_a_cell_that_runs_past_the_timeout_fails_quickly(tmp_path):
    path = _notebook(tmp_path / "00_slow.ipynb", "import time\ntime.sleep(60)")
    result = _run_bounded(path, 20, timeout=3)
    assert not result.ok and result.error.startswith("Cell 0: timed out after 3 s")


def test_a_kernel_that_dies_is_reported_not_waited_for(tmp_path):
    path = _notebook(tmp_path / "00_die.ipynb", "import os\nos._exit(1)", "print('never')")
    result = _run_bounded(path, 30, timeout=60)
    assert not result.ok and result.error.startswith("Cell 0: the kernel died")


def test_no_kernel_outlives_its_notebook(tmp_path):
    path = _notebook(tmp_path / "00_pid.ipynb", "import os\nprint(os.getpid())")
    assert lessons.run_notebook(path, inplace=True, timeout=60).ok
    pid = int(nbformat.read(path, as_version=4).cells[0].outputs[0]["text"])
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_the_kernel_is_this_python_and_inherits_telemetry_off(tmp_path, monkeypatch):
    monkeypatch.setenv("ORT_DISABLE_TELEMETRY", "1")
    path = _notebook(tmp_path / "00_env.ipynb", "import os, sys\nprint(sys.executable)\n"
                                                 "print(os.environ.get('ORT_DISABLE_TELEMETRY'))")
    assert lessons.run_notebook(path, inplace=True, timeout=60).ok
    printed = nbformat.read(path, as_version=4).cells[0].outputs[0]["text"].split()
    assert printed == [sys.executable, "1"]


def test_a_notebook_that_is_not_json_fails_without_starting_a_kernel(tmp_path):
    path = tmp_path / "00_broken.ipynb"
    path.write_text("{ not json")
    result = lessons.run_notebook(path, timeout=60)
    assert not result.ok and result.error.startswith("not a readable notebook:")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_during_a_cell_stops_the_kernel_and_the_run(tmp_path, signum):
    pid_file = tmp_path / "kernel.pid"
    path = _notebook(tmp_path / "00_wait.ipynb", f"import os, time\nopen({str(pid_file)!r}, 'w').write(str(os.getpid()))\n"
                                                  "time.sleep(60)")
    script = textwrap.dedent(f"""
        import sys
        from labkit.cli import main
        sys.exit(main(["run", {str(path)!r}, "--timeout", "120"]))
    """)
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not (pid_file.is_file() and pid_file.read_text()) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert pid_file.is_file(), "the cell never started"
        os.killpg(process.pid, signum)  # Ctrl-C reaches the whole process group; SIGTERM as `kill` sends it
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 128 + signum
    assert f"labkit run: interrupted by {signal.Signals(signum).name}" in err and "Traceback" not in err
    kernel = int(pid_file.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(kernel, 0)


# --------------------------------------------------------------------------- the summary

def test_summary_has_one_verdict_row_per_notebook_and_names_the_failures(tmp_path):
    results = [lessons.NotebookResult(tmp_path / "01_a.ipynb", True, 1.25),
               lessons.NotebookResult(tmp_path / "02_b.ipynb", False, 2.0, "Cell 4: ValueError: x")]
    lines = lessons.format_results(results).splitlines()
    assert [line.split(" | ")[0] for line in lines[:2]] == ["PASSED", "FAILED"]
    assert lines[1].endswith("2.0 s; Cell 4: ValueError: x")
    assert lines[-1] == "FAILED: 1/2 notebooks ran without errors; failed: 02_b"

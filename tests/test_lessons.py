"""labkit.lessons: which notebooks a name selects, and a notebook run that always stops and says why."""
import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time

import nbformat
import pytest

from labkit import lessons
from labkit.cli import main as cli_main
from labkit.machine_load import MachineLoad, measure_load
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


# --------------------------------------------------------------------------- round two: names and damaged files

def test_a_name_that_is_exactly_a_lesson_selects_it_even_beside_a_longer_one(tmp_path, monkeypatch):
    both = [_notebook(tmp_path / "01_intro.ipynb"), _notebook(tmp_path / "01_intro_v2.ipynb")]
    monkeypatch.setattr(lessons, "lesson_notebooks", lambda folder=None: both)
    assert lessons.select_notebooks(["01_intro"]) == [both[0]]
    assert lessons.select_notebooks(["01_intro_v"]) == [both[1]]
    with pytest.raises(ValueError, match="matches 2 lessons"):
        lessons.select_notebooks(["01_in"])


@pytest.mark.parametrize("field, value, fault", [
    ("source", 42, "'source' is 42"),
    ("cell_type", "python", "'cell_type' is 'python'"),
    ("outputs", "none", "'outputs' is 'none'"),
])
def test_a_damaged_cell_is_named_with_its_fault_before_any_kernel_starts(tmp_path, field, value, fault):
    path = _notebook(tmp_path / "00_damaged.ipynb", "x = 1", "y = 2")
    data = json.loads(path.read_text())
    data["cells"][1][field] = value
    path.write_text(json.dumps(data))
    result = lessons.run_notebook(path, timeout=60)
    assert not result.ok and "AttributeError" not in result.error
    assert result.error.startswith(f"not a readable notebook: cell 1: {fault}"), result.error


@pytest.mark.parametrize("text, fault", [("{}", "no 'cells'"), ('{"cells": [', "ends early")])
def test_an_empty_or_cut_short_notebook_says_so(tmp_path, text, fault):
    path = tmp_path / "00_short.ipynb"
    path.write_text(text)
    with pytest.raises(lessons.NotebookError, match=rf"00_short.ipynb is not a readable notebook: .*{fault}"):
        lessons.read_notebook(path)


# --------------------------------------------------------------------------- round two: environments

def test_a_long_tmpdir_does_not_stop_the_kernel(tmp_path, monkeypatch):
    deep = tmp_path / ("t" * 60) / ("u" * 60)
    deep.mkdir(parents=True)
    monkeypatch.setenv("TMPDIR", str(deep))
    monkeypatch.setattr(tempfile, "tempdir", str(deep))
    path = _notebook(tmp_path / "00_ok.ipynb", "print(6 * 7)")
    result = lessons.run_notebook(path, inplace=True, timeout=60)
    assert result.ok, result.error


def test_with_no_short_folder_for_its_sockets_the_run_names_the_cause(tmp_path, monkeypatch):
    monkeypatch.setattr(lessons, "_socket_candidates", lambda: [str(tmp_path / ("v" * 120))])
    path = _notebook(tmp_path / "00_ok.ipynb", "print(6 * 7)")
    result = lessons.run_notebook(path, timeout=60)
    assert not result.ok and "107 bytes" in result.error and "TMPDIR" in result.error


def _ascii_env():
    return {**os.environ, "LC_ALL": "C", "LANG": "C", "PYTHONUTF8": "0", "PYTHONIOENCODING": ""}


def test_run_prints_its_summary_in_an_ascii_locale_when_an_error_is_not_ascii(tmp_path):
    path = _notebook(tmp_path / "00_bad.ipynb", "raise ValueError('caf\u00e9 \u2014 na\u00efve \u00d7 2')")
    result = subprocess.run([sys.executable, "-m", "labkit.cli", "run", str(path), "--timeout", "60"],
                            capture_output=True, text=True, encoding="ascii", errors="replace", env=_ascii_env(),
                            timeout=120)
    assert result.returncode == 1, result.stderr
    assert "FAILED | " in result.stdout and "ValueError: caf" in result.stdout, result.stderr
    assert "FAILED: 0/1 notebooks ran without errors" in result.stdout


# --------------------------------------------------------------------------- round two: timing lessons, quiet machine

def _timing_notebook(path):
    return _notebook(path, "import time\nstart = time.perf_counter()", "print('done')")


BUSY = MachineLoad(cores=2, load_1min=3.1, busy=0.9, steal=0.08, sample_s=1.0)
QUIET = MachineLoad(cores=2, load_1min=0.1, busy=0.02, steal=0.0, sample_s=1.0)


def test_a_lesson_that_reads_a_clock_is_a_timing_lesson(tmp_path):
    assert lessons.is_timing_lesson(nbformat.read(_timing_notebook(tmp_path / "00_t.ipynb"), as_version=4))
    assert not lessons.is_timing_lesson(nbformat.read(_notebook(tmp_path / "00_p.ipynb", "x = 1"), as_version=4))
    six = next(p for p in lessons.lesson_notebooks() if p.name.startswith("06_"))
    assert lessons.is_timing_lesson(nbformat.read(six, as_version=4))


def test_inplace_refuses_to_save_a_timing_lesson_from_a_busy_machine_and_says_the_numbers(tmp_path):
    path = _timing_notebook(tmp_path / "00_t.ipynb")
    before = path.read_text()
    result = lessons.run_notebook(path, inplace=True, timeout=60, load=lambda: BUSY)
    assert not result.ok and path.read_text() == before
    assert "busy" in result.error and "--allow-busy" in result.error
    assert "load 3.10 on 2 cores" in result.error and "90 %" in result.error and "steal 8 %" in result.error


def test_inplace_saves_a_timing_lesson_from_a_quiet_machine_or_when_allowed_and_says_the_numbers(tmp_path):
    path = _timing_notebook(tmp_path / "00_t.ipynb")
    quiet = lessons.run_notebook(path, inplace=True, timeout=60, load=lambda: QUIET)
    assert quiet.ok and quiet.note.startswith("timings saved from a quiet machine (load 0.10 on 2 cores")
    allowed = lessons.run_notebook(path, inplace=True, timeout=60, load=lambda: BUSY, allow_busy=True)
    assert allowed.ok and "busy machine, as --allow-busy asked (load 3.10" in lessons.format_results([allowed])
    assert nbformat.read(path, as_version=4).cells[1].outputs[0]["text"] == "done\n"


def test_a_busy_machine_does_not_stop_a_lesson_without_timings_or_a_run_without_inplace(tmp_path):
    plain = _notebook(tmp_path / "00_p.ipynb", "print(1)")
    assert lessons.run_notebook(plain, inplace=True, timeout=60, load=lambda: BUSY).ok
    timing = _timing_notebook(tmp_path / "00_t.ipynb")
    assert lessons.run_notebook(timing, timeout=60, load=lambda: BUSY).ok


def test_the_command_refuses_a_busy_machine_unless_allow_busy(tmp_path, monkeypatch, capsys):
    path = _timing_notebook(tmp_path / "00_t.ipynb")
    monkeypatch.setattr("labkit.machine_load.measure_load", lambda: BUSY)
    assert cli_main(["run", str(path), "--inplace", "--timeout", "60"]) == 1
    assert "--allow-busy" in capsys.readouterr().out
    assert cli_main(["run", str(path), "--inplace", "--allow-busy", "--timeout", "60"]) == 0


@pytest.mark.parametrize("load, quiet", [
    (MachineLoad(cores=2, load_1min=3.0, busy=0.05, steal=0.0), True),     # the load average remembers our last run
    (MachineLoad(cores=2, load_1min=0.1, busy=0.6, steal=0.0), False),
    (MachineLoad(cores=2, load_1min=0.1, busy=0.05, steal=0.1), False),
    (MachineLoad(cores=4, load_1min=3.5, busy=None, steal=None), False),   # no /proc/stat: the load average decides
    (MachineLoad(cores=4, load_1min=0.5, busy=None, steal=None), True),
    (MachineLoad(cores=4, load_1min=None, busy=None, steal=None), True),   # nothing measurable: not refused
])
def test_what_counts_as_busy(load, quiet):
    assert load.quiet is quiet, load.describe()


def test_cpu_share_and_steal_come_from_two_samples_of_proc_stat(tmp_path):
    stat = tmp_path / "stat"
    samples = iter(["cpu  100 0 100 800 0 0 0 0 0 0\n", "cpu  150 0 150 880 0 0 0 20 0 0\n"])
    load = measure_load(stat_path=stat, sample_s=0.0, read=lambda path: next(samples), loadavg=lambda: (1.5, 1, 1),
                        cores=2)
    assert (load.busy, load.steal, load.load_1min, load.cores) == (pytest.approx(100 / 200), pytest.approx(0.1), 1.5, 2)


def test_without_proc_stat_or_getloadavg_the_measure_says_so(tmp_path):
    def no_loadavg():
        raise OSError("not here")

    load = measure_load(stat_path=tmp_path / "none", sample_s=0.0, loadavg=no_loadavg, cores=2)
    assert (load.busy, load.steal, load.load_1min) == (None, None, None)
    assert "not measured" in load.describe()


def test_inplace_never_saves_through_a_link(tmp_path):
    real = _notebook(tmp_path / "elsewhere.ipynb", "print(1)")
    (tmp_path / "lessons").mkdir()
    link = tmp_path / "lessons" / "00_link.ipynb"
    link.symlink_to(real)
    before = real.read_text()
    result = lessons.run_notebook(link, inplace=True, timeout=60)
    assert not result.ok and "a link to" in result.error and real.read_text() == before


@pytest.mark.parametrize("cells, fault", [([42], "cell 0 is 42, not a cell"), ([{"cell_type": "code"}], "cell 0: ")])
def test_a_cell_that_is_not_a_cell_is_named(tmp_path, cells, fault):
    path = tmp_path / "00_odd.ipynb"
    path.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    with pytest.raises(lessons.NotebookError, match=f"00_odd.ipynb is not a readable notebook: {fault}"):
        lessons.read_notebook(path)

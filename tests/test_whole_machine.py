"""`make test` on two workers: a notebook that times itself on every core runs alone, and first.

Each case runs a small suite under pytest-xdist in a subprocess: one file that must run alone and three that share
the cores, each test recording when it started and ended. The control is the same suite without the plugin.
"""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import nbformat
import pytest
from whole_machine import ALONE

from labkit.notebook import clean_env

TESTS = Path(__file__).parent
NOTEBOOKS = TESTS.parent / "notebooks"
RECORDING_TEST = textwrap.dedent("""
    import os, time
    import pytest

    @pytest.mark.parametrize("n", range({count}))
    def test_step(n):
        start = time.time()
        time.sleep(0.25)
        with open(os.environ["INTERVALS"], "a") as log:
            log.write(f"{{os.environ['PYTEST_XDIST_WORKER']}} {name} {{start}} {{time.time()}}\\n")
""")


def _run_suite(folder: Path, register: bool) -> list[tuple[str, str, float, float]]:
    """(worker, file, start, end) of every test, in the order they ended."""
    (folder / "pytest.ini").write_text("[pytest]\n")
    (folder / "conftest.py").write_text(textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(TESTS)!r})
        from whole_machine import WholeMachine

        def pytest_configure(config):
            if {register}:
                config.pluginmanager.register(WholeMachine(alone=frozenset({{"test_z_alone.py"}})), "whole-machine")
    """))
    for name, count in [("shared_a", 4), ("shared_b", 4), ("shared_c", 4), ("z_alone", 4)]:
        (folder / f"test_{name}.py").write_text(RECORDING_TEST.format(name=name, count=count))
    log = folder / "intervals.txt"
    env = clean_env() | {"INTERVALS": str(log), "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}  # xdist alone: quick to start
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "xdist", "-n", "2", "--dist",
               "loadfile", "--no-loadscope-reorder"]
    run = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return [(worker, name, float(start), float(end))
            for worker, name, start, end in (line.split() for line in log.read_text().splitlines())]


def _overlaps(a, b) -> bool:
    return a[2] < b[3] and b[2] < a[3]


def _alone_and_shared(intervals):
    return [i for i in intervals if i[1] == "z_alone"], [i for i in intervals if i[1] != "z_alone"]


@pytest.mark.slow
def test_a_file_that_needs_every_core_runs_alone_and_first_while_the_others_share(tmp_path):
    alone, shared = _alone_and_shared(_run_suite(tmp_path, register=True))
    assert len(alone) == 4 and len(shared) == 12
    span = ("", "z_alone", min(i[2] for i in alone), max(i[3] for i in alone))  # first start to last end
    assert not [i for i in shared if _overlaps(i, span)], "a shared test ran while the alone file ran"
    # It goes first: at most the test the other worker had already begun comes before it.
    assert len([i for i in shared if i[2] < span[2]]) <= 1, "the file that runs alone should go first"
    assert any(_overlaps(a, b) for a in shared for b in shared if a[0] != b[0]), "the shared files did not share"


@pytest.mark.slow
def test_without_the_plugin_the_same_suite_overlaps(tmp_path):
    """The control: the recording sees an overlap when nothing prevents it."""
    alone, shared = _alone_and_shared(_run_suite(tmp_path, register=False))
    assert any(_overlaps(a, b) for a in alone for b in shared)


def test_the_notebooks_that_pin_their_threads_are_the_ones_that_run_alone():
    """A lesson renamed, or another one that sets its own thread count, must be named in whole_machine.ALONE."""
    pinning = set()
    for path in NOTEBOOKS.glob("*.ipynb"):
        code = "\n".join(cell.source for cell in nbformat.read(path, as_version=4).cells if cell.cell_type == "code")
        if "torch.set_num_threads(" in code:
            pinning.add(path.name)
    assert pinning == ALONE

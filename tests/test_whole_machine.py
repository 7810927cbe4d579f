"""`make test` on two workers: a notebook that times itself on every core runs alone, and first; the rest shares.

Each case runs a small suite under pytest-xdist in a subprocess, each test (and each notebook cell) recording when
it started and ended: a notebook that must run alone, three files that share the cores,
and a file whose tests spread over the workers, one of which runs the alone notebook. The control is the same suite
with nothing named alone.
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
RECORD = """
    import os, time
    start = time.time()
    time.sleep(0.15)
    with open(os.environ["INTERVALS"], "a") as log:
        log.write(f"{os.environ['PYTEST_XDIST_WORKER']} NAME {start} {time.time()}\\n")
"""
SHARED_TEST = textwrap.dedent("""
    import pytest

    @pytest.mark.parametrize("n", range(4))
    def test_step(n):
""") + textwrap.indent(textwrap.dedent(RECORD), "    ")  # NAME: the file's name, filled in by _run_suite
# One test per lesson, as test_core_path has: the one that runs the alone notebook must run alone.
SPREAD_TEST = textwrap.dedent("""
    from pathlib import Path
    import pytest

    @pytest.mark.parametrize("path", [Path("a.ipynb"), Path("z_alone.ipynb"), Path("b.ipynb"), Path("c.ipynb")],
                             ids=lambda path: path.stem)
    def test_lesson(path):
        name = "each:alone" if path.name == "z_alone.ipynb" else "each:shared"
""") + textwrap.indent(textwrap.dedent(RECORD).replace("NAME", "{name}"), "    ")
CELLS = 4  # of the alone notebook


def _alone_notebook(path: Path) -> None:
    cells = [nbformat.v4.new_code_cell(textwrap.dedent(RECORD).replace("NAME", "z_alone:cell")) for _ in range(CELLS)]
    nbformat.write(nbformat.v4.new_notebook(cells=cells), path)


def _run_suite(folder: Path, alone: set[str], spread: set[str], files: set[str]) -> list[tuple[str, str, float, float]]:
    """(worker, what, start, end) of every test and cell, in the order they ended. `files`: which of 'notebook',
    'each' and 'shared' to write. Each worker writes the order it collected in, one node id a line, to order-gwN.txt."""
    (folder / "pytest.ini").write_text("[pytest]\n")
    (folder / "conftest.py").write_text(textwrap.dedent(f"""
        import os, sys
        import pytest
        sys.path.insert(0, {str(TESTS)!r})
        from whole_machine import WholeMachine

        def pytest_configure(config):
            config.pluginmanager.register(WholeMachine(alone=frozenset({alone!r}), spread=frozenset({spread!r})),
                                          "whole-machine")

        @pytest.hookimpl(trylast=True)
        def pytest_collection_modifyitems(items):
            with open(f"order-{{os.environ['PYTEST_XDIST_WORKER']}}.txt", "w") as order:
                order.writelines(item.nodeid + "\\n" for item in items)
    """))
    if "shared" in files:
        for name in ("shared_a", "shared_b", "shared_c"):
            (folder / f"test_{name}.py").write_text(SHARED_TEST.replace("NAME", name))
    if "each" in files:
        (folder / "test_each.py").write_text(SPREAD_TEST)
    if "notebook" in files:
        _alone_notebook(folder / "z_alone.ipynb")
    log = folder / "intervals.txt"
    env = clean_env() | {"INTERVALS": str(log), "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}  # xdist, nbval: quick to start
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "xdist", "-n", "2", "--dist",
               "loadfile", "--no-loadscope-reorder"]
    if "notebook" in files:
        command += ["-p", "nbval.plugin", "--nbval", "--nbval-current-env"]
    run = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return [(worker, name, float(start), float(end))
            for worker, name, start, end in (line.split() for line in log.read_text().splitlines())]


def _overlaps(a, b) -> bool:
    return a[2] < b[3] and b[2] < a[3]


def _alone_and_shared(intervals):
    alone = {"z_alone:cell", "each:alone"}
    return [i for i in intervals if i[1] in alone], [i for i in intervals if i[1] not in alone]


def _workers(intervals, prefix: str) -> set[str]:
    return {worker for worker, what, _, _ in intervals if what.startswith(prefix)}


@pytest.fixture(scope="module")
def whole_suite(tmp_path_factory):
    """The alone notebook, the file whose tests spread (one of them runs that notebook) and three shared files."""
    folder = tmp_path_factory.mktemp("whole_suite")
    return folder, _run_suite(folder, alone={"z_alone.ipynb"}, spread={"test_each.py"},
                              files={"notebook", "each", "shared"})


@pytest.mark.slow
def test_the_alone_notebook_and_the_test_that_runs_it_run_alone_while_the_other_files_share(whole_suite):
    _, intervals = whole_suite
    alone, shared = _alone_and_shared(intervals)
    assert len(alone) == CELLS + 1 and len(shared) == 3 + 12
    overlapping = [(a, b) for a in alone for b in intervals if b is not a and _overlaps(a, b)]
    assert not overlapping, f"ran beside the alone notebook or the test that runs it: {overlapping}"
    assert any(_overlaps(a, b) for a in shared for b in shared if a[0] != b[0]), "the other files did not share"


@pytest.mark.slow
def test_what_needs_the_whole_machine_is_handed_out_first_and_each_file_stays_on_one_worker(whole_suite):
    """xdist hands out the units in the order the workers collected (--no-loadscope-reorder): this order."""
    folder, intervals = whole_suite
    order = (folder / "order-gw0.txt").read_text().splitlines()
    assert order == (folder / "order-gw1.txt").read_text().splitlines()
    files = [nodeid.split("::")[0] + ("[z_alone]" if "z_alone" in nodeid.split("::")[-1] else "") for nodeid in order]
    assert list(dict.fromkeys(files)) == ["z_alone.ipynb", "test_each.py[z_alone]", "test_each.py", "test_shared_a.py",
                                          "test_shared_b.py", "test_shared_c.py"]
    for what in ("z_alone:", "shared_a", "shared_b", "shared_c"):
        assert len(_workers(intervals, what)) == 1, f"{what} ran on two workers"


@pytest.mark.slow
def test_each_test_of_a_spread_file_is_a_unit_of_its_own(tmp_path):
    """xdist gives each worker a unit at the start: a file's tests land on both workers only as units of their own."""
    intervals = _run_suite(tmp_path, alone=set(), spread={"test_each.py"}, files={"each"})
    assert len(_workers(intervals, "each:")) == 2


@pytest.mark.slow
def test_with_nothing_named_alone_the_same_suite_overlaps(tmp_path):
    """The control: the recording sees the alone notebook overlap another test when nothing prevents it."""
    intervals = _run_suite(tmp_path, alone=set(), spread={"test_each.py"}, files={"notebook", "each", "shared"})
    alone, shared = _alone_and_shared(intervals)
    assert any(_overlaps(a, b) for a in alone for b in shared)


def test_the_notebooks_that_pin_their_threads_are_the_ones_that_run_alone():
    """A lesson renamed, or another one that sets its own thread count, must be named in whole_machine.ALONE."""
    pinning = set()
    for path in NOTEBOOKS.glob("*.ipynb"):
        code = "\n".join(cell.source for cell in nbformat.read(path, as_version=4).cells if cell.cell_type == "code")
        if "torch.set_num_threads(" in code:
            pinning.add(path.name)
    assert pinning == ALONE

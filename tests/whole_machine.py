"""Under pytest-xdist, Lesson 06 runs alone; everything else shares the cores.

Lesson 06 pins its own thread count (`THREADS = 2`) for every measurement and every session it builds. Beside
another worker's kernel on two cores, each of its parallel ops waits for the thread that shares a core with the
other kernel (ONNX Runtime's pool spins while it waits): the lesson took 159 s that way, 59-71 s alone, and its
printed timings and verdicts (not compared by nbval) are then a busy machine's. Taking the machine only for its
cells that time something was tried and measured slower: its other cells (exports, quantization, agreement on
200 views, all on two pinned threads) took 139 s in all beside the other worker, against 71 s for the whole lesson
alone. So while a worker runs it, the other workers wait between two tests (a lock: one exclusive holder, or any
number of shared ones). A test that runs the lesson's cells in a kernel of its own (test_core_path's test of
Lesson 06) takes the whole machine too: 62 s beside another worker, 10 s alone.

Order: first what needs the whole machine (the notebooks in ALONE, the tests that run one), so no worker waits at
the end; then the other notebooks; then the tests of the files in SPREAD; then the other test files. Under
`--dist loadfile` each file is one unit of work (nbval's cells need one kernel, in order), except the files in
SPREAD: each of their tests is a unit of its own, so that their long tests spread over the workers (a scheduler of
our own, `pytest_xdist_make_scheduler`: xdist's loadgroup would do it with marks, but with pytest 9.2 its
`xdist_group` marks group nothing, as xdist 3.8 renames the node ids through `item._nodeid`, which pytest 9.2 no
longer reads). `--no-loadscope-reorder` keeps this order. Nothing is skipped or shortened; without xdist (plain
`pytest`) no lock is taken.

The controller makes one folder for the lock files of a run and tells the workers (`pytest_configure_node`).
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

try:
    import fcntl
except ImportError:  # not a POSIX system: no lock, the workers share the cores as plain xdist does
    fcntl = None

# Notebooks that set their own thread count for their timings, and so need every core to themselves.
ALONE = frozenset({"06_cpu_performance.ipynb"})
# Files whose tests are long and independent (each runs a lesson in a kernel of its own): one unit per test.
SPREAD = frozenset({"test_core_path.py"})


class WholeMachine:
    """The lock around each test of a worker: exclusive for what needs every core, shared otherwise.

    A turnstile (a second lock, taken exclusively on the way in) keeps the shared holders from starving a test
    that waits for the exclusive lock: once it waits, new shared holders queue behind it.
    """

    def __init__(self, alone: frozenset[str] = ALONE, spread: frozenset[str] = SPREAD) -> None:
        self.alone, self.spread = alone, spread  # file names
        self.folder: Path | None = None  # the controller's folder for this run
        self._lock = self._turnstile = None
        self._exclusive = False

    # --- controller
    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node) -> None:
        if self.folder is None:
            self.folder = Path(tempfile.mkdtemp(prefix="labkit-cores-"))
        node.workerinput["labkit_lock_folder"] = str(self.folder)

    def pytest_unconfigure(self, config) -> None:
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
        for handle in (self._lock, self._turnstile):
            if handle is not None:
                handle.close()

    def needs_every_core(self, item: pytest.Item) -> bool:
        """A cell of a notebook in ALONE, or a test that runs such a notebook (a parameter names it)."""
        if item.path.name in self.alone:
            return True
        params = getattr(getattr(item, "callspec", None), "params", {})
        return any(isinstance(value, Path) and value.name in self.alone for value in params.values())

    def suite_order(self, item: pytest.Item) -> int:
        """ALONE notebooks, the SPREAD tests that run one, the other notebooks, the other SPREAD tests, the rest."""
        if item.path.name in self.alone:
            return 0
        if item.path.name in self.spread:
            return 1 if self.needs_every_core(item) else 3
        return 2 if item.path.suffix == ".ipynb" else 4

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        items.sort(key=self.suite_order)  # a stable sort: each file keeps its order; --no-loadscope-reorder keeps it

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_make_scheduler(self, config, log):
        """`--dist loadfile`, except that each test of a file in SPREAD is a unit of work of its own."""
        return _spread_scheduler(self.spread, config, log) if config.getvalue("dist") == "loadfile" else None

    # --- workers
    def pytest_configure(self, config) -> None:
        folder = getattr(config, "workerinput", {}).get("labkit_lock_folder")
        if folder is not None and fcntl is not None:
            self._lock = open(Path(folder) / "cores.lock", "a+")
            self._turnstile = open(Path(folder) / "turnstile.lock", "a+")

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: pytest.Item | None):
        if self._lock is None:
            return (yield)
        exclusive = self.needs_every_core(item)
        if not (exclusive and self._exclusive):  # consecutive exclusive tests keep the lock they hold
            fcntl.flock(self._turnstile, fcntl.LOCK_EX)
            fcntl.flock(self._lock, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            fcntl.flock(self._turnstile, fcntl.LOCK_UN)
            self._exclusive = exclusive
        try:
            return (yield)
        finally:
            if not exclusive or nextitem is None or not self.needs_every_core(nextitem):
                fcntl.flock(self._lock, fcntl.LOCK_UN)
                self._exclusive = False


def _spread_scheduler(spread: frozenset[str], config, log):
    from xdist.scheduler import LoadFileScheduling  # only a controller of xdist workers gets here

    class LoadFileSpread(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:  # the unit of work a test belongs to
            file = super()._split_scope(nodeid)
            return nodeid if file.rsplit("/", 1)[-1] in spread else file

    return LoadFileSpread(config, log)

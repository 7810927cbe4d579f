"""Under pytest-xdist, a notebook that times itself on every core runs alone; the rest share the cores.

Lesson 06 pins its own thread count (`THREADS = 2`) for every measurement. Run next to another worker on two
cores, each of its parallel ops waits for the thread that shares a core with the other worker's kernel: the lesson
took 159 s that way, 59-71 s alone. So while a worker runs such a notebook, the other workers wait between two tests
(a lock: one exclusive holder, or any number of shared ones), and the notebook goes first, so no worker waits at
the end. Nothing is skipped or shortened; without xdist (plain `pytest`) the lock is never taken.

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


class WholeMachine:
    """The lock around each test of a worker: exclusive for the tests of an ALONE notebook, shared otherwise.

    A turnstile (a second lock, taken exclusively on the way in) keeps the shared holders from starving a
    notebook that waits for the exclusive lock: once it waits, new shared holders queue behind it.
    """

    def __init__(self, alone: frozenset[str] = ALONE) -> None:
        self.alone = alone  # file names
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

    def runs_alone(self, item: pytest.Item) -> bool:
        return item.path.name in self.alone

    def suite_order(self, item: pytest.Item) -> int:
        """Files that run alone first, then the notebooks (the longest files), then the unit tests."""
        if self.runs_alone(item):
            return 0
        return 1 if item.path.suffix == ".ipynb" else 2

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        items.sort(key=self.suite_order)  # a stable sort: each file keeps its order; --no-loadscope-reorder keeps it

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
        alone = self.runs_alone(item)
        if not (alone and self._exclusive):
            fcntl.flock(self._turnstile, fcntl.LOCK_EX)
            fcntl.flock(self._lock, fcntl.LOCK_EX if alone else fcntl.LOCK_SH)
            fcntl.flock(self._turnstile, fcntl.LOCK_UN)
            self._exclusive = alone
        try:
            return (yield)
        finally:
            if not alone or nextitem is None or nextitem.path != item.path:
                fcntl.flock(self._lock, fcntl.LOCK_UN)
                self._exclusive = False

"""How busy the machine is right now: the numbers behind "save timings only from a quiet machine".

Three measures, each where the system has it: the 1-minute load average per core
(`os.getloadavg`, POSIX only), and over a short sample of /proc/stat (Linux) the share of every
core that was busy and the share a hypervisor stole. The sample decides when there is one: the
load average still remembers a notebook that finished a few seconds ago, so on its own it would
refuse every timing lesson that follows another lesson in `labkit run`.
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["MachineLoad", "measure_load", "MAX_BUSY", "MAX_STEAL", "MAX_LOAD_PER_CORE", "SAMPLE_S"]

MAX_BUSY = 0.25           # share of all cores busy with other work during the sample
MAX_STEAL = 0.02          # share of CPU time a hypervisor gave to other machines
MAX_LOAD_PER_CORE = 0.5   # 1-minute load average per core, used only where /proc/stat is missing
SAMPLE_S = 1.0
PROC_STAT = Path("/proc/stat")


@dataclass(frozen=True)
class MachineLoad:
    """One measurement: cores, the 1-minute load average, and over `sample_s` the busy and stolen shares (0..1)."""

    cores: int
    load_1min: float | None
    busy: float | None
    steal: float | None
    sample_s: float = 0.0

    @property
    def reasons(self) -> list[str]:
        """What makes the machine busy, one phrase each; empty when it is quiet (or nothing could be measured)."""
        found = []
        if self.busy is not None and self.busy > MAX_BUSY:
            found.append(f"other work kept {self.busy:.0%} of the cores busy (quiet: at most {MAX_BUSY:.0%})")
        if self.steal is not None and self.steal > MAX_STEAL:
            found.append(f"the hypervisor stole {self.steal:.0%} of the CPU time (quiet: at most {MAX_STEAL:.0%})")
        if self.busy is None and self.load_1min is not None and self.load_1min / self.cores > MAX_LOAD_PER_CORE:
            found.append(f"the load average is {self.load_1min / self.cores:.2f} per core "
                         f"(quiet: at most {MAX_LOAD_PER_CORE})")
        return found

    @property
    def quiet(self) -> bool:
        return not self.reasons

    def describe(self) -> str:
        """'load 3.10 on 2 cores (1.55 per core); busy 90 %, steal 8 % over 1.0 s' with 'not measured' where unknown."""
        load = ("load average not measured" if self.load_1min is None else
                f"load {self.load_1min:.2f} on {self.cores} cores ({self.load_1min / self.cores:.2f} per core)")
        if self.busy is None:
            return f"{load}; CPU busy share and steal not measured (no /proc/stat)"
        return (f"{load}; busy {100 * self.busy:.0f} %, steal {100 * (self.steal or 0):.0f} % "
                f"over {self.sample_s:.1f} s")


def _cpu_times(text: str) -> tuple[int, int, int] | None:
    """(total, idle, steal) jiffies from the `cpu` line of /proc/stat, or None when it has no such line."""
    for line in text.splitlines():
        fields = line.split()
        if fields and fields[0] == "cpu":
            values = [int(v) for v in fields[1:9]] + [0] * max(0, 8 - len(fields[1:9]))
            user, nice, system, idle, iowait, irq, softirq, steal = values
            return sum(values), idle + iowait, steal
    return None


def measure_load(*, sample_s: float = SAMPLE_S, stat_path: str | Path = PROC_STAT,
                 read: Callable[[Path], str] = lambda path: Path(path).read_text(),
                 loadavg: Callable[[], tuple] = lambda: os.getloadavg(), cores: int | None = None) -> MachineLoad:
    """Measure the machine now (takes `sample_s` where /proc/stat exists); what a system lacks is None."""
    cores = cores or os.cpu_count() or 1
    try:
        load_1min = float(loadavg()[0])
    except (OSError, AttributeError):  # not POSIX (Windows), or the system will not say
        load_1min = None
    busy = steal = None
    try:
        first = _cpu_times(read(Path(stat_path)))
        time.sleep(sample_s)
        second = _cpu_times(read(Path(stat_path)))
    except OSError:
        first = second = None
    if first and second and second[0] > first[0]:
        total = second[0] - first[0]
        stolen = second[2] - first[2]
        busy = max(0.0, (total - (second[1] - first[1]) - stolen) / total)
        steal = stolen / total
    return MachineLoad(cores, load_1min, busy, steal, sample_s)

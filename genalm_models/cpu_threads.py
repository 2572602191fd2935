"""How many CPU threads a prediction uses, chosen where it starts and kept robust on a shared machine.

Why (measured, README "Shared CPU"): torch runs every operator as an OpenMP fork-join region, and the fast path
(`inference.py`) runs many small ones (the blocked attention: a few per sequence per layer). On a machine whose
cores other processes also use, each region waits at its join for a thread the kernel has descheduled, and
OpenMP's threads spin while they wait, taking CPU from the very thread they wait for. On this 2-core machine with
other jobs, the bundled promoter model's fast path ran 3-6x slower with 2 threads than with 1 (7.4 vs 38 windows/s
in fp32, 3.5 vs 62 in bf16); the plain modules (fewer, larger regions) lost 2x. `OMP_WAIT_POLICY=PASSIVE` (read
only when the OpenMP library loads, so it cannot be changed from here) removes most of the loss; fewer threads
remove all of it.

The policy (`ThreadPolicy`), applied by `Predictor` on CPU before each batch:
- a user's choice is honoured and never changed: `GENALM_THREADS=N`, else `OMP_NUM_THREADS` (torch already
  applied it), else a `torch.set_num_threads(n)` call made before the prediction (detected as torch's count
  differing from both the CPU count and the last count set here);
- otherwise (`GENALM_THREADS` unset or `auto`) the count starts at the CPUs this process may use
  (`available_cpus`: its affinity mask, capped by a cgroup v2 quota), and is lowered to the CPUs other processes
  leave free: the CPU time of the process's CPUs over the last >= `window` seconds (/proc/stat) minus this
  process's own (os.times). A CPU counts as taken once others use more than a quarter of it. Re-checked between
  batches at most once per `window` seconds, so the count follows a competing job that starts or stops.
The count is torch's (process-wide) only while a prediction runs: `scope()` gives the caller's count back when the
outermost prediction call returns, so a training loop that evaluates through `Predictor` keeps its own threads.
The choice and every change are logged (logger `genalm_models.cpu_threads`, INFO) with the reason. Outside Linux
(no /proc/stat) the count is the CPU count, unless set by the user.
"""
from __future__ import annotations

import contextlib
import logging
import math
import os
from pathlib import Path
import time
from typing import Iterator

import torch

log = logging.getLogger(__name__)

# a CPU that other processes use for more than this share is not offered to our threads
BUSY_SHARE = 0.25


def available_cpus() -> int:
    """CPUs this process may run on: the size of its affinity mask, capped by a cgroup v2 CPU quota
    (/sys/fs/cgroup/cpu.max, rounded up) where one is set. At least 1."""
    try:
        count = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        count = os.cpu_count() or 1
    try:
        with open("/sys/fs/cgroup/cpu.max") as handle:
            quota, period = handle.read().split()[:2]
        if quota != "max":
            count = min(count, math.ceil(int(quota) / int(period)))
    except (OSError, ValueError):
        pass
    return max(1, count)


def _cpu_ids() -> list[int] | None:
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None


def _busy_seconds(cpus: list[int] | None) -> float | None:
    """Seconds the given CPUs (all where None) spent busy since boot (user, nice, system, irq, softirq, steal),
    from /proc/stat; None where it cannot be read."""
    try:
        with open("/proc/stat") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return None
    wanted = None if cpus is None else {f"cpu{c}" for c in cpus}
    ticks = 0
    found = False
    for line in lines:
        fields = line.split()
        if not fields or not fields[0].startswith("cpu") or fields[0] == "cpu":
            continue
        if wanted is not None and fields[0] not in wanted:
            continue
        values = [int(v) for v in fields[1:9]]  # user nice system idle iowait irq softirq steal
        ticks += values[0] + values[1] + values[2] + values[5] + values[6] + values[7]
        found = True
    return ticks / os.sysconf("SC_CLK_TCK") if found else None


def _own_seconds() -> float:
    t = os.times()
    return t.user + t.system


def user_thread_setting(cpus: int | None = None, last_set: int | None = None) -> tuple[int, str] | None:
    """(threads, where the setting came from) when the user chose a thread count, else None.

    GENALM_THREADS (a positive integer; `auto` or unset: no choice), OMP_NUM_THREADS, or a torch.set_num_threads
    made by the caller (torch's count differs from `cpus` and from `last_set`, the last count this module set).
    Raises ValueError for a GENALM_THREADS that is neither `auto` nor a positive integer.
    """
    value = os.environ.get("GENALM_THREADS", "").strip()
    if value and value.lower() != "auto":
        if not value.isdigit() or int(value) < 1:
            raise ValueError(f"GENALM_THREADS={value!r}: expected a positive integer or 'auto'")
        return int(value), "GENALM_THREADS"
    if os.environ.get("OMP_NUM_THREADS", "").strip():
        return torch.get_num_threads(), "OMP_NUM_THREADS"
    current = torch.get_num_threads()
    cpus = available_cpus() if cpus is None else cpus
    if current not in {cpus, last_set, len(_cpu_ids() or [cpus]), *torch_default_threads()}:
        return current, "torch.set_num_threads"
    return None


def torch_default_threads() -> set[int]:
    """The counts torch may start with on its own (not a user's choice): its intra-op default is the machine's
    physical core count (c10 `defaultNumThreads`, through cpuinfo: the whole host's, not the process's affinity or
    a container's quota), so on a hyperthreaded machine or in a small container on a big host it differs from the
    CPUs this process may use; the logical CPU count is the other default some builds use."""
    counts = {os.cpu_count() or 1}
    cores = set()
    for topology in Path("/sys/devices/system/cpu").glob("cpu[0-9]*/topology"):
        try:
            cores.add(((topology / "physical_package_id").read_text().strip(),
                       (topology / "core_id").read_text().strip()))
        except OSError:
            continue
    if cores:
        counts.add(len(cores))
    return counts


_last_set: int | None = None  # the count this module last gave torch (to tell it from a user's own call)


class ThreadPolicy:
    """The intra-op thread count of one `Predictor` (see the module docstring); `before_batch()` applies it."""

    def __init__(self, window: float = 1.0):
        self.window = window
        self.cpus = available_cpus()
        self.cpu_ids = _cpu_ids()
        user = user_thread_setting(self.cpus, _last_set)
        self.fixed = user is not None
        self.source = user[1] if user else "auto"
        self.threads = user[0] if user else self.cpus
        self.others = 0.0  # CPUs' worth of time other processes used in the last window
        self._sample = self._read()
        self._depth = 0
        self._log(f"{self.source}: {self.threads} of {self.cpus} CPUs" if self.fixed else
                  f"{self.cpus} CPUs in this process's affinity mask / quota")

    def _read(self) -> tuple[float, float | None, float]:
        return time.monotonic(), _busy_seconds(self.cpu_ids), _own_seconds()

    def _log(self, reason: str) -> None:
        log.info("predict: %d CPU thread%s (%s)", self.threads, "" if self.threads == 1 else "s", reason)

    def _apply(self) -> None:
        global _last_set
        if torch.get_num_threads() != self.threads:
            torch.set_num_threads(self.threads)
        _last_set = self.threads

    @contextlib.contextmanager
    def scope(self) -> Iterator[None]:
        """Around a prediction call: on leaving the outermost one, torch's thread count is the caller's again."""
        caller = torch.get_num_threads() if self._depth == 0 else None
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
            if caller is not None and torch.get_num_threads() != caller:
                torch.set_num_threads(caller)

    def threads_for(self, others: float) -> int:
        """Threads to use when other processes take `others` CPUs' worth of time of this process's CPUs."""
        taken = max(0, math.ceil(others - BUSY_SHARE))
        return max(1, min(self.cpus, self.cpus - taken))

    def before_batch(self) -> int:
        """Re-check the load (at most once per `window` s) and set torch's thread count; returns the count."""
        if not self.fixed and self._sample[1] is not None:
            now = self._read()
            elapsed = now[0] - self._sample[0]
            if elapsed >= self.window:
                busy, own = now[1] - self._sample[1], now[2] - self._sample[2]
                self._sample = now
                self.others = max(0.0, (busy - own) / elapsed)
                wanted = self.threads_for(self.others)
                if wanted != self.threads:
                    before, self.threads = self.threads, wanted
                    self._log(f"was {before}: other processes used {self.others:.1f} of the {self.cpus} CPUs over "
                              f"the last {elapsed:.1f} s")
        self._apply()
        return self.threads

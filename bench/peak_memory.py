"""Peak memory of one call, measured from inside a fresh process (Linux): used by bench/bench_rmt.py and
tests/test_rmt.py.

`forward_peak(call)` resets the kernel's peak-RSS mark (VmHWM) to the current RSS, runs `call`, and returns how far
the peak rose above the RSS before it: the memory the call itself needed, with whatever was loaded before
(weights, tokenizer, a warm-up call's allocator and kernel set-up) in the baseline. `run_probe(argv)` runs a probe
script in a subprocess with a fixed glibc mmap threshold, so that freed large blocks go back to the system at once
and the peak follows live tensors rather than the allocator's history, and returns the JSON object it printed last.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]


def status_kb(field: str) -> int:
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def forward_peak(call: Callable[[], object]) -> dict:
    """seconds, extra_mb (peak RSS during the call above the RSS before it) and peak_mb (the process peak)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the peak-RSS mark to the current RSS
    base = status_kb("VmRSS")
    t0 = time.perf_counter()
    call()
    seconds = time.perf_counter() - t0
    peak = status_kb("VmHWM")
    return {"seconds": seconds, "extra_mb": (peak - base) / 1024, "peak_mb": peak / 1024}


def run_probe(argv: list[str], timeout: float = 3600, fixed_malloc: bool = True) -> dict:
    """Run `python argv...` in a fresh process (the repository on its path); its last stdout line is JSON.
    fixed_malloc=False runs it with the allocator as users get it (for timings: the fixed threshold returns and
    faults in every freed block, which costs time)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    if fixed_malloc:
        env["MALLOC_MMAP_THRESHOLD_"] = "65536"
    out = subprocess.run([sys.executable, *argv], capture_output=True, text=True, env=env, timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"memory probe {argv[:3]} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])

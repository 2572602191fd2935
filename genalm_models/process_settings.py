"""Process-wide settings for fast CPU inference, applied by the entry points that want them, never on import.

Three settings change the whole process, so no library module applies them as a side effect of being imported; the
programs that want them call `apply_process_settings(caller)` once, early:

- huge pages (`use_huge_pages`): THP_MEM_ALLOC_ENABLE=1 asks PyTorch to back its large CPU tensors (>= 2 MB) with
  transparent huge pages, which cuts the TLB misses of the multi-MB GEMM operands. torch reads the variable at its
  first CPU tensor allocation (importing torch allocates none), so it must be set before a model is built; a value
  the user set (also "0") is left alone. Child processes inherit it.
- keeping freed memory (`genalm_models.inference.keep_freed_memory`, glibc mallopt): large freed activation
  buffers stay in the process for reuse instead of being faulted in again on every forward pass. `Predictor` on
  CPU applies it too (its `keep_freed_memory` argument); training only on request (`train.keep_freed_memory`).
- bounded kernel caches (`bound_kernel_caches`): oneDNN keeps a compiled kernel for every GEMM shape it has run
  (ONEDNN_PRIMITIVE_CACHE_CAPACITY) and PyTorch's ideep layer keeps its own cache of them (LRU_CACHE_CAPACITY),
  1,024 entries each by default, each entry ~0.6 MB whatever the model size (its JIT code and buffers). Every new
  batch shape (batch x tokens: BPE windows of one length in bp vary in tokens) adds entries, so a long scan's
  resident set grew for hours towards ~0.6 GB more than its work needs (measured: `bench/bench_scale_out.py`,
  README "Genome-scale runs"). Both are set to `KERNEL_CACHE_ENTRIES` unless the user set them; measured at no
  cost in speed on this project's workloads (the same README section). oneDNN reads them when it builds its first
  kernel, so they must be set before a model is loaded; a value the user set is left alone. `Predictor` on CPU
  applies it too, before it packs the weights (without effect where oneDNN already ran in the process).

Who calls it: `python -m genalm_models.train` (huge pages and kernel caches), the `genalm-kipoi` command (huge pages; its
predictions build a `Predictor`), the Kipoi model class `kipoi_genalm.kipoi_model.GenaLMModel` when Kipoi loads a
model (both), and the benchmarks (`bench/hardware.py`, which also reports the setting). Each setting is applied at
most once per process and says so in one log line (logger `genalm_models.process_settings`, DEBUG).

No torch import here unless keep_freed_memory is asked for, so commands that never predict stay light.
"""
from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)

HUGE_PAGES_VARIABLE = "THP_MEM_ALLOC_ENABLE"
KERNEL_CACHE_VARIABLES = ("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "LRU_CACHE_CAPACITY")   # oneDNN's, ideep's
KERNEL_CACHE_ENTRIES = 16
_applied: dict[str, bool] = {}   # setting -> whether it is in force, once decided


def use_huge_pages(caller: str) -> bool:
    """Set THP_MEM_ALLOC_ENABLE=1 unless the user set it; returns whether huge pages are asked for. Once."""
    if "huge_pages" not in _applied:
        user_value = os.environ.get(HUGE_PAGES_VARIABLE)
        if user_value is None:
            os.environ[HUGE_PAGES_VARIABLE] = "1"
            log.debug("huge pages for torch CPU tensors: on (%s=1, set by %s)", HUGE_PAGES_VARIABLE, caller)
        else:
            log.debug("huge pages for torch CPU tensors: %s=%s as the user set it (%s left it alone)",
                      HUGE_PAGES_VARIABLE, user_value, caller)
        _applied["huge_pages"] = os.environ[HUGE_PAGES_VARIABLE] not in ("", "0")
    return _applied["huge_pages"]


def bound_kernel_caches(caller: str) -> bool:
    """Cap oneDNN's and ideep's kernel caches at KERNEL_CACHE_ENTRIES entries each (module docstring), leaving a
    variable the user set alone; returns whether both caches are capped below their 1,024-entry default. Once."""
    if "bounded_kernel_caches" not in _applied:
        values = []
        for name in KERNEL_CACHE_VARIABLES:
            user_value = os.environ.get(name)
            if user_value is None:
                os.environ[name] = str(KERNEL_CACHE_ENTRIES)
            values.append(f"{name}={os.environ[name]}" + (" as the user set it" if user_value is not None else ""))
        log.debug("kernel caches: %s (set by %s)", ", ".join(values), caller)
        _applied["bounded_kernel_caches"] = all(_below_default(os.environ[name]) for name in KERNEL_CACHE_VARIABLES)
    return _applied["bounded_kernel_caches"]


def _below_default(value: str) -> bool:
    try:
        return int(value) < 1024
    except ValueError:
        return False


def apply_process_settings(caller: str, huge_pages: bool = True, keep_freed_memory: bool = True,
                           bounded_kernel_caches: bool = True) -> dict[str, bool]:
    """Apply the settings asked for (module docstring), each once per process; returns {setting: in force}.

    caller: the entry point, named in the log line (e.g. "genalm-kipoi", "kipoi model load").
    """
    if huge_pages:
        use_huge_pages(caller)
    if bounded_kernel_caches:
        bound_kernel_caches(caller)
    if keep_freed_memory:
        from .inference import keep_freed_memory as keep_freed

        _applied["keep_freed_memory"] = keep_freed(caller)
    return dict(_applied)

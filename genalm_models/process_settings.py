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
  1,024 entries each by default. Every new batch shape (batch x tokens: BPE windows of one length in bp vary in
  tokens) adds entries, so a long scan's resident set kept growing (one small fp32 GEMM: ~0.6 MB of malloc'd
  memory per new shape, `tests/test_bounded_memory.py`; a 4 Mb splice scan's peak: 898 MB fp32 and 1,192 MB bf16
  with 1,024 entries, 746 and 754 MB bounded, `bench/bench_scale_out.py --parts caches`, README "Genome-scale
  runs"). Both are set to `KERNEL_CACHE_ENTRIES` (128) unless the user set them (also the older name
  DNNL_PRIMITIVE_CACHE_CAPACITY). Not much fewer: one bf16 forward pass of a bundled model builds ~25 kernels, and
  at 16 entries every bf16 call rebuilt them (`tests/test_bounded_memory.py` counts oneDNN's cache misses); at 128
  the measured speed is the 1,024-entry one (same README section). oneDNN and ideep read the variables when they
  build their first kernel, so they must be set before a model runs; a value the user set is left alone
  (LRU_CACHE_CAPACITY=1024 ONEDNN_PRIMITIVE_CACHE_CAPACITY=1024 restores the libraries' default). `Predictor` on
  CPU applies it too, before it packs the weights (without effect where oneDNN already ran in the process, e.g. the
  evaluation of a training run after its first steps). The training entry point does not apply it (not measured there).

Who calls it: `python -m genalm_models.train` (huge pages only), the `genalm-kipoi` command (huge pages and kernel
caches; its predictions build a `Predictor`, which keeps freed memory), the Kipoi model class
`kipoi_genalm.kipoi_model.GenaLMModel` when Kipoi loads a model (all three), and the benchmarks (`bench/hardware.py`,
which also reports the settings). Each setting is applied at most once per process and says so in one log line
(logger `genalm_models.process_settings`, DEBUG).

No torch import here unless keep_freed_memory is asked for, so commands that never predict stay light.
"""
from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)

HUGE_PAGES_VARIABLE = "THP_MEM_ALLOC_ENABLE"
KERNEL_CACHE_VARIABLES = ("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "LRU_CACHE_CAPACITY")   # oneDNN's, ideep's
_OLDER_NAMES = {"ONEDNN_PRIMITIVE_CACHE_CAPACITY": "DNNL_PRIMITIVE_CACHE_CAPACITY"}  # also read by oneDNN
KERNEL_CACHE_ENTRIES = 128
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


def kernel_cache_setting(name: str) -> tuple[str, str] | None:
    """(variable, value) the user set for kernel cache `name` (one of KERNEL_CACHE_VARIABLES, or oneDNN's older
    name for it), or None when neither is in the environment."""
    for variable in (name, _OLDER_NAMES.get(name)):
        if variable and variable in os.environ:
            return variable, os.environ[variable]
    return None


def bound_kernel_caches(caller: str) -> bool:
    """Cap oneDNN's and ideep's kernel caches at KERNEL_CACHE_ENTRIES entries each (module docstring), leaving a
    variable the user set alone (a oneDNN value that is not a whole number gets a warning: oneDNN reads it as 0, no
    cache); returns whether both caches are asked to stay below their 1,024-entry default. Once per process.
    Raises ValueError for an LRU_CACHE_CAPACITY that is not a whole number >= 1 (ideep segfaults on it)."""
    if "bounded_kernel_caches" not in _applied:
        values, bounded = [], True
        for name in KERNEL_CACHE_VARIABLES:
            setting = kernel_cache_setting(name)
            if setting is None:
                os.environ[name] = str(KERNEL_CACHE_ENTRIES)
                values.append(f"{name}={KERNEL_CACHE_ENTRIES}")
                continue
            variable, value = setting
            values.append(f"{variable}={value} as the user set it")
            whole = value.strip().isdigit()
            if variable == "LRU_CACHE_CAPACITY" and not (whole and int(value) >= 1):
                raise ValueError(f"{variable}={value!r}: expected a whole number >= 1 (PyTorch's ideep layer crashes "
                                 f"on 0 or a non-number); unset it for the bound of {KERNEL_CACHE_ENTRIES} entries")
            if not whole:
                log.warning("%s=%r is not a whole number: oneDNN reads it as 0 (no kernel cache: every model call "
                            "rebuilds its kernels)", variable, value)
            bounded = bounded and whole and int(value) < 1024
        log.debug("kernel caches: %s (set by %s)", ", ".join(values), caller)
        _applied["bounded_kernel_caches"] = bounded
    return _applied["bounded_kernel_caches"]


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

"""Process-wide settings for fast CPU inference, applied by the entry points that want them, never on import.

Two settings change the whole process, so no library module applies them as a side effect of being imported; the
programs that want them call `apply_process_settings(caller)` once, early:

- huge pages (`use_huge_pages`): THP_MEM_ALLOC_ENABLE=1 asks PyTorch to back its large CPU tensors (>= 2 MB) with
  transparent huge pages, which cuts the TLB misses of the multi-MB GEMM operands. torch reads the variable at its
  first CPU tensor allocation (importing torch allocates none), so it must be set before a model is built; a value
  the user set (also "0") is left alone. Child processes inherit it.
- keeping freed memory (`genalm_models.inference.keep_freed_memory`, glibc mallopt): large freed activation
  buffers stay in the process for reuse instead of being faulted in again on every forward pass. `Predictor` on
  CPU applies it too (its `keep_freed_memory` argument); training only on request (`train.keep_freed_memory`).

Who calls it: `python -m genalm_models.train` (huge pages only), the `genalm-kipoi` command (huge pages; its
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


def apply_process_settings(caller: str, huge_pages: bool = True, keep_freed_memory: bool = True) -> dict[str, bool]:
    """Apply the settings asked for (module docstring), each once per process; returns {setting: in force}.

    caller: the entry point, named in the log line (e.g. "genalm-kipoi", "kipoi model load").
    """
    if huge_pages:
        use_huge_pages(caller)
    if keep_freed_memory:
        from .inference import keep_freed_memory as keep_freed

        _applied["keep_freed_memory"] = keep_freed(caller)
    return dict(_applied)

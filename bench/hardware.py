"""What a benchmark ran on: printed at the top of every bench/ table."""
from __future__ import annotations

import os
import platform


def describe() -> str:
    import torch

    from genalm_models.process_settings import KERNEL_CACHE_VARIABLES, apply_process_settings, kernel_cache_setting

    # the benchmarks' default (process_settings.py), in force when nothing was allocated yet; benchmarks that build a
    # model before printing this call apply_process_settings first themselves (bench_inference, bench_official,
    # veff_throughput)
    apply_process_settings("bench", keep_freed_memory=False)

    cpu = platform.processor() or "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    flags = ""
    try:
        text = open("/proc/cpuinfo").read()
        flags = ", ".join(f for f in ("avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16") if f" {f}" in text)
    except OSError:
        pass
    huge = os.environ.get("THP_MEM_ALLOC_ENABLE", "0") not in ("", "0")
    caches = "/".join((kernel_cache_setting(name) or (name, "1024"))[1] for name in KERNEL_CACHE_VARIABLES)
    parts = [f"CPU: {cpu} ({os.cpu_count()} logical cores; torch threads {torch.get_num_threads()}; {flags}; "
             f"huge pages for torch CPU tensors: {'on' if huge else 'off'}; oneDNN/ideep kernel cache entries: "
             f"{caches})",
             f"torch {torch.__version__}, Python {platform.python_version()}"]
    if torch.cuda.is_available():
        parts.append(f"GPU: {torch.cuda.get_device_name(0)}")
    return "\n".join(parts)

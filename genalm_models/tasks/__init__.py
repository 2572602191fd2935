"""The GENA-LM downstream tasks: datasets built from real files, split by region, and their metrics (no torch here).

| kind         | task               | head / problem                            | labels                     |
|--------------|--------------------|-------------------------------------------|----------------------------|
| `promoter`   | `PromoterTask`     | sequence, single-label                    | not_promoter, promoter     |
| `splice`     | `SpliceTask`       | token, multi-label (per nucleotide)       | acceptor, donor            |
| `splice_csv` | `SpliceCsvTask`    | token, multi-label (GENA-LM CSV files)    | acceptor, donor            |
| `chromatin`  | `ChromatinTask`    | sequence, multi-label (DeepSEA)           | 919 chromatin features     |
| `enhancer`   | `EnhancerTask`     | sequence, regression (DeepSTARR)          | Dev / Hk log2 enrichment   |

`make_task("promoter", tss_bed=..., fasta=..., split={...})` builds one from plain options (a YAML/JSON config).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from .. import typed_config
from .base import SPLITS, Example, Task, TokenTrack, check_splits
from .chromatin import ChromatinTask, ChromatinTaskConfig, read_deepsea_csv
from .enhancer import EnhancerTask, EnhancerTaskConfig, read_deepstarr
from .metrics import binary_classification_metrics, bootstrap_ci, bootstrap_task_metrics
from .promoter import PUBLISHED_WINDOWS, PromoterTask, PromoterTaskConfig
from .splice import SpliceCsvTask, SpliceCsvTaskConfig, SpliceTask, SpliceTaskConfig, read_spliceai_csv
from .splits import Region, RegionSplit, RegionTable, random_split

TASK_KINDS: dict[str, tuple[type, type]] = {
    "promoter": (PromoterTaskConfig, PromoterTask),
    "splice": (SpliceTaskConfig, SpliceTask),
    "splice_csv": (SpliceCsvTaskConfig, SpliceCsvTask),
    "chromatin": (ChromatinTaskConfig, ChromatinTask),
    "enhancer": (EnhancerTaskConfig, EnhancerTask),
}


def make_task(kind: str, options: Mapping[str, Any] | None = None, seed: int | None = None, **more: Any) -> Task:
    """A task of `kind` (see `TASK_KINDS`) from config options (a dict and/or keywords).

    `seed` (e.g. the training run's seed) fills the config's own `seed` when the options do not set one. It never
    touches `split.seed` of a region split, so the test regions do not move with the training seed; for the
    randomly split tasks (chromatin, enhancer, splice_csv) the config seed IS the split seed: set it in the options
    to keep one split across runs. Options are checked and converted against the task's config class
    (`typed_config.build`): an unknown option or a wrong type is a ValueError naming it.
    """
    if kind not in TASK_KINDS:
        raise ValueError(f"unknown task kind {kind!r}; expected one of {', '.join(TASK_KINDS)}")
    config_class, task_class = TASK_KINDS[kind]
    options = {**(options or {}), **more}
    if seed is not None and "seed" in {f.name for f in dataclasses.fields(config_class)} and "seed" not in options:
        options["seed"] = seed
    return task_class(typed_config.build(config_class, options, f"{kind} task"))


__all__ = [
    "SPLITS", "Example", "Task", "TokenTrack", "check_splits",
    "PromoterTask", "PromoterTaskConfig", "PUBLISHED_WINDOWS",
    "SpliceTask", "SpliceTaskConfig", "SpliceCsvTask", "SpliceCsvTaskConfig", "read_spliceai_csv",
    "ChromatinTask", "ChromatinTaskConfig", "read_deepsea_csv",
    "EnhancerTask", "EnhancerTaskConfig", "read_deepstarr",
    "Region", "RegionSplit", "RegionTable", "random_split",
    "binary_classification_metrics", "bootstrap_ci", "bootstrap_task_metrics",
    "TASK_KINDS", "make_task",
]

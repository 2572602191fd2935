"""Chromatin profiles (DeepSEA): 919 binary chromatin features of a DNA sequence, a multi-label sequence task.

Data: the GENA-LM DeepSEA CSV format, headerless, plain or gzipped: column 0 the sequence, columns 1..919 the 0/1
labels (written `0`/`1` or `0.0`/`1.0`). The original DeepSEA sequences are 1,000 bp; GENA-LM also extended them
with genomic context to longer ones (`downstream_tasks/DeepSea/extend_dataset.py`, e.g. 8,000 bp, the original
1 kb in the middle; sequences it could not place keep their 1,000 bp), and the shared sample
`deepsea_test_100.csv.gz` holds such 8,000 bp sequences. Lengths are therefore not enforced; `crop` keeps the
central `crop` bases of longer sequences (e.g. 1000 to train on the original-size input).

Label groups (`DEEPSEA_GROUPS`), in 1-based label numbering (= CSV column number): labels 1-125 are DNase I
hypersensitive sites (DHS), 126-815 transcription factor binding (TF, 690 profiles), 816-919 histone marks
(104 profiles). This is the order of DeepSEA's feature list (Zhou & Troyanskaya 2015: 125 DHS + 690 TF + 104
histone = 919), and the slices `[:125]`, `[125:815]`, `[815:919]` used by the official GENA-LM DeepSEA fine-tuning
script (`downstream_tasks/DeepSea/run_deepsea_finetuning.py`) for its per-group median AUCs.

Metrics: ROC-AUC of each label over the examples; labels with a single class among the examples are skipped (the
official script scores them 0.5 instead, which pulls medians towards 0.5 on small sets: we report only what can
be measured); the median AUC per group, the number of labels scored per group, and the mean of the three medians
(over the groups that have a median).

Split: the sample files carry no coordinates, so one file is split at random (seeded, `valid_fraction`,
`test_fraction`); the published DeepSEA data ships train / valid / test files, which are used as they are when
given (`valid_path`, `test_path`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..genome import GenomeError, numbered_lines
from .base import Example, check_splits
from .metrics import per_label_roc_auc
from .splits import FileSplitOptions

N_DEEPSEA_LABELS = 919
# (name, first, last) in 1-based label numbering, both inclusive.
DEEPSEA_GROUPS = (("dhs", 1, 125), ("tf", 126, 815), ("histone", 816, 919))
_VALID_BASES = frozenset("ACGTN")


def deepsea_label_names(n_labels: int = N_DEEPSEA_LABELS) -> list[str]:
    """`dhs_1 .. dhs_125, tf_126 .. tf_815, histone_816 .. histone_919` (the number is the CSV column)."""
    if n_labels != N_DEEPSEA_LABELS:
        return [f"label_{k}" for k in range(1, n_labels + 1)]
    return [f"{group}_{k}" for group, first, last in DEEPSEA_GROUPS for k in range(first, last + 1)]


def read_deepsea_csv(path: str, n_labels: Optional[int] = N_DEEPSEA_LABELS, crop: Optional[int] = None
                     ) -> list[Example]:
    """Examples (label = float32 (n_labels,) 0/1 vector) from a DeepSEA CSV; errors name the file and line.

    `n_labels=None` accepts any number of labels, but the same on every line. `crop`: keep the central `crop`
    bases of sequences longer than that (the left side gets the smaller half of an odd excess).
    """
    if crop is not None and crop < 1:
        raise ValueError(f"crop must be a positive length, got {crop}")
    examples = []
    for line_number, line in numbered_lines(path, "DeepSEA CSV"):
        if not line.strip():
            continue
        where = f"{path}:{line_number}"
        fields = line.split(",")
        sequence = fields[0].strip().upper()
        if not sequence:
            raise GenomeError(f"{where}: empty sequence in column 1")
        bad = set(sequence) - _VALID_BASES
        if bad:
            raise GenomeError(f"{where}: the sequence contains {''.join(sorted(bad))!r}; expected A, C, G, T, N")
        expected = n_labels if n_labels is not None else (len(examples[0].label) if examples else None)
        if expected is not None and len(fields) - 1 != expected:
            raise GenomeError(f"{where}: {len(fields) - 1} label columns, expected {expected}")
        try:
            values = np.asarray([float(value) for value in fields[1:]], dtype=np.float32)
        except ValueError as error:
            raise GenomeError(f"{where}: a label is not a number ({error})") from None
        if not np.isin(values, (0.0, 1.0)).all():
            bad_column = int(np.flatnonzero(~np.isin(values, (0.0, 1.0)))[0]) + 2
            raise GenomeError(f"{where}: column {bad_column} is {fields[bad_column - 1]!r}; labels must be 0 or 1")
        if crop is not None and len(sequence) > crop:
            left = (len(sequence) - crop) // 2
            sequence = sequence[left:left + crop]
        examples.append(Example(sequence, values, meta=dict(source=where, kind="deepsea")))
    if not examples:
        raise GenomeError(f"{path}: no examples in the file")
    return examples


def chromatin_metrics(y_true, scores) -> dict[str, float]:
    """Median ROC-AUC per DeepSEA group (or over all labels for another label count) and the mean of the medians."""
    y_true = np.asarray(y_true)
    aucs = per_label_roc_auc(y_true, scores)
    result: dict[str, float] = {}
    if aucs.size != N_DEEPSEA_LABELS:
        scored = aucs[~np.isnan(aucs)]
        result["auc_median_all"] = float(np.median(scored)) if scored.size else math.nan
        result["n_labels_scored"] = float(scored.size)
        return result
    medians = []
    for group, first, last in DEEPSEA_GROUPS:
        group_aucs = aucs[first - 1:last]
        scored = group_aucs[~np.isnan(group_aucs)]
        median = float(np.median(scored)) if scored.size else math.nan
        result[f"auc_median_{group}"] = median
        result[f"n_labels_scored_{group}"] = float(scored.size)
        if not math.isnan(median):
            medians.append(median)
    result["auc_mean_of_medians"] = float(np.mean(medians)) if medians else math.nan
    return result


@dataclass
class ChromatinTaskConfig(FileSplitOptions):
    n_labels: int = N_DEEPSEA_LABELS
    crop: Optional[int] = None          # keep the central `crop` bases (e.g. 1000 from GENA-LM's 8 kb files)
    name: str = "chromatin"


class ChromatinTask:
    head = "sequence_classification"
    problem_type = "multi_label_classification"

    def __init__(self, config: ChromatinTaskConfig):
        self.config = config
        self.name = config.name
        self.labels = deepsea_label_names(config.n_labels)

    def build(self) -> dict[str, list[Example]]:
        c = self.config
        splits = c.load_splits(lambda p: read_deepsea_csv(p, c.n_labels, c.crop))
        return check_splits(splits, f"chromatin task {self.name!r} ({c.path})")

    def metrics(self, examples: list[Example], predictions: list[np.ndarray]) -> dict[str, float]:
        if len(examples) != len(predictions):
            raise ValueError(f"{len(examples)} examples but {len(predictions)} predictions")
        scores = np.asarray([np.asarray(p, dtype=np.float64).reshape(-1) for p in predictions])
        if scores.ndim != 2 or scores.shape[1] != len(self.labels):
            raise ValueError(f"chromatin predictions must be ({len(self.labels)},) probabilities per example, "
                             f"got {scores.shape[1:]}")
        return chromatin_metrics(np.asarray([e.label for e in examples]), scores)

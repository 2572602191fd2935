"""Enhancer activity (DeepSTARR): developmental and housekeeping log2 enrichment of a 249 bp Drosophila sequence,
a regression sequence task with 2 targets.

Data (DeepSTARR format, as in the GENA-LM repository): a FASTA of sequences (`Sequences_Train.fa`) and beside it an
activity table (`Sequences_activity_Train.txt` upstream, `<name>_activity.txt` in the GENA-LM samples): tab-separated,
a header line naming the columns, then one row per FASTA record in the same order. The targets are the columns
named in `targets` (default `Dev_log2_enrichment`, `Hk_log2_enrichment`; the files also carry scaled and
quantile-normalised versions, which are ignored).

Metrics: Pearson r per target, and their mean.

Split: the sample files carry no usable split, so one file is split at random (seeded); DeepSTARR ships
train / valid / test files, which are used as they are when given.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from ..genome import GenomeError, numbered_lines
from .base import Example, check_splits
from .metrics import pearson_r
from .splits import splits_from_files

DEEPSTARR_TARGETS = ("Dev_log2_enrichment", "Hk_log2_enrichment")
_VALID_BASES = frozenset("ACGTN")


def read_fasta_records(path: str) -> list[tuple[str, str, int]]:
    """(name, upper-case sequence, header line number) of every record of a small FASTA file."""
    records: list[tuple[str, list[str], int]] = []
    for line_number, line in numbered_lines(path, "FASTA file"):
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith(">"):
            name = stripped[1:].split()[0] if stripped[1:].strip() else ""
            if not name:
                raise GenomeError(f"{path}:{line_number}: a FASTA header without a name")
            if records and not records[-1][1]:
                raise GenomeError(f"{path}:{records[-1][2]}: record {records[-1][0]!r} has no sequence")
            records.append((name, [], line_number))
            continue
        if not records:
            raise GenomeError(f"{path}:{line_number}: sequence before the first '>' header")
        sequence = stripped.upper()
        bad = set(sequence) - _VALID_BASES
        if bad:
            raise GenomeError(f"{path}:{line_number}: the sequence contains {''.join(sorted(bad))!r}; "
                              "expected A, C, G, T, N")
        records[-1][1].append(sequence)
    if not records:
        raise GenomeError(f"{path}: no FASTA records")
    if not records[-1][1]:
        raise GenomeError(f"{path}:{records[-1][2]}: record {records[-1][0]!r} has no sequence")
    return [(name, "".join(parts), line_number) for name, parts, line_number in records]


def default_activity_path(fasta_path: str) -> str:
    """`x/test_10.fa` -> `x/test_10_activity.txt` (the GENA-LM naming of the DeepSTARR activity files)."""
    path = Path(fasta_path)
    stem = re.sub(r"\.(fa|fasta|fna)(\.gz)?$", "", path.name)
    return str(path.with_name(f"{stem}_activity.txt"))


def read_deepstarr(fasta_path: str, activity_path: Optional[str] = None,
                   targets: Sequence[str] = DEEPSTARR_TARGETS) -> list[Example]:
    """Examples (label = float32 vector of `targets`) from a DeepSTARR FASTA and its activity table."""
    activity_path = activity_path or default_activity_path(fasta_path)
    records = read_fasta_records(fasta_path)
    rows: list[np.ndarray] = []
    columns: Optional[list[int]] = None
    for line_number, line in numbered_lines(activity_path, "activity table"):
        if not line.strip():
            continue
        fields = line.rstrip().split("\t")
        where = f"{activity_path}:{line_number}"
        if columns is None:
            missing = [t for t in targets if t not in fields]
            if missing:
                raise GenomeError(f"{where}: the header has no column {', '.join(missing)} "
                                  f"(it has: {', '.join(fields)})")
            columns, n_fields = [fields.index(t) for t in targets], len(fields)
            continue
        if len(fields) != n_fields:
            raise GenomeError(f"{where}: {len(fields)} fields, but the header has {n_fields}")
        try:
            values = np.asarray([float(fields[c]) for c in columns], dtype=np.float32)
        except ValueError:
            raise GenomeError(f"{where}: a target value is not a number: "
                              f"{[fields[c] for c in columns]}") from None
        if not np.isfinite(values).all():
            raise GenomeError(f"{where}: target values must be finite, got {values.tolist()}")
        rows.append(values)
    if columns is None:
        raise GenomeError(f"{activity_path}: empty file (expected a header line and one row per sequence)")
    if len(rows) != len(records):
        raise GenomeError(f"{activity_path}: {len(rows)} activity rows for {len(records)} sequences in {fasta_path}; "
                          "the rows must follow the FASTA records one for one")
    return [
        Example(sequence, values, meta=dict(name=name, kind="deepstarr", source=f"{fasta_path}:{line_number}"))
        for (name, sequence, line_number), values in zip(records, rows)
    ]


def enhancer_metrics(y_true, predictions, targets: Sequence[str] = DEEPSTARR_TARGETS) -> dict[str, float]:
    """Pearson r between measured and predicted values of each target, and their mean (over defined values)."""
    y_true = np.asarray(y_true, dtype=np.float64)
    predictions = np.asarray(predictions, dtype=np.float64)
    if y_true.shape != predictions.shape or y_true.ndim != 2 or y_true.shape[1] != len(targets):
        raise ValueError(f"targets {y_true.shape} and predictions {predictions.shape} must both be "
                         f"(N, {len(targets)})")
    result = {f"pearson_{name}": pearson_r(y_true[:, k], predictions[:, k]) for k, name in enumerate(targets)}
    defined = [v for v in result.values() if not math.isnan(v)]
    result["pearson_mean"] = float(np.mean(defined)) if defined else math.nan
    return result


@dataclass
class EnhancerTaskConfig:
    fasta: str
    activity: Optional[str] = None       # default: <fasta stem>_activity.txt
    valid_fasta: Optional[str] = None    # with test_fasta: one file pair per split (activity paths derived)
    test_fasta: Optional[str] = None
    valid_fraction: float = 0.1
    test_fraction: float = 0.1
    seed: int = 0
    targets: tuple[str, ...] = DEEPSTARR_TARGETS
    name: str = "enhancer"

    def __post_init__(self) -> None:
        self.targets = tuple(self.targets)


class EnhancerTask:
    head = "sequence_classification"
    problem_type = "regression"

    def __init__(self, config: EnhancerTaskConfig):
        self.config = config
        self.name = config.name
        self.labels = list(config.targets)

    def build(self) -> dict[str, list[Example]]:
        c = self.config

        def load(fasta: str) -> list[Example]:
            return read_deepstarr(fasta, c.activity if fasta == c.fasta else None, c.targets)

        splits = splits_from_files(load, c.fasta, c.valid_fasta, c.test_fasta, c.valid_fraction, c.test_fraction,
                                   c.seed)
        return check_splits(splits, f"enhancer task {self.name!r} ({c.fasta})")

    def metrics(self, examples: list[Example], predictions: list[np.ndarray]) -> dict[str, float]:
        if len(examples) != len(predictions):
            raise ValueError(f"{len(examples)} examples but {len(predictions)} predictions")
        values = np.asarray([np.asarray(p, dtype=np.float64).reshape(-1) for p in predictions])
        return enhancer_metrics(np.asarray([e.label for e in examples]), values, self.labels)

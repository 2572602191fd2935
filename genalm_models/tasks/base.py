"""What a downstream task provides: examples built from real files, split by genomic region, and its metrics.

A task knows nothing of models or training: it turns files into `Example`s (a DNA string and its label) and
scores predictions with scikit-learn. Tokenization, batching and the model live in `predict.py`, which the
training loop, the evaluation command, the Kipoi model and the variant scorer all share.

Labels:
- sequence tasks (`head="sequence_classification"`): `label` is an int class (single-label), a float vector
  (multi-label 0/1 or regression targets);
- token tasks (`head="token_classification"`): `label` is a (len(seq), C) uint8 array of per-nucleotide 0/1
  labels; `label_mask` (len(seq),) marks the nucleotides that carry a label (e.g. the central 5 kb of a SpliceAI
  window). `predict.py` maps them to tokens with the tokenizer's offsets.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Protocol

import numpy as np

SPLITS = ("train", "valid", "test")


@dataclass
class Example:
    seq: str
    label: Any
    label_mask: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)  # chrom/start/end/strand/name/kind: for reports


class Task(Protocol):
    name: str
    head: str            # "sequence_classification" | "token_classification"
    problem_type: str    # "single_label_classification" | "multi_label_classification" | "regression"
    labels: list[str]    # output names (model.yaml column labels)

    def build(self) -> dict[str, list[Example]]:
        """Examples per split ("train", "valid", "test"), deterministic for the task's seed."""

    def metrics(self, examples: list[Example], predictions: list[np.ndarray]) -> dict[str, float]:
        """Scores for `predictions`, what `predict.Predictor.predict` returns for these examples: for sequence
        tasks one (C,) array per example (softmax probabilities for single-label, sigmoid for multi-label, raw
        values for regression); for token tasks one `TokenTrack` per example."""


@dataclass
class TokenTrack:
    """Token-level predictions for one sequence: what `Predictor.predict(..., level="token")` returns.

    probs: (T, C) per content token; offsets: (T, 2) 0-based half-open nucleotide spans in the input sequence
    (gap tokens cover their whole N run). `tokenizer.token_values_to_nucleotides` spreads them to nucleotides.
    """

    probs: np.ndarray
    offsets: np.ndarray


def check_splits(splits: dict[str, list[Example]], source: str) -> dict[str, list[Example]]:
    missing = [s for s in SPLITS if s not in splits]
    if missing:
        raise ValueError(f"{source}: no {'/'.join(missing)} split")
    for name, examples in splits.items():
        if not examples:
            raise ValueError(f"{source}: the {name} split is empty")
    return splits


def stack(values: Iterable[Any]) -> np.ndarray:
    return np.stack([np.asarray(v) for v in values])

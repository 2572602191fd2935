"""Metrics shared by the tasks (scikit-learn / numpy), and percentile-bootstrap confidence intervals.

Conventions:
- A metric that is undefined on the given data (ROC-AUC with one class present, PR-AUC without positives, Pearson r
  of a constant) is `nan`, never an exception and never a made-up value: reports show it as missing.
- Probabilities for binary tasks are P(positive class).
"""
from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    f1_score,
    matthews_corrcoef,
    roc_auc_score,
)


def _both_classes(y_true: np.ndarray) -> bool:
    return np.unique(y_true).size == 2


def roc_auc(y_true, scores) -> float:
    """ROC-AUC (sklearn), or nan when `y_true` holds only one class."""
    y_true = np.asarray(y_true).astype(int)
    return float(roc_auc_score(y_true, np.asarray(scores, dtype=np.float64))) if _both_classes(y_true) else math.nan


def pr_auc(y_true, scores) -> float:
    """Area under the precision-recall curve as sklearn's `average_precision_score`, or nan without positives."""
    y_true = np.asarray(y_true).astype(int)
    if not y_true.any():
        return math.nan
    return float(average_precision_score(y_true, np.asarray(scores, dtype=np.float64)))


def binary_classification_metrics(y_true, p_positive, threshold: float = 0.5) -> dict[str, float]:
    """Accuracy, F1, MCC (at `threshold` on P(positive)), ROC-AUC and PR-AUC of a binary classifier."""
    y_true = np.asarray(y_true).astype(int).reshape(-1)
    p_positive = np.asarray(p_positive, dtype=np.float64).reshape(-1)
    if y_true.shape != p_positive.shape:
        raise ValueError(f"{y_true.size} labels but {p_positive.size} predictions")
    if y_true.size == 0:
        raise ValueError("no examples to score")
    if not np.isin(y_true, (0, 1)).all():
        raise ValueError(f"binary labels must be 0 or 1, found {sorted(set(np.unique(y_true)) - {0, 1})}")
    predicted = (p_positive >= threshold).astype(int)
    return {
        "accuracy": float(accuracy_score(y_true, predicted)),
        "f1": float(f1_score(y_true, predicted, zero_division=0)),
        "mcc": float(matthews_corrcoef(y_true, predicted)),
        "roc_auc": roc_auc(y_true, p_positive),
        "pr_auc": pr_auc(y_true, p_positive),
    }


def per_label_roc_auc(y_true, scores) -> np.ndarray:
    """ROC-AUC of every column of (N, C) labels / scores; nan for columns with a single class."""
    y_true = np.asarray(y_true)
    scores = np.asarray(scores, dtype=np.float64)
    if y_true.ndim != 2 or y_true.shape != scores.shape:
        raise ValueError(f"labels {y_true.shape} and scores {scores.shape} must both be (N, C)")
    return np.array([roc_auc(y_true[:, c], scores[:, c]) for c in range(y_true.shape[1])])


def pearson_r(x, y) -> float:
    """Pearson correlation, or nan when either side is constant or has fewer than 2 values."""
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    if x.shape != y.shape:
        raise ValueError(f"{x.size} values against {y.size}")
    if x.size < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan
    return float(np.corrcoef(x, y)[0, 1])


# ------------------------------------------------------------------------------------------- bootstrap


def _take(values: Any, index: np.ndarray) -> Any:
    """Rows `index` of an array, or items `index` of a list (e.g. of TokenTracks)."""
    if isinstance(values, np.ndarray):
        return values[index]
    return [values[i] for i in index]


def bootstrap_ci(
    metric: Callable[..., float],
    *columns: Sequence,
    n_resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> tuple[float, float]:
    """Percentile-bootstrap confidence interval `(low, high)` of `metric(*columns)`.

    Examples (rows of every column, resampled together) are drawn with replacement `n_resamples` times with a
    seeded generator; resamples on which the metric is undefined (nan, e.g. one class only) are left out. Returns
    (nan, nan) when no resample gives a value.
    """
    if not columns:
        raise ValueError("bootstrap_ci needs at least one column of per-example values")
    n = len(columns[0])
    if any(len(column) != n for column in columns):
        raise ValueError(f"all columns must have the same length, got {[len(c) for c in columns]}")
    if n == 0:
        raise ValueError("no examples to bootstrap")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n_resamples):
        index = rng.integers(0, n, size=n)
        value = metric(*(_take(column, index) for column in columns))
        if value is not None and not math.isnan(value):
            values.append(value)
    if not values:
        return math.nan, math.nan
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def bootstrap_task_metrics(
    task: Any,
    examples: Sequence,
    predictions: Sequence,
    n_resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> dict[str, tuple[float, float]]:
    """Percentile-bootstrap CI of every metric `task.metrics` reports, resampling examples (one resample feeds all
    metrics, so the intervals are consistent with each other). Metrics undefined on a resample are left out of it."""
    n = len(examples)
    if n == 0 or len(predictions) != n:
        raise ValueError(f"{n} examples and {len(predictions)} predictions: need the same, non-zero number")
    rng = np.random.default_rng(seed)
    samples: dict[str, list[float]] = {}
    for _ in range(n_resamples):
        index = rng.integers(0, n, size=n)
        try:
            scores = task.metrics([examples[i] for i in index], [predictions[i] for i in index])
        except ValueError:
            continue  # e.g. a resample with no scorable token at all
        for key, value in scores.items():
            if value is not None and not math.isnan(value):
                samples.setdefault(key, []).append(float(value))
    tail = (1 - confidence) / 2 * 100
    intervals = {}
    for key, values in samples.items():
        low, high = np.percentile(values, [tail, 100 - tail])
        intervals[key] = (float(low), float(high))
    return intervals

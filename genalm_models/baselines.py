"""Non-neural baselines on exactly the tasks' splits: k-mer logistic regression (scikit-learn).

- sequence tasks (promoters): the normalised counts of every k-mer, k = 1..k_max, of each window (both strands
  pooled, so a k-mer and its reverse complement share a feature), a logistic regression with its C chosen on the
  valid split;
- splice: a per-nucleotide logistic regression on the one-hot bases of a +/-`context` bp window around each
  candidate position, one model per label, scored with the task's own nucleotide- and token-level metrics (its
  per-nucleotide probabilities are given to the metric as a one-nucleotide-per-token track).
The predictions go through each task's own `metrics`, so the numbers compare one to one with the models'.
"""
from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np

from .genome import reverse_complement
from .tasks.base import Example, TokenTrack

BASES = "ACGT"


def kmer_vocabulary(k_max: int) -> dict[str, int]:
    kmers = ["".join(p) for k in range(1, k_max + 1) for p in itertools.product(BASES, repeat=k)]
    return {kmer: i for i, kmer in enumerate(kmers)}


def kmer_features(seqs: list[str], k_max: int = 6) -> np.ndarray:
    """(N, sum 4^k) k-mer frequencies per k, counted on both strands (k-mers with N are skipped)."""
    from sklearn.feature_extraction.text import CountVectorizer

    vocab = kmer_vocabulary(k_max)
    vectorizer = CountVectorizer(analyzer="char", ngram_range=(1, k_max), vocabulary=vocab, lowercase=False)
    both = [s.upper() + "|" + reverse_complement(s.upper()) for s in seqs]
    counts = vectorizer.transform(both).astype(np.float64).toarray()
    # normalise within each k so window length and N content do not matter
    offset = 0
    for k in range(1, k_max + 1):
        width = 4 ** k
        block = counts[:, offset: offset + width]
        counts[:, offset: offset + width] = block / np.maximum(block.sum(axis=1, keepdims=True), 1.0)
        offset += width
    return counts


def fit_kmer_logistic_regression(splits: dict[str, list[Example]], k_max: int = 6, seed: int = 0):
    """Fit on train, choose C on valid (ROC-AUC), return (model, chosen C, valid AUC per C)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x_train = kmer_features([e.seq for e in splits["train"]], k_max)
    y_train = np.array([int(e.label) for e in splits["train"]])
    x_valid = kmer_features([e.seq for e in splits["valid"]], k_max)
    y_valid = np.array([int(e.label) for e in splits["valid"]])
    scores, best = {}, None
    for c in (0.001, 0.01, 0.1, 1.0):
        model = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000, random_state=seed))
        model.fit(x_train, y_train)
        scores[c] = float(roc_auc_score(y_valid, model.predict_proba(x_valid)[:, 1]))
        if best is None or scores[c] > scores[best[0]]:
            best = (c, model)
    return best[1], best[0], scores


def one_hot_context(seq: str, positions: np.ndarray, context: int) -> np.ndarray:
    """(len(positions), (2*context+1)*4) one-hot bases around each position (N and off-end: all zeros)."""
    codes = np.frombuffer(seq.upper().encode(), dtype=np.uint8)
    lookup = np.full(256, 4, dtype=np.int64)
    for i, base in enumerate(BASES):
        lookup[ord(base)] = i
    padded = np.concatenate([np.full(context, 4), lookup[codes], np.full(context, 4)])
    windows = padded[positions[:, None] + np.arange(2 * context + 1)[None, :]]
    eye = np.vstack([np.eye(4), np.zeros((1, 4))])
    return eye[windows].reshape(len(positions), -1)


def splice_baseline(splits: dict[str, list[Example]], context: int = 40, negatives_per_positive: int = 20,
                    seed: int = 0):
    """Per-label logistic regression on one-hot context, trained on all positives and sampled negatives."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(seed)
    features, labels = [], []
    for example in splits["train"]:
        label = np.asarray(example.label)
        mask = np.ones(len(example.seq), bool) if example.label_mask is None else np.asarray(example.label_mask, bool)
        positive = np.flatnonzero(label.any(axis=1) & mask)
        candidates = np.flatnonzero(mask & ~label.any(axis=1))
        n_neg = min(len(candidates), max(1, negatives_per_positive * max(1, len(positive))))
        chosen = np.concatenate([positive, rng.choice(candidates, size=n_neg, replace=False)]).astype(np.int64)
        features.append(one_hot_context(example.seq, chosen, context))
        labels.append(label[chosen])
    x, y = np.vstack(features), np.vstack(labels)
    models = [LogisticRegression(C=1.0, max_iter=2000).fit(x, y[:, c]) for c in range(y.shape[1])]
    return models


def splice_baseline_predictions(models, examples: list[Example], context: int) -> list[TokenTrack]:
    """Per-nucleotide probabilities as one-nucleotide 'tokens', so the task metrics apply unchanged."""
    tracks = []
    for example in examples:
        positions = np.arange(len(example.seq))
        x = one_hot_context(example.seq, positions, context)
        probs = np.stack([m.predict_proba(x)[:, 1] for m in models], axis=1)
        offsets = np.stack([positions, positions + 1], axis=1)
        tracks.append(TokenTrack(probs=probs, offsets=offsets))
    return tracks


def run_baseline(config_path: str, overrides: list[str], split: str, out: str | None, k_max: int = 6,
                 context: int = 40, bootstrap: int = 1000) -> dict:
    """`train baseline`: the k-mer / one-hot logistic regression of a run config's task, evaluated on `split`."""
    from .io_utils import write_text_atomic
    from .tasks import make_task
    from .tasks.metrics import bootstrap_task_metrics
    from .train.config import RunConfig

    cfg = RunConfig.load(config_path, overrides)
    task = make_task(cfg.data.task, cfg.data.args, seed=cfg.train.seed)
    splits = task.build()
    if task.head == "token_classification":
        models = splice_baseline(splits, context=context, seed=cfg.train.seed)
        predictions = splice_baseline_predictions(models, splits[split], context)
        details = {"model": f"one-hot +/-{context} bp logistic regression per label"}
    else:
        model, c, valid_scores = fit_kmer_logistic_regression(splits, k_max=k_max, seed=cfg.train.seed)
        probs = model.predict_proba(kmer_features([e.seq for e in splits[split]], k_max))
        predictions = [p for p in probs]
        details = {"model": f"k-mer (k=1..{k_max}) logistic regression", "C": c, "valid_roc_auc_per_C": valid_scores}
    metrics = task.metrics(splits[split], predictions)
    intervals = bootstrap_task_metrics(task, splits[split], predictions, n_resamples=bootstrap) if bootstrap else {}
    result = {"task": task.name, "split": split, "n_examples": len(splits[split]), **details, "metrics": metrics,
              "ci95": {k: list(v) for k, v in intervals.items()}}
    print(json.dumps(result, indent=2))
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(out, json.dumps(result, indent=2) + "\n")
    return result

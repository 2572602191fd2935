"""How much a sequence model's output moves when its window moves by a few bases or one base changes (issue 19).

A user scanning a genome or scoring variants assumes that moving the window by 1 bp, or changing one base far from
anything functional, barely changes the output. This module measures it on real windows read from a reference
(the held-out windows of a task in `python -m genalm_models.train evaluate --stability`, any model folder):

- **shifts**: each window is moved by s bp toward its 3' end and by s bp toward its 5' end (on its own strand;
  s = 1, 2, 3, 5, 10, 20, 50 by default), re-read from the reference (N-padded past a chromosome end) and
  predicted; |dP| = |P(moved) - P(window)|, the largest over the model's outputs. Reported per s: median, 90th and
  99th percentile, maximum and the fraction above 0.2 and 0.5; and for 1 bp, per window, the larger of its two
  moves: how many windows (and TSS windows) move by more than 0.2.
- **substitutions**: single-base changes (to a random other base) at `per_bin` random positions of each tenth of
  the window, and at `per_edge` random positions of its first and of its last 30 bp: the per-position sensitivity
  profile, mean / 90th percentile / fraction above 0.2 of |dP| per bin, and `edge_to_middle`, the mean |dP| of the
  first (last) 30 bp over that of the middle eight tenths (about 1 when sensitivity is not concentrated at the
  window's edges; a model keyed on its window's start has a large first-30-bp ratio).
- **bimodality**: the fraction of the windows' own predictions below 0.1 or above 0.9.

Every random choice comes from `seed`, so a report is reproducible. `predict` is any function from DNA strings to
an (N, C) array (a `Predictor`, a Kipoi folder model): the metric needs nothing else from the model.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from .genome import Genome, Interval

DEFAULT_SHIFTS = (1, 2, 3, 5, 10, 20, 50)
THRESHOLD = 0.2          # the goal: no held-out TSS whose P moves by more than this under a 1 bp shift
EDGE_BP = 30
N_BINS = 10

PredictFn = Callable[[Sequence[str]], np.ndarray]


@dataclass
class StabilityWindow:
    interval: Interval     # the window itself, on its strand (the sequence is read 5'->3' on that strand)
    name: str = ""
    label: int | None = None   # 1: a TSS window (positive), 0: a negative, None: unknown


def moved(interval: Interval, bp: int) -> Interval:
    """`interval` moved by `bp` toward its 3' end on its own strand (negative `bp`: toward its 5' end)."""
    step = -bp if interval.strand == "-" else bp
    return Interval(interval.chrom, interval.start + step, interval.end + step, name=interval.name,
                    strand=interval.strand)


def _as_matrix(values) -> np.ndarray:
    array = np.asarray([np.asarray(v, dtype=np.float64).reshape(-1) for v in values])
    return array.reshape(len(array), -1)


def _summary(deltas: np.ndarray) -> dict[str, float]:
    deltas = np.asarray(deltas, dtype=np.float64)
    if deltas.size == 0:
        return {"n": 0}
    return {"n": int(deltas.size), "mean": float(deltas.mean()), "median": float(np.median(deltas)),
            "p90": float(np.quantile(deltas, 0.9)), "p99": float(np.quantile(deltas, 0.99)),
            "max": float(deltas.max()), "frac_over_0.2": float((deltas > THRESHOLD).mean()),
            "frac_over_0.5": float((deltas > 0.5).mean())}


def shift_stability(predict: PredictFn, genome: Genome, windows: Sequence[StabilityWindow],
                    shifts: Sequence[int] = DEFAULT_SHIFTS, base: np.ndarray | None = None) -> dict:
    """|dP| under moves of each window by +-s bp (see the module docstring). `base`: the windows' own
    predictions when already known ((N, C), same order), else they are predicted here."""
    shifts = sorted({abs(int(s)) for s in shifts if int(s) != 0})
    sequences = []
    if base is None:
        sequences += [genome.fetch(w.interval) for w in windows]
    for s in shifts:
        for sign in (1, -1):
            sequences += [genome.fetch(moved(w.interval, sign * s)) for w in windows]
    outputs = _as_matrix(predict(sequences)) if sequences else np.zeros((0, 1))
    n = len(windows)
    if base is None:
        base, outputs = outputs[:n], outputs[n:]
    base = _as_matrix(base)
    per_shift, one_bp = {}, None
    for k, s in enumerate(shifts):
        plus = outputs[(2 * k) * n:(2 * k + 1) * n]
        minus = outputs[(2 * k + 1) * n:(2 * k + 2) * n]
        delta = np.stack([np.abs(plus - base).max(axis=1), np.abs(minus - base).max(axis=1)], axis=1)  # (n, 2)
        per_shift[str(s)] = _summary(delta.ravel())
        if s == 1:
            one_bp = (delta.max(axis=1), plus, minus)
    report: dict = {"shifts_bp": shifts, "n_windows": n, "per_shift": per_shift}
    if one_bp is not None:
        worst, plus, minus = one_bp
        labels = np.array([-1 if w.label is None else w.label for w in windows])
        report["one_bp"] = {
            "windows": n, f"windows_over_{THRESHOLD}": int((worst > THRESHOLD).sum()),
            "tss_windows": int((labels == 1).sum()),
            f"tss_windows_over_{THRESHOLD}": int(((worst > THRESHOLD) & (labels == 1)).sum()),
            "max": float(worst.max()) if n else 0.0,
            "worst": [{"name": windows[i].name, "window": windows[i].interval.describe(),
                       "p": float(base[i, -1]), "p_5prime_1bp": float(minus[i, -1]),
                       "p_3prime_1bp": float(plus[i, -1])}
                      for i in np.argsort(-worst)[:5] if worst[i] > 0],
        }
    report["bimodality"] = float(((base[:, -1] < 0.1) | (base[:, -1] > 0.9)).mean()) if n else 0.0
    return report


def substitution_positions(length: int, rng: np.random.Generator, per_bin: int = 2, per_edge: int = 5,
                           n_bins: int = N_BINS, edge_bp: int = EDGE_BP) -> list[tuple[str, int]]:
    """(bin name, position) pairs: `per_bin` random positions in each of `n_bins` equal parts of the window and
    `per_edge` in its first and last `edge_bp` bases."""
    chosen = []
    bounds = [(i * length) // n_bins for i in range(n_bins + 1)]
    for i in range(n_bins):
        lo, hi = bounds[i], bounds[i + 1]
        if hi > lo:
            for p in rng.choice(np.arange(lo, hi), size=min(per_bin, hi - lo), replace=False):
                chosen.append((f"{100 * i // n_bins}-{100 * (i + 1) // n_bins}%", int(p)))
    edge = min(edge_bp, length)
    for name, lo in ((f"first {edge_bp} bp", 0), (f"last {edge_bp} bp", length - edge)):
        for p in rng.choice(np.arange(lo, lo + edge), size=min(per_edge, edge), replace=False):
            chosen.append((name, int(p)))
    return chosen


def substitution_profile(predict: PredictFn, sequences: Sequence[str], per_bin: int = 2, per_edge: int = 5,
                         seed: int = 0, base: np.ndarray | None = None) -> dict:
    """The per-position sensitivity profile: |dP| of single-base changes by window tenth and at the edges."""
    rng = np.random.default_rng(seed)
    mutants, names, owners = [], [], []
    for w, seq in enumerate(sequences):
        for name, p in substitution_positions(len(seq), rng, per_bin, per_edge):
            ref = seq[p]
            if ref not in "ACGT":
                continue
            alt = str(rng.choice([b for b in "ACGT" if b != ref]))
            mutants.append(seq[:p] + alt + seq[p + 1:])
            names.append(name)
            owners.append(w)
    base = _as_matrix(predict(list(sequences))) if base is None else _as_matrix(base)
    outputs = _as_matrix(predict(mutants)) if mutants else np.zeros((0, base.shape[1]))
    delta = np.abs(outputs - base[np.asarray(owners, dtype=int)]).max(axis=1) if mutants else np.zeros(0)
    order = list(dict.fromkeys(n for n in names if "%" in n)) + list(dict.fromkeys(n for n in names if "%" not in n))
    profile = []
    for name in order:
        d = delta[[i for i, n in enumerate(names) if n == name]]
        profile.append({"bin": name, **{k: v for k, v in _summary(d).items() if k in ("n", "mean", "p90", "max",
                                                                                       "frac_over_0.2")}})
    middle = [row["mean"] for row in profile if "%" in row["bin"]][1:-1]
    middle_mean = float(np.mean(middle)) if middle else float("nan")
    ratio = {}
    for row in profile:
        if "%" not in row["bin"]:
            ratio[row["bin"]] = row["mean"] / middle_mean if middle_mean > 0 else float("nan")
    return {"n_windows": len(sequences), "n_substitutions": len(mutants), "per_bin": per_bin,
            "per_edge": per_edge, "profile": profile, "edge_to_middle": ratio}


def stability_report(predict: PredictFn, genome: Genome, windows: Sequence[StabilityWindow],
                     shifts: Sequence[int] = DEFAULT_SHIFTS, per_bin: int = 2, per_edge: int = 5,
                     seed: int = 0) -> dict:
    """Both measurements on the same windows (their own predictions computed once)."""
    sequences = [genome.fetch(w.interval) for w in windows]
    base = _as_matrix(predict(sequences))
    report = shift_stability(predict, genome, windows, shifts, base=base)
    report["substitution"] = substitution_profile(predict, sequences, per_bin, per_edge, seed, base=base)
    report["threshold"] = THRESHOLD
    return report


def format_stability(report: dict, title: str = "") -> str:
    """Markdown: the shift table, the 1 bp summary and the substitution profile."""
    lines = []
    if title:
        lines += [title, ""]
    one = report.get("one_bp")
    if one:
        lines.append(f"- **1 bp moves**: {one[f'tss_windows_over_{THRESHOLD}']} of {one['tss_windows']} TSS windows "
                     f"and {one[f'windows_over_{THRESHOLD}']} of {one['windows']} windows in all move by more than "
                     f"{THRESHOLD} (largest |dP| {one['max']:.3f}); {100 * report.get('bimodality', 0):.0f}% of "
                     "the windows' own predictions are below 0.1 or above 0.9.")
    sub = report.get("substitution")
    if sub and sub.get("edge_to_middle"):
        ratios = ", ".join(f"{name} {value:.2f}" for name, value in sub["edge_to_middle"].items())
        lines.append(f"- **Single-base changes**: mean |dP| at the edges over the middle of the window: {ratios} "
                     "(1 = not concentrated at the edges).")
    lines += ["", "| window moved by (bp, both ways) | n | median \\|dP\\| | 90th pct | 99th pct | max | "
              "> 0.2 | > 0.5 |", "|---|---|---|---|---|---|---|---|"]
    for s, row in report.get("per_shift", {}).items():
        if row.get("n"):
            lines.append(f"| {s} | {row['n']} | {row['median']:.4f} | {row['p90']:.4f} | {row['p99']:.4f} | "
                         f"{row['max']:.4f} | {100 * row['frac_over_0.2']:.1f}% | {100 * row['frac_over_0.5']:.1f}% |")
    if sub:
        lines += ["", f"Single-base changes ({sub['n_substitutions']} in {sub['n_windows']} windows; {sub['per_bin']} "
                  f"random positions per tenth of each window, {sub['per_edge']} in its first and last {EDGE_BP} bp):",
                  "", "| position in window | n | mean \\|dP\\| | 90th pct | max | > 0.2 |",
                  "|---|---|---|---|---|---|"]
        for row in sub["profile"]:
            if row.get("n"):
                lines.append(f"| {row['bin']} | {row['n']} | {row['mean']:.4f} | {row['p90']:.4f} | "
                             f"{row['max']:.4f} | {100 * row['frac_over_0.2']:.1f}% |")
    return "\n".join(lines)

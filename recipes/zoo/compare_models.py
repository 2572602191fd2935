"""Paired comparison of two promoter models on the same test TSSs (e.g. 16 kb vs 2 kb context).

    python recipes/zoo/compare_models.py runs/zoo/eval/promoter_16k_genomic_vs_genomic.json \
        runs/zoo/eval/promoter_2k_genomic_vs_genomic.json --out runs/zoo/eval/compare_16k_vs_2k_genomic.json

Reads the per-example outputs that `train evaluate` stores, keeps the TSSs both evaluations hold (each with its
paired negative), and reports ROC-AUC and PR-AUC of each model on that common set, their difference (A - B), and a
bootstrap 95% CI of the difference that resamples TSSs (a TSS and its negative move together).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def by_tss(path: Path) -> dict[str, dict[int, float]]:
    """{TSS name: {label: P(promoter)}} from an evaluation JSON."""
    result = json.loads(Path(path).read_text())
    if "predictions" not in result:
        raise SystemExit(f"{path}: no per-example predictions (re-run `train evaluate`)")
    pairs: dict[str, dict[int, float]] = {}
    for row in result["predictions"]:
        tss = row["id"].split("/")[0]
        pairs.setdefault(tss, {})[int(row["label"])] = float(row["output"][-1])
    return {k: v for k, v in pairs.items() if set(v) == {0, 1}}


def scores(common: list[str], pairs: dict[str, dict[int, float]]) -> tuple[np.ndarray, np.ndarray]:
    labels = np.array([1, 0] * len(common))
    values = np.array([pairs[t][label] for t in common for label in (1, 0)])
    return labels, values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("a")
    parser.add_argument("b")
    parser.add_argument("--out", required=True)
    parser.add_argument("--bootstrap", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from genalm_models.io_utils import write_text_atomic

    a, b = by_tss(Path(args.a)), by_tss(Path(args.b))
    common = sorted(set(a) & set(b))
    if len(common) < 10:
        raise SystemExit(f"only {len(common)} TSSs in common: nothing to compare")
    labels, va = scores(common, a)
    _, vb = scores(common, b)
    result = {"a": args.a, "b": args.b, "n_tss": len(common), "metrics": {}}
    rng = np.random.default_rng(args.seed)
    for name, metric in (("roc_auc", roc_auc_score), ("pr_auc", average_precision_score)):
        ma, mb = metric(labels, va), metric(labels, vb)
        diffs = []
        for _ in range(args.bootstrap):
            pick = rng.integers(0, len(common), len(common))
            rows = np.stack([2 * pick, 2 * pick + 1], axis=1).reshape(-1)
            diffs.append(metric(labels[rows], va[rows]) - metric(labels[rows], vb[rows]))
        low, high = np.percentile(diffs, [2.5, 97.5])
        result["metrics"][name] = {"a": ma, "b": mb, "a_minus_b": ma - mb, "ci95": [float(low), float(high)]}
    write_text_atomic(args.out, json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()

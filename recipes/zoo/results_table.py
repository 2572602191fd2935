"""Markdown tables of the zoo's held-out results from runs/zoo/eval/*.json (written by build_zoo.sh evaluate).

    python recipes/zoo/results_table.py [runs/zoo/eval]
Every number comes from `python -m genalm_models.train evaluate` / `baseline` on the chr20 test regions
(42-48 Mb); brackets are bootstrap 95% confidence intervals over test examples.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

PROMOTER_MODELS = [("promoter_300", "GENA-LM/promoter_300 (300 bp)"), ("promoter_2k", "GENA-LM/promoter (2 kb)"),
                   ("promoter_16k", "GENA-LM/promoter_16k (16 kb, RMT)")]
VARIANTS = [("", "pretrained, fine-tuned vs shuffled negatives"),
            ("_genomic", "pretrained, fine-tuned vs genomic negatives"),
            ("_scratch", "no pretraining, fine-tuned vs shuffled negatives"),
            ("_kmer", "k-mer logistic regression")]


def cell(result: dict | None, key: str) -> str:
    if result is None or key not in result["metrics"]:
        return "n/a"
    value = result["metrics"][key]
    low, high = result.get("ci95", {}).get(key, (None, None))
    return f"{value:.3f}" + (f" [{low:.3f}, {high:.3f}]" if low is not None else "")


def load(folder: Path, name: str) -> dict | None:
    path = folder / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def main(folder: Path) -> None:
    print("| model | training | test negatives | n | F1 | MCC | ROC-AUC |")
    print("|---|---|---|---|---|---|---|")
    for run, title in PROMOTER_MODELS:
        for suffix, variant in VARIANTS:
            for negatives in ("shuffled", "genomic"):
                result = load(folder, f"{run}{suffix}_vs_{negatives}")
                if result is None:
                    continue
                print(f"| {title} | {variant} | {negatives} | {result['n_examples']} | {cell(result, 'f1')} | "
                      f"{cell(result, 'mcc')} | {cell(result, 'roc_auc')} |")
    print()
    print("| model | variant | n windows | token PR-AUC acceptor | token PR-AUC donor | token mean | "
          "nucleotide PR-AUC acceptor | nucleotide PR-AUC donor |")
    print("|---|---|---|---|---|---|---|---|")
    for suffix, variant in VARIANTS:
        result = load(folder, f"splice{suffix}_vs_test")
        if result is None:
            continue
        keys = [k for k in ("token_pr_auc_acceptor", "token_pr_auc_donor", "token_pr_auc_mean",
                            "nucleotide_pr_auc_acceptor", "nucleotide_pr_auc_donor")]
        print(f"| GENA-LM/splice | {variant} | {result['n_examples']} | "
              + " | ".join(cell(result, k) for k in keys) + " |")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "runs/zoo/eval"))

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
            ("_genomic", "pretrained, fine-tuned vs genomic negatives on shifted windows (0.2.0)"),
            ("_scratch", "no pretraining, fine-tuned vs genomic negatives"),
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
    for suffix, variant in [("", "pretrained, fine-tuned"), ("_scratch", "no pretraining (same architecture)"),
                            ("_kmer", "logistic regression on one-hot bases around each site")]:
        result = load(folder, f"splice{suffix}_vs_test")
        if result is None:
            continue
        keys = [k for k in ("token_pr_auc_acceptor", "token_pr_auc_donor", "token_pr_auc_mean",
                            "nucleotide_pr_auc_acceptor", "nucleotide_pr_auc_donor")]
        print(f"| GENA-LM/splice | {variant} | {result['n_examples']} | "
              + " | ".join(cell(result, k) for k in keys) + " |")
    print()
    print("| comparison (same test TSSs) | negatives | n TSSs | ROC-AUC A | ROC-AUC B | A - B [95% CI] | "
          "PR-AUC A - B [95% CI] |")
    print("|---|---|---|---|---|---|---|")
    for negatives in ("shuffled", "genomic"):
        result = load(folder, f"compare_16k_vs_2k_{negatives}")
        if result is None:
            continue
        roc, pr = result["metrics"]["roc_auc"], result["metrics"]["pr_auc"]
        print(f"| A = promoter_16k, B = promoter (2 kb) | {negatives} | {result['n_tss']} | {roc['a']:.3f} | "
              f"{roc['b']:.3f} | {roc['a_minus_b']:+.3f} [{roc['ci95'][0]:+.3f}, {roc['ci95'][1]:+.3f}] | "
              f"{pr['a_minus_b']:+.3f} [{pr['ci95'][0]:+.3f}, {pr['ci95'][1]:+.3f}] |")
    print()
    stability_table(folder)
    print()
    print("| genome scan (held-out region, both strands) | bins | TSSs | base rate | average precision | "
          "precision / recall at P >= 0.5 | at P >= 0.9 | at P >= 0.95 |")
    print("|---|---|---|---|---|---|---|---|")
    for name in ("promoter_300", "promoter"):
        result = load(folder, f"scan_{name}")
        if result is None:
            continue

        def at(threshold: str) -> str:
            row = result["thresholds"].get(threshold)
            if row is None or row["precision"] is None:
                return "no calls"
            return f"{row['precision']:.3f} / {row['recall']:.2f} ({row['calls_per_mb']:.0f} calls/Mb)"

        print(f"| GENA-LM/{name}, {result['region']}, {result['step']} bp bins, hit = TSS within "
              f"{result['tolerance']} bp | {result['n_bins']:,} | {result['n_tss']} | {result['base_rate']:.4f} | "
              f"{result['average_precision']:.3f} | {at('0.5')} | {at('0.9')} | {at('0.95')} |")


# window stability (evaluate --stability, against genomic negatives): also the shipped 0.1.0 models, before the
# training windows moved (their evaluations are named <run>_0.1.0_vs_genomic.json)
STABILITY_VARIANTS = [("_genomic_0.1.0", "0.1.0: fine-tuned on fixed windows"),
                      ("_genomic", "0.2.0: randomly shifted training windows (2 kb, 16 kb: and smoothed, frozen "
                                   "positions)")]


def stability_table(folder: Path) -> None:
    print("| model | training | TSS windows moving > 0.2 under a 1 bp move | all windows > 0.2 | 99th pct / max "
          "\\|dP\\|, 1 bp | max \\|dP\\|, 50 bp | single-base \\|dP\\|, first / last 30 bp vs middle | "
          "predictions < 0.1 or > 0.9 |")
    print("|---|---|---|---|---|---|---|---|")
    for run, title in PROMOTER_MODELS:
        for suffix, variant in STABILITY_VARIANTS:
            result = load(folder, f"{run}{suffix}_vs_genomic")
            report = (result or {}).get("stability")
            if not report or "one_bp" not in report:
                continue
            one, shifts = report["one_bp"], report["per_shift"]
            largest = shifts.get("50", {}).get("max")
            ratios = report.get("substitution", {}).get("edge_to_middle", {})
            print(f"| {title} | {variant} | {one['tss_windows_over_0.2']} of {one['tss_windows']} | "
                  f"{one['windows_over_0.2']} of {one['windows']} | "
                  f"{shifts['1']['p99']:.3f} / {shifts['1']['max']:.3f} | "
                  + (f"{largest:.3f}" if largest is not None else "n/a") + " | "
                  + " / ".join(f"{v:.2f}" for v in ratios.values()) + f" | {100 * report['bimodality']:.0f}% |")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "runs/zoo/eval"))

"""Collect a model's held-out evaluations (runs/zoo/eval/<run>_vs_*.json) into the metrics JSON of its card.

    python recipes/zoo/card_metrics.py runs/zoo/eval promoter_2k_genomic [promoter] > card.json
Values are written as "value [95% CI low, high]" strings (bootstrap over test examples). With the exported name, the
sliding-window scan result of that model (<folder>/scan_<name>.json, recipes/zoo/scan_precision.py) is added. The
stability report of an evaluation run with --stability (window moves of 1-50 bp, single-base changes) goes under
"stability", which the exporter renders as the card's Stability section.
"""
import json
import sys
from pathlib import Path


def main(folder: Path, run: str, name: str | None = None) -> dict:
    card = {}
    for path in sorted(folder.glob(f"{run}_vs_*.json")):
        result = json.loads(path.read_text())
        kind = path.stem.split("_vs_")[-1]
        title = f"test ({result['n_examples']} examples{'' if kind == 'shuffled' and 'splice' in run else ''}" \
                f"{', ' + kind + ' negatives' if 'promoter' in run else ''})"
        card[title] = {key: f"{value:.4f}" + (f" [{result['ci95'][key][0]:.4f}, {result['ci95'][key][1]:.4f}]"
                                                if key in result.get("ci95", {}) else "")
                       for key, value in result["metrics"].items()}
        if "stability" in result:
            card["stability"] = result["stability"]
    scan = folder / f"scan_{name}.json"
    if name and scan.is_file():
        result = json.loads(scan.read_text())
        title = (f"genome scan of held-out {result['region']} (both strands, {result['step']} bp bins, hit = "
                 f"annotated TSS within {result['tolerance']} bp; {result['n_tss']} TSSs)")
        card[title] = {"base rate (random calls)": f"{result['base_rate']:.4f}",
                       "average precision": f"{result['average_precision']:.4f}"}
        for threshold, row in result["thresholds"].items():
            precision = "n/a" if row["precision"] is None else f"{row['precision']:.4f}"
            card[title][f"P >= {threshold}"] = (f"precision {precision}, recall {row['recall']:.3f}, "
                                                f"{row['calls_per_mb']:.0f} calls/Mb")
    return card


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]), sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None), indent=2))

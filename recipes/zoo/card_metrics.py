"""Collect a model's held-out evaluations (runs/zoo/eval/<run>_vs_*.json) into the metrics JSON of its card.

    python recipes/zoo/card_metrics.py runs/zoo/eval promoter_2k_genomic > card.json
Values are written as "value [95% CI low, high]" strings (bootstrap over test examples).
"""
import json
import sys
from pathlib import Path


def main(folder: Path, run: str) -> dict:
    card = {}
    for path in sorted(folder.glob(f"{run}_vs_*.json")):
        result = json.loads(path.read_text())
        kind = path.stem.split("_vs_")[-1]
        title = f"test ({result['n_examples']} examples{'' if kind == 'shuffled' and 'splice' in run else ''}" \
                f"{', ' + kind + ' negatives' if 'promoter' in run else ''})"
        card[title] = {key: f"{value:.4f}" + (f" [{result['ci95'][key][0]:.4f}, {result['ci95'][key][1]:.4f}]"
                                                if key in result.get("ci95", {}) else "")
                       for key, value in result["metrics"].items()}
    return card


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]), sys.argv[2]), indent=2))

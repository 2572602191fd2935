"""The zoo recipe's evaluation helpers: the paired model comparison and the results table read `train evaluate`
JSON files and must compute what they claim."""
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

ROOT = Path(__file__).resolve().parents[1]


def load(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "recipes" / "zoo" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def evaluation(path: Path, scores: dict[str, tuple[float, float]], extra_negative_only: str | None = None) -> Path:
    """An evaluate JSON with per-example outputs: {TSS: (P positive window, P its negative)}."""
    rows = []
    for tss, (p_pos, p_neg) in scores.items():
        rows.append({"id": tss, "label": 1, "output": [1 - p_pos, p_pos]})
        rows.append({"id": f"{tss}/genomic", "label": 0, "output": [1 - p_neg, p_neg]})
    if extra_negative_only:
        rows.append({"id": f"{extra_negative_only}/genomic", "label": 0, "output": [0.5, 0.5]})
    path.write_text(json.dumps({"n_examples": len(rows), "metrics": {}, "predictions": rows}))
    return path


def test_paired_comparison_uses_common_tss_and_gives_the_difference(tmp_path):
    rng = np.random.default_rng(0)
    names = [f"T{i}" for i in range(60)]
    good = {t: (0.6 + 0.4 * rng.random(), 0.5 * rng.random()) for t in names}          # separates well
    weak = {t: (rng.random(), rng.random()) for t in names[:50]}                          # chance, fewer TSSs
    a = evaluation(tmp_path / "a.json", good, extra_negative_only="ORPHAN")
    b = evaluation(tmp_path / "b.json", weak)
    out = tmp_path / "cmp.json"
    subprocess.run([sys.executable, str(ROOT / "recipes" / "zoo" / "compare_models.py"), str(a), str(b), "--out",
                    str(out), "--bootstrap", "300"], check=True, capture_output=True)
    result = json.loads(out.read_text())
    assert result["n_tss"] == 50  # only the TSSs both hold (with their negatives); the orphan negative is dropped
    common = names[:50]
    labels = [1, 0] * 50
    expected_a = roc_auc_score(labels, [good[t][k] for t in common for k in (0, 1)])
    expected_b = roc_auc_score(labels, [weak[t][k] for t in common for k in (0, 1)])
    roc = result["metrics"]["roc_auc"]
    assert abs(roc["a"] - expected_a) < 1e-12 and abs(roc["b"] - expected_b) < 1e-12
    assert abs(roc["a_minus_b"] - (expected_a - expected_b)) < 1e-12
    assert roc["ci95"][0] < roc["a_minus_b"] < roc["ci95"][1] and roc["ci95"][0] > 0  # clearly better


def test_results_table_renders_every_available_result(tmp_path, capsys):
    table = load("results_table")
    result = {"n_examples": 268, "metrics": {"f1": 0.8, "mcc": 0.6, "roc_auc": 0.9},
              "ci95": {"roc_auc": [0.85, 0.95]}}
    (tmp_path / "promoter_2k_genomic_vs_genomic.json").write_text(json.dumps(result))
    table.main(tmp_path)
    printed = capsys.readouterr().out
    assert ("| GENA-LM/promoter (2 kb) | pretrained, fine-tuned vs genomic negatives on shifted windows (0.2.0) | "
            "genomic | 268 | 0.800 |") in printed
    assert "0.900 [0.850, 0.950]" in printed
    assert "shuffled | 268" not in printed  # no file, no row
    assert "0.1.0: fine-tuned on fixed windows" not in printed  # no stability report, no stability row


def test_results_table_stability_rows(tmp_path, capsys):
    table = load("results_table")
    stability = {"one_bp": {"tss_windows_over_0.2": 19, "tss_windows": 134, "windows_over_0.2": 42, "windows": 268},
                 "per_shift": {"1": {"p99": 0.896, "max": 0.935}, "50": {"max": 0.955}},
                 "substitution": {"edge_to_middle": {"first 30 bp": 1.38, "last 30 bp": 0.37}}, "bimodality": 0.87}
    result = {"n_examples": 268, "metrics": {"f1": 0.7, "mcc": 0.5, "roc_auc": 0.8}, "stability": stability}
    (tmp_path / "promoter_2k_genomic_0.1.0_vs_genomic.json").write_text(json.dumps(result))
    table.main(tmp_path)
    printed = capsys.readouterr().out
    assert ("| GENA-LM/promoter (2 kb) | 0.1.0: fine-tuned on fixed windows | 19 of 134 | 42 of 268 | 0.896 / 0.935 | "
            "0.955 | 1.38 / 0.37 | 87% |") in printed

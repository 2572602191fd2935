"""bench/bench_official.py keeps working: its core (official-format checkpoint in an offline Hugging Face cache ->
`FolderModel(official.find(NAME).folder)` -> fast and plain paths, fp32 and bf16 -> intervals and score_variants)
on a tiny 2 x 32 checkpoint and the real 2 Mb chr20 slice of tests/data."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from hub_cache import OFFICIAL_TOKENIZER

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench import bench_official as bench  # noqa: E402

pytestmark = pytest.mark.skipif(not OFFICIAL_TOKENIZER.is_dir(), reason="../shared/data/gena_lm_official missing")


@pytest.mark.parametrize("task", ["promoters_2000", "spliceai"])
def test_core_on_a_tiny_official_checkpoint(task, tmp_path, monkeypatch, chr20_fasta, promoters_bed,
                                             spliceai_table):
    case = bench.Case(task, "tiny")
    inputs = bench.make_inputs(case, tmp_path / "inputs", str(chr20_fasta), str(promoters_bed), str(spliceai_table),
                               n_intervals=2, n_variants=3, per_window=2, seed=0)
    cache = bench.build_cache(case, tmp_path / "caches")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))

    out = bench.measure_case(case.name, str(chr20_fasta), inputs["intervals"], inputs["regions"], inputs["vcf"],
                             str(tmp_path / "scored"))
    rows = {(r["precision"], r["path"]): r for r in out["rows"]}
    assert set(rows) == set(bench.PATHS)
    for row in rows.values():
        # 3 SNVs in 2 windows (2 + 1), region mode: one reference per window, one ALT window per SNV
        assert (row["intervals"], row["variants"], row["variants_scored"]) == (2, 3, 3)
        assert (row["ref_windows"], row["alt_sequences"]) == (2, 3)
        assert row["intervals_s"] > 0 and row["variants_s"] > 0
    assert rows["fp32", "fast"]["max_abs_diff_vs_plain"] < 1e-4
    # the published way (eager attention, promoters padded to 512 tokens) computes the same outputs
    assert out["official"]["intervals"] == 2 and out["official"]["intervals_s"] > 0
    assert out["official"]["max_abs_diff_vs_plain_fp32"] < 1e-5
    if task == "promoters_2000":   # every window padded to the official max_seq_len
        assert out["official"]["input_widths"] == [512]
    assert rows["bf16", "fast"]["max_abs_diff_vs_plain"] < 0.05
    assert out["info"]["name"] == case.name and out["info"]["shape"] == "2 x 32"
    assert out["info"]["weights_file"].startswith(str(cache))  # the weights came from the Hugging Face cache
    measured = [(case, {**out, "peak_rss_gb": 0.5})]
    assert bench.table(measured).count("| tiny |") == 2 and bench.model_table(measured).count("| tiny |") == 1


def test_paths_are_the_fast_copy_and_the_plain_modules(tmp_path, monkeypatch):
    from genalm_models.modeling_gena import GenaForSequenceClassification
    from kipoi_genalm import official
    from kipoi_genalm.adapter import FolderModel, PredictOptions

    case = bench.Case("promoters_2000", "tiny")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(bench.build_cache(case, tmp_path)))
    loaded = FolderModel(official.find(case.name).folder, PredictOptions())
    models = bench.path_models(loaded)
    for precision in ("fp32", "bf16"):
        fast, plain = models[precision, "fast"].predictor, models[precision, "plain"].predictor
        assert fast.precision == plain.precision == precision
        assert plain.model is loaded.model and isinstance(plain.model, GenaForSequenceClassification)
        assert fast.model is not loaded.model
        assert (plain.batch_size, plain.layout, plain.flank) == (fast.batch_size, fast.layout, fast.flank)
        assert models[precision, "fast"].options.precision == precision
    assert loaded.options.precision == "fp32" and loaded.predictor.precision == "fp32"  # left as it was


def test_no_chromosome_x_sites(tmp_path):
    bed = tmp_path / "tss.bed"
    bed.write_text("chrX\t100\t101\tX_1\t0\t+\nchr20\t100\t101\tA_1\t0\t-\nX\t5\t6\tX_2\t0\t+\n")
    table = tmp_path / "splice.txt"
    table.write_text("GX\t0\tchrX\t+\t100\t900\t200,\t300,\nG20\t0\tchr20\t-\t100\t900\t200,\t300,\n")
    assert [s.name for s in bench.candidate_sites("promoters_2000", bed, table)] == ["A_1"]
    assert {s.chrom for s in bench.candidate_sites("spliceai", bed, table)} == {"chr20"}

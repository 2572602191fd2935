"""The published GENA-LM models by name, offline: official-format random checkpoints in a Hugging Face cache laid out
as the hub lays it out (branch refs included), run through the REAL `kipoi` and `genalm-kipoi` commands with
HF_HUB_OFFLINE=1; an empty cache gives one clear error; incomplete checkpoints are refused; the official SpliceAI
token layout; the committed official folders are what the catalog writes."""
from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from hub_cache import OFFICIAL_TOKENIZER, put_in_hub_cache, write_official_checkpoint
from test_kipoi_plugin import genalm, kipoi, dataloader_args

from genalm_models.official_layouts import spliceai_input
from genalm_models.tokenizer import GenaTokenizer
from kipoi_genalm import official

pytestmark = pytest.mark.skipif(not OFFICIAL_TOKENIZER.is_dir(), reason="../shared/data/gena_lm_official missing")

TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
ROOT = Path(__file__).resolve().parents[1]
VCF = ROOT / "tests" / "data" / "veff_test.vcf"


@pytest.fixture(scope="module")
def tokenizer() -> GenaTokenizer:
    return GenaTokenizer.from_pretrained(OFFICIAL_TOKENIZER)


@pytest.fixture(scope="module")
def hub_cache(tmp_path_factory) -> dict:
    """A Hugging Face cache with four official revisions (tiny random weights, official names and config keys)."""
    root = tmp_path_factory.mktemp("hf")
    cache, made = root / "hub", root / "made"
    folders = {
        ("gena-lm-bert-large-t2t", "promoters_2000_run_1"): write_official_checkpoint(
            made / "promoters", "sequence_classification", seed=1, num_labels=2, **TINY),
        ("gena-lm-bert-base-t2t", "main"): write_official_checkpoint(made / "mlm", "mlm", seed=2, **TINY),
        # a fine-tuned branch with config and weights only: the tokenizer comes from `main`
        ("gena-lm-bert-base-t2t", "spliceai_run_1"): write_official_checkpoint(
            made / "splice", "token_classification", seed=3, num_labels=3,
            problem_type="multi_label_classification", **TINY),
        # weights without the classifier: must be refused, not run with a random head
        ("gena-lm-bert-base-t2t", "promoters_300_run_1"): write_official_checkpoint(
            made / "incomplete", "sequence_classification", seed=4, num_labels=2,
            drop=("classifier.weight", "classifier.bias"), **TINY),
    }
    snapshots = {}
    for (repo, revision), folder in folders.items():
        files = ["config.json", "pytorch_model.bin"] if revision == "spliceai_run_1" else None
        snapshots[repo, revision] = put_in_hub_cache(cache, f"AIRI-Institute/{repo}", revision, folder, files)
    return {"cache": cache, "folders": folders, "snapshots": snapshots, "empty": root / "empty"}


def offline_env(hub_cache, empty: bool = False) -> dict:
    return {"HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(hub_cache["empty" if empty else "cache"]),
            "HF_HOME": str(hub_cache["cache"].parent / "hf_home")}


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    """A HOME where the real bundled group (with the official folders) is registered with Kipoi."""
    home = tmp_path_factory.mktemp("home_official")
    genalm(["register"], home, home)
    return home


# ---- the catalog and its folders ---------------------------------------------------------------------------------
def test_committed_official_folders_are_what_the_catalog_writes(tmp_path):
    for model in official.OFFICIAL_MODELS:
        written = official.write_folder(model, tmp_path / model.kipoi_name)
        for name in ("model.yaml", "genalm.json", "README.md", "example.bed"):
            assert (written / name).read_text() == (model.folder / name).read_text(), \
                f"{model.folder / name} is stale: run `python -c 'from kipoi_genalm import official; " \
                "official.write_folders()'`"


def test_names_resolve_and_unsupported_ones_say_why():
    model = official.find("GENA-LM/bert-large-t2t/promoters_2000")
    assert (model.repo_id, model.revision) == ("AIRI-Institute/gena-lm-bert-large-t2t", "promoters_2000_run_1")
    assert official.find("AIRI-Institute/gena-lm-bert-large-t2t@promoters_2000_run_1") is model
    assert official.find("AIRI-Institute/gena-lm-bert-base-t2t").kipoi_name == "GENA-LM/bert-base-t2t"
    assert model.window.upstream == 1000 and model.window.sequence_length == 2000
    assert official.find("GENA-LM/bert-base-t2t/promoters_300").window.upstream == 249
    splice = official.find("GENA-LM/bert-base-t2t/spliceai")
    assert splice.labels == ("none", "acceptor", "donor") and splice.output_labels == ["acceptor", "donor"]
    with pytest.raises(ValueError, match="DeepSpeed"):
        official.find("AIRI-Institute/gena-lm-bigbird-base-sparse-t2t")
    with pytest.raises(ValueError, match="not an official GENA-LM model"):
        official.find("GENA-LM/bert-huge")
    assert len({m.kipoi_name for m in official.OFFICIAL_MODELS}) == len(official.OFFICIAL_MODELS) == 14


# ---- the official SpliceAI layout ----------------------------------------------------------------------------------
def _random_dna(n: int, seed: int) -> str:
    return "".join(np.random.default_rng(seed).choice(list("ACGT"), n))


def test_spliceai_layout_long_target_drops_the_context(tokenizer):
    sequence = _random_dna(15000, 0)
    laid = spliceai_input(tokenizer, sequence, flank=5000, target_length=5000)
    target_ids = tokenizer.encode_batch([sequence[5000:10000]], add_special_tokens=False)[0]
    assert len(target_ids) > 508
    c, s = tokenizer.cls_id, tokenizer.sep_id
    assert laid.ids.tolist() == [c, s] + list(target_ids[:508]) + [s, s]
    assert laid.attention_mask.tolist() == [1] * 512
    assert laid.target_positions.tolist() == list(range(2, 510))
    assert laid.target_offsets[0, 0] == 0 and laid.target_offsets[-1, 1] < 5000  # the target's first ~3.3 kb


def test_spliceai_layout_short_target_keeps_and_trims_context(tokenizer):
    c, s, p = tokenizer.cls_id, tokenizer.sep_id, tokenizer.pad_id
    # everything fits: [CLS] left [SEP] target [SEP] right [PAD]... [SEP], padding masked
    sequence = _random_dna(300, 1)
    laid = spliceai_input(tokenizer, sequence, flank=100, target_length=100)
    ids = laid.ids.tolist()
    left = tokenizer.encode_batch([sequence[:100]], add_special_tokens=False)[0]
    target = tokenizer.encode_batch([sequence[100:200]], add_special_tokens=False)[0]
    assert ids[0] == c and ids[-1] == s and len(ids) == 512
    assert ids[1 + len(left)] == s and ids[2 + len(left): 2 + len(left) + len(target)] == list(target)
    assert laid.target_positions.tolist() == list(range(2 + len(left), 2 + len(left) + len(target)))
    assert all(m == (0 if t == p else 1) for t, m in zip(ids, laid.attention_mask.tolist()))
    assert ids.count(p) > 0
    # too long: the contexts are trimmed from their outer ends to 512 tokens, the target kept whole
    sequence = _random_dna(6300, 2)
    laid = spliceai_input(tokenizer, sequence, flank=3000, target_length=300)
    target = tokenizer.encode_batch([sequence[3000:3300]], add_special_tokens=False)[0]
    ids = laid.ids.tolist()
    assert len(ids) == 512 and p not in ids and ids.count(s) == 3
    first = ids.index(s)
    assert ids[first + 1: first + 1 + len(target)] == list(target)
    n_left, n_right = first - 1, 512 - (first + 1 + len(target) + 1) - 1
    assert abs(n_left - n_right) <= 1
    right = tokenizer.encode_batch([sequence[3300:]], add_special_tokens=False)[0]
    assert ids[first + 2 + len(target): first + 2 + len(target) + 5] == list(right[:5])  # kept from the inner end


# ---- through the real CLIs, offline ----------------------------------------------------------------------------------
def _independent_promoter_probs(folder: Path, fasta: Path, bed: Path) -> np.ndarray:
    """P(promoter) computed without the plugin: our modules on [CLS] tokens [SEP] of each -1000..+999 window."""
    from genalm_models.checkpoint import load_model
    from genalm_models.genome import Genome, reverse_complement

    model, _ = load_model(folder, strict=True)
    model.eval()
    tokenizer = GenaTokenizer.from_pretrained(folder)
    probs = []
    with Genome(fasta) as genome:
        for line in bed.read_text().splitlines():
            chrom, start, end, _, _, strand = line.split("\t")[:6]
            tss = int(start) if strand == "+" else int(end) - 1
            lo = tss - 1000 if strand == "+" else tss - 999
            seq = genome.fetch(genome.resolve(chrom), max(lo, 0), lo + 2000).rjust(2000, "N") \
                if lo < 0 else genome.fetch(genome.resolve(chrom), lo, lo + 2000)
            seq = seq.upper() if strand == "+" else reverse_complement(seq.upper())
            ids = tokenizer.encode_batch([seq], add_special_tokens=False)[0]
            ids = torch.tensor([[tokenizer.cls_id, *ids, tokenizer.sep_id]])
            with torch.no_grad():
                probs.append(torch.softmax(model(ids).logits, -1)[0, 1].item())
    return np.array(probs)


def test_kipoi_predict_official_promoter_head_offline(hub_cache, home, tmp_path, chr20_fasta, promoters_bed):
    bed = tmp_path / "tss.bed"
    bed.write_text("".join(promoters_bed.read_text().splitlines(keepends=True)[:12]))
    out = tmp_path / "out.tsv"
    kipoi(["predict", "GENA-LM/bert-large-t2t/promoters_2000", dataloader_args(bed, chr20_fasta), "-o", str(out)],
          home, tmp_path, **offline_env(hub_cache))
    table = pd.read_csv(out, sep="\t")
    assert "preds/promoter" in table.columns, list(table.columns)
    expected = _independent_promoter_probs(hub_cache["snapshots"]["gena-lm-bert-large-t2t",
                                                                   "promoters_2000_run_1"], chr20_fasta, bed)
    np.testing.assert_allclose(table["preds/promoter"].to_numpy(), expected, atol=2e-5)
    provenance = json.loads(Path(f"{out}.provenance.json").read_text())
    text = json.dumps(provenance)
    snapshot = hub_cache["snapshots"]["gena-lm-bert-large-t2t", "promoters_2000_run_1"]
    assert snapshot.name in text and "promoters_2000_run_1" in text and "AIRI-Institute/gena-lm-bert-large-t2t" in text
    info = kipoi(["info", "GENA-LM/bert-large-t2t/promoters_2000"], home, tmp_path)
    assert "AIRI-Institute/gena-lm-bert-large-t2t" in info and "93.70" in info and "-1000 to +999" in info
    listing = genalm(["list"], home, tmp_path)
    assert "GENA-LM/bert-large-t2t/promoters_2000" in listing and "GENA-LM/promoter\t" in listing


def test_empty_cache_offline_is_one_clear_error(hub_cache, home, tmp_path, chr20_fasta, promoters_bed):
    output = genalm(["predict", "GENA-LM/bert-large-t2t/promoters_300", "--intervals", str(promoters_bed),
                     "--fasta", str(chr20_fasta), "-o", str(tmp_path / "x.tsv")], home, tmp_path, expect=2,
                    **offline_env(hub_cache, empty=True))
    assert "AIRI-Institute/gena-lm-bert-large-t2t at revision 'promoters_300_run_1'" in output
    assert "genalm-kipoi download" in output and "Traceback" not in output
    assert not (tmp_path / "x.tsv").exists()
    output = genalm(["download", "GENA-LM/bert-base-t2t/spliceai"], home, tmp_path, expect=2,
                    **offline_env(hub_cache, empty=True))
    assert "spliceai_run_1" in output and "not in the Hugging Face cache" in output
    output = genalm(["download", "GENA-LM/bert-base-t2t/spliceai", "AIRI-Institute/gena-lm-bert-base-t2t"], home,
                    tmp_path, **offline_env(hub_cache))
    assert hub_cache["snapshots"]["gena-lm-bert-base-t2t", "spliceai_run_1"].name in output


def test_checkpoint_missing_weights_is_refused(hub_cache, home, tmp_path, chr20_fasta, promoters_bed):
    output = genalm(["predict", "GENA-LM/bert-base-t2t/promoters_300", "--intervals", str(promoters_bed),
                     "--fasta", str(chr20_fasta), "-o", str(tmp_path / "x.tsv")], home, tmp_path, expect=2,
                    **offline_env(hub_cache))
    assert "classifier.weight" in output and "Traceback" not in output
    assert not (tmp_path / "x.tsv").exists()


def test_score_variants_with_official_heads_offline(hub_cache, home, tmp_path, chr20_fasta):
    vcf = tmp_path / "few.vcf"
    lines = VCF.read_text().splitlines(keepends=True)
    vcf.write_text("".join([line for line in lines if line.startswith("#")]
                           + [line for line in lines if not line.startswith("#")][:6]))
    for name, field, more in (("GENA-LM/bert-large-t2t/promoters_2000", "DIFF", []),
                              ("GENA-LM/bert-base-t2t/spliceai", "MAX_DIFF", []),
                              ("GENA-LM/bert-base-t2t", "LLR", ["--seq-length", "600"])):  # backbones: any length
        out = tmp_path / (name.replace("/", "_") + ".vcf")
        genalm(["score-variants", name, "--vcf", str(vcf), "--fasta", str(chr20_fasta), "-o", str(out),
                "--no-progress", *more], home, tmp_path, **offline_env(hub_cache))
        text = out.read_text() if out.suffix == ".vcf" else gzip.open(out, "rt").read()
        assert f"KV:kipoi:{name}:{field}" in text, text[:3000]
        records = [line for line in text.splitlines() if not line.startswith("#")]
        assert len(records) == 6 and any(f"KV:kipoi:{name}:{field}=" in r for r in records)
        provenance = Path(f"{out}.provenance.json").read_text()
        assert "AIRI-Institute/gena-lm-bert-base-t2t" in provenance or "gena-lm-bert-large-t2t" in provenance


def test_official_splice_head_per_nucleotide_outputs(hub_cache, monkeypatch, chr20_fasta):
    """acceptor / donor tracks on the 5 kb region; NaN past the 508 tokens the official layout keeps; values equal
    the tiny model's sigmoid on that layout computed here."""
    from genalm_models.checkpoint import load_model
    from genalm_models.genome import Genome
    from kipoi_genalm.adapter import FolderModel

    for key, value in offline_env(hub_cache).items():
        monkeypatch.setenv(key, value)
    model = FolderModel(official.find("GENA-LM/bert-base-t2t/spliceai").folder)
    with Genome(chr20_fasta) as genome:
        sequence = genome.fetch(genome.resolve("chr20"), 300000, 315000).upper()
    tracks = model.predict([sequence])
    # the 5 kb region only (the 5 kb context flanks are cropped off)
    assert sorted(tracks) == ["acceptor", "donor"] and tracks["donor"].shape == (1, 5000)
    donor = tracks["donor"][0]
    reference, _ = load_model(hub_cache["snapshots"]["gena-lm-bert-base-t2t", "spliceai_run_1"], strict=True)
    tokenizer = GenaTokenizer.from_pretrained(OFFICIAL_TOKENIZER)
    laid = spliceai_input(tokenizer, sequence, 5000, 5000)
    with torch.no_grad():
        probs = torch.sigmoid(reference.eval()(torch.tensor(laid.ids[None]),
                                                torch.tensor(laid.attention_mask[None])).logits)[0]
    first, end = laid.target_offsets[0], laid.target_offsets[-1, 1]
    # only the bases of the target's first 508 tokens have predictions (~2-4 kb of the 5 kb)
    assert 1500 < end < 5000
    np.testing.assert_array_equal(~np.isnan(donor), np.arange(5000) < end)
    np.testing.assert_allclose(donor[first[0]: first[1]], probs[2, 2].item(), atol=2e-5)
    assert model.provenance()["hub"]["revision"] == "spliceai_run_1"


# ---- fine-tuning from an official backbone ------------------------------------------------------------------------
def test_finetune_recipe_starts_from_an_official_backbone_in_the_hub_cache(hub_cache, tmp_path, chr20_fasta,
                                                                          promoters_bed):
    """recipes/official/promoters_2000_bert_large_t2t.yaml with `model.init_from: hf://...`: the backbone comes from
    the Hugging Face cache (offline), the classifier starts fresh; only data paths, split and steps are changed."""
    import os
    import subprocess
    import sys

    import yaml

    recipe = yaml.safe_load((ROOT / "recipes" / "official" / "promoters_2000_bert_large_t2t.yaml").read_text())
    assert recipe["model"]["init_from"] == "hf://AIRI-Institute/gena-lm-bert-large-t2t"
    # the tiny official-format MLM backbone of the cache, under the large repository's name
    put_in_hub_cache(hub_cache["cache"], "AIRI-Institute/gena-lm-bert-large-t2t", "main",
                     hub_cache["folders"]["gena-lm-bert-base-t2t", "main"])
    recipe["run_dir"] = str(tmp_path / "run")
    recipe["data"]["args"].update(tss_bed=str(promoters_bed), fasta=str(chr20_fasta),
                                  split={"valid": ["chr20:1000001-1400000"], "test": ["chr20:1420001-2000000"]})
    recipe["train"].update(steps=2, micro_batch_size=2, eval_every=2, save_every=2, log_every=1, eval_batch_size=4,
                           precision="fp32")
    config = tmp_path / "recipe.yaml"
    config.write_text(yaml.safe_dump(recipe))
    env = dict(os.environ, GENALM_PROGRESS="0", OMP_NUM_THREADS="1", **offline_env(hub_cache))
    result = subprocess.run([sys.executable, "-m", "genalm_models.train", "finetune", "--config", str(config)],
                            capture_output=True, text=True, env=env, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    checkpoint = tmp_path / "run" / "checkpoints" / "step_0000001"
    assert (checkpoint / "model.safetensors").is_file()
    assert json.loads((checkpoint / "config.json").read_text())["num_hidden_layers"] == TINY["num_hidden_layers"]


def test_kipoi_test_scan_and_embeddings_with_official_models(hub_cache, home, tmp_path, chr20_fasta):
    env = offline_env(hub_cache)
    output = kipoi(["test", "GENA-LM/bert-large-t2t/promoters_2000", "--source", "kipoi"], home, tmp_path, **env)
    assert "Successfully ran test_predict" in output
    track = tmp_path / "scan.bedGraph"
    genalm(["scan", "GENA-LM/bert-large-t2t/promoters_2000", "--fasta", str(chr20_fasta), "--region",
            "chr20:400,001-401,000", "--step", "250", "--strand", "-", "-o", str(track), "--no-progress"],
           home, tmp_path, **env)
    rows = [line.split("\t") for line in track.read_text().splitlines() if not line.startswith("track")]
    assert len(rows) == 4 and all(0 <= float(r[3]) <= 1 for r in rows)
    folder = official.find("GENA-LM/bert-base-t2t").folder
    out = tmp_path / "emb.h5"
    kipoi(["predict", "GENA-LM/bert-base-t2t", dataloader_args(folder / "example.bed", folder / "example.fa.gz"),
           "-o", str(out)], home, tmp_path, **env)
    import h5py
    with h5py.File(out) as handle:
        assert handle["preds/pooled"].shape[1] == TINY["hidden_size"]
        assert np.isfinite(handle["preds/pooled"][:]).all()


def test_stability_metric_runs_on_an_official_promoter_head_offline(hub_cache, tmp_path, chr20_fasta, promoters_bed):
    """`evaluate --stability` on a published head (hub weights from the cache, offline): the window-stability metric
    of the model cards runs on any sequence model, official ones included."""
    import os
    import subprocess
    import sys

    import yaml

    recipe = yaml.safe_load((ROOT / "recipes" / "zoo" / "promoter_2k_genomic.yaml").read_text())
    recipe["data"]["args"].update(tss_bed=str(promoters_bed), fasta=str(chr20_fasta), min_tss_distance=5000,
                                  split={"valid": ["chr20:1000001-1400000"], "test": ["chr20:1420001-2000000"]})
    config = tmp_path / "task.yaml"
    config.write_text(yaml.safe_dump(recipe))
    out = tmp_path / "eval.json"
    env = dict(os.environ, GENALM_PROGRESS="0", OMP_NUM_THREADS="1", **offline_env(hub_cache))
    result = subprocess.run(
        [sys.executable, "-m", "genalm_models.train", "evaluate", "--model",
         "hf://AIRI-Institute/gena-lm-bert-large-t2t@promoters_2000_run_1", "--config", str(config), "--bootstrap",
         "0", "--out", str(out), "--stability", "--stability-windows", "6", "--stability-shifts", "1,5",
         "--stability-per-bin", "1"], capture_output=True, text=True, env=env, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(out.read_text())["stability"]
    assert report["one_bp"]["windows"] == 6 and report["one_bp"]["tss_windows"] == 3
    assert set(report["per_shift"]) == {"1", "5"} and report["per_shift"]["5"]["n"] == 12
    assert [row["bin"] for row in report["substitution"]["profile"]][-2:] == ["first 30 bp", "last 30 bp"]
    assert "| window moved by (bp, both ways) |" in result.stdout

"""genalm_models.export: complete Kipoi model folders from a run directory, a checkpoint folder and a
Hugging-Face-format folder (tiny models from the `tiny_zoo` fixture in conftest.py)."""
from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from safetensors import safe_open

from genalm_models.export import ExportError
from genalm_models.genome import Genome, read_bed
from kipoi_genalm.folder import read_folder_info, sha256_file
from kipoi_genalm.sequences import target_region
from kipoi_genalm.zoo_export import export_kipoi_model as export_model

ROOT = Path(__file__).resolve().parents[1]


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def load_yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def kipoi_env(home: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GENALM_") or k == "GENALM_CACHE_DIR"}
    env.update(HOME=str(home), GIT_CONFIG_GLOBAL="/dev/null")
    return env


def test_run_directory_export_is_complete(tiny_zoo, chr20_genome):
    folder = tiny_zoo["models"]["promoter"]
    names = {p.name for p in folder.iterdir()}
    assert {"model.yaml", "genalm.json", "config.json", "model.safetensors", "tokenizer.json",
            "special_tokens_map.json", "tokenizer_config.json", "example.bed", "example.fa.gz", "example.fa.gz.fai",
            "example.fa.gz.gzi", "README.md", "run_config.yaml", "metrics.json", "downloaded"} <= names
    assert not [n for n in os.listdir(folder.parent) if n.startswith(".")]  # no temporary folders left

    description = load_yaml(folder / "model.yaml")
    assert description["defined_as"] == "kipoi_genalm.kipoi_model.GenaLMModel"
    assert description["args"]["model_dir"] == "."
    dataloader = description["default_dataloader"]
    assert dataloader["defined_as"] == "kipoi_genalm.dataloaders.IntervalSeqDl"  # package path: no shadowing
    # only local, non-file defaults: the window of the task config and the training reference's contigs
    assert dataloader["default_args"] == {"sequence_length": 300, "anchor": "tss", "upstream": 249,
                                          "reference_contigs": "20=2000000"}
    assert description["schema"]["inputs"]["special_type"] == "DNAStringSeq"
    # one named output per label: `kipoi predict` writes the column preds/promoter, not preds/0
    assert description["schema"]["targets"] == {"promoter": {"shape": "()", "doc": "probability: promoter"}}
    info = description["info"]
    assert info["cite_as"] == "https://doi.org/10.1093/nar/gkae1310" and info["license"] == "MIT"
    assert "-249 to +50" in info["doc"] and "GENALM_PRECISION" in info["doc"]
    # a TSS-anchored model does not advertise reverse-complement averaging (it is refused for it)
    assert "GENALM_RC_AVERAGE" not in info["doc"] and "Reverse-complement averaging is not offered" in info["doc"]
    expect = description["test"]["expect"]
    assert expect["md5"] == md5(folder / "downloaded" / "model_files" / "test.expect.h5")

    folder_info = read_folder_info(folder)
    assert folder_info.weights_sha256 == sha256_file(folder / "model.safetensors")
    assert folder_info.source["type"] == "run" and folder_info.source["step"] == 10
    assert folder_info.output_labels == ["promoter"] and folder_info.output_indices == [1]
    assert folder_info.reference_contigs == {"20": 2_000_000}
    with safe_open(str(folder / "model.safetensors"), "pt") as handle:
        assert str(handle.get_tensor("classifier.weight").dtype) == "torch.float16"

    card = (folder / "README.md").read_text()
    assert "| f1 | 0.6250 |" in card and "| n_test | 40 |" in card
    assert "python -m genalm_models.train finetune --config run_config.yaml" in card
    assert folder_info.weights_sha256 in card


def test_example_files_are_real_slices_with_true_coordinates(tiny_zoo, chr20_genome):
    folder = tiny_zoo["models"]["promoter"]
    examples = list(read_bed(folder / "example.bed"))
    assert 2 <= len(examples) <= 6 and {iv.strand for iv in examples} == {"+", "-"}
    assert all(iv.chrom == "chr20" for iv in examples)  # names of the source BED, FASTA says 20
    source = {(iv.chrom, iv.start, iv.name) for iv in read_bed(ROOT / "tests/data/promoters_chr20_2mb.bed")}
    assert {(iv.chrom, iv.start, iv.name) for iv in examples} <= source
    with gzip.open(folder / "example.fa.gz", "rb") as handle:
        assert handle.read(3) == b">20"
    example = Genome(folder / "example.fa.gz")
    length = example.contig_lengths["20"]
    assert max(iv.end for iv in examples) < length < SLICE_LIMIT
    for iv in examples:  # the real sequence of each example's window, at its true coordinates
        window = target_region(iv, read_folder_info(folder).window)
        assert window.width == 300
        assert example.fetch(window) == chr20_genome.fetch(window)
    assert set(example.fetch("20", 0, 1000)) == {"N"}  # nothing kept far from the examples


SLICE_LIMIT = 400_000


def test_checkpoint_folder_export_finds_its_run_config(tiny_zoo):
    info = read_folder_info(tiny_zoo["models"]["splice"])
    assert tiny_zoo["sources"]["splice"].parent.name == "checkpoints"
    assert info.source["type"] == "checkpoint" and info.source["run_config"].endswith("run_splice/config.yaml")
    assert info.kind == "token" and info.rmt
    assert (info.window.sequence_length, info.window.flank) == (200, 100)
    assert info.output_labels == ["acceptor", "donor"]
    examples = list(read_bed(tiny_zoo["models"]["splice"] / "example.bed"))
    assert all(("_donor_" in iv.name or "_acceptor_" in iv.name) and iv.width == 1 for iv in examples)
    targets = load_yaml(tiny_zoo["models"]["splice"] / "model.yaml")["schema"]["targets"]
    assert targets["acceptor"]["shape"] == "(200,)"


def test_hugging_face_folder_export(tiny_zoo):
    source = tiny_zoo["sources"]["embedding"]
    assert (source / "pytorch_model.bin").is_file() and not (source / "model.safetensors").exists()
    folder = tiny_zoo["models"]["embedding"]
    info = read_folder_info(folder)
    assert info.source["type"] == "huggingface" and info.kind == "embedding"
    assert info.window.sequence_length is None  # any length (RMT)
    args = load_yaml(folder / "model.yaml")["args"]
    assert args["embedding_outputs"] == "pooled,tokens" and args["max_tokens"] == 96  # given at export
    # by default: the most tokens an input can have - 8 RMT segments (no max_n_segments) or the window in bp
    from genalm_models.config import GenaConfig
    from genalm_models.export import _max_tokens
    from kipoi_genalm.folder import WindowSpec

    config = GenaConfig.from_json(folder / "config.json")
    assert _max_tokens(config, WindowSpec(None)) == 8 * (64 - 4 - 3)
    assert _max_tokens(config, WindowSpec(300)) == 300
    assert not (folder / "run_config.yaml").exists()


def test_official_fine_tuned_folder_gets_named_labels_and_needs_a_window(tiny_zoo, tmp_path, chr20_fasta,
                                                                        promoters_bed):
    import torch

    from genalm_models.checkpoint import save_model
    from genalm_models.config import GenaConfig
    from genalm_models.modeling_gena import build_model
    from genalm_models.tokenizer import GenaTokenizer

    tokenizer = GenaTokenizer.from_pretrained(tiny_zoo["tokenizer"])
    config = GenaConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128, num_labels=2)  # LABEL_0/1, no problem_type
    hf = tmp_path / "promoters_300_run_1"
    save_model(build_model(config, "sequence_classification"), hf)
    tokenizer.save(hf)
    state = __import__("safetensors.torch", fromlist=["load_file"]).load_file(str(hf / "model.safetensors"))
    (hf / "model.safetensors").unlink()
    torch.save(state, hf / "pytorch_model.bin")

    with pytest.raises(ExportError, match="cannot tell the input window"):
        export_model(hf, tmp_path / "out", "GENA-LM/promoter_300", fasta=str(chr20_fasta))
    out = export_model(hf, tmp_path / "out", "GENA-LM/promoter_300", fasta=str(chr20_fasta),
                       examples_bed=str(promoters_bed), sequence_length=300, anchor="tss", upstream=249,
                       n_examples=2, fp16=False, version="official-1")
    info = read_folder_info(out)
    assert info.labels == ["not_promoter_300", "promoter_300"] and info.output_labels == ["promoter_300"]
    assert info.version == "official-1" and info.weights_dtype == "float32"
    with safe_open(str(out / "model.safetensors"), "pt") as handle:
        assert str(handle.get_tensor("classifier.weight").dtype) == "torch.float32"
    card = (out / "README.md").read_text()
    assert "TO BE FILLED" in card  # no metrics, no training command: left for the owner


def test_export_errors_leave_nothing_behind(tiny_zoo, tmp_path, chr20_fasta):
    out = tmp_path / "out"
    with pytest.raises(ExportError, match="no such run directory"):
        export_model(tmp_path / "missing", out, "GENA-LM/x")
    with pytest.raises(ExportError, match="pass fasta="):
        export_model(tiny_zoo["sources"]["mlm"], out, "GENA-LM/mlm")
    with pytest.raises(ExportError, match="unknown export option"):
        export_model(tiny_zoo["sources"]["mlm"], out, "GENA-LM/mlm", fasta=str(chr20_fasta), windw=3)
    with pytest.raises(ExportError, match="GROUP/MODEL"):
        export_model(tiny_zoo["sources"]["mlm"], out, "mlm", fasta=str(chr20_fasta))
    with pytest.raises(ExportError, match="reference FASTA not found"):
        export_model(tiny_zoo["sources"]["mlm"], out, "GENA-LM/mlm", fasta=str(tmp_path / "none.fa"))

    broken = tmp_path / "broken"
    shutil.copytree(tiny_zoo["sources"]["promoter"] / "checkpoints" / "step_0000010", broken)
    from safetensors.torch import load_file, save_file

    state = load_file(str(broken / "model.safetensors"))
    del state["classifier.weight"]
    save_file(state, str(broken / "model.safetensors"))
    with pytest.raises(ExportError, match="lack parameters .*classifier.weight"):
        export_model(broken, out, "GENA-LM/broken", config_path=tiny_zoo["sources"]["promoter"] / "config.yaml")
    assert not out.exists() and sorted(os.listdir(tmp_path)) == ["broken"]


def test_re_export_replaces_the_folder_and_a_failed_one_keeps_it(tiny_zoo, tmp_path, chr20_fasta):
    out = tmp_path / "GENA-LM" / "mlm"
    export_model(tiny_zoo["sources"]["mlm"], out, "GENA-LM/mlm", fasta=str(chr20_fasta), sequence_length=300,
                 n_examples=2, version="v1")
    assert read_folder_info(out).version == "v1"
    with pytest.raises(ExportError):
        export_model(tiny_zoo["sources"]["mlm"], out, "GENA-LM/mlm", fasta=str(chr20_fasta), sequence_length=300,
                     anchor="tss", version="v2")  # tss without upstream: refused after the source was read
    assert read_folder_info(out).version == "v1"
    export_model(tiny_zoo["sources"]["mlm"], out, "GENA-LM/mlm", fasta=str(chr20_fasta), sequence_length=300,
                 n_examples=2, version="v3")
    assert read_folder_info(out).version == "v3"
    assert os.listdir(out.parent) == ["mlm"]


def test_training_cli_export_then_kipoi_test_offline(tiny_zoo, tmp_path):
    out = tmp_path / "zoo" / "GENA-LM" / "promoter"
    env = kipoi_env(tmp_path / "home")
    result = subprocess.run([sys.executable, "-m", "genalm_models.train", "export", "--source",
                             str(tiny_zoo["sources"]["promoter"]), "--out", str(out), "--name", "GENA-LM/promoter",
                             "--fp32"], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert read_folder_info(out).weights_dtype == "float32"
    kipoi = Path(sys.executable).with_name("kipoi")
    result = subprocess.run([str(kipoi), "test", str(out)], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout + result.stderr  # kipoi logs to stdout
    assert "All predictions match" in output and "Successfully ran test_predict" in output


def test_export_without_a_kipoi_finisher_refuses_to_replace_a_kipoi_folder(tiny_zoo, tmp_path, monkeypatch):
    """An install without the plugin's entry point (e.g. an editable install older than it) would replace a Kipoi
    model folder by one without model.yaml: refused, the folder untouched."""
    import genalm_models.export as export
    from genalm_models.train.__main__ import main

    out = tmp_path / "promoter"
    out.mkdir()
    (out / "model.yaml").write_text("defined_as: x\n")
    monkeypatch.setattr(export, "registered_finishers", lambda: [])
    with pytest.raises(SystemExit, match=r"is a Kipoi model folder .*pip install -e"):
        main(["export", "--source", str(tiny_zoo["sources"]["promoter"]), "--out", str(out),
              "--name", "GENA-LM/promoter"])
    assert (out / "model.yaml").read_text() == "defined_as: x\n"

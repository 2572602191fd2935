"""Shared pytest fixtures: the small, real test files in tests/data (see tests/data/make_test_data.py).

A run in which any test was skipped or xfailed FAILS (exit status 1, the skipped tests listed at the end): a
missing dependency or a missing ../shared data folder must not let the suite pass quietly. A local run that means to
skip (no ../shared beside the checkout, no native bf16 CPU) opts in with GENALM_ALLOW_SKIPS=1.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import pytest

DATA_DIR = Path(__file__).resolve().parent / "data"
ALLOW_SKIPS = "GENALM_ALLOW_SKIPS"

_not_run: list[str] = []  # "nodeid: reason" of every skipped or xfailed test of this session


def _skip_reason(report) -> str:
    return report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)


def pytest_collectreport(report) -> None:
    if report.skipped:  # a whole module skipped at import (pytest.skip(..., allow_module_level=True))
        _not_run.append(f"{report.nodeid}: {_skip_reason(report)}")


def pytest_runtest_logreport(report) -> None:
    if report.skipped:  # skipped in setup or call, and xfailed (report.wasxfail)
        if hasattr(report, "wasxfail"):
            _not_run.append(f"{report.nodeid}: xfailed {report.wasxfail}")
        else:
            _not_run.append(f"{report.nodeid}: {_skip_reason(report)}")


def pytest_sessionfinish(session, exitstatus) -> None:
    if _not_run and os.environ.get(ALLOW_SKIPS) != "1" and exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    if _not_run and os.environ.get(ALLOW_SKIPS) != "1":
        terminalreporter.section("tests not run: the session fails", sep="=", red=True, bold=True)
        for line in _not_run:
            terminalreporter.write_line(line)
        terminalreporter.write_line(f"{len(_not_run)} test(s) skipped or xfailed; install what they need, or set "
                                    f"{ALLOW_SKIPS}=1 to accept skips in this run")

@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA_DIR


@pytest.fixture(scope="session")
def chr20_fasta() -> Path:
    """BGZF FASTA (with .fai and .gzi beside it): GRCh37 chr20:0-2,000,000 under the name `20`.

    Real coordinates: it starts with the chromosome's 60,000 bp N run (first base 60,000 is G).
    """
    return DATA_DIR / "chr20_2mb.fa.gz"


@pytest.fixture(scope="session")
def promoters_bed() -> Path:
    """EPDnew TSSs (BED6, 1-bp, names like DEFB125_1, `chr20`) lying in the FASTA slice."""
    return DATA_DIR / "promoters_chr20_2mb.bed"


@pytest.fixture(scope="session")
def spliceai_table() -> Path:
    """SpliceAI canonical transcripts (name, paralog, chrom, strand, tx start, tx end, exon ends,
    exon starts) lying fully in the FASTA slice."""
    return DATA_DIR / "spliceai_chr20_2mb.txt"


@pytest.fixture(scope="session", autouse=True)
def index_cache_dir(tmp_path_factory) -> Iterator[Path]:
    """A private FASTA index cache for the whole session, so tests never write to the user's ~/.cache.

    `genalm_models.genome.Genome` builds indexes under $GENALM_CACHE_DIR when the FASTA has none beside it.
    """
    cache = tmp_path_factory.mktemp("genalm_cache")
    previous = os.environ.get("GENALM_CACHE_DIR")
    os.environ["GENALM_CACHE_DIR"] = str(cache)
    yield cache
    if previous is None:
        os.environ.pop("GENALM_CACHE_DIR", None)
    else:
        os.environ["GENALM_CACHE_DIR"] = previous


@pytest.fixture(scope="session")
def chr20_genome(chr20_fasta):
    """A `genalm_models.genome.Genome` over the chr20 slice, shared by the whole session."""
    from genalm_models.genome import Genome

    return Genome(chr20_fasta)


# ---------------------------------------------------------------------------------------------------------------
# Tiny GENA-LM models exported as a Kipoi zoo (tests/test_kipoi_plugin.py, test_export.py, test_dataloader.py)
# ---------------------------------------------------------------------------------------------------------------
TINY_ZOO_MODELS = ("promoter", "promoter_rmt", "splice", "embedding", "mlm")


def _tiny_config(tokenizer, **changes):
    from genalm_models.config import GenaConfig

    # initializer_range 0.2 (not 0.02): random tiny models whose outputs differ visibly between inputs and
    # strands, so tests can tell one prediction path from another
    fields = dict(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                  intermediate_size=64, max_position_embeddings=128, initializer_range=0.2)
    fields.update(changes)
    return GenaConfig(**fields).validate()


def _tiny_checkpoint(folder, model, tokenizer, step):
    """A checkpoint folder as the training loop writes it (model folder + tokenizer + trainer.json)."""
    import json

    from genalm_models.checkpoint import save_model

    save_model(model, folder)
    tokenizer.save(folder)
    (folder / "trainer.json").write_text(json.dumps({"step": step}))
    return folder


@pytest.fixture(scope="session")
def tiny_tokenizer_dir(tmp_path_factory, chr20_genome):
    """A GENA-LM-style BPE tokenizer (vocabulary 200) trained on 300 kb of the chr20 slice."""
    from genalm_models.tokenizer import train_bpe_tokenizer

    sentences = [chr20_genome.fetch("20", start, start + 1000) for start in range(100_000, 1_900_000, 6000)]
    folder = tmp_path_factory.mktemp("tiny_tokenizer")
    train_bpe_tokenizer(sentences, vocab_size=200).save(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_zoo(tmp_path_factory, tiny_tokenizer_dir, chr20_fasta, promoters_bed, spliceai_table):
    """Tiny random-weight GENA-LM models (hidden 32, 2 layers) exported with `export_model` into a Kipoi group
    folder `<root>/zoo/GENA-LM/<model>`, one from each kind of source:

      promoter      sequence classifier, 300 bp TSS window (-249..+50)  <- a training run directory
      promoter_rmt  RMT sequence classifier, 1 kb TSS window             <- a checkpoint folder of a run
      splice        RMT per-token acceptor/donor, 200 bp + 2 x 100 bp    <- a checkpoint folder of a run
      embedding     RMT embedding model, any length (150 bp examples)    <- an HF-format folder (pytorch_model.bin)
      mlm           MLM backbone, 300 bp centred windows                 <- an HF-format folder (model.safetensors)
    Returns a dict with `root`, `group` (the GENA-LM folder), `models` {name: folder}, `sources` {name: source}.
    """
    import json

    import torch
    from safetensors.torch import load_file

    from genalm_models.checkpoint import save_model
    from genalm_models.config import RMTConfig
    from kipoi_genalm.zoo_export import export_kipoi_model as export_model
    from genalm_models.modeling_gena import build_model
    from genalm_models.rmt import RMT
    from genalm_models.tokenizer import GenaTokenizer
    from genalm_models.train.config import RunConfig

    tokenizer = GenaTokenizer.from_pretrained(tiny_tokenizer_dir)
    root = tmp_path_factory.mktemp("tiny_zoo")
    group = root / "zoo" / "GENA-LM"
    sources, models = {}, {}

    def run_config(run_dir, head, task, args, rmt=None):
        config = RunConfig.from_dict({"run_dir": str(run_dir), "model": {"head": head, "tokenizer":
                                      str(tiny_tokenizer_dir), "rmt": rmt}, "data": {"task": task, "args": args}})
        config.save(run_dir / "config.yaml")

    def run_with_checkpoint(name, model, head, task, args, rmt=None, step=10):
        run_dir = root / f"run_{name}"
        checkpoint = run_dir / "checkpoints" / f"step_{step:07d}"
        checkpoint.mkdir(parents=True)
        _tiny_checkpoint(checkpoint, model, tokenizer, step)
        (run_dir / "checkpoints" / "latest").write_text(checkpoint.name + "\n")
        run_config(run_dir, head, task, args, rmt)
        return run_dir, checkpoint

    promoter_args = {"tss_bed": str(promoters_bed), "fasta": str(chr20_fasta)}
    torch.manual_seed(1)
    config = _tiny_config(tokenizer, num_labels=2, id2label={0: "not_promoter", 1: "promoter"},
                          problem_type="single_label_classification")
    run_dir, _ = run_with_checkpoint("promoter", build_model(config, "sequence_classification"),
                                     "sequence_classification", "promoter",
                                     {**promoter_args, "upstream": 249, "downstream": 50})
    (run_dir / "metrics_test.json").write_text(json.dumps({"f1": 0.625, "auroc": 0.71, "n_test": 40}))
    sources["promoter"] = run_dir

    torch.manual_seed(2)
    config = _tiny_config(tokenizer, num_labels=2, id2label={0: "not_promoter", 1: "promoter"},
                          problem_type="single_label_classification", max_position_embeddings=64)
    model = RMT(build_model(config, "sequence_classification"), RMTConfig(num_mem_tokens=4))
    _, sources["promoter_rmt"] = run_with_checkpoint("promoter_rmt", model, "sequence_classification", "promoter",
                                                     {**promoter_args, "upstream": 500, "downstream": 499},
                                                     rmt={"num_mem_tokens": 4})

    torch.manual_seed(3)
    config = _tiny_config(tokenizer, num_labels=2, id2label={0: "acceptor", 1: "donor"},
                          problem_type="multi_label_classification", max_position_embeddings=64)
    model = RMT(build_model(config, "token_classification"), RMTConfig(num_mem_tokens=4))
    _, sources["splice"] = run_with_checkpoint(
        "splice", model, "token_classification", "splice",
        {"table": str(spliceai_table), "fasta": str(chr20_fasta), "center": 200, "flank": 100},
        rmt={"num_mem_tokens": 4})

    torch.manual_seed(4)
    model = RMT(build_model(_tiny_config(tokenizer, max_position_embeddings=64), "embedding"),
                RMTConfig(num_mem_tokens=4))
    hf = root / "hf_embedding"
    save_model(model, hf)
    tokenizer.save(hf)
    state = load_file(str(hf / "model.safetensors"))
    (hf / "model.safetensors").unlink()
    torch.save(state, hf / "pytorch_model.bin")  # official hub folders ship pickled weights
    sources["embedding"] = hf

    torch.manual_seed(5)
    hf = root / "hf_mlm"
    save_model(build_model(_tiny_config(tokenizer), "mlm"), hf)
    tokenizer.save(hf)
    sources["mlm"] = hf

    short_intervals = root / "short_intervals.bed"
    short_intervals.write_text("".join(f"chr20\t{start}\t{start + 150}\tw{i}\t0\t{'+-'[i % 2]}\n"
                                       for i, start in enumerate(range(300_000, 301_000, 250))))
    options = {
        # per-token outputs are max_tokens wide: keep them small for fast tests
        "embedding": dict(fasta=str(chr20_fasta), sequence_length=None, examples_bed=str(short_intervals),
                          max_tokens=96),
        "mlm": dict(fasta=str(chr20_fasta), examples_bed=str(promoters_bed), sequence_length=300),
    }
    for name in TINY_ZOO_MODELS:
        models[name] = export_model(sources[name], group / name, name=f"GENA-LM/{name}", **options.get(name, {}))
    return {"root": root, "group": group, "models": models, "sources": sources, "tokenizer": tiny_tokenizer_dir}


@pytest.fixture(scope="session")
def kipoi_imported(tmp_path_factory):
    """kipoi imported in this process with HOME in a temporary folder (kipoi writes ~/.kipoi/config.yaml at
    import), unless a test imported it already."""
    import importlib
    import os
    import sys

    if "kipoi" not in sys.modules:
        previous = os.environ.get("HOME")
        os.environ["HOME"] = str(tmp_path_factory.mktemp("kipoi_home"))
        try:
            importlib.import_module("kipoi")
        finally:
            if previous is not None:
                os.environ["HOME"] = previous
    return sys.modules["kipoi"]

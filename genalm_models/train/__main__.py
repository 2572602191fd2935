"""`python -m genalm_models.train <command>`: the GENA-LM training pipeline.

  regions    split a genome into train / valid / test regions (gaps between them) and write BED files
  tokenizer  train a BPE tokenizer (GENA-LM recipe) from FASTA files or a built corpus
  corpus     build the pretraining corpus (documents of sentences, both strands, passes, VCF haplotypes)
  pack       tokenize a corpus and pack it into MLM samples
  pretrain   MLM pretraining            (a run config; data.task: mlm)
  rmt        RMT pretraining/fine-tuning (a run config with model.rmt, optionally data.segment_curriculum)
  finetune   fine-tune on a task         (data.task: promoter | splice | chromatin | enhancer)
  evaluate   metrics of a model folder on a task's held-out split
  baseline   k-mer logistic-regression baseline on a task's splits
  export     write a Kipoi model folder from a run directory or an HF-format GENA-LM folder

Run configs are YAML (see recipes/); any key can be overridden: `train.steps=200 optim.lr=3e-4`.
Multi-process: `torchrun --nproc-per-node 2 -m genalm_models.train pretrain --config ...`; multi-node:
`torchrun --nnodes 2 --node-rank R --nproc-per-node G --rdzv-backend c10d --rdzv-endpoint HOST:PORT -m
genalm_models.train pretrain --config ...`.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def limit_bp(sentences, max_bp):
    total = 0
    for sentence in sentences:
        if max_bp is not None and total >= max_bp:
            return
        total += len(sentence)
        yield sentence


def cmd_tokenizer(args) -> None:
    import tempfile

    from ..pretrain.corpus import CorpusConfig, build_corpus, iter_corpus_sentences
    from ..tokenizer import train_bpe_tokenizer

    with tempfile.TemporaryDirectory() as tmp:
        corpus = args.corpus
        if corpus is None:
            # One pass over the FASTA, one strand, cut into sentences exactly like the pretraining corpus.
            corpus = str(Path(tmp) / "corpus")
            build_corpus(CorpusConfig(fasta_paths=args.fasta, output_dir=corpus, passes=1, both_strands=False,
                                      exclude_contigs=args.exclude_contigs, exclude_regions=args.exclude_regions,
                                      seed=args.seed))
        tok = train_bpe_tokenizer(limit_bp(iter_corpus_sentences(corpus), args.max_bp), vocab_size=args.vocab_size)
    tok.save(args.out)
    print(f"tokenizer with {tok.vocab_size} tokens written to {args.out}")


def cmd_corpus(args) -> None:
    from ..pretrain.corpus import build_corpus, corpus_config_from_arguments

    from ..pretrain.corpus import MANIFEST_NAME

    summary = build_corpus(corpus_config_from_arguments(args))
    out = Path(summary["output_dir"])
    # one line; the counts, the per-base accounting and the settings are in the manifest
    print(f"corpus: {summary['documents']:,} documents, {summary['sentences']:,} sentences, {summary['bp']:,} bp "
          f"in {len(summary['shards'])} shard(s) from {len(summary['contigs'])} contig(s), "
          f"{summary['elapsed_seconds']:.1f} s -> {out} (details: {out / MANIFEST_NAME})")


def cmd_regions(args) -> None:
    from ..genome import Genome
    from ..io_utils import write_text_atomic
    from ..tasks.splits import RegionSplit

    with Genome(args.fasta) as genome:
        lengths = genome.contig_lengths
    table = RegionSplit(valid=tuple(args.valid), test=tuple(args.test), gap=args.gap).table(lengths)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table.write_bed(out / "regions.bed")

    def bed(intervals):
        return [f"{i.chrom}\t{i.start}\t{i.end}\t{i.name}\n" for i in intervals]

    # what pretraining must never see: valid and test regions and the gaps around them
    write_text_atomic(out / "heldout.bed", bed(table.exclusion_intervals(("valid", "test"))))
    # everything but the valid regions: excluded when building the MLM validation corpus
    write_text_atomic(out / "not_valid.bed", bed(table.exclusion_intervals(("train", "test"), include_gaps=True)))
    print(table)


def cmd_pack(args) -> None:
    from ..pretrain.corpus import iter_corpus_documents
    from ..pretrain.packing import pack_documents
    from ..tokenizer import GenaTokenizer

    tok = GenaTokenizer.from_pretrained(args.tokenizer)
    docs = (doc["sentences"] for doc in iter_corpus_documents(args.corpus))
    info = pack_documents(docs, tok, args.max_tokens, args.out, source=str(args.corpus))
    print(json.dumps(info, indent=2))


def cmd_train(args) -> None:
    from .config import RunConfig
    from .loop import train

    cfg = RunConfig.load(args.config, args.overrides)
    if args.command == "rmt" and cfg.model.rmt is None:
        raise SystemExit(f"{args.config}: the rmt command needs a model.rmt section")
    if args.command == "finetune" and cfg.data.task == "mlm":
        raise SystemExit(f"{args.config}: finetune needs data.task to be a downstream task, not mlm")
    metrics = train(cfg, resume=args.resume)
    if metrics:
        print(json.dumps(metrics, indent=2))


def cmd_evaluate(args) -> None:
    from .evaluate import evaluate_folder

    shifts = [int(s) for s in args.stability_shifts.split(",")] if args.stability_shifts else None
    evaluate_folder(args.model, args.config, args.overrides, split=args.split, out=args.out,
                    bootstrap=args.bootstrap, precision=args.precision, stability=args.stability,
                    stability_shifts=shifts, stability_windows_max=args.stability_windows,
                    stability_per_bin=args.stability_per_bin)


def cmd_baseline(args) -> None:
    from ..baselines import run_baseline

    run_baseline(args.config, args.overrides, split=args.split, out=args.out, k_max=args.k_max,
                 context=args.context, bootstrap=args.bootstrap)


def cmd_export(args) -> None:
    """The model folder, finished by every installed plugin's export finisher (entry point group
    genalm_models.export_finishers: the Kipoi plugin adds model.yaml and the `kipoi test` expectation)."""
    from ..export import export_model, registered_finishers

    options = {key: getattr(args, key) for key in EXPORT_OPTIONS if getattr(args, key) is not None}
    finishers = registered_finishers()
    if not finishers and (Path(args.out) / "model.yaml").is_file():
        # replacing a Kipoi model folder with one that has no model.yaml would drop its Kipoi files
        raise SystemExit(f"export: {args.out} is a Kipoi model folder (model.yaml) and no export finisher is "
                         "installed to write its Kipoi files (an editable install made before the entry point "
                         "existed?): run `pip install -e .` in the repository, or export to another folder")
    path = export_model(args.source, args.out, name=args.name, config_path=args.config, fp16=not args.fp32,
                        finishers=finishers, **options)
    if finishers:
        print(f"Kipoi model written to {path}")
    else:
        print(f"Model folder written to {path} (no Kipoi plugin installed: no model.yaml; install genalm-models "
              "with its kipoi_genalm plugin for a Kipoi model folder)")


EXPORT_OPTIONS = {  # export_model keyword -> (type, help); unset: derived from the run's task config
    "version": (str, "model version recorded in genalm.json and every output (default: package version + date)"),
    "kind": (str, "sequence | token | embedding | mlm"),
    "sequence_length": (int, "input window in bp (HF folders without a run config)"),
    "anchor": (str, "center | tss: where the window sits on a BED interval"),
    "upstream": (int, "bp upstream of the TSS (anchor tss)"),
    "flank": (int, "context bp added on both sides (token models)"),
    "fasta": (str, "reference FASTA the example files are cut from"),
    "reference_name": (str, "assembly name, e.g. GRCh37"),
    "examples_bed": (str, "BED of example intervals"),
    "n_examples": (int, "number of example intervals"),
    "metrics": (str, "JSON file of held-out metrics for the model card"),
    "description": (str, "one-paragraph description for `kipoi info`"),
    "trained_on": (str, "training data summary"),
    "max_tokens": (int, "width of per-token outputs (embedding / mlm)"),
    "notes": (str, "markdown file with the model card's notes (published numbers, limitations)"),
}


def main(argv: list[str] | None = None) -> None:
    from ..pretrain.corpus import add_corpus_arguments

    parser = argparse.ArgumentParser(prog="python -m genalm_models.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("tokenizer", help="train a BPE tokenizer")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--fasta", nargs="+", help="FASTA files (plain or BGZF)")
    src.add_argument("--corpus", help="a corpus folder from `corpus`")
    p.add_argument("--out", required=True)
    p.add_argument("--vocab-size", type=int, default=32000)
    p.add_argument("--exclude-contigs", nargs="*", default=[])
    p.add_argument("--exclude-regions", default=None, help="BED of regions left out (held-out test regions)")
    p.add_argument("--max-bp", type=int, default=None, help="stop after this many bp of sentences")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_tokenizer)

    p = sub.add_parser("corpus", help="build the pretraining corpus")
    add_corpus_arguments(p)
    p.set_defaults(func=cmd_corpus)

    p = sub.add_parser("regions", help="split a genome into train/valid/test regions separated by gaps")
    p.add_argument("--fasta", required=True)
    p.add_argument("--valid", nargs="+", required=True,
                   help="ranges as samtools reads them (1-based, both ends inclusive), like chr20:32000001-36000000")
    p.add_argument("--test", nargs="+", required=True)
    p.add_argument("--gap", type=int, default=16_000, help="bp between regions of different splits")
    p.add_argument("--out", required=True, help="folder for regions.bed, heldout.bed, not_valid.bed")
    p.set_defaults(func=cmd_regions)

    p = sub.add_parser("pack", help="tokenize and pack a corpus into MLM samples")
    p.add_argument("--corpus", required=True)
    p.add_argument("--tokenizer", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--max-tokens", type=int, default=510,
                   help="tokens per sample: 510 for a 512-position model; n_segments * segment_size for RMT")
    p.set_defaults(func=cmd_pack)

    for name, help_text in (("pretrain", "MLM pretraining"), ("rmt", "RMT pretraining / fine-tuning"),
                            ("finetune", "fine-tune on a downstream task")):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--config", required=True)
        p.add_argument("--resume", action="store_true", help="continue from the run's latest checkpoint")
        p.add_argument("overrides", nargs="*", help="section.key=value")
        p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="evaluate a model folder on a task")
    p.add_argument("--model", required=True, help="model folder (a checkpoint or an exported model) or a run directory (its latest checkpoint)")
    p.add_argument("--config", required=True, help="run config naming the task and its data")
    p.add_argument("--split", default="test", choices=["train", "valid", "test"])
    p.add_argument("--out", default=None, help="write the metrics as JSON here")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for 95%% CIs (0: none)")
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    p.add_argument("--stability", action="store_true",
                   help="sequence models: also |dP| when each held-out window moves by 1-50 bp and the per-position "
                        "profile of single-base changes (genalm_models/stability.py)")
    p.add_argument("--stability-shifts", default=None, help="comma-separated bp (default 1,2,3,5,10,20,50)")
    p.add_argument("--stability-windows", type=int, default=None, help="at most this many windows (default all)")
    p.add_argument("--stability-per-bin", type=int, default=2,
                   help="single-base changes per tenth of each window (default 2; 5 more in each 30 bp edge)")
    p.add_argument("overrides", nargs="*")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("baseline", help="k-mer logistic regression on a task's splits (scikit-learn)")
    p.add_argument("--config", required=True, help="run config naming the task and its data")
    p.add_argument("--split", default="test", choices=["valid", "test"])
    p.add_argument("--out", default=None, help="write the metrics as JSON here")
    p.add_argument("--k-max", type=int, default=6, help="k-mers of length 1..k (sequence tasks)")
    p.add_argument("--context", type=int, default=40, help="bp each side (splice: one-hot context)")
    p.add_argument("--bootstrap", type=int, default=1000)
    p.add_argument("overrides", nargs="*")
    p.set_defaults(func=cmd_baseline)

    p = sub.add_parser("export", help="export a Kipoi model folder")
    p.add_argument("--source", required=True, help="run directory, checkpoint folder or HF-format GENA-LM folder")
    p.add_argument("--out", required=True)
    p.add_argument("--name", required=True, help="Kipoi model name, e.g. GENA-LM/promoter")
    p.add_argument("--config", default=None, help="run config (default: the run directory's config.yaml)")
    p.add_argument("--fp32", action="store_true", help="store fp32 weights (default fp16)")
    for key, (kind, help_text) in EXPORT_OPTIONS.items():
        p.add_argument("--" + key.replace("_", "-"), dest=key, type=kind, default=None, help=help_text)
    p.set_defaults(func=cmd_export)

    args = parser.parse_args(argv)
    from ..io_utils import exit_cleanly_on_sigterm
    from ..process_settings import apply_process_settings

    exit_cleanly_on_sigterm()  # SIGTERM (SLURM, docker, timeout, torchrun) cleans up like Ctrl-C
    # huge pages; keeping freed memory is opt-in for training (train.keep_freed_memory); the kernel-cache bound is
    # an inference setting, not measured in training (process_settings.py)
    apply_process_settings("python -m genalm_models.train", keep_freed_memory=False, bounded_kernel_caches=False)
    try:
        args.func(args)
    except (ValueError, FileNotFoundError) as err:
        # bad configs and data files: one clear line, no traceback
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()

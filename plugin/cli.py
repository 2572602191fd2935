"""`genalm-kipoi`: register the GENA-LM models with Kipoi, and predict / scan / check beyond what Kipoi offers.

  genalm-kipoi register      link the bundled GENA-LM group into the `kipoi` source (once per user)
  genalm-kipoi unregister    undo it exactly
  genalm-kipoi status        is it registered, which models, is the public zoo cloned
  genalm-kipoi list          the models: version, kind, window, weights checksum or hub repository@branch
  genalm-kipoi download      fetch official GENA-LM models into the Hugging Face cache (for offline use)
  genalm-kipoi predict       BED + FASTA -> .tsv/.h5 through the model's Kipoi pipeline, with options as flags
                             (--rc-average, --precision bf16, --device), written atomically with a provenance
                             sidecar; works without `register`
  genalm-kipoi scan          sliding-window scan of a region -> bedGraph
  genalm-kipoi check-fasta   does a FASTA match the assembly the model was trained on (contig lengths)?
  genalm-kipoi score-variants  variant effects (kipoi-veff style): VCF in, VCF with KV:kipoi:<model>:<SCORE> INFO
                             fields out (+ optional table), centred windows or the windows of BED regions
  genalm-kipoi plot-effects  per-position effect track of a scored VCF/table -> PNG
  genalm-kipoi merge         merge the shards of a sharded score-variants / scan (--shard JOB/JOBS, torchrun)

MODEL is a bundled name (GENA-LM/promoter), a model folder path, or (predict only) any name of a Kipoi source.
Exit status: 0 success, 1 registration conflict or FASTA mismatch, 2 bad input (message names file and line).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import GROUP_DIR, GROUP_NAME


def _group_dir(args) -> Path:
    return Path(args.group_dir).resolve() if getattr(args, "group_dir", None) else GROUP_DIR


def model_folder(model: str, group_dir: Path) -> Path | None:
    """A folder for MODEL: a path holding model.yaml, or a bundled GENA-LM/<name>; None if neither."""
    path = Path(model)
    if (path / "model.yaml").is_file():
        return path.resolve()
    prefix = f"{GROUP_NAME}/"
    if model.startswith(prefix) and (group_dir / model[len(prefix):] / "model.yaml").is_file():
        return group_dir / model[len(prefix):]
    if "@" in model or model.startswith("AIRI-Institute/"):  # an official hub name: its Kipoi folder
        from .official import find

        name = find(model).kipoi_name
        if (group_dir / name[len(prefix):] / "model.yaml").is_file():
            return group_dir / name[len(prefix):]
    return None


def _require_folder(model: str, group_dir: Path) -> Path:
    folder = model_folder(model, group_dir)
    if folder is None:
        raise FileNotFoundError(f"model {model!r}: not a model folder and not among the bundled models in "
                                f"{group_dir}")
    return folder


def _options(args) -> dict:
    return {"rc_average": True if args.rc_average else None, "precision": args.precision, "device": args.device,
            "batch_size": args.model_batch_size}


# ---- commands ---------------------------------------------------------------------------------------------------
def cmd_register(args) -> int:
    from .registration import register

    print(register(_group_dir(args), args.source, force=args.force, auto_update=args.auto_update))
    return 0


def cmd_unregister(args) -> int:
    from .registration import unregister

    print(unregister(_group_dir(args), args.source, force=args.force))
    return 0


def cmd_status(args) -> int:
    from .registration import status

    print(status(_group_dir(args), args.source))
    return 0


def cmd_list(args) -> int:
    from .folder import read_folder_info

    group = _group_dir(args)
    folders = sorted(p.parent for p in group.rglob("model.yaml"))
    if not folders:
        print(f"no models in {group}")
        return 0
    for folder in folders:
        info = read_folder_info(folder)
        weights = (f"hub:{info.hub[0]}@{info.hub[1]}" if info.hub is not None
                   else f"sha256:{info.weights_sha256[:16]}")
        print(f"{info.name}\t{info.version}\t{info.kind}\t{info.window.describe()}\t{weights}")
    return 0


def cmd_download(args) -> int:
    from .official import download

    for line in download(args.models, cache=args.cache_dir):
        print(line)
    return 0


def cmd_predict(args) -> int:
    import kipoi

    from genalm_models.io_utils import check_output_path

    output = Path(args.output)
    if output.suffix not in (".tsv", ".h5", ".hdf5"):
        raise ValueError(f"{output}: the output must end in .tsv, .h5 or .hdf5")
    check_output_path(output, (args.intervals, args.fasta))  # before the model loads
    folder = model_folder(args.model, _group_dir(args))
    if folder is not None:
        model = kipoi.get_model(str(folder), source="dir")
    else:
        model = kipoi.get_model(args.model, source=args.source)
    if not hasattr(model, "configure"):
        raise ValueError(f"{args.model} is not a GENA-LM model")
    model.configure(**_options(args))
    dataloader_args = json.loads(args.dataloader_args) if args.dataloader_args else {}
    if not isinstance(dataloader_args, dict):
        raise ValueError("--dataloader-args must be a JSON object")
    dataloader_args.update(intervals_file=args.intervals, fasta_file=args.fasta)
    model.pipeline.predict_to_file(str(output), dataloader_args, batch_size=args.batch_size,
                                   keep_inputs=args.keep_inputs, keep_metadata=not args.no_metadata)
    print(f"predictions written to {output} (provenance: {output}.provenance.json)")
    return 0


def cmd_scan(args) -> int:
    from .adapter import FolderModel, PredictOptions
    from genalm_models.genome import parse_region_1based

    from .scan import ScanRequest, scan_to_bedgraph

    from genalm_models.io_utils import check_output_path

    check_output_path(args.output, (args.fasta,))  # before the model loads
    region = parse_region_1based(args.region, what="--region")
    request = ScanRequest(region.chrom, region.start, region.end, step=args.step, strand=args.strand, output=args.output_label)
    if _sharded(args):
        from .distributed import parse_shard, scan_sharded

        print(scan_sharded(args.model, args.fasta, request, args.output, job=parse_shard(args.shard),
                           resume=args.resume, shard_bp=args.shard_bp, work_dir=args.shards_dir,
                           bigwig=args.bigwig, options=_options(args), group_dir=_group_dir(args),
                           progress=not args.no_progress))
        return 0
    folder = _require_folder(args.model, _group_dir(args))
    options = PredictOptions().with_environment().merged(_options(args), "command line")
    model = FolderModel(folder, options)
    count = scan_to_bedgraph(model, args.fasta, request, args.output, progress=not args.no_progress)
    print(f"{count} bedGraph lines written to {args.output}")
    if args.bigwig:
        from .distributed import bedgraph_to_bigwig

        print(f"bigWig {args.bigwig}: {bedgraph_to_bigwig(args.output, args.bigwig, args.fasta)} entries")
    return 0


def _sharded(args) -> bool:
    """Run in shards (kipoi_genalm.distributed): under torchrun, with --shard i/n, or with --resume."""
    from .distributed import under_torchrun

    return args.shard is not None or args.resume or under_torchrun()


def cmd_merge(args) -> int:
    from .distributed import merge

    print(merge(args.output, args.shards_dir))
    return 0


def cmd_check_fasta(args) -> int:
    from genalm_models.genome import Genome

    from .folder import compare_contigs, read_folder_info

    info = read_folder_info(_require_folder(args.model, _group_dir(args)))
    if not info.reference_contigs:
        print(f"{info.name}: no reference contig lengths were recorded at export; nothing to compare")
        return 0
    with Genome(args.fasta) as genome:
        mismatches, matches = compare_contigs(genome.contig_lengths, info.reference_contigs)
    reference = info.reference_name or "its training reference"
    for message in mismatches:
        print(f"MISMATCH: {message}")
    if mismatches:
        print(f"{args.fasta} does not match {reference} of {info.name}")
        return 1
    if not matches:
        print(f"{args.fasta} shares no contig name with {reference} of {info.name} "
              f"({', '.join(list(info.reference_contigs)[:5])}); cannot check")
        return 1
    print(f"{args.fasta} matches {reference} of {info.name} on {len(matches)} contig(s): {', '.join(matches[:10])}")
    return 0


def cmd_score_variants(args) -> int:
    from .veff import ScoreVariantsOptions, score_variants

    dl_args = json.loads(args.dataloader_args) if args.dataloader_args else {}
    if not isinstance(dl_args, dict):
        raise ValueError("--dataloader-args must be a JSON object")
    dl_args["fasta_file"] = args.fasta
    options = _options(args)
    if _sharded(args):
        from .distributed import parse_shard, score_variants_sharded

        print(score_variants_sharded(
            args.model, dl_args, args.vcf, args.output, job=parse_shard(args.shard), resume=args.resume,
            shard_records=args.shard_records, work_dir=args.shards_dir, restriction_bed=args.regions,
            output_table=args.table, progress=not args.no_progress, device=options["device"],
            group_dir=args.group_dir, scores=args.scores, seq_length=args.seq_length,
            rc_average=options["rc_average"], chunk_size=args.chunk_size, llr_flank=args.llr_flank,
            splice_distance=args.splice_distance, source=args.source, precision=options["precision"],
            batch_size=options["batch_size"], allow_ref_mismatch=args.allow_ref_mismatch,
            mlm_estimator=args.mlm_estimator))
        return 0
    result = score_variants(ScoreVariantsOptions(
        args.model, dl_args, args.vcf, args.output, scores=args.scores, batch_size=options["batch_size"],
        restriction_bed=args.regions, output_table=args.table, seq_length=args.seq_length,
        rc_average=options["rc_average"], chunk_size=args.chunk_size, llr_flank=args.llr_flank,
        splice_distance=args.splice_distance, source=args.source, progress=not args.no_progress,
        device=options["device"], precision=options["precision"], group_dir=args.group_dir,
        allow_ref_mismatch=args.allow_ref_mismatch, mlm_estimator=args.mlm_estimator))
    print(result.summary())
    return 0


def cmd_plot_effects(args) -> int:
    from .veff_plot import plot_effects

    path = plot_effects(args.scored, args.output, score=args.score, label=args.label, model=args.model_name,
                        title=args.title, region=args.region)
    print(f"effect track written to {path}")
    return 0


# ---- parser -----------------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="genalm-kipoi", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    def group_dir_option(p):
        p.add_argument("--group-dir", default=None,
                       help=f"folder of <model>/model.yaml to use as the GENA-LM group (default: {GROUP_DIR})")

    for name, func, text in (("register", cmd_register, "link GENA-LM into a Kipoi source"),
                             ("unregister", cmd_unregister, "remove what register added"),
                             ("status", cmd_status, "show the registration")):
        p = sub.add_parser(name, help=text)
        group_dir_option(p)
        p.add_argument("--source", default="kipoi", help="Kipoi source to add the group to (default: kipoi)")
        if name != "status":
            p.add_argument("--force", action="store_true", help="replace/remove a GENA-LM link made elsewhere")
        if name == "register":
            p.add_argument("--auto-update", action="store_true",
                           help="keep (or turn back on) kipoi's automatic `git pull` of the public zoo in a "
                                "repository register seeded; by default it is turned off until the zoo is there "
                                "(offline it only prints a failed pull on every kipoi call)")
        p.set_defaults(func=func)

    p = sub.add_parser("list", help="list the models: bundled ones and the official GENA-LM models")
    group_dir_option(p)
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("download", help="fetch official GENA-LM models into the Hugging Face cache (then offline)")
    p.add_argument("models", nargs="+", help="Kipoi names (GENA-LM/bert-large-t2t/promoters_2000), hub names "
                                             "(AIRI-Institute/gena-lm-bert-base-t2t@spliceai_run_1) or 'all'")
    p.add_argument("--cache-dir", default=None, help="Hugging Face cache folder (default: HF_HUB_CACHE / HF_HOME)")
    p.set_defaults(func=cmd_download)

    def shard_options(p, unit_option):
        p.add_argument("--shard", default=None, metavar="JOB/JOBS",
                       help="run only job JOB of JOBS (0-based) of the shard plan, for workflow engines; then "
                            "`genalm-kipoi merge`. Under torchrun the ranks share the shards by themselves")
        p.add_argument("--resume", action="store_true",
                       help="keep the finished shards of an interrupted run (refused if inputs or settings changed)")
        p.add_argument("--shards-dir", default=None, help="folder of the shards and manifest (default: <output>.shards)")
        unit_option(p)

    def model_options(p):
        p.add_argument("--rc-average", action="store_true", help="average with the reverse complement")
        p.add_argument("--precision", choices=["fp32", "bf16"], default=None)
        p.add_argument("--device", default=None, help="auto, cpu, cuda, cuda:N (default: the model's own, auto as "
                                                      "bundled)")
        p.add_argument("--model-batch-size", type=int, default=None,
                       help="sequences per model call (default: the model's own, 32 as bundled)")

    p = sub.add_parser("predict", help="predict for BED intervals into .tsv/.h5 (atomic, with provenance)")
    p.add_argument("model")
    p.add_argument("--intervals", required=True, help="BED file")
    p.add_argument("--fasta", required=True, help="reference FASTA (plain or BGZF)")
    p.add_argument("-o", "--output", required=True, help="out.tsv, out.h5 or out.hdf5")
    p.add_argument("--dataloader-args", default=None, help="JSON object of further dataloader arguments")
    p.add_argument("--batch-size", type=int, default=32, help="intervals per Kipoi batch")
    p.add_argument("--keep-inputs", action="store_true", help="also write the input sequences")
    p.add_argument("--no-metadata", action="store_true", help="leave out the interval columns")
    p.add_argument("--source", default="kipoi", help="Kipoi source for names that are not bundled")
    group_dir_option(p)
    model_options(p)
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("scan", help="sliding-window scan of a region to bedGraph")
    p.add_argument("model")
    p.add_argument("--fasta", required=True)
    p.add_argument("--region", required=True, help="chrom:start-end, 1-based inclusive (e.g. chr20:1,000,001-1,010,000)")
    p.add_argument("--step", type=int, default=50, help="bin width for sequence models (bp)")
    p.add_argument("--strand", choices=["+", "-"], default="+")
    p.add_argument("--output-label", default=None, help="which output to write (default: the first)")
    p.add_argument("-o", "--output", required=True, help="output .bedGraph")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--bigwig", default=None, help="also write the track as bigWig (pyBigWig)")
    group_dir_option(p)
    model_options(p)
    shard_options(p, lambda q: q.add_argument("--shard-bp", type=int, default=1_000_000,
                                              help="bp per shard in sharded runs (rounded to the scan's chunks)"))
    p.set_defaults(func=cmd_scan)

    p = sub.add_parser("check-fasta", help="compare a FASTA's contig lengths with the model's reference")
    p.add_argument("model")
    p.add_argument("fasta")
    group_dir_option(p)
    p.set_defaults(func=cmd_check_fasta)

    p = sub.add_parser("score-variants", help="variant effects: VCF -> VCF with KV:<source>:<model>:<SCORE> fields")
    p.add_argument("model", help="GENA-LM/<name> or a model folder")
    p.add_argument("--vcf", required=True, help="input .vcf or .vcf.gz")
    p.add_argument("--fasta", required=True, help="reference FASTA (plain or BGZF)")
    p.add_argument("-o", "--output", required=True, help="output .vcf or .vcf.gz (BGZF); written atomically")
    p.add_argument("--scores", default=None,
                   help="comma-separated scores (sequence: ref,alt,diff,logit_ref,logit_alt,logit; token: max_diff,"
                        "max_diff_offset; embedding: cosine_distance,l2_distance; mlm: pll_ref,pll_alt,llr); "
                        "default by model kind")
    p.add_argument("--regions", default=None,
                   help="BED of regions (e.g. TSSs): score each variant in the model window of the regions holding "
                        "it (each window predicted once) instead of a window centred on it")
    p.add_argument("--table", default=None, help="also write a table: .tsv, .tsv.gz or .parquet (pyarrow)")
    p.add_argument("--seq-length", type=int, default=None, help="window length in centred mode (default: the model's)")
    p.add_argument("--chunk-size", type=int, default=1000, help="VCF records per chunk (bounds memory)")
    p.add_argument("--llr-flank", type=int, default=32, help="MLM: bases each side of the variant in the scored stretch")
    p.add_argument("--mlm-estimator", choices=("pll", "masked-marginal"), default="pll",
                   help="MLM: pll (pseudo-log-likelihood of the stretch, ~10 masked passes per allele) or "
                        "masked-marginal (Meier et al. 2021: the variant's tokens masked at once, 1-2 passes per "
                        "variant); definitions in plugin/veff_mlm.py")
    p.add_argument("--splice-distance", type=int, default=50,
                   help="per-nucleotide models: bases each side of the variant searched for the largest change")
    p.add_argument("--source", default="kipoi", help="<source> part of the INFO IDs (default: kipoi)")
    p.add_argument("--dataloader-args", default=None,
                   help="JSON object of window overrides (sequence_length, anchor, upstream, flank, use_strand)")
    p.add_argument("--allow-ref-mismatch", action="store_true",
                   help="score a VCF whose REF disagrees with the FASTA at >= 10%% of its first records (another "
                        "assembly or coordinate system?) with a warning, instead of refusing it")
    p.add_argument("--no-progress", action="store_true")
    group_dir_option(p)
    model_options(p)
    shard_options(p, lambda q: q.add_argument("--shard-records", type=int, default=10_000,
                                              help="VCF records per shard in sharded runs, at least (cut where "
                                                   "a single run starts a --chunk-size chunk and no window is "
                                                   "shared across the cut)"))
    p.set_defaults(func=cmd_score_variants)

    p = sub.add_parser("merge", help="merge the finished shards of a sharded score-variants / scan into -o")
    p.add_argument("output", help="the -o of the sharded run (out.vcf.gz, out.bedGraph)")
    p.add_argument("--shards-dir", default=None, help="folder of the shards (default: <output>.shards)")
    p.set_defaults(func=cmd_merge)

    p = sub.add_parser("plot-effects", help="draw the per-position effect track of a scored VCF or table")
    p.add_argument("scored", help="VCF written by score-variants, or its table (.tsv/.tsv.gz/.parquet)")
    p.add_argument("-o", "--output", required=True, help="output .png")
    p.add_argument("--score", default="diff", help="which score (default: diff)")
    p.add_argument("--label", default=None, help="which model output (default: the first)")
    p.add_argument("--model-name", default=None, help="which model, when the VCF holds scores of several")
    p.add_argument("--region", default=None, help="chrom:start-end (1-based, inclusive): draw only this part")
    p.add_argument("--title", default=None)
    p.set_defaults(func=cmd_plot_effects)
    return _document(parser)


# Help for options declared without one (the same wording wherever the option appears).
_SHARED_HELP = {
    "model": "GENA-LM/<name> (a bundled model), or a model folder (with model.yaml)",
    "fasta": "reference FASTA (plain or BGZF; chr20 and 20 naming both work)",
    "precision": "weights precision for this run (default: the model's own, fp32 as bundled)",
    "strand": "strand the windows are read on",
    "no_progress": "no progress bar",
    "title": "plot title (default: the model and the score)",
}


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Each option's default after its help, unless the help already names it or there is nothing to show."""

    def _get_help_string(self, action):
        text = action.help or ""
        if ("default" in text or not action.option_strings
                or action.default in (None, False, argparse.SUPPRESS)):
            return text
        return text + " (default: %(default)s)"


def _document(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            descriptions = {choice.dest: choice.help for choice in action._choices_actions}
            for name, sub in action.choices.items():
                sub.formatter_class = _HelpFormatter
                sub.description = sub.description or descriptions.get(name)
                _document(sub)
        elif not action.help and action.help is not argparse.SUPPRESS:
            action.help = _SHARED_HELP.get(action.dest)
    return parser


def main(argv: list[str] | None = None) -> int:
    from genalm_models.io_utils import exit_cleanly_on_sigterm

    from genalm_models.process_settings import apply_process_settings

    from .provenance import install_warning_handler

    args = build_parser().parse_args(argv)
    exit_cleanly_on_sigterm()  # SIGTERM (SLURM, docker, timeout) cleans up like Ctrl-C
    install_warning_handler()  # warnings are shown and counted for the outputs' provenance (provenance.py)
    from .registration import RegistrationError

    try:
        # huge pages and bounded kernel caches, before any model is built (process_settings.py); the Predictor
        # keeps freed memory itself (no torch import here for commands that never predict)
        apply_process_settings("genalm-kipoi", keep_freed_memory=False)
        return args.func(args)
    except RegistrationError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except (ValueError, FileNotFoundError, OSError, json.JSONDecodeError) as err:
        # bad input files and arguments: one clear line (file and line are in the message), no traceback
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

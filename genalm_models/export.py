"""Export a GENA-LM model as a complete, self-testing Kipoi model folder.

    export_model(source, out, name="GENA-LM/promoter")
    python -m genalm_models.train export --source runs/promoter --out plugin/zoo/GENA-LM/promoter \
        --name GENA-LM/promoter

`source` is one of
  (a) a training run directory: `config.yaml` (the RunConfig) + `checkpoints/latest` naming the newest checkpoint;
  (b) a checkpoint folder (`checkpoints/step_0000123/`): a model folder with tokenizer files; its run config is
      `../../config.yaml` when present, or `config_path`;
  (c) a Hugging-Face-format GENA-LM folder (official release or fine-tuned branch): `config.json` +
      `model.safetensors` or `pytorch_model.bin` + `tokenizer.json`, official parameter names, maybe a
      `classifier` head. Give `config_path` (a run config naming the task and its files) or the options below.

What the folder gets (see kipoi_genalm/folder.py for the list and genalm.json): weights as safetensors (fp16 by
default), config.json, the tokenizer, genalm.json (kind, input window, labels, sha256 of the weights, contig
lengths of the training reference), model.yaml (schema, info, LOCAL default args only), small real example files,
the `kipoi test` expectation, a README.md model card, and the run config / metrics it came from.

The input window, labels, reference FASTA and example intervals are read from the run's task config
(`data.task` + `data.args`, e.g. promoter: tss_bed, fasta, upstream, downstream; splice: table, fasta, center,
flank). Every one can be given or overridden as a keyword option:

  version, task, kind (sequence|token|embedding|mlm), sequence_length (None = any length), anchor (center|tss),
  upstream, flank, labels, output_labels, fasta, reference_name, examples_bed, n_examples, metrics (JSON path or
  dict), description, trained_on, license, max_tokens, check_with_kipoi (run `kipoi test` on the result)

Example files: the intervals come from the task's own files (the first few TSSs of `tss_bed`, splice sites of
the SpliceAI `table`, or `examples_bed`), else windows of the FASTA. `example.fa.gz` (BGZF, with .fai and .gzi)
keeps the reference's contig names and real coordinates - every contig is truncated after the last example, and
holds the real sequence only around the example windows (N elsewhere) - so the BED keeps true coordinates and the
files stay a few kB. `example.bed` keeps the names of the source BED (e.g. `chr20` against a FASTA with `20`).

The folder is assembled under a temporary name next to `out` and moved into place at the end: an export that fails
leaves `out` as it was.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import logging
import os
import shutil
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .requirements import KIPOI_DEPENDENCIES, KIPOI_NOTE

log = logging.getLogger(__name__)

CITATION = ("Fishman V. et al. GENA-LM: a family of open-source foundational DNA language models for long "
            "sequences. Nucleic Acids Research, 2025. https://doi.org/10.1093/nar/gkae1310")
CITE_AS = "https://doi.org/10.1093/nar/gkae1310"
DEFAULT_N_EXAMPLES = 6
EXAMPLE_MARGIN = 50                # bp of real sequence kept around each example window
MAX_N_FRACTION_IN_EXAMPLE = 0.5
PRECISION_DECIMAL = 4              # kipoi test: |expected - observed| < 1.5e-4 (CPU vs GPU float noise)
# kipoi treats a default argument that names an existing path as a file and makes it absolute; a small integer is
# also "an existing path" to os.path.exists (an open file descriptor), which crashes kipoi. Such values are written
# as strings; the dataloader reads integers from strings.
SMALLEST_PLAIN_INT_DEFAULT = 64
EXPECT_FILE = Path("downloaded") / "model_files" / "test.expect.h5"
HEAD_KINDS = {"sequence_classification": "sequence", "token_classification": "token", "embedding": "embedding",
              "mlm": "mlm"}
FASTA_KEYS = ("fasta", "fasta_file", "genome", "reference", "reference_fasta")
BED_KEYS = ("tss_bed", "bed", "intervals", "intervals_file", "bed_file", "sites")


class ExportError(ValueError):
    pass


@dataclass
class ExportOptions:
    """Everything `export_model` can be told explicitly; unset fields are derived from the source."""

    version: str | None = None
    task: str | None = None
    kind: str | None = None
    sequence_length: int | None = None
    anchor: str | None = None
    upstream: int | None = None
    flank: int | None = None
    labels: list[str] | None = None
    output_labels: list[str] | None = None
    fasta: str | None = None
    reference_name: str | None = None
    examples_bed: str | None = None
    n_examples: int = DEFAULT_N_EXAMPLES
    metrics: str | dict | None = None
    description: str | None = None
    trained_on: str | None = None
    license: str = "MIT"
    max_tokens: int | None = None
    notes: str | None = None           # markdown file: the card's notes (published numbers, limitations)
    check_with_kipoi: bool = False
    # which fields were given (sequence_length=None is a real choice: "any length")
    given: frozenset = frozenset()

    @classmethod
    def from_keywords(cls, keywords: dict[str, Any]) -> "ExportOptions":
        names = {f.name for f in dataclasses.fields(cls)} - {"given"}
        unknown = sorted(set(keywords) - names)
        if unknown:
            raise ExportError(f"unknown export option(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}")
        return cls(**keywords, given=frozenset(keywords))


@dataclass
class Source:
    kind: str                  # run | checkpoint | huggingface
    model_dir: Path
    path: Path
    run_dir: Path | None = None
    run_config_path: Path | None = None
    run_config: Any = None     # RunConfig
    step: int | None = None


@dataclass
class Plan:
    """The resolved description of the folder to write."""

    name: str
    version: str
    kind: str
    head: str
    task: str | None
    window: Any                # kipoi_genalm.folder.WindowSpec
    labels: list[str]
    output_labels: list[str]
    output_indices: list[int]
    fasta: Path
    reference_name: str | None
    examples: list            # genome.Interval
    max_tokens: int | None
    metrics: dict[str, Any] = field(default_factory=dict)
    description: str | None = None
    trained_on: str | None = None
    license: str = "MIT"
    notes: str | None = None
    architecture: str | None = None    # described in words instead of from config (models not built by us)


# ---------------------------------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------------------------------
def export_model(source: str | os.PathLike, out: str | os.PathLike, name: str,
                 config_path: str | os.PathLike | None = None, fp16: bool = True, **options: Any) -> Path:
    """Write a complete Kipoi model folder for `source` at `out`; returns `out`. See the module docstring."""
    import torch

    from .checkpoint import head_from_config, load_model, model_config, save_model

    opts = ExportOptions.from_keywords(options)
    if "/" not in name or name.startswith("/") or name.endswith("/"):
        raise ExportError(f"model name {name!r} should look like GROUP/MODEL, e.g. GENA-LM/promoter")
    src = resolve_source(source, config_path)
    model, report = load_model(src.model_dir, allow_missing=True)  # refused just below, as an ExportError
    if report.missing:
        raise ExportError(f"{src.model_dir}: the weights lack parameters of the model described by config.json "
                          f"({', '.join(report.missing[:6])}{' ...' if len(report.missing) > 6 else ''}); exporting "
                          "would ship randomly initialised layers")
    config = model_config(model)
    head = head_from_config(config)
    tokenizer = _load_tokenizer(src)
    plan = make_plan(name, src, config, head, opts)

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    building = out.parent / f".{out.name}.export-{os.getpid()}-{secrets.token_hex(3)}"
    try:
        building.mkdir()
        save_model(model, building, head=head, dtype=torch.float16 if fp16 else None)
        tokenizer.save(building, model_max_length=config.max_position_embeddings)
        _write_examples(plan, building)
        info = _write_folder_info(plan, src, building, config, fp16)
        expect_md5 = _write_expectation(plan, building)
        _write_model_yaml(plan, info, config, building, expect_md5)
        _write_provenance_files(src, plan, building)
        _write_curves(src, plan, building)
        _write_model_card(plan, info, config, src, building)
        if opts.check_with_kipoi:
            run_kipoi_test(building)
        _move_into_place(building, out)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    log.info("exported %s to %s", name, out)
    return out


def _move_into_place(building: Path, out: Path) -> None:
    if out.exists():
        old = out.parent / f".{out.name}.old-{os.getpid()}-{secrets.token_hex(3)}"
        os.replace(out, old)
        os.replace(building, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(building, out)


def run_kipoi_test(folder: Path) -> None:
    """`kipoi test <folder>` in a subprocess (offline; checks predictions against the expectation file)."""
    import subprocess
    import sys

    kipoi = shutil.which("kipoi") or str(Path(sys.executable).with_name("kipoi"))
    result = subprocess.run([kipoi, "test", str(folder), "--source", "dir"], capture_output=True, text=True)
    if result.returncode != 0:
        raise ExportError(f"kipoi test {folder} failed:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}")


# ---------------------------------------------------------------------------------------------------------------
# What was given
# ---------------------------------------------------------------------------------------------------------------
def resolve_source(source: str | os.PathLike, config_path: str | os.PathLike | None = None) -> Source:
    """Tell a run directory, a checkpoint folder and a Hugging-Face-format folder apart."""
    from .train.config import RunConfig
    from .train.state import latest_checkpoint

    path = Path(source)
    if not path.is_dir():
        raise ExportError(f"{path}: no such run directory, checkpoint folder or model folder")
    if (path / "checkpoints").is_dir():
        checkpoint = latest_checkpoint(path)
        if checkpoint is None:
            raise ExportError(f"{path}: a run directory without a finished checkpoint "
                              f"({path / 'checkpoints' / 'latest'} is missing)")
        config_file = Path(config_path) if config_path else path / "config.yaml"
        src = Source("run", checkpoint, path, run_dir=path)
    elif (path / "config.json").is_file():
        is_checkpoint = (path / "trainer.json").is_file()
        config_file = Path(config_path) if config_path else None
        run_dir = path.parent.parent if path.parent.name == "checkpoints" else None
        if config_file is None and run_dir is not None and (run_dir / "config.yaml").is_file():
            config_file = run_dir / "config.yaml"
        src = Source("checkpoint" if is_checkpoint else "huggingface", path, path, run_dir=run_dir)
    else:
        raise ExportError(f"{path}: neither a run directory (config.yaml + checkpoints/) nor a model folder "
                          "(config.json + weights)")
    if config_file is not None:
        if not config_file.is_file():
            raise ExportError(f"{config_file}: run config not found")
        src.run_config_path = config_file
        src.run_config = RunConfig.load(config_file)
    trainer = src.model_dir / "trainer.json"
    if trainer.is_file():
        try:
            src.step = int(json.loads(trainer.read_text()).get("step"))
        except (ValueError, TypeError, json.JSONDecodeError):
            src.step = None
    return src


def _load_tokenizer(src: Source):
    from .tokenizer import GenaTokenizer, TokenizerFileError

    try:
        return GenaTokenizer.from_pretrained(src.model_dir)
    except TokenizerFileError:
        fallback = src.run_config.model.tokenizer if src.run_config is not None else None
        if fallback:
            return GenaTokenizer.from_pretrained(fallback)
        raise


def _task_config(src: Source):
    """The run's task config object (PromoterTaskConfig, SpliceTaskConfig, ...) built from data.args, or None."""
    cfg = src.run_config
    if cfg is None or cfg.data.task == "mlm":
        return None
    try:
        from .tasks import TASK_KINDS
    except ImportError:
        return None
    if cfg.data.task not in TASK_KINDS:
        return None
    try:
        return TASK_KINDS[cfg.data.task][0](**cfg.data.args)
    except (TypeError, ValueError) as err:
        raise ExportError(f"{src.run_config_path}: data.args do not describe a {cfg.data.task} task: {err}") from None


def _data_arg(src: Source, keys: tuple[str, ...]) -> str | None:
    if src.run_config is None:
        return None
    for key in keys:
        value = src.run_config.data.args.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def make_plan(name: str, src: Source, config, head: str, opts: ExportOptions) -> Plan:
    from .model_folder import FolderError, WindowSpec

    from .genome import Genome

    task_config = _task_config(src)
    task = opts.task or (src.run_config.data.task if src.run_config is not None else None)
    kind = opts.kind or HEAD_KINDS[head]
    if kind not in HEAD_KINDS.values():
        raise ExportError(f"kind must be one of {', '.join(HEAD_KINDS.values())}, got {kind!r}")

    # -- window --------------------------------------------------------------------------------------------------
    derived: dict[str, Any] = {}
    if task_config is not None and hasattr(task_config, "upstream") and hasattr(task_config, "downstream"):
        derived = dict(sequence_length=task_config.upstream + 1 + task_config.downstream, anchor="tss",
                       upstream=task_config.upstream, flank=0)
    elif task_config is not None and hasattr(task_config, "center") and hasattr(task_config, "flank"):
        derived = dict(sequence_length=task_config.center, anchor="center", upstream=None, flank=task_config.flank)
    elif kind in ("embedding", "mlm"):
        derived = dict(sequence_length=None, anchor="center", upstream=None, flank=0)
    for key in ("sequence_length", "anchor", "upstream", "flank"):
        if key in opts.given:
            derived[key] = getattr(opts, key)
    if "sequence_length" not in derived:
        raise ExportError(f"cannot tell the input window of {src.path} (no task config with one): pass "
                          "sequence_length=... (and anchor='tss', upstream=... for TSS-anchored windows, flank=... "
                          "for context around per-nucleotide outputs)")
    try:
        window = WindowSpec(sequence_length=derived["sequence_length"], anchor=derived.get("anchor") or "center",
                            upstream=derived.get("upstream"), flank=derived.get("flank") or 0).validate("export")
    except FolderError as err:
        raise ExportError(str(err)) from None
    if kind == "token" and window.sequence_length is None:
        raise ExportError("a per-nucleotide (token) model needs a fixed sequence_length: Kipoi writers need "
                          "arrays of one width")

    # -- labels --------------------------------------------------------------------------------------------------
    labels, output_labels, output_indices = _labels(config, kind, task_config, opts, name)

    # -- reference and examples ----------------------------------------------------------------------------------
    fasta = opts.fasta or getattr(task_config, "fasta", None) or _data_arg(src, FASTA_KEYS)
    if not fasta:
        raise ExportError("the folder needs real example files cut from the reference the model was trained on: "
                          "pass fasta=... (or a run config whose data.args name the FASTA)")
    fasta = Path(fasta)
    if not fasta.is_file():
        raise ExportError(f"{fasta}: reference FASTA not found")
    genome = Genome(fasta)
    examples = choose_examples(genome, window, opts, task_config, src)
    genome.close()

    max_tokens = None
    if kind in ("embedding", "mlm"):
        max_tokens = opts.max_tokens or _max_tokens(config, window)
    metrics = _load_metrics(opts.metrics, src)
    version = opts.version or _default_version()
    return Plan(name=name, version=version, kind=kind, head=head, task=task, window=window, labels=labels,
                output_labels=output_labels, output_indices=output_indices, fasta=fasta.resolve(),
                reference_name=opts.reference_name, examples=examples, max_tokens=max_tokens, metrics=metrics,
                description=opts.description, trained_on=opts.trained_on, license=opts.license, notes=opts.notes)


def _labels(config, kind: str, task_config, opts: ExportOptions, name: str):
    if kind in ("embedding", "mlm"):
        return [], [], []
    labels = list(opts.labels) if opts.labels else list(config.labels)
    if len(labels) != config.num_labels:
        raise ExportError(f"labels {labels} do not match the head's {config.num_labels} outputs")
    if all(label == f"LABEL_{i}" for i, label in enumerate(labels)):
        task_labels = getattr(task_config, "labels", None)
        short = name.rsplit("/", 1)[-1]
        if task_labels and len(task_labels) == len(labels):
            labels = list(task_labels)
        elif kind == "sequence" and len(labels) == 2:
            labels = [f"not_{short}", short]   # official fine-tuned folders carry no label names
    single_label = (kind == "sequence"
                    and config.resolved_problem_type("sequence_classification") == "single_label_classification")
    if opts.output_labels:
        missing = [label for label in opts.output_labels if label not in labels]
        if missing:
            raise ExportError(f"output_labels {missing} are not among the labels {labels}")
        indices = [labels.index(label) for label in opts.output_labels]
    elif kind == "sequence" and single_label and len(labels) == 2:
        indices = [1]  # P(positive class); the other column is 1 minus it
    else:
        indices = list(range(len(labels)))
    return labels, [labels[i] for i in indices], indices


def _max_tokens(config, window) -> int:
    """Width of the per-token arrays: the most tokens an input can have (a token covers at least one base)."""
    if config.rmt is None:
        limit = config.max_position_embeddings - 2
    else:
        segments = config.rmt.max_n_segments or 8
        limit = segments * config.segment_size
    if window.input_length is not None:
        limit = min(limit, window.input_length)
    return limit


def _default_version() -> str:
    from kipoi_genalm.adapter import package_version

    return f"{package_version('genalm-models')}+{_dt.date.today():%Y%m%d}"


def _load_metrics(metrics, src: Source) -> dict[str, Any]:
    if isinstance(metrics, dict):
        return metrics
    path = Path(metrics) if metrics else None
    if path is None and src.run_dir is not None:
        found = sorted(src.run_dir.glob("*metrics*.json"))
        path = found[0] if found else None
    if path is None:
        return {}
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ExportError(f"{path}: cannot read metrics JSON: {err}") from None
    if not isinstance(data, dict):
        raise ExportError(f"{path}: expected a JSON object of metrics")
    data.setdefault("_file", str(path))
    return data


# ---------------------------------------------------------------------------------------------------------------
# Example intervals and files
# ---------------------------------------------------------------------------------------------------------------
def choose_examples(genome, window, opts: ExportOptions, task_config, src: Source) -> list:
    """A few real intervals (genome.Interval) whose model windows lie on the reference and are mostly not N."""
    from .model_folder import input_region, target_region

    from .genome import GenomeError, Interval, read_bed
    from .tasks.splits import is_reserved_chromosome

    n = max(1, opts.n_examples)
    bed = opts.examples_bed or getattr(task_config, "tss_bed", None) or _data_arg(src, BED_KEYS)
    table = getattr(task_config, "table", None)
    if bed:
        candidates = list(read_bed(bed))
    elif table:
        candidates = _splice_site_intervals(table)
    else:
        candidates = _fasta_windows(genome, window, n)

    def usable(interval) -> bool:
        # human chrX is held out for evaluation everywhere in this project: never an example either
        if is_reserved_chromosome(interval.chrom) or interval.chrom not in genome:
            return False
        length = genome.contig_lengths[genome.resolve(interval.chrom)]
        try:
            region = input_region(target_region(interval, window), window)
        except GenomeError:
            return False
        return 0 <= region.start and region.end <= length and interval.end <= length

    order = {name: i for i, name in enumerate(genome.contig_lengths)}
    ranked = sorted((iv for iv in candidates if usable(iv)),
                    key=lambda iv: (order[genome.resolve(iv.chrom)], iv.start, iv.end))
    def mostly_sequence(interval) -> bool:
        sequence = genome.fetch(input_region(target_region(interval, window), window), strand="+")
        return sequence.count("N") <= MAX_N_FRACTION_IN_EXAMPLE * max(len(sequence), 1)

    chosen: list[Interval] = []
    for interval in ranked:
        if len(chosen) == n:
            break
        if mostly_sequence(interval):
            chosen.append(interval)
    if not chosen:
        raise ExportError(f"no usable example interval (on the reference {genome.path}, window inside a contig, "
                          "mostly not N) among the candidates; pass examples_bed=...")
    if all(iv.strand != "-" for iv in chosen):
        # show the reverse-complement path in the examples when the candidates have a '-' strand interval
        minus = next((iv for iv in ranked if iv.strand == "-" and mostly_sequence(iv)), None)
        if minus is not None:
            chosen = chosen[: n - 1] + [minus]
    return chosen


def _splice_site_intervals(table: str) -> list:
    """1-bp intervals at the annotated donors and acceptors of a SpliceAI canonical table."""
    from .genome import Interval
    from .tasks.splice import read_splice_table

    intervals = []
    for transcript in read_splice_table(table):
        for kind, sites in (("donor", transcript.donors), ("acceptor", transcript.acceptors)):
            for site in sites:
                intervals.append(Interval(transcript.chrom, site, site + 1, name=f"{transcript.name}_{kind}_{site}",
                                          strand=transcript.strand, source=str(table), line=transcript.line))
    return intervals


def _fasta_windows(genome, window, n: int) -> list:
    """Evenly spread windows of the first contig, alternating strands (no annotation to take examples from)."""
    from .genome import Interval

    name, length = next(iter(genome.contig_lengths.items()))
    width = window.sequence_length or 1000
    step = max(width, (length - width) // (4 * n) or 1)
    return [Interval(name, start, start + width, name=f"window_{i + 1}", strand="+-"[i % 2])
            for i, start in enumerate(range(0, max(length - width, 0) + 1, step))]


def _write_examples(plan: Plan, folder: Path) -> None:
    """example.bed (the chosen intervals, BED6) and example.fa.gz (truncated, N-masked contigs; BGZF + indexes)."""
    import pysam
    from .model_folder import input_region, target_region

    from .genome import Genome
    from .io_utils import write_text_atomic

    lines = [f"{iv.chrom}\t{iv.start}\t{iv.end}\t{iv.name}\t{iv.score if iv.score != '.' else 0}\t{iv.strand}"
             for iv in plan.examples]
    write_text_atomic(folder / "example.bed", lines)

    genome = Genome(plan.fasta)
    keep: dict[str, list[tuple[int, int]]] = {}
    for interval in plan.examples:
        region = input_region(target_region(interval, plan.window), plan.window)
        name = genome.resolve(interval.chrom)
        keep.setdefault(name, []).append((max(0, region.start - EXAMPLE_MARGIN),
                                          min(genome.contig_lengths[name], region.end + EXAMPLE_MARGIN)))
    plain = folder / "example.fa"
    with open(plain, "w") as handle:
        for name in genome.contig_lengths:
            if name not in keep:
                continue
            spans = sorted(keep[name])
            length = max(end for _, end in spans)  # the contig ends after the last example window
            sequence = ["N"] * length
            for start, end in spans:
                sequence[start:end] = genome.fetch(name, start, end)
            handle.write(f">{name} truncated at {length} bp of {plan.fasta.name}; real sequence around the "
                         f"example windows only, N elsewhere; coordinates unchanged\n")
            text = "".join(sequence)
            for offset in range(0, len(text), 60):
                handle.write(text[offset: offset + 60] + "\n")
    genome.close()
    compressed = folder / "example.fa.gz"
    pysam.tabix_compress(str(plain), str(compressed), force=True)
    plain.unlink()
    pysam.faidx(str(compressed))


# ---------------------------------------------------------------------------------------------------------------
# genalm.json, expectation, model.yaml, model card
# ---------------------------------------------------------------------------------------------------------------
def _write_folder_info(plan: Plan, src: Source, folder: Path, config, fp16: bool):
    from kipoi_genalm.adapter import package_version
    from .model_folder import WEIGHTS_FILE, FolderInfo, sha256_file, write_folder_info

    from .genome import Genome

    genome = Genome(plan.fasta)
    contigs = genome.contig_lengths
    genome.close()
    source = {"type": src.kind, "path": str(src.path.resolve()), "model_dir": str(src.model_dir.resolve())}
    if src.step is not None:
        source["step"] = src.step
    if src.run_config_path is not None:
        source["run_config"] = str(src.run_config_path.resolve())
    source["reference_fasta"] = str(plan.fasta)
    info = FolderInfo(
        name=plan.name, version=plan.version, kind=plan.kind, head=plan.head, window=plan.window,
        labels=plan.labels, output_labels=plan.output_labels, output_indices=plan.output_indices,
        weights_sha256=sha256_file(folder / WEIGHTS_FILE), weights_dtype="float16" if fp16 else "float32",
        task=plan.task, rmt=config.rmt is not None, reference_name=plan.reference_name,
        reference_contigs=dict(contigs), source=source,
        exported_at=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        exporter={name: package_version(name) for name in ("genalm-models", "torch", "kipoi")})
    write_folder_info(folder, info)
    return info


def _example_inputs(plan: Plan, folder: Path) -> list[str]:
    from kipoi_genalm.sequences import IntervalSequences

    data = IntervalSequences(folder / "example.bed", folder / "example.fa.gz", plan.window)
    try:
        return [data[i].sequence for i in range(len(data))]
    finally:
        data.close()


def _write_expectation(plan: Plan, folder: Path) -> str:
    """Predictions of the exported (fp16-rounded) weights on the examples, as `kipoi test -o` writes them."""
    import numpy as np
    from kipoi_genalm import kipoi_compat
    from kipoi_genalm.adapter import FolderModel, PredictOptions, kipoi_outputs
    from .model_folder import md5_file

    kipoi_compat.apply()
    from kipoi.writers import HDF5BatchWriter

    inputs = _example_inputs(plan, folder)
    options = PredictOptions(max_tokens=plan.max_tokens)
    runner = FolderModel(folder, options)
    preds = kipoi_outputs(runner.info, runner.predict(inputs))
    path = folder / EXPECT_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    # chunks of exactly the example count: kipoi's default (10,000 rows) pads every per-token array to megabytes
    writer = HDF5BatchWriter(str(path), chunk_size=len(inputs))
    writer.batch_write({"inputs": np.array(inputs), "preds": preds})
    writer.close()
    return md5_file(path)


def _small_ints_as_strings(args: dict[str, Any]) -> dict[str, Any]:
    return {k: (str(v) if isinstance(v, int) and not isinstance(v, bool) and v < SMALLEST_PLAIN_INT_DEFAULT
                else v) for k, v in args.items()}


def _architecture(config) -> str:
    text = (f"{config.num_hidden_layers} layers, hidden {config.hidden_size}, {config.num_attention_heads} heads, "
            f"{config.max_position_embeddings} positions, vocabulary {config.vocab_size}")
    if config.rmt is not None:
        text += (f"; Recurrent Memory Transformer with {config.rmt.num_mem_tokens} memory tokens "
                 f"({config.segment_size} tokens per segment)")
    return text


# TSS-anchored windows (promoter models): what a BED interval means to them (issue 19, item 3)
TSS_INPUT_NOTE = ("Give one 1-bp interval per TSS with its strand (BED6): the window is placed around each "
                  "interval's 5' end (start on '+', end on '-'), so a longer interval (a whole promoter, a 300 bp "
                  "region) is not read as it is, and most of its window can lie outside it; the dataloader warns "
                  "and counts such intervals.")


def _outputs_doc(plan: Plan, config) -> str:
    if plan.kind == "sequence":
        regression = config.resolved_problem_type("sequence_classification") == "regression"
        what = "predicted value" if regression else "probability"
        return (f"{what} per output: {', '.join(plan.output_labels)} (one array of shape (N,) each: columns "
                + ", ".join(f"preds/{label}" for label in plan.output_labels) + ")")
    if plan.kind == "token":
        return (f"per-nucleotide probabilities on the {plan.window.sequence_length} bp region, 5'->3' on the "
                f"interval's strand: " + ", ".join(f"{label} (N, {plan.window.sequence_length})"
                                                   for label in plan.output_labels))
    return (f"embeddings: pooled (N, {config.hidden_size}) mean of the last-layer token states; token_embeddings "
            f"(N, {plan.max_tokens}, {config.hidden_size}), token_spans (N, {plan.max_tokens}, 2) and n_tokens (N,) "
            "for the tokens (NaN / -1 after the last)")


def _schema_targets(plan: Plan, config) -> dict[str, Any]:
    length = plan.window.sequence_length
    if plan.kind == "sequence":  # one named output per label: `kipoi predict` columns preds/<label>
        regression = config.resolved_problem_type("sequence_classification") == "regression"
        what = "predicted value" if regression else "probability"
        return {label: {"shape": "()", "doc": f"{what}: {label}"} for label in plan.output_labels}
    if plan.kind == "token":
        return {label: {"shape": f"({length},)", "doc": f"P({label}) for each base of the region"}
                for label in plan.output_labels}
    hidden, width = config.hidden_size, plan.max_tokens
    return {"pooled": {"shape": f"({hidden},)", "doc": "mean of the last-layer token states"},
            "token_embeddings": {"shape": f"({width}, {hidden})", "doc": "last-layer state of each token (NaN after "
                                                                          "the last token)"},
            "token_spans": {"shape": f"({width}, 2)", "doc": "[start, end) of each token in the input sequence "
                                                             "(-1 after the last token)"},
            "n_tokens": {"shape": "()", "doc": "number of tokens"}}


def _model_doc(plan: Plan, config, rc_offered: bool = True) -> str:
    short = plan.name.rsplit("/", 1)[-1]
    lines = [
        plan.description or f"GENA-LM {plan.task or short} model ({plan.kind} output).",
        f"Architecture: {plan.architecture or 'GENA-LM BERT, ' + _architecture(config)}.",
        f"Input: {plan.window.describe()}, read from the reference FASTA for each BED interval "
        "(upper-cased, reverse-complemented on '-' strands, N-padded past chromosome ends)."
        + (f" {TSS_INPUT_NOTE}" if plan.window.anchor == "tss" and plan.window.sequence_length else ""),
        f"Output: {_outputs_doc(plan, config)}.",
        "Options (environment variables read when the model loads): GENALM_PRECISION=bf16, "
        + ("GENALM_RC_AVERAGE=1 (average with the reverse complement), " if rc_offered else "")
        + "GENALM_DEVICE=cpu|cuda|cuda:N, GENALM_BATCH_SIZE, GENALM_PROGRESS=1"
        + (", GENALM_EMBEDDING_OUTPUTS=pooled, GENALM_MAX_TOKENS" if plan.kind in ("embedding", "mlm") else "")
        + "." + ("" if rc_offered else " Reverse-complement averaging is not offered: the outputs are "
                                       "strand-specific."),
        "Every output file gets <output>.provenance.json with the model name, version and weights sha256.",
        f"Example: kipoi predict {plan.name} --dataloader_args='{{\"intervals_file\": \"x.bed\", \"fasta_file\": "
        "\"genome.fa\"}' -o out.tsv   (register once with `genalm-kipoi register`).",
    ]
    if plan.kind == "mlm":
        lines.insert(3, "This is the masked-language-model backbone; through Kipoi it returns the backbone's "
                        "embeddings (the vocabulary head is for training).")
    return " ".join(lines)


def _write_model_yaml(plan: Plan, info, config, folder: Path, expect_md5: str | None) -> None:
    from kipoi_genalm.adapter import rc_average_refusal
    from .io_utils import write_text_atomic

    window = plan.window
    default_args: dict[str, Any] = {}
    if window.sequence_length is not None:
        default_args["sequence_length"] = window.sequence_length
    if window.anchor != "center":
        default_args["anchor"] = window.anchor
    if window.upstream is not None and window.anchor == "tss":
        default_args["upstream"] = window.upstream
    if window.flank:
        default_args["flank"] = window.flank
    from kipoi_genalm.folder import format_reference_contigs

    default_args["reference_contigs"] = format_reference_contigs(_reference_for_check(info.reference_contigs))
    args: dict[str, Any] = {"model_dir": ".", "precision": "fp32", "rc_average": False, "device": "auto",
                            "batch_size": 32}
    if plan.kind in ("embedding", "mlm"):
        args.update(embedding_outputs="pooled,tokens", max_tokens=plan.max_tokens)
    short = plan.name.rsplit("/", 1)[-1]
    description = {
        "defined_as": "kipoi_genalm.kipoi_model.GenaLMModel",
        "args": args,
        "default_dataloader": {"defined_as": "kipoi_genalm.dataloaders.IntervalSeqDl",
                               "default_args": _small_ints_as_strings(default_args)},
        "info": {
            "authors": [{"name": "GENA-LM authors (Fishman V., Kuratov Y. et al.)"}],
            "contributors": [{"name": "genalm-models exporter"}],
            "doc": _model_doc(plan, config, rc_average_refusal(info) is None),
            "version": plan.version,
            "license": plan.license,
            "cite_as": CITE_AS,
            "trained_on": plan.trained_on or _trained_on(plan, info),
            "training_procedure": _training_procedure(info, config),
            "tags": ["DNA language model", "GENA-LM", "transformer", short] + (["RMT"] if config.rmt else []),
        },
        "dependencies": {key: list(value) for key, value in KIPOI_DEPENDENCIES.items()},
        "schema": {
            "inputs": {"name": "seq", "shape": "()", "special_type": "DNAStringSeq",
                       "doc": f"DNA sequence ({window.describe()}), 5'->3'"
                              + (f". {TSS_INPUT_NOTE}" if window.anchor == "tss" and window.sequence_length else ""),
                       "associated_metadata": "ranges"},
            "targets": _schema_targets(plan, config),
        },
    }
    if expect_md5 is not None:  # None: no expectation (official models: their weights are not shipped)
        description["test"] = {
            # kipoi first looks for <model folder>/downloaded/model_files/test.expect.h5 (shipped) and downloads
            # from `url` only when that file is missing or its md5 differs: the URL is a placeholder.
            "expect": {"url": f"https://genalm-kipoi.invalid/{plan.name}/test.expect.h5", "md5": expect_md5},
            "precision_decimal": PRECISION_DECIMAL,
        }
    header = (f"# {plan.name} {plan.version}: written by genalm_models.export; regenerate rather than edit.\n"
              "# Windows, labels and the weights checksum are also in genalm.json.\n")
    text = yaml.safe_dump(description, sort_keys=False, width=110, allow_unicode=False)
    text = text.replace("\ndependencies:\n", "\ndependencies:\n" + dependencies_comment(), 1)
    write_text_atomic(folder / "model.yaml", header + text)


def dependencies_comment() -> str:
    """The comment at the top of model.yaml's `dependencies:` block: how to install the model's own code."""
    import textwrap

    return "".join(f"  # {line}\n" for line in textwrap.wrap(KIPOI_NOTE, width=106))


def _reference_for_check(contigs: dict[str, int]) -> dict[str, int]:
    """The contigs written into model.yaml: all of them for small references, else those of 1 Mb or more."""
    if len(contigs) <= 50:
        return dict(contigs)
    return {name: length for name, length in contigs.items() if length >= 1_000_000}


def _trained_on(plan: Plan, info) -> str:
    reference = f"{plan.reference_name} " if plan.reference_name else ""
    contigs = ", ".join(list(info.reference_contigs)[:5])
    task = f"{plan.task} task" if plan.task else "pretraining/fine-tuning"
    return f"{task} on {reference}{plan.fasta.name} (contigs {contigs}); see README.md and run_config.yaml"


def _training_procedure(info, config) -> str:
    return (f"GENA-LM BERT ({_architecture(config)}) trained with genalm_models.train or released by the GENA-LM "
            f"authors (source: {info.source.get('type')}); weights stored as {info.weights_dtype}; the run config "
            "is in run_config.yaml when the model came from a training run")


def _write_provenance_files(src: Source, plan: Plan, folder: Path) -> None:
    from .io_utils import write_text_atomic

    if src.run_config_path is not None:
        shutil.copyfile(src.run_config_path, folder / "run_config.yaml")
    if plan.metrics:
        write_text_atomic(folder / "metrics.json", json.dumps(plan.metrics, indent=2, default=str) + "\n")


def _flatten_metrics(metrics: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    rows = []
    for key, value in metrics.items():
        if key.startswith("_"):
            continue
        if isinstance(value, dict):
            rows.extend(_flatten_metrics(value, f"{prefix}{key}."))
        else:
            rows.append((f"{prefix}{key}", value))
    return rows


CURVES_FILE = "training_curves.png"


def _write_curves(src: Source, plan: Plan, folder: Path) -> None:
    """The run's training and validation curves (metrics.jsonl) as a PNG beside the model card."""
    if src.run_dir is None or not (src.run_dir / "metrics.jsonl").is_file():
        return
    from .train.curves import plot_curves
    plot_curves(src.run_dir / "metrics.jsonl", folder / CURVES_FILE, title=plan.name)


def _write_model_card(plan: Plan, info, config, src: Source, folder: Path) -> None:
    from .io_utils import write_text_atomic

    rows = _flatten_metrics({key: value for key, value in plan.metrics.items() if key != STABILITY_KEY})
    metric_lines = ["| metric | value |", "|---|---|"] + [
        f"| {name} | {value:.4f} |" if isinstance(value, float) else f"| {name} | {value} |" for name, value in rows]
    if not rows:
        metric_lines = ["_No metrics file was found at export (pass metrics=path/to/metrics.json): TO BE FILLED._"]
    command = "_TO BE FILLED: the training command._"
    if src.run_config_path is not None:
        # MLM runs: `pretrain`, or `rmt` with recurrent memory; task runs: `finetune` (which takes RMT configs too)
        if plan.task in (None, "mlm"):
            task_command = "rmt" if config.rmt else "pretrain"
        else:
            task_command = "finetune"
        command = f"`python -m genalm_models.train {task_command} --config run_config.yaml`"
    notes = (Path(plan.notes).read_text().strip() if plan.notes else "_TO BE FILLED by the model's owner._")
    curves = (f"\n![training and validation curves]({CURVES_FILE})\n" if (folder / CURVES_FILE).is_file() else "")
    input_note = f". {TSS_INPUT_NOTE}" if plan.window.anchor == "tss" and plan.window.sequence_length else ""
    examples = "\n".join(f"    {iv.chrom}\t{iv.start}\t{iv.end}\t{iv.name}\t{iv.strand}" for iv in plan.examples)
    card = f"""# {plan.name} (version {plan.version})

{_model_doc(plan, config)}

## Model
- Kind: `{plan.kind}`; head: `{plan.head}`; task: `{plan.task or 'n/a'}`
- Architecture: {_architecture(config)}
- Input window: {plan.window.describe()}{input_note}
- Outputs: {_outputs_doc(plan, config)}
- Weights: `model.safetensors` ({info.weights_dtype}), sha256 `{info.weights_sha256}`

## Training data
- Reference: `{plan.fasta.name}`{f" ({plan.reference_name})" if plan.reference_name else ""}; contigs:
  {", ".join(f"{name} ({length:,} bp)" for name, length in list(info.reference_contigs.items())[:10])}
- Task data: {_task_data_summary(src)}
- Exported from: {src.kind} `{src.path}`{f" (step {src.step})" if src.step is not None else ""}
- Training command: {command}

## Metrics
{chr(10).join(metric_lines)}
{curves}{_stability_section(plan, src)}
## Use
```
genalm-kipoi register            # once per user: makes GENA-LM/* visible to kipoi
kipoi predict {plan.name} --dataloader_args='{{"intervals_file": "x.bed", "fasta_file": "genome.fa"}}' -o out.tsv
kipoi test {plan.name} --source kipoi
genalm-kipoi predict {plan.name} --intervals x.bed --fasta genome.fa -o out.h5
```
The reference FASTA must be the assembly above (contig lengths are checked; a mismatch is reported as a warning).

## Examples
`example.bed` (intervals from the task's files, source names kept) and `example.fa.gz` (the reference's contigs,
truncated after the last example window, real sequence only around the example windows, N elsewhere, original
coordinates; BGZF with `.fai`/`.gzi`):
{examples}

## Notes and limitations
{notes}

## Citation
{CITATION}
"""
    write_text_atomic(folder / "README.md", card)


STABILITY_KEY = "stability"   # metrics[STABILITY_KEY]: a genalm_models.stability report (evaluate --stability)


def _stability_section(plan: Plan, src: Source) -> str:
    """Sequence models: how much the output moves under 1-50 bp window moves and single-base changes (the report
    in metrics["stability"], from `evaluate --stability`), or how to measure it when the export was given none."""
    if plan.kind != "sequence":
        return ""
    from .stability import format_stability

    report = plan.metrics.get(STABILITY_KEY) if isinstance(plan.metrics, dict) else None
    config = "run_config.yaml" if src.run_config_path is not None else "RUN_CONFIG.yaml (a task config)"
    how = (f"`python -m genalm_models.train evaluate --model <this folder> --config {config} --split test "
           "--stability` (genalm_models/stability.py; it runs on any sequence model folder, official ones with "
           "`--model hf://ORG/NAME@REVISION`)")
    intro = ("How much the output moves when the input window moves by 1-50 bp (each window read again from the "
             "reference, both directions on its strand) and under single-base changes across the window: a score "
             "that jumps when the window moves by 1 bp makes scan and variant scores depend on where the window "
             "starts. |dP| is the absolute change of the output.")
    if not isinstance(report, dict) or not report.get("per_shift"):
        return f"\n## Stability\n{intro}\n\n_Not measured at export._ Measure it with {how}.\n"
    return (f"\n## Stability\n{intro} Measured on {report.get('windows', 'held-out windows')} with {how}.\n\n"
            f"{format_stability(report)}\n")


def _task_data_summary(src: Source) -> str:
    if src.run_config is None:
        return "_TO BE FILLED_"
    args = {k: v for k, v in src.run_config.data.args.items() if not isinstance(v, (dict, list))}
    text = ", ".join(f"{k}={v}" for k, v in args.items())
    return f"task `{src.run_config.data.task}`" + (f" ({text})" if text else "")

"""Export a GENA-LM model as a self-describing model folder (`genalm_models.model_folder`), Kipoi-free.

    export_model(source, out, name="GENA-LM/promoter")                        # the Kipoi-free folder
    kipoi_genalm.zoo_export.export_kipoi_model(source, out, name=...)          # + model.yaml and `kipoi test` files
    python -m genalm_models.train export --source runs/promoter --out plugin/zoo/GENA-LM/promoter \
        --name GENA-LM/promoter                                                # + whatever plugins registered

Imports point one way: this module knows nothing of Kipoi. The Kipoi files (model.yaml, the `kipoi test`
expectation, running `kipoi test`) are added by a *finisher*: a callable given the folder being built
(`ExportedFolder`) before it is moved into place, so a failing finisher leaves `out` as it was. The Kipoi plugin
registers its finisher, `kipoi_genalm.zoo_export:add_kipoi_files`, under the importlib.metadata entry point group
`genalm_models.export_finishers` (setup.py); `registered_finishers()` loads the registered ones, and the
`train export` CLI passes them to `export_model`. Chosen over an optional `import kipoi_genalm` so that no module
of genalm_models names the plugin, and a second plugin can add its own files the same way.

`source` is one of
  (a) a training run directory: `config.yaml` (the RunConfig) + `checkpoints/latest` naming the newest checkpoint;
  (b) a checkpoint folder (`checkpoints/step_0000123/`): a model folder with tokenizer files; its run config is
      `../../config.yaml` when present, or `config_path`;
  (c) a Hugging-Face-format GENA-LM folder (official release or fine-tuned branch): `config.json` +
      `model.safetensors` or `pytorch_model.bin` + `tokenizer.json`, official parameter names, maybe a
      `classifier` head. Give `config_path` (a run config naming the task and its files) or the options below.

What the folder gets (see genalm_models/model_folder.py for the list and genalm.json): weights as safetensors
(fp16 by default), config.json, the tokenizer, genalm.json (kind, input window, labels, sha256 of the weights,
contig lengths of the training reference), small real example files, a README.md model card, and the run config /
metrics it came from; the Kipoi finisher adds model.yaml (schema, info, LOCAL default args only) and the
`kipoi test` expectation.

The input window, labels, reference FASTA and example intervals are read from the run's task config
(`data.task` + `data.args`, e.g. promoter: tss_bed, fasta, upstream, downstream; splice: table, fasta, center,
flank). Every one can be given or overridden as a keyword option:

  version, task, kind (sequence|token|embedding|mlm), sequence_length (None = any length), anchor (center|tss),
  upstream, flank, labels, output_labels, fasta, reference_name, examples_bed, n_examples, metrics (JSON path or
  dict), description, trained_on, license, max_tokens, notes, check_with_kipoi (read by the Kipoi finisher:
  run `kipoi test` on the result; an ExportError without a finisher that reads it)

Example files: the intervals come from the task's own files (the first few TSSs of `tss_bed`, splice sites of
the SpliceAI `table`, or `examples_bed`), else windows of the FASTA. `example.fa.gz` (BGZF, with .fai and .gzi)
keeps the reference's contig names and real coordinates - every contig is truncated after the last example, and
holds the real sequence only around the example windows (N elsewhere) - so the BED keeps true coordinates and the
files stay a few kB. `example.bed` keeps the names of the source BED (e.g. `chr20` against a FASTA with `20`).

The folder is assembled under a temporary name next to `out` and moved into place at the end: an export that fails
leaves `out` as it was. Errors: ExportError (a ValueError) naming the source, file or option.
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
from typing import Any, Callable, Sequence

from .io_utils import move_into_place
from .model_folder import package_version, rc_average_refusal

log = logging.getLogger(__name__)

CITATION = ("Fishman V. et al. GENA-LM: a family of open-source foundational DNA language models for long "
            "sequences. Nucleic Acids Research, 2025. https://doi.org/10.1093/nar/gkae1310")
CITE_AS = "https://doi.org/10.1093/nar/gkae1310"
DEFAULT_N_EXAMPLES = 6
EXAMPLE_MARGIN = 50                # bp of real sequence kept around each example window
MAX_N_FRACTION_IN_EXAMPLE = 0.5
FINISHERS_GROUP = "genalm_models.export_finishers"   # importlib.metadata entry points: Finisher callables
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
    check_with_kipoi: bool = False     # read by the Kipoi finisher (kipoi_genalm.zoo_export)
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
    window: Any                # genalm_models.model_folder.WindowSpec
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


@dataclass(frozen=True)
class ExportedFolder:
    """What a finisher gets: the folder being built (complete but for the finishers' files) and what it was
    resolved from. `info` is the FolderInfo written to genalm.json; `config` the model's GenaConfig."""

    folder: Path
    plan: Plan
    info: Any
    config: Any
    source: Source
    options: ExportOptions


Finisher = Callable[[ExportedFolder], None]


def registered_finishers() -> list[Finisher]:
    """The finishers installed packages registered under the `genalm_models.export_finishers` entry point group
    (the Kipoi plugin: model.yaml + `kipoi test` files), sorted by entry point name; [] when none is installed."""
    from importlib import metadata

    entry_points = sorted(metadata.entry_points(group=FINISHERS_GROUP), key=lambda ep: ep.name)
    return [ep.load() for ep in entry_points]


# ---------------------------------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------------------------------
def export_model(source: str | os.PathLike, out: str | os.PathLike, name: str,
                 config_path: str | os.PathLike | None = None, fp16: bool = True,
                 finishers: Sequence[Finisher] = (), **options: Any) -> Path:
    """Write the model folder for `source` at `out` (see the module docstring); returns `out`.

    finishers: called in order on the folder being built, after every Kipoi-free file is written and before the
    folder is moved into place (`registered_finishers()` for the installed plugins'). Raises ExportError.
    """
    import torch

    from .checkpoint import head_from_config, load_model, model_config, save_model

    opts = ExportOptions.from_keywords(options)
    if opts.check_with_kipoi and not finishers:
        raise ExportError("check_with_kipoi needs the Kipoi finisher: export with "
                          "kipoi_genalm.zoo_export.export_kipoi_model (or install the Kipoi plugin for the CLI)")
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
        _write_provenance_files(src, plan, building)
        _write_curves(src, plan, building)
        _write_model_card(plan, info, config, src, building)
        exported = ExportedFolder(folder=building, plan=plan, info=info, config=config, source=src, options=opts)
        for finish in finishers:
            finish(exported)
        move_into_place(building, out)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    log.info("exported %s to %s", name, out)
    return out


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
# genalm.json and the model card
# ---------------------------------------------------------------------------------------------------------------
def _write_folder_info(plan: Plan, src: Source, folder: Path, config, fp16: bool):
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


def describe_architecture(config) -> str:
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


def model_doc(plan: Plan, config, rc_offered: bool = True) -> str:
    short = plan.name.rsplit("/", 1)[-1]
    lines = [
        plan.description or f"GENA-LM {plan.task or short} model ({plan.kind} output).",
        f"Architecture: {plan.architecture or 'GENA-LM BERT, ' + describe_architecture(config)}.",
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

{model_doc(plan, config, rc_average_refusal(plan) is None)}

## Model
- Kind: `{plan.kind}`; head: `{plan.head}`; task: `{plan.task or 'n/a'}`
- Architecture: {describe_architecture(config)}
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

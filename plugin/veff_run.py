"""Variant scoring, part 3 of 3: the run - VCF in, scored VCF (+ table) out (veff.py has the user documentation).

    run_score_variants(ScoreVariantsOptions(model="GENA-LM/promoter", dl_args={"fasta_file": "genome.fa"},
                                            input_vcf="in.vcf.gz", output_vcf="out.vcf.gz"))

`ScoreVariantsOptions` holds everything a run can be told (the parameters of `veff.score_variants`, which builds
one); `run_score_variants` checks it (one-line errors naming the argument, file or line), screens the VCF's
coordinates against the FASTA (`screen_reference`), loads the model (veff_load.py), scores chunk by chunk
(`_Run`, with the scorers of veff_scorers.py) and writes the outputs atomically with a provenance sidecar.
"""
from __future__ import annotations

import contextlib
import logging
import os
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from genalm_models.genome import Genome, GenomeError, VcfReader, VcfRecord
from genalm_models.inference import release_freed_memory
from genalm_models.io_utils import atomic_write, check_output_path

from .folder import FolderInfo, WindowSpec, compare_contigs
from .sequences import chunked, window_spec
from .veff_io import (MODEL_HEADER, NORMALISED_ID, SKIPPED_ID, TableWriter, VcfHeader,
                      check_table_path, format_values, header_value, info_header, is_gzip_name, replace_info)
from .veff_load import ScoringModel, configured, load_scoring_model
from .veff_mlm import DEFAULT_ESTIMATOR, ESTIMATORS, MaskedMarginalScorer
from .veff_scorers import Job, MlmScorer, OutputScorer, WindowCache
from .veff_scores import DEFAULT_SCORES, INTEGER_SCORES, SCORES_BY_KIND
from .veff_variants import (REF_MISMATCH_REASONS, SKIP_REASONS, Allele, RegionWindows, Window, alleles_of,
                            alt_sequence, centred_window, check_letters, check_ref, variant_index)

log = logging.getLogger(__name__)

DEFAULT_CHUNK_SIZE = 1000
DEFAULT_LLR_FLANK = 32
DEFAULT_SPLICE_DISTANCE = 50
DEFAULT_CACHE_MB = 256
LEFT_ALIGN_MARGIN = 10_000   # bp of windows behind a chunk's last record the cache keeps
# The coordinate check (module docstring): records screened, the least checked for a verdict, the mismatch share
REF_SCREEN_RECORDS = 10_000
REF_SCREEN_MIN_CHECKED = 20
REF_SCREEN_MAX_SHARE = 0.10
DL_ARG_NAMES = ("fasta_file", "intervals_file", "sequence_length", "anchor", "upstream", "flank", "use_strand",
                "reference_contigs", "ignore_targets")



@dataclass
class ScoreResult:
    """What a run did. `predictions` (return_predictions=True): {score: DataFrame}, one row per scored (variant,
    ALT, window), indexed `chrom:pos:ref:alt`, one column per model output (+ `region` in region mode)."""

    model: str
    output_vcf: str
    output_table: str | None
    mode: str
    n_records: int = 0
    n_alleles: int = 0
    n_scored: int = 0
    skipped: Counter = field(default_factory=Counter)
    ref_windows_predicted: int = 0
    alt_sequences_predicted: int = 0
    seconds: float = 0.0
    predictions: dict[str, Any] | None = None
    n_normalised: int = 0                                  # scored ALTs whose allele differs from the record's
    ref_checked: int = 0                                   # records whose REF was compared with the FASTA
    ref_mismatched: int = 0                                # ... and did not match (or lay past a chromosome end)
    warnings: list[str] = field(default_factory=list)      # "this result may be wrong" (e.g. another assembly)

    @property
    def n_skipped(self) -> int:
        return sum(self.skipped.values())

    def summary(self) -> str:
        lines = [f"{self.model}: {self.n_records} records, {self.n_alleles} ALT alleles, {self.n_scored} scored "
                 f"({self.mode} mode; {self.ref_windows_predicted} reference windows and "
                 f"{self.alt_sequences_predicted} alternative sequences predicted in {self.seconds:.1f} s)"]
        if self.skipped:
            lines.append(f"skipped {self.n_skipped} (flagged {SKIPPED_ID} in the VCF): "
                         + ", ".join(f"{reason} {count}" for reason, count in sorted(self.skipped.items())))
        if self.n_normalised:
            lines.append(f"{self.n_normalised} scored ALT alleles differ from their record as written (trimmed, "
                         f"indels left-aligned); the allele as scored is in {NORMALISED_ID}")
        lines += [f"WARNING: {warning}" for warning in self.warnings]
        lines.append(f"written: {self.output_vcf}" + (f" and {self.output_table}" if self.output_table else ""))
        return "\n".join(lines)


def _window_spec(info: FolderInfo, dl_args: Mapping[str, Any], seq_length: int | None, region_mode: bool
                 ) -> WindowSpec:
    base = info.window
    values = {"sequence_length": base.sequence_length, "anchor": base.anchor, "upstream": base.upstream,
              "flank": base.flank}
    values.update({k: dl_args[k] for k in ("sequence_length", "anchor", "upstream", "flank") if k in dl_args})
    if seq_length is not None:
        values["sequence_length"] = seq_length
    spec = window_spec(**values)
    if not region_mode:
        # centred on the variant: the model's input length, whatever anchor its BED windows use
        if spec.sequence_length is None:
            raise ValueError(f"{info.name} takes inputs of any length: pass seq_length (--seq-length) to score "
                             "variants in windows centred on them, or give regions (restriction_bed)")
        spec = WindowSpec(spec.sequence_length, "center", None, spec.flank).validate("window")
    return spec


def _check_scores(scores: Sequence[str] | None, model: ScoringModel) -> tuple[str, ...]:
    kind = model.kind
    if scores is None:
        return tuple(DEFAULT_SCORES[kind])
    if isinstance(scores, str):
        scores = [s for s in scores.split(",") if s.strip()]
    names = tuple(dict.fromkeys(s.strip().lower() for s in scores))
    allowed = SCORES_BY_KIND[kind]
    unknown = [s for s in names if s not in allowed]
    if unknown or not names:
        raise ValueError(f"scores {', '.join(unknown) or '(none)'} do not apply to {model.name} (kind {kind}); "
                         f"choose from {', '.join(allowed)}")
    if kind == "sequence" and any(n.startswith("logit") for n in names):
        problem = model.runner.predictor.config.resolved_problem_type("sequence_classification")
        if problem == "regression":
            raise ValueError(f"{model.name} is a regression model: logit scores do not apply (use ref, alt, diff)")
    return names


def _safe_id(text: str) -> str:
    """A region name usable inside an INFO value (no separators of VCF or of our lists)."""
    return re.sub(r"[,;=|\s]", "_", text)


@dataclass
class ScoreVariantsOptions:
    """Everything one variant-scoring run can be told; `run_score_variants(options)` runs it.

    model: `GENA-LM/<name>` (the bundled group, or `group_dir`), a model folder, a FolderModel, a Kipoi GenaLMModel
        or a ScoringModel (veff_load.py).
    dl_args: `fasta_file` (required); optional `intervals_file` (regions, same as restriction_bed) and window
        overrides `sequence_length`, `anchor`, `upstream`, `flank`, `use_strand` (as for the dataloader).
    input_vcf, output_vcf: VCF in (plain or bgzipped); VCF out (.vcf, .vcf.gz or .vcf.bgz; BGZF when compressed).
    scores: score names of the model's kind (veff.py docstring), a list or "a,b"; default the kind's defaults.
    restriction_bed: BED of regions: each variant is scored in the model window of each region holding it
        (TSS-anchored for promoter models); variants in no window are flagged outside_regions. The VCF gets the
        values of the region whose TSS/centre is nearest (INFO `...:REGION` names it); the table has all.
    return_predictions: keep the model outputs of every scored (variant, ALT, window) in `ScoreResult.predictions`.
    output_table: also write `.tsv` / `.tsv.gz` / `.parquet`, one row per (variant, ALT, window).
    batch_size: sequences per model call; chunk_size: VCF records per chunk (memory stays bounded by it).
    rc_average / device / precision: the model's predict options for this run (None: the model's own).
    seq_length: window length (bp, flanks not included) in centred mode; default the model's own.
    llr_flank: MLM bases each side of the variant in the pseudo-log-likelihood stretch.
    mlm_estimator: MLM score estimator, `pll` (default) or `masked-marginal` (faster; veff_mlm.py).
    splice_distance: per-nucleotide models, bases each side of the variant searched for the largest change.
    source: the `<source>` part of the INFO IDs (`KV:<source>:<model>:<SCORE>`).
    progress: a progress bar (tqdm) on stderr.
    group_dir: where `GENA-LM/<name>` models are found (default the bundled group).
    cache_mb: memory (MiB) for the reference-window outputs kept for reuse.
    allow_ref_mismatch: score a VCF whose REF alleles disagree with the FASTA too often (another assembly or
        coordinate system: see veff.py), with a warning, instead of refusing it.
    """

    model: Any
    dl_args: Mapping[str, Any]
    input_vcf: str | os.PathLike
    output_vcf: str | os.PathLike
    scores: Sequence[str] | str | None = None
    batch_size: int | None = None
    restriction_bed: str | os.PathLike | None = None
    return_predictions: bool = False
    output_table: str | os.PathLike | None = None
    seq_length: int | None = None
    rc_average: bool | None = None
    chunk_size: int = DEFAULT_CHUNK_SIZE
    llr_flank: int = DEFAULT_LLR_FLANK
    splice_distance: int = DEFAULT_SPLICE_DISTANCE
    source: str = "kipoi"
    progress: bool = True
    device: str | None = None
    precision: str | None = None
    group_dir: str | os.PathLike | None = None
    cache_mb: float = DEFAULT_CACHE_MB
    allow_ref_mismatch: bool = False
    mlm_estimator: str = DEFAULT_ESTIMATOR


def run_score_variants(options: ScoreVariantsOptions) -> ScoreResult:
    """Score every ALT of `options.input_vcf` with a GENA-LM model and write `options.output_vcf` (veff.py).

    Errors (before the model loads where they can be told then): ValueError naming the argument, TypeError for a
    model of another type, FileNotFoundError for a missing model or file, GenomeError naming file and line for bad
    VCF / BED / FASTA input and for a VCF on another assembly (unless allow_ref_mismatch).
    """
    from . import provenance

    provenance.install_warning_handler()  # this run's warnings are shown and counted for its sidecar
    model, dl_args, input_vcf, output_vcf = options.model, options.dl_args, options.input_vcf, options.output_vcf
    scores, restriction_bed, output_table = options.scores, options.restriction_bed, options.output_table
    batch_size, chunk_size, cache_mb = options.batch_size, options.chunk_size, options.cache_mb
    rc_average, device, precision = options.rc_average, options.device, options.precision
    seq_length, llr_flank, splice_distance = options.seq_length, options.llr_flank, options.splice_distance
    mlm_estimator, allow_ref_mismatch = options.mlm_estimator, options.allow_ref_mismatch
    source, progress, group_dir = options.source, options.progress, options.group_dir
    return_predictions = options.return_predictions
    started = time.perf_counter()
    dl_args = dict(dl_args or {})
    unknown = sorted(set(dl_args) - set(DL_ARG_NAMES))
    if unknown:
        raise ValueError(f"dl_args: unknown argument(s) {', '.join(unknown)}; known: {', '.join(DL_ARG_NAMES)}")
    if "fasta_file" not in dl_args:
        raise ValueError("dl_args must name the reference: {'fasta_file': 'genome.fa'}")
    regions_file = restriction_bed if restriction_bed is not None else dl_args.get("intervals_file")
    if (restriction_bed is not None and dl_args.get("intervals_file") is not None
            and Path(restriction_bed).resolve() != Path(dl_args["intervals_file"]).resolve()):
        raise ValueError(f"restriction_bed {restriction_bed} and dl_args intervals_file "
                         f"{dl_args['intervals_file']} name different regions; give one")
    if mlm_estimator not in ESTIMATORS:
        raise ValueError(f"mlm_estimator must be one of {', '.join(ESTIMATORS)}, got {mlm_estimator!r}")
    if chunk_size < 1 or llr_flank < 0 or splice_distance < 0:
        raise ValueError("chunk_size must be >= 1, llr_flank and splice_distance >= 0")
    if output_table is not None:
        check_table_path(output_table)
    input_vcf, output_vcf = Path(input_vcf), Path(output_vcf)
    if not str(output_vcf).endswith((".vcf", ".vcf.gz", ".vcf.bgz")):
        raise ValueError(f"{output_vcf}: the output must end in .vcf, .vcf.gz or .vcf.bgz")
    inputs = (input_vcf, dl_args["fasta_file"], regions_file)
    for output in (output_vcf, output_table):  # before the model loads: unwritable or an input -> refused now
        if output is not None:
            check_output_path(output, inputs, "output")

    option_changes = {"rc_average": rc_average, "batch_size": batch_size, "device": device, "precision": precision}
    scoring = load_scoring_model(model, option_changes, group_dir)
    if mlm_estimator != DEFAULT_ESTIMATOR and scoring.kind != "mlm":
        raise ValueError(f"mlm_estimator {mlm_estimator!r} (--mlm-estimator) applies to masked-LM models only; "
                         f"{scoring.name} is a {scoring.kind} model")
    names = _check_scores(scores, scoring)
    from .sequences import as_bool

    use_strand = as_bool(dl_args.get("use_strand", True), "use_strand")
    spec = _window_spec(scoring.info, dl_args, seq_length, region_mode=regions_file is not None)

    warnings: list[str] = []
    with contextlib.ExitStack() as stack:
        # a model loaded here already has the options; one handed in is configured for this run only
        stack.enter_context(configured(scoring, {} if scoring.owned else option_changes))
        if scoring.kind == "embedding":
            stack.enter_context(configured(scoring, {"embedding_outputs": "pooled"}))
        options = scoring.runner.options if scoring.runner is not None else scoring.options
        effective_rc = options.rc_average
        genome = stack.enter_context(Genome(dl_args["fasta_file"]))
        _warn_on_other_assembly(genome, scoring.info, dl_args["fasta_file"])
        screen = screen_reference(input_vcf, genome)
        screen_failed = screen.looks_wrong
        if screen_failed:
            message = screen.message(input_vcf, dl_args["fasta_file"])
            if not allow_ref_mismatch:
                raise GenomeError(message + ". Use the VCF's own reference (or lift the VCF over, or fix POS), or "
                                  "pass --allow-ref-mismatch (allow_ref_mismatch=True) to score it anyway "
                                  "(mismatching records are flagged ref_mismatch, never scored)")
            warnings.append(message)
            log.warning("%s", message, extra={"genalm_kind": "vcf_reference_mismatch"})
        regions = RegionWindows(regions_file, genome, spec, use_strand) if regions_file is not None else None
        cache = WindowCache(int(cache_mb * 2**20))
        if scoring.kind == "mlm":
            scorer = (MlmScorer(scoring, names, cache, llr_flank, effective_rc) if mlm_estimator == "pll"
                      else MaskedMarginalScorer(scoring, names, effective_rc))
        else:
            scorer = OutputScorer(scoring, names, cache, splice_distance)
        run = _Run(scoring, scorer, names, genome, spec, regions, source, return_predictions)
        result = ScoreResult(scoring.name, str(output_vcf), str(output_table) if output_table else None,
                             "regions" if regions is not None else "centred", warnings=warnings)
        meta = {"mode": result.mode, "scores": ",".join(names), "rc_average": str(effective_rc).lower(),
                "precision": options.precision,
                "window": spec.describe() if regions is not None else
                f"{spec.sequence_length} bp centred on the variant" + (f", plus {spec.flank} bp of context on "
                                                                       "each side" if spec.flank else "")}
        if regions is not None:
            meta["regions"] = Path(regions_file).name
        if scoring.kind == "mlm":
            if mlm_estimator == DEFAULT_ESTIMATOR:
                meta["llr_flank"] = llr_flank   # the pseudo-likelihood stretch; masked-marginal has none
            else:
                meta["mlm_estimator"] = mlm_estimator
        if scoring.kind == "token":
            meta["splice_distance"] = splice_distance
        reader = stack.enter_context(VcfReader(input_vcf))
        header = VcfHeader.build(reader.header_lines, run.info_lines(), [run.model_line(meta)], run.field_ids,
                                 scoring.name, source)

        vcf_out = stack.enter_context(atomic_write(output_vcf, "wb", bgzf=is_gzip_name(output_vcf)))
        table = None
        if output_table is not None:
            table_handle = stack.enter_context(atomic_write(output_table, "wb", bgzf=is_gzip_name(output_table)))
            table = TableWriter(output_table, table_handle, run.table_columns())
        vcf_out.write(header.text().encode("utf-8"))
        bar = None
        if progress:
            from tqdm.auto import tqdm

            from .veff_io import count_vcf_records

            # the total (records, one quick pass over the file) gives the bar its percentage and ETA
            bar = stack.enter_context(tqdm(desc=f"score variants ({scoring.name})", unit="record",
                                           total=count_vcf_records(input_vcf)))
        for chunk in chunked(iter(reader), chunk_size):
            lines, rows = run.score_chunk(chunk, result)
            vcf_out.write("".join(lines).encode("utf-8"))
            if table is not None:
                table.write_rows(rows)
            if bar is not None:
                bar.update(len(chunk))
                bar.set_postfix(scored=result.n_scored, skipped=result.n_skipped, refresh=False)
        if table is not None:
            table.close()
        checked, mismatched = result.ref_checked, result.ref_mismatched
        if (not screen_failed and checked >= REF_SCREEN_MIN_CHECKED
                and mismatched >= REF_SCREEN_MAX_SHARE * checked):
            message = (f"{input_vcf}: REF differs from {dl_args['fasta_file']} (or lies past a chromosome end) at "
                       f"{mismatched:,} of {checked:,} records ({100 * mismatched / checked:.0f}%; in the first "
                       f"{screen.checked:,} checked before scoring: {screen.mismatched:,}): the VCF looks like it "
                       "is (in part) for another assembly or another coordinate system; mismatching records are "
                       "flagged ref_mismatch / outside_contig and not scored")
            warnings.append(message)
            log.warning("%s", message, extra={"genalm_kind": "vcf_reference_mismatch"})
        result.ref_windows_predicted = scorer.ref_windows_predicted
        result.alt_sequences_predicted = scorer.alt_sequences_predicted
        result.predictions = run.prediction_frames() if return_predictions else None
    result.seconds = time.perf_counter() - started
    _write_provenance(result, scoring, input_vcf, dl_args, regions_file, meta)
    return result


@dataclass
class ReferenceScreen:
    """REF of the first records of a VCF compared with the FASTA (`screen_reference`)."""

    checked: int = 0                      # records with an ALT on a chromosome of the FASTA
    mismatched: int = 0                   # ... whose REF differs from the FASTA or lies past the chromosome end
    examples: list[str] = field(default_factory=list)
    shift_tested: int = 0                 # mismatching records with REF inside the chromosome
    matches_at_shift: Counter = field(default_factory=Counter)   # -1 / +1: REF matches at POS-1 / POS+1

    @property
    def looks_wrong(self) -> bool:
        return (self.checked >= REF_SCREEN_MIN_CHECKED
                and self.mismatched >= REF_SCREEN_MAX_SHARE * self.checked)

    def shift(self) -> int | None:
        """-1 or +1 when REF matches the FASTA one base off at >= 80% of (at least 5) mismatching records."""
        for offset in (-1, 1):
            if self.shift_tested >= 5 and self.matches_at_shift[offset] >= 0.8 * self.shift_tested:
                return offset
        return None

    def message(self, vcf: Any, fasta: Any) -> str:
        share = 100 * self.mismatched / self.checked
        text = (f"{vcf}: REF differs from {fasta} (or lies past a chromosome end) at {self.mismatched:,} of the "
                f"first {self.checked:,} records checked ({share:.0f}%; e.g. {'; '.join(self.examples)}): the VCF "
                "looks like it is for another assembly or another coordinate system")
        offset = self.shift()
        if offset is not None:
            count = self.matches_at_shift[offset]
            text += (f"; REF matches the FASTA one base to the {'left' if offset < 0 else 'right'} of POS at "
                     f"{count:,} of {self.shift_tested:,} mismatching records: POS looks shifted by "
                     f"{-offset:+d}" + (" (0-based positions? VCF POS is 1-based)" if offset > 0 else ""))
        return text


def screen_reference(vcf: str | os.PathLike, genome: Genome, limit: int | None = None) -> ReferenceScreen:
    """Compare REF with the FASTA for the first `limit` (default REF_SCREEN_RECORDS) records that have an ALT and
    a chromosome of the FASTA.

    Cheap (no model; one FASTA read per record); decides whether the VCF is on the FASTA's coordinates before
    anything is predicted (module docstring).
    """
    screen = ReferenceScreen()
    limit = REF_SCREEN_RECORDS if limit is None else limit
    with VcfReader(vcf) as reader:
        for record in reader:
            if screen.checked >= limit:
                break
            if not record.alts or record.chrom not in genome:
                continue
            screen.checked += 1
            name, reason = check_ref(record, genome)
            if reason is None:
                continue
            screen.mismatched += 1
            length = genome.contig_lengths[name]
            if len(screen.examples) < 3:
                found = (f"past the end of {name} (length {length:,})" if reason == "outside_contig" else
                         f"FASTA {genome.fetch(name, record.start, record.end).upper()}")
                screen.examples.append(f"line {record.line} {record.chrom}:{record.pos} REF {record.ref}, {found}")
            if reason == "ref_mismatch":
                screen.shift_tested += 1
                for offset in (-1, 1):
                    start = record.start + offset
                    if 0 <= start and start + len(record.ref) <= length and \
                            genome.fetch(name, start, start + len(record.ref)).upper() == record.ref.upper():
                        screen.matches_at_shift[offset] += 1
    return screen


def _warn_on_other_assembly(genome: Genome, info: FolderInfo, fasta: Any) -> None:
    if not info.reference_contigs:
        return
    mismatches, _ = compare_contigs(genome.contig_lengths, info.reference_contigs)
    for message in mismatches:
        log.warning("%s: %s - the FASTA does not look like the assembly %s was trained on", fasta, message,
                    info.name)


def _write_provenance(result: ScoreResult, scoring: ScoringModel, input_vcf: Path, dl_args: Mapping[str, Any],
                      regions_file: Any, meta: Mapping[str, Any]) -> None:
    from . import provenance

    document = provenance.record(result.output_vcf, [scoring.provenance()], inputs={
        "input_vcf": str(input_vcf), "fasta_file": str(dl_args["fasta_file"]),
        "regions": str(regions_file) if regions_file is not None else None, **{k: str(v) for k, v in meta.items()}},
        extra={"summary": {"records": result.n_records, "alleles": result.n_alleles, "scored": result.n_scored,
                           "skipped": dict(result.skipped), "normalised": result.n_normalised,
                           "reference_check": {"records_checked": result.ref_checked,
                                               "ref_mismatch": result.ref_mismatched},
                           "warnings": list(result.warnings)}})
    provenance.write_sidecar(result.output_vcf, document)


@dataclass
class AltPlan:
    """What becomes of one ALT of a record."""

    reason: str | None                          # why it is not scored (SKIP_REASONS), or None
    jobs: list[Job] = field(default_factory=list)
    spelling: tuple[int, str, str] | None = None  # the allele as scored, when it differs from the record

    @property
    def spelled(self) -> str | None:
        return None if self.spelling is None else ":".join(str(part) for part in self.spelling)


class _Run:
    """The per-chunk work of one score_variants call: plan windows, score, format VCF lines and table rows."""

    def __init__(self, scoring: ScoringModel, scorer, names: tuple[str, ...], genome: Genome, spec: WindowSpec,
                 regions: RegionWindows | None, source: str, keep_predictions: bool):
        self.scoring = scoring
        self.scorer = scorer
        self.names = names
        self.genome = genome
        self.spec = spec
        self.regions = regions
        self.labels = list(scorer.labels)
        prefix = f"KV:{source}:{scoring.name}:"
        self.score_ids = {name: prefix + name.upper() for name in names}
        self.region_id = prefix + "REGION"
        self.field_ids = set(self.score_ids.values()) | {SKIPPED_ID, NORMALISED_ID, self.region_id}
        self.source = source
        self.keep_predictions = keep_predictions
        self.kept: dict[str, list] = {name: [] for name in names}
        self.kept_index: list[str] = []
        self.kept_regions: list[str] = []

    # ---- header ----------------------------------------------------------------------------------------------
    def info_lines(self) -> list[str]:
        description = "Prediction from model outputs: " + "|".join(self.labels)
        lines = [info_header(field_id, "A", "String", description) for field_id in self.score_ids.values()]
        reasons = "; ".join(f"{k}: {v}" for k, v in SKIP_REASONS.items())
        lines.append(info_header(SKIPPED_ID, ".", "String",
                                 "Why ALT alleles were not scored, one entry per ALT in ALT order ('.' = scored). "
                                 + reasons))
        lines.append(info_header(NORMALISED_ID, "A", "String",
                                 "The allele as scored, POS:REF:ALT in VCF spelling: trimmed, indels left-aligned "
                                 "against the reference (as bcftools norm); one entry per ALT in ALT order, '.' = "
                                 "as the record writes it (or not scored)"))
        if self.regions is not None:
            lines.append(info_header(self.region_id, "A", "String",
                                     f"Region of {Path(self.regions.path).name} whose model window gave the scores "
                                     "of each ALT (the nearest of the windows holding it)"))
        return lines

    def model_line(self, meta: Mapping[str, Any]) -> str:
        info = self.scoring.info
        fields = {"ID": info.name, "source": self.source, "version": info.version,
                  "sha256": self.scoring.weights_sha256, "kind": info.kind, **meta}
        return f"##{MODEL_HEADER}=<" + ",".join(f"{k}={header_value(v)}" for k, v in fields.items()) + ">"

    def table_columns(self) -> list[tuple[str, str]]:
        columns = [("chrom", "str"), ("pos", "int"), ("id", "str"), ("ref", "str"), ("alt", "str"),
                   ("alt_index", "int")]
        if self.regions is not None:
            columns += [("region", "str"), ("nearest_region", "bool")]
        columns += [("skipped", "str"), ("normalised", "str")]
        for name in self.names:
            for label in self.labels:
                columns.append((f"{name}:{label}", "int" if name in INTEGER_SCORES else "float"))
        return columns

    # ---- a chunk ---------------------------------------------------------------------------------------------
    def score_chunk(self, records: list[VcfRecord], result: ScoreResult) -> tuple[list[str], list[dict]]:
        ref_sequences: dict[Any, str] = {}
        plans: list[list[AltPlan]] = []
        jobs: list[Job] = []
        for record in records:
            plan = self._plan(record, ref_sequences)
            plans.append(plan)
            for alt_plan in plan:
                jobs.extend(alt_plan.jobs)
        scored = self.scorer.score(jobs) if jobs else []
        by_job = {id(job): values for job, values in zip(jobs, scored)}

        lines, rows = [], []
        for record, plan in zip(records, plans):
            result.n_records += 1
            entries: list[tuple[str, str]] = []
            if plan and plan[0].reason != "unknown_chrom":
                result.ref_checked += 1
                result.ref_mismatched += plan[0].reason in REF_MISMATCH_REASONS
            if not record.alts:
                result.skipped["no_alt"] += 1
                entries.append((SKIPPED_ID, "no_alt"))
                rows.append(self._row(record, None, None, "no_alt", None))
            else:
                result.n_alleles += len(record.alts)
                per_alt: list[dict[str, np.ndarray] | None] = []
                for index, alt_plan in enumerate(plan):
                    if alt_plan.reason is not None:
                        result.skipped[alt_plan.reason] += 1
                        per_alt.append(None)
                        rows.append(self._row(record, index, None, alt_plan.reason, None))
                        continue
                    result.n_scored += 1
                    result.n_normalised += alt_plan.spelling is not None
                    per_alt.append(by_job[id(alt_plan.jobs[0])])
                    for rank, job in enumerate(alt_plan.jobs):
                        values = by_job[id(job)]
                        rows.append(self._row(record, index, job, None, values, nearest=rank == 0,
                                              normalised=alt_plan.spelled))
                        self._keep(record, index, job, values)
                if any(values is not None for values in per_alt):
                    for name, field_id in self.score_ids.items():
                        integer = name in INTEGER_SCORES
                        entries.append((field_id, ",".join(
                            "." if values is None else format_values(values[name], integer) for values in per_alt)))
                    if self.regions is not None:
                        entries.append((self.region_id, ",".join(
                            "." if alt_plan.reason is not None else _safe_id(alt_plan.jobs[0].window.region_id)
                            for alt_plan in plan)))
                if any(alt_plan.reason is not None for alt_plan in plan):
                    entries.append((SKIPPED_ID, ",".join(alt_plan.reason or "." for alt_plan in plan)))
                if any(alt_plan.spelling is not None for alt_plan in plan):
                    entries.append((NORMALISED_ID, ",".join(alt_plan.spelled or "." for alt_plan in plan)))
            fields = record.raw.split("\t")
            fields[7] = replace_info(fields[7], entries, self.field_ids)
            lines.append("\t".join(fields) + "\n")
        self._forget_passed(records[-1])
        release_freed_memory()   # the resident set stays one chunk's over a whole VCF (inference.py)
        return lines, rows

    def _forget_passed(self, last: VcfRecord) -> None:
        """Let the window cache drop what the rest of a sorted VCF cannot use (memory flat over the whole file)."""
        cache = getattr(self.scorer, "cache", None)
        if cache is not None and last.chrom in self.genome:
            # left-aligning an indel can move it left of POS: keep a margin of windows behind the last record
            cache.forget_passed(self.genome.resolve(last.chrom), last.pos - 1 - LEFT_ALIGN_MARGIN)

    def _plan(self, record: VcfRecord, ref_sequences: dict[Any, str]) -> list[AltPlan]:
        check_letters(record)  # junk letters: an error naming file and line
        if not record.alts:
            return []
        chrom, reason = check_ref(record, self.genome)
        if reason is not None:
            return [AltPlan(reason) for _ in record.alts]
        plan: list[AltPlan] = []
        for reason, allele, spelling in alleles_of(record, chrom, self.genome):
            if reason is not None:
                plan.append(AltPlan(reason))
                continue
            if self.regions is None:
                if len(allele.ref) > self.spec.sequence_length:
                    plan.append(AltPlan("too_long"))
                    continue
                windows = [centred_window(allele, self.spec)]
            else:
                windows = self.regions.holding(allele)
                if not windows:
                    plan.append(AltPlan("outside_regions"))
                    continue
            plan.append(AltPlan(None, [self._job(allele, window, ref_sequences) for window in windows], spelling))
        return plan

    def _job(self, allele: Allele, window: Window, ref_sequences: dict[Any, str]) -> Job:
        ref = ref_sequences.get(window.key)
        if ref is None:
            ref = self.genome.fetch(window.chrom, window.start, window.end, strand=window.strand)
            ref_sequences[window.key] = ref
        return Job(allele, window, ref, alt_sequence(self.genome, window, ref, allele),
                   variant_index(window, allele))

    # ---- outputs -----------------------------------------------------------------------------------------------
    def _row(self, record: VcfRecord, alt_index: int | None, job: Job | None, reason: str | None,
             values: dict[str, np.ndarray] | None, nearest: bool = True, normalised: str | None = None
             ) -> dict[str, Any]:
        row: dict[str, Any] = {"chrom": record.chrom, "pos": record.pos, "id": record.id, "ref": record.ref,
                               "alt": record.alts[alt_index] if alt_index is not None else ".",
                               "alt_index": alt_index + 1 if alt_index is not None else None,
                               "skipped": reason or "", "normalised": normalised or ""}
        if self.regions is not None:
            row["region"] = job.window.region_id if job is not None else None
            row["nearest_region"] = nearest if job is not None else None
        if values is not None:
            for name in self.names:
                for label, value in zip(self.labels, np.ravel(values[name])):
                    row[f"{name}:{label}"] = (int(value) if name in INTEGER_SCORES and np.isfinite(value)
                                              else float(value))
        return row

    def _keep(self, record: VcfRecord, alt_index: int, job: Job, values: dict[str, np.ndarray]) -> None:
        if not self.keep_predictions:
            return
        self.kept_index.append(f"{record.chrom}:{record.pos}:{record.ref}:{record.alts[alt_index]}")
        self.kept_regions.append(job.window.region_id)
        for name in self.names:
            self.kept[name].append(np.ravel(values[name]))

    def prediction_frames(self) -> dict[str, Any]:
        import pandas as pd

        frames = {}
        for name in self.names:
            data = np.array(self.kept[name]).reshape(len(self.kept_index), len(self.labels))
            frame = pd.DataFrame(data, index=pd.Index(self.kept_index, name="variant"), columns=self.labels)
            if self.regions is not None:
                frame["region"] = self.kept_regions
            frames[name] = frame
        return frames

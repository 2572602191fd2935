"""The GENA-LM pretraining corpus: genome (and haplotype) sequence cut into documents of sentences.

The published recipe (docs/gena-lm-reference.md, "Pretraining corpus"), and how it is implemented here:

* A **document** is a contiguous stretch of one sequence, made of 50-100 consecutive **sentences** of random
  length 500-1000 bp. Documents are tiled along the sequence: the next document starts where the previous one
  ended. Tiling starts at a random offset of 0-5 kb, drawn anew in each of the 10 **passes**, so that sentence
  and document boundaries differ between passes.
* Both strands: every document is written once as read on '+' and once reverse-complemented ('-'). The '-'
  document holds the same bases: its sentences are the reverse complements of the '+' sentences, in reverse
  order, so that joining them gives the reverse complement of the '+' document.
* FASTA sequences shorter than `min_contig_length` (10 kb) and mitochondria (MT/chrM/...) are left out; the
  user can exclude more, or name the only contigs to use. Everything is upper case.
* **N runs.** As in the published pipeline (which cut chromosomes into gap-free contigs first), a run of at
  least `split_n_run_bp` N (default 50; assembly gaps) splits a sequence into **stretches**: documents never
  span such a run, the last document and the last sentence of a stretch may be shorter (a final sentence
  shorter than the minimum sentence length is dropped), stretches shorter than `min_stretch_bp` (10 kb) are
  skipped, and each stretch starts at its own random 0-5 kb offset. Shorter N runs stay inside sentences; a
  sentence with more than `max_n_fraction` (50%) N is skipped, and the document ends there (documents stay
  contiguous) and a new one starts after the skipped sentence. With `split_n_run_bp=None` nothing is split
  and only the sentence rule applies.
* **Population variants.** With a VCF, every selected sample gives two haplotypes: the reference with that
  haplotype's alleles applied (SNVs, MNVs, insertions and deletions; any REF/ALT pair is applied as "replace
  the REF bases by the ALT bases"). Each haplotype is tiled like the reference, on both strands. Decisions:
    - Phased `0|1` genotypes give haplotype 1 (first allele) and 2 (second). Unphased `0/1` genotypes whose
      two alleles differ are, by default, taken as phased in the order written (`unphased="as_phased"`, and
      counted); `"skip"` leaves both haplotypes on the reference there, `"error"` stops.
    - A haploid genotype (`1`) is applied to haplotype 1 only; a missing allele (`.`) is the reference;
      symbolic (`<DEL>`), `*` and breakend alleles are not applied. All are counted.
    - REF must match the FASTA: a mismatch raises GenomeError naming the VCF file and line (or, with
      `ref_mismatch="skip"`, the record is dropped and counted). This is checked for all variants before any
      output is written.
    - Overlapping variants on one haplotype: the first (lowest position, then file order) is kept and later
      ones overlapping it are skipped and counted.
* Nothing loads a whole chromosome as one string: sequence is read in `read_chunk_bp` windows with
  `Genome.fetch`, and haplotype sequence is produced window by window by applying that window's variants
  (`apply_variants`), so memory stays at a few windows whatever the chromosome size.

Output (folder `output_dir`): shards `shard_00000.jsonl` (or `.jsonl.gz`), each written atomically, holding
`documents_per_shard` documents, one JSON object per line::

    {"contig": "20", "strand": "+", "start": 60123, "end": 118456, "haplotype": null, "pass": 0,
     "sentences": ["ACGT...", ...]}

`start`/`end` are 0-based, half-open reference coordinates of the bases the document covers; `pass` counts
from 0; `haplotype` is null for the reference and `"SAMPLE:1"` / `"SAMPLE:2"` for a sample's haplotypes, whose
documents also carry `hap_start`/`hap_end`, the span on that haplotype's own sequence (with indels the two
spans differ in length). Documents are written pass by pass (each pass covers all contigs and haplotypes), so
the first shards already hold one full pass. `manifest.json`, written last, lists the shards with their
document, sentence and bp counts, the skipped counts, a bp accounting, and the config. A folder without a
manifest is an unfinished build, and the readers refuse it.

The output is a function of the config and the seed alone: the same inputs give byte-identical shards.
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import dataclasses
import gzip
import json
import logging
import os
import random
import re
import sys
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Generator, Iterable, Iterator, NamedTuple, Optional, Sequence, Union

from genalm_models.genome import Genome, GenomeError, VcfReader, parse_genotype, read_bed, reverse_complement
from genalm_models.genome.intervals import merge_intervals
from genalm_models.genome.names import MITOCHONDRIAL, canonical_chrom, chrom_spellings
from genalm_models.genome.variants import apply_variants  # noqa: F401  (the one applier; re-exported here)
from genalm_models.io_utils import atomic_write

logger = logging.getLogger(__name__)

PathLike = Union[str, "os.PathLike[str]"]

FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
OUTPUT_FORMATS = ("jsonl", "jsonl.gz")
UNPHASED_MODES = ("as_phased", "skip", "error")
REF_MISMATCH_MODES = ("error", "skip")
_SHARD_NAME = re.compile(r"shard_[0-9]{5,}\.jsonl(\.gz)?")
# The temporary files atomic_write leaves only when a process is killed mid-write.
_LEFTOVER_TEMPORARY = re.compile(r"\.(shard_[0-9]{5,}\.jsonl(\.gz)?|manifest\.json)\..+\.tmp")


class CorpusError(ValueError):
    """A bad corpus config, an output folder that cannot be used, or an unreadable corpus on disk."""


# ---------------------------------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------------------------------


@dataclass
class CorpusConfig:
    """Everything that decides a corpus; the defaults are the published GENA-LM recipe."""

    fasta_paths: list[str]
    output_dir: str
    passes: int = 10
    sentences_per_document: tuple[int, int] = (50, 100)  # inclusive range, drawn per document
    sentence_bp: tuple[int, int] = (500, 1000)  # inclusive range, drawn per sentence
    max_start_offset: int = 5000  # each stretch starts at a random offset in [0, max_start_offset]
    min_contig_length: int = 10_000  # shorter FASTA sequences are left out
    contigs: Optional[list[str]] = None  # use only these (None: all); `chr20` and `20` are the same contig
    exclude_contigs: list[str] = field(default_factory=list)  # left out, in addition to mitochondria
    exclude_mitochondria: bool = True
    both_strands: bool = True
    max_n_fraction: float = 0.5  # sentences with more N than this are skipped
    split_n_run_bp: Optional[int] = 50  # N runs at least this long split stretches; None: never split
    min_stretch_bp: int = 10_000  # stretches between split N runs shorter than this are skipped
    vcf_path: Optional[str] = None
    samples: Optional[list[str]] = None  # VCF samples to use (None: all of them)
    include_reference: bool = True  # also emit the reference itself when a VCF is given
    unphased: str = "as_phased"  # heterozygous '/' genotypes: "as_phased", "skip" or "error"
    ref_mismatch: str = "error"  # VCF REF differing from the FASTA: "error" or "skip"
    documents_per_shard: int = 1000
    seed: int = 0
    output_format: str = "jsonl"  # "jsonl" or "jsonl.gz"
    overwrite: bool = False  # replace a previous corpus in output_dir
    read_chunk_bp: int = 1_000_000  # how much sequence is read from the FASTA at a time
    # BED of regions masked with N before tiling (e.g. a task's held-out test regions, so that pretraining never
    # sees them); variants inside them are not applied. The N runs then split stretches like assembly gaps.
    exclude_regions: Optional[str] = None

    def __post_init__(self) -> None:
        # Accept what JSON/YAML/argparse give (a single path, lists for ranges) and normalise it.
        if isinstance(self.fasta_paths, (str, os.PathLike)):
            self.fasta_paths = [self.fasta_paths]
        self.fasta_paths = [str(path) for path in self.fasta_paths]
        self.output_dir = str(self.output_dir)
        self.sentences_per_document = _int_range(self.sentences_per_document, "sentences_per_document")
        self.sentence_bp = _int_range(self.sentence_bp, "sentence_bp")
        if self.vcf_path is not None:
            self.vcf_path = str(self.vcf_path)
        if self.exclude_regions is not None:
            self.exclude_regions = str(self.exclude_regions)
        if self.contigs is not None:
            self.contigs = [str(name) for name in self.contigs]
        self.exclude_contigs = [str(name) for name in self.exclude_contigs]
        if self.samples is not None:
            self.samples = [str(name) for name in self.samples]
        self.validate()

    def validate(self) -> None:
        problems = []
        if not self.fasta_paths:
            problems.append("fasta_paths is empty")
        if not self.output_dir:
            problems.append("output_dir is empty")
        for name in ("passes", "documents_per_shard", "read_chunk_bp"):
            if _not_int(getattr(self, name)) or getattr(self, name) < 1:
                problems.append(f"{name} must be an integer >= 1, got {getattr(self, name)!r}")
        for name in ("max_start_offset", "min_contig_length", "min_stretch_bp", "seed"):
            if _not_int(getattr(self, name)) or getattr(self, name) < 0:
                problems.append(f"{name} must be an integer >= 0, got {getattr(self, name)!r}")
        if not 0.0 <= float(self.max_n_fraction) <= 1.0:
            problems.append(f"max_n_fraction must be in [0, 1], got {self.max_n_fraction!r}")
        if self.split_n_run_bp is not None and (_not_int(self.split_n_run_bp) or self.split_n_run_bp < 1):
            problems.append(f"split_n_run_bp must be an integer >= 1 or None, got {self.split_n_run_bp!r}")
        if self.output_format not in OUTPUT_FORMATS:
            problems.append(f"output_format must be one of {OUTPUT_FORMATS}, got {self.output_format!r}")
        if self.unphased not in UNPHASED_MODES:
            problems.append(f"unphased must be one of {UNPHASED_MODES}, got {self.unphased!r}")
        if self.ref_mismatch not in REF_MISMATCH_MODES:
            problems.append(f"ref_mismatch must be one of {REF_MISMATCH_MODES}, got {self.ref_mismatch!r}")
        if self.samples is not None and self.vcf_path is None:
            problems.append("samples are given but no vcf_path")
        if self.vcf_path is not None and self.samples is not None and not self.samples:
            problems.append("samples is an empty list (use None for all samples of the VCF)")
        if not self.include_reference and self.vcf_path is None:
            problems.append("include_reference=False and no VCF: there would be nothing to write")
        if problems:
            raise CorpusError("invalid corpus config: " + "; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready copy (ranges as lists)."""
        result = dataclasses.asdict(self)
        result["sentences_per_document"] = list(self.sentences_per_document)
        result["sentence_bp"] = list(self.sentence_bp)
        return result


def _not_int(value: Any) -> bool:
    return not isinstance(value, int) or isinstance(value, bool)


def _int_range(value: Any, name: str) -> tuple[int, int]:
    try:
        low, high = value
    except (TypeError, ValueError):
        raise CorpusError(f"invalid corpus config: {name} must be a pair (min, max), got {value!r}") from None
    if _not_int(low) or _not_int(high) or not 1 <= low <= high:
        raise CorpusError(f"invalid corpus config: {name} must be integers 1 <= min <= max, got {value!r}")
    return (low, high)


# ---------------------------------------------------------------------------------------------------
# Variants and haplotypes
# ---------------------------------------------------------------------------------------------------


class Variant(NamedTuple):
    """One allele to apply: REF bases at 0-based `start` replaced by `alt`. `line`: its VCF line, if any."""

    start: int
    ref: str
    alt: str
    line: Optional[int] = None

    @property
    def end(self) -> int:
        return self.start + len(self.ref)


class Haplotype:
    """The variants of one haplotype on one contig, non-overlapping and sorted, with coordinate maps.

    Haplotype coordinates are positions on the haplotype's own sequence; `to_reference` maps them back.
    """

    def __init__(self, label: str, contig: str, reference_length: int, variants: Sequence[Variant]):
        self.label = label
        self.contig = contig
        self.reference_length = reference_length
        self.starts = [variant.start for variant in variants]
        self.ends = [variant.end for variant in variants]
        self.refs = [variant.ref for variant in variants]
        self.alts = [variant.alt for variant in variants]
        self.hap_starts = []  # where each variant's ALT allele starts on the haplotype
        shift = 0
        for variant in variants:
            self.hap_starts.append(variant.start + shift)
            shift += len(variant.alt) - len(variant.ref)
        self.length = reference_length + shift

    def __len__(self) -> int:
        return len(self.starts)

    def to_reference(self, hap_position: int) -> int:
        """The reference position a haplotype position derives from (works for half-open ends too).

        Inside an ALT allele, position k of the allele maps to REF base k (or just past REF when the allele
        is longer), so the map never decreases.
        """
        index = bisect.bisect_right(self.hap_starts, hap_position) - 1
        if index < 0:
            return hap_position
        into_allele = hap_position - self.hap_starts[index]
        ref_length = self.ends[index] - self.starts[index]
        if into_allele < len(self.alts[index]):
            return self.starts[index] + min(into_allele, ref_length)
        return self.ends[index] + into_allele - len(self.alts[index])

    def chunks(self, genome: Genome, chunk_bp: int) -> Iterator[str]:
        """The haplotype sequence, window by window (their concatenation is the whole haplotype)."""
        first_variant = 0
        window_start = 0
        while window_start < self.reference_length:
            window_end = min(self.reference_length, window_start + chunk_bp)
            after_window = bisect.bisect_left(self.starts, window_end, lo=first_variant)
            # A variant starting in this window but ending past it would be cut in two: widen the window to
            # its end. Only the last one can, as variants do not overlap.
            if after_window > first_variant and self.ends[after_window - 1] > window_end:
                window_end = self.ends[after_window - 1]
            reference = genome.fetch(self.contig, window_start, window_end)
            yield apply_variants(
                reference,
                window_start,
                zip(
                    self.starts[first_variant:after_window],
                    self.refs[first_variant:after_window],
                    self.alts[first_variant:after_window],
                ),
            )
            first_variant = after_window
            window_start = window_end


def _is_applicable_allele(allele: str) -> bool:
    """Plain bases only: symbolic `<DEL>`, the spanning-deletion `*` and breakends are not sequence."""
    return allele.isalpha()


def _load_haplotypes(
    vcf_path: PathLike,
    contigs: dict[str, "_ContigPlan"],
    samples: Optional[Sequence[str]] = None,
    unphased: str = "as_phased",
    ref_mismatch: str = "error",
    chunk_bp: int = 1_000_000,
    counts: Optional[dict[str, int]] = None,
) -> dict[str, list[Haplotype]]:
    """Read a VCF and build each selected sample's two haplotypes on each contig in `contigs`.

    Returns contig name -> haplotypes, in sample order (`SAMPLE:1`, `SAMPLE:2`, ...). `counts` (optional)
    receives the numbers of unphased, haploid, missing, unsupported, overlapping, mismatching and
    off-contig calls. REF alleles are checked against the FASTA before anything is returned.
    """
    counts = counts if counts is not None else {}
    for key in (
        "vcf_records",
        "vcf_records_on_other_contigs",
        "unphased_genotypes",
        "haploid_genotypes",
        "missing_alleles",
        "unsupported_alleles",
        "ref_mismatch_records_skipped",
        "overlapping_variants_skipped",
        "variants_applied",
    ):
        counts.setdefault(key, 0)
    # VCF names may use the other convention (chr20 vs 20): map every spelling to the planned contig.
    contig_by_name: dict[str, str] = {}
    for name in contigs:
        for spelling in [name, *chrom_spellings(name)]:
            contig_by_name.setdefault(spelling, name)

    with VcfReader(vcf_path) as reader:
        vcf = reader.path
        if not reader.samples:
            raise GenomeError(f"{vcf}: the VCF has no sample columns, so there are no haplotypes to build")
        if samples is None:
            samples = list(reader.samples)
        missing = [name for name in samples if name not in reader.samples]
        if missing:
            shown = ", ".join(reader.samples[:10]) + (" ..." if len(reader.samples) > 10 else "")
            raise GenomeError(f"{vcf}: sample(s) {', '.join(missing)} not in the VCF; it has: {shown}")
        if len(set(samples)) != len(samples):
            raise GenomeError(f"{vcf}: a sample is listed twice in {list(samples)}")
        columns = [reader.samples.index(name) for name in samples]
        # raw[contig][sample_number][haplotype_number] -> variants in file order
        raw: dict[str, list[list[list[Variant]]]] = {
            name: [[[], []] for _ in samples] for name in contigs
        }
        for record in reader:
            counts["vcf_records"] += 1
            contig = contig_by_name.get(record.chrom)
            if contig is None:
                counts["vcf_records_on_other_contigs"] += 1
                continue
            where = f"{vcf}:{record.line}"
            keys = (record.format or "").split(":")
            if "GT" not in keys:
                raise GenomeError(f"{where}: FORMAT {record.format!r} has no GT field")
            gt_index = keys.index("GT")
            ref = record.ref.upper()
            for sample_number, column in enumerate(columns):
                values = record.samples[column].split(":")
                text = values[gt_index] if gt_index < len(values) else "."
                try:
                    genotype = parse_genotype(text)
                except GenomeError as exc:
                    raise GenomeError(f"{where}: sample {samples[sample_number]}: {exc}") from None
                alleles = genotype.alleles
                if len(alleles) > 2:
                    raise GenomeError(
                        f"{where}: sample {samples[sample_number]}: GT {text!r} has {len(alleles)} alleles; "
                        f"only haploid and diploid genotypes are supported"
                    )
                if len(alleles) == 1:
                    if alleles[0]:
                        counts["haploid_genotypes"] += 1
                elif not genotype.phased and alleles[0] != alleles[1]:
                    counts["unphased_genotypes"] += 1
                    if unphased == "error":
                        raise GenomeError(
                            f"{where}: sample {samples[sample_number]}: unphased heterozygous GT {text!r} "
                            f"(unphased='error')"
                        )
                    if unphased == "skip":
                        continue
                for haplotype_number, allele in enumerate(alleles):
                    if allele is None:
                        counts["missing_alleles"] += 1
                        continue
                    if allele == 0:
                        continue
                    if allele > len(record.alts):
                        raise GenomeError(
                            f"{where}: sample {samples[sample_number]}: allele {allele} in GT {text!r} but "
                            f"only {len(record.alts)} ALT allele(s)"
                        )
                    alt = record.alts[allele - 1]
                    if not _is_applicable_allele(alt):
                        counts["unsupported_alleles"] += 1
                        continue
                    raw[contig][sample_number][haplotype_number].append(
                        Variant(record.start, ref, alt.upper(), record.line)
                    )

    result: dict[str, list[Haplotype]] = {}
    for contig, per_sample in raw.items():
        plan = contigs[contig]
        bad_lines = _check_reference_alleles(
            plan.genome, contig, plan.length, per_sample, vcf, ref_mismatch, chunk_bp
        )
        counts["ref_mismatch_records_skipped"] += len(bad_lines)
        haplotypes = []
        for sample_number, per_haplotype in enumerate(per_sample):
            for haplotype_number, variants in enumerate(per_haplotype):
                kept = _without_overlaps([v for v in variants if v.line not in bad_lines], counts)
                counts["variants_applied"] += len(kept)
                label = f"{samples[sample_number]}:{haplotype_number + 1}"
                haplotypes.append(Haplotype(label, contig, plan.length, kept))
        result[contig] = haplotypes
    return result


def _without_overlaps(variants: list[Variant], counts: dict[str, int]) -> list[Variant]:
    """Sorted by position (ties: file order); a variant overlapping an earlier kept one is dropped."""
    kept: list[Variant] = []
    kept_until = -1
    for variant in sorted(variants, key=lambda v: (v.start, v.line if v.line is not None else 0)):
        if variant.start < kept_until:
            counts["overlapping_variants_skipped"] += 1
            continue
        kept.append(variant)
        kept_until = variant.end
    return kept


def _check_reference_alleles(
    genome: Genome,
    contig: str,
    length: int,
    per_sample: list[list[list[Variant]]],
    vcf: Path,
    ref_mismatch: str,
    chunk_bp: int,
) -> set[int]:
    """Compare every distinct REF with the FASTA, streaming the contig; returns the VCF lines that differ."""
    distinct = sorted(
        {(v.start, v.ref, v.line) for per_haplotype in per_sample for variants in per_haplotype for v in variants}
    )
    bad_lines: set[int] = set()
    window_start, window = 0, ""
    for start, ref, line in distinct:
        end = start + len(ref)
        if end > length:
            found = None
        else:
            if start >= window_start + len(window):
                window_start = start
                window = genome.fetch(contig, start, min(length, start + chunk_bp))
            if end <= window_start + len(window):
                found = window[start - window_start : end - window_start]
            else:  # a REF straddling the window end (rare): read it on its own
                found = genome.fetch(contig, start, end)
        if found == ref:
            continue
        if ref_mismatch == "error":
            if found is None:
                problem = f"runs past the end of {contig} (length {length})"
            else:
                problem = f"is {found!r} in the FASTA {genome.path}"
            raise GenomeError(
                f"{vcf}:{line}: REF {ref!r} does not match the reference: {contig}:{start + 1} "
                f"(1-based) {problem}"
            )
        bad_lines.add(line)
    return bad_lines


# ---------------------------------------------------------------------------------------------------
# Tiling a sequence stream into documents
# ---------------------------------------------------------------------------------------------------


class _SequenceWindow:
    """A forward-only view of a sequence that arrives in chunks; keeps only what is still needed.

    Positions are absolute (0 = first base of the sequence). `text[0]` is at `offset`.
    """

    def __init__(self, chunks: Iterable[str]):
        self._chunks = iter(chunks)
        self.text = ""
        self.offset = 0
        self.exhausted = False
        self._release_before = 0
        self._content_end: Optional[int] = None

    @property
    def end(self) -> int:
        """One past the last base read so far (the sequence length once `exhausted`)."""
        return self.offset + len(self.text)

    def release_before(self, position: int) -> None:
        """Bases before `position` will not be asked for again."""
        self._release_before = max(self._release_before, position)

    def fill_to(self, position: int) -> None:
        """Read until `position` is covered (or the sequence ends)."""
        while not self.exhausted and self.end < position:
            chunk = next(self._chunks, None)
            if chunk is None:
                self.exhausted = True
                break
            # Drop the released prefix while appending: each base is copied a bounded number of times.
            drop = min(max(0, self._release_before - self.offset), len(self.text))
            self.text = self.text[drop:] + chunk
            self.offset += drop

    def content_end(self) -> Optional[int]:
        """Where the N at the very end of the sequence begin (its length if none); None until the end is read."""
        if not self.exhausted:
            return None
        if self._content_end is None:
            self._content_end = self.offset + len(self.text.rstrip("N"))
        return self._content_end

    def find_base(self, position: int) -> Optional[int]:
        """The first position >= `position` that is not N, or None when only N follows."""
        while True:
            self.fill_to(position + 1)
            match = _NOT_N.search(self.text, max(0, position - self.offset))
            if match is not None:
                return self.offset + match.start()
            if self.exhausted:
                return None
            position = self.end
            self.release_before(position)


_NOT_N = re.compile("[^N]")


@dataclass
class _TileCounts:
    """Where every base of a tiled sequence went; the bp fields add up to the sequence length."""

    document_bp: int = 0
    n_run_bp: int = 0  # in N runs that split stretches (and N at either end of the sequence)
    short_stretch_bp: int = 0  # in stretches shorter than min_stretch_bp
    short_stretches: int = 0
    offset_bp: int = 0  # before the random start of each stretch
    mostly_n_sentences: int = 0
    mostly_n_sentence_bp: int = 0
    dropped_tail_bp: int = 0  # stretch ends too short to make a sentence

    def add(self, other: "_TileCounts") -> None:
        for item in dataclasses.fields(self):
            setattr(self, item.name, getattr(self, item.name) + getattr(other, item.name))


def _tile_documents(
    chunks: Iterable[str], rng: random.Random, config: CorpusConfig, counts: _TileCounts
) -> Iterator[tuple[int, list[str]]]:
    """Cut one sequence (given as chunks) into documents: yields `(start, sentences)` on the '+' strand."""
    window = _SequenceWindow(chunks)
    split_run = config.split_n_run_bp
    long_n_run = re.compile(f"N{{{split_run}}}") if split_run else None
    position = 0
    while True:
        if long_n_run is None:
            stretch_start = 0  # without splitting, the whole sequence is one stretch
        else:
            base = window.find_base(position)
            if base is None:
                window.fill_to(sys.maxsize)
                counts.n_run_bp += window.end - position
                return
            counts.n_run_bp += base - position
            stretch_start = base
            # A stretch must reach min_stretch_bp before the next splitting N run (or the sequence end).
            run = _find_run(window, long_n_run, stretch_start, stretch_start + config.min_stretch_bp, split_run)
            window.fill_to(stretch_start + config.min_stretch_bp)
            stretch_end = run if run is not None else (window.end if window.exhausted else None)
            if stretch_end is not None and stretch_end - stretch_start < config.min_stretch_bp:
                counts.short_stretches += 1
                counts.short_stretch_bp += stretch_end - stretch_start
                position = stretch_end
                continue
        offset = rng.randint(0, config.max_start_offset)
        tile_start = stretch_start + offset
        window.fill_to(tile_start)
        if window.exhausted:
            tile_start = min(tile_start, window.end)
        if long_n_run is not None:
            # Only when max_start_offset >= min_stretch_bp can the offset jump over a splitting run.
            run = _find_run(window, long_n_run, stretch_start, tile_start, split_run)
            if run is not None:
                counts.offset_bp += run - stretch_start
                position = run
                continue
        counts.offset_bp += tile_start - stretch_start
        stretch_end = yield from _tile_stretch(window, tile_start, rng, config, long_n_run, counts)
        if stretch_end is None:
            return
        position = stretch_end


def _find_run(
    window: _SequenceWindow, long_n_run: re.Pattern, start: int, end: int, run_length: int
) -> Optional[int]:
    """Where the first splitting N run that begins in [start, end) begins, or None."""
    if end <= start:
        return None
    window.fill_to(end + run_length - 1)
    low = start - window.offset
    match = long_n_run.search(window.text, low, end - window.offset + run_length - 1)
    if match is None or match.start() >= end - window.offset:
        return None
    return window.offset + match.start()


def _tile_stretch(
    window: _SequenceWindow,
    position: int,
    rng: random.Random,
    config: CorpusConfig,
    long_n_run: Optional[re.Pattern],
    counts: _TileCounts,
) -> Generator[tuple[int, list[str]], None, Optional[int]]:
    """Tile sentences from `position` until a splitting N run (returned) or the sequence end (None)."""
    min_sentence, max_sentence = config.sentence_bp
    min_sentences, max_sentences = config.sentences_per_document
    run_length = config.split_n_run_bp or 0
    max_n_fraction = config.max_n_fraction
    sentences: list[str] = []
    document_start = position
    sentences_wanted = rng.randint(min_sentences, max_sentences)
    while True:
        length = rng.randint(min_sentence, max_sentence)
        window.release_before(position)
        window.fill_to(position + length + run_length)
        text, low = window.text, position - window.offset
        stretch_end = None
        available = min(length, window.end - position)
        if available < length:
            stretch_end = window.end  # the sequence ends inside this sentence
        if long_n_run is not None and text.find("N", low, low + available) >= 0:
            match = long_n_run.search(text, low, low + available + run_length - 1)
            if match is not None and match.start() < low + available:
                available = match.start() - low
                stretch_end = position + available
            elif window.exhausted and window.content_end() < position + available:
                # N at the end of the sequence are a gap like a splitting run, however short.
                available = max(0, window.content_end() - position)
                stretch_end = position + available
        length = available

        if stretch_end is not None and length < min_sentence:
            counts.dropped_tail_bp += length
        elif text.count("N", low, low + length) > max_n_fraction * length:
            # Skipping a sentence ends the document, so that every document stays contiguous.
            counts.mostly_n_sentences += 1
            counts.mostly_n_sentence_bp += length
            if sentences:
                yield document_start, sentences
            sentences = []
            document_start = position + length
            sentences_wanted = rng.randint(min_sentences, max_sentences)
        else:
            sentences.append(text[low : low + length])
        position += length

        if stretch_end is not None:
            if sentences:
                yield document_start, sentences
            return stretch_end if not (window.exhausted and stretch_end >= window.end) else None
        if len(sentences) == sentences_wanted:
            yield document_start, sentences
            sentences = []
            document_start = position
            sentences_wanted = rng.randint(min_sentences, max_sentences)


# ---------------------------------------------------------------------------------------------------
# Choosing contigs
# ---------------------------------------------------------------------------------------------------


@dataclass
class _ContigPlan:
    """A FASTA sequence that will be tiled."""

    genome: Genome
    fasta_index: int
    name: str
    length: int


def _plan_contigs(genomes: list[Genome], config: CorpusConfig, skipped: dict[str, Any]) -> list[_ContigPlan]:
    """The contigs to tile, in FASTA order, after the include/exclude lists and the length minimum."""
    wanted = None if config.contigs is None else {canonical_chrom(name) for name in config.contigs}
    excluded = {canonical_chrom(name) for name in config.exclude_contigs}
    if config.exclude_mitochondria:
        excluded.add(MITOCHONDRIAL)
    found: set[str] = set()
    plans = []
    for fasta_index, genome in enumerate(genomes):
        for name, length in genome.contig_lengths.items():
            key = canonical_chrom(name)
            if wanted is not None and key not in wanted:
                continue
            found.add(key)
            if key in excluded:
                skipped["contigs_excluded"].append(name)
                continue
            if length < config.min_contig_length:
                skipped["contigs_too_short"] += 1
                skipped["bp_in_contigs_too_short"] += length
                continue
            plans.append(_ContigPlan(genome, fasta_index, name, length))
    if wanted is not None:
        absent = [name for name in config.contigs if canonical_chrom(name) not in found]
        if absent:
            raise CorpusError(
                f"contig(s) {', '.join(absent)} requested but not in any of {', '.join(config.fasta_paths)}"
            )
    return plans


# ---------------------------------------------------------------------------------------------------
# Writing shards
# ---------------------------------------------------------------------------------------------------


def _shard_name(index: int, output_format: str) -> str:
    return f"shard_{index:05d}.{output_format}"


class _ShardWriter:
    """Writes documents into numbered shards of `documents_per_shard`; each shard appears atomically."""

    def __init__(self, folder: Path, documents_per_shard: int, output_format: str):
        self.folder = folder
        self.documents_per_shard = documents_per_shard
        self.output_format = output_format
        self.shards: list[dict[str, Any]] = []  # the finished ones
        self._context = None  # the atomic_write context of the open shard
        self._file: Optional[IO[bytes]] = None  # its temporary file
        self._stream: Optional[IO[bytes]] = None  # what documents are written to: the file or a gzip layer on it
        self._current: dict[str, Any] = {}

    def write(self, document: dict[str, Any], bp: int) -> None:
        if self._stream is None:
            self._open()
        self._stream.write(json.dumps(document, separators=(",", ":")).encode("ascii"))
        self._stream.write(b"\n")
        self._current["documents"] += 1
        self._current["sentences"] += len(document["sentences"])
        self._current["bp"] += bp
        if self._current["documents"] == self.documents_per_shard:
            self._commit()

    def _open(self) -> None:
        name = _shard_name(len(self.shards), self.output_format)
        self._context = atomic_write(self.folder / name, "wb")
        self._file = self._context.__enter__()
        if self.output_format == "jsonl.gz":
            # No file name and a zero time stamp in the gzip header, so equal content gives equal bytes.
            self._stream = gzip.GzipFile(filename="", mode="wb", fileobj=self._file, compresslevel=1, mtime=0)
        else:
            self._stream = self._file
        self._current = {"file": name, "documents": 0, "sentences": 0, "bp": 0}

    def _commit(self) -> None:
        if self._stream is not self._file:
            self._stream.close()  # writes the gzip trailer; atomic_write closes and renames the file
        context = self._context
        self._context = self._file = self._stream = None
        context.__exit__(None, None, None)
        self.shards.append(self._current)

    def close(self) -> list[dict[str, Any]]:
        if self._stream is not None:
            self._commit()
        return self.shards

    def abort(self, error: BaseException) -> None:
        """Drop the open shard (atomic_write deletes its temporary file) and the shards already finished."""
        if self._context is not None:
            if self._stream is not self._file:
                with contextlib.suppress(Exception):  # the gzip layer: it must not write later, at collection
                    self._stream.close()
            context = self._context
            self._context = self._file = self._stream = None
            context.__exit__(type(error), error, error.__traceback__)
        for shard in self.shards:
            with contextlib.suppress(FileNotFoundError):
                (self.folder / shard["file"]).unlink()
        self.shards = []


def _prepare_output_dir(folder: Path, overwrite: bool) -> None:
    if folder.exists() and not folder.is_dir():
        raise CorpusError(f"output_dir {folder} exists and is not a folder")
    folder.mkdir(parents=True, exist_ok=True)
    entries = sorted(entry.name for entry in folder.iterdir())
    if not entries:
        return
    if not overwrite:
        shown = ", ".join(entries[:5]) + (" ..." if len(entries) > 5 else "")
        raise CorpusError(
            f"output_dir {folder} is not empty ({shown}); choose an empty folder or pass overwrite=True"
        )
    # The manifest goes first: should the rebuild fail, no manifest is left pointing at a mix of shards.
    with contextlib.suppress(FileNotFoundError):
        (folder / MANIFEST_NAME).unlink()
    for name in entries:
        if _SHARD_NAME.fullmatch(name) or _LEFTOVER_TEMPORARY.fullmatch(name):
            (folder / name).unlink()


# ---------------------------------------------------------------------------------------------------
# Building
# ---------------------------------------------------------------------------------------------------


def _reference_chunks(genome: Genome, contig: str, length: int, chunk_bp: int) -> Iterator[str]:
    for start in range(0, length, chunk_bp):
        yield genome.fetch(contig, start, min(length, start + chunk_bp))


def _minus_strand_sentences(sentences: list[str]) -> list[str]:
    """The '-' strand of a document: reverse complement of the whole, cut at the mirrored boundaries."""
    whole = reverse_complement("".join(sentences))
    result, position = [], 0
    for sentence in reversed(sentences):
        result.append(whole[position : position + len(sentence)])
        position += len(sentence)
    return result


def build_corpus(config: CorpusConfig) -> dict[str, Any]:
    """Build the corpus described by `config` into `config.output_dir`; returns the manifest (plus timing).

    Raises CorpusError for a bad config or a non-empty output folder (unless `overwrite`), GenomeError for
    bad FASTA/VCF input (naming file and line). On any error the shards written so far are removed.
    """
    config.validate()
    began = time.perf_counter()
    output_dir = Path(config.output_dir)
    genomes = [Genome(path) for path in config.fasta_paths]
    try:
        skipped: dict[str, Any] = {"contigs_excluded": [], "contigs_too_short": 0, "bp_in_contigs_too_short": 0}
        plans = _plan_contigs(genomes, config, skipped)
        if not plans:
            raise CorpusError(
                f"no contig of {', '.join(config.fasta_paths)} is left to tile (min_contig_length="
                f"{config.min_contig_length}, excluded: {skipped['contigs_excluded']})"
            )
        variant_counts: dict[str, int] = {}
        haplotypes: dict[str, list[Haplotype]] = {}
        if config.vcf_path is not None:
            names = [plan.name for plan in plans]
            duplicated = sorted({name for name in names if names.count(name) > 1})
            if duplicated:
                raise CorpusError(
                    f"contig(s) {', '.join(duplicated)} appear in more than one FASTA file, so the VCF "
                    f"{config.vcf_path} cannot tell which one its variants belong to"
                )
            haplotypes = _load_haplotypes(
                config.vcf_path,
                {plan.name: plan for plan in plans},
                samples=config.samples,
                unphased=config.unphased,
                ref_mismatch=config.ref_mismatch,
                chunk_bp=config.read_chunk_bp,
                counts=variant_counts,
            )
        if config.exclude_regions is not None:
            masks = _read_exclusions(config.exclude_regions, plans)
            plans = [dataclasses.replace(plan, genome=_MaskedGenome(plan.genome, masks)) for plan in plans]
            haplotypes = {name: [_without_regions(hap, masks.get(name, [])) for hap in haps]
                          for name, haps in haplotypes.items()}
            skipped["excluded_region_bp"] = sum(end - start for spans in masks.values() for start, end in spans)
        # The output folder is touched only once every input has been checked.
        _prepare_output_dir(output_dir, config.overwrite)
        writer = _ShardWriter(output_dir, config.documents_per_shard, config.output_format)
        try:
            counts, source_bp = _write_documents(config, plans, haplotypes, writer)
            shards = writer.close()
        except BaseException as error:
            writer.abort(error)
            raise
    finally:
        for genome in genomes:
            genome.close()

    manifest = {
        "format_version": FORMAT_VERSION,
        "documents": sum(shard["documents"] for shard in shards),
        "sentences": sum(shard["sentences"] for shard in shards),
        "bp": sum(shard["bp"] for shard in shards),
        "shards": shards,
        "contigs": [
            {
                "name": plan.name,
                "fasta": config.fasta_paths[plan.fasta_index],
                "length": plan.length,
                "haplotypes": [
                    {"label": hap.label, "length": hap.length, "variants": len(hap)}
                    for hap in haplotypes.get(plan.name, [])
                ],
            }
            for plan in plans
        ],
        "skipped": {
            **skipped,
            "short_stretches": counts.short_stretches,
            "mostly_n_sentences": counts.mostly_n_sentences,
        },
        # Per pass and sequence, on the '+' strand: where each base went. The bp fields sum to source_bp.
        "accounting": {
            "source_bp": source_bp,
            "document_bp": counts.document_bp,
            "n_run_bp": counts.n_run_bp,
            "short_stretch_bp": counts.short_stretch_bp,
            "offset_bp": counts.offset_bp,
            "mostly_n_sentence_bp": counts.mostly_n_sentence_bp,
            "dropped_tail_bp": counts.dropped_tail_bp,
        },
        "variants": variant_counts,
        "config": config.to_dict(),
    }
    with atomic_write(output_dir / MANIFEST_NAME) as handle:
        json.dump(manifest, handle, indent=1)
        handle.write("\n")
    elapsed = time.perf_counter() - began
    logger.info(
        "corpus: %d documents, %d bp in %d shards, %.1f s (%.2f Mbp/s of source sequence)",
        manifest["documents"], manifest["bp"], len(shards), elapsed, source_bp / max(elapsed, 1e-9) / 1e6,
    )
    return {**manifest, "output_dir": str(output_dir), "elapsed_seconds": elapsed}


def _read_exclusions(bed_path: str, plans: list[_ContigPlan]) -> dict[str, list[tuple[int, int]]]:
    """Excluded spans per planned contig, merged and sorted (BED names may be `chr20` or `20`)."""
    by_canonical = {canonical_chrom(plan.name): plan.name for plan in plans}
    planned = []
    for interval in read_bed(bed_path):
        name = by_canonical.get(canonical_chrom(interval.chrom))
        if name is not None:
            planned.append((name, interval.start, interval.end))
    merged: dict[str, list[tuple[int, int]]] = {}
    for name, start, end in merge_intervals(planned):
        merged.setdefault(name, []).append((start, end))
    return merged


class _MaskedGenome:
    """A Genome whose excluded spans read as N (fetch by contig name and coordinates only)."""

    def __init__(self, genome: Genome, masks: dict[str, list[tuple[int, int]]]):
        self.genome, self.masks = genome, masks

    def fetch(self, contig: str, start: int, end: int) -> str:
        sequence = self.genome.fetch(contig, start, end)
        spans = self.masks.get(contig)
        if not spans:
            return sequence
        first = max(0, bisect.bisect_right([b for _, b in spans], start))
        pieces, cursor = [], start
        for span_start, span_end in spans[first:]:
            if span_start >= end:
                break
            a, b = max(span_start, start), min(span_end, end)
            if a < b:
                pieces.append(sequence[cursor - start: a - start])
                pieces.append("N" * (b - a))
                cursor = b
        pieces.append(sequence[cursor - start:])
        return "".join(pieces)


def _without_regions(haplotype: Haplotype, spans: list[tuple[int, int]]) -> Haplotype:
    """The haplotype minus its variants that touch an excluded span (their REF is masked with N)."""
    if not spans:
        return haplotype
    kept = []
    for start, end, ref, alt in zip(haplotype.starts, haplotype.ends, haplotype.refs, haplotype.alts):
        i = bisect.bisect_left([a for a, _ in spans], end) - 1  # the last span starting before the variant ends
        if not (i >= 0 and spans[i][1] > start):
            kept.append(Variant(start, ref, alt))
    return Haplotype(haplotype.label, haplotype.contig, haplotype.reference_length, kept)


def _write_documents(
    config: CorpusConfig,
    plans: list[_ContigPlan],
    haplotypes: dict[str, list[Haplotype]],
    writer: _ShardWriter,
) -> tuple[_TileCounts, int]:
    """Tile every (pass, contig, sequence) and write its documents; returns the counts and source bp."""
    total = _TileCounts()
    source_bp = 0
    for pass_number in range(config.passes):
        for plan in plans:
            sequences: list[Optional[Haplotype]] = [None] if config.include_reference else []
            sequences += haplotypes.get(plan.name, [])
            for haplotype in sequences:
                label = None if haplotype is None else haplotype.label
                # One generator per sequence and pass, keyed by name: a sequence's documents do not depend
                # on which other contigs or samples are in the corpus.
                rng = random.Random(f"{config.seed}|{pass_number}|{plan.fasta_index}|{plan.name}|{label}")
                if haplotype is None:
                    chunks = _reference_chunks(plan.genome, plan.name, plan.length, config.read_chunk_bp)
                    source_bp += plan.length
                else:
                    chunks = haplotype.chunks(plan.genome, config.read_chunk_bp)
                    source_bp += haplotype.length
                logger.info("corpus: pass %d, %s, %s", pass_number, plan.name, label or "reference")
                counts = _TileCounts()
                for start, sentences in _tile_documents(chunks, rng, config, counts):
                    bp = sum(len(sentence) for sentence in sentences)
                    end = start + bp
                    counts.document_bp += bp
                    document: dict[str, Any] = {"contig": plan.name, "strand": "+"}
                    if haplotype is None:
                        document.update(start=start, end=end, haplotype=None)
                    else:
                        document.update(
                            start=haplotype.to_reference(start),
                            end=haplotype.to_reference(end),
                            haplotype=label,
                            hap_start=start,
                            hap_end=end,
                        )
                    document["pass"] = pass_number
                    document["sentences"] = sentences
                    writer.write(document, bp)
                    if config.both_strands:
                        document["strand"] = "-"
                        document["sentences"] = _minus_strand_sentences(sentences)
                        writer.write(document, bp)
                total.add(counts)
    return total, source_bp


# ---------------------------------------------------------------------------------------------------
# Reading a corpus back
# ---------------------------------------------------------------------------------------------------


def read_corpus_manifest(corpus_dir: PathLike) -> dict[str, Any]:
    """The manifest of a finished corpus; CorpusError when it is missing or unreadable."""
    path = Path(corpus_dir) / MANIFEST_NAME
    if not Path(corpus_dir).is_dir():
        raise CorpusError(f"corpus folder not found: {corpus_dir}")
    if not path.is_file():
        raise CorpusError(f"{path} not found: {corpus_dir} is not a finished corpus (did build_corpus fail?)")
    try:
        with open(path, encoding="utf-8") as handle:
            manifest = json.load(handle)
    except json.JSONDecodeError as exc:
        raise CorpusError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg})") from None
    except UnicodeDecodeError as exc:
        raise CorpusError(f"{path}: not UTF-8 text ({exc.reason})") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("shards"), list):
        raise CorpusError(f"{path}: not a corpus manifest (no 'shards' list)")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise CorpusError(
            f"{path}: corpus format version {manifest.get('format_version')!r}, this code reads {FORMAT_VERSION}"
        )
    for number, shard in enumerate(manifest["shards"]):
        if (
            not isinstance(shard, dict)
            or not isinstance(shard.get("file"), str)
            or not _SHARD_NAME.fullmatch(shard["file"])
            or _not_int(shard.get("documents"))
        ):
            raise CorpusError(f"{path}: shard entry {number} is malformed: {shard!r}")
    return manifest


def corpus_shard_paths(corpus_dir: PathLike) -> list[Path]:
    """The shard files of a finished corpus, in order (e.g. to split them between data-loader workers)."""
    manifest = read_corpus_manifest(corpus_dir)
    return [Path(corpus_dir) / shard["file"] for shard in manifest["shards"]]


_DOCUMENT_FIELDS = {"contig": str, "strand": str, "start": int, "end": int, "pass": int, "sentences": list}


def iter_shard_documents(shard_path: PathLike, expected_documents: Optional[int] = None) -> Iterator[dict]:
    """Stream the documents of one shard, checking each; a bad line raises CorpusError naming file:line."""
    path = Path(shard_path)
    if not path.is_file():
        raise CorpusError(f"corpus shard not found: {path}")
    line_number = 0
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rb") as handle:
        try:
            for line_number, raw_line in enumerate(handle, start=1):
                yield _parse_document(raw_line, path, line_number)
        except (OSError, EOFError, zlib.error) as exc:
            raise CorpusError(f"{path}:{line_number + 1}: cannot decompress ({exc})") from exc
    if expected_documents is not None and line_number != expected_documents:
        raise CorpusError(
            f"{path}: {line_number} documents, but the manifest says {expected_documents} (truncated or replaced?)"
        )


def _parse_document(raw_line: bytes, path: Path, line_number: int) -> dict:
    where = f"{path}:{line_number}"
    try:
        document = json.loads(raw_line)
    except json.JSONDecodeError as exc:
        raise CorpusError(f"{where}: invalid JSON ({exc.msg}, column {exc.colno})") from None
    except UnicodeDecodeError as exc:
        raise CorpusError(f"{where}: not UTF-8 text ({exc.reason})") from None
    if not isinstance(document, dict):
        raise CorpusError(f"{where}: expected a JSON object, found {type(document).__name__}")
    for key, kind in _DOCUMENT_FIELDS.items():
        if key not in document:
            raise CorpusError(f"{where}: document has no {key!r}")
        value = document[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise CorpusError(f"{where}: {key!r} should be {kind.__name__}, found {value!r:.60}")
    if document["strand"] not in ("+", "-"):
        raise CorpusError(f"{where}: strand {document['strand']!r} is not '+' or '-'")
    if "haplotype" not in document or not (document["haplotype"] is None or isinstance(document["haplotype"], str)):
        raise CorpusError(f"{where}: 'haplotype' should be null or a string")
    sentences = document["sentences"]
    if not sentences:
        raise CorpusError(f"{where}: document has no sentences")
    for index, sentence in enumerate(sentences):
        if not isinstance(sentence, str) or not sentence:
            raise CorpusError(f"{where}: sentence {index} is not a non-empty string")
    return document


def iter_corpus_documents(corpus_dir: PathLike) -> Iterator[dict]:
    """Stream every document of a finished corpus, shard by shard, in the order they were written.

    Each is a dict as in the module docstring. A missing manifest or shard, a corrupt line, or a shard whose
    document count differs from the manifest raises CorpusError naming the file (and line).
    """
    manifest = read_corpus_manifest(corpus_dir)
    for shard in manifest["shards"]:
        yield from iter_shard_documents(Path(corpus_dir) / shard["file"], shard["documents"])


def iter_corpus_sentences(corpus_dir: PathLike) -> Iterator[str]:
    """Stream every sentence of a finished corpus (both strands, all passes), e.g. for tokenizer training."""
    for document in iter_corpus_documents(corpus_dir):
        yield from document["sentences"]


# ---------------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------------


def add_corpus_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the corpus options to an argparse parser (e.g. the `corpus` sub-command of the training CLI)."""
    defaults = CorpusConfig(fasta_paths=["-"], output_dir="-")
    parser.add_argument("--fasta", dest="fasta_paths", nargs="+", required=True, help="FASTA file(s), plain or BGZF")
    parser.add_argument("--output-dir", required=True, help="folder for the shards and manifest.json")
    parser.add_argument("--passes", type=int, default=defaults.passes)
    parser.add_argument("--sentences-per-document", type=int, nargs=2, metavar=("MIN", "MAX"),
                        default=list(defaults.sentences_per_document))
    parser.add_argument("--sentence-bp", type=int, nargs=2, metavar=("MIN", "MAX"), default=list(defaults.sentence_bp))
    parser.add_argument("--max-start-offset", type=int, default=defaults.max_start_offset)
    parser.add_argument("--min-contig-length", type=int, default=defaults.min_contig_length)
    parser.add_argument("--contigs", nargs="+", default=None, help="use only these contigs")
    parser.add_argument("--exclude-contigs", nargs="+", default=[], help="leave these out (mitochondria always are)")
    parser.add_argument("--keep-mitochondria", action="store_true", help="do not exclude MT/chrM")
    parser.add_argument("--one-strand", action="store_true", help="do not add the reverse-complement documents")
    parser.add_argument("--max-n-fraction", type=float, default=defaults.max_n_fraction)
    parser.add_argument("--split-n-run-bp", type=int, default=defaults.split_n_run_bp,
                        help="N runs at least this long split stretches (0: never split)")
    parser.add_argument("--min-stretch-bp", type=int, default=defaults.min_stretch_bp)
    parser.add_argument("--vcf", dest="vcf_path", default=None, help="VCF with the population variants to apply")
    parser.add_argument("--samples", nargs="+", default=None, help="VCF samples to use (default: all)")
    parser.add_argument("--no-reference", action="store_true", help="with --vcf, emit only the haplotypes")
    parser.add_argument("--unphased", choices=UNPHASED_MODES, default=defaults.unphased)
    parser.add_argument("--ref-mismatch", choices=REF_MISMATCH_MODES, default=defaults.ref_mismatch)
    parser.add_argument("--documents-per-shard", type=int, default=defaults.documents_per_shard)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--output-format", choices=OUTPUT_FORMATS, default=defaults.output_format)
    parser.add_argument("--overwrite", action="store_true", help="replace a corpus already in --output-dir")
    parser.add_argument("--exclude-regions", default=None,
                        help="BED of regions masked with N (e.g. held-out test regions of the fine-tuning tasks)")


def corpus_config_from_arguments(args: argparse.Namespace) -> CorpusConfig:
    """The CorpusConfig described by arguments parsed with `add_corpus_arguments`."""
    return CorpusConfig(
        fasta_paths=args.fasta_paths,
        output_dir=args.output_dir,
        passes=args.passes,
        sentences_per_document=tuple(args.sentences_per_document),
        sentence_bp=tuple(args.sentence_bp),
        max_start_offset=args.max_start_offset,
        min_contig_length=args.min_contig_length,
        contigs=args.contigs,
        exclude_contigs=args.exclude_contigs,
        exclude_mitochondria=not args.keep_mitochondria,
        both_strands=not args.one_strand,
        max_n_fraction=args.max_n_fraction,
        split_n_run_bp=args.split_n_run_bp or None,
        min_stretch_bp=args.min_stretch_bp,
        vcf_path=args.vcf_path,
        samples=args.samples,
        include_reference=not args.no_reference,
        unphased=args.unphased,
        ref_mismatch=args.ref_mismatch,
        documents_per_shard=args.documents_per_shard,
        seed=args.seed,
        output_format=args.output_format,
        overwrite=args.overwrite,
        exclude_regions=args.exclude_regions,
    )


def corpus_main(argv: Optional[Sequence[str]] = None) -> int:
    """`corpus` command: build a corpus from command-line arguments; prints a one-line summary, returns 0.

    Input problems print `error: <message naming file and line>` and return 2.
    """
    parser = argparse.ArgumentParser(
        prog="corpus", description="Build the GENA-LM pretraining corpus (documents of sentences, JSONL shards)."
    )
    add_corpus_arguments(parser)
    args = parser.parse_args(argv)
    try:
        summary = build_corpus(corpus_config_from_arguments(args))
    except (CorpusError, GenomeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(
        f"{summary['documents']} documents, {summary['sentences']} sentences, {summary['bp']} bp in "
        f"{len(summary['shards'])} shard(s) in {summary['output_dir']} ({summary['elapsed_seconds']:.1f} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(corpus_main())

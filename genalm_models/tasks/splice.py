"""Splice-site annotation (GENA-LM on SpliceAI data): per-nucleotide acceptor / donor labels, a token task.

Two sources of examples:

1. The SpliceAI canonical-transcript table + a FASTA (`SpliceTask`). Table columns (tab-separated): name, paralog
   flag (0/1), chrom, strand, tx start, tx end, exon ends (comma list), exon starts (comma list). Every coordinate
   in it is 1-based and inclusive (GENCODE style), which we established on the GRCh37 chr20 FASTA: with
   `e` an "exon end" and `s` the "exon start" of the next exon,
   - the intron is `[e, s - 1)` 0-based half-open; on '+' it starts with GT and ends with AG for 99.0% / 99.7% of
     the chr20 junctions, and on '-' the same holds for its reverse complement (`splice_site_motifs` checks it and
     `build` refuses a table/FASTA pair below `min_motif_fraction`, which catches wrong assemblies or conventions);
   - the transcript is `[tx_start - 1, tx_end)` 0-based (tx start is 1 bp after the EPDnew TSS, 0-based);
   - as in SpliceAI, a site is labelled on the exon base next to the intron: the donor on the last base of the
     upstream exon, the acceptor on the first base of the downstream exon (0-based `e - 1` and `s - 1`, which are
     the donor and acceptor on '+' and the other way round on '-').
   Each transcript is read 5'->3' (minus-strand transcripts reverse-complemented, labels flipped with them), and
   tiled from its 5' end into blocks of `center` bp, each given `flank` bp of context on both sides: windows of
   `center + 2 * flank` bp (published: 5 kb + 2 x 5 kb = 15 kb; e.g. 1 kb + 2 x 1 kb for CPU runs). In the
   window, donors are always followed by GT and acceptors preceded by AG. As in SpliceAI, the sequence outside
   the transcript is replaced by N (`n_outside_transcript`), and only centre bases inside the transcript carry a
   label (`label_mask`). Windows are split by region (`RegionSplit`): the part of the window the model sees
   (the transcript part, or the whole window when the outside is not masked) must lie in one region. As in
   SpliceAI, paralogous genes (flag 1) are left out of the test split (`exclude_paralogs_from`).

2. GENA-LM's SpliceAI CSV files (`read_spliceai_csv`, `SpliceCsvTask`): column 0 a 15,000-char sequence (N-padded),
   columns 1..5000 per-nucleotide labels for the central 5 kb: 0 none, 1 acceptor, 2 donor, -1 no label (the
   N-padding past a transcript end); the label positions follow the same convention (checked on the sample file).

Labels: `["acceptor", "donor"]`, a (len(seq), 2) uint8 array per example; multi-label (a base could be both).

Metrics (`splice_metrics`):
- token level (the published metric): per-token labels are `nucleotide_labels_to_tokens(reduce="any")` (a token is
  a donor if any base it covers is one), and only tokens whose every base carries a label are scored, the same
  rule the training loss uses. A token straddling the edge of the labelled centre is therefore not scored. (The
  official GENA-LM pipeline tokenizes the centre separately from the flanks, so none straddles there; with a
  whole-window tokenization about one token per window edge is left out.) PR-AUC per class
  (`average_precision_score`) over all scored tokens of all examples, and their mean;
- nucleotide level: each labelled base takes the probability of the token covering it
  (`token_values_to_nucleotides`); PR-AUC per class over all labelled bases, and their mean.
"""
from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np

from ..genome import Genome, GenomeError, numbered_lines
from ..tokenizer import nucleotide_labels_to_tokens, token_values_to_nucleotides
from .base import SPLITS, Example, TokenTrack, check_splits
from .metrics import pr_auc
from .splits import FileSplitOptions, RegionSplit, RegionTable, canonical_chrom, is_reserved_chromosome

LABELS = ["acceptor", "donor"]
ACCEPTOR, DONOR = 0, 1
_CSV_CODES = {0: None, 1: ACCEPTOR, 2: DONOR}
_VALID_BASES = frozenset("ACGTN")


# ------------------------------------------------------------------------------------------- the table


@dataclass(frozen=True)
class Transcript:
    """A canonical transcript, in 0-based half-open coordinates; sites are 0-based genomic positions."""

    name: str
    paralog: bool
    chrom: str
    strand: str
    start: int
    end: int
    donors: tuple[int, ...]
    acceptors: tuple[int, ...]
    source: str
    line: int


def _int_list(text: str, what: str, where: str) -> list[int]:
    values = []
    for item in text.strip().strip(",").split(","):
        item = item.strip()
        if not item:
            continue
        if not item.isdigit():
            raise GenomeError(f"{where}: {what} contains {item!r}, not a positive integer")
        values.append(int(item))
    return values


def read_splice_table(path: str) -> list[Transcript]:
    """Parse a SpliceAI canonical table (plain or gzipped); every problem names the file and line."""
    transcripts = []
    for line_number, line in numbered_lines(path, "SpliceAI table"):
        if not line.strip() or line.startswith("#"):
            continue
        where = f"{path}:{line_number}"
        fields = line.rstrip("\t").split("\t")
        if len(fields) != 8:
            raise GenomeError(f"{where}: expected 8 tab-separated fields (name, paralog, chrom, strand, tx start, "
                              f"tx end, exon ends, exon starts), found {len(fields)}")
        name, paralog, chrom, strand, tx_start, tx_end, exon_ends, exon_starts = fields
        if paralog not in ("0", "1"):
            raise GenomeError(f"{where}: paralog flag must be 0 or 1, found {paralog!r}")
        if strand not in ("+", "-"):
            raise GenomeError(f"{where}: strand must be + or -, found {strand!r}")
        if not tx_start.isdigit() or not tx_end.isdigit():
            raise GenomeError(f"{where}: tx start / end {tx_start!r}, {tx_end!r} are not positive integers")
        start, end = int(tx_start) - 1, int(tx_end)  # 1-based inclusive -> 0-based half-open
        if not 0 <= start < end:
            raise GenomeError(f"{where}: tx start {tx_start} is after tx end {tx_end}")
        ends = _int_list(exon_ends, "exon ends", where)
        starts = _int_list(exon_starts, "exon starts", where)
        if len(ends) != len(starts):
            raise GenomeError(f"{where}: {len(ends)} exon ends but {len(starts)} exon starts")
        left_sites, right_sites = [], []  # exon bases next to each intron, 0-based, left and right of it
        previous = start
        for exon_end, next_exon_start in zip(ends, starts):
            intron_start, intron_end = exon_end, next_exon_start - 1  # 0-based half-open intron
            if not previous < intron_start < intron_end < end:
                raise GenomeError(
                    f"{where}: junction {exon_end}-{next_exon_start} is not an intron inside the transcript "
                    f"{tx_start}-{tx_end} after the previous junction (unsorted or overlapping exons?)")
            left_sites.append(intron_start - 1)
            right_sites.append(intron_end)
            previous = intron_end
        donors, acceptors = (left_sites, right_sites) if strand == "+" else (right_sites, left_sites)
        transcripts.append(Transcript(name, paralog == "1", chrom, strand, start, end, tuple(donors),
                                      tuple(acceptors), str(path), line_number))
    if not transcripts:
        raise GenomeError(f"{path}: no transcripts in the file")
    return transcripts


def splice_site_motifs(transcripts: Sequence[Transcript], genome: Genome) -> dict[str, float]:
    """Fraction of donors followed by GT and of acceptors preceded by AG, on the transcript's strand.

    With the right coordinate convention and assembly these are about 0.99 and 0.997 (canonical GT-AG introns).
    """
    donor_hits = acceptor_hits = n_donors = n_acceptors = 0
    for transcript in transcripts:
        if transcript.chrom not in genome:
            continue
        minus = transcript.strand == "-"
        for site in transcript.donors:
            # The 2 intron bases after the donor in transcript orientation: right of it on '+', left on '-'.
            start = site - 2 if minus else site + 1
            donor_hits += genome.fetch(transcript.chrom, start, start + 2, strand=transcript.strand) == "GT"
            n_donors += 1
        for site in transcript.acceptors:
            start = site + 1 if minus else site - 2
            acceptor_hits += genome.fetch(transcript.chrom, start, start + 2, strand=transcript.strand) == "AG"
            n_acceptors += 1
    return {
        "donor_gt_fraction": donor_hits / n_donors if n_donors else math.nan,
        "acceptor_ag_fraction": acceptor_hits / n_acceptors if n_acceptors else math.nan,
        "n_donors": n_donors,
        "n_acceptors": n_acceptors,
    }


# ----------------------------------------------------------------------------------------- the windows


@dataclass
class SpliceTaskConfig:
    table: str
    fasta: str
    center: int = 5000                  # labelled bases per window
    flank: int = 5000                   # context on each side
    n_outside_transcript: bool = True   # SpliceAI: bases outside the transcript are N
    exclude_paralogs_from: tuple[str, ...] = ("test",)
    # Training windows without any labelled site that are kept (a fixed, seeded subset): on one chromosome ~90% of
    # the windows lie deep in introns and hold no site, so a short run sees each site only a couple of times.
    # Valid and test windows are always all kept, so their metrics are the full task's.
    train_keep_empty: float = 1.0
    min_motif_fraction: float = 0.95    # refuse a table/FASTA pair whose donors are not GT this often
    split: RegionSplit = field(default_factory=RegionSplit)
    name: str = "splice"

    def __post_init__(self) -> None:
        if isinstance(self.split, dict):
            self.split = RegionSplit(**self.split)
        self.exclude_paralogs_from = tuple(self.exclude_paralogs_from)
        if self.center < 1 or self.flank < 0:
            raise ValueError(f"center must be >= 1 and flank >= 0, got {self.center}, {self.flank}")
        if not 0.0 < self.train_keep_empty <= 1.0:
            raise ValueError(f"train_keep_empty must be in (0, 1], got {self.train_keep_empty}")
        unknown = set(self.exclude_paralogs_from) - set(SPLITS)
        if unknown:
            raise ValueError(f"exclude_paralogs_from: unknown split(s) {sorted(unknown)}")

    @property
    def window(self) -> int:
        return self.center + 2 * self.flank


def transcript_windows(transcript: Transcript, genome: Genome, center: int, flank: int,
                       n_outside_transcript: bool = True) -> list[Example]:
    """The windows tiling one transcript from its 5' end, oriented 5'->3', with labels and label masks.

    meta: chrom, start, end (the genomic window), strand, name, block (0 = 5'-most), visible_start/visible_end
    (the genomic span of real sequence the model sees, used for the region split).
    """
    chrom_length = genome.contig_lengths[genome.resolve(transcript.chrom)]
    length = transcript.end - transcript.start
    n_blocks = -(-length // center)
    span = n_blocks * center + 2 * flank  # oriented "extended transcript": flank + blocks + flank
    minus = transcript.strand == "-"
    # Fetch everything once: on '-' the oriented sequence starts at the transcript end (its 5' end).
    genomic_start = transcript.end + flank - span if minus else transcript.start - flank
    extended = genome.fetch(transcript.chrom, genomic_start, genomic_start + span, strand=transcript.strand)
    if n_outside_transcript:
        extended = "N" * flank + extended[flank:flank + length] + "N" * (span - flank - length)

    def oriented(position: int) -> int:  # genomic 0-based -> index in `extended`
        return flank + (transcript.end - 1 - position if minus else position - transcript.start)

    labels = np.zeros((span, len(LABELS)), dtype=np.uint8)
    labels[[oriented(p) for p in transcript.acceptors], ACCEPTOR] = 1
    labels[[oriented(p) for p in transcript.donors], DONOR] = 1
    in_transcript = np.zeros(span, dtype=bool)
    in_transcript[flank:flank + length] = True

    examples = []
    window = center + 2 * flank
    for block in range(n_blocks):
        first = block * center  # window = extended[first:first + window]
        mask = np.zeros(window, dtype=bool)
        mask[flank:flank + center] = in_transcript[first + flank:first + flank + center]
        if minus:
            window_end = genomic_start + span - first
            window_start = window_end - window
        else:
            window_start = genomic_start + first
            window_end = window_start + window
        if n_outside_transcript:
            visible = (max(window_start, transcript.start), min(window_end, transcript.end))
        else:
            visible = (max(window_start, 0), min(window_end, chrom_length))
        window_labels = labels[first:first + window].copy()
        window_labels[~mask] = 0  # sites in the flanks are labelled in the neighbouring blocks' centres
        examples.append(Example(
            extended[first:first + window],
            window_labels,
            label_mask=mask,
            meta=dict(chrom=transcript.chrom, start=window_start, end=window_end, strand=transcript.strand,
                      name=transcript.name, block=block, visible_start=visible[0], visible_end=visible[1],
                      kind="splice_window", source=f"{transcript.source}:{transcript.line}"),
        ))
    return examples


def keep_empty(meta: dict, fraction: float) -> bool:
    """Whether a window without sites is in the kept `fraction`: a hash of its coordinates, the same every run."""
    if fraction >= 1.0:
        return True
    key = f"{meta['chrom']}:{meta['start']}-{meta['end']}:{meta['strand']}:{meta['name']}:{meta['block']}"
    return zlib.crc32(key.encode()) / 2**32 < fraction


class SpliceTask:
    head = "token_classification"
    problem_type = "multi_label_classification"

    def __init__(self, config: SpliceTaskConfig):
        self.config = config
        self.name = config.name
        self.labels = list(LABELS)
        self.report: dict[str, float] = {}
        self._table: Optional[RegionTable] = None

    def _usable_transcripts(self, genome: Genome) -> list[Transcript]:
        usable = []
        for transcript in read_splice_table(self.config.table):
            if is_reserved_chromosome(transcript.chrom):
                self._count("transcripts_on_chrX_skipped")
            elif transcript.chrom not in genome:
                self._count("transcripts_not_in_fasta")
            elif transcript.end > genome.contig_lengths[genome.resolve(transcript.chrom)]:
                raise GenomeError(f"{transcript.source}:{transcript.line}: transcript {transcript.name} ends beyond "
                                  f"chromosome {transcript.chrom} of {genome.path} (wrong assembly?)")
            else:
                usable.append(transcript)
        if not usable:
            raise GenomeError(f"{self.config.table}: no transcript lies on a chromosome of {genome.path}")
        return usable

    def region_table(self) -> RegionTable:
        """The train / valid / test / gap regions (fractions drawn over the transcripts' 5' ends)."""
        if self._table is None:
            genome = Genome(self.config.fasta)
            transcripts = self._usable_transcripts(genome)
            sites = ((t.chrom, t.end - 1 if t.strand == "-" else t.start) for t in transcripts)
            self._table = self.config.split.table(genome.contig_lengths, sites)
        return self._table

    def build(self) -> dict[str, list[Example]]:
        config = self.config
        self.report = {}
        genome = Genome(config.fasta)
        transcripts = self._usable_transcripts(genome)
        motifs = splice_site_motifs(transcripts, genome)
        self.report.update(motifs)
        worst = min(motifs["donor_gt_fraction"], motifs["acceptor_ag_fraction"])
        if not worst >= config.min_motif_fraction:
            raise GenomeError(
                f"{config.table} on {genome.path}: only {motifs['donor_gt_fraction']:.1%} of donors are GT and "
                f"{motifs['acceptor_ag_fraction']:.1%} of acceptors AG (expected ~99%): wrong assembly or a table "
                "that does not use 1-based inclusive coordinates")
        table = self.region_table()
        splits: dict[str, list[Example]] = {split: [] for split in SPLITS}
        for transcript in transcripts:
            for example in transcript_windows(transcript, genome, config.center, config.flank,
                                              config.n_outside_transcript):
                meta = example.meta
                split = table.split_of(canonical_chrom(meta["chrom"]), meta["visible_start"], meta["visible_end"])
                if split is None:
                    self._count("windows_in_gap_or_crossing")
                    continue
                if transcript.paralog and split in config.exclude_paralogs_from:
                    self._count(f"paralog_windows_left_out_of_{split}")
                    continue
                if split == "train" and not example.label.any() and not keep_empty(meta, config.train_keep_empty):
                    self._count("train_windows_without_sites_left_out")
                    continue
                meta["split"] = split
                splits[split].append(example)
                self._count(f"{split}_windows")
                sites = int(example.label.sum())
                if sites:
                    self._count(f"{split}_windows_with_sites")
                    self._count(f"{split}_sites", sites)
        return check_splits(splits, f"splice task {self.name!r} ({config.table})")

    def _count(self, what: str, n: int = 1) -> None:
        self.report[what] = self.report.get(what, 0) + n

    def metrics(self, examples: list[Example], predictions: list) -> dict[str, float]:
        return splice_metrics(examples, predictions, self.labels)


# ----------------------------------------------------------------------------------- GENA-LM CSV files


def read_spliceai_csv(path: str) -> list[Example]:
    """Examples from a GENA-LM SpliceAI CSV (headerless; sequence, then labels of the central bases).

    The labelled centre is the middle of the sequence: `(len(seq) - n_labels) / 2` bases of context on each side.
    Codes: 0 none, 1 acceptor, 2 donor, -1 unlabelled (masked). Lines may be gzipped; blank lines are skipped.
    """
    examples = []
    for line_number, line in numbered_lines(path, "SpliceAI CSV"):
        if not line.strip():
            continue
        where = f"{path}:{line_number}"
        fields = line.split(",")
        sequence = fields[0].strip().upper()
        if len(fields) < 2 or not sequence:
            raise GenomeError(f"{where}: expected a sequence followed by per-nucleotide labels")
        bad = set(sequence) - _VALID_BASES
        if bad:
            raise GenomeError(f"{where}: the sequence contains {''.join(sorted(bad))!r}; expected A, C, G, T, N")
        try:
            codes = np.asarray([float(value) for value in fields[1:]])
        except ValueError as error:
            raise GenomeError(f"{where}: a label is not a number ({error})") from None
        unknown = set(np.unique(codes).tolist()) - {-1.0, 0.0, 1.0, 2.0}
        if unknown:
            raise GenomeError(f"{where}: label values {sorted(unknown)} are not -1, 0, 1 (acceptor) or 2 (donor)")
        context = len(sequence) - codes.size
        if context < 0 or context % 2:
            raise GenomeError(f"{where}: {codes.size} labels cannot be centred in a {len(sequence)}-base sequence")
        offset = context // 2
        labels = np.zeros((len(sequence), len(LABELS)), dtype=np.uint8)
        labels[offset:offset + codes.size, ACCEPTOR] = codes == 1
        labels[offset:offset + codes.size, DONOR] = codes == 2
        mask = np.zeros(len(sequence), dtype=bool)
        mask[offset:offset + codes.size] = codes >= 0
        examples.append(Example(sequence, labels, label_mask=mask,
                                meta=dict(source=where, kind="spliceai_csv", center_offset=offset)))
    if not examples:
        raise GenomeError(f"{path}: no examples in the file")
    return examples


@dataclass
class SpliceCsvTaskConfig(FileSplitOptions):
    """GENA-LM SpliceAI CSV files: `path` = train with `valid_path` and `test_path`, or one file split at random
    (seeded; the CSV has no coordinates, so this split is NOT by region: only for smoke tests)."""

    name: str = "splice_csv"


class SpliceCsvTask:
    head = "token_classification"
    problem_type = "multi_label_classification"

    def __init__(self, config: SpliceCsvTaskConfig):
        self.config = config
        self.name = config.name
        self.labels = list(LABELS)

    def build(self) -> dict[str, list[Example]]:
        c = self.config
        splits = c.load_splits(read_spliceai_csv)
        return check_splits(splits, f"splice CSV task {self.name!r} ({c.path})")

    def metrics(self, examples: list[Example], predictions: list) -> dict[str, float]:
        return splice_metrics(examples, predictions, self.labels)


# -------------------------------------------------------------------------------------------- metrics


def scored_token_labels(example: Example, offsets) -> tuple[np.ndarray, np.ndarray]:
    """Per-token labels (T, C) bool (`reduce="any"`) and the mask (T,) of tokens whose every base is labelled."""
    labels = np.asarray(example.label)
    token_labels = nucleotide_labels_to_tokens(labels, offsets, reduce="any")
    if example.label_mask is None:
        spans = np.asarray(offsets).reshape(-1, 2)
        return token_labels, spans[:, 1] > spans[:, 0]
    # The mean of the mask over a token's bases is 1 only when all are labelled; empty tokens get 0.
    coverage = nucleotide_labels_to_tokens(np.asarray(example.label_mask, dtype=np.float32), offsets, reduce="mean")
    return token_labels, np.asarray(coverage).reshape(-1) >= 1.0


def splice_metrics(examples: Sequence[Example], predictions: Sequence, labels: Sequence[str] = LABELS
                   ) -> dict[str, float]:
    """Token- and nucleotide-level PR-AUC per class and their means (see the module docstring).

    `predictions`: one `TokenTrack` per example (both levels), or one (len(seq), C) array of per-nucleotide
    probabilities (nucleotide level only). Classes without any positive get nan and are left out of the mean.
    """
    if len(examples) != len(predictions):
        raise ValueError(f"{len(examples)} examples but {len(predictions)} predictions")
    n_classes = len(labels)
    token_scores, token_truth, base_scores, base_truth = [], [], [], []
    for index, (example, prediction) in enumerate(zip(examples, predictions)):
        truth = np.asarray(example.label)
        if truth.shape != (len(example.seq), n_classes):
            raise ValueError(f"example #{index}: labels of shape {truth.shape}, expected ({len(example.seq)}, "
                             f"{n_classes})")
        mask = (np.ones(len(example.seq), dtype=bool) if example.label_mask is None
                else np.asarray(example.label_mask, dtype=bool))
        if isinstance(prediction, TokenTrack):
            probs, offsets = np.asarray(prediction.probs, dtype=np.float64), np.asarray(prediction.offsets)
            if probs.ndim != 2 or probs.shape[1] != n_classes:
                raise ValueError(f"example #{index}: token probabilities of shape {probs.shape}, expected "
                                 f"(T, {n_classes}) for {', '.join(labels)}")
            token_labels, scored = scored_token_labels(example, offsets)
            token_scores.append(probs[scored])
            token_truth.append(token_labels[scored])
            per_base = token_values_to_nucleotides(probs, offsets, len(example.seq))
        else:
            per_base = np.asarray(prediction, dtype=np.float64)
            if per_base.shape != truth.shape:
                raise ValueError(f"example #{index}: per-nucleotide predictions of shape {per_base.shape}, expected "
                                 f"{truth.shape} (or a TokenTrack)")
        covered = mask & ~np.isnan(per_base).any(axis=1)
        base_scores.append(per_base[covered])
        base_truth.append(truth[covered])

    result: dict[str, float] = {}
    levels = [("nucleotide", base_scores, base_truth)]
    if token_scores:
        if len(token_scores) != len(examples):
            raise ValueError("mix of TokenTracks and per-nucleotide arrays: give one kind for all examples")
        levels.insert(0, ("token", token_scores, token_truth))
    for level, scores, truth in levels:
        all_scores, all_truth = np.concatenate(scores), np.concatenate(truth)
        if all_truth.shape[0] == 0:
            raise ValueError(f"no labelled {level} to score")
        per_class = [pr_auc(all_truth[:, c], all_scores[:, c]) for c in range(n_classes)]
        for name, value in zip(labels, per_class):
            result[f"{level}_pr_auc_{name}"] = value
        defined = [v for v in per_class if not math.isnan(v)]
        result[f"{level}_pr_auc_mean"] = float(np.mean(defined)) if defined else math.nan
    return result

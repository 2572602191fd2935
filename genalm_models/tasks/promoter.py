"""Promoter prediction (GENA-LM "EPDnew promoters"): is this window around a TSS a promoter?

Positives: one window per TSS of an EPDnew-style BED (BED6, 1-bp TSS records with a strand), `upstream` bases before
and `downstream` bases after the TSS. Windows are strand-aware: a minus-strand window is the reverse complement of
the genome, so the TSS always sits at index `upstream` of the sequence, with the gene body to its right. The
published lengths (`PUBLISHED_WINDOWS`): 300 bp (-249..+50), 2 kb (-1000..+999) and 16 kb (-8000..+7999).

Negatives, one per positive, in the split of their positive:
- "shuffle" (published): the positive sequence is cut into 20 pieces; 12 of them, chosen at random, are permuted
  among their own positions and the other 8 stay where they are. We permute the 12 without fixed points, so
  exactly 12 pieces move (a plain shuffle would leave one of them in place on average). The composition, and the
  sequence of 8 of the 20 pieces, are those of the positive: the model must look at the arrangement.
- "genomic": a window of the same width drawn from the same FASTA, at least `min_tss_distance` bp from every TSS of
  the BED (any strand), with at most `max_n_fraction` N, on a random strand, in the same split region as its
  positive (or, if that region has no room, another region of the same split).

Every random choice is seeded by the task seed and the positive's coordinates, so a build is reproducible and an
example does not change when others are added or removed.

Random shifts of the training windows (`train_shift`, bp): every training example (positive and negative) also
carries `train_shift` bp of real sequence on each side of its window (`meta["context"]`, the window starting at
`meta["context_offset"]`), and the training data loader (`train.data.TaskDataset`) cuts the window at a new random
offset in [-train_shift, +train_shift] each time the example is drawn (keyed on seed, epoch and example, so runs
stay exactly resumable). Valid and test windows are never shifted: they are the exact windows of the published
task, the same with or without `train_shift`. Without shifts, every training window starts at the same base every
epoch, so its tokens always sit at the same absolute positions; a model with a weak position table (ours: adjacent
position embeddings are nearly orthogonal after a short pretraining) then fits position-locked features, and its
output jumps when a window moves by 1 bp (one token more or less at the start moves every token by one
position; issue 19). Shifted windows make those features useless. For shuffled negatives the whole context of the
positive is cut into the pieces and shuffled, so the shifted window is a piece of a shuffle too; training windows
that would need sequence beyond a chromosome end are kept unshifted (counted as `train_unshiftable`).

Dropped, and counted in `PromoterTask.report`: TSSs on chromosome X (reserved) or on chromosomes not in the FASTA,
duplicate windows (the same coordinates and strand, e.g. two EPDnew names for one TSS), windows running off a
chromosome, windows with more than `max_n_fraction` N, windows in a split gap or crossing a region boundary, and
positives for which no genomic negative could be found.
"""
from __future__ import annotations

import bisect
import zlib
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from ..genome import Genome, GenomeError, Interval, read_bed
from ..genome.intervals import subtract_intervals
from .base import Example, check_splits, SPLITS
from .metrics import binary_classification_metrics
from .splits import Region, RegionSplit, RegionTable, canonical_chrom, is_reserved_chromosome

# Published windows: total length -> (upstream, downstream) offsets around the TSS (TSS = offset 0).
PUBLISHED_WINDOWS = {300: (249, 50), 2000: (1000, 999), 16000: (8000, 7999)}
NEGATIVE_KINDS = ("shuffle", "genomic")
LABELS = ["not_promoter", "promoter"]


@dataclass
class PromoterTaskConfig:
    tss_bed: str
    fasta: str
    upstream: int = 249
    downstream: int = 50
    negatives: str = "shuffle"          # "shuffle" (published) or "genomic"
    shuffle_pieces: int = 20
    shuffle_moved: int = 12
    min_tss_distance: int = 20_000      # genomic negatives: minimum distance to any TSS, in bp
    max_n_fraction: float = 0.05        # windows (positive or negative) with more N than this are dropped
    split: RegionSplit = field(default_factory=RegionSplit)
    seed: int = 0
    threshold: float = 0.5              # on P(promoter), for accuracy / F1 / MCC
    name: str = "promoter"
    train_shift: int = 0                # training windows move by a random offset in [-train_shift, +train_shift]

    def __post_init__(self) -> None:
        if isinstance(self.split, dict):
            self.split = RegionSplit(**self.split)
        if self.upstream < 0 or self.downstream < 0:
            raise ValueError(f"upstream/downstream must be >= 0, got {self.upstream}, {self.downstream}")
        if self.negatives not in NEGATIVE_KINDS:
            raise ValueError(f"negatives must be one of {NEGATIVE_KINDS}, got {self.negatives!r}")
        if not 2 <= self.shuffle_moved <= self.shuffle_pieces:
            raise ValueError(
                f"shuffle_moved must be between 2 and shuffle_pieces ({self.shuffle_pieces}), got {self.shuffle_moved}"
            )
        if self.shuffle_pieces > self.width:
            raise ValueError(f"cannot cut a {self.width} bp window into {self.shuffle_pieces} pieces")
        if self.min_tss_distance < 0:
            raise ValueError(f"min_tss_distance must be >= 0, got {self.min_tss_distance}")
        if not 0 <= self.max_n_fraction <= 1:
            raise ValueError(f"max_n_fraction must be in [0, 1], got {self.max_n_fraction}")
        if not isinstance(self.train_shift, int) or isinstance(self.train_shift, bool) or self.train_shift < 0:
            raise ValueError(f"train_shift must be an integer >= 0 (bp), got {self.train_shift!r}")

    @property
    def width(self) -> int:
        return self.upstream + 1 + self.downstream

    @classmethod
    def published(cls, length: int, tss_bed: str, fasta: str, **options) -> "PromoterTaskConfig":
        """The published window of `length` bp (300, 2000 or 16000) around the TSS."""
        if length not in PUBLISHED_WINDOWS:
            raise ValueError(f"published promoter windows are {sorted(PUBLISHED_WINDOWS)} bp, not {length}")
        upstream, downstream = PUBLISHED_WINDOWS[length]
        options.setdefault("name", f"promoter_{length}")
        return cls(tss_bed=tss_bed, fasta=fasta, upstream=upstream, downstream=downstream, **options)


# --------------------------------------------------------------------------------------------- negatives


def piece_bounds(length: int, n_pieces: int) -> list[int]:
    """Start of each of `n_pieces` near-equal pieces of a sequence of `length`, plus `length` at the end."""
    return [(i * length) // n_pieces for i in range(n_pieces + 1)]


def shuffle_pieces(
    sequence: str, rng: np.random.Generator, n_pieces: int = 20, n_moved: int = 12
) -> tuple[str, list[int]]:
    """The published shuffled negative: cut `sequence` into `n_pieces`, permute `n_moved` of them (chosen at
    random) among their own positions so that each of them moves, keep the others in place.

    Returns the new sequence and `order`: the new sequence is the concatenation of original pieces
    `order[0], order[1], ...` (so `order[i] == i` for the pieces kept in place).
    """
    if not 2 <= n_moved <= n_pieces:
        raise ValueError(f"n_moved must be between 2 and n_pieces ({n_pieces}), got {n_moved}")
    bounds = piece_bounds(len(sequence), n_pieces)
    pieces = [sequence[bounds[i]:bounds[i + 1]] for i in range(n_pieces)]
    chosen = np.sort(rng.choice(n_pieces, size=n_moved, replace=False))
    # A derangement of the chosen positions by rejection: about e tries on average, whatever n_moved >= 2.
    while True:
        permuted = rng.permutation(chosen)
        if not np.any(permuted == chosen):
            break
    order = list(range(n_pieces))
    for position, piece in zip(chosen, permuted):
        order[int(position)] = int(piece)
    return "".join(pieces[i] for i in order), order


def example_rng(seed: int, key: str) -> np.random.Generator:
    """A generator seeded by the task seed and a stable key (the example's coordinates)."""
    return np.random.default_rng([seed, zlib.crc32(key.encode())])


def n_fraction(sequence: str) -> float:
    return sequence.count("N") / len(sequence) if sequence else 1.0


class GenomicNegativeSampler:
    """Draws windows of one width far from every TSS, inside the regions of a region table.

    For a region `[rs, re)` a window start `s` is allowed when the window `[s, s + width)` lies in the region and
    its nearest base is at least `min_distance` bp from every TSS t, i.e. `s >= t + min_distance` or
    `s + width - 1 <= t - min_distance`. The allowed starts are precomputed per region as intervals, so a draw is
    uniform over all allowed windows of the region.
    """

    def __init__(self, genome: Genome, tss_positions: dict[str, list[int]], width: int, min_distance: int,
                 max_n_fraction: float, max_tries: int = 50):
        self.genome, self.width, self.min_distance = genome, width, min_distance
        self.max_n_fraction, self.max_tries = max_n_fraction, max_tries
        self.tss = {chrom: sorted(positions) for chrom, positions in tss_positions.items()}
        self._allowed: dict[Region, tuple[np.ndarray, np.ndarray]] = {}
        self.used: set[tuple[str, int, str]] = set()

    def allowed_starts(self, region: Region) -> tuple[np.ndarray, np.ndarray]:
        """(starts, ends) of the half-open intervals of allowed window starts in `region`."""
        if region not in self._allowed:
            first, last = region.start, region.end - self.width  # inclusive range of starts inside the region
            forbidden = [(region.chrom, t - self.min_distance - self.width + 2, t + self.min_distance)
                         for t in self.tss.get(canonical_chrom(region.chrom), [])]
            allowed = [(region.chrom, first, last + 1)] if last >= first else []
            intervals = [(start, end) for _, start, end in subtract_intervals(allowed, forbidden)]
            starts = np.array([a for a, _ in intervals], dtype=np.int64)
            ends = np.array([b for _, b in intervals], dtype=np.int64)
            self._allowed[region] = (starts, ends)
        return self._allowed[region]

    def room(self, region: Region) -> int:
        starts, ends = self.allowed_starts(region)
        return int((ends - starts).sum())

    def draw(self, region: Region, rng: np.random.Generator) -> Optional[tuple[Interval, str]]:
        """A random allowed window in `region` (random strand) and its sequence, or None after `max_tries`."""
        starts, ends = self.allowed_starts(region)
        sizes = ends - starts
        total = int(sizes.sum())
        if total == 0:
            return None
        cumulative = np.cumsum(sizes)
        for _ in range(self.max_tries):
            pick = int(rng.integers(0, total))
            k = int(np.searchsorted(cumulative, pick, side="right"))
            start = int(starts[k] + pick - (cumulative[k] - sizes[k]))
            strand = "+" if rng.random() < 0.5 else "-"
            key = (region.chrom, start, strand)
            if key in self.used:
                continue
            window = Interval(region.chrom, start, start + self.width, strand=strand)
            sequence = self.genome.fetch(window, pad="error")
            if n_fraction(sequence) > self.max_n_fraction:
                continue
            self.used.add(key)
            return window, sequence
        return None


def distance_to_nearest(positions: list[int], start: int, end: int) -> float:
    """Distance in bp from the window `[start, end)` to the nearest of the sorted `positions` (0 if inside)."""
    if not positions:
        return float("inf")
    i = bisect.bisect_left(positions, start)
    best = float("inf")
    if i < len(positions):
        best = 0 if positions[i] < end else positions[i] - (end - 1)
    if i > 0:
        best = min(best, start - positions[i - 1])
    return best


# ---------------------------------------------------------------------------------------------------- task


def read_tss(path: str, genome: Genome, report: dict[str, int]) -> list[Interval]:
    """The TSS records of an EPDnew-style BED on the FASTA's chromosomes (chromosome X left out)."""
    tss = []
    for record in read_bed(path):
        where = f"{record.source}:{record.line}"
        if record.width != 1:
            raise GenomeError(f"{where}: a TSS must be a 1-bp record, found {record.width} bp "
                              f"({record.chrom}:{record.start}-{record.end})")
        if record.strand not in ("+", "-"):
            raise GenomeError(f"{where}: a TSS needs a strand (+ or -) in column 6, found {record.strand!r}")
        if is_reserved_chromosome(record.chrom):
            report["tss_on_chrX_skipped"] = report.get("tss_on_chrX_skipped", 0) + 1
            continue
        if record.chrom not in genome:
            report["tss_not_in_fasta"] = report.get("tss_not_in_fasta", 0) + 1
            continue
        if record.end > genome.contig_lengths[genome.resolve(record.chrom)]:
            raise GenomeError(f"{where}: TSS {record.chrom}:{record.start} lies beyond the end of the chromosome "
                              f"in {genome.path} (wrong assembly?)")
        tss.append(record)
    if not tss:
        raise GenomeError(f"{path}: no TSS lies on a chromosome of {genome.path} "
                          f"(FASTA has {', '.join(list(genome.contig_lengths)[:5])}...)")
    return tss


class PromoterTask:
    head = "sequence_classification"
    problem_type = "single_label_classification"

    def __init__(self, config: PromoterTaskConfig):
        self.config = config
        self.name = config.name
        self.labels = list(LABELS)
        self.report: dict[str, int] = {}
        self._table: Optional[RegionTable] = None

    def region_table(self) -> RegionTable:
        """The train / valid / test / gap regions this task uses (fractions drawn over the TSSs)."""
        if self._table is None:
            genome = Genome(self.config.fasta)
            tss = read_tss(self.config.tss_bed, genome, {})
            self._table = self.config.split.table(genome.contig_lengths, ((t.chrom, t.start) for t in tss))
        return self._table

    def build(self) -> dict[str, list[Example]]:
        config = self.config
        self.report = {}
        genome = Genome(config.fasta)
        tss_records = read_tss(config.tss_bed, genome, self.report)
        table = self.region_table()
        tss_positions: dict[str, list[int]] = {}
        for record in tss_records:
            tss_positions.setdefault(canonical_chrom(record.chrom), []).append(record.start)
        sampler = GenomicNegativeSampler(genome, tss_positions, config.width, config.min_tss_distance,
                                         config.max_n_fraction)

        splits: dict[str, list[Example]] = {split: [] for split in SPLITS}
        seen: set[tuple[str, int, int, str]] = set()
        for record in tss_records:
            window = record.window(config.upstream, config.downstream)
            key = (canonical_chrom(window.chrom), window.start, window.end, window.strand)
            if key in seen:
                self._count("duplicate_window")
                continue
            seen.add(key)
            chrom_length = genome.contig_lengths[genome.resolve(window.chrom)]
            if window.start < 0 or window.end > chrom_length:
                self._count("off_chromosome")
                continue
            region = table.region_of(window.chrom, window.start, window.end)
            if region is None:
                self._count("in_gap_or_crossing")
                continue
            sequence = genome.fetch(window)
            if n_fraction(sequence) > config.max_n_fraction:
                self._count("too_many_n")
                continue
            coordinates = f"{window.chrom}:{window.start}-{window.end}{window.strand}"
            rng = example_rng(config.seed, coordinates)
            context = None
            if region.split == "train" and config.train_shift:
                context = self._context(genome, window, sequence, chrom_length)
            negative = self._negative(sequence, region, table, sampler, rng, genome=genome, context=context)
            if negative is None:
                self._count("no_genomic_negative")
                continue
            positive = Example(sequence, 1, meta=dict(
                chrom=window.chrom, start=window.start, end=window.end, strand=window.strand,
                name=record.name, kind="promoter", split=region.split, source=f"{record.source}:{record.line}"))
            if context is not None:
                positive.meta.update(context=context, context_offset=config.train_shift)
            negative.meta.update(split=region.split, positive=record.name)
            splits[region.split].extend([positive, negative])
            self._count(f"{region.split}_pairs")
        return check_splits(splits, f"promoter task {self.name!r} ({config.tss_bed})")

    def _context(self, genome: Genome, window: Interval, sequence: str, chrom_length: int) -> Optional[str]:
        """`train_shift` bp of sequence on both sides of a training window (5'->3' on its strand), or None (counted)
        when that runs off the chromosome."""
        shift = self.config.train_shift
        if window.start - shift < 0 or window.end + shift > chrom_length:
            self._count("train_unshiftable")
            return None
        context = genome.fetch(Interval(window.chrom, window.start - shift, window.end + shift, strand=window.strand))
        assert context[shift: shift + len(sequence)] == sequence, "context does not hold the window"
        return context

    def _negative(self, sequence: str, region: Region, table: RegionTable, sampler: GenomicNegativeSampler,
                  rng: np.random.Generator, genome: Optional[Genome] = None,
                  context: Optional[str] = None) -> Optional[Example]:
        """The negative of one positive; with `context` (a shifted training positive), the negative's own context
        too (see the module docstring)."""
        config = self.config
        if config.negatives == "shuffle":
            if context is not None:  # shuffle the whole context: any shifted window is then a piece of a shuffle
                shuffled, order = shuffle_pieces(context, rng, config.shuffle_pieces, config.shuffle_moved)
                shift = config.train_shift
                return Example(shuffled[shift: shift + len(sequence)], 0, meta=dict(
                    kind="shuffled", piece_order=order, context=shuffled, context_offset=shift))
            shuffled, order = shuffle_pieces(sequence, rng, config.shuffle_pieces, config.shuffle_moved)
            return Example(shuffled, 0, meta=dict(kind="shuffled", piece_order=order))
        drawn = sampler.draw(region, rng)
        if drawn is None:  # the positive's own region has no room left: another region of the same split
            others = [r for r in table.regions_of(region.split) if r != region and sampler.room(r) > 0]
            if others:
                rooms = np.array([sampler.room(r) for r in others], dtype=np.float64)
                drawn = sampler.draw(others[int(rng.choice(len(others), p=rooms / rooms.sum()))], rng)
        if drawn is None:
            return None
        window, negative_sequence = drawn
        example = Example(negative_sequence, 0, meta=dict(
            kind="genomic", chrom=window.chrom, start=window.start, end=window.end, strand=window.strand))
        if context is not None and genome is not None:
            chrom_length = genome.contig_lengths[genome.resolve(window.chrom)]
            negative_context = self._context(genome, window, negative_sequence, chrom_length)
            if negative_context is not None:
                example.meta.update(context=negative_context, context_offset=self.config.train_shift)
        return example

    def _count(self, what: str) -> None:
        self.report[what] = self.report.get(what, 0) + 1

    def metrics(self, examples: list[Example], predictions: list[np.ndarray]) -> dict[str, float]:
        """Accuracy, F1, MCC at `threshold` on P(promoter) = predictions[i][1]; ROC-AUC and PR-AUC."""
        if len(examples) != len(predictions):
            raise ValueError(f"{len(examples)} examples but {len(predictions)} predictions")
        probabilities = np.asarray([np.asarray(p, dtype=np.float64).reshape(-1) for p in predictions])
        if probabilities.ndim != 2 or probabilities.shape[1] != len(self.labels):
            raise ValueError(f"promoter predictions must be ({len(self.labels)},) probabilities per example "
                             f"({', '.join(self.labels)}), got shape {probabilities.shape[1:]}")
        y_true = np.asarray([int(example.label) for example in examples])
        return binary_classification_metrics(y_true, probabilities[:, 1], self.config.threshold)

"""Train / valid / test splits: by genomic region for tasks built from a genome, seeded at random otherwise.

Region splits (promoters, splice sites)
---------------------------------------
Neighbouring windows share sequence, so examples are split by where they lie, never at random. Each chromosome is
cut into regions labelled `train`, `valid` or `test`, and a GAP of at least `RegionSplit.gap` bp (16 kb by default,
the longest published promoter window) separates any two regions of different splits. An example belongs to a
split only if its whole window lies inside one region of that split; a window that overlaps a gap or crosses a
region boundary is dropped. So two examples of different splits are always at least `gap` bp apart.

Valid and test regions are given either as ranges typed as samtools reads them (`"chr20:30,000,001-36,000,000"`,
1-based, both ends inclusive: `genome.regions.parse_region_1based`) or as fractions: the chromosomes are then cut into blocks of `block_size` bp and whole blocks are drawn (seeded) for
test, then valid, until they hold the requested fraction of the task's sites (TSSs, transcripts), or of the
genome's length when no sites are given. Named test ranges are kept exactly; gaps are always carved out of the
lower-priority neighbour (train < valid < test), so the test regions are exactly what was asked for.

`RegionTable` is the result; the training package uses `RegionTable.exclusion_intervals()` (or the BED written by
`write_bed`) to keep the test regions out of pretraining corpora.

Human chromosome X is reserved for independent evaluation: it never gets a region, so nothing on it is ever used.

Random splits (chromatin, enhancers, SpliceAI CSV files)
--------------------------------------------------------
The DeepSEA / DeepSTARR / GENA-LM SpliceAI sample files carry no coordinates, so they can only be split at random
(`random_split`, seeded), or taken as they come when the data provider ships separate train / valid / test files.
A random split of overlapping genomic windows can leak between splits: prefer the provider's files when they exist.
"""
from __future__ import annotations

import bisect
import logging
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping, Optional, Sequence, TypeVar

import numpy as np

from ..genome import GenomeError, Interval, PathLike
from ..genome.intervals import merge_intervals, read_bed
from ..genome.names import canonical_chrom
from ..genome.regions import parse_region_1based
from ..io_utils import write_text_atomic
from .base import SPLITS

log = logging.getLogger(__name__)

GAP = "gap"
# When two regions of different splits meet, the gap is carved out of the one with the lower priority.
_PRIORITY = {"train": 0, "valid": 1, "test": 2}
# Canonical (chr-less) names of chromosomes that must never be used: human chrX is held out for evaluation.
RESERVED_CHROMOSOMES = frozenset({"X"})

T = TypeVar("T")


def is_reserved_chromosome(name: str) -> bool:
    """True for human chromosome X (any spelling), which no task may use."""
    return canonical_chrom(name).upper() in RESERVED_CHROMOSOMES


@dataclass(frozen=True)
class Region:
    """One stretch `[start, end)` of a chromosome and the split it belongs to (`train`/`valid`/`test`/`gap`)."""

    chrom: str
    start: int
    end: int
    split: str

    @property
    def width(self) -> int:
        return self.end - self.start

    def to_interval(self) -> Interval:
        return Interval(self.chrom, self.start, self.end, name=self.split)


def parse_range(text: str, contig_lengths: Mapping[str, int], what: str = "range") -> tuple[str, int, int]:
    """`"chr20:1,000,001-2,000,000"` -> `("20", 1000000, 2000000)`: a typed range (1-based, both ends inclusive, as
    samtools reads it; `genome.regions.parse_region_1based`) as 0-based half-open coordinates in the genome's own
    chromosome name. A bare chromosome name (`"20"`) means the whole chromosome; an end past the chromosome end is
    clipped to it. Chromosome X is refused (reserved for independent evaluation)."""
    chrom_text = text.strip().rpartition(":")[0] or text.strip()
    if is_reserved_chromosome(chrom_text):
        raise ValueError(f"{what} {text!r}: chromosome X is reserved for independent evaluation and is never used")
    region = parse_region_1based(text, contig_lengths, what)
    typed_start = region.start + 1
    if typed_start % 1000 == 0:
        # a round typed start is often a 0-based spelling: split ranges were read 0-based before (the recipes said
        # chr20:32000000-36000000 for what is now chr20:32000001-36000000)
        log.warning("%s %r: ranges are 1-based and inclusive (samtools): this one starts at base %s; if %s was "
                    "meant as a 0-based start, write %s:%d-%d", what, text, f"{typed_start:,}", typed_start,
                    chrom_text, typed_start + 1, region.end)
    return region.chrom, region.start, region.end


@dataclass
class RegionSplit:
    """How to cut the genome into train / valid / test regions (see the module docstring).

    valid, test: ranges as samtools reads them (`"chr20:30,000,001-36,000,000"`, 1-based, both ends inclusive);
        when a split has ranges its fraction is ignored.
    valid_fraction, test_fraction: otherwise, the fraction of sites (or of sequence) that goes to that split,
        drawn as whole blocks of `block_size` bp with `seed`.
    gap: the minimum distance in bp between regions of different splits; no example is placed in a gap.
    """

    valid: tuple[str, ...] = ()
    test: tuple[str, ...] = ()
    valid_fraction: float = 0.1
    test_fraction: float = 0.1
    block_size: int = 2_000_000
    gap: int = 16_000
    seed: int = 0

    def __post_init__(self) -> None:
        # YAML / JSON configs give lists (or a single string): normalise to tuples.
        self.valid = (self.valid,) if isinstance(self.valid, str) else tuple(self.valid)
        self.test = (self.test,) if isinstance(self.test, str) else tuple(self.test)
        for name in ("valid_fraction", "test_fraction"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"RegionSplit.{name} must be in [0, 1), got {value}")
        if self.valid_fraction + self.test_fraction >= 1.0:
            raise ValueError("RegionSplit: valid_fraction + test_fraction must leave something for training")
        if self.block_size < 1:
            raise ValueError(f"RegionSplit.block_size must be positive, got {self.block_size}")
        if self.gap < 0:
            raise ValueError(f"RegionSplit.gap must be >= 0, got {self.gap}")

    def table(
        self, contig_lengths: Mapping[str, int], sites: Optional[Iterable[tuple[str, int]]] = None
    ) -> "RegionTable":
        """The region table for a genome (`Genome.contig_lengths`); `sites` = (chrom, position) of the task's
        anchors, so that fractions count sites rather than bases. Chromosome X gets no region."""
        lengths = {name: int(length) for name, length in contig_lengths.items() if not is_reserved_chromosome(name)}
        if not lengths:
            raise ValueError("RegionSplit: the genome has no usable chromosome (chromosome X is never used)")

        # 1. Which split each base belongs to, as a list of (start, end, split) segments per chromosome.
        labelled: dict[str, list[tuple[int, int, str]]] = {name: [] for name in lengths}
        for split_name in ("test", "valid"):  # test first: it has priority where explicit ranges overlap
            for text in getattr(self, split_name):
                chrom, start, end = parse_range(text, lengths, f"RegionSplit.{split_name}")
                for other_start, other_end, other_split in labelled[chrom]:
                    if start < other_end and other_start < end:
                        raise ValueError(
                            f"RegionSplit: {split_name} range {text!r} overlaps a {other_split} range "
                            f"({chrom}:{other_start}-{other_end})"
                        )
                labelled[chrom].append((start, end, split_name))
        fraction_splits = [s for s in ("test", "valid") if not getattr(self, s) and getattr(self, f"{s}_fraction") > 0]
        if fraction_splits:
            self._draw_blocks(lengths, labelled, fraction_splits, sites)

        # 2. Fill the rest with train, then carve the gaps.
        regions: list[Region] = []
        for chrom, length in lengths.items():
            segments = _fill_with_train(sorted(labelled[chrom]), length)
            regions.extend(_carve_gaps(chrom, segments, length, self.gap))
        return RegionTable(regions, gap=self.gap)

    def _draw_blocks(
        self,
        lengths: Mapping[str, int],
        labelled: dict[str, list[tuple[int, int, str]]],
        fraction_splits: Sequence[str],
        sites: Optional[Iterable[tuple[str, int]]],
    ) -> None:
        """Assign whole blocks, in a seeded random order, to the splits given as fractions."""
        blocks = [
            (chrom, start, min(start + self.block_size, length))
            for chrom, length in lengths.items()
            for start in range(0, length, self.block_size)
        ]
        # A block already touched by an explicit range is not available.
        blocks = [
            block for block in blocks
            if not any(block[1] < end and start < block[2] for start, end, _ in labelled[block[0]])
        ]
        if sites is not None:
            site_positions: dict[str, list[int]] = {}
            for chrom, position in sites:
                site_positions.setdefault(canonical_chrom(chrom), []).append(int(position))
            for positions in site_positions.values():
                positions.sort()

            def weight(block: tuple[str, int, int]) -> float:
                positions = site_positions.get(canonical_chrom(block[0]), [])
                return bisect.bisect_left(positions, block[2]) - bisect.bisect_left(positions, block[1])

            total = float(sum(len(p) for name, p in site_positions.items()
                              if name in {canonical_chrom(c) for c in lengths}))
        else:
            def weight(block: tuple[str, int, int]) -> float:
                return block[2] - block[1]

            total = float(sum(lengths.values()))
        if total <= 0:
            raise ValueError("RegionSplit: no sites lie on the genome's chromosomes, so fractions cannot be drawn")

        order = np.random.default_rng(self.seed).permutation(len(blocks))
        candidates = [blocks[i] for i in order if weight(blocks[i]) > 0]
        for split_name in fraction_splits:
            target = getattr(self, f"{split_name}_fraction") * total
            taken = 0.0
            while candidates and taken < target:
                chrom, start, end = candidates.pop(0)
                labelled[chrom].append((start, end, split_name))
                taken += weight((chrom, start, end))
            if taken == 0:
                raise ValueError(
                    f"RegionSplit: no block left for the {split_name} split (block_size {self.block_size} bp); "
                    "use smaller blocks or name the regions explicitly"
                )


def _fill_with_train(segments: list[tuple[int, int, str]], length: int) -> list[tuple[int, int, str]]:
    """Sorted, non-overlapping labelled segments plus `train` in between; same-split neighbours merged."""
    filled: list[tuple[int, int, str]] = []
    position = 0
    for start, end, split in segments:
        if start > position:
            filled.append((position, start, "train"))
        filled.append((start, end, split))
        position = end
    if position < length:
        filled.append((position, length, "train"))
    merged: list[tuple[int, int, str]] = []
    for start, end, split in filled:
        if merged and merged[-1][2] == split and merged[-1][1] == start:
            merged[-1] = (merged[-1][0], end, split)
        else:
            merged.append((start, end, split))
    return merged


def _carve_gaps(chrom: str, segments: list[tuple[int, int, str]], length: int, gap: int) -> list[Region]:
    """Shrink segments until regions of different splits are at least `gap` apart; the rest becomes `gap`."""
    kept = [list(segment) for segment in segments]
    changed = True
    while changed:  # carving can empty a segment and bring two others closer: repeat until stable
        changed = False
        kept = [segment for segment in kept if segment[0] < segment[1]]
        for left, right in zip(kept, kept[1:]):
            distance = right[0] - left[1]
            if left[2] != right[2] and distance < gap:
                missing = gap - distance
                if _PRIORITY[left[2]] < _PRIORITY[right[2]]:
                    left[1] = max(left[0], left[1] - missing)
                else:
                    right[0] = min(right[1], right[0] + missing)
                changed = True
                break
    regions: list[Region] = []
    position = 0
    for start, end, split in kept:
        if start > position:
            regions.append(Region(chrom, position, start, GAP))
        regions.append(Region(chrom, start, end, split))
        position = end
    if position < length:
        regions.append(Region(chrom, position, length, GAP))
    return regions


class RegionTable:
    """The regions of every usable chromosome, each labelled train / valid / test / gap, with fast lookup."""

    def __init__(self, regions: Iterable[Region], gap: int):
        self.regions: tuple[Region, ...] = tuple(sorted(regions, key=lambda r: (r.chrom, r.start)))
        self.gap = gap
        self._by_chrom: dict[str, list[Region]] = {}
        for region in self.regions:
            if region.split not in SPLITS and region.split != GAP:
                raise ValueError(f"region {region} has an unknown split {region.split!r}")
            self._by_chrom.setdefault(canonical_chrom(region.chrom), []).append(region)
        self._starts = {chrom: [r.start for r in rs] for chrom, rs in self._by_chrom.items()}

    def __repr__(self) -> str:
        sizes = {split: sum(r.width for r in self.regions if r.split == split) for split in (*SPLITS, GAP)}
        return f"RegionTable({len(self.regions)} regions, bp per split: {sizes})"

    def region_of(self, chrom: str, start: int, end: int) -> Optional[Region]:
        """The non-gap region that holds all of `[start, end)`, or None (gap, boundary, unknown chromosome)."""
        key = canonical_chrom(chrom)
        regions = self._by_chrom.get(key)
        if not regions or start < 0:
            return None
        index = bisect.bisect_right(self._starts[key], start) - 1
        if index < 0:
            return None
        region = regions[index]
        if region.split == GAP or end > region.end:
            return None
        return region

    def split_of(self, chrom: str, start: int, end: int) -> Optional[str]:
        """`train` / `valid` / `test` when `[start, end)` lies in one region of that split, else None."""
        region = self.region_of(chrom, start, end)
        return None if region is None else region.split

    def regions_of(self, split: str) -> list[Region]:
        if split not in SPLITS and split != GAP:
            raise ValueError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)} or {GAP}")
        return [region for region in self.regions if region.split == split]

    def exclusion_intervals(self, splits: Sequence[str] = ("test",), include_gaps: bool = True) -> list[Interval]:
        """Merged intervals to keep out of a pretraining corpus: the regions of `splits`, plus the gaps that
        touch them when `include_gaps` (so nothing within `gap` bp of a test example is pretrained on)."""
        wanted = set(splits)
        intervals: list[Interval] = []
        for chrom in dict.fromkeys(region.chrom for region in self.regions):
            regions = [r for r in self.regions if r.chrom == chrom]
            chosen = [False] * len(regions)
            for i, region in enumerate(regions):
                if region.split in wanted:
                    chosen[i] = True
                    if include_gaps:
                        for j in (i - 1, i + 1):
                            if 0 <= j < len(regions) and regions[j].split == GAP:
                                chosen[j] = True
            merged = merge_intervals(region.to_interval() for region, keep in zip(regions, chosen) if keep)
            intervals.extend(Interval(chrom, start, end, name="excluded") for _, start, end in merged)
        return intervals

    def write_bed(self, path: PathLike) -> None:
        """BED4 (chrom, start, end, split), written atomically; `read_bed_table` reads it back."""
        lines = [f"{r.chrom}\t{r.start}\t{r.end}\t{r.split}\n" for r in self.regions]
        write_text_atomic(path, lines)

    @classmethod
    def read_bed(cls, path: PathLike, gap: int = 0) -> "RegionTable":
        """Read a table written by `write_bed` (4th column = split) with the one BED reader (`genome.read_bed`:
        comments, track lines, gzip); errors name the file and line."""
        regions = []
        for interval in read_bed(path):
            where = f"{path}:{interval.line}"
            if interval.start == interval.end:
                raise GenomeError(f"{where}: need start < end, got {interval.start}, {interval.end}")
            if interval.name not in SPLITS and interval.name != GAP:
                found = "no 4th column" if interval.name == "." else f"split {interval.name!r}"
                raise GenomeError(f"{where}: {found}: the 4th column must be one of {', '.join(SPLITS)}, {GAP}")
            regions.append(Region(interval.chrom, interval.start, interval.end, interval.name))
        return cls(regions, gap=gap)


# ----------------------------------------------------------------------------------------------- random splits


def random_split(items: Sequence[T], valid_fraction: float, test_fraction: float, seed: int) -> dict[str, list[T]]:
    """A seeded random split for data without coordinates. Each split with a positive fraction gets at least one
    item (when there are enough); the order inside each split follows the input order."""
    if not (0 <= valid_fraction < 1 and 0 <= test_fraction < 1 and valid_fraction + test_fraction < 1):
        raise ValueError(
            f"fractions must be in [0, 1) and sum below 1, got valid {valid_fraction}, test {test_fraction}")
    n = len(items)
    n_test = int(round(test_fraction * n))
    n_valid = int(round(valid_fraction * n))
    if n >= 3:
        n_test = max(n_test, 1 if test_fraction > 0 else 0)
        n_valid = max(n_valid, 1 if valid_fraction > 0 else 0)
    if n_test + n_valid >= n:
        raise ValueError(f"{n} items are too few for a split with valid {valid_fraction} and test {test_fraction}")
    order = np.random.default_rng(seed).permutation(n)
    assignment = np.full(n, "train", dtype=object)
    assignment[order[:n_test]] = "test"
    assignment[order[n_test:n_test + n_valid]] = "valid"
    return {split: [item for item, where in zip(items, assignment) if where == split] for split in SPLITS}


@dataclass
class FileSplitOptions:
    """Options shared by the tasks read from sample files without coordinates: `path` (train, or everything),
    optional `valid_path` / `test_path`, else a seeded random split with these fractions."""

    path: str
    valid_path: Optional[str] = None
    test_path: Optional[str] = None
    valid_fraction: float = 0.1
    test_fraction: float = 0.1
    seed: int = 0

    def load_splits(self, load: Callable[[str], list[T]]) -> dict[str, list[T]]:
        return splits_from_files(load, self.path, self.valid_path, self.test_path, self.valid_fraction,
                                 self.test_fraction, self.seed)


def splits_from_files(
    load: Callable[[str], list[T]],
    path: str,
    valid_path: Optional[str],
    test_path: Optional[str],
    valid_fraction: float,
    test_fraction: float,
    seed: int,
) -> dict[str, list[T]]:
    """Either one file per split (`path` = train, `valid_path`, `test_path`, as data providers ship them), or one
    file split at random with `random_split`. Giving only one of valid_path / test_path is an error."""
    if (valid_path is None) != (test_path is None):
        raise ValueError("give both valid_path and test_path (one file per split), or neither (a random split)")
    if valid_path is not None:
        return {"train": load(path), "valid": load(valid_path), "test": load(test_path)}
    return random_split(load(path), valid_fraction, test_fraction, seed)

"""BED intervals -> the DNA strings a GENA-LM model reads (no torch, no kipoi).

This is the body of the Kipoi dataloader (`dataloaders.py` wraps it) and of the exporter's example inputs, so the
sequences `kipoi predict`, `kipoi test` and `genalm-kipoi scan` feed the model are built in one place:

1. read the BED file (BED3..BED6 + extra columns, plain or gzip, track/browser/header lines skipped) through
   `genalm_models.genome.read_bed`, which names file and line in every error;
2. resolve each chromosome in the FASTA (`chr20` and `20` are the same chromosome) - all intervals are checked up
   front, so an unknown chromosome or an interval past the chromosome end fails before any prediction is written;
3. transform: place the model's window (`WindowSpec`, `target_region` / `input_region`): the interval as it is,
   centred on it, or around its 5' end;
4. extract: `ReferenceExtractor` reads it from the reference (plain or BGZF FASTA; an index is built in a cache
   folder when none is beside the FASTA, so read-only folders work), upper-cased, reverse-complemented on '-'
   strands, N-padded past either chromosome end;
5. optionally check the FASTA's contig lengths against those of the reference the model was trained on.

Strands: a window anchored on the 5' end (`anchor: tss`, the promoter models) is strand-specific, so intervals
without a strand ('.' or BED3-5) are an error naming the file and their count, unless the caller reads everything
on '+' on purpose (`use_strand: false`). Warnings ("this result may be wrong": another assembly, N-rich windows)
are logged, shown and counted for provenance (provenance.WarningHandler).

The layers are kipoiseq's (read intervals, transform them, extract sequences, compose in the Dataset), but the
pieces are ours where kipoiseq 0.7.1's are wrong for these models; tests/test_library_parity.py runs each kipoiseq
piece next to ours and asserts both results: `kipoiseq.Interval.resize` places the window around a 1-bp interval one
base further right than ours on '+' (its `center()` of [500, 501) is 501; the site lands at index 149 of a 300 bp
window, ours at 150, where the trained models and the `kipoi test` expectations have it);
`kipoiseq.transforms.functional.resize_interval` cannot change a `kipoiseq.Interval` (read-only start/end) and wraps
a negative start to 4294967246 on a pybedtools Interval; `FastaStringExtractor` returns a shorter sequence past a
contig end, fails before its start and knows `chr20` only as `chr20`; `StringSeqIntervalDl(num_chr_fasta=True)`
keeps `chr20` on pandas 2 (`str.replace` no longer reads regexes) and cannot read a BED6 file without use_strand (it
reads the name column as a numeric target). And kipoiseq imports kipoi, which this module must not.
`ReferenceExtractor` has kipoiseq's extractor interface, so kipoiseq's `VariantSeqExtractor` composes with it
(N-padding and name matching included), as the tests show.
"""
from __future__ import annotations

import collections
import logging
import os
from dataclasses import dataclass
from typing import Iterable, Iterator, Mapping

import numpy as np

from genalm_models.genome import Genome, GenomeError, Interval, read_bed
from genalm_models.model_folder import WindowSpec, input_region, target_region  # noqa: F401  (re-exported)

from . import provenance
from .folder import compare_contigs, parse_reference_contigs

log = logging.getLogger(__name__)

# A window with more N than this is still predicted, but the user is told: its score mostly reflects the gap token.
N_WARNING_FRACTION = 0.5
MAX_N_WARNINGS = 5


@dataclass(frozen=True)
class SequenceItem:
    sequence: str          # what the model reads, 5'->3' on the interval's strand
    region: Interval       # the region the predictions refer to (window without flanks); may run off the contig
    interval: Interval     # the BED record as read
    targets: np.ndarray | None


def chunked(items: Iterable, size: int) -> Iterator[list]:
    """Consecutive lists of `size` items (the last one shorter), drawn from `items` as they are needed: a long
    input (a VCF's records, a chromosome's scan bins) is never held whole."""
    chunk: list = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def as_optional_int(value, name: str) -> int | None:
    """Dataloader arguments arrive from JSON/YAML: accept 300, "300", 300.0; None/"" mean unset."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none", "null")):
        return None
    if isinstance(value, bool):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    raise ValueError(f"{name} must be an integer, got {value!r}")


def as_bool(value, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("1", "true", "yes", "on"):
        return True
    if isinstance(value, str) and value.strip().lower() in ("0", "false", "no", "off", ""):
        return False
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise ValueError(f"{name} must be true or false, got {value!r}")


def window_spec(sequence_length=None, anchor="center", upstream=None, flank=0) -> WindowSpec:
    return WindowSpec(sequence_length=as_optional_int(sequence_length, "sequence_length"),
                      anchor=str(anchor or "center"),
                      upstream=as_optional_int(upstream, "upstream"),
                      flank=as_optional_int(flank, "flank") or 0).validate("dataloader arguments")


def require_strands(intervals: list[Interval], window: WindowSpec, use_strand: bool, path: str) -> None:
    """A TSS-anchored window needs every interval's strand: a '-' strand TSS read on '+' gets the window of the
    wrong side (a promoter scored 0.98 drops to 0.03). Unless use_strand is false (everything read on '+', on
    purpose), intervals without a strand are an error naming the file, their count and the first line."""
    if not use_strand or window.anchor != "tss" or window.sequence_length is None:
        return
    missing = [interval for interval in intervals if interval.strand not in ("+", "-")]
    if missing:
        raise GenomeError(
            f"{path}: {len(missing)} of {len(intervals)} intervals have no strand (no column 6, or '.'; first at "
            f"line {missing[0].line}), but this model's window is anchored on the 5' end (TSS) of the interval's "
            "strand, so a '-' strand site read as '+' gets the wrong window. Give strands in column 6 (BED6), or "
            "set use_strand: false to read every interval on '+'")


def warn_long_intervals(intervals: list[Interval], window: WindowSpec, path: str) -> int:
    """A TSS-anchored window is placed around each interval's 5' end (its start on '+', its end on '-'), whatever
    the interval's length: an interval longer than 1 bp (a whole promoter region, a 300 bp window) is not read as
    it is, and the window can lie mostly outside it (or in N padding near a contig end). One warning, counted for
    provenance, names the file and how many intervals; returns that number."""
    if window.anchor != "tss" or window.sequence_length is None:
        return 0
    long = [interval for interval in intervals if interval.width > 1]
    if long:
        widths = sorted(interval.width for interval in long)
        downstream = window.sequence_length - window.upstream - 1
        log.warning("%s: %d of %d intervals are longer than 1 bp (first: %s; median %d bp), but this "
                    "model reads the %d bp window -%d..+%d around each interval's 5' end (start on '+', end on "
                    "'-'), not the interval itself: most of such a window can lie outside the interval (or be N "
                    "padding near a contig end). Give one 1-bp interval per TSS (BED6 with strands)",
                    path, len(long), len(intervals), long[0].describe(), widths[len(widths) // 2],
                    window.sequence_length, window.upstream, downstream, extra={"genalm_kind": "long_tss_interval"})
    return len(long)


# Where recent input sequences came from (the BED line), so that an error raised later inside the model, which
# sees only strings (Kipoi hands `predict_on_batch` the inputs alone), can name the line. Bounded; the dataloader
# and the model share it when they run in one process (Kipoi's default, num_workers 0).
_ORIGINS: "collections.OrderedDict[int, str]" = collections.OrderedDict()
MAX_ORIGINS = 4096


def remember_origin(sequence: str, interval: Interval) -> None:
    _ORIGINS[hash(sequence)] = interval.describe()
    _ORIGINS.move_to_end(hash(sequence))
    while len(_ORIGINS) > MAX_ORIGINS:
        _ORIGINS.popitem(last=False)


def origin_of(sequence: str) -> str | None:
    """`chr20:100-200(+) from x.bed:12` for a sequence the dataloader read recently, else None."""
    return _ORIGINS.get(hash(sequence))


def is_cut_example(fasta_file: str | os.PathLike) -> bool:
    """A model folder's example FASTA, cut from the training reference by the exporter (its headers say so)."""
    import gzip

    path = str(fasta_file)
    if os.path.basename(path) != "example.fa.gz":
        return False
    try:
        with gzip.open(path, "rt") as handle:
            return " truncated at " in handle.readline()
    except OSError:
        return False


def _targets(interval: Interval) -> np.ndarray:
    values = []
    for column, text in enumerate(interval.extra, start=7):
        try:
            values.append(float(text))
        except ValueError:
            raise GenomeError(f"{interval.source}:{interval.line}: column {column} ({text!r}) is not a number; "
                              "extra BED columns are read as numeric targets - drop them or set "
                              "ignore_targets: true") from None
    return np.asarray(values, dtype=np.float32)


class ReferenceExtractor:
    """The extraction layer: the reference sequence of an interval, in kipoiseq's extractor interface
    (`extract(interval) -> str`, `use_strand`, `close()`, as `kipoiseq.extractors.BaseExtractor`), over our `Genome`.

    interval: anything with `chrom`, `start`, `end` (0-based, half-open) and `strand`: our `Interval` (an error then
    names its BED line) or a `kipoiseq.Interval` (kipoiseq's `VariantSeqExtractor` passes those).
    Returns `end - start` upper-case letters (A, C, G, T, N), 5'->3': the reverse complement on '-' when use_strand
    is true, '+' otherwise ('.' reads as '+'); N where the interval runs past either end of the contig; `chr20` and
    `20` name the same contig. Raises GenomeError for an unknown contig or a damaged FASTA (`Genome.fetch`).
    """

    def __init__(self, genome: Genome, use_strand: bool = True):
        self.genome = genome
        self._use_strand = use_strand

    @property
    def use_strand(self) -> bool:
        return self._use_strand

    def extract(self, interval, **kwargs) -> str:
        strand = interval.strand if self._use_strand and interval.strand in ("+", "-") else "+"
        if isinstance(interval, Interval):
            return self.genome.fetch(interval, strand=strand)
        return self.genome.fetch(interval.chrom, interval.start, interval.end, strand=strand)

    def close(self) -> None:
        self.genome.close()


class IntervalSequences:
    """Random access to the model inputs for every interval of a BED file (read, transform, extract: module doc)."""

    def __init__(self, intervals_file: str | os.PathLike, fasta_file: str | os.PathLike,
                 window: WindowSpec = WindowSpec(), use_strand: bool = True,
                 reference_contigs: str | Mapping[str, int] | None = None, ignore_targets: bool = False):
        self.intervals_file = str(intervals_file)
        self.fasta_file = str(fasta_file)
        self.window = window.validate("dataloader arguments")
        self.use_strand = use_strand
        # Open the FASTA first: a missing or unreadable reference is the more fundamental error.
        self.genome = Genome(fasta_file)
        self.extractor = ReferenceExtractor(self.genome, use_strand)
        self.intervals = list(read_bed(intervals_file))
        if not self.intervals:
            raise GenomeError(f"{intervals_file}: no intervals (the BED file is empty or holds only comment, "
                              "track and header lines); nothing to predict")
        require_strands(self.intervals, self.window, use_strand, self.intervals_file)
        self.long_tss_intervals = warn_long_intervals(self.intervals, self.window, self.intervals_file)
        self.fasta_names = [self._check_interval(interval) for interval in self.intervals]
        self.has_targets = bool(self.intervals[0].extra) and not ignore_targets
        if self.has_targets:
            self.targets = np.stack([self._consistent_targets(iv) for iv in self.intervals])
        self.reference_mismatches, self.reference_matches = self._check_reference(reference_contigs)
        self.n_rich_windows = 0  # windows seen so far that are more than N_WARNING_FRACTION N

    # -- checks done once, before any prediction ------------------------------------------------------------------
    def _check_interval(self, interval: Interval) -> str:
        name = self.genome.resolve(interval.chrom, interval)
        length = self.genome.contig_lengths[name]
        if interval.end > length:
            raise GenomeError(
                f"{interval.source}:{interval.line}: interval {interval.chrom}:{interval.start}-{interval.end} "
                f"extends past the end of {name} in {self.fasta_file} (length {length:,}); is the BED file for "
                "another assembly? (windows around intervals near the ends are N-padded; the interval itself "
                "must lie on the chromosome)")
        target_region(interval, self.window)  # raises for intervals the window cannot be placed on
        return name

    def _consistent_targets(self, interval: Interval) -> np.ndarray:
        values = _targets(interval)
        expected = len(self.intervals[0].extra)
        if len(values) != expected:
            raise GenomeError(f"{interval.source}:{interval.line}: {len(values)} extra (target) columns, but the "
                              f"first interval has {expected}; every line needs the same columns")
        return values

    def _check_reference(self, reference_contigs) -> tuple[list[str], list[str]]:
        expected = parse_reference_contigs(reference_contigs)
        if not expected:
            return [], []
        used = list(dict.fromkeys(self.fasta_names))
        mismatches, matches = compare_contigs(self.genome.contig_lengths, expected, only=used)
        if mismatches and is_cut_example(self.fasta_file):
            # the bundled example files are the training reference cut after the last example (export.py): shorter
            # contigs are expected there, not a sign of another assembly
            return [], used
        for message in mismatches:
            log.warning("%s: %s - the FASTA does not look like the assembly the model was trained on; "
                        "predictions may be meaningless", self.fasta_file, message,
                        extra={"genalm_kind": "reference_mismatch"})
        if not mismatches and not matches:
            log.warning("%s: none of the contigs used (%s) is in the model's reference (%s); the assembly cannot "
                        "be checked", self.fasta_file, ", ".join(used[:5]), ", ".join(list(expected)[:5]),
                        extra={"genalm_kind": "reference_unchecked"})
        return mismatches, matches

    # -- items ----------------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.intervals)

    def __getitem__(self, index: int) -> SequenceItem:
        interval = self.intervals[index]
        region = target_region(interval, self.window)
        sequence = self.extractor.extract(input_region(region, self.window))
        remember_origin(sequence, interval)
        self._warn_if_mostly_n(sequence, region)
        if not self.use_strand:
            region = Interval(region.chrom, region.start, region.end, name=region.name, strand="+",
                              source=region.source, line=region.line)
        return SequenceItem(sequence=sequence, region=region, interval=interval,
                            targets=self.targets[index] if self.has_targets else None)

    def _warn_if_mostly_n(self, sequence: str, region: Interval) -> None:
        """Every N-rich window is counted (provenance); the first MAX_N_WARNINGS are also shown."""
        if not sequence:
            return
        fraction = sequence.count("N") / len(sequence)
        if fraction <= N_WARNING_FRACTION:
            return
        self.n_rich_windows += 1
        message = (f"{region.describe()}: {100 * fraction:.0f}% of the window is N (assembly gap or chromosome "
                   "end); it is predicted anyway, but its score mostly reflects the gap token")
        if self.n_rich_windows > MAX_N_WARNINGS:
            provenance.note_warning(message, "n_rich_window")
            return
        more = (" (further N-rich windows are counted in the provenance file, not shown)"
                if self.n_rich_windows == MAX_N_WARNINGS else "")
        log.warning("%s%s", message, more, extra={"genalm_kind": "n_rich_window"})

    def region_id(self, interval: Interval) -> str:
        if interval.name and interval.name != ".":
            return interval.name
        return f"{interval.chrom}:{interval.start}-{interval.end}"

    def close(self) -> None:
        self.genome.close()

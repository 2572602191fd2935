"""Genomic intervals (0-based, half-open `[start, end)` as in BED) and BED reading (no torch, no kipoi here)."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
from dataclasses import dataclass
from typing import Iterable, Iterator, Optional, Union

from .common import STRANDS, GenomeError, PathLike, _existing_file, _where, numbered_lines


# ---------------------------------------------------------------------------------------------------
# Intervals and BED
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Interval:
    """A genomic interval, 0-based half-open `[start, end)` as in BED.

    `source`/`line` remember the file and line it was read from, so that any later error about it
    (unknown chromosome, window off the chromosome end) can point back at the input.

    `start` may be negative and `end` may exceed the chromosome length: windows placed around a site
    near a chromosome end do that, and `Genome.fetch` pads or rejects them explicitly. `start == end`
    is an empty interval (BED allows zero-length features such as insertion points).
    """

    chrom: str
    start: int
    end: int
    name: str = "."
    score: str = "."
    strand: str = "."
    extra: tuple = ()
    source: Optional[str] = None
    line: Optional[int] = None

    def __post_init__(self) -> None:
        where = _where(self.source, self.line)
        prefix = f"{where}: " if where else ""
        if not self.chrom:
            raise GenomeError(f"{prefix}empty chromosome name")
        for label, value in (("start", self.start), ("end", self.end)):
            if not isinstance(value, int) or isinstance(value, bool):
                raise GenomeError(f"{prefix}{label} must be an integer, got {value!r}")
        if self.start > self.end:
            raise GenomeError(f"{prefix}start {self.start} is greater than end {self.end}")
        if self.strand not in STRANDS:
            raise GenomeError(f"{prefix}strand must be one of + - . (got {self.strand!r})")

    @property
    def width(self) -> int:
        return self.end - self.start

    @property
    def center(self) -> int:
        """The middle base: `start + width // 2` (for even widths, the right one of the two middle bases)."""
        return self.start + self.width // 2

    @property
    def five_prime(self) -> int:
        """The 0-based position of the 5' end base: `start` on '+' and '.', `end - 1` on '-'.

        For a 1-bp TSS record this is the TSS itself on either strand.
        """
        if self.width == 0:
            raise GenomeError(f"{self.describe()}: an empty interval has no 5' end base")
        return self.end - 1 if self.strand == "-" else self.start

    def describe(self) -> str:
        """`chr20:100-200(+)`, followed by ` from file:line` when the interval came from a file."""
        text = f"{self.chrom}:{self.start}-{self.end}({self.strand})"
        where = _where(self.source, self.line)
        return f"{text} from {where}" if where else text

    def resize(self, width: int) -> "Interval":
        """Same centre (see `center`), new width; not strand-aware: extra base of an odd split goes left.

        For strand-aware windows around a site (a TSS), use `window` or `Interval.around`.
        """
        if width < 0:
            raise GenomeError(f"{self.describe()}: cannot resize to a negative width {width}")
        start = self.center - width // 2
        return dataclasses.replace(self, start=start, end=start + width)

    @classmethod
    def around(
        cls, chrom: str, anchor: int, upstream: int, downstream: int, strand: str = "+", **fields
    ) -> "Interval":
        """The window of offsets `-upstream .. +downstream` (both inclusive) around base `anchor` (0-based).

        The anchor itself is offset 0, so the window is `upstream + 1 + downstream` bases wide, and the
        anchor sits at index `upstream` of the fetched (strand-oriented) sequence on either strand.
        On '-', upstream lies at higher coordinates. The published GENA-LM promoter windows are
        `around(tss, 249, 50)` (300 bp), `around(tss, 1000, 999)` (2 kb), `around(tss, 8000, 7999)` (16 kb).
        `fields` (name, score, extra, source, line) are passed on to the new Interval.
        """
        if upstream < 0 or downstream < 0:
            raise GenomeError(f"upstream and downstream must be >= 0 (got {upstream}, {downstream})")
        if strand == "-":
            start, end = anchor - downstream, anchor + upstream + 1
        else:
            start, end = anchor - upstream, anchor + downstream + 1
        return cls(chrom, start, end, strand=strand, **fields)

    def window(self, upstream: int, downstream: int) -> "Interval":
        """`Interval.around` this interval's 5' end (its TSS for a TSS record), keeping strand, name and origin."""
        return Interval.around(
            self.chrom,
            self.five_prime,
            upstream,
            downstream,
            self.strand,
            name=self.name,
            score=self.score,
            extra=self.extra,
            source=self.source,
            line=self.line,
        )


_INTEGER = re.compile(r"-?[0-9]+")


def _parse_coordinate(text: str, label: str, where: str) -> int:
    # int() alone would also accept "1_000", " 7" and non-ASCII digits; BED coordinates are plain digits.
    if not _INTEGER.fullmatch(text):
        raise GenomeError(f"{where}: {label} {text!r} is not an integer")
    value = int(text)
    if value < 0:
        raise GenomeError(f"{where}: {label} {value} is negative")
    return value


def _is_bed_header(fields: list[str]) -> bool:
    """A column-name line such as `chrom start end` or `chr chromStart chromEnd`.

    Deliberately narrow, so that a malformed first data line is reported rather than skipped.
    """
    start_name, end_name = fields[1].lower(), fields[2].lower()
    return ("start" in start_name or start_name in ("begin", "from", "pos")) and (
        "end" in end_name or end_name in ("stop", "to")
    )


def read_bed(path: PathLike) -> Iterator[Interval]:
    """Stream the intervals of a BED file (plain or gzip/BGZF).

    Accepts BED3 to BED6 plus any extra columns (kept as strings in `Interval.extra`). Fields are
    tab-separated; a line without tabs is split on whitespace. Skipped: blank lines, `#` comments,
    `track` and `browser` lines, and one column-name line (`chrom start end ...`) before the first
    interval. Checked: at least 3 fields, integer 0 <= start <= end (start == end is a zero-length
    feature), strand one of + - . ; anything else raises GenomeError naming file and line.

    Why not `pybedtools.BedTool` (or kipoiseq's pandas-based `BedDataset`) for reading: pybedtools reads good
    files as this does, but its errors name neither file nor line (a short or space-separated line is an
    IndexError "list index out of range"), it refuses the column-name line and accepts strand '*'; kipoiseq's
    reader (in StringSeqIntervalDl without use_strand) fails on a BED6 name, reading it as a numeric target.
    tests/test_library_parity.py runs them on the same files. Interval algebra does use pybedtools
    (`merge_intervals`).
    """
    path = _existing_file(path, "BED file")
    seen_interval = False
    for line_number, line in numbered_lines(path, "BED file"):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        first_word = stripped.split(None, 1)[0]
        if first_word in ("track", "browser"):
            continue
        fields = line.rstrip().split("\t") if "\t" in line else stripped.split()
        where = f"{path}:{line_number}"
        if len(fields) < 3:
            raise GenomeError(f"{where}: expected at least 3 fields (chrom, start, end), found {len(fields)}")
        if not seen_interval and _is_bed_header(fields):
            seen_interval = True  # only one header line, and only before the data
            continue
        seen_interval = True
        start = _parse_coordinate(fields[1], "start", where)
        end = _parse_coordinate(fields[2], "end", where)
        strand = fields[5] if len(fields) > 5 else "."
        if strand not in STRANDS:
            raise GenomeError(f"{where}: strand {strand!r} is not one of + - .")
        # Interval itself rejects start > end and an empty chromosome name, naming this file and line.
        yield Interval(
            chrom=fields[0],
            start=start,
            end=end,
            name=fields[3] if len(fields) > 3 else ".",
            score=fields[4] if len(fields) > 4 else ".",
            strand=strand,
            extra=tuple(fields[6:]),
            source=str(path),
            line=line_number,
        )


# ---------------------------------------------------------------------------------------------------
# Interval algebra
# ---------------------------------------------------------------------------------------------------


def merge_intervals(intervals: Iterable[Union[Interval, tuple[str, int, int]]]) -> list[tuple[str, int, int]]:
    """Overlapping and book-ended intervals joined, as `bedtools merge` does; strands and names are ignored.

    intervals: `Interval`s or `(chrom, start, end)` tuples, 0-based half-open, in any order.
    Returns `(chrom, start, end)` tuples sorted by chromosome name, then start. Empty intervals (`start == end`)
    cover no base and are left out (bedtools would widen them to the base before). Runs `bedtools merge` through
    pybedtools; raises GenomeError when the `bedtools` program is missing.
    """
    return _bedtools("merge", intervals)


def subtract_intervals(intervals: Iterable[Union[Interval, tuple[str, int, int]]],
                       cuts: Iterable[Union[Interval, tuple[str, int, int]]]) -> list[tuple[str, int, int]]:
    """The parts of `intervals` that no interval of `cuts` covers, as `bedtools subtract` gives them.

    Both: `Interval`s or `(chrom, start, end)` tuples, 0-based half-open, in any order; negative starts are read as
    0 and empty intervals are left out (bedtools would widen them). Returns `(chrom, start, end)` tuples sorted by
    chromosome name, then start. Runs `bedtools subtract` through pybedtools; raises GenomeError when the
    `bedtools` program is missing.
    """
    return _bedtools("subtract", intervals, cuts)


def _rows(intervals) -> list[tuple[str, int, int]]:
    rows = []
    for item in intervals:
        chrom, start, end = (item.chrom, item.start, item.end) if isinstance(item, Interval) else item
        start = max(0, start)
        if start < end:
            rows.append((chrom, start, end))
    return rows


def _bedtools(operation: str, intervals, other=None) -> list[tuple[str, int, int]]:
    """`bedtools merge` (other None) or `bedtools subtract -a intervals -b other` through pybedtools; the temporary
    BED files pybedtools writes are removed before returning."""
    rows = _rows(intervals)
    cut_rows = _rows(other) if other is not None else []
    if not rows:
        return []
    if operation == "subtract" and not cut_rows:
        return sorted(rows, key=lambda row: (row[0], row[1]))
    import pybedtools  # imported here: pybedtools registers an atexit clean-up on import

    created = []

    def keep(bed):
        created.append(bed.fn)
        return bed

    try:
        try:
            source = keep(pybedtools.BedTool(rows))  # BedTool(list) writes a temporary file
            if operation == "merge":  # merge needs sorted input; subtract does not (one bedtools process)
                result_bed = keep(keep(source.sort()).merge())
            else:
                result_bed = keep(source.subtract(keep(pybedtools.BedTool(cut_rows))))
            result = [(row.chrom, row.start, row.end) for row in result_bed]
        except (OSError, pybedtools.helpers.BEDToolsError) as exc:
            raise GenomeError(f"bedtools {operation} of {len(rows)} intervals failed ({exc}); is the `bedtools` "
                              "program installed (Debian/Ubuntu: apt-get install bedtools; conda: bioconda::bedtools)?"
                              ) from exc
    finally:
        for path in created:
            with contextlib.suppress(OSError):
                os.unlink(path)
    return sorted(result, key=lambda row: (row[0], row[1]))

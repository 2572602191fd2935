"""VCF reading: records with 1-based `pos` (as the file says) and 0-based `start`, genotypes, samples
(no torch, no kipoi here). Applying alleles to a sequence is `variants.apply_variants`.

Records are read by htslib through `pysam.VariantFile` (plain, gzip or BGZF VCF), the parser bcftools uses, so a
record htslib cannot parse is refused here too. Next to it, in step, the text of the same file is read line by line,
because htslib alone is not enough for what we promise (each shown in tests/test_library_parity.py):
- line numbers: htslib reports none ("unable to parse next record"); every error here names file and line;
- the checks htslib does not make: it reads QUAL `high` as 0, drops sample columns beyond the header's, accepts
  POS 0 and REF `AXG`, reads an empty ALT (`G,,T`) as `.`, and reports a blank line as a record it cannot parse (skipped here, as
  before);
- the line as written (`VcfRecord.raw`, `info`, `format`, `samples`): the variant scorer copies each input line to
  its output with only INFO changed, byte for byte; htslib would re-write it (QUAL `50.0` as `50`, and so on). QUAL
  is also read from the text: htslib keeps it as a 32-bit float (50.1 becomes 50.099998474121094).
While a reader reads, htslib shows its errors (on stderr, e.g. `[E::vcf_parse_format_max3] Incorrect number of
FORMAT fields`, just before our error naming file and line) but not its warnings about INFO / FORMAT fields and
contigs missing from the header (most hand-written VCFs); its verbosity is restored after each call. htslib is
given an open file rather than the path: given the path, pysam 0.24 cannot read a plain-gzip VCF ("seek not
implemented in files compressed by method 1").

Writing stays text (plugin/veff_io.py): our INFO IDs are Kipoi's `KV:<model>:<score>`, which htslib 1.24 (pysam
0.24) reads and writes but warns about on every header line ('Invalid tag name': VCF 4.3 IDs match
`[A-Za-z_][0-9A-Za-z_.]*`), and a pysam writer would re-write the input records and add a `##FILTER=<ID=PASS>`
line the input did not have.
"""

from __future__ import annotations

import contextlib
import itertools
import re
from dataclasses import dataclass
from typing import Iterator, Optional

import pysam

from .common import _IUPAC_BASES, GenomeError, PathLike, _existing_file, _where, numbered_lines
from .intervals import Interval


# ---------------------------------------------------------------------------------------------------
# VCF
# ---------------------------------------------------------------------------------------------------

_VCF_COLUMNS = ("#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO")
# REF: the VCF specification allows A, C, G, T, N; real files built on references that contain IUPAC
# ambiguity codes (GRCh37 has a few) carry those too, so they are accepted.
_VCF_BASES = re.compile(f"[{_IUPAC_BASES}{_IUPAC_BASES.lower()}]+")
_VCF_SYMBOLIC_ALT = re.compile(r"<[^<>]+>")
_GENOTYPE = re.compile(r"(\.|[0-9]+)([/|](\.|[0-9]+))*")


@dataclass(frozen=True)
class Genotype:
    """One sample's GT: allele index per haplotype (0 = REF, k = k-th ALT, None = missing `.`)."""

    alleles: tuple[Optional[int], ...]
    phased: bool  # True when every separator is '|' (trivially True for a haploid call)


def parse_genotype(text: str) -> Genotype:
    """Parse a GT value such as `0|1`, `1/2`, `./.`, `1` or `.`."""
    if not _GENOTYPE.fullmatch(text):
        raise GenomeError(f"GT value {text!r} is not a genotype such as 0|1, 1/2 or ./.")
    alleles = tuple(None if allele == "." else int(allele) for allele in re.split(r"[/|]", text))
    return Genotype(alleles=alleles, phased="/" not in text)


@dataclass(frozen=True)
class VcfRecord:
    """One VCF data line. `pos` is 1-based as in the file; `start`/`end` give the 0-based REF span."""

    chrom: str
    pos: int
    id: str
    ref: str
    alts: tuple[str, ...]  # empty when ALT is '.'
    qual: Optional[float]  # None when QUAL is '.'
    filter: str
    info: str
    format: Optional[str]  # None when the file has no FORMAT column
    samples: tuple[str, ...]  # the raw per-sample columns
    line: int
    raw: str
    source: Optional[str] = None

    @property
    def start(self) -> int:
        return self.pos - 1

    @property
    def end(self) -> int:
        return self.pos - 1 + len(self.ref)

    def to_interval(self) -> Interval:
        """The REF span as an Interval that remembers this record's file and line."""
        return Interval(self.chrom, self.start, self.end, name=self.id, source=self.source, line=self.line)

    def genotypes(self) -> list[Genotype]:
        """Each sample's GT as allele indices; a sample without a GT value counts as missing."""
        where = _where(self.source, self.line)
        if self.format is None or not self.samples:
            raise GenomeError(f"{where}: the record has no samples, so no genotypes")
        keys = self.format.split(":")
        if "GT" not in keys:
            raise GenomeError(f"{where}: FORMAT {self.format!r} has no GT field")
        gt_index = keys.index("GT")
        result = []
        for sample_number, sample in enumerate(self.samples, start=1):
            values = sample.split(":")
            # Trailing FORMAT fields may be dropped in a sample column (VCF 4.3, section 1.6.2).
            text = values[gt_index] if gt_index < len(values) else "."
            try:
                genotype = parse_genotype(text)
            except GenomeError as exc:
                raise GenomeError(f"{where}: sample {sample_number}: {exc}") from None
            for allele in genotype.alleles:
                if allele is not None and allele > len(self.alts):
                    raise GenomeError(
                        f"{where}: sample {sample_number}: allele {allele} in GT {text!r} but only "
                        f"{len(self.alts)} ALT allele(s)"
                    )
            result.append(genotype)
        return result


_HTS_LOG_ERRORS_ONLY = 1  # htslib's hts_verbose: 0 off, 1 errors, 3 warnings (its default)


@contextlib.contextmanager
def _quiet_htslib(level: int = _HTS_LOG_ERRORS_ONLY) -> Iterator[None]:
    """htslib's messages above `level` off for one call, its verbosity (process-wide) put back after it."""
    previous = pysam.set_verbosity(level)
    try:
        yield
    finally:
        pysam.set_verbosity(previous)


class VcfReader:
    """Streaming VCF reader (plain, gzip or bgzip): htslib's records, with line numbers and the line's text.

    The header is read when the reader is created: `header_lines` holds every header line (the `##`
    meta lines and the `#CHROM` column line) so a writer can copy it, `samples` the sample names.
    Iterating yields `VcfRecord`s one line at a time. Blank lines are skipped; a malformed line raises
    GenomeError naming file and line (module docstring: what htslib checks and what is checked here).
    Use as a context manager, or call `close()`, to release the file.
    """

    def __init__(self, path: PathLike):
        self.path = _existing_file(path, "VCF file")
        self.header_lines: list[str] = []
        self.samples: tuple[str, ...] = ()
        self._has_column_line = False
        self._lines = numbered_lines(self.path, "VCF file")
        self._first_data: Optional[tuple[int, str]] = None
        self._htslib = None
        self._handle = None
        try:
            for line_number, line in self._lines:
                if line.startswith("##"):
                    self.header_lines.append(line)
                elif line.startswith("#"):
                    self._read_column_line(line_number, line)
                    self.header_lines.append(line)
                elif line.strip():
                    self._first_data = (line_number, line)
                    break
            self._htslib = self._open_htslib()
            self._records = iter(self._htslib)
        except BaseException:
            self.close()
            raise

    def _open_htslib(self) -> "pysam.VariantFile":
        if not self.header_lines and self._first_data is None:
            raise GenomeError(f"{self.path}: empty file (a VCF starts with a ##fileformat=VCFv4.x line)")
        if not self.header_lines or not self.header_lines[0].startswith("##fileformat="):
            raise GenomeError(f"{self.path}:1: the first line must be ##fileformat=VCFv4.x (htslib, the VCF reader, "
                              "refuses a file without it)")
        if not self._has_column_line:
            line = self._first_data[0] if self._first_data is not None else len(self.header_lines) + 1
            raise GenomeError(f"{self.path}:{line}: no #CHROM column line before the first record")
        self._handle = open(self.path, "rb")
        with _quiet_htslib():
            try:
                return pysam.VariantFile(self._handle)
            except (OSError, ValueError) as exc:
                raise GenomeError(f"{self.path}: htslib cannot read the VCF header ({exc})") from None

    def _read_column_line(self, line_number: int, line: str) -> None:
        where = f"{self.path}:{line_number}"
        if self._has_column_line:
            raise GenomeError(f"{where}: a second #CHROM header line")
        columns = line.split("\t")
        if tuple(columns[:8]) != _VCF_COLUMNS:
            raise GenomeError(f"{where}: the column line must start with {' '.join(_VCF_COLUMNS)} (tab-separated)")
        if len(columns) > 8 and columns[8] != "FORMAT":
            raise GenomeError(f"{where}: column 9 must be FORMAT, found {columns[8]!r}")
        if len(columns) == 9:
            raise GenomeError(f"{where}: a FORMAT column but no sample columns")
        first_column: dict[str, int] = {}
        for column, name in enumerate(columns[9:], start=10):
            if name in first_column:
                raise GenomeError(f"{where}: sample {name!r} names columns {first_column[name]} and {column}; sample "
                                  "names must be unique (VCF 4.x; htslib refuses the header)")
            first_column[name] = column
        self.samples = tuple(columns[9:])
        self._has_column_line = True

    def __iter__(self) -> Iterator[VcfRecord]:
        first = [self._first_data] if self._first_data is not None else []
        self._first_data = None
        for line_number, line in itertools.chain(first, self._lines):
            if not line.strip():
                self._skip_blank_line()
                continue
            if line.startswith("#"):
                raise GenomeError(f"{self.path}:{line_number}: header line after the first variant")
            yield self._parse(line_number, line)

    def _next_htslib_record(self, where: str) -> "pysam.VariantRecord":
        with _quiet_htslib():
            try:
                return next(self._records)
            except StopIteration:
                raise GenomeError(f"{where}: htslib found no record here (did the file change while it was "
                                  "read?)") from None
            except (OSError, ValueError) as exc:
                raise GenomeError(f"{where}: htslib cannot parse this record ({exc})") from None

    def _skip_blank_line(self) -> None:
        """htslib reads a blank line as a record it cannot parse (one error per line), then goes on: consume it."""
        with _quiet_htslib(0):
            try:
                record = next(self._records)
            except (StopIteration, OSError, ValueError):
                return
        raise GenomeError(f"{self.path}: htslib read a record ({record.chrom}:{record.pos}) where the text has a blank "
                          "line; the reader lost its place in the file")

    def _parse(self, line_number: int, line: str) -> VcfRecord:
        """Our checks of the line's text (those htslib does not make), then htslib's record for the same line."""
        where = f"{self.path}:{line_number}"
        fields = line.split("\t")
        expected = 8 if not self.samples else 9 + len(self.samples)
        if len(fields) != expected:
            raise GenomeError(f"{where}: expected {expected} tab-separated fields, found {len(fields)}")
        chrom, pos_text, _, ref, alt_text, qual_text = fields[:6]
        if not chrom:
            raise GenomeError(f"{where}: empty CHROM")
        if not pos_text.isascii() or not pos_text.isdigit() or int(pos_text) < 1:
            raise GenomeError(f"{where}: POS {pos_text!r} is not a positive integer")
        if not _VCF_BASES.fullmatch(ref):
            raise GenomeError(f"{where}: REF {ref!r} is not a sequence of nucleotides")
        for alt in () if alt_text == "." else alt_text.split(","):
            if not _is_valid_alt(alt):
                raise GenomeError(f"{where}: ALT allele {alt!r} is neither bases, '*', <SYMBOLIC> nor a breakend")
        qual: Optional[float] = None
        if qual_text != ".":
            try:
                qual = float(qual_text)
            except ValueError:
                raise GenomeError(f"{where}: QUAL {qual_text!r} is not a number or '.'") from None
        record = self._next_htslib_record(where)
        if (record.chrom, record.pos) != (chrom, int(pos_text)):
            raise GenomeError(f"{where}: htslib read {record.chrom}:{record.pos} where the line says "
                              f"{chrom}:{pos_text}; the reader lost its place in the file")
        return VcfRecord(
            chrom=record.chrom,
            pos=record.pos,
            id=record.id or ".",
            ref=record.ref,
            alts=record.alts or (),
            qual=qual,
            filter=";".join(record.filter.keys()) or ".",
            info=fields[7],
            format=fields[8] if len(fields) > 8 else None,
            samples=tuple(fields[9:]),
            line=line_number,
            raw=line,
            source=str(self.path),
        )

    def close(self) -> None:
        self._lines.close()
        if self._htslib is not None:
            self._htslib.close()
        if self._handle is not None:
            self._handle.close()

    def __enter__(self) -> "VcfReader":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def _is_valid_alt(alt: str) -> bool:
    if alt == "*" or _VCF_BASES.fullmatch(alt) or _VCF_SYMBOLIC_ALT.fullmatch(alt):
        return True
    # Breakends: t[p[, ]p]t, and single breakends .t / t.
    if "[" in alt or "]" in alt:
        return True
    return len(alt) > 1 and (alt.startswith(".") or alt.endswith(".")) and bool(_VCF_BASES.fullmatch(alt.strip(".")))


def read_vcf(path: PathLike) -> Iterator[VcfRecord]:
    """Stream the records of a VCF file; use `VcfReader` when the header or samples are needed too."""
    with VcfReader(path) as reader:
        yield from reader

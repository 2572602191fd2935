"""Genome access: FASTA sequences, BED intervals and VCF variants (no torch, no kipoi here).

Coordinates follow the BED convention everywhere in this module: 0-based, half-open `[start, end)`.
The only 1-based number is `VcfRecord.pos`, because that is what a VCF file says; `VcfRecord.start`
gives the 0-based equivalent.

Every problem with an input file raises `GenomeError` (a `ValueError`) whose message names the file,
the line when there is one, and what is wrong, e.g. `promoters.bed:12: start 500 is greater than end 400`.
"""

from __future__ import annotations

import bisect
import dataclasses
import gzip
import hashlib
import os
import re
import secrets
import logging
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Iterator, Optional, Union

PathLike = Union[str, "os.PathLike[str]"]

log = logging.getLogger(__name__)

STRANDS = ("+", "-", ".")
PAD_MODES = ("N", "error")


class GenomeError(ValueError):
    """A problem with a genome input (FASTA, BED, VCF, interval): the message says where and what."""


def _where(source: Optional[PathLike], line: Optional[int]) -> str:
    """`file:line` (or just `file`) for error messages; empty when nothing is known."""
    if source is None:
        return ""
    return f"{source}:{line}" if line is not None else f"{source}"


# ---------------------------------------------------------------------------------------------------
# Sequences
# ---------------------------------------------------------------------------------------------------

# IUPAC nucleotide codes and their complements. N (any base) complements to N, and the two-base codes
# S (G/C) and W (A/T) are their own complements.
_IUPAC_BASES = "ACGTUNRYSWKMBDHV"
_IUPAC_COMPLEMENTS = "TGCAANYRSWMKVHDB"
_COMPLEMENT_TABLE = str.maketrans(
    _IUPAC_BASES + _IUPAC_BASES.lower(), _IUPAC_COMPLEMENTS + _IUPAC_COMPLEMENTS.lower()
)
_NON_IUPAC = re.compile(f"[^{_IUPAC_BASES}{_IUPAC_BASES.lower()}]")
_NOT_ACGTN = re.compile("[^ACGTN]")
MAX_AMBIGUITY_WARNINGS = 5


def reverse_complement(sequence: str) -> str:
    """Reverse complement of a DNA sequence; IUPAC-aware, keeps upper/lower case, N stays N.

    Raises GenomeError for characters that are not IUPAC nucleotide codes, rather than passing them
    through silently.
    """
    bad = _NON_IUPAC.search(sequence)
    if bad:
        raise GenomeError(
            f"cannot reverse-complement: {bad.group()!r} at position {bad.start()} is not an IUPAC nucleotide code"
        )
    return sequence.translate(_COMPLEMENT_TABLE)[::-1]


# ---------------------------------------------------------------------------------------------------
# Reading text files (plain or gzip/BGZF) with line numbers
# ---------------------------------------------------------------------------------------------------

_GZIP_MAGIC = b"\x1f\x8b"


def _existing_file(path: PathLike, what: str) -> Path:
    path = Path(path)
    if not path.exists():
        raise GenomeError(f"{what} not found: {path}")
    if not path.is_file():
        raise GenomeError(f"{what} is not a file: {path}")
    return path


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(2) == _GZIP_MAGIC


def open_text(path: PathLike) -> IO[str]:
    """Open a text file for reading, gunzipping it when it is gzip or BGZF compressed.

    Compression is recognised by the file's first bytes, not its name, so a `.bed` that is really
    gzipped (or a `.gz` that is not) still reads correctly.
    """
    path = _existing_file(path, "file")
    if _is_gzip(path):
        return gzip.open(path, "rt", encoding="utf-8")
    return open(path, "r", encoding="utf-8")


def numbered_lines(path: PathLike, what: str = "file") -> Iterator[tuple[int, str]]:
    """Yield `(line_number, line)` for a plain or gzipped text file, line numbers from 1, line endings removed.

    Undecodable text and corrupt compressed data become GenomeError naming the file and line.
    """
    path = _existing_file(path, what)
    line_number = 0
    # Lines are read as bytes and decoded one by one: a text wrapper decodes in chunks, which would
    # report an encoding error at the wrong line.
    with (gzip.open(path, "rb") if _is_gzip(path) else open(path, "rb")) as handle:
        try:
            for line_number, raw_line in enumerate(handle, start=1):
                try:
                    line = raw_line.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise GenomeError(f"{path}:{line_number}: not UTF-8 text ({exc.reason})") from None
                yield line_number, line.rstrip("\r\n")
        except (OSError, EOFError, zlib.error) as exc:
            raise GenomeError(f"{path}:{line_number + 1}: cannot decompress ({exc})") from exc


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
# FASTA
# ---------------------------------------------------------------------------------------------------


def _compression(path: Path) -> str:
    """'plain', 'bgzf' or 'gzip' (plain gzip cannot be indexed for random access)."""
    with open(path, "rb") as handle:
        header = handle.read(18)
    if header[:2] != _GZIP_MAGIC:
        return "plain"
    # BGZF = gzip with the FEXTRA flag and a 'BC' extra subfield (SAM/BAM specification, section 4.1).
    has_extra = len(header) >= 4 and header[3] & 0x04
    if has_extra and header[12:14] == b"BC":
        return "bgzf"
    return "gzip"


def default_index_cache_dir() -> Path:
    """Where FASTA indexes are built when none sits (fresh) beside the FASTA.

    `$GENALM_CACHE_DIR/fasta_index`, else `$XDG_CACHE_HOME/genalm_models/fasta_index`, else
    `~/.cache/genalm_models/fasta_index`.
    """
    if os.environ.get("GENALM_CACHE_DIR"):
        return Path(os.environ["GENALM_CACHE_DIR"]) / "fasta_index"
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(xdg) / "genalm_models" / "fasta_index"


def _writable_dir(preferred: Path) -> Path:
    """`preferred` if it can be created and written to, else a per-user folder in the temp dir."""
    try:
        preferred.mkdir(parents=True, exist_ok=True)
        probe = preferred / f".probe.{os.getpid()}.{secrets.token_hex(4)}"
        probe.touch()
        probe.unlink()
        return preferred
    except OSError:
        # A read-only home (containers, clusters): fall back to a per-user folder in the temp dir.
        user = os.getuid() if hasattr(os, "getuid") else "user"
        fallback = Path(tempfile.gettempdir()) / f"genalm_models-{user}" / "fasta_index"
        fallback.mkdir(parents=True, exist_ok=True)
        return fallback


def _is_fresh(index: Path, fasta: Path) -> bool:
    return index.is_file() and index.stat().st_mtime >= fasta.stat().st_mtime


# The 28-byte empty block every complete BGZF file ends with (SAM/BAM specification, section 4.1.2).
_BGZF_EOF = bytes.fromhex("1f8b08040000000000ff0600424302001b0003000000000000000000")


def _bgzf_looks_truncated(path: Path) -> bool:
    size = path.stat().st_size
    if size < len(_BGZF_EOF):
        return True
    with open(path, "rb") as handle:
        handle.seek(size - len(_BGZF_EOF))
        return handle.read() != _BGZF_EOF


def _read_fai(fai: Path) -> list[tuple[str, int, int, int, int]]:
    entries = []
    for number, line in enumerate(fai.read_text().splitlines(), 1):
        fields = line.split("\t")
        if len(fields) < 5 or not all(f.isdigit() for f in fields[1:5]):
            raise GenomeError(f"{fai}:{number}: not a FASTA index line (name, length, offset, bases, bytes)")
        entries.append((fields[0], *(int(f) for f in fields[1:5])))
    return entries


def _read_gzi(gzi: Path) -> list[tuple[int, int]]:
    """(compressed offset, uncompressed offset) of each BGZF block start, the first block (0, 0) included."""
    data = gzi.read_bytes()
    if len(data) < 8:
        raise GenomeError(f"{gzi}: empty or truncated .gzi index")
    count = int.from_bytes(data[:8], "little")
    if len(data) != 8 + 16 * count:
        raise GenomeError(f"{gzi}: {len(data)} bytes, but its header promises {count} blocks")
    pairs = [(int.from_bytes(data[8 + 16 * i: 16 + 16 * i], "little"),
              int.from_bytes(data[16 + 16 * i: 24 + 16 * i], "little")) for i in range(count)]
    return [(0, 0)] + pairs


def _line_before(read, offset: int, limit: int = 1 << 20) -> Optional[bytes]:
    """The line that ends (with its newline) right before byte `offset`, or None if byte offset-1 is no newline."""
    if offset <= 0:
        return None
    window = 256
    while True:
        start = max(0, offset - window)
        data = read(start, offset - start)
        if not data.endswith(b"\n"):
            return None
        body = data[:-1].rstrip(b"\r")
        cut = body.rfind(b"\n")
        if cut >= 0 or start == 0:
            return body[cut + 1:]
        if window >= limit:
            return body
        window *= 4


def index_mismatch(fasta: Path, fai: Path, gzi: Optional[Path]) -> Optional[str]:
    """Why the index `fai` (and `gzi` for BGZF) does not belong to `fasta`, or None when it is consistent.

    Modification times prove nothing (`cp -p`, `rsync -a`, tar and downloaders keep old ones), so the index is
    checked against the file itself: each sequence's header line `>name` must end right before the offset the
    index gives for it, the last sequence must end where the file (or its uncompressed data) ends, and a BGZF
    file's `.gzi` blocks must lie inside the file. Reads a few bytes per sequence.
    """
    entries = _read_fai(fai)
    if not entries:
        return f"{fai} lists no sequences"
    blocks = _read_gzi(gzi) if gzi is not None else None
    size = fasta.stat().st_size
    if blocks is not None and blocks[-1][0] >= size:
        return (f"{gzi} indexes a BGZF block at byte {blocks[-1][0]:,}, but {fasta} has only {size:,} bytes "
                "(truncated file, or an index of another file)")

    def sequence_end(offset: int, length: int, line_bases: int, line_bytes: int) -> int:
        full, rest = divmod(length, line_bases) if line_bases else (0, 0)
        return offset + full * line_bytes + rest

    if blocks is None:
        def read(start: int, count: int) -> bytes:
            with open(fasta, "rb") as handle:
                handle.seek(max(start, 0))
                return handle.read(count)
    else:
        from Bio import bgzf

        handle = bgzf.BgzfReader(str(fasta), "rb")
        starts = [u for _, u in blocks]

        def read(start: int, count: int) -> bytes:
            start = max(start, 0)
            coffset, uoffset = blocks[bisect.bisect_right(starts, start) - 1]
            handle.seek(bgzf.make_virtual_offset(coffset, start - uoffset))
            return handle.read(count)
    try:
        for name, length, offset, line_bases, line_bytes in entries:
            header = _line_before(read, offset)
            if header is None:
                return (f"the index says sequence {name!r} starts at byte {offset:,} of {fasta}, but no line ends "
                        "there (an index of another version of the file)")
            if not header.startswith(b">") or header[1:].split()[:1] != [name.encode()]:
                shown = header.decode("ascii", "replace")[:60]
                return (f"the index says sequence {name!r} starts at byte {offset:,}, but the line before it in "
                        f"{fasta} is {shown!r}, not '>{name} ...' (an index of another version of the file)")
        name, length, offset, line_bases, line_bytes = entries[-1]
        end = sequence_end(offset, length, line_bases, line_bytes)
        if length and len(read(end - 1, 1)) != 1:
            return f"{fasta} ends before the last sequence {name!r} does: truncated file, or an index of another file"
        rest = read(end, 4096)
        if rest.strip():
            return (f"the index says the last sequence {name!r} ends at byte {end:,}, but {fasta} goes on with "
                    f"{rest[:20]!r}: an index of another version of the file")
    except GenomeError:
        raise
    except Exception as exc:  # zlib / struct errors of a damaged BGZF file
        return f"{fasta} cannot be read where its index points ({exc.__class__.__name__}: {exc}): truncated or " \
               "corrupt file, or an index of another file"
    finally:
        if blocks is not None:
            handle.close()
    return None


class Genome:
    """Random access to a FASTA file (plain or BGZF-compressed) through pyfaidx.

    - Works without an index beside the FASTA, even in a read-only folder: the index is then built once
      into a cache folder (`default_index_cache_dir()` or `index_dir`), under a name keyed by the FASTA's
      absolute path, modification time and size, so an edited FASTA gets a new index. Nothing is ever
      written beside the FASTA.
    - Chromosome names are matched across conventions: `chr20`<->`20`, `chrX`<->`X`, `chrM`<->`MT`.
    - Safe with DataLoader worker processes: the file handle is opened lazily in each process (a handle
      inherited through fork would share its file offset with the parent) and is not pickled.
    """

    def __init__(self, fasta_path: PathLike, index_dir: Optional[PathLike] = None):
        self.path = _existing_file(fasta_path, "FASTA file").resolve()
        self._compression = _compression(self.path)
        if self._compression == "gzip":
            raise GenomeError(
                f"{self.path}: gzip-compressed FASTA cannot be read at random positions; "
                f"recompress it with `bgzip` (htslib) or decompress it"
            )
        self._fai_path, self._gzi_path = self._find_or_build_index(index_dir)
        self._fasta = None
        self._owner_pid: Optional[int] = None
        reader = self._reader()
        self._lengths = {name: len(reader[name]) for name in reader.keys()}
        if not self._lengths:
            raise GenomeError(f"{self.path}: no sequences found (is this a FASTA file?)")
        self._resolved: dict[str, str] = {}
        self.ambiguous_bases = 0       # IUPAC ambiguity codes read as N so far (see `fetch`)
        self._ambiguous_windows = 0

    # -- index -------------------------------------------------------------------------------------

    def _find_or_build_index(self, index_dir: Optional[PathLike]) -> tuple[Path, Optional[Path]]:
        bgzf = self._compression == "bgzf"
        if bgzf and _bgzf_looks_truncated(self.path):
            raise GenomeError(f"{self.path}: the BGZF file does not end with the end-of-file block: it looks "
                              "truncated (an interrupted download or copy?); fetch it again")
        beside_fai = Path(f"{self.path}.fai")
        beside_gzi = Path(f"{self.path}.gzi") if bgzf else None
        if beside_fai.is_file() and (beside_gzi is None or beside_gzi.is_file()):
            problem = index_mismatch(self.path, beside_fai, beside_gzi)
            if problem is None:
                return beside_fai, beside_gzi
            # never trusted, never overwritten: a fresh index goes to the cache (keyed by path, mtime and size)
            log.warning("%s: does not belong to its FASTA: %s; using a new index built in the cache instead (delete "
                        "or rebuild the stale one with `samtools faidx`)", beside_fai, problem,
                        extra={"genalm_kind": "fasta_index_mismatch"})

        if index_dir is not None:
            cache = Path(index_dir)
            try:
                cache.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise GenomeError(f"cannot create the FASTA index folder {cache}: {exc}") from exc
        else:
            cache = _writable_dir(default_index_cache_dir())
        fasta_stat = self.path.stat()
        identity = f"{self.path}\0{fasta_stat.st_mtime_ns}\0{fasta_stat.st_size}"
        key = hashlib.sha256(identity.encode()).hexdigest()[:16]
        fai = cache / f"{self.path.name}.{key}.fai"
        gzi = cache / f"{self.path.name}.{key}.gzi" if bgzf else None
        if fai.is_file() and (gzi is None or gzi.is_file()) and index_mismatch(self.path, fai, gzi) is None:
            return fai, gzi

        # Build under temporary names and move into place, so that several processes starting at once
        # never read a half-written index (the last rename wins; all build the same content).
        token = f"{os.getpid()}.{secrets.token_hex(4)}.tmp"
        tmp_fai = fai.with_name(f"{fai.name}.{token}")
        tmp_gzi = gzi.with_name(f"{gzi.name}.{token}") if gzi is not None else None
        try:
            self._open_pyfaidx(tmp_fai, tmp_gzi, build=True).close()
            if gzi is not None:
                os.replace(tmp_gzi, gzi)
            os.replace(tmp_fai, fai)
        finally:
            for leftover in (tmp_fai, tmp_gzi):
                if leftover is not None and leftover.exists():
                    leftover.unlink()
        return fai, gzi

    def _open_pyfaidx(self, fai: Path, gzi: Optional[Path], build: bool):
        import pyfaidx  # imported here so that reading BED/VCF does not need it

        options = dict(indexname=str(fai), as_raw=True, rebuild=build, build_index=build)
        if gzi is not None:
            options["gzi_indexname"] = str(gzi)
        try:
            return pyfaidx.Fasta(str(self.path), **options)
        except GenomeError:
            raise
        except Exception as exc:  # pyfaidx signals malformed FASTA with several exception types
            raise GenomeError(f"{self.path}: cannot index or open FASTA: {exc}") from exc

    def _reader(self):
        if self._fasta is None or self._owner_pid != os.getpid():
            self._fasta = self._open_pyfaidx(self._fai_path, self._gzi_path, build=False)
            self._owner_pid = os.getpid()
        return self._fasta

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_fasta"] = None
        state["_owner_pid"] = None
        return state

    def close(self) -> None:
        if self._fasta is not None and self._owner_pid == os.getpid():
            self._fasta.close()
        self._fasta = None
        self._owner_pid = None

    def __enter__(self) -> "Genome":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Genome({str(self.path)!r}, {len(self._lengths)} sequences)"

    # -- names -------------------------------------------------------------------------------------

    @property
    def contig_lengths(self) -> dict[str, int]:
        """Sequence name -> length, in FASTA order."""
        return dict(self._lengths)

    def __contains__(self, chrom: str) -> bool:
        try:
            self.resolve(chrom)
        except GenomeError:
            return False
        return True

    def resolve(self, chrom: str, interval: Optional[Interval] = None) -> str:
        """The FASTA's name for `chrom`, trying the other naming convention when needed.

        `interval` (optional) only improves the error message: it names the BED file and line.
        """
        if chrom in self._lengths:
            return chrom
        if chrom in self._resolved:
            return self._resolved[chrom]
        for candidate in _alternative_chrom_names(chrom):
            if candidate in self._lengths:
                self._resolved[chrom] = candidate
                return candidate
        names = list(self._lengths)
        shown = ", ".join(names[:8]) + (f", ... ({len(names)} in all)" if len(names) > 8 else "")
        origin = ""
        if interval is not None and interval.source is not None:
            origin = f"{_where(interval.source, interval.line)}: "
        raise GenomeError(f"{origin}chromosome {chrom!r} is not in {self.path}; it has: {shown}")

    # -- sequence ----------------------------------------------------------------------------------

    def fetch(
        self,
        where: Union[Interval, str],
        start: Optional[int] = None,
        end: Optional[int] = None,
        strand: Optional[str] = None,
        pad: str = "N",
    ) -> str:
        """The upper-case sequence of `[start, end)` on `strand`, 5'->3'.

        Call as `fetch(interval)` or `fetch(chrom, start, end)`. `strand` defaults to the interval's
        own strand ('.' reads as '+'), or '+' for `fetch(chrom, ...)`; on '-' the reverse complement is
        returned. Parts of the interval beyond either chromosome end are filled with N on the side
        where they lie (so on '-' a run off the chromosome start ends up at the 3' end of the result)
        when `pad="N"`, and raise GenomeError when `pad="error"`; the result is never shorter than
        the interval.
        """
        if isinstance(where, Interval):
            if start is not None or end is not None:
                raise TypeError("fetch(interval) takes no start/end; use fetch(chrom, start, end)")
            interval = where
        else:
            if start is None or end is None:
                raise TypeError("fetch(chrom, start, end) needs both start and end")
            interval = Interval(where, start, end, strand=strand or "+")
        strand = strand or interval.strand
        if strand not in STRANDS:
            raise GenomeError(f"{interval.describe()}: strand must be one of + - . (got {strand!r})")
        if pad not in PAD_MODES:
            raise ValueError(f"pad must be one of {PAD_MODES} (got {pad!r})")

        name = self.resolve(interval.chrom, interval)
        length = self._lengths[name]
        # Split [start, end) into the part before the chromosome, the part on it and the part after it.
        inside_start = min(max(interval.start, 0), length)
        inside_end = min(max(interval.end, 0), length)
        before = max(0, min(interval.end, 0) - interval.start)
        after = max(0, interval.end - max(interval.start, length))
        if (before or after) and pad == "error":
            raise GenomeError(
                f"{interval.describe()} runs off {name} (length {length}): "
                f"{before} bases before its start, {after} after its end"
            )

        sequence = ""
        if inside_end > inside_start:
            try:
                sequence = self._reader()[name][inside_start:inside_end].upper()
            except GenomeError:
                raise
            except Exception as exc:  # pyfaidx / Bio.bgzf / zlib on a damaged file: name the file and region
                raise GenomeError(
                    f"{self.path}: cannot read {name}:{inside_start + 1:,}-{inside_end:,} ({exc.__class__.__name__}: "
                    f"{exc}): the file looks truncated or corrupt, or does not match its index") from None
            if len(sequence) != inside_end - inside_start:
                raise GenomeError(
                    f"{self.path}: read {len(sequence)} bases for {name}:{inside_start}-{inside_end}, "
                    f"expected {inside_end - inside_start} (truncated or inconsistent FASTA/index?)"
                )
        if _NOT_ACGTN.search(sequence):
            sequence = self._ambiguous_to_n(sequence, name, inside_start, interval)
        sequence = "N" * before + sequence + "N" * after
        return reverse_complement(sequence) if strand == "-" else sequence

    def _ambiguous_to_n(self, sequence: str, name: str, start: int, interval: Interval) -> str:
        """The one policy for reference letters, whoever reads (dataloader, scan, variant scoring, training data):
        IUPAC ambiguity codes (R, Y, K, M, S, W, B, D, H, V) become N, counted and warned about; anything else is an
        error naming the file, contig, 1-based position and the interval (BED line) being read. Identical on both
        strands: checked before any reverse complement."""
        junk = _NON_IUPAC.search(sequence)
        if junk:
            origin = f" (reading {interval.describe()})"
            raise GenomeError(f"{self.path}: {name}:{start + junk.start() + 1:,}: {junk.group()!r} is not a "
                              f"nucleotide letter (A, C, G, T, N or an IUPAC code){origin}")
        count = len(_NOT_ACGTN.findall(sequence))
        self.ambiguous_bases += count
        self._ambiguous_windows += 1
        if self._ambiguous_windows <= MAX_AMBIGUITY_WARNINGS:
            more = ("" if self._ambiguous_windows < MAX_AMBIGUITY_WARNINGS
                    else "; further windows with ambiguity codes are not reported one by one")
            log.warning("%s: %d IUPAC ambiguity code(s) in %s:%d-%d read as N (the models know only A, C, G, T "
                        "and N)%s", self.path, count, name, start + 1, start + len(sequence), more,
                        extra={"genalm_kind": "ambiguous_reference_bases"})
        return _NOT_ACGTN.sub("N", sequence)


def _alternative_chrom_names(chrom: str) -> list[str]:
    """Other spellings of a chromosome name: UCSC `chr20`/`chrM` vs Ensembl/NCBI `20`/`MT`."""
    bare = chrom[3:] if chrom.lower().startswith("chr") else chrom
    if not bare:
        return []
    candidates = [bare, f"chr{bare}"]
    if bare.upper() in ("M", "MT"):
        candidates += ["MT", "M", "chrM", "chrMT"]
    return [name for name in candidates if name != chrom]


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


class VcfReader:
    """Streaming VCF reader (plain, gzip or bgzip).

    The header is read when the reader is created: `header_lines` holds every header line (the `##`
    meta lines and the `#CHROM` column line) so a writer can copy it, `samples` the sample names.
    Iterating yields `VcfRecord`s one line at a time. Blank lines are skipped; a malformed line raises
    GenomeError naming file and line. Use as a context manager, or call `close()`, to release the file.
    """

    def __init__(self, path: PathLike):
        self.path = _existing_file(path, "VCF file")
        self.header_lines: list[str] = []
        self.samples: tuple[str, ...] = ()
        self._has_column_line = False
        self._lines = numbered_lines(self.path, "VCF file")
        self._first_data: Optional[tuple[int, str]] = None
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
        except BaseException:
            self._lines.close()
            raise

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
        self.samples = tuple(columns[9:])
        self._has_column_line = True

    def __iter__(self) -> Iterator[VcfRecord]:
        if self._first_data is not None:
            first, self._first_data = self._first_data, None
            yield self._parse(*first)
        for line_number, line in self._lines:
            if not line.strip():
                continue
            if line.startswith("#"):
                raise GenomeError(f"{self.path}:{line_number}: header line after the first variant")
            yield self._parse(line_number, line)

    def _parse(self, line_number: int, line: str) -> VcfRecord:
        where = f"{self.path}:{line_number}"
        fields = line.split("\t")
        if self._has_column_line:
            expected = 8 if not self.samples else 9 + len(self.samples)
            if len(fields) != expected:
                raise GenomeError(f"{where}: expected {expected} tab-separated fields, found {len(fields)}")
        elif len(fields) < 8:
            raise GenomeError(f"{where}: expected at least 8 tab-separated fields, found {len(fields)}")
        chrom, pos_text, variant_id, ref, alt_text, qual_text, filter_text, info = fields[:8]
        if not chrom:
            raise GenomeError(f"{where}: empty CHROM")
        if not pos_text.isascii() or not pos_text.isdigit() or int(pos_text) < 1:
            raise GenomeError(f"{where}: POS {pos_text!r} is not a positive integer")
        if not _VCF_BASES.fullmatch(ref):
            raise GenomeError(f"{where}: REF {ref!r} is not a sequence of nucleotides")
        alts = () if alt_text == "." else tuple(alt_text.split(","))
        for alt in alts:
            if not _is_valid_alt(alt):
                raise GenomeError(f"{where}: ALT allele {alt!r} is neither bases, '*', <SYMBOLIC> nor a breakend")
        qual: Optional[float] = None
        if qual_text != ".":
            try:
                qual = float(qual_text)
            except ValueError:
                raise GenomeError(f"{where}: QUAL {qual_text!r} is not a number or '.'") from None
        return VcfRecord(
            chrom=chrom,
            pos=int(pos_text),
            id=variant_id,
            ref=ref,
            alts=alts,
            qual=qual,
            filter=filter_text,
            info=info,
            format=fields[8] if len(fields) > 8 else None,
            samples=tuple(fields[9:]),
            line=line_number,
            raw=line,
            source=str(self.path),
        )

    def close(self) -> None:
        self._lines.close()

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

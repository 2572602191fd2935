"""FASTA access through pyfaidx: plain or BGZF, indexes built in a cache when none is beside the FASTA, chromosome
names matched across conventions (`names.py`), IUPAC ambiguity codes read as N (no torch, no kipoi here).

Coordinates are 0-based, half-open `[start, end)` as in BED.
"""

from __future__ import annotations

import bisect
import contextlib
import hashlib
import logging
import os
import secrets
import tempfile
from pathlib import Path
from typing import Optional, Union

from ..io_utils import atomic_path
from .common import (_GZIP_MAGIC, _NON_IUPAC, _NOT_ACGTN, MAX_AMBIGUITY_WARNINGS, STRANDS, GenomeError, PathLike,
                     _existing_file, _where, reverse_complement)
from .intervals import Interval
from .names import chrom_spellings

log = logging.getLogger(__name__)

PAD_MODES = ("N", "error")


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

        # Build under temporary names and move into place (io_utils.atomic_path), so that several processes
        # starting at once never read a half-written index (the last rename wins; all build the same content).
        # The .gzi goes into place before the .fai, whose presence says "index complete".
        with contextlib.ExitStack() as stack:
            tmp_fai = stack.enter_context(atomic_path(fai))
            tmp_gzi = stack.enter_context(atomic_path(gzi)) if gzi is not None else None
            self._open_pyfaidx(tmp_fai, tmp_gzi, build=True).close()
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
        for candidate in chrom_spellings(chrom):
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

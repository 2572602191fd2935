"""What every genome module shares: `GenomeError`, the strand letters, reverse complement and line-numbered
reading of plain or gzip/BGZF text files (no torch, no kipoi here).

Every problem with an input file raises `GenomeError` (a `ValueError`) whose message names the file,
the line when there is one, and what is wrong, e.g. `promoters.bed:12: start 500 is greater than end 400`.
"""

from __future__ import annotations

import gzip
import os
import re
import zlib
from pathlib import Path
from typing import IO, Iterator, Optional, Union

PathLike = Union[str, "os.PathLike[str]"]

STRANDS = ("+", "-", ".")


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

"""The one parser of the regions a user types (`--region`, `--valid`, `split: {test: [...]}`), no torch, no kipoi.

Typed regions follow samtools (`samtools faidx genome.fa chr20:1,000,001-2,000,000`): 1-based, both ends
inclusive, thousands separators allowed. Inside the package every interval is 0-based half-open (BED), so
`chr20:1,000,001-2,000,000` becomes `Interval("chr20", 1000000, 2000000)`; `format_region_1based` writes one back.
"""

from __future__ import annotations

import re
from typing import Mapping, Optional

from .common import GenomeError
from .intervals import Interval
from .names import find_chrom

_POSITION = re.compile(r"[0-9][0-9,_]*")
EXAMPLE = "chr20:32,000,001-36,000,000"


def parse_region_1based(text: str, contig_lengths: Optional[Mapping[str, int]] = None,
                        what: str = "region") -> Interval:
    """`chrom:start-end`, 1-based inclusive as samtools reads it, as a 0-based half-open `Interval`.

    text: `chr20:1,000,001-2,000,000` (commas or underscores between digits are ignored; the last `:` separates
        the chromosome, so names holding `:` work as in samtools). With `contig_lengths`, a bare chromosome name
        (`chr20`) means the whole chromosome.
    contig_lengths: a genome's contig names and lengths (`Genome.contig_lengths`). When given, the chromosome is
        looked up across naming conventions (`genome.names`: `20` finds `chr20`) and the returned interval uses
        the genome's spelling; an end past the chromosome end is clipped to it (`chr20:60000001-999999999` means
        "from 60 Mb to the end").
    what: how error messages name the text (e.g. `--region`, `RegionSplit.test`).
    Returns `Interval(chrom, start - 1, end)`. Raises GenomeError (a ValueError) naming `what` and the text when
    it is not a region, start < 1, start > end, or the chromosome is not in `contig_lengths`.
    """
    stripped = text.strip()
    chrom, sep, span = stripped.rpartition(":")
    if not sep and contig_lengths is not None and stripped and "-" not in stripped:
        chrom, start, end = stripped, 1, None  # a bare chromosome name: all of it
    else:
        start_text, dash, end_text = span.strip().partition("-")
        start_text, end_text = start_text.strip(), end_text.strip()
        if not (sep and chrom.strip() and dash and _POSITION.fullmatch(start_text) and _POSITION.fullmatch(end_text)):
            raise GenomeError(f"{what} {text!r} is not a region such as {EXAMPLE!r} (chrom:start-end, 1-based, "
                              "both ends inclusive, as in samtools)")
        chrom = chrom.strip()
        start, end = (int(value.replace(",", "").replace("_", "")) for value in (start_text, end_text))
        if start < 1 or start > end:
            raise GenomeError(f"{what} {text!r}: positions are 1-based and inclusive: start must be >= 1 and not "
                              f"after end (e.g. {EXAMPLE})")
    if contig_lengths is None:
        return Interval(chrom, start - 1, end)
    name = find_chrom(chrom, contig_lengths)
    if name is None:
        shown = ", ".join(list(contig_lengths)[:8]) + (f", ... ({len(contig_lengths)} in all)"
                                                        if len(contig_lengths) > 8 else "")
        raise GenomeError(f"{what} {text!r}: chromosome {chrom!r} is not one of {shown}")
    length = int(contig_lengths[name])
    end = length if end is None else min(end, length)
    if start - 1 >= end:
        raise GenomeError(f"{what} {text!r}: starts past the end of {name} (length {length:,})")
    return Interval(name, start - 1, end)


def format_region_1based(interval: Interval) -> str:
    """`Interval("chr20", 999999, 2000000)` -> `chr20:1000000-2000000` (samtools' 1-based inclusive spelling)."""
    return f"{interval.chrom}:{interval.start + 1}-{interval.end}"

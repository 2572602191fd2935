"""VCF records -> the reference and alternative windows a GENA-LM model reads (no torch, no kipoi here).

Conventions (the user-facing summary is in veff.py):

Alleles. Every ALT of a record is scored on its own. REF and ALT are upper-cased and trimmed to their minimal
form: first the shared prefix, then the shared suffix is removed (`AGGTG>A` at POS p becomes "delete GGTG at
p+1", `A>ATTTG` becomes "insert TTTG before p+1"). The trimmed REF may be empty (an insertion), and so may the
trimmed ALT (a deletion). An indel (one of them empty) is then left-aligned against the reference, as `bcftools
norm` does: while the base before it equals its last base, it is rolled one base to the left (deleting one A of
AAAA, or inserting CA into ACACAC, is the same change wherever in the repeat the VCF writes it). Two spellings of
one change (trimmed differently, left- or right-aligned in a repeat) therefore get the same allele, hence the same
windows and scores in every mode; the output records the allele as scored (`KV_NORMALISED`, `POS:REF:ALT` in VCF
spelling, see `vcf_spelling`) for every ALT whose scored form differs from what the record says. Substitutions and
complex changes (both trimmed alleles non-empty) are not moved. ALT == REF is a change of nothing (scores 0).
`Allele.start` is the 0-based position of the first trimmed REF base (for an insertion: of the base the insertion
goes before).

Skipped, never scored (reported per ALT in the INFO field KV_SKIPPED and counted): see `SKIP_REASONS`.

Windows. A `Window` is the stretch of the reference the model reads (its flanks included), on one strand:
- centred mode (default): the trimmed REF span is centred in the model's window (`Interval.resize`, the window of
  `sequence_length` bases has the span's centre base at index `sequence_length // 2`), plus `flank` bases of
  context each side for per-nucleotide models, read on '+';
- region mode (a BED of regions): each region's window is placed exactly as the dataloader places it (TSS-anchored
  for the promoter models, strand-aware), and a variant is scored in every window that holds its REF span (an
  insertion: the base it goes before). One reference prediction per window serves all its variants.

Alternative windows keep the model's input length and the variant's position. Read in the model's orientation
(5'->3' on the window's strand), the window's 5' edge stays where it is, the bases before the variant are
unchanged, the ALT bases replace the REF bases, and the 3' end is adjusted: a deletion (ALT shorter than REF) is
extended with the reference bases that follow the window; an insertion is trimmed at the 3' end. On '-' windows
this is done on the reverse complement, so there the left (lower-coordinate) genomic edge moves. Bases past a
chromosome end are N, as in the dataloader.
"""
from __future__ import annotations

import bisect
import os
from dataclasses import dataclass
from typing import Sequence

from genalm_models.genome import Genome, GenomeError, Interval, VcfRecord, apply_variants, read_bed

from .folder import WindowSpec
from .sequences import input_region, require_strands, target_region

# Why an ALT allele was not scored. The keys are what KV_SKIPPED says in the output VCF.
SKIP_REASONS = {
    "no_alt": "the record has no ALT allele (ALT is '.')",
    "unknown_chrom": "the chromosome is not in the reference FASTA",
    "outside_contig": "REF lies (or runs) past the end of the chromosome in the reference FASTA",
    "ref_mismatch": "REF does not match the reference FASTA at POS",
    "reference_n": "REF holds N or another IUPAC ambiguity code: the reference bases at the variant are unknown",
    "symbolic": "a symbolic or breakend ALT (<DEL>, <INS:ME>, t[p[, .t, ...): structural variants are not scored",
    "star_allele": "ALT '*' (an allele missing because of an overlapping deletion): nothing to score on its own",
    "ambiguous_alt": "the ALT allele holds an IUPAC ambiguity code (R, Y, K, M, S, W, B, D, H, V, N): which base "
                     "is meant is unknown",
    "too_long": "the REF allele is longer than the model's window",
    "outside_regions": "region mode: the variant lies in no region's model window",
}
# Letters a VCF allele may hold: the bases, N and the IUPAC ambiguity codes (real REF alleles carry the codes of
# references such as GRCh37). Any other letter (U, X, ...) is an error naming the file and line.
PLAIN_BASES = frozenset("ACGT")
ALLELE_LETTERS = frozenset("ACGTNRYKMSWBDHV")
REF_MISMATCH_REASONS = ("ref_mismatch", "outside_contig")


def is_sequence_allele(allele: str) -> bool:
    """True for plain bases (IUPAC codes); False for '*', <SYMBOLIC> and breakend alleles."""
    return bool(allele) and allele != "*" and all(c.isalpha() for c in allele)


def skip_reason_of_alt(alt: str) -> str | None:
    if alt == "*":
        return "star_allele"
    if not is_sequence_allele(alt):
        return "symbolic"
    if not set(alt.upper()) <= PLAIN_BASES:
        return "ambiguous_alt"
    return None


def check_letters(record: VcfRecord) -> None:
    """GenomeError naming file and line when REF or a sequence ALT holds a letter that is neither a base nor an
    IUPAC ambiguity code (the VCF reader refuses other characters the same way)."""
    alleles = [("REF", record.ref)] + [("ALT", alt) for alt in record.alts if is_sequence_allele(alt)]
    for what, allele in alleles:
        bad = sorted(set(allele.upper()) - ALLELE_LETTERS)
        if bad:
            where = f"{record.source}:{record.line}" if record.source else f"line {record.line}"
            raise GenomeError(f"{where}: {what} {allele!r} holds {', '.join(repr(c) for c in bad)}, which is neither "
                              "a base (A, C, G, T, N) nor an IUPAC ambiguity code")


def trim_alleles(start: int, ref: str, alt: str) -> tuple[int, str, str]:
    """Minimal form of one REF/ALT pair: shared prefix removed first (moving `start`), then shared suffix.

    Prefix first, so that a VCF indel's anchor base goes: `G>GTTTG` at p is "insert TTTG before p+1".
    """
    ref, alt = ref.upper(), alt.upper()
    shared = 0
    while shared < len(ref) and shared < len(alt) and ref[shared] == alt[shared]:
        shared += 1
    ref, alt = ref[shared:], alt[shared:]
    while ref and alt and ref[-1] == alt[-1]:
        ref, alt = ref[:-1], alt[:-1]
    return start + shared, ref, alt


LEFT_ALIGN_BLOCK = 64  # reference bases fetched at a time while rolling an indel to the left


def left_align(genome: Genome, chrom: str, start: int, ref: str, alt: str) -> tuple[int, str, str]:
    """A trimmed indel (`trim_alleles` output with REF or ALT empty) rolled to its leftmost equivalent position.

    bcftools norm's rule: while the reference base before the indel equals the last base of the deleted (or
    inserted) sequence, move one base left, that base becoming the first of the sequence. Stops at the chromosome
    start. Substitutions, complex changes and ALT == REF are returned unchanged.
    """
    if (ref and alt) or not (ref or alt):
        return start, ref, alt
    sequence = ref or alt
    block = ""
    while start > 0:
        if not block:
            block = genome.fetch(chrom, max(0, start - LEFT_ALIGN_BLOCK), start).upper()
        base = block[-1]
        if base != sequence[-1]:
            break
        sequence = base + sequence[:-1]
        block = block[:-1]
        start -= 1
    return (start, sequence, "") if ref else (start, "", sequence)


def normalise(genome: Genome, chrom: str, start: int, ref: str, alt: str) -> tuple[int, str, str]:
    """Trimmed and, for indels, left-aligned (module docstring)."""
    start, ref, alt = trim_alleles(start, ref, alt)
    return left_align(genome, chrom, start, ref, alt)


@dataclass(frozen=True)
class Allele:
    """One ALT of a VCF record, trimmed and left-aligned (module docstring); `chrom` is the FASTA's name."""

    chrom: str
    start: int
    ref: str
    alt: str
    alt_index: int  # 0-based index in the record's ALT list

    @property
    def ref_end(self) -> int:
        return self.start + len(self.ref)

    @property
    def footprint_end(self) -> int:
        """End of the reference bases a window must hold to see the variant (an insertion: the base after it)."""
        return self.start + max(len(self.ref), 1)


def vcf_spelling(genome: Genome, allele: Allele) -> tuple[int, str, str]:
    """(POS, REF, ALT) of an allele as a VCF writes it: an indel with the reference base before it (at the
    chromosome start: the base after it), anything else as it is. ALT == REF: (POS, REF base, same base)."""
    if allele.ref and allele.alt:
        return allele.start + 1, allele.ref, allele.alt
    if allele.start > 0:
        anchor = genome.fetch(allele.chrom, allele.start - 1, allele.start).upper()
        return allele.start, anchor + allele.ref, anchor + allele.alt
    after = genome.fetch(allele.chrom, allele.ref_end, allele.ref_end + 1).upper()
    return 1, allele.ref + after, allele.alt + after


@dataclass(frozen=True)
class Window:
    """What the model reads: the reference `[start, end)` of `chrom` on `strand`, flanks included."""

    chrom: str
    start: int
    end: int
    strand: str
    flank: int = 0
    region_id: str | None = None   # region mode: the BED name (or chrom:start-end) of the region
    anchor: int | None = None      # region mode: the TSS / centre the window was placed on

    @property
    def key(self) -> tuple[str, int, int, str]:
        return (self.chrom, self.start, self.end, self.strand)

    @property
    def length(self) -> int:
        return self.end - self.start

    def holds(self, allele: Allele) -> bool:
        return self.start <= allele.start and allele.footprint_end <= self.end


def check_ref(record: VcfRecord, genome: Genome) -> tuple[str | None, str | None]:
    """(FASTA chromosome name, None) when REF matches the reference, else (name or None, skip reason)."""
    if record.chrom not in genome:
        return None, "unknown_chrom"
    name = genome.resolve(record.chrom)
    if record.end > genome.contig_lengths[name]:
        return name, "outside_contig"
    if genome.fetch(name, record.start, record.end).upper() != record.ref.upper():
        return name, "ref_mismatch"
    return name, None


def centred_window(allele: Allele, spec: WindowSpec) -> Window:
    """The model's window (sequence_length + flanks) centred on the allele's trimmed REF span, on '+'."""
    if spec.sequence_length is None:
        raise ValueError("centred windows need a sequence length (the model takes any length: pass seq_length)")
    span = Interval(allele.chrom, allele.start, allele.ref_end, strand="+")
    region = input_region(span.resize(spec.sequence_length), spec)
    return Window(allele.chrom, region.start, region.end, "+", spec.flank)


def variant_index(window: Window, allele: Allele) -> int:
    """Index in the model-oriented window sequence of the first REF base (an insertion: of the base after it)."""
    if window.strand == "-":
        return window.end - allele.ref_end
    return allele.start - window.start


def alt_sequence(genome: Genome, window: Window, ref_sequence: str, allele: Allele) -> str:
    """The window with ALT in place of REF, same length, variant kept at `variant_index` (module docstring).

    ref_sequence: the window's reference bases in the model's orientation (`Genome.fetch` on `window.strand`).
    The window is extended at its 3' end by the bases a deletion pulls in, the allele is applied by
    `genome.variants.apply_variants` (the one applier, shared with the corpus haplotypes), and the result is cut
    back to the window's length at the 3' end."""
    shortfall = max(0, len(allele.ref) - len(allele.alt))  # a deletion needs this many bases past the 3' end
    if window.strand == "-":  # the model reads the minus strand: its 3' end is the low genomic edge
        extended = ref_sequence + genome.fetch(window.chrom, window.start - shortfall, window.start, strand="-")
        extended_start = window.start - shortfall
    else:
        extended = ref_sequence + genome.fetch(window.chrom, window.end, window.end + shortfall)
        extended_start = window.start
    changed = apply_variants(extended, extended_start, [(allele.start, allele.ref, allele.alt)], window.strand)
    return changed[:window.length]


def genomic_offset(window: Window, allele: Allele, model_index):
    """Signed distance (genomic bp, '+' orientation) from the allele's start to the base at `model_index` (an int
    or an integer array) of the model-oriented reference window."""
    if window.strand == "-":
        return (window.end - 1 - model_index) - allele.start
    return window.start + model_index - allele.start


class RegionWindows:
    """Region mode: the model window of every BED interval, and which of them hold a given variant."""

    def __init__(self, bed_path: str | os.PathLike, genome: Genome, spec: WindowSpec, use_strand: bool = True):
        self.path = str(bed_path)
        self.windows: list[Window] = []
        intervals = list(read_bed(bed_path))
        require_strands(intervals, spec, use_strand, self.path)  # TSS windows need strands (or use_strand false)
        for interval in intervals:
            name = genome.resolve(interval.chrom, interval)  # unknown chromosome: error naming file and line
            length = genome.contig_lengths[name]
            if interval.end > length:
                raise GenomeError(f"{interval.source}:{interval.line}: interval {interval.chrom}:{interval.start}-"
                                  f"{interval.end} extends past the end of {name} (length {length:,}); is the BED "
                                  "file for another assembly?")
            region = target_region(interval, spec)
            fetched = input_region(region, spec)
            strand = fetched.strand if use_strand and fetched.strand in ("+", "-") else "+"
            if spec.anchor == "tss" and spec.sequence_length is not None:
                anchor = interval.five_prime
            else:
                anchor = interval.center
            region_id = interval.name if interval.name not in ("", ".") else \
                f"{interval.chrom}:{interval.start}-{interval.end}"
            self.windows.append(Window(name, fetched.start, fetched.end, strand, spec.flank, region_id, anchor))
        if not self.windows:
            raise GenomeError(f"{self.path}: no regions (the BED file is empty or holds only comment, track and "
                              "header lines)")
        by_chrom: dict[str, list[Window]] = {}
        for window in self.windows:
            by_chrom.setdefault(window.chrom, []).append(window)
        self._by_chrom = {chrom: sorted(ws, key=lambda w: (w.start, w.end)) for chrom, ws in by_chrom.items()}
        self._starts = {chrom: [w.start for w in ws] for chrom, ws in self._by_chrom.items()}
        self._widest = max(w.length for w in self.windows)

    def __len__(self) -> int:
        return len(self.windows)

    def holding(self, allele: Allele) -> list[Window]:
        """Windows holding the allele, nearest anchor (TSS or centre) first; ties by window start."""
        windows = self._by_chrom.get(allele.chrom)
        if not windows:
            return []
        starts = self._starts[allele.chrom]
        first = bisect.bisect_left(starts, allele.footprint_end - self._widest)
        last = bisect.bisect_right(starts, allele.start)
        found = [w for w in windows[first:last] if w.holds(allele)]
        return sorted(found, key=lambda w: abs(w.anchor - allele.start))


def alleles_of(record: VcfRecord, chrom: str, genome: Genome
               ) -> Sequence[tuple[str | None, Allele | None, tuple[int, str, str] | None]]:
    """(skip reason or None, normalised allele or None, its VCF spelling when it differs from the record's POS,
    REF and that ALT, else None) for each ALT of a record whose REF matched the reference."""
    out = []
    ref_unknown = not set(record.ref.upper()) <= PLAIN_BASES
    for index, alt in enumerate(record.alts):
        reason = skip_reason_of_alt(alt)
        if reason in (None, "ambiguous_alt") and ref_unknown:
            reason = "reference_n"
        if reason is not None:
            out.append((reason, None, None))
            continue
        start, ref, alt_bases = normalise(genome, chrom, record.start, record.ref, alt)
        allele = Allele(chrom, start, ref, alt_bases, index)
        spelling = None
        if ref or alt_bases:
            spelling = vcf_spelling(genome, allele)
            if spelling == (record.pos, record.ref.upper(), alt.upper()):
                spelling = None
        out.append((None, allele, spelling))
    return out

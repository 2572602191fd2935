"""Applying alleles to a reference sequence: the one function the pre-training corpus (sample haplotypes) and the
variant scorer (alternative windows) both use (no torch, no kipoi here).

An allele is `(start, ref, alt)`: the REF bases at 0-based `start` are replaced by the ALT bases. SNVs (`A>G`),
MNVs (`AC>GT`), insertions (`A>ATT`, or a trimmed `>TT` with empty REF) and deletions (`ATT>A`, or `TT>`) are all
the same operation. Coordinates are 0-based, as in BED and `VcfRecord.start` (a VCF's POS minus one).
"""

from __future__ import annotations

from typing import Iterable, Sequence

from .common import GenomeError, reverse_complement


def apply_variants(reference: str, reference_start: int, variants: Iterable[Sequence], strand: str = "+") -> str:
    """The sequence `reference` with `variants` applied.

    reference: the bases of the genomic stretch `[reference_start, reference_start + len(reference))`, read on
        `strand`: on '-' it is the reverse complement of that stretch (5'->3' on the minus strand).
    variants: `(start, ref, alt)` or `(start, ref, alt, line)` tuples (`pretrain.corpus.Variant` is one) with
        0-based genomic `start` and REF/ALT on the '+' strand, as a VCF gives them; sorted by start, not
        overlapping, inside the stretch. `line` (a VCF line number, or None) is only used in error messages.
    Returns the changed sequence, on `strand` (on '-': the reverse complement of the changed '+' stretch), of
    length `len(reference) + sum(len(alt) - len(ref))`.

    Raises GenomeError naming the variant (and its VCF line) when its REF does not match the reference, it runs
    past the stretch's end or starts before it, or the variants are out of order or overlap.
    """
    if strand not in ("+", "-", "."):
        raise GenomeError(f"strand must be one of + - . (got {strand!r})")
    plus = reverse_complement(reference) if strand == "-" else reference
    pieces = []
    copied_to = 0  # index in `plus` up to which bases are already in `pieces`
    window_end = reference_start + len(plus)
    for variant in variants:
        start, ref, alt = variant[0], variant[1], variant[2]
        line = f" (VCF line {variant[3]})" if len(variant) > 3 and variant[3] is not None else ""
        offset = start - reference_start
        if offset < copied_to or start + len(ref) > window_end:
            if offset < 0:
                problem = f"starts before the window [{reference_start}, {window_end})"
            elif offset < copied_to:
                problem = "overlaps the previous variant or is out of order"
            else:
                problem = f"runs past the end of the window [{reference_start}, {window_end})"
            raise GenomeError(f"variant {ref}>{alt} at 0-based {start}{line} {problem}")
        found = plus[offset : offset + len(ref)]
        if found != ref:
            raise GenomeError(f"variant {ref}>{alt} at 0-based {start}{line}: REF does not match the reference "
                              f"{found!r}")
        pieces.append(plus[copied_to:offset])
        pieces.append(alt)
        copied_to = offset + len(ref)
    if not pieces:
        return reference
    pieces.append(plus[copied_to:])
    changed = "".join(pieces)
    return reverse_complement(changed) if strand == "-" else changed

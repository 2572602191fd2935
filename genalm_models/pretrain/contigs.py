"""Which FASTA sequences a corpus tiles, how they are read, and the regions masked out of them."""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Any, Iterator

from genalm_models.genome import Genome, read_bed
from genalm_models.genome.intervals import merge_intervals
from genalm_models.genome.names import MITOCHONDRIAL, canonical_chrom

from .corpus_config import CorpusConfig, CorpusError


@dataclass
class ContigPlan:
    """A FASTA sequence that will be tiled."""

    genome: Genome
    fasta_index: int
    name: str
    length: int


def plan_contigs(genomes: list[Genome], config: CorpusConfig, skipped: dict[str, Any]) -> list[ContigPlan]:
    """The contigs to tile, in FASTA order, after the include/exclude lists and the length minimum."""
    wanted = None if config.contigs is None else {canonical_chrom(name) for name in config.contigs}
    excluded = {canonical_chrom(name) for name in config.exclude_contigs}
    if config.exclude_mitochondria:
        excluded.add(MITOCHONDRIAL)
    found: set[str] = set()
    plans = []
    for fasta_index, genome in enumerate(genomes):
        for name, length in genome.contig_lengths.items():
            key = canonical_chrom(name)
            if wanted is not None and key not in wanted:
                continue
            found.add(key)
            if key in excluded:
                skipped["contigs_excluded"].append(name)
                continue
            if length < config.min_contig_length:
                skipped["contigs_too_short"] += 1
                skipped["bp_in_contigs_too_short"] += length
                continue
            plans.append(ContigPlan(genome, fasta_index, name, length))
    if wanted is not None:
        absent = [name for name in config.contigs if canonical_chrom(name) not in found]
        if absent:
            raise CorpusError(
                f"contig(s) {', '.join(absent)} requested but not in any of {', '.join(config.fasta_paths)}"
            )
    return plans




def reference_chunks(genome: Genome, contig: str, length: int, chunk_bp: int) -> Iterator[str]:
    for start in range(0, length, chunk_bp):
        yield genome.fetch(contig, start, min(length, start + chunk_bp))




def read_exclusions(bed_path: str, plans: list[ContigPlan]) -> dict[str, list[tuple[int, int]]]:
    """Excluded spans per planned contig, merged and sorted (BED names may be `chr20` or `20`)."""
    by_canonical = {canonical_chrom(plan.name): plan.name for plan in plans}
    planned = []
    for interval in read_bed(bed_path):
        name = by_canonical.get(canonical_chrom(interval.chrom))
        if name is not None:
            planned.append((name, interval.start, interval.end))
    merged: dict[str, list[tuple[int, int]]] = {}
    for name, start, end in merge_intervals(planned):
        merged.setdefault(name, []).append((start, end))
    return merged




class MaskedGenome:
    """A Genome whose excluded spans read as N (fetch by contig name and coordinates only)."""

    def __init__(self, genome: Genome, masks: dict[str, list[tuple[int, int]]]):
        self.genome, self.masks = genome, masks

    def fetch(self, contig: str, start: int, end: int) -> str:
        sequence = self.genome.fetch(contig, start, end)
        spans = self.masks.get(contig)
        if not spans:
            return sequence
        first = max(0, bisect.bisect_right([b for _, b in spans], start))
        pieces, cursor = [], start
        for span_start, span_end in spans[first:]:
            if span_start >= end:
                break
            a, b = max(span_start, start), min(span_end, end)
            if a < b:
                pieces.append(sequence[cursor - start: a - start])
                pieces.append("N" * (b - a))
                cursor = b
        pieces.append(sequence[cursor - start:])
        return "".join(pieces)

"""Genome access: FASTA sequences, BED intervals, VCF variants, chromosome names and regions (no torch, no kipoi).

Coordinates are 0-based, half-open `[start, end)` (the BED convention) everywhere in this package. The only
1-based numbers are `VcfRecord.pos` (what a VCF file says; `VcfRecord.start` is the 0-based equivalent) and the
`chr:start-end` text a user types, which `parse_region_1based` reads as samtools does.

One module per concept:
  common.py     GenomeError, strands, reverse complement, line-numbered reading of plain / gzip / BGZF text
  names.py      chromosome names across conventions (`chr20` = `20`, `chrM` = `MT`): the one rule set
  regions.py    the one parser of typed regions (`chr20:1,000,001-2,000,000`, 1-based inclusive)
  intervals.py  `Interval`, BED reading, interval algebra (merge, subtract)
  fasta.py      `Genome`: random access to plain or BGZF FASTA through pyfaidx
  vcf.py        `VcfReader`, `VcfRecord`, genotypes
  variants.py   `apply_variants`: alleles applied to a reference sequence (corpus haplotypes, variant scoring)

Every problem with an input raises `GenomeError` (a `ValueError`) naming the file, the line when there is one,
and what is wrong, e.g. `promoters.bed:12: start 500 is greater than end 400`.
"""

from .common import (MAX_AMBIGUITY_WARNINGS, STRANDS, GenomeError, PathLike, numbered_lines, open_text,
                     reverse_complement)
from .fasta import PAD_MODES, Genome, default_index_cache_dir, index_mismatch
from .intervals import Interval, read_bed
from .names import canonical_chrom, chrom_spellings, find_chrom, same_chrom
from .regions import format_region_1based, parse_region_1based
from .variants import apply_variants
from .vcf import Genotype, VcfReader, VcfRecord, parse_genotype, read_vcf

__all__ = [
    "MAX_AMBIGUITY_WARNINGS", "PAD_MODES", "STRANDS", "Genome", "GenomeError", "Genotype", "Interval", "PathLike",
    "VcfReader", "VcfRecord", "apply_variants", "canonical_chrom", "chrom_spellings", "default_index_cache_dir",
    "find_chrom", "format_region_1based", "index_mismatch", "numbered_lines", "open_text", "parse_genotype",
    "parse_region_1based", "read_bed", "read_vcf", "reverse_complement", "same_chrom",
]

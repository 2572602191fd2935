"""Saturation mutagenesis of a real promoter: every possible SNV over a stretch around its TSS, as a VCF.

    python bench/make_saturation_vcf.py --fasta genome.fa.gz --bed promoters.bed --promoter TRIB3_1 \
        --upstream 200 --downstream 50 -o trib3_saturation.vcf --region-bed trib3_tss.bed

The stretch runs from `upstream` bases upstream to `downstream` bases downstream of the TSS (the BED record's 5'
end, strand-aware; both ends included), i.e. upstream + downstream + 1 positions and 3 SNVs at each (one record
per SNV, in genomic order; N bases are left out). `--region-bed` also writes the promoter's BED line, for scoring
the VCF in region mode (the model's own TSS-anchored window). Outputs are written atomically.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from genalm_models.genome import Genome, Interval, read_bed  # noqa: E402
from genalm_models.io_utils import write_text_atomic  # noqa: E402

BASES = "ACGT"


def find_promoter(bed: str | os.PathLike, name: str | None) -> Interval:
    """The BED record called `name` (default: the first record)."""
    for interval in read_bed(bed):
        if name is None or interval.name == name:
            return interval
    raise ValueError(f"{bed}: no record named {name!r}")


def saturation_lines(genome: Genome, tss: Interval, upstream: int, downstream: int) -> list[str]:
    site = tss.five_prime
    if tss.strand == "-":
        start, end = site - downstream, site + upstream + 1
    else:
        start, end = site - upstream, site + downstream + 1
    sequence = genome.fetch(tss.chrom, start, end)
    lines = []
    for offset, ref in enumerate(sequence):
        if ref not in BASES:
            continue
        pos = start + offset + 1
        for alt in BASES:
            if alt != ref:
                lines.append(f"{tss.chrom}\t{pos}\t{tss.name}_{pos}_{ref}>{alt}\t{ref}\t{alt}\t.\t.\t.\n")
    return lines


def write_saturation_vcf(fasta: str | os.PathLike, bed: str | os.PathLike, promoter: str | None,
                         vcf_out: str | os.PathLike, region_bed_out: str | os.PathLike | None = None,
                         upstream: int = 200, downstream: int = 50) -> int:
    """Write the VCF (and optionally the promoter's BED line); returns the number of SNVs."""
    tss = find_promoter(bed, promoter)
    with Genome(fasta) as genome:
        records = saturation_lines(genome, tss, upstream, downstream)
        length = genome.contig_lengths[genome.resolve(tss.chrom)]
    header = ["##fileformat=VCFv4.2\n", f"##contig=<ID={tss.chrom},length={length}>\n",
              f"##comment=every SNV from -{upstream} to +{downstream} of the TSS of {tss.name} ({tss.chrom}:"
              f"{tss.five_prime + 1}, strand {tss.strand}); made by bench/make_saturation_vcf.py\n",
              "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"]
    write_text_atomic(vcf_out, header + records)
    if region_bed_out is not None:
        write_text_atomic(region_bed_out, [f"{tss.chrom}\t{tss.start}\t{tss.end}\t{tss.name}\t0\t{tss.strand}\n"])
    return len(records)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fasta", required=True)
    parser.add_argument("--bed", required=True, help="TSS BED (e.g. EPDnew), BED6")
    parser.add_argument("--promoter", default=None, help="BED name of the promoter (default: the first record)")
    parser.add_argument("--upstream", type=int, default=200)
    parser.add_argument("--downstream", type=int, default=50)
    parser.add_argument("-o", "--output", required=True, help="output VCF")
    parser.add_argument("--region-bed", default=None, help="also write the promoter's BED line here")
    args = parser.parse_args(argv)
    n = write_saturation_vcf(args.fasta, args.bed, args.promoter, args.output, args.region_bed, args.upstream,
                             args.downstream)
    print(f"{n} SNVs written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

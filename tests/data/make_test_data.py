"""Regenerate the small, real test files in tests/data from the shared data folder.

Not run by the tests: it documents where every committed test file comes from, so anyone can check
them. Run from the repository root:

    python tests/data/make_test_data.py [--shared ../shared/data]

Files written (all slices of real public data, see ../shared/data/README.md for the originals):
  chr20_2mb.fa.gz (+ .fai, .gzi)  first 2,000,000 bp of GRCh37 chr20, contig `20`, 60-column lines, BGZF.
                                  Keeps real coordinates, so it starts with the 60 kb N run of the p-arm.
  promoters_chr20_2mb.bed         EPDnew TSSs (GRCh37 lift, `chr20` names) that lie in the slice.
  spliceai_chr20_2mb.txt          SpliceAI canonical transcripts that lie fully in the slice.
"""

from __future__ import annotations

import argparse
import gzip
import os
import subprocess
from pathlib import Path

import pysam

SLICE_LENGTH = 2_000_000
FASTA_LINE_WIDTH = 60
CONTIG = "20"

HERE = Path(__file__).resolve().parent
DEFAULT_SHARED = HERE.parent.parent.parent / "shared" / "data"


def write_fasta_slice(shared: Path, out_dir: Path) -> None:
    source = pysam.FastaFile(str(shared / "genome" / "GRCh37_chr20.fa.gz"))
    sequence = source.fetch(CONTIG, 0, SLICE_LENGTH)
    assert len(sequence) == SLICE_LENGTH, "the source FASTA is shorter than the slice"

    plain_path = out_dir / "chr20_2mb.fa"
    with open(plain_path, "w") as handle:
        handle.write(f">{CONTIG}\n")
        for offset in range(0, SLICE_LENGTH, FASTA_LINE_WIDTH):
            handle.write(sequence[offset : offset + FASTA_LINE_WIDTH] + "\n")

    # bgzip (Debian `tabix` package) replaces chr20_2mb.fa by chr20_2mb.fa.gz; -f overwrites an old one.
    subprocess.run(["bgzip", "-f", str(plain_path)], check=True)
    compressed = out_dir / "chr20_2mb.fa.gz"
    for stale_index in (compressed.with_name(compressed.name + ".fai"), compressed.with_name(compressed.name + ".gzi")):
        stale_index.unlink(missing_ok=True)
    pysam.faidx(str(compressed))  # writes .fai and .gzi next to the file


def write_promoter_slice(shared: Path, out_dir: Path) -> None:
    source = shared / "promoters" / "epdnew_hs006_GRCh37_chr20_tss.bed"
    kept = []
    for line in source.read_text().splitlines():
        chrom, start, end = line.split("\t")[:3]
        if chrom == "chr20" and 0 <= int(start) and int(end) <= SLICE_LENGTH:
            kept.append(line + "\n")
    (out_dir / "promoters_chr20_2mb.bed").write_text("".join(kept))


def write_splice_slice(shared: Path, out_dir: Path) -> None:
    # Columns: name, paralog flag, chrom, strand, tx start, tx end, exon ends, exon starts.
    source = shared / "splice" / "spliceai_canonical_GRCh37_chr20.txt.gz"
    kept = []
    with gzip.open(source, "rt") as handle:
        for line in handle:
            fields = line.rstrip("\n").split("\t")
            tx_start, tx_end = int(fields[4]), int(fields[5])
            if 0 <= tx_start and tx_end <= SLICE_LENGTH:
                kept.append(line if line.endswith("\n") else line + "\n")
    (out_dir / "spliceai_chr20_2mb.txt").write_text("".join(kept))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=DEFAULT_SHARED, help="the shared data folder")
    parser.add_argument("--out", type=Path, default=HERE, help="where to write the test files")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    write_fasta_slice(args.shared, args.out)
    write_promoter_slice(args.shared, args.out)
    write_splice_slice(args.shared, args.out)


if __name__ == "__main__":
    main()

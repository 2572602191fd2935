"""Writes tests/data/veff_test.vcf: hand-made variants on the real chr20 slice (tests/data/chr20_2mb.fa.gz) for
tests/test_veff.py. REF alleles are read from the FASTA (except the deliberate mismatch), so the file is
reproducible: `python tests/data/veff_make_test_vcf.py`.

Two promoter regions of tests/data/promoters_chr20_2mb.bed hold variants, one per strand (TRIB3_1 at 361,677 '+',
TBC1D20_1 at 443,159 '-'), so that region mode has several variants per window; the rest lie far from any
promoter (every record that cannot be scored is there: symbolic, '*', REF mismatch, unknown chromosome, no ALT).
"""
from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from genalm_models.genome import Genome  # noqa: E402

OTHER = {"A": "G", "C": "T", "G": "A", "T": "C"}
THIRD = {"A": "C", "C": "G", "G": "T", "T": "A"}


def main() -> None:
    genome = Genome(HERE / "chr20_2mb.fa.gz")

    def ref(pos: int, length: int = 1) -> str:  # 1-based POS, as in the VCF
        return genome.fetch("20", pos - 1, pos - 1 + length)

    records = []

    def add(pos: int, vid: str, ref_allele: str, alt: str, chrom: str = "chr20") -> None:
        records.append((chrom, pos, vid, ref_allele, alt))

    # TRIB3_1 promoter ('+'; tiny model window 361,428-361,728 0-based)
    add(361600, "snv_plus", ref(361600), OTHER[ref(361600)])
    add(361620, "ins_plus", ref(361620), ref(361620) + "TTTG")
    add(361640, "del_plus", ref(361640, 5), ref(361640))
    add(361650, "multi_plus", ref(361650), f"{OTHER[ref(361650)]},{THIRD[ref(361650)]}")
    add(361660, "mnv_plus", ref(361660, 2), OTHER[ref(361660)] + OTHER[ref(361661)])
    # TBC1D20_1 promoter ('-'; window 443,109-443,409 0-based)
    add(443200, "snv_minus", ref(443200), OTHER[ref(443200)])
    add(443250, "del_minus", ref(443250, 4), ref(443250))
    add(443300, "ins_minus", ref(443300), ref(443300) + "GATTACA")
    # far from promoters
    add(500000, "symbolic", ref(500000), "<DEL>")
    add(500100, "snv_and_symbolic", ref(500100), f"{OTHER[ref(500100)]},<INS:ME>")
    add(500200, "ref_mismatch", OTHER[ref(500200)], ref(500200))
    add(500300, "snv_and_star", ref(500300), f"{OTHER[ref(500300)]},*")
    add(500400, "no_alt", ref(500400), ".")
    add(500500, "ref_equals_alt", ref(500500), ref(500500))
    # one deletion written two ways: delete the base at 1-based 500601 (after 500600 / before 500602)
    add(500600, "del_left_anchor", ref(500600, 2), ref(500600))
    add(500601, "del_right_anchor", ref(500601, 2), ref(500602))
    add(500700, "complex", ref(500700, 3), OTHER[ref(500700)] + "G")
    add(500800, "long_ins", ref(500800), ref(500800) + "ACGTTGCA" * 6)
    add(500900, "long_del", ref(500900, 31), ref(500900))
    add(501000, "lower_case", ref(501000).lower(), OTHER[ref(501000)].lower())
    add(501100, "breakend", ref(501100), ref(501100) + "[20:600000[")
    add(5000, "unknown_chrom", "A", "G", chrom="chr21")

    lines = [
        "##fileformat=VCFv4.2",
        "##contig=<ID=chr20,length=63025520>",
        "##contig=<ID=chr21,length=48129895>",
        '##INFO=<ID=DP,Number=1,Type=Integer,Description="Made-up depth, kept through scoring">',
        "##comment=Hand-made variants on GRCh37 chr20 (tests/data/chr20_2mb.fa.gz) for tests/test_veff.py; "
        "written by tests/data/veff_make_test_vcf.py",
        "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO",
    ]
    for number, (chrom, pos, vid, ref_allele, alt) in enumerate(records):
        lines.append(f"{chrom}\t{pos}\t{vid}\t{ref_allele}\t{alt}\t.\tPASS\tDP={10 + number}")
    (HERE / "veff_test.vcf").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()

"""Tests for genalm_models.genome (FASTA/BED/VCF access) and genalm_models.io_utils, on real chr20 data."""

from __future__ import annotations

import gzip
import multiprocessing
import os
import pickle
import random
import stat
from pathlib import Path

import pytest

from genalm_models.genome import (
    Genome,
    GenomeError,
    Genotype,
    Interval,
    VcfReader,
    parse_genotype,
    read_bed,
    read_vcf,
    reverse_complement,
)
from genalm_models.io_utils import atomic_write, write_text_atomic

SLICE_LENGTH = 2_000_000  # tests/data/chr20_2mb.fa.gz = GRCh37 chr20:0-2,000,000
SHARED_CHR20 = Path(__file__).resolve().parents[2] / "shared" / "data" / "genome" / "GRCh37_chr20.fa.gz"


def _write_bgzf(path: Path, text: str) -> None:
    from Bio import bgzf  # biopython: what pyfaidx itself uses to read BGZF

    with bgzf.BgzfWriter(str(path), "wb") as handle:
        handle.write(text.encode())


def _fasta_text(records: dict[str, str], width: int = 60) -> str:
    lines = []
    for name, sequence in records.items():
        lines.append(f">{name}")
        lines += [sequence[i : i + width] for i in range(0, len(sequence), width)]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------------
# FASTA on the real slice
# ---------------------------------------------------------------------------------------------------


def test_known_bases_at_known_coordinates(chr20_genome):
    assert chr20_genome.contig_lengths == {"20": SLICE_LENGTH}
    # GRCh37 chr20 begins with 60,000 N; the first sequenced bases follow.
    assert chr20_genome.fetch("20", 59_990, 60_020) == "N" * 10 + "GATCCAGAGGTGGAAGAGGA"
    assert chr20_genome.fetch("20", 1_999_990, 2_000_000) == "AAGTCAAAAT"
    assert set(chr20_genome.fetch("20", 0, 60_000)) == {"N"}


def test_agrees_with_pysam_on_the_same_file(chr20_genome, chr20_fasta):
    import pysam
    reference = pysam.FastaFile(str(chr20_fasta))
    rng = random.Random(20)
    for _ in range(200):
        width = rng.randrange(0, 5_000)
        start = rng.randrange(0, SLICE_LENGTH - width)
        assert chr20_genome.fetch("20", start, start + width) == reference.fetch("20", start, start + width).upper()
    assert chr20_genome.fetch("20", 0, SLICE_LENGTH) == reference.fetch("20").upper()


@pytest.mark.skipif(not SHARED_CHR20.exists(), reason="shared GRCh37 chr20 FASTA not available")
def test_slice_equals_start_of_the_full_chromosome(chr20_genome):
    full = Genome(SHARED_CHR20)
    assert full.contig_lengths == {"20": 63_025_520}
    for start in (0, 59_950, 1_000_000, 1_999_000):
        assert chr20_genome.fetch("20", start, start + 1_000) == full.fetch("20", start, start + 1_000)


def test_ucsc_and_ensembl_names_are_interchangeable(chr20_genome):
    assert chr20_genome.resolve("20") == "20"
    assert chr20_genome.resolve("chr20") == "20"
    assert "chr20" in chr20_genome and "chr21" not in chr20_genome
    assert chr20_genome.fetch("chr20", 60_000, 60_500) == chr20_genome.fetch("20", 60_000, 60_500)


@pytest.mark.parametrize(
    "fasta_names, query, expected",
    [
        (["1", "X", "MT"], "chrX", "X"),
        (["1", "X", "MT"], "chrM", "MT"),
        (["1", "X", "MT"], "chr1", "1"),
        (["chr1", "chrX", "chrM"], "X", "chrX"),
        (["chr1", "chrX", "chrM"], "MT", "chrM"),
        (["chr1", "chrX", "chrM"], "1", "chr1"),
    ],
)
def test_chromosome_name_mapping_both_directions(tmp_path, fasta_names, query, expected):
    fasta = tmp_path / "names.fa"
    fasta.write_text(_fasta_text({name: "ACGT" * 5 for name in fasta_names}))
    genome = Genome(fasta)
    assert genome.resolve(query) == expected
    assert genome.fetch(query, 0, 4) == "ACGT"


def test_unknown_chromosome_names_bed_line_and_available_names(chr20_genome, tmp_path):
    bed = tmp_path / "elsewhere.bed"
    bed.write_text("chr20\t100\t200\n" "chr21\t100\t200\n")
    intervals = list(read_bed(bed))
    assert chr20_genome.fetch(intervals[0]) == "N" * 100
    with pytest.raises(GenomeError) as error:
        chr20_genome.fetch(intervals[1])
    message = str(error.value)
    assert f"{bed}:2" in message and "'chr21'" in message and "it has: 20" in message


def test_minus_strand_is_reverse_complement_of_plus(chr20_genome):
    rng = random.Random(7)
    for _ in range(50):
        start = rng.randrange(60_000, SLICE_LENGTH - 3_000)
        plus = chr20_genome.fetch("20", start, start + 2_000)
        minus = chr20_genome.fetch("20", start, start + 2_000, strand="-")
        assert minus == reverse_complement(plus)
        assert minus[::-1].translate(str.maketrans("ACGTN", "TGCAN")) == plus
    # An interval's own strand is the default, and an explicit strand overrides it.
    interval = Interval("chr20", 60_000, 60_010, strand="-")
    assert chr20_genome.fetch(interval) == reverse_complement("GATCCAGAGG") == "CCTCTGGATC"
    assert chr20_genome.fetch(interval, strand="+") == "GATCCAGAGG"


def test_splice_sites_read_gt_ag_on_both_strands(chr20_genome, spliceai_table):
    """Real biology checks the strand handling: introns start with GT and end with AG in transcript
    orientation, whichever genomic strand the gene lies on."""
    donors, acceptors = [], []
    for line in spliceai_table.read_text().splitlines():
        _, _, chrom, strand, _, _, exon_ends, exon_starts = line.split("\t")
        # SpliceAI table: exon ends are 1-based last exon bases, exon starts 1-based first exon bases.
        for exon_end in map(int, exon_ends.strip(",").split(",")):
            intron_low_end = chr20_genome.fetch(chrom, exon_end, exon_end + 2, strand=strand)
            (donors if strand == "+" else acceptors).append(intron_low_end)
        for exon_start in map(int, exon_starts.strip(",").split(",")):
            intron_high_end = chr20_genome.fetch(chrom, exon_start - 3, exon_start - 1, strand=strand)
            (acceptors if strand == "+" else donors).append(intron_high_end)
    assert len(donors) > 100 and len(acceptors) > 100
    assert sum(site == "GT" for site in donors) / len(donors) > 0.95
    assert sum(site == "AG" for site in acceptors) / len(acceptors) > 0.95


# ---------------------------------------------------------------------------------------------------
# Intervals and windows
# ---------------------------------------------------------------------------------------------------


def test_resize_keeps_the_centre_and_the_other_fields():
    tss = Interval("chr20", 5_000, 5_001, name="G_1", strand="-", source="x.bed", line=4)
    wide = tss.resize(2_000)
    assert (wide.start, wide.end, wide.width) == (4_000, 6_000, 2_000)
    assert (wide.name, wide.strand, wide.source, wide.line) == ("G_1", "-", "x.bed", 4)
    ten = Interval("1", 10, 20)
    assert ten.center == 15
    assert (ten.resize(4).start, ten.resize(4).end) == (13, 17)
    assert (ten.resize(5).start, ten.resize(5).end) == (13, 18)
    assert ten.resize(5).center == ten.center


def test_windows_around_a_tss_follow_the_strand():
    plus = Interval.around("20", 1_000, upstream=249, downstream=50, strand="+")
    minus = Interval.around("20", 1_000, upstream=249, downstream=50, strand="-")
    assert (plus.start, plus.end, plus.width) == (751, 1_051, 300)
    assert (minus.start, minus.end, minus.width) == (950, 1_250, 300)  # upstream at higher coordinates
    for upstream, downstream, width in ((249, 50, 300), (1_000, 999, 2_000), (8_000, 7_999, 16_000)):
        assert Interval.around("20", 1_000, upstream, downstream, "-").width == width
    with pytest.raises(GenomeError):
        Interval.around("20", 1_000, -1, 5)


def test_promoter_windows_put_the_tss_at_index_upstream(chr20_genome, promoters_bed):
    tss_records = list(read_bed(promoters_bed))
    assert {record.strand for record in tss_records} == {"+", "-"}
    for record in tss_records:
        window = record.window(upstream=249, downstream=50)
        assert window.width == 300 and window.strand == record.strand
        assert (window.source, window.line, window.name) == (record.source, record.line, record.name)
        sequence = chr20_genome.fetch(window)
        assert len(sequence) == 300
        # The TSS base, read on the gene's strand, sits right after the 249 upstream bases.
        assert sequence[249] == chr20_genome.fetch(record)
        assert chr20_genome.fetch(record.window(1_000, 999))[1_000] == sequence[249]


def test_interval_rejects_bad_coordinates_and_strands():
    with pytest.raises(GenomeError, match="x.bed:3: start 10 is greater than end 5"):
        Interval("1", 10, 5, source="x.bed", line=3)
    with pytest.raises(GenomeError, match="strand"):
        Interval("1", 1, 5, strand="*")
    with pytest.raises(GenomeError, match="integer"):
        Interval("1", 1.5, 5)


# ---------------------------------------------------------------------------------------------------
# Off-chromosome padding
# ---------------------------------------------------------------------------------------------------


def test_padding_past_the_chromosome_end_on_both_strands(chr20_genome):
    last = chr20_genome.fetch("20", SLICE_LENGTH - 5, SLICE_LENGTH)
    assert chr20_genome.fetch("20", SLICE_LENGTH - 5, SLICE_LENGTH + 5) == last + "N" * 5
    minus = chr20_genome.fetch("20", SLICE_LENGTH - 5, SLICE_LENGTH + 5, strand="-")
    assert minus == "N" * 5 + reverse_complement(last)
    assert chr20_genome.fetch("20", SLICE_LENGTH + 10, SLICE_LENGTH + 20) == "N" * 10
    assert len(chr20_genome.fetch(Interval.around("20", SLICE_LENGTH - 10, 8_000, 7_999, "+"))) == 16_000


def test_padding_before_the_chromosome_start_on_both_strands(tmp_path, chr20_genome):
    fasta = tmp_path / "short.fa"
    fasta.write_text(_fasta_text({"chr1": "ACGTTGCAAC"}))
    genome = Genome(fasta)
    assert genome.fetch("chr1", -3, 4) == "NNNACGT"
    assert genome.fetch("chr1", -3, 4, strand="-") == "ACGTNNN"
    assert genome.fetch("chr1", -3, 13) == "NNNACGTTGCAACNNN"
    assert genome.fetch("chr1", -3, 13, strand="-") == "NNNGTTGCAACGTNNN"
    assert genome.fetch("chr1", -8, -2) == "N" * 6
    # The real chromosome start, on both strands: lengths hold, nothing is cut.
    assert chr20_genome.fetch("20", -100, 60_010) == "N" * 60_100 + "GATCCAGAGG"
    assert chr20_genome.fetch("20", -100, 60_010, strand="-") == "CCTCTGGATC" + "N" * 60_100


def test_pad_error_refuses_intervals_off_either_end(chr20_genome, tmp_path):
    bed = tmp_path / "edges.bed"
    bed.write_text(f"chr20\t0\t10\tstart\t0\t-\nchr20\t{SLICE_LENGTH - 10}\t{SLICE_LENGTH}\tend\t0\t+\n")
    first, last = read_bed(bed)
    assert chr20_genome.fetch(first, pad="error") == "N" * 10
    with pytest.raises(GenomeError, match=rf"{bed}:1.*runs off 20 \(length {SLICE_LENGTH}\): 5 bases before"):
        chr20_genome.fetch(first.resize(20), pad="error")
    with pytest.raises(GenomeError, match=rf"{bed}:2.*runs off.*0 bases before its start, 1 after"):
        chr20_genome.fetch(last.resize(11), pad="error")
    with pytest.raises(ValueError, match="pad must be"):
        chr20_genome.fetch(first, pad="zero")


# ---------------------------------------------------------------------------------------------------
# BED
# ---------------------------------------------------------------------------------------------------

BED_WITH_EXTRAS = (
    "# promoters, hand-made from EPDnew names\n"
    "browser position chr20:60000-70000\n"
    'track name="tss" description="test"\n'
    "chrom\tstart\tend\tname\tscore\tstrand\tsignal\tpeak\n"
    "\n"
    "chr20\t68312\t68313\tDEFB125_1\t0\t+\t4.5\t12\n"
    "chr20\t123230\t123231\tDEFB126_1\t900\t-\n"
    "20 1000 2000\n"
    "chr20\t500\t500\tinsertion\n"
)


def _check_bed_with_extras(intervals, path):
    assert [interval.line for interval in intervals] == [6, 7, 8, 9]
    first, second, third, empty = intervals
    assert first == Interval("chr20", 68312, 68313, "DEFB125_1", "0", "+", ("4.5", "12"), str(path), 6)
    assert (second.name, second.score, second.strand, second.extra) == ("DEFB126_1", "900", "-", ())
    assert (third.chrom, third.start, third.end, third.name, third.strand) == ("20", 1000, 2000, ".", ".")
    assert empty.width == 0


def test_bed_skips_comments_track_browser_header_and_keeps_extra_columns(tmp_path):
    bed = tmp_path / "tss.bed"
    bed.write_text(BED_WITH_EXTRAS)
    _check_bed_with_extras(list(read_bed(bed)), bed)


def test_bed_gz_reads_the_same(tmp_path):
    bed = tmp_path / "tss.bed.gz"
    with gzip.open(bed, "wt") as handle:
        handle.write(BED_WITH_EXTRAS)
    _check_bed_with_extras(list(read_bed(bed)), bed)


def test_real_promoter_bed(promoters_bed):
    records = list(read_bed(promoters_bed))
    assert len(records) == 62
    assert records[0] == Interval("chr20", 68312, 68313, "DEFB125_1", "0", "+", (), str(promoters_bed), 1)
    assert all(record.width == 1 and record.end <= SLICE_LENGTH for record in records)


@pytest.mark.parametrize(
    "bad_line, problem",
    [
        ("chr20\t100", "expected at least 3 fields"),
        ("chr20\tone\t200", "start 'one' is not an integer"),
        ("chr20\t100\t2e5", "end '2e5' is not an integer"),
        ("chr20\t1_000\t2000", "start '1_000' is not an integer"),
        ("chr20\t-5\t200", "start -5 is negative"),
        ("chr20\t300\t200", "start 300 is greater than end 200"),
        ("chr20\t100\t200\tname\t0\t*", "strand '*' is not one of"),
    ],
)
def test_malformed_bed_lines_name_file_line_and_problem(tmp_path, bad_line, problem):
    bed = tmp_path / "bad.bed"
    bed.write_text("# comment\nchr20\t1\t2\n" + bad_line + "\nchr20\t3\t4\n")
    with pytest.raises(GenomeError) as error:
        list(read_bed(bed))
    assert str(error.value).startswith(f"{bed}:3: ")
    assert problem in str(error.value)


def test_bed_first_line_of_junk_is_an_error_not_a_header(tmp_path):
    bed = tmp_path / "junk.bed"
    bed.write_text("chr20\tabc\tdef\n")
    with pytest.raises(GenomeError, match=rf"{bed}:1: start 'abc' is not an integer"):
        list(read_bed(bed))


def test_bed_not_utf8_names_the_line(tmp_path):
    bed = tmp_path / "latin1.bed"
    bed.write_bytes(b"chr20\t1\t2\tok\n" * 3 + b"chr20\t1\t2\tcaf\xe9\n")
    with pytest.raises(GenomeError, match=rf"{bed}:4: not UTF-8"):
        list(read_bed(bed))


def test_missing_files_are_named(tmp_path):
    missing = tmp_path / "nope.bed"
    with pytest.raises(GenomeError, match=rf"BED file not found: {missing}"):
        list(read_bed(missing))
    with pytest.raises(GenomeError, match="FASTA file not found"):
        Genome(tmp_path / "nope.fa")
    with pytest.raises(GenomeError, match="VCF file not found"):
        VcfReader(tmp_path / "nope.vcf")


# ---------------------------------------------------------------------------------------------------
# FASTA files: indexing, compression, processes
# ---------------------------------------------------------------------------------------------------


@pytest.fixture
def read_only_dir(tmp_path):
    folder = tmp_path / "read_only"
    folder.mkdir()
    yield folder
    folder.chmod(stat.S_IRWXU)  # let pytest clean up


@pytest.mark.parametrize("compression", ["plain", "bgzf"])
def test_unindexed_fasta_in_a_read_only_folder(chr20_genome, read_only_dir, tmp_path, compression):
    records = {
        "20": chr20_genome.fetch("20", 0, 150_000),
        "chr20_piece": chr20_genome.fetch("20", 1_000_000, 1_003_333),
    }
    fasta = read_only_dir / ("genome.fa" if compression == "plain" else "genome.fa.gz")
    if compression == "plain":
        fasta.write_text(_fasta_text(records))
    else:
        _write_bgzf(fasta, _fasta_text(records))
    read_only_dir.chmod(stat.S_IRUSR | stat.S_IXUSR)
    before = sorted(os.listdir(read_only_dir))
    cache = tmp_path / "cache"

    genome = Genome(fasta, index_dir=cache)
    assert genome.contig_lengths == {"20": 150_000, "chr20_piece": 3_333}
    assert genome.fetch("20", 59_990, 60_020) == chr20_genome.fetch("20", 59_990, 60_020)
    assert genome.fetch("chr20_piece", 3_300, 3_340) == records["chr20_piece"][3_300:] + "N" * 7
    assert sorted(os.listdir(read_only_dir)) == before  # nothing written beside the FASTA
    built = sorted(path.name for path in cache.iterdir())
    assert len(built) == (1 if compression == "plain" else 2) and all(name.startswith(fasta.name) for name in built)

    # A second Genome reuses the cached index instead of building another.
    mtimes = {path.name: path.stat().st_mtime_ns for path in cache.iterdir()}
    assert Genome(fasta, index_dir=cache).fetch("20", 60_000, 60_010) == "GATCCAGAGG"
    assert {path.name: path.stat().st_mtime_ns for path in cache.iterdir()} == mtimes


def test_default_index_cache_follows_the_environment(tmp_path, monkeypatch):
    fasta = tmp_path / "data" / "g.fa"
    fasta.parent.mkdir()
    fasta.write_text(_fasta_text({"1": "ACGT" * 10}))
    monkeypatch.setenv("GENALM_CACHE_DIR", str(tmp_path / "genalm"))
    Genome(fasta)
    assert [path.suffix for path in (tmp_path / "genalm" / "fasta_index").iterdir()] == [".fai"]
    monkeypatch.delenv("GENALM_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    Genome(fasta)
    assert [path.suffix for path in (tmp_path / "xdg" / "genalm_models" / "fasta_index").iterdir()] == [".fai"]
    assert os.listdir(fasta.parent) == ["g.fa"]


def test_changed_fasta_gets_a_new_index(tmp_path):
    fasta = tmp_path / "g.fa"
    fasta.write_text(_fasta_text({"1": "ACGT" * 10}))
    assert Genome(fasta, index_dir=tmp_path / "cache").contig_lengths == {"1": 40}
    fasta.write_text(_fasta_text({"1": "ACGT" * 20, "2": "GG"}))
    assert Genome(fasta, index_dir=tmp_path / "cache").contig_lengths == {"1": 80, "2": 2}


def test_plain_gzip_fasta_is_refused_with_advice(tmp_path):
    fasta = tmp_path / "g.fa.gz"
    with gzip.open(fasta, "wt") as handle:
        handle.write(_fasta_text({"1": "ACGT" * 10}))
    with pytest.raises(GenomeError, match="bgzip"):
        Genome(fasta)


def test_malformed_fasta_names_the_file(tmp_path):
    fasta = tmp_path / "ragged.fa"
    fasta.write_text(">1\nACGTACGT\nACG\nACGTACGT\n")
    with pytest.raises(GenomeError, match=str(fasta)):
        Genome(fasta, index_dir=tmp_path / "cache")


def test_lower_case_fasta_is_returned_upper_case(tmp_path):
    fasta = tmp_path / "soft_masked.fa"
    fasta.write_text(_fasta_text({"1": "ACgtnNacGT"}))
    genome = Genome(fasta)
    assert genome.fetch("1", 0, 10) == "ACGTNNACGT"
    assert genome.fetch("1", 0, 10, strand="-") == "ACGTNNACGT"[::-1].translate(str.maketrans("ACGTN", "TGCAN"))


def _fetch_with_inherited_genome(start):
    sequence = _INHERITED_GENOME.fetch("20", start, start + 500)
    # A handle inherited through fork shares its file offset with the parent and the other workers;
    # each worker must have opened its own.
    assert _INHERITED_GENOME._owner_pid == os.getpid()
    return os.getpid(), sequence


_INHERITED_GENOME = None


def test_safe_in_forked_workers_and_when_pickled(chr20_genome):
    global _INHERITED_GENOME
    starts = list(range(60_000, 1_900_000, 37_000))
    expected = [chr20_genome.fetch("20", start, start + 500) for start in starts]  # parent's handle is open

    state = chr20_genome.__getstate__()
    assert state["_fasta"] is None  # the open file handle is never pickled
    assert pickle.loads(pickle.dumps(chr20_genome)).fetch("20", 60_000, 60_010) == "GATCCAGAGG"

    _INHERITED_GENOME = chr20_genome
    try:
        with multiprocessing.get_context("fork").Pool(2) as pool:
            forked = pool.map(_fetch_with_inherited_genome, starts, chunksize=1)
    finally:
        _INHERITED_GENOME = None
    assert [sequence for _, sequence in forked] == expected
    assert os.getpid() not in {pid for pid, _ in forked}
    assert chr20_genome.fetch("20", 60_000, 60_010) == "GATCCAGAGG"  # the parent still reads correctly


# ---------------------------------------------------------------------------------------------------
# Reverse complement
# ---------------------------------------------------------------------------------------------------


def test_reverse_complement_is_iupac_aware_and_keeps_case():
    assert reverse_complement("ACGTN") == "NACGT"
    assert reverse_complement("RYSWKMBDHV") == "BDHVKMWSRY"
    assert reverse_complement("AcgTn") == "nAcgT"
    assert reverse_complement("") == ""
    sequence = "ACGTRYSWKMBDHVNacgtryswkmbdhvn"
    assert reverse_complement(reverse_complement(sequence)) == sequence
    with pytest.raises(GenomeError, match="'X' at position 2"):
        reverse_complement("ACXT")


# ---------------------------------------------------------------------------------------------------
# VCF
# ---------------------------------------------------------------------------------------------------

VCF_HEADER = (
    "##fileformat=VCFv4.2\n"
    "##contig=<ID=20,length=63025520>\n"
    '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n'
    "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tmother\tchild\n"
)


def _vcf_body(genome: Genome) -> str:
    # REF alleles are the real GRCh37 bases at these positions (pos is 1-based).
    snv_ref = genome.fetch("20", 60_000, 60_001)
    deletion_ref = genome.fetch("20", 60_009, 60_013)
    return (
        f"20\t60001\trs1\t{snv_ref}\tA\t50\tPASS\tAF=0.5\tGT:DP\t0|1:12\t1|1:7\n"
        f"chr20\t60010\t.\t{deletion_ref}\t{deletion_ref[0]},T\t.\tq10\t.\tGT\t1/2\t0|.\n"
        "20\t70000\tsv1\tA\t<DEL>,*\t3.5\tPASS\tSVTYPE=DEL\tGT:DP\t./.\t1\n"
        "\n"
        "20\t80000\tnoalt\tC\t.\t.\t.\t.\tGT\t0/0\t0\n"
    )


def _check_vcf_records(records, path, genome):
    assert [record.line for record in records] == [5, 6, 7, 9]
    snv, multi, symbolic, no_alt = records
    assert (snv.chrom, snv.pos, snv.id, snv.alts, snv.qual, snv.filter, snv.info) == (
        "20", 60001, "rs1", ("A",), 50.0, "PASS", "AF=0.5"
    )
    assert (snv.start, snv.end, snv.format, snv.source) == (60_000, 60_001, "GT:DP", str(path))
    assert snv.samples == ("0|1:12", "1|1:7")
    assert snv.raw.startswith("20\t60001\trs1\t")
    assert snv.genotypes() == [Genotype((0, 1), True), Genotype((1, 1), True)]
    assert multi.alts == (multi.ref[0], "T") and multi.qual is None and len(multi.ref) == 4
    assert multi.genotypes() == [Genotype((1, 2), False), Genotype((0, None), True)]
    assert symbolic.alts == ("<DEL>", "*") and symbolic.qual == 3.5
    assert symbolic.genotypes() == [Genotype((None, None), False), Genotype((1,), True)]
    assert no_alt.alts == () and no_alt.genotypes() == [Genotype((0, 0), False), Genotype((0,), True)]
    # The REF spans point at the real reference bases, also through chr20 -> 20 name mapping.
    for record in (snv, multi):
        assert genome.fetch(record.to_interval()) == record.ref


def test_vcf_records_header_samples_and_genotypes(tmp_path, chr20_genome):
    vcf = tmp_path / "calls.vcf"
    vcf.write_text(VCF_HEADER + _vcf_body(chr20_genome))
    with VcfReader(vcf) as reader:
        assert reader.header_lines == VCF_HEADER.rstrip("\n").split("\n")
        assert reader.samples == ("mother", "child")
        records = list(reader)
    _check_vcf_records(records, vcf, chr20_genome)


def test_vcf_gz_and_bgzip_read_the_same(tmp_path, chr20_genome):
    text = VCF_HEADER + _vcf_body(chr20_genome)
    gz = tmp_path / "calls.vcf.gz"
    with gzip.open(gz, "wt") as handle:
        handle.write(text)
    _check_vcf_records(list(read_vcf(gz)), gz, chr20_genome)
    bgz = tmp_path / "calls.bgz.vcf.gz"
    _write_bgzf(bgz, text)
    _check_vcf_records(list(read_vcf(bgz)), bgz, chr20_genome)


def test_vcf_without_samples(tmp_path):
    vcf = tmp_path / "sites.vcf"
    vcf.write_text("##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n20\t5\t.\tA\tG\t.\t.\t.\n")
    (record,) = read_vcf(vcf)
    assert record.format is None and record.samples == ()
    with pytest.raises(GenomeError, match=rf"{vcf}:3: the record has no samples"):
        record.genotypes()


def test_duplicate_sample_names_are_one_error_naming_line_and_columns(tmp_path):
    """htslib's own message for this is "file ... does not have valid header" (and an [E::...] line on stderr)."""
    vcf = tmp_path / "dup.vcf"
    vcf.write_text("##fileformat=VCFv4.2\n##FORMAT=<ID=GT,Number=1,Type=String,Description=\"GT\">\n"
                   "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tS1\tS2\tS1\n"
                   "20\t100\t.\tA\tG\t.\t.\t.\tGT\t0/1\t1/1\t0/0\n")
    with pytest.raises(GenomeError, match=rf"^{vcf}:3: sample 'S1' names columns 10 and 12; sample names must be "
                                          r"unique"):
        list(read_vcf(vcf))


GOOD_SITE = "20\t100\t.\tA\tG\t.\t.\t.\tGT\t0/1"


@pytest.mark.parametrize(
    "bad_line, problem",
    [
        ("20\t100\t.\tA\tG\t.\t.", "expected 10 tab-separated fields, found 7"),
        ("20\t100\t.\tA\tG\t.\t.\t.\tGT\t0/1\t1/1", "expected 10 tab-separated fields, found 11"),
        ("20 100 . A G . . . GT 0/1", "expected 10 tab-separated fields, found 1"),
        ("20\tabc\t.\tA\tG\t.\t.\t.\tGT\t0/1", "POS 'abc' is not a positive integer"),
        ("20\t0\t.\tA\tG\t.\t.\t.\tGT\t0/1", "POS '0' is not a positive integer"),
        ("20\t100\t.\tAXG\tG\t.\t.\t.\tGT\t0/1", "REF 'AXG' is not a sequence of nucleotides"),
        ("20\t100\t.\tA\tG,,T\t.\t.\t.\tGT\t0/1", "ALT allele '' is neither"),
        ("20\t100\t.\tA\tG\thigh\t.\t.\tGT\t0/1", "QUAL 'high' is not a number"),
        ("#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO", "header line after the first variant"),
    ],
)
def test_malformed_vcf_lines_name_file_line_and_problem(tmp_path, bad_line, problem):
    vcf = tmp_path / "bad.vcf"
    vcf.write_text(VCF_HEADER.replace("\tmother\tchild", "\tsample") + GOOD_SITE + "\n" + bad_line + "\n")
    records = read_vcf(vcf)
    assert next(records).pos == 100
    with pytest.raises(GenomeError) as error:
        next(records)
    assert str(error.value).startswith(f"{vcf}:6: ") and problem in str(error.value)


def test_malformed_vcf_column_line(tmp_path):
    vcf = tmp_path / "bad_header.vcf"
    vcf.write_text("##fileformat=VCFv4.2\n#CHROM\tPOS\tREF\tALT\n")
    with pytest.raises(GenomeError, match=rf"{vcf}:2: the column line must start with #CHROM POS ID"):
        VcfReader(vcf)


def test_genotype_allele_beyond_the_alts_is_an_error(tmp_path):
    vcf = tmp_path / "gt.vcf"
    vcf.write_text(VCF_HEADER + "20\t100\t.\tA\tG,T\t.\t.\t.\tGT\t0|3\t0|1\n")
    (record,) = read_vcf(vcf)
    with pytest.raises(GenomeError, match=rf"{vcf}:5: sample 1: allele 3 in GT '0\|3' but only 2 ALT"):
        record.genotypes()


def test_parse_genotype():
    assert parse_genotype("0|1") == Genotype((0, 1), True)
    assert parse_genotype("1/0") == Genotype((1, 0), False)
    assert parse_genotype("./.") == Genotype((None, None), False)
    assert parse_genotype(".") == Genotype((None,), True)
    assert parse_genotype("2") == Genotype((2,), True)
    assert parse_genotype("0|1|2") == Genotype((0, 1, 2), True)
    for bad in ("", "0-1", "a|b", "0|", "|1"):
        with pytest.raises(GenomeError, match="is not a genotype"):
            parse_genotype(bad)


# ---------------------------------------------------------------------------------------------------
# Atomic output
# ---------------------------------------------------------------------------------------------------


def test_write_text_atomic_text_and_lines(tmp_path):
    target = tmp_path / "out.tsv"
    write_text_atomic(target, "a\tb\n")
    assert target.read_text() == "a\tb\n"
    write_text_atomic(target, (f"row{i}" for i in range(3)))
    assert target.read_text() == "row0\nrow1\nrow2\n"
    write_text_atomic(target, ["kept\n", "added"])
    assert target.read_text() == "kept\nadded\n"
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask  # like a plain open(), not 0600
    assert os.listdir(tmp_path) == ["out.tsv"]


def test_write_text_atomic_failure_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old\n")

    def lines_that_fail():
        yield "new line"
        raise RuntimeError("generator broke")

    with pytest.raises(RuntimeError, match="generator broke"):
        write_text_atomic(target, lines_that_fail())
    assert target.read_text() == "old\n"
    assert os.listdir(tmp_path) == ["out.txt"]

    with pytest.raises(ZeroDivisionError):
        with atomic_write(tmp_path / "binary.bin", "wb") as handle:
            handle.write(b"\x00\x01")
            1 / 0
    assert os.listdir(tmp_path) == ["out.txt"]
    with atomic_write(tmp_path / "binary.bin", "wb") as handle:
        handle.write(b"\x00\x01")
    assert (tmp_path / "binary.bin").read_bytes() == b"\x00\x01"


# ---- FASTA indexes that do not belong to their FASTA; truncated BGZF (issue: input faults, kinds 1-2) ----------------
def test_an_index_of_another_version_of_the_fasta_is_not_used(tmp_path, chr20_fasta, chr20_genome, caplog):
    """Same sequence, longer header, the old .fai kept beside it and the new file older than the index (as `cp -p`,
    rsync -a, tar leave it): the windows must not shift."""
    import logging
    import time

    import pysam

    text = gzip.open(chr20_fasta, "rt").read()
    fasta = tmp_path / "ref.fa"
    fasta.write_text(text)
    pysam.faidx(str(fasta))
    expected = chr20_genome.fetch("20", 1_000_000, 1_000_060)
    header, _, rest = text.partition("\n")
    fasta.write_text(header + " assembled from 12 contigs, a much longer description\n" + rest)
    old = time.time() - 3600
    os.utime(fasta, (old, old))
    assert (tmp_path / "ref.fa.fai").stat().st_mtime > fasta.stat().st_mtime  # looks fresh by mtime
    with caplog.at_level(logging.WARNING, logger="genalm_models.genome"):
        with Genome(fasta, index_dir=tmp_path / "cache") as genome:
            assert genome.fetch("20", 1_000_000, 1_000_060) == expected
    messages = [r.getMessage() for r in caplog.records if getattr(r, "genalm_kind", "") == "fasta_index_mismatch"]
    assert len(messages) == 1 and "ref.fa.fai" in messages[0] and "does not belong" in messages[0]


def test_a_bgzf_index_of_another_file_is_not_used(tmp_path, chr20_fasta, chr20_genome, caplog):
    import logging

    import pysam

    plain = tmp_path / "other.fa"
    plain.write_text(">20 other\n" + ("ACGT" * 15 + "\n") * 17 + gzip.open(chr20_fasta, "rt").read().partition("\n")[2])
    pysam.tabix_compress(str(plain), str(tmp_path / "other.fa.gz"))
    for suffix in (".fai", ".gzi"):  # the index of the test FASTA beside another file
        (tmp_path / f"other.fa.gz{suffix}").write_bytes(Path(f"{chr20_fasta}{suffix}").read_bytes())
    with caplog.at_level(logging.WARNING, logger="genalm_models.genome"):
        with Genome(tmp_path / "other.fa.gz", index_dir=tmp_path / "cache") as genome:
            assert genome.contig_lengths["20"] == 2_000_000 + 1020
            assert genome.fetch("20", 1020, 1080) == chr20_genome.fetch("20", 0, 60)
    assert any("does not belong" in r.getMessage() for r in caplog.records)


def test_a_truncated_bgzf_fasta_says_so_with_or_without_its_index(tmp_path, chr20_fasta):
    cut = tmp_path / "cut.fa.gz"
    cut.write_bytes(chr20_fasta.read_bytes()[:300_000])
    for with_index in (True, False):
        for suffix in (".fai", ".gzi"):
            target = tmp_path / f"cut.fa.gz{suffix}"
            if with_index:
                target.write_bytes(Path(f"{chr20_fasta}{suffix}").read_bytes())
            elif target.exists():
                target.unlink()
        with pytest.raises(GenomeError, match=r"cut\.fa\.gz: .*looks truncated"):
            Genome(cut, index_dir=tmp_path / "cache")


def test_damage_found_while_reading_names_file_and_region(tmp_path, chr20_fasta):
    """A BGZF block damaged in the middle (EOF block intact, index consistent at its ends): the read error names the
    file, the region and the likely cause instead of a zlib / pyfaidx message."""
    data = bytearray(chr20_fasta.read_bytes())
    middle = len(data) // 2
    data[middle: middle + 2000] = bytes(2000)
    broken = tmp_path / "broken.fa.gz"
    broken.write_bytes(bytes(data))
    for suffix in (".fai", ".gzi"):
        (tmp_path / f"broken.fa.gz{suffix}").write_bytes(Path(f"{chr20_fasta}{suffix}").read_bytes())
    genome = Genome(broken, index_dir=tmp_path / "cache")
    with pytest.raises(GenomeError, match=r"broken\.fa\.gz: cannot read 20:.*truncated or corrupt"):
        for start in range(0, 2_000_000, 50_000):
            genome.fetch("20", start, start + 50_000)


def test_reference_letters_one_policy_on_both_strands(tmp_path, caplog):
    """(input faults, kind 3) IUPAC ambiguity codes in the reference are read as N with a counted warning; junk
    letters are an error naming file, contig, position and the BED line, the same on both strands."""
    import logging

    fasta = tmp_path / "ref.fa"
    fasta.write_text(">c1\n" + "ACGT" * 10 + "ACRYGT" + "ACGT" * 10 + "\n>c2\n" + "ACGT" * 20 + "X*" + "ACGT" * 5 + "\n")
    bed = tmp_path / "x.bed"
    bed.write_text("c1\t0\t60\ta\t0\t+\nc1\t0\t60\tb\t0\t-\nc2\t70\t90\tc\t0\t+\nc2\t70\t90\td\t0\t-\n")
    intervals = list(read_bed(bed))
    with caplog.at_level(logging.WARNING, logger="genalm_models.genome"):
        with Genome(fasta, index_dir=tmp_path / "cache") as genome:
            plus, minus = genome.fetch(intervals[0]), genome.fetch(intervals[1])
            assert plus[40:46] == "ACNNGT" and minus == reverse_complement(plus)
            assert genome.ambiguous_bases == 4
            for interval in intervals[2:]:
                with pytest.raises(GenomeError, match=r"ref\.fa: c2:81: 'X' is not a nucleotide letter.*x\.bed:[34]"):
                    genome.fetch(interval)
    assert any(getattr(r, "genalm_kind", "") == "ambiguous_reference_bases" for r in caplog.records)

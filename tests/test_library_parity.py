"""The libraries we could read genome files with, run next to our own code (issue 16, parts 2 and 3).

Where a library does the job it is used; where it is wrong for GENA-LM models (or for our error reporting), our code
stays and a test here asserts both results side by side, so the library's behaviour, not a claim, is the reason.
kipoiseq 0.7.1 (intervals, resizing, FASTA extraction, variant sequences, its string dataloader), pybedtools (BED)
and pysam / htslib (VCF).
"""
from __future__ import annotations

import os
import subprocess
import sys
import warnings
from types import SimpleNamespace

import pytest

from genalm_models.genome import Genome, GenomeError, Interval, VcfReader, read_bed, read_vcf
from kipoi_genalm.sequences import IntervalSequences, ReferenceExtractor, target_region, window_spec

CONTIG = (
    "ACGTACGGTTCAGGCATTACGATCCGATTAGGCTAACCGTTAGCATCGGATCAATCGCTAGGCTTAACGGCTAGCATTCGAATGCAGTCCGATAGCTTAG"
)  # 100 bases, no repeats at the ends


@pytest.fixture(scope="module")
def kipoiseq(kipoi_imported):
    """kipoiseq, imported after kipoi was imported safely (kipoiseq imports kipoi, which writes ~/.kipoi)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import kipoiseq
        import kipoiseq.dataloaders  # noqa: F401
        import kipoiseq.extractors  # noqa: F401
        import kipoiseq.transforms.functional  # noqa: F401
    return kipoiseq


@pytest.fixture
def tiny_fasta(tmp_path):
    """A plain FASTA with one 100-bp contig named `20` (Ensembl style)."""
    path = tmp_path / "tiny.fa"
    path.write_text(">20\n" + CONTIG[:60] + "\n" + CONTIG[60:] + "\n")
    return path


# ---- kipoiseq imports kipoi: why it stays under plugin/ --------------------------------------------------------------
def test_kipoiseq_imports_kipoi_so_genalm_models_does_not_use_it(tmp_path):
    code = "import sys, kipoiseq; print('kipoi' in sys.modules)"
    env = dict(os.environ, HOME=str(tmp_path))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "True"


# ---- extraction: FastaStringExtractor vs ReferenceExtractor ----------------------------------------------------------
def test_fasta_string_extractor_agrees_inside_the_contig_on_both_strands(kipoiseq, tiny_fasta):
    theirs = kipoiseq.extractors.FastaStringExtractor(str(tiny_fasta), use_strand=True, force_upper=True)
    with Genome(tiny_fasta) as genome:
        ours = ReferenceExtractor(genome)
        for strand in "+-":
            interval = kipoiseq.Interval("20", 10, 40, strand=strand)
            assert theirs.extract(interval) == ours.extract(interval) == genome.fetch("20", 10, 40, strand=strand)
    theirs.close()


def test_fasta_string_extractor_lacks_n_padding_and_chromosome_name_matching(kipoiseq, tiny_fasta):
    from pyfaidx import FetchError

    theirs = kipoiseq.extractors.FastaStringExtractor(str(tiny_fasta), use_strand=True, force_upper=True)
    with Genome(tiny_fasta) as genome:
        ours = ReferenceExtractor(genome)
        past_end = kipoiseq.Interval("20", 95, 105)
        assert theirs.extract(past_end) == CONTIG[95:]                  # 5 bases for a 10-bp window, silently
        assert ours.extract(past_end) == CONTIG[95:] + "N" * 5          # the window's length, N past the end
        before_start = kipoiseq.Interval("20", -5, 5, strand="-")
        with pytest.raises(FetchError, match="start coordinate must be greater"):
            theirs.extract(before_start)
        assert ours.extract(before_start) == genome.fetch("20", 0, 5, strand="-") + "N" * 5
        ucsc = kipoiseq.Interval("chr20", 10, 20)
        with pytest.raises(FetchError, match="rname chr20 does not exist"):
            theirs.extract(ucsc)
        assert ours.extract(ucsc) == CONTIG[10:20]
    theirs.close()


# ---- transforms: kipoiseq's resizing vs our windows ------------------------------------------------------------------
def test_kipoiseq_interval_resize_shifts_a_1bp_site_window_one_base_right_of_ours_on_plus(kipoiseq):
    spec = window_spec(300)  # a centred 300-bp window, as the centred zoo models use
    # The cause: kipoiseq's centre of the 1-bp interval [500, 501) is 501 on '+' (a base outside it), 500 on '-'.
    assert kipoiseq.Interval("20", 500, 501, strand="+").center() == 501
    assert kipoiseq.Interval("20", 500, 501, strand="-").center() == 500 == Interval("20", 500, 501).center
    for strand, theirs_start in (("+", 351), ("-", 350)):
        site = Interval("20", 500, 501, strand=strand)
        theirs = kipoiseq.Interval("20", 500, 501, strand=strand).resize(300)
        ours = target_region(site, spec)
        assert (ours.start, ours.end) == (350, 650)      # the site at index 150 on '+' (centre = start + width // 2)
        assert (theirs.start, theirs.end) == (theirs_start, theirs_start + 300)
    # Even widths agree: only the rounding of an odd start + end differs.
    theirs = kipoiseq.Interval("20", 500, 502, strand="+").resize(300)
    ours = target_region(Interval("20", 500, 502, strand="+"), spec)
    assert (theirs.start, theirs.end) == (ours.start, ours.end) == (351, 651)


def test_kipoiseq_resize_interval_cannot_resize_its_own_interval_and_wraps_negative_starts(kipoiseq):
    import pybedtools

    resize_interval = kipoiseq.transforms.functional.resize_interval
    with pytest.raises(AttributeError, match="has no setter"):
        resize_interval(kipoiseq.Interval("20", 100, 101), 300)
    wrapped = resize_interval(pybedtools.create_interval_from_list(["20", "100", "101"]), 300)
    assert wrapped.start == 2**32 - 50                  # -50 as an unsigned 32-bit coordinate
    assert target_region(Interval("20", 100, 101), window_spec(300)).start == -50   # N-padded by the extractor


# ---- kipoiseq's string dataloader ------------------------------------------------------------------------------------
def test_kipoiseq_string_dataloader_num_chr_fasta_keeps_chr_on_pandas_2(kipoiseq, tiny_fasta, tmp_path):
    from pyfaidx import FetchError

    bed = tmp_path / "ucsc.bed"
    bed.write_text("chr20\t10\t30\n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loader = kipoiseq.dataloaders.StringSeqIntervalDl(str(bed), str(tiny_fasta), num_chr_fasta=True)
        assert loader.bed.df.iloc[0, 0] == "chr20"      # "^chr" is no regex for pandas 2's str.replace
        with pytest.raises(FetchError, match="rname chr20 does not exist"):
            loader[0]
    assert IntervalSequences(bed, tiny_fasta)[0].sequence == CONTIG[10:30]


def test_kipoiseq_string_dataloader_reads_a_bed6_name_as_a_target_without_use_strand(kipoiseq, tiny_fasta, tmp_path):
    bed = tmp_path / "tss.bed"
    bed.write_text("20\t10\t30\tDEFB125_1\t0\t-\n")
    with warnings.catch_warnings(), pytest.raises(ValueError, match="could not convert string to float"):
        warnings.simplefilter("ignore")
        kipoiseq.dataloaders.StringSeqIntervalDl(str(bed), str(tiny_fasta))
    ours = IntervalSequences(bed, tiny_fasta, use_strand=False)[0]
    assert ours.sequence == CONTIG[10:30] and ours.interval.name == "DEFB125_1"


def test_kipoiseq_string_dataloader_agrees_on_the_minus_strand(kipoiseq, tiny_fasta, tmp_path):
    bed = tmp_path / "stranded.bed"
    bed.write_text("20\t10\t30\ta\t0\t-\n20\t10\t30\tb\t0\t+\n")
    plain_names = tmp_path / "ucsc.fa"   # kipoiseq prefixes BED names with chr unless num_chr_fasta
    plain_names.write_text(tiny_fasta.read_text().replace(">20", ">chr20"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loader = kipoiseq.dataloaders.StringSeqIntervalDl(str(bed), str(plain_names), use_strand=True)
        theirs = [str(loader[i]["inputs"]) for i in range(2)]
    ours = IntervalSequences(bed, tiny_fasta)
    assert theirs == [ours[0].sequence, ours[1].sequence]


# ---- variant sequences: kipoiseq's VariantSeqExtractor vs our scorer's alternative windows ---------------------------
def _allele_cases(genome, window):
    for start in (window.start, window.start + 1, window.start + 50, window.end - 2, window.end - 1):
        for ref_len, alt in ((1, "SNV"), (0, "ACG"), (2, ""), (3, "T"), (2, "TTT"), (5, "")):
            if start + ref_len > window.end:
                continue
            ref = genome.fetch(window.chrom, start, start + ref_len)
            if alt == "SNV":
                alt = "A" if ref != "A" else "C"
            yield start, ref, alt


def test_variant_seq_extractor_matches_our_alternative_windows_on_both_strands(kipoiseq, chr20_genome):
    """Same convention (model-oriented 5' edge fixed, 3' end cut or extended): SNVs, MNVs, insertions and deletions
    at both window edges, '+' and '-'. kipoiseq's class is not used for scoring because the one variant applier must
    serve the corpus too, in genalm_models, which cannot import kipoiseq (it imports kipoi)."""
    from kipoi_genalm.veff_variants import Allele, Window, alt_sequence

    extractor = kipoiseq.extractors.VariantSeqExtractor(reference_sequence=ReferenceExtractor(chr20_genome))
    compared = 0
    for strand in "+-":
        window = Window("20", 361_500, 361_600, strand)
        reference = chr20_genome.fetch("20", window.start, window.end, strand=strand)
        for start, ref, alt in _allele_cases(chr20_genome, window):
            ours = alt_sequence(chr20_genome, window, reference, Allele("20", start, ref, alt, 0))
            theirs = extractor.extract(kipoiseq.Interval("20", window.start, window.end, strand=strand),
                                       [SimpleNamespace(chrom="20", start=start, ref=ref, alt=alt)],
                                       anchor=window.start if strand == "+" else window.end)
            assert theirs == ours, (strand, start, ref, alt)
            compared += 1
    assert compared == 48


def test_variant_seq_extractor_on_its_own_fasta_extractor_fails_at_a_contig_end(kipoiseq, tiny_fasta):
    """A deletion in a window that ends at the contig end: kipoiseq's own FASTA extractor cannot read the 3 bases
    past the end that refill the window (pyfaidx returns fewer, kipoiseq raises); on ours they are N."""
    from kipoi_genalm.veff_variants import Allele, Window, alt_sequence

    window, deletion = Window("20", 80, 100, "+"), SimpleNamespace(chrom="20", start=90, ref=CONTIG[90:93], alt="")
    with Genome(tiny_fasta) as genome:
        ours = alt_sequence(genome, window, genome.fetch("20", 80, 100), Allele("20", 90, CONTIG[90:93], "", 0))
        composed = kipoiseq.extractors.VariantSeqExtractor(reference_sequence=ReferenceExtractor(genome))
        padded = composed.extract(kipoiseq.Interval("20", 80, 100), [deletion], anchor=80)
    assert ours == CONTIG[80:90] + CONTIG[93:] + "NNN" == padded
    own = kipoiseq.extractors.VariantSeqExtractor(fasta_file=str(tiny_fasta))
    with pytest.raises(ValueError, match="imply a different length"):
        own.extract(kipoiseq.Interval("20", 80, 100), [deletion], anchor=80)


# ---- BED: pybedtools.BedTool vs read_bed -----------------------------------------------------------------------------
def test_pybedtools_reads_good_bed_files_like_ours(tmp_path):
    import pybedtools

    bed = tmp_path / "good.bed"
    bed.write_text("track name=tss\nbrowser position chr20\n# comment\nchr20\t10\t11\tA_1\t0\t-\nchr20\t5\t5\n")
    theirs = [(i.chrom, i.start, i.end, i.strand) for i in pybedtools.BedTool(str(bed))]
    ours = [(i.chrom, i.start, i.end, i.strand) for i in read_bed(bed)]
    assert theirs == ours == [("chr20", 10, 11, "-"), ("chr20", 5, 5, ".")]


@pytest.mark.parametrize("text, library_error, our_error", [
    ("chr20\t1\t2\nchr20\t100\n", "list index out of range", ":2: expected at least 3 fields"),
    ("chr20\t1\t2\nchr20 1 2e5\n", "list index out of range", ":2: end '2e5' is not an integer"),
    ("chr20\t1\t2\nchr20\t300\t200\n", "Start is greater than stop", ":2: start 300 is greater than end 200"),
    ("chr20\t1\t2\nchr20\t1_000\t2000\n", "Unable to detect format", ":2: start '1_000' is not an integer"),
    ("chrom\tstart\tend\nchr20\t1\t2\n", "Unable to detect format", None),   # a column-name line: ours skips it
])
def test_pybedtools_errors_name_no_line(tmp_path, text, library_error, our_error):
    """pybedtools' errors (an IndexError for a short line) name neither file nor line; ours name both."""
    import pybedtools

    bed = tmp_path / "bad.bed"
    bed.write_text(text)
    with pytest.raises(Exception, match=library_error) as caught:
        list(pybedtools.BedTool(str(bed)))
    assert str(bed) not in str(caught.value)
    if our_error is None:
        assert [(i.chrom, i.start, i.end) for i in read_bed(bed)] == [("chr20", 1, 2)]
    else:
        with pytest.raises(GenomeError, match=f"^{bed}{our_error}"):
            list(read_bed(bed))


def test_pybedtools_accepts_a_strand_ours_refuses(tmp_path):
    import pybedtools

    bed = tmp_path / "star.bed"
    bed.write_text("chr20\t1\t2\tx\t0\t*\n")
    assert [i.strand for i in pybedtools.BedTool(str(bed))] == ["*"]
    with pytest.raises(GenomeError, match=rf"^{bed}:1: strand '\*' is not one of"):
        list(read_bed(bed))


# ---- VCF: pysam.VariantFile (htslib) alone vs VcfReader --------------------------------------------------------------
VCF_HEADER = ("##fileformat=VCFv4.2\n##contig=<ID=20,length=100000>\n"
              "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tsample\n")
GOOD = "20\t100\t.\tA\tG\t.\t.\t.\tGT\t0/1\n"


@pytest.mark.parametrize("line, htslib_reads, our_error", [
    ("20\t100\t.\tA\tG\thigh\t.\t.\tGT\t0/1", ("qual", 0.0), "QUAL 'high' is not a number"),
    ("20\t100\t.\tA\tG\t.\t.\t.\tGT\t0/1\t1/1", ("samples", 1), "expected 10 tab-separated fields, found 11"),
    ("20\t0\t.\tA\tG\t.\t.\t.\tGT\t0/1", ("pos", 0), "POS '0' is not a positive integer"),
    ("20\t100\t.\tAXG\tG\t.\t.\t.\tGT\t0/1", ("ref", "AXG"), "REF 'AXG' is not a sequence of nucleotides"),
    ("20\t100\t.\tA\tG,,T\t.\t.\t.\tGT\t0/1", ("alts", ("G", ".", "T")), "ALT allele '' is neither"),
])
def test_htslib_reads_bad_records_silently_ours_names_file_and_line(tmp_path, line, htslib_reads, our_error):
    """What pysam.VariantFile makes of a bad record (no error, a value nobody wrote) and what VcfReader says."""
    import pysam

    vcf = tmp_path / "bad.vcf"
    vcf.write_text(VCF_HEADER + GOOD + line + "\n")
    previous = pysam.set_verbosity(0)
    try:
        with pysam.VariantFile(str(vcf)) as handle:
            record = list(handle)[1]
            field, value = htslib_reads
            found = len(record.samples) if field == "samples" else getattr(record, field)
    finally:
        pysam.set_verbosity(previous)
    assert found == value
    records = read_vcf(vcf)
    assert next(records).pos == 100
    with pytest.raises(GenomeError, match=f"^{vcf}:5: ") as caught:
        next(records)
    assert our_error in str(caught.value)


def test_htslib_reads_kv_info_ids_but_warns_they_are_invalid(tmp_path, capfd):
    """Our output VCFs name INFO fields `KV:<model>:<score>` (Kipoi's convention); htslib reads them, with an
    'Invalid tag name' warning per ID (VCF 4.3 IDs match [A-Za-z_][0-9A-Za-z_.]*), so outputs are written as text."""
    import pysam

    vcf = tmp_path / "scored.vcf"
    vcf.write_text("##fileformat=VCFv4.2\n##contig=<ID=20,length=100000>\n"
                   '##INFO=<ID=KV:promoter:DIFF,Number=A,Type=Float,Description="score">\n'
                   "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n20\t100\t.\tA\tG\t.\t.\tKV:promoter:DIFF=0.25\n")
    previous = pysam.set_verbosity(3)  # htslib: 3 = warnings (its default)
    try:
        with pysam.VariantFile(str(vcf)) as handle:
            values = [record.info["KV:promoter:DIFF"] for record in handle]
    finally:
        pysam.set_verbosity(previous)
    assert values == [(0.25,)]
    assert 'Invalid tag name: "KV:promoter:DIFF"' in capfd.readouterr().err
    (record,) = read_vcf(vcf)
    assert record.info == "KV:promoter:DIFF=0.25"


def test_vcf_reader_reads_records_through_htslib_quietly(tmp_path, capfd):
    """VcfReader's records come from pysam.VariantFile; htslib's warnings about undeclared INFO/FORMAT fields and
    contigs do not reach stderr, and htslib's verbosity is left as it was."""
    import pysam

    vcf = tmp_path / "undeclared.vcf"
    vcf.write_text("##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tsample\n"
                   "chr7\t5\trs1\tA\t<DEL>,*\t3.5\tPASS\tSVTYPE=DEL\tGT\t./1\n")
    before = pysam.set_verbosity(3)
    try:
        with VcfReader(vcf) as reader:
            (record,) = list(reader)
        assert pysam.set_verbosity(3) == 3
    finally:
        pysam.set_verbosity(before)
    assert (record.chrom, record.pos, record.id, record.alts, record.qual) == ("chr7", 5, "rs1", ("<DEL>", "*"), 3.5)
    assert capfd.readouterr().err == ""


def test_htslib_refuses_extra_format_subfields_and_ours_names_the_line(tmp_path, capfd):
    """A sample column with more subfields than FORMAT declares (`0:5` under `GT`) is invalid VCF: htslib says so
    on stderr without a line; VcfReader raises naming file and line (and htslib's message stays on stderr)."""
    vcf = tmp_path / "extra.vcf"
    vcf.write_text(VCF_HEADER + GOOD + "20\t200\t.\tC\tT\t.\t.\t.\tGT\t0:5\n")
    records = read_vcf(vcf)
    assert next(records).pos == 100
    with pytest.raises(GenomeError, match=rf"^{vcf}:5: htslib cannot parse this record"):
        next(records)
    assert "Incorrect number of FORMAT fields" in capfd.readouterr().err


def test_pysam_given_a_path_cannot_read_plain_gzip_or_skip_blank_lines(tmp_path):
    import gzip

    import pysam

    text = VCF_HEADER + GOOD + "\n" + GOOD.replace("\t100\t", "\t200\t")
    plain_gzip = tmp_path / "calls.vcf.gz"
    with gzip.open(plain_gzip, "wt") as handle:
        handle.write(text)
    with pytest.raises(NotImplementedError, match="seek not implemented"):
        pysam.VariantFile(str(plain_gzip))
    previous = pysam.set_verbosity(0)
    try:
        with open(plain_gzip, "rb") as handle, pysam.VariantFile(handle) as variants:
            with pytest.raises(OSError, match="unable to parse next record"):
                list(variants)   # the blank line
    finally:
        pysam.set_verbosity(previous)
    assert [(record.pos, record.line) for record in read_vcf(plain_gzip)] == [(100, 4), (200, 6)]

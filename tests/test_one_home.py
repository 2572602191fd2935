"""One home per genome concept (issue 16): chromosome names, typed regions, interval merging, applying variants,
atomic and BGZF writing. Each concept has one implementation, every caller uses it, and grep finds no second one."""
import gzip
import re
from pathlib import Path

import pytest
import yaml

from genalm_models.genome import Genome, GenomeError, apply_variants, parse_region_1based, reverse_complement
from genalm_models.genome import names
from genalm_models.genome.intervals import merge_intervals, subtract_intervals
from genalm_models.genome.regions import format_region_1based
from genalm_models.io_utils import atomic_path, atomic_write, move_into_place
from genalm_models.tasks.splits import RegionSplit, parse_range

ROOT = Path(__file__).resolve().parents[1]
SHARED_CHR20 = ROOT.parent / "shared" / "data" / "genome" / "GRCh37_chr20.fa.gz"


# ------------------------------------------------------------------------------------------- chromosome names
def test_one_rule_set_for_chromosome_names():
    assert names.canonical_chrom("chr20") == names.canonical_chrom("20") == names.canonical_chrom("CHR20") == "20"
    for spelling in ("chrM", "chrMT", "M", "MT", "mt", "chrm"):
        assert names.canonical_chrom(spelling) == "MT"
    assert names.canonical_chrom("chr") == "chr"                       # nothing after the prefix: a name as is
    assert not names.same_chrom("chrUn_KI270302v1", "chrUn_ki270302v1")  # beyond chr and M/MT: case counts
    assert names.same_chrom("chrX", "X") and not names.same_chrom("chrX", "x")
    assert names.chrom_spellings("chr20") == ["20"] and names.chrom_spellings("20") == ["chr20"]
    assert names.chrom_spellings("chrM") == ["M", "MT", "chrMT"]
    assert names.find_chrom("chr20", {"20": 1}) == "20" and names.find_chrom("MT", ["chrM"]) == "chrM"
    assert names.find_chrom("chr21", {"20": 1}) is None


def test_every_caller_uses_the_one_name_module(chr20_genome):
    from genalm_models.pretrain import contigs, haplotypes
    from genalm_models.tasks import promoter, splits
    from kipoi_genalm.folder import compare_contigs

    assert splits.canonical_chrom is names.canonical_chrom and promoter.canonical_chrom is names.canonical_chrom
    assert contigs.canonical_chrom is names.canonical_chrom and haplotypes.chrom_spellings is names.chrom_spellings
    # The FASTA says "20": UCSC spellings resolve to it, the model folder check matches it, the typed region too.
    assert chr20_genome.resolve("chr20") == "20"
    assert compare_contigs({"chr20": 2_000_000}, {"20": 2_000_000}) == ([], ["chr20"])
    assert parse_region_1based("chr20:1-10", chr20_genome.contig_lengths).chrom == "20"


# ------------------------------------------------------------------------------------------------- regions
def test_typed_regions_are_one_based_inclusive_like_samtools(chr20_genome):
    region = parse_region_1based("chr20:1,000,001-2,000,000")
    assert (region.chrom, region.start, region.end) == ("chr20", 1_000_000, 2_000_000)
    assert format_region_1based(region) == "chr20:1000001-2000000"
    one_base = parse_region_1based("chr20:101-101", chr20_genome.contig_lengths)
    # samtools faidx chr20:101-101 is the 101st base = 0-based index 100
    assert chr20_genome.fetch(one_base) == chr20_genome.fetch("20", 100, 101)
    assert parse_region_1based("20", {"20": 500}).end == 500                       # a whole contig
    assert parse_region_1based("chr20:401-999999999", {"20": 500}).end == 500       # clipped to its end
    for bad, problem in (("chr20:0-10", "1-based"), ("chr20:11-10", "not after end"), ("chr20", "not a region"),
                         ("chr20:1-x", "not a region"), ("chr9:1-10", "not one of")):
        with pytest.raises(GenomeError, match=problem):
            parse_region_1based(bad, {"20": 500} if bad.startswith("chr9") else None)
    with pytest.raises(ValueError, match="reserved"):
        parse_range("chrX:1-100", {"X": 1000, "20": 1000})


def test_scan_and_plot_use_the_one_parser():
    import kipoi_genalm.scan as scan

    assert not hasattr(scan, "parse_region")
    for path in ("plugin/cli.py", "plugin/veff_plot.py", "recipes/zoo/scan_precision.py"):
        assert "parse_region_1based" in (ROOT / path).read_text(), path


def _recipe_splits() -> list[tuple[str, dict]]:
    found = []
    for path in sorted((ROOT / "recipes" / "zoo").glob("*.yaml")) + sorted(
            (ROOT / "plugin" / "zoo" / "GENA-LM").glob("*/run_config.yaml")):
        args = ((yaml.safe_load(path.read_text()) or {}).get("data") or {}).get("args") or {}
        split = args.get("split")
        if isinstance(split, dict) and (split.get("valid") or split.get("test")):
            found.append((str(path.relative_to(ROOT)), split))
    return found


def test_recipe_splits_of_the_real_chr20_are_unchanged():
    """The recipes were re-spelled 1-based (chr20:32000001-36000000) when the region parser became samtools'; the
    regions they select on the real chr20 are those the 0-based spelling selected before, to the base."""
    lengths = Genome(SHARED_CHR20).contig_lengths if SHARED_CHR20.exists() else {"20": 63_025_520}
    assert lengths == {"20": 63_025_520}
    expected = [(0, 31_984_000, "train"), (31_984_000, 32_000_000, "gap"), (32_000_000, 36_000_000, "valid"),
                (36_000_000, 36_016_000, "gap"), (36_016_000, 41_984_000, "train"), (41_984_000, 42_000_000, "gap"),
                (42_000_000, 48_000_000, "test"), (48_000_000, 48_016_000, "gap"), (48_016_000, 63_025_520, "train")]
    recipes = _recipe_splits()
    assert len(recipes) >= 10, recipes
    for path, split in recipes:
        table = RegionSplit(valid=split["valid"], test=split["test"], gap=split.get("gap", 16_000)).table(lengths)
        assert [(r.start, r.end, r.split) for r in table.regions] == expected, path
        assert [(i.start, i.end) for i in table.exclusion_intervals()] == [(41_984_000, 48_016_000)], path
    assert "chr20:32000000-36000000" not in (ROOT / "README.md").read_text()


# ------------------------------------------------------------------------------------------- interval algebra
def test_merge_intervals_is_bedtools_merge_without_its_empty_interval_quirk():
    merged = merge_intervals([("c", 10, 12), ("c", 5, 10), ("b", 1, 3), ("c", 7, 8), ("c", 20, 20), ("c", 30, 40)])
    assert merged == [("b", 1, 3), ("c", 5, 12), ("c", 30, 40)]   # book-ended joined; the empty one covers nothing
    assert merge_intervals([]) == []


def test_subtract_intervals_is_bedtools_subtract():
    cuts = [("c", 10, 20), ("c", 15, 30), ("c", -5, 2), ("c", 90, 200)]
    kept = subtract_intervals([("c", 0, 100), ("d", 0, 10)], cuts)
    assert kept == [("c", 2, 10), ("c", 30, 90), ("d", 0, 10)]
    assert subtract_intervals([("c", 0, 10)], []) == [("c", 0, 10)] and subtract_intervals([], [("c", 0, 1)]) == []


def test_promoter_negatives_avoid_every_tss_through_the_one_subtract(chr20_genome):
    from genalm_models.tasks.promoter import GenomicNegativeSampler
    from genalm_models.tasks.splits import Region

    tss = [1_000, 5_000, 5_100]
    sampler = GenomicNegativeSampler(chr20_genome, {"20": tss}, width=300, min_distance=500, max_n_fraction=1.0)
    starts, ends = sampler.allowed_starts(Region("20", 0, 10_000, "train"))
    # a start s is allowed when [s, s + 300) keeps 500 bp from every TSS: s >= t + 500 or s + 299 <= t - 500
    allowed = [s for s in range(0, 10_000 - 300 + 1) if all(s >= t + 500 or s + 299 <= t - 500 for t in tss)]
    got = [s for a, b in zip(starts, ends) for s in range(a, b)]
    assert got == allowed and len(got) == 9_701 - 1_298 - 1_398   # starts 202..1499 and 4202..5599 are out


# ---------------------------------------------------------------------------------------------- variants
REFERENCE = "ACGTACGTAC"  # the '+' strand of positions 100..109


@pytest.mark.parametrize("variant, changed", [
    ((101, "C", "T"), "ATGTACGTAC"),          # SNV
    ((103, "T", "TGGG"), "ACGTGGGACGTAC"),    # insertion, VCF style (anchor base kept)
    ((104, "", "GG"), "ACGTGGACGTAC"),        # insertion, trimmed (empty REF)
    ((105, "CGT", "C"), "ACGTACAC"),          # deletion, VCF style
    ((105, "CG", ""), "ACGTATAC"),            # deletion, trimmed (empty ALT)
    ((108, "AC", "GG"), "ACGTACGTGG"),        # MNV at the window end
])
def test_apply_variants_on_both_strands(variant, changed):
    assert apply_variants(REFERENCE, 100, [variant]) == changed
    # On '-' the reference is read 5'->3' on the minus strand; the alleles stay as the VCF writes them ('+').
    minus = reverse_complement(REFERENCE)
    assert apply_variants(minus, 100, [variant], strand="-") == reverse_complement(changed)


def test_apply_variants_errors_name_the_variant():
    with pytest.raises(GenomeError, match="VCF line 7.*REF does not match"):
        apply_variants(REFERENCE, 100, [(101, "G", "T", 7)])
    with pytest.raises(GenomeError, match="before the window"):
        apply_variants(REFERENCE, 100, [(99, "A", "T")])
    with pytest.raises(GenomeError, match="overlaps"):
        apply_variants(REFERENCE, 100, [(105, "CGT", "C"), (106, "G", "A")])


def test_the_variant_scorer_applies_alleles_with_the_one_function(chr20_genome):
    from kipoi_genalm.veff_variants import Allele, Window, alt_sequence

    for strand in "+-":
        window = Window("20", 361_500, 361_800, strand)
        ref = chr20_genome.fetch("20", window.start, window.end, strand=strand)
        for start, ref_bases, alt in ((361_600, "", "TTTG"), (361_640, "CGCA", ""), (361_620, None, "A")):
            ref_bases = chr20_genome.fetch("20", start, start + 1) if ref_bases is None else ref_bases
            allele = Allele("20", start, ref_bases, alt, 0)
            shortfall = max(0, len(ref_bases) - len(alt))
            if strand == "+":
                stretch = chr20_genome.fetch("20", window.start, window.end + shortfall)
                expected = apply_variants(stretch, window.start, [(start, ref_bases, alt)])[:300]
            else:
                stretch = chr20_genome.fetch("20", window.start - shortfall, window.end, strand="-")
                expected = apply_variants(stretch, window.start - shortfall, [(start, ref_bases, alt)], "-")[:300]
            got = alt_sequence(chr20_genome, window, ref, allele)
            assert got == expected and len(got) == 300, (strand, start)
            plus = got if strand == "+" else reverse_complement(got)
            # by hand: the bases before the change stay, ALT follows
            offset = start - window.start
            if strand == "+":
                assert plus[:offset] == ref[:offset] and plus[offset:offset + len(alt)] == alt


# ---------------------------------------------------------------------------------------- atomic and BGZF
def test_bgzf_output_is_htslibs_and_readable_by_pysam_tabix_and_pyfaidx(tmp_path):
    import pysam

    vcf = tmp_path / "out.vcf.gz"
    body = "".join(f"chr1\t{pos}\t.\tA\tG\t.\t.\t.\n" for pos in range(1, 30_001))
    with atomic_write(vcf, "wb", bgzf=True) as handle:
        handle.write(b"##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n")
        handle.write(body.encode())
    data = vcf.read_bytes()
    assert data[:4] == b"\x1f\x8b\x08\x04" and data[12:14] == b"BC"          # BGZF blocks
    assert data.endswith(bytes.fromhex("1f8b08040000000000ff0600424302001b0003000000000000000000"))  # EOF block
    assert gzip.decompress(data).decode().endswith(body)
    pysam.tabix_index(str(vcf), preset="vcf", force=True, keep_original=True)
    assert len(list(pysam.TabixFile(str(vcf)).fetch("chr1", 99, 199))) == 100
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.vcf.gz", "out.vcf.gz.tbi"]   # no temporary left

    fasta = tmp_path / "g.fa.gz"
    sequence = ("ACGTTGCA" * 20_000)[:150_000]
    with atomic_write(fasta, "wb", bgzf=True) as handle:
        handle.write(b">s\n" + b"\n".join(sequence[i:i + 60].encode() for i in range(0, len(sequence), 60)) + b"\n")
    genome = Genome(fasta, index_dir=tmp_path / "index")   # pyfaidx over BGZF, index built atomically in a cache
    assert genome.fetch("s", 100_000, 100_050) == sequence[100_000:100_050]
    assert not [p for p in (tmp_path / "index").iterdir() if p.name.endswith(".tmp")]


def test_atomic_path_publishes_only_on_success(tmp_path):
    target = tmp_path / "t.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as temporary:
            temporary.write_text("half")
            raise RuntimeError("stop")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["t.txt"]
    with pytest.raises(OSError, match="nothing was written"):
        with atomic_path(target):
            pass
    folder, building = tmp_path / "folder", tmp_path / ".folder.new"
    folder.mkdir()
    (folder / "a").write_text("old")
    building.mkdir()
    (building / "b").write_text("new")
    move_into_place(building, folder)
    assert [p.name for p in folder.iterdir()] == ["b"] and sorted(p.name for p in tmp_path.iterdir()) == [
        "folder", "t.txt"]


# ------------------------------------------------------------------------------------- grep: no second copy
def _sources() -> list[Path]:
    files = []
    for folder in ("genalm_models", "plugin", "bench", "recipes", "scripts"):
        files += [p for p in (ROOT / folder).rglob("*.py") if "__pycache__" not in p.parts]
    return files + [ROOT / "dataloader.py"]


def test_grep_finds_no_second_writer_parser_or_name_rule():
    homes = {"os.replace": "genalm_models/io_utils.py", "chr-prefix": "genalm_models/genome/names.py"}
    offenders = []
    for path in _sources():
        if not path.exists():
            continue
        text, rel = path.read_text(), str(path.relative_to(ROOT))
        code = re.sub(r'"""[\s\S]*?"""', "", text)   # docstrings may mention os.replace
        if rel != homes["os.replace"] and re.search(r"os\.replace\(|os\.rename\(|\.rename\(|mkstemp\(", code):
            offenders.append(f"{rel}: atomic write by hand")
        if rel != homes["chr-prefix"] and re.search(
                r'startswith\("chr"\)|removeprefix\("chr"\)|replace\("chr", ""\)|\[3:\] if', code):
            offenders.append(f"{rel}: chromosome names by hand")
        if re.search(r"BGZF_EOF|_bgzf_header|compressobj\(.*-15", code) and rel != "genalm_models/genome/fasta.py":
            offenders.append(f"{rel}: a BGZF writer by hand")
        concept = r"apply_variants|parse_region\w*|canonical_chrom|(merge|subtract)_intervals|_subtract"
        if re.search(rf"^def ({concept})\(", code, re.M) and not rel.startswith("genalm_models/genome/"):
            offenders.append(f"{rel}: a second genome-concept function")
    assert offenders == []
    assert (ROOT / "docs" / "hand_written.md").exists()


def test_a_round_split_start_warns_that_ranges_are_one_based(caplog):
    """Split ranges were read 0-based before: `chr20:32000000-36000000` typed the old way now starts one base earlier;
    the warning says so and gives the 1-based spelling; the 1-based spelling itself is quiet."""
    from genalm_models.tasks.splits import parse_range

    lengths = {"chr20": 63_025_520}
    with caplog.at_level("WARNING", logger="genalm_models.tasks.splits"):
        assert parse_range("chr20:32000001-36000000", lengths) == ("chr20", 32_000_000, 36_000_000)
        assert not caplog.records
        assert parse_range("chr20:32000000-36000000", lengths) == ("chr20", 31_999_999, 36_000_000)
    assert "1-based" in caplog.text and "write chr20:32000001-36000000" in caplog.text

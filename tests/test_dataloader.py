"""The standardized GENA-LM Kipoi dataloader (kipoi_genalm.sequences / kipoi_genalm.dataloaders, root dataloader.py)
on the real chr20 slice: windows, strands, chromosome names, padding, targets, metadata and every bad input."""
from __future__ import annotations

import gzip
import logging
import os
import stat
from pathlib import Path

import numpy as np
import pytest

from genalm_models.genome import GenomeError, reverse_complement
from kipoi_genalm.folder import WindowSpec
from kipoi_genalm.sequences import IntervalSequences, window_spec

SLICE_LENGTH = 2_000_000
ROOT = Path(__file__).resolve().parents[1]


def bed(tmp_path: Path, text: str, name: str = "x.bed") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def kipoi_module(kipoi_imported):
    """`kipoi_genalm.dataloaders`, with kipoi imported safely (see conftest.kipoi_imported)."""
    from kipoi_genalm import dataloaders

    return dataloaders


# ---- windows, strands, names ------------------------------------------------------------------------------------
def test_tss_window_puts_the_tss_at_index_upstream_on_both_strands(tmp_path, chr20_fasta, chr20_genome):
    path = bed(tmp_path, "chr20\t68312\t68313\tDEFB125_1\t0\t+\nchr20\t271365\t271366\tC20orf96_2\t0\t-\n")
    data = IntervalSequences(path, chr20_fasta, window_spec(300, "tss", 249))
    plus, minus = data[0], data[1]
    assert len(plus.sequence) == len(minus.sequence) == 300
    assert plus.sequence[249] == chr20_genome.fetch("20", 68312, 68313)
    assert minus.sequence[249] == reverse_complement(chr20_genome.fetch("20", 271365, 271366))
    # -249..+50 around the 5' end: upstream is at lower coordinates on '+', at higher ones on '-'
    assert (plus.region.start, plus.region.end) == (68312 - 249, 68312 + 51)
    assert (minus.region.start, minus.region.end) == (271365 - 50, 271365 + 250)
    assert minus.sequence == reverse_complement(chr20_genome.fetch("20", minus.region.start, minus.region.end))


def test_centre_window_bed3_and_any_length(tmp_path, chr20_fasta, chr20_genome):
    path = bed(tmp_path, "chr20\t100000\t100101\n20\t150000\t150010\n")
    centred = IntervalSequences(path, chr20_fasta, window_spec(50))
    assert centred[0].sequence == chr20_genome.fetch("20", 100050 - 25, 100050 + 25)
    assert centred[0].interval.strand == "."
    as_is = IntervalSequences(path, chr20_fasta, window_spec(None))
    assert as_is[1].sequence == chr20_genome.fetch("20", 150000, 150010)
    assert len(as_is[0].sequence) == 101


def test_flank_adds_context_but_the_region_stays_the_window(tmp_path, chr20_fasta, chr20_genome):
    path = bed(tmp_path, "chr20\t500000\t500001\tsite\t0\t-\n")
    item = IntervalSequences(path, chr20_fasta, window_spec(200, flank=100))[0]
    assert len(item.sequence) == 400
    assert item.region.end - item.region.start == 200
    assert item.sequence == reverse_complement(chr20_genome.fetch("20", item.region.start - 100,
                                                                  item.region.end + 100))


def test_use_strand_false_reads_every_interval_forward(tmp_path, chr20_fasta, chr20_genome):
    path = bed(tmp_path, "chr20\t300000\t300040\tm\t0\t-\n")
    item = IntervalSequences(path, chr20_fasta, window_spec(None), use_strand=False)[0]
    assert item.sequence == chr20_genome.fetch("20", 300000, 300040)
    assert item.region.strand == "+"


def test_chromosome_names_map_both_ways(tmp_path, chr20_genome):
    fasta = tmp_path / "chr_named.fa"
    fasta.write_text(">chr20\n" + chr20_genome.fetch("20", 70000, 70200) + "\n")
    path = bed(tmp_path, "20\t10\t20\ta\n")
    assert IntervalSequences(path, fasta)[0].sequence == chr20_genome.fetch("20", 70010, 70020)


def test_padding_at_both_chromosome_ends_and_ranges_beyond_them(tmp_path, chr20_genome):
    fasta = tmp_path / "short.fa"
    fasta.write_text(">20\n" + chr20_genome.fetch("20", 1_000_000, 1_001_000) + "\n")
    path = bed(tmp_path, "chr20\t5\t6\tleft\t0\t+\nchr20\t995\t996\tright\t0\t-\n")
    data = IntervalSequences(path, fasta, window_spec(100, "tss", 49))
    left, right = data[0], data[1]
    assert left.region.start == 5 - 49 < 0 and left.sequence.startswith("N" * 44) and "N" not in left.sequence[44:]
    # '-': the window runs off the right end; after reverse complement the N-run is at the 5' side
    assert right.region.end > 1000 and right.sequence.startswith("N" * (right.region.end - 1000))
    assert len(left.sequence) == len(right.sequence) == 100


def test_plain_and_bgzf_fasta_give_the_same_sequences(tmp_path, chr20_fasta, chr20_genome, promoters_bed):
    plain = tmp_path / "slice.fa"
    plain.write_text(">20\n" + chr20_genome.fetch("20", 0, 300_000) + "\n")
    window = window_spec(300, "tss", 249)
    first = IntervalSequences(promoters_bed, chr20_fasta, window)
    lines = [line for line in promoters_bed.read_text().splitlines() if int(line.split("\t")[2]) < 299_000]
    second = IntervalSequences(bed(tmp_path, "\n".join(lines) + "\n"), plain, window)
    assert [second[i].sequence for i in range(len(second))] == [first[i].sequence for i in range(len(second))]


def test_gz_bed_with_track_browser_header_lines_and_targets(tmp_path, chr20_fasta):
    text = ("track name=x\nbrowser position chr20:1-100\n# comment\nchrom\tstart\tend\tname\tscore\tstrand\tsignal\tq\n"
            "chr20\t100000\t100010\ta\t0\t+\t1.5\t7\nchr20\t100100\t100110\tb\t0\t-\t-2\t1e-3\n")
    path = tmp_path / "t.bed.gz"
    with gzip.open(path, "wt") as handle:
        handle.write(text)
    data = IntervalSequences(path, chr20_fasta)
    assert len(data) == 2 and data.has_targets
    np.testing.assert_allclose(data[1].targets, [-2.0, 1e-3])
    assert IntervalSequences(path, chr20_fasta, ignore_targets=True)[0].targets is None


def test_lower_case_fasta_is_upper_cased_and_n_rich_windows_warn(tmp_path, chr20_genome, caplog):
    fasta = tmp_path / "soft.fa"
    fasta.write_text(">20\n" + chr20_genome.fetch("20", 200_000, 200_100).lower() + "N" * 400 + "\n")
    path = bed(tmp_path, "20\t0\t100\tsoft\n20\t150\t450\tgap\n")
    with caplog.at_level(logging.WARNING, logger="kipoi_genalm.sequences"):
        data = IntervalSequences(path, fasta)
        assert data[0].sequence == chr20_genome.fetch("20", 200_000, 200_100)
        assert data[1].sequence == "N" * 300  # predicted anyway (the gap token), with a warning
    assert any("100% of the window is N" in message for message in caplog.messages)


def test_unindexed_fasta_in_a_read_only_folder(tmp_path, chr20_genome):
    folder = tmp_path / "ro"
    folder.mkdir()
    fasta = folder / "genome.fa"
    fasta.write_text(">20\n" + chr20_genome.fetch("20", 300_000, 301_000) + "\n")
    folder.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        path = bed(tmp_path, "chr20\t10\t30\n")
        assert IntervalSequences(path, fasta)[0].sequence == chr20_genome.fetch("20", 300_010, 300_030)
        assert sorted(os.listdir(folder)) == ["genome.fa"]  # the index went to the cache folder
    finally:
        folder.chmod(stat.S_IRWXU)


def test_every_n_rich_window_is_counted_the_first_ones_shown(tmp_path, chr20_genome, caplog):
    from kipoi_genalm import provenance
    from kipoi_genalm.sequences import MAX_N_WARNINGS

    fasta = tmp_path / "gap.fa"
    fasta.write_text(">20\n" + "N" * 2000 + chr20_genome.fetch("20", 200_000, 201_000) + "\n")
    path = bed(tmp_path, "".join(f"20\t{start}\t{start + 100}\n" for start in range(0, 1600, 200))
               + "20\t2100\t2200\tsequence\n")
    start = provenance.start_run()
    with caplog.at_level(logging.WARNING, logger="kipoi_genalm.sequences"):
        data = IntervalSequences(path, fasta)
        for i in range(len(data)):
            data[i]
    shown = [m for m in caplog.messages if "of the window is N" in m]
    assert len(shown) == MAX_N_WARNINGS and "counted in the provenance file" in shown[-1]
    assert data.n_rich_windows == 8
    assert provenance.warnings_since(start)["by_kind"] == {"n_rich_window": 8}


def test_warning_counts_of_a_long_run_stay_small_and_runs_stay_apart():
    from kipoi_genalm import provenance

    start = provenance.start_run()
    before = len(provenance._warnings)
    for i in range(10_000):
        provenance.note_warning(f"window {i}: mostly N", "n_rich_window")
    provenance.note_warning("another assembly", "reference_mismatch")
    summary = provenance.warnings_since(start)
    assert summary["count"] == 10_001 and summary["by_kind"]["n_rich_window"] == 10_000
    assert summary["messages"][:2] == ["window 0: mostly N", "window 1: mostly N"]
    assert len(summary["messages"]) == provenance.MAX_WARNING_MESSAGES
    assert len(provenance._warnings) - before <= provenance.MAX_WARNING_MESSAGES + 2  # counted, not kept
    following = provenance.start_run()
    provenance.note_warning("window 0: mostly N", "n_rich_window")
    assert provenance.warnings_since(following) == {"count": 1, "by_kind": {"n_rich_window": 1},
                                                    "messages": ["window 0: mostly N"]}


def test_missing_strands_are_an_error_for_tss_anchored_windows(tmp_path, chr20_fasta, chr20_genome):
    """BED3 (or '.') with a TSS-anchored window used to be read on '+' silently; now an error naming the file,
    the count and the first line, unless use_strand is false. Centred windows take BED3 as before; the
    variant-effect regions mode applies the same rule."""
    from kipoi_genalm.veff_variants import RegionWindows

    path = bed(tmp_path, "chr20\t68312\t68313\tA\t0\t+\nchr20\t271365\t271366\nchr20\t300000\t300001\tC\t0\t.\n")
    tss = window_spec(300, "tss", 249)
    with pytest.raises(GenomeError, match=r"x\.bed: 2 of 3 intervals have no strand .*first at line 2.*"
                                          r"use_strand: false"):
        IntervalSequences(path, chr20_fasta, tss)
    forward = IntervalSequences(path, chr20_fasta, tss, use_strand=False)
    assert forward[1].sequence == chr20_genome.fetch("20", 271365 - 249, 271365 + 51)
    assert len(IntervalSequences(path, chr20_fasta, window_spec(300))) == 3
    with pytest.raises(GenomeError, match="2 of 3 intervals have no strand"):
        RegionWindows(path, chr20_genome, tss)
    assert len(RegionWindows(path, chr20_genome, tss, use_strand=False).windows) == 3


# ---- reference (assembly) check ---------------------------------------------------------------------------------
def test_reference_contigs_check(tmp_path, chr20_fasta, caplog):
    path = bed(tmp_path, "chr20\t100000\t100010\n")
    assert IntervalSequences(path, chr20_fasta, reference_contigs="20=2000000").reference_matches == ["20"]
    with caplog.at_level(logging.WARNING, logger="kipoi_genalm.sequences"):
        data = IntervalSequences(path, chr20_fasta, reference_contigs="chr20=63025520,chr21=48129895")
    assert data.reference_mismatches and "63,025,520" in data.reference_mismatches[0]
    assert any("does not look like the assembly" in message for message in caplog.messages)
    assert IntervalSequences(path, chr20_fasta, reference_contigs="none").reference_mismatches == []
    with pytest.raises(ValueError, match="contig=length"):
        IntervalSequences(path, chr20_fasta, reference_contigs="20:63025520")


# ---- bad input: errors name the file and line ---------------------------------------------------------------------
@pytest.mark.parametrize("text, message", [
    ("chr20\t100\t200\nchr7\t100\t200\n", r"x\.bed:2: chromosome 'chr7' is not in"),
    ("chr20\t100\t200\nchr20\t1999990\t2000010\tpast\n", r"x\.bed:2: interval chr20:1999990-2000010 extends past "
                                                         r"the end of 20 .*length 2,000,000"),
    ("chr20\t100\t200\nchr20\tx\t30\n", r"x\.bed:2: start 'x' is not an integer"),
    ("chr20\t100\n", r"x\.bed:1: expected at least 3 fields"),
    ("chr20\t100\t200\tn\t0\t+\t1.0\nchr20\t300\t400\tn\t0\t+\tabc\n", r"x\.bed:2: column 7 \('abc'\) is not a number"),
    ("chr20\t100\t200\tn\t0\t+\t1.0\nchr20\t300\t400\tn\t0\t+\n", r"x\.bed:2: 0 extra \(target\) columns"),
    ("track name=empty\n# only comments\n", r"x\.bed: no intervals"),
    ("", r"x\.bed: no intervals"),
])
def test_bad_bed_input_is_reported_with_file_and_line(tmp_path, chr20_fasta, text, message):
    with pytest.raises(GenomeError, match=message):
        IntervalSequences(bed(tmp_path, text), chr20_fasta, window_spec(None))


def test_zero_length_interval_cannot_anchor_a_tss_window(tmp_path, chr20_fasta):
    with pytest.raises(GenomeError, match="x.bed:1: .*zero-length interval has no 5' end"):
        IntervalSequences(bed(tmp_path, "chr20\t100\t100\tz\t0\t+\n"), chr20_fasta, window_spec(300, "tss", 249))


def test_missing_files_are_named(tmp_path, chr20_fasta):
    with pytest.raises(GenomeError, match="FASTA file not found: .*nope.fa"):
        IntervalSequences(bed(tmp_path, "chr20\t1\t2\n"), tmp_path / "nope.fa")
    with pytest.raises(GenomeError, match="BED file not found: .*nope.bed"):
        IntervalSequences(tmp_path / "nope.bed", chr20_fasta)


@pytest.mark.parametrize("kwargs, message", [
    (dict(sequence_length=300, anchor="tss"), "upstream"),
    (dict(sequence_length=None, anchor="tss", upstream=3), "needs a sequence_length"),
    (dict(sequence_length=300, anchor="middle"), "anchor must be one of"),
    (dict(sequence_length="3x0"), "sequence_length must be an integer"),
    (dict(sequence_length=100, flank=-1), "flank must be"),
])
def test_bad_window_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        window_spec(**kwargs)


def test_window_arguments_accept_strings_from_json_and_yaml():
    # model.yaml writes small integers as strings (kipoi treats small ints in default_args as file descriptors)
    assert window_spec("300", "tss", "49", "0") == WindowSpec(300, "tss", 49, 0)
    assert window_spec("null").sequence_length is None


# ---- the Kipoi dataloader ---------------------------------------------------------------------------------------
def test_kipoi_dataloader_batches_inputs_metadata_and_targets(tmp_path, kipoi_module, chr20_fasta):
    path = bed(tmp_path, "chr20\t100000\t100001\tA\t0\t+\t0.5\nchr20\t200000\t200001\t.\t0\t-\t1\n"
                         "chr20\t300000\t300001\tC\t0\t+\t2\n")
    loader = kipoi_module.IntervalSeqDl(str(path), str(chr20_fasta), sequence_length=300, anchor="tss",
                                        upstream=249)
    batch = next(iter(loader.batch_iter(batch_size=8)))
    assert batch["inputs"].shape == (3,) and all(len(s) == 300 for s in batch["inputs"])
    ranges = batch["metadata"]["ranges"]
    assert list(ranges["chr"]) == ["chr20"] * 3  # the BED's own names
    assert list(ranges["start"]) == [100000 - 249, 200000 - 50, 300000 - 249]
    assert list(ranges["strand"]) == ["+", "-", "+"]
    assert list(ranges["id"]) == ["A", "chr20:200000-200001", "C"]
    # extra columns are not the model's outputs: left out by default, so the batch matches the schema
    assert "targets" not in batch
    assert kipoi_module.IntervalSeqDl.get_output_schema().compatible_with_batch(batch)
    with_targets = kipoi_module.IntervalSeqDl(str(path), str(chr20_fasta), sequence_length=300, anchor="tss",
                                              upstream=249, ignore_targets=False)
    np.testing.assert_allclose(next(iter(with_targets.batch_iter(batch_size=8)))["targets"][:, 0], [0.5, 1, 2])
    # a centred window takes intervals without a strand: reported as '*'
    centred = kipoi_module.IntervalSeqDl(str(bed(tmp_path, "chr20\t300000\t300001\tC\n", "c.bed")),
                                         str(chr20_fasta), sequence_length=300)
    assert list(next(iter(centred.batch_iter(batch_size=8)))["metadata"]["ranges"]["strand"]) == ["*"]


def test_the_dataloader_schema_agrees_with_every_model_kind(kipoi_module, tiny_zoo):
    """Kipoi compares the dataloader's output schema with the model's (`ModelSchema.compatible_with_schema`):
    the extra-BED-column targets, declared as an array, did not match the models' {label: ...} outputs, and every
    model printed "dataloader.output_schema is not compatible with model.schema"."""
    from kipoi.specs import ModelDescription

    schema = kipoi_module.IntervalSeqDl.get_output_schema()
    for name, folder in tiny_zoo["models"].items():
        model = ModelDescription.load(str(folder / "model.yaml"))
        assert model.schema.compatible_with_schema(schema, verbose=False), name


def test_kipoi_dataloader_description_and_examples(kipoi_module):
    cls = kipoi_module.IntervalSeqDl
    assert set(cls.args) == {"intervals_file", "fasta_file", "sequence_length", "anchor", "upstream", "flank",
                             "use_strand", "reference_contigs", "ignore_targets"}
    assert cls.args["intervals_file"].example == "example.bed"
    assert cls.args["reference_contigs"].example == "none"  # kipoi test on example files skips the check
    assert not cls.args["intervals_file"].optional and cls.args["sequence_length"].optional


def test_root_dataloader_takes_its_defaults_from_the_bundled_model(kipoi_module, tiny_zoo):
    cls = kipoi_module.interval_dataloader_class("RootDl", "p/example.bed", "p/example.fa.gz", module="root_test",
                                                 defaults_from=tiny_zoo["models"]["promoter"])
    assert cls.args["intervals_file"].example == "p/example.bed"
    folder = tiny_zoo["models"]["promoter"]
    loader = cls(str(folder / "example.bed"), str(folder / "example.fa.gz"), reference_contigs="none")
    assert loader.sequences.window == WindowSpec(300, "tss", 249, 0)
    assert len(loader[0]["inputs"].item()) == 300
    # the repository root's dataloader.py is this factory pointed at plugin/zoo/GENA-LM/promoter
    source = (ROOT / "dataloader.py").read_text()
    assert "interval_dataloader_class" in source and "plugin/zoo/GENA-LM/promoter" in source


def test_a_zero_length_interval_on_an_any_length_model_is_refused_with_its_line(tmp_path, chr20_fasta):
    """(input faults, kind 7) not an empty 'prediction' (n_tokens 0, NaN embedding): an error naming the BED line,
    as for the TSS-anchored models."""
    from genalm_models.genome import GenomeError
    from kipoi_genalm.folder import WindowSpec
    from kipoi_genalm.sequences import IntervalSequences

    bed = tmp_path / "x.bed"
    bed.write_text("chr20\t1000\t1200\ta\t0\t+\nchr20\t5000\t5000\tempty\t0\t+\n")
    with pytest.raises(GenomeError, match=r"x\.bed:2.*zero-length interval"):
        IntervalSequences(bed, chr20_fasta, WindowSpec())

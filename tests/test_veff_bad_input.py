"""Variant kinds that used to be scored wrongly or reported vaguely (issue 15, items 3, 5, 6, 14b, 14c).

Each test builds the smallest VCF that shows its kind from tests/data (the chr20 slice, veff_test.vcf) and scores it
with the tiny exported models of conftest.py (`tiny_zoo`), as tests/test_veff.py does.
"""
from __future__ import annotations

import json
import logging
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from genalm_models.genome import Genome, GenomeError
from kipoi_genalm.adapter import FolderModel
from kipoi_genalm.veff import REF_SCREEN_MIN_CHECKED, score_variants, screen_reference
from kipoi_genalm.veff_variants import Allele, left_align, normalise, vcf_spelling

from test_veff import PREFIX, TEST_VCF, info_by_id, values

HEADER = ("##fileformat=VCFv4.2\n##contig=<ID=chr20,length=63025520>\n"
          "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n")
DIFF = PREFIX + "promoter:DIFF"


def write_vcf(path: Path, records: list[tuple[int, str, str, str]], chrom: str = "chr20") -> Path:
    """records: (POS, ID, REF, ALT)."""
    path.write_text(HEADER + "".join(f"{chrom}\t{pos}\t{vid}\t{ref}\t{alt}\t.\tPASS\t.\n"
                                     for pos, vid, ref, alt in records))
    return path


@pytest.fixture(scope="module")
def promoter(tiny_zoo) -> FolderModel:
    return FolderModel(tiny_zoo["models"]["promoter"])


@pytest.fixture(scope="module")
def genome(chr20_fasta):
    with Genome(chr20_fasta) as g:
        yield g


@pytest.fixture(scope="module")
def odd_records_run(promoter, chr20_fasta, tmp_path_factory):
    """One small VCF with each skipped kind next to a plain SNV, scored once (with a table)."""
    folder = tmp_path_factory.mktemp("odd")
    vcf = write_vcf(folder / "odd.vcf", [
        (361600, "snv", "G", "A"),                   # scored: the control
        (361600, "alt_r", "G", "R"),                 # IUPAC code: A or G
        (361600, "alt_n", "G", "N"),
        (361600, "snv_and_y", "G", "A,Y"),           # the first ALT is scored, the second flagged
        (361620, "ins_with_k", "G", "GTKTG"),
        (2_000_001, "past_end", "A", "G"),           # the slice's chromosome 20 is 2,000,000 bp long
        (1_999_998, "runs_past_end", "AAAAA", "A"),
        (1000, "ref_n", "N", "A"),                   # inside the 60,000 bp N run at the start of chr20
        (30_000, "ref_n_ins", "N", "NACGT"),
        (59_999, "ref_n_del", "NNG", "N"),           # the last Ns of the run and the first real base
    ])
    out, table = folder / "odd.out.vcf", folder / "odd.tsv"
    result = score_variants(promoter, {"fasta_file": str(chr20_fasta)}, vcf, out, output_table=table,
                            progress=False, return_predictions=True)
    return result, info_by_id(out), table


# ---- item 3: ambiguous ALT alleles are flagged, junk letters are an error --------------------------------------------
def test_ambiguous_alt_alleles_are_flagged_not_scored(odd_records_run):
    result, info, _ = odd_records_run
    assert math.isfinite(values(info["snv"][DIFF])[0][0])
    for vid in ("alt_r", "alt_n", "ins_with_k"):
        assert info[vid].get("KV_SKIPPED") == "ambiguous_alt", vid
        assert DIFF not in info[vid], vid
    assert info["snv_and_y"]["KV_SKIPPED"] == ".,ambiguous_alt"
    scored, flagged = values(info["snv_and_y"][DIFF])
    assert scored == values(info["snv"][DIFF])[0] and math.isnan(flagged[0])
    assert result.skipped["ambiguous_alt"] == 4
    assert "ambiguous_alt 4" in result.summary()


@pytest.mark.parametrize("ref,alt,bad", [("G", "U", "'U'"), ("G", "AX", None), ("X", "A", None)])
def test_junk_letters_in_alleles_are_an_error_naming_file_and_line(promoter, chr20_fasta, tmp_path, ref, alt, bad):
    vcf = write_vcf(tmp_path / "junk.vcf", [(361600, "snv", "G", "A"), (361610, "junk", ref, alt)])
    out = tmp_path / "junk.out.vcf"
    with pytest.raises(GenomeError, match=rf"junk\.vcf:5: (REF|ALT)") as caught:
        score_variants(promoter, {"fasta_file": str(chr20_fasta)}, vcf, out, progress=False)
    if bad is not None:
        assert bad in str(caught.value) and "IUPAC" in str(caught.value)
    assert not out.exists()


# ---- items 14b, 14c: past the chromosome end; REF in an N run --------------------------------------------------------
def test_position_past_the_contig_end_is_outside_contig(odd_records_run):
    result, info, _ = odd_records_run
    assert info["past_end"]["KV_SKIPPED"] == "outside_contig"
    assert info["runs_past_end"]["KV_SKIPPED"] == "outside_contig"
    assert result.skipped["outside_contig"] == 2 and "ref_mismatch" not in result.skipped


def test_ref_n_variants_are_skipped_as_reference_n(odd_records_run):
    result, info, _ = odd_records_run
    for vid in ("ref_n", "ref_n_ins", "ref_n_del"):
        assert info[vid].get("KV_SKIPPED") == "reference_n", vid
        assert DIFF not in info[vid], vid
    assert result.skipped["reference_n"] == 3
    assert result.n_scored == 2   # snv and the first ALT of snv_and_y


# ---- item 5: a VCF on other coordinates ------------------------------------------------------------------------------
def shifted_vcf(path: Path, offset: int) -> Path:
    """tests/data/veff_test.vcf with every POS moved by `offset` (20 records with an ALT on chr20)."""
    lines = []
    for line in TEST_VCF.read_text().splitlines():
        if not line.startswith("#"):
            fields = line.split("\t")
            fields[1] = str(int(fields[1]) + offset)
            line = "\t".join(fields)
        lines.append(line)
    path.write_text("\n".join(lines) + "\n")
    return path


def test_reference_screen_tells_shifted_positions_from_a_matching_vcf(genome, tmp_path):
    right = screen_reference(TEST_VCF, genome)
    assert right.checked == REF_SCREEN_MIN_CHECKED == 20 and right.mismatched == 1 and not right.looks_wrong
    plus_one = screen_reference(shifted_vcf(tmp_path / "plus.vcf", 1), genome)
    assert plus_one.checked == 20 and plus_one.looks_wrong and plus_one.shift() == -1
    message = plus_one.message("plus.vcf", "chr20.fa")
    assert "another assembly or another coordinate system" in message and "POS looks shifted by +1" in message
    zero_based = screen_reference(shifted_vcf(tmp_path / "zero.vcf", -1), genome)
    assert zero_based.looks_wrong and zero_based.shift() == 1
    assert "0-based positions" in zero_based.message("zero.vcf", "chr20.fa")


def test_vcf_on_shifted_coordinates_is_refused_unless_allowed(promoter, chr20_fasta, tmp_path, caplog):
    vcf = shifted_vcf(tmp_path / "shifted.vcf", 1)
    out = tmp_path / "shifted.out.vcf"
    with pytest.raises(GenomeError, match=r"shifted\.vcf: REF differs from .* at \d+ of the first 20 records.*"
                                          r"another assembly or another coordinate system.*--allow-ref-mismatch"):
        score_variants(promoter, {"fasta_file": str(chr20_fasta)}, vcf, out, progress=False)
    assert not out.exists()

    with caplog.at_level(logging.WARNING, logger="kipoi_genalm"):
        result = score_variants(promoter, {"fasta_file": str(chr20_fasta)}, vcf, out, progress=False,
                                allow_ref_mismatch=True)
    assert len(result.warnings) == 1 and "another assembly" in result.warnings[0]
    assert [r.genalm_kind for r in caplog.records if "another assembly" in r.getMessage()] == \
        ["vcf_reference_mismatch"]
    assert "WARNING: " in result.summary() and result.ref_checked == 20 and result.ref_mismatched >= 10
    sidecar = json.loads(Path(f"{out}.provenance.json").read_text())
    assert sidecar["summary"]["warnings"] == result.warnings
    assert sidecar["summary"]["reference_check"] == {"records_checked": 20, "ref_mismatch": result.ref_mismatched}


def test_mismatches_after_the_screened_records_are_warned_about_at_the_end(promoter, chr20_fasta, tmp_path,
                                                                          monkeypatch, caplog):
    import kipoi_genalm.veff_run as veff_run

    monkeypatch.setattr(veff_run, "REF_SCREEN_RECORDS", 3)   # the real limit is 10,000 records
    good = [line for line in TEST_VCF.read_text().splitlines(True) if not line.startswith("#")][:3]
    shifted = [line for line in shifted_vcf(tmp_path / "s.vcf", 1).read_text().splitlines(True)
               if not line.startswith("#")]
    vcf = tmp_path / "late.vcf"
    vcf.write_text(HEADER + "".join(good + shifted))
    with caplog.at_level(logging.WARNING, logger="kipoi_genalm"):
        result = score_variants(promoter, {"fasta_file": str(chr20_fasta)}, vcf, tmp_path / "late.out.vcf",
                                progress=False, scores=["diff"])
    assert result.ref_checked == 23 and result.ref_mismatched == 16
    (warning,) = result.warnings
    assert "16 of 23 records (70%; in the first 3 checked before scoring: 0)" in warning
    assert "(in part) for another assembly" in warning and warning in caplog.text


def test_cli_refuses_a_shifted_vcf_and_warns_on_stderr_when_allowed(tiny_zoo, chr20_fasta, tmp_path, capsys):
    from kipoi_genalm.cli import main

    vcf = shifted_vcf(tmp_path / "shifted.vcf", 1)
    args = ["score-variants", str(tiny_zoo["models"]["promoter"]), "--vcf", str(vcf), "--fasta", str(chr20_fasta),
            "-o", str(tmp_path / "cli.vcf"), "--no-progress"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "another assembly" in err and "--allow-ref-mismatch" in err
    # a process of its own: nothing of pytest's logging set-up decides where the warning goes
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    done = subprocess.run([sys.executable, "-m", "kipoi_genalm.cli", *args, "--allow-ref-mismatch"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "another assembly or another coordinate system" in done.stderr
    assert "WARNING: " in done.stdout and "another assembly" in done.stdout


# ---- item 6: one indel written two ways ------------------------------------------------------------------------------
# chr20 (0-based): 500,592 G, 500,593-500,596 AAAA, 500,597 G;  504,128 T, 504,129-504,137 ACACACACA, 504,138 A
SPELLINGS = [
    # (left-aligned record, right-aligned record, the normalised VCF spelling)
    ((500593, "GA", "G"), (500596, "AA", "A"), "500593:GA:G"),          # one A of AAAA deleted
    ((500593, "G", "GA"), (500597, "A", "AA"), "500593:G:GA"),          # one A inserted into AAAA
    ((504129, "TAC", "T"), (504136, "ACA", "A"), "504129:TAC:T"),       # one AC of (AC)4A deleted
    ((504129, "T", "TAC"), (504137, "C", "CAC"), "504129:T:TAC"),       # one AC inserted
]


def test_left_align_on_hand_checked_cases(genome, tmp_path):
    assert genome.fetch("20", 500592, 500598) == "GAAAAG" and genome.fetch("20", 504128, 504139) == "TACACACACAA"
    for (left_pos, left_ref, left_alt), (pos, ref, alt), spelled in SPELLINGS:
        expected = normalise(genome, "20", left_pos - 1, left_ref, left_alt)
        assert normalise(genome, "20", pos - 1, ref, alt) == expected
    assert normalise(genome, "20", 500595, "AA", "A") == (500593, "A", "")
    assert normalise(genome, "20", 504135, "ACA", "A") == (504129, "AC", "")
    assert normalise(genome, "20", 504136, "C", "CAC") == (504129, "", "AC")
    assert normalise(genome, "20", 500598, "AA", "A") == (500598, "A", "")   # AA after a G: rolled by one
    assert left_align(genome, "20", 361_660, "GC", "AT") == (361_660, "GC", "AT")   # substitutions stay
    # the chromosome start stops the roll; a roll longer than one fetched block (64 bases)
    fasta = tmp_path / "tiny.fa"
    fasta.write_text(">c\n" + "A" * 100 + "CACAGT\n")
    with Genome(fasta) as tiny:
        assert left_align(tiny, "c", 99, "A", "") == (0, "A", "")
        assert left_align(tiny, "c", 100, "", "A") == (0, "", "A")
        # A*100 CACAGT: deleting the second CA (or inserting one) is deleting (inserting) the AC at 99-100
        assert left_align(tiny, "c", 102, "CA", "") == (99, "AC", "")
        assert normalise(tiny, "c", 102, "CAG", "CACAG") == (99, "", "AC")
        assert vcf_spelling(tiny, Allele("c", 0, "A", "", 0)) == (1, "AA", "A")   # no base before: the one after


def test_an_indel_written_left_or_right_aligned_gets_the_same_scores_in_every_mode(tiny_zoo, chr20_fasta,
                                                                                  tmp_path):
    records = []
    for number, (left, right, _) in enumerate(SPELLINGS):
        records += [(left[0], f"left{number}", left[1], left[2]), (right[0], f"right{number}", right[1], right[2])]
    vcf = write_vcf(tmp_path / "two_ways.vcf", records)
    bed = tmp_path / "regions.bed"
    bed.write_text("chr20\t500700\t500701\tr1\t0\t+\nchr20\t504150\t504151\tr2\t0\t-\n")
    models = tiny_zoo["models"]
    runs = {
        "promoter centred": (models["promoter"], {}),
        "promoter regions": (models["promoter"], {"restriction_bed": bed}),
        "splice": (models["splice"], {}),
        "embedding": (models["embedding"], {"seq_length": 120}),
        "mlm": (models["mlm"], {"llr_flank": 8}),
    }
    for mode, (model, options) in runs.items():
        out = tmp_path / f"{mode.replace(' ', '_')}.vcf"
        table = tmp_path / f"{mode.replace(' ', '_')}.tsv"
        result = score_variants(model, {"fasta_file": str(chr20_fasta)}, vcf, out, output_table=table,
                                progress=False, **options)
        assert result.n_scored == len(records), mode
        info = info_by_id(out)
        score_ids = [key for key in info["left0"] if key.startswith(PREFIX)]
        assert score_ids, mode
        for number in range(len(SPELLINGS)):
            left, right = info[f"left{number}"], info[f"right{number}"]
            for key in score_ids:
                assert left[key] == right[key], (mode, number, key)
        # the allele as scored is recorded where it differs from the record
        assert result.n_normalised == len(SPELLINGS), mode
        for number, (_, _, spelled) in enumerate(SPELLINGS):
            left, right = info[f"left{number}"], info[f"right{number}"]
            assert "KV_NORMALISED" not in left and right["KV_NORMALISED"] == spelled, (mode, number)
        rows = [line.split("\t") for line in table.read_text().splitlines()]
        column = rows[0].index("normalised")
        assert [row[column] for row in rows[1:] if row[2].startswith("right")] == [s for _, _, s in SPELLINGS]
    assert "KV_NORMALISED" in "".join(line for line in out.read_text().splitlines(True) if line.startswith("##"))

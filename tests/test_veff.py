"""Variant-effect scoring (kipoi_genalm.veff) on real chr20 sequence with the tiny exported models of conftest.py.

tests/data/veff_test.vcf (written by tests/data/veff_make_test_vcf.py) holds SNVs, insertions, deletions, an MNV,
a complex change, multi-allelic records, symbolic / breakend / '*' alleles, a REF mismatch, a record without ALT,
an unknown chromosome, ALT == REF and one deletion written two ways, around two real promoters (one per strand).
"""
from __future__ import annotations

import importlib.util
import json
import math
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from genalm_models.genome import Genome, VcfReader, reverse_complement
from kipoi_genalm.adapter import FolderModel
from kipoi_genalm.veff import load_scoring_model, score_variants
from kipoi_genalm.veff_scores import aligned_track_changes, max_change
from kipoi_genalm.veff_variants import Allele, Window, alt_sequence, trim_alleles, variant_index

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data"
TEST_VCF = DATA / "veff_test.vcf"
PREFIX = "KV:kipoi:GENA-LM/"


# ---- helpers ----------------------------------------------------------------------------------------------------
def info_by_id(vcf: Path) -> dict[str, dict[str, str]]:
    """{record ID: {INFO key: value}} of a (possibly BGZF) VCF."""
    out = {}
    with VcfReader(vcf) as reader:
        for record in reader:
            items = [item.split("=", 1) for item in record.info.split(";") if item and item != "."]
            out[record.id] = {item[0]: item[1] if len(item) > 1 else "" for item in items}
    return out


def header_lines(vcf: Path) -> list[str]:
    with VcfReader(vcf) as reader:
        return list(reader.header_lines)


def values(text: str) -> list[list[float]]:
    """`0.1|0.2,.` -> [[0.1, 0.2], [nan]]"""
    return [[math.nan if v in (".", "nan") else float(v) for v in alt.split("|")] for alt in text.split(",")]


def load_script(name: str):
    path = ROOT / "bench" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"bench_{name}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def promoter(tiny_zoo) -> FolderModel:
    return FolderModel(tiny_zoo["models"]["promoter"])


@pytest.fixture(scope="module")
def splice(tiny_zoo) -> FolderModel:
    return FolderModel(tiny_zoo["models"]["splice"])


@pytest.fixture(scope="module")
def genome(chr20_fasta):
    with Genome(chr20_fasta) as g:
        yield g


@pytest.fixture(scope="module")
def centred_promoter_run(promoter, chr20_fasta, tmp_path_factory):
    out = tmp_path_factory.mktemp("veff_centred") / "scored.vcf"
    result = score_variants(promoter, {"fasta_file": str(chr20_fasta)}, TEST_VCF, out, batch_size=4,
                            return_predictions=True, progress=False, chunk_size=5)
    return result, out


@pytest.fixture(scope="module")
def region_bed(tmp_path_factory) -> Path:
    """Three real EPDnew TSSs: TRIB3_1 (+) and TBC1D20_1 (-) hold test variants, SNPH_1 none."""
    wanted = {"TRIB3_1", "TBC1D20_1", "SNPH_1"}
    lines = [line for line in (DATA / "promoters_chr20_2mb.bed").read_text().splitlines()
             if line.split("\t")[3] in wanted]
    path = tmp_path_factory.mktemp("regions") / "tss.bed"
    path.write_text("\n".join(lines) + "\n")
    return path


# ---- pure rules (no model) ----------------------------------------------------------------------------------------
def test_alleles_are_trimmed_and_windows_keep_length_and_variant_position(genome):
    assert trim_alleles(99, "TCGCA", "T") == (100, "CGCA", "")            # deletion
    assert trim_alleles(99, "G", "GTTTG") == (100, "", "TTTG")            # insertion
    assert trim_alleles(99, "AG", "A") == trim_alleles(100, "GA", "A")     # one deletion, two spellings
    assert trim_alleles(99, "t", "T") == (100, "", "")                    # ALT == REF: nothing changes
    assert trim_alleles(99, "GAA", "AG") == (99, "GAA", "AG")             # complex: nothing shared

    chrom, start, end = "20", 361_400, 361_500
    plus = Window(chrom, start, end, "+")
    ref = genome.fetch(chrom, start, end)
    deletion = Allele(chrom, 361_450, genome.fetch(chrom, 361_450, 361_454), "", 0)
    alt = alt_sequence(genome, plus, ref, deletion)
    assert alt == ref[:50] + genome.fetch(chrom, 361_454, 361_504)       # extended with the following bases
    insertion = Allele(chrom, 361_450, "", "ACGTACGT", 0)
    assert alt_sequence(genome, plus, ref, insertion) == (ref[:50] + "ACGTACGT" + ref[50:])[:100]  # 3' end trimmed
    assert variant_index(plus, deletion) == 50

    minus = Window(chrom, start, end, "-")
    ref_minus = genome.fetch(chrom, start, end, strand="-")
    alt_minus = alt_sequence(genome, minus, ref_minus, deletion)
    # reading 5'->3' on '-': bases right of the variant first, unchanged; the window's 3' end (genomic left) moves
    plus_strand = genome.fetch(chrom, start - 4, 361_450) + genome.fetch(chrom, 361_454, end)
    assert alt_minus == reverse_complement(plus_strand)
    assert len(alt_minus) == 100 and alt_minus[:46] == ref_minus[:46]
    assert variant_index(minus, deletion) == end - 361_454
    snv = Allele(chrom, 361_460, genome.fetch(chrom, 361_460, 361_461), "A", 0)
    alt_snv = alt_sequence(genome, minus, ref_minus, snv)
    index = variant_index(minus, snv)
    assert alt_snv[index] == "T" and alt_snv[:index] == ref_minus[:index] and alt_snv[index + 1:] == ref_minus[index + 1:]


def test_track_alignment_for_substitutions_deletions_and_insertions():
    ref = np.arange(20, dtype=float).reshape(10, 2) / 100
    # SNV at 4: same indices compared
    deltas, rows, inserted = aligned_track_changes(ref, ref + 0.5, 4, 1, 1, distance=2)
    assert rows.tolist() == [2, 3, 4, 5, 6] and not inserted.any() and np.allclose(deltas, 0.5)
    # deletion of 2 bases at 4: deleted bases compare with 0, later bases with their shifted ALT index
    alt = np.zeros_like(ref)
    alt[:4] = ref[:4]
    alt[4:8] = ref[6:10]
    deltas, rows, _ = aligned_track_changes(ref, alt, 4, 2, 0, distance=3)
    assert rows.tolist() == [1, 2, 3, 4, 5, 6, 7, 8]
    assert np.allclose(deltas[rows >= 6], 0) and np.allclose(deltas[rows < 4], 0)
    assert np.allclose(deltas[(rows == 4) | (rows == 5)], -ref[4:6])
    # insertion of 3 bases before 4: they compare with 0; bases pushed out of the window are not compared
    alt = np.concatenate([ref[:4], np.full((3, 2), 0.9), ref[4:7]])
    deltas, rows, inserted = aligned_track_changes(ref, alt, 4, 0, 3, distance=5)
    assert inserted.sum() == 3 and np.allclose(deltas[inserted], 0.9)
    assert np.allclose(deltas[~inserted], 0) and rows[~inserted].max() == 6
    best, where = max_change(np.array([[0.1, -0.3], [-0.2, 0.3]]), np.array([5, -1]))
    assert best.tolist() == [-0.2, 0.3] and where.tolist() == [-1, -1]   # ties go to the nearer base


# ---- sequence model, centred windows ---------------------------------------------------------------------------------
def test_diff_is_alt_minus_ref_of_the_model_on_hand_built_windows(centred_promoter_run, promoter, genome):
    result, out = centred_promoter_run
    half = 150  # tiny promoter: 300 bp windows; the trimmed REF span's centre base sits at index 150

    def window(start, ref_len):
        centre = start + ref_len // 2
        return centre - half, centre + half

    cases = {}
    s = 361_600 - 1                                             # snv_plus G>A
    a, b = window(s, 1)
    ref = genome.fetch("20", a, b)
    cases["snv_plus"] = ("chr20:361600:G:A", ref, ref[:s - a] + "A" + ref[s - a + 1:])
    s = 361_619  # ins_plus G>GTTTG: TTTG before 0-based 361,620, left-aligned (a G precedes): GTTT before 361,619
    a, b = window(s, 0)
    ref = genome.fetch("20", a, b)
    assert ref[s - a - 1:s - a + 1] == "GG"
    cases["ins_plus"] = ("chr20:361620:G:GTTTG", ref, (ref[:s - a] + "GTTT" + ref[s - a:])[:300])
    s = 361_640                                                 # del_plus TCGCA>T: CGCA deleted at 361,640
    a, b = window(s, 4)
    ref = genome.fetch("20", a, b)
    cases["del_plus"] = ("chr20:361640:TCGCA:T", ref, genome.fetch("20", a, s) + genome.fetch("20", s + 4, b + 4))

    info = info_by_id(out)
    diff = result.predictions["diff"]["promoter"]
    for name, (key, ref_seq, alt_seq) in cases.items():
        assert len(alt_seq) == 300
        p_ref, p_alt = (float(p) for p in promoter.predict([ref_seq, alt_seq])[:, 0])
        assert diff[key] == pytest.approx(p_alt - p_ref, abs=1e-6), name
        assert values(info[name][PREFIX + "promoter:DIFF"])[0][0] == pytest.approx(p_alt - p_ref, rel=1e-4, abs=1e-7)
        assert values(info[name][PREFIX + "promoter:REF"])[0][0] == pytest.approx(p_ref, rel=1e-4)
        logit = math.log(p_alt / (1 - p_alt)) - math.log(p_ref / (1 - p_ref))
        assert values(info[name][PREFIX + "promoter:LOGIT"])[0][0] == pytest.approx(logit, rel=1e-3, abs=1e-5)
    assert abs(values(info["snv_plus"][PREFIX + "promoter:DIFF"])[0][0]) > 0  # the tiny model does react


def test_skipped_alleles_are_flagged_counted_and_multi_allelic_values_follow_alt_order(centred_promoter_run):
    result, out = centred_promoter_run
    info = info_by_id(out)
    diff_id = PREFIX + "promoter:DIFF"
    expected_skips = {"symbolic": "symbolic", "snv_and_symbolic": ".,symbolic", "ref_mismatch": "ref_mismatch",
                      "snv_and_star": ".,star_allele", "no_alt": "no_alt", "breakend": "symbolic",
                      "unknown_chrom": "unknown_chrom"}
    for vid, fields in info.items():
        assert fields.get("KV_SKIPPED") == expected_skips.get(vid), vid
        assert fields["DP"]                                        # the input's INFO is kept
    for vid in ("symbolic", "ref_mismatch", "no_alt", "breakend", "unknown_chrom"):
        assert diff_id not in info[vid]                            # never scored
    assert result.skipped == {"symbolic": 3, "star_allele": 1, "ref_mismatch": 1, "no_alt": 1, "unknown_chrom": 1}
    assert result.n_records == 22 and result.n_alleles == 24 and result.n_scored == 24 - 6
    multi = values(info["multi_plus"][diff_id])
    assert len(multi) == 2 and all(math.isfinite(v[0]) for v in multi) and multi[0] != multi[1]
    partly = values(info["snv_and_symbolic"][diff_id])
    assert math.isfinite(partly[0][0]) and math.isnan(partly[1][0])
    assert values(info["ref_equals_alt"][diff_id]) == [[0.0]]
    assert info["del_left_anchor"][diff_id] == info["del_right_anchor"][diff_id]   # same deletion, same score
    for vid in ("mnv_plus", "complex", "long_ins", "long_del", "lower_case", "snv_minus", "del_minus", "ins_minus"):
        assert math.isfinite(values(info[vid][diff_id])[0][0]), vid

    header = header_lines(out)
    assert any(line.startswith(f'##INFO=<ID={diff_id},Number=A,Type=String,Description="Prediction from model '
                               'outputs: promoter"') for line in header)
    model_line = next(line for line in header if line.startswith("##KV_model="))
    assert "ID=GENA-LM/promoter" in model_line and "mode=centred" in model_line
    assert "sha256=" in model_line and "version=" in model_line
    assert header[-1].startswith("#CHROM") and header[0] == "##fileformat=VCFv4.2"
    assert "skipped 7" in result.summary()


def test_header_records_the_weights_checksum(centred_promoter_run, promoter):
    _, out = centred_promoter_run
    model_line = next(line for line in header_lines(out) if line.startswith("##KV_model="))
    assert f"sha256={promoter.weights_sha256}" in model_line
    assert f"version={promoter.info.version}" in model_line or f'version="{promoter.info.version}"' in model_line


# ---- region mode -------------------------------------------------------------------------------------------------
def test_region_mode_predicts_each_reference_window_once(promoter, chr20_fasta, region_bed, genome, tmp_path,
                                                         monkeypatch):
    seen: list[str] = []
    original = promoter.predict

    def counting(sequences):
        seen.extend(sequences)
        return original(sequences)

    monkeypatch.setattr(promoter, "predict", counting)
    out = tmp_path / "regions.vcf"
    result = score_variants(promoter, {"fasta_file": str(chr20_fasta)}, TEST_VCF, out, restriction_bed=region_bed,
                            chunk_size=2, batch_size=3, progress=False, return_predictions=True)
    plus_ref = genome.fetch("20", 361_677 - 249, 361_677 + 51)
    minus_ref = genome.fetch("20", 443_159 - 50, 443_159 + 250, strand="-")
    assert seen.count(plus_ref) == 1 and seen.count(minus_ref) == 1  # 5 and 3 variants, chunks of 2 records
    assert result.ref_windows_predicted == 2
    assert len(seen) == 2 + result.alt_sequences_predicted

    info = info_by_id(out)
    assert info["snv_plus"][PREFIX + "promoter:REGION"] == "TRIB3_1"
    assert info["del_minus"][PREFIX + "promoter:REGION"] == "TBC1D20_1"
    assert info["long_del"]["KV_SKIPPED"] == "outside_regions"
    assert result.skipped["outside_regions"] == 9 and result.n_scored == 9
    # '-' window: the SNV C>T at POS 443,200 is G>A read on the reverse strand
    index = 443_159 + 250 - 443_200
    alt = minus_ref[:index] + "A" + minus_ref[index + 1:]
    assert minus_ref[index] == "G"
    p_ref, p_alt = original([minus_ref, alt])[:, 0]
    assert values(info["snv_minus"][PREFIX + "promoter:DIFF"])[0][0] == pytest.approx(p_alt - p_ref, rel=1e-4,
                                                                                      abs=1e-7)
    assert any("mode=regions" in line for line in header_lines(out))


# ---- files: .vcf.gz, tables, atomicity ---------------------------------------------------------------------------
def test_vcf_gz_round_trip_and_table(promoter, chr20_fasta, tmp_path, centred_promoter_run):
    import pandas as pd
    import pysam

    source = tmp_path / "in.vcf.gz"
    pysam.tabix_compress(str(TEST_VCF), str(source))
    out, table = tmp_path / "out.vcf.gz", tmp_path / "out.tsv.gz"
    result = score_variants(promoter, {"fasta_file": str(chr20_fasta)}, source, out, output_table=table,
                            scores=["diff", "logit"], progress=False)
    assert out.read_bytes()[:4] == b"\x1f\x8b\x08\x04"               # BGZF, not plain gzip
    pysam.tabix_index(str(out), preset="vcf", force=True, keep_original=True)  # tabix accepts it
    with pysam.VariantFile(str(out)) as scored:
        records = {r.id: r for r in scored.fetch("chr20", 361_000, 362_000)}
    assert set(records) == {"snv_plus", "ins_plus", "del_plus", "multi_plus", "mnv_plus"}
    plain = info_by_id(centred_promoter_run[1])
    gz = info_by_id(out)
    assert gz["multi_plus"][PREFIX + "promoter:DIFF"] == plain["multi_plus"][PREFIX + "promoter:DIFF"]
    assert PREFIX + "promoter:REF" not in gz["multi_plus"]           # only the scores asked for

    rows = pd.read_csv(table, sep="\t")
    assert list(rows.columns[:7]) == ["chrom", "pos", "id", "ref", "alt", "alt_index", "skipped"]
    assert len(rows) == 25 and rows["skipped"].notna().sum() == 7     # a row per ALT and for the ALT-less record
    multi = rows[rows["id"] == "multi_plus"]
    assert multi["alt_index"].tolist() == [1, 2]
    assert multi["diff:promoter"].tolist() == pytest.approx(
        [v[0] for v in values(plain["multi_plus"][PREFIX + "promoter:DIFF"])], rel=1e-4)
    assert result.n_scored == 18

    # scoring a scored file again replaces our fields and header lines instead of repeating them
    again = tmp_path / "again.vcf"
    score_variants(promoter, {"fasta_file": str(chr20_fasta)}, out, again, scores=["diff", "logit"], progress=False)
    assert info_by_id(again) == gz
    header = header_lines(again)
    assert sum(line.startswith("##KV_model=") for line in header) == 1
    assert sum(line.startswith(f"##INFO=<ID={PREFIX}promoter:DIFF,") for line in header) == 1


def centred_sequence_model(tiny_zoo, folder: Path) -> Path:
    """The tiny promoter weights as a model of a strand-symmetric target read in centred windows (a chromatin-like
    model), where reverse-complement averaging is offered."""
    shutil.copytree(tiny_zoo["models"]["promoter"], folder)
    info = json.loads((folder / "genalm.json").read_text())
    info.update(name="GENA-LM/chromatin_test", task="chromatin",
                window={"sequence_length": 300, "anchor": "center", "upstream": None, "flank": 0})
    (folder / "genalm.json").write_text(json.dumps(info))
    return folder


def test_rc_average_for_a_kipoi_model_is_for_the_run_only(tiny_zoo, chr20_fasta, genome, tmp_path):
    from kipoi_genalm.kipoi_model import GenaLMModel

    promoter = GenaLMModel(model_dir=str(tiny_zoo["models"]["promoter"]))
    with pytest.raises(ValueError, match="GENA-LM/promoter: rc_average .* anchored on the 5' end"):
        score_variants(promoter, {"fasta_file": str(chr20_fasta)}, TEST_VCF, tmp_path / "no.vcf", rc_average=True,
                       scores=["diff"], progress=False)
    assert promoter.runner.options.rc_average is False and not (tmp_path / "no.vcf").exists()

    kipoi_model = GenaLMModel(model_dir=str(centred_sequence_model(tiny_zoo, tmp_path / "centred")))
    out = tmp_path / "rc.vcf"
    result = score_variants(kipoi_model, {"fasta_file": str(chr20_fasta)}, TEST_VCF, out, rc_average=True,
                            scores=["diff"], return_predictions=True, progress=False)
    assert kipoi_model.runner.options.rc_average is False                 # the model's own setting is back
    s = 361_599
    ref = genome.fetch("20", s - 150, s + 150)
    alt = ref[:150] + "A" + ref[151:]
    forward = kipoi_model.runner.predict([ref, alt])[:, 0]
    reverse = kipoi_model.runner.predict([reverse_complement(ref), reverse_complement(alt)])[:, 0]
    expected = (forward[1] + reverse[1]) / 2 - (forward[0] + reverse[0]) / 2
    assert abs(forward[1] - forward[0] - expected) > 1e-6                 # the strands do differ
    assert result.predictions["diff"]["promoter"]["chr20:361600:G:A"] == pytest.approx(expected, abs=1e-6)
    assert any("rc_average=true" in line for line in header_lines(out))


def test_parquet_table(promoter, chr20_fasta, tmp_path):
    import pyarrow  # noqa: F401  (a test requirement: setup.py extras "test")
    import pandas as pd

    table = tmp_path / "out.parquet"
    score_variants(promoter, {"fasta_file": str(chr20_fasta)}, TEST_VCF, tmp_path / "out.vcf", output_table=table,
                   scores=["diff"], progress=False, chunk_size=4)
    frame = pd.read_parquet(table)
    assert len(frame) == 25 and frame["diff:promoter"].notna().sum() == 18
    assert frame["pos"].dtype == "int64" and frame["diff:promoter"].dtype == "float64"
    from kipoi_genalm.veff_plot import plot_effects

    png = plot_effects(table, tmp_path / "p.png", region="chr20:361500-361700")
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_a_failure_mid_run_leaves_no_output(promoter, chr20_fasta, tmp_path, monkeypatch):
    calls = []
    original = promoter.predict

    def failing(sequences):
        calls.append(len(sequences))
        if len(calls) == 2:
            raise RuntimeError("simulated crash in the second chunk")
        return original(sequences)

    monkeypatch.setattr(promoter, "predict", failing)
    existing = tmp_path / "old.vcf.gz"
    existing.write_bytes(b"previous results")
    fresh = tmp_path / "new.vcf"
    for out in (existing, fresh):
        calls.clear()
        with pytest.raises(RuntimeError, match="simulated crash"):
            score_variants(promoter, {"fasta_file": str(chr20_fasta)}, TEST_VCF, out, chunk_size=3,
                           output_table=tmp_path / "t.tsv", progress=False)
    assert existing.read_bytes() == b"previous results"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.vcf.gz"]  # no output, no temporary file


def test_bad_arguments_are_clear_errors(promoter, chr20_fasta, tmp_path):
    with pytest.raises(ValueError, match="max_diff.*do not apply"):
        score_variants(promoter, {"fasta_file": str(chr20_fasta)}, TEST_VCF, tmp_path / "o.vcf",
                       scores=["max_diff"], progress=False)
    with pytest.raises(ValueError, match="fasta_file"):
        score_variants(promoter, {}, TEST_VCF, tmp_path / "o.vcf", progress=False)
    with pytest.raises(FileNotFoundError, match="GENA-LM/nope"):
        score_variants("GENA-LM/nope", {"fasta_file": str(chr20_fasta)}, TEST_VCF, tmp_path / "o.vcf",
                       progress=False)
    bad = tmp_path / "bad.vcf"
    bad.write_text(TEST_VCF.read_text().replace("chr20\t361620", "chr20\tx361620"))
    with pytest.raises(ValueError, match=r"bad.vcf:8: POS"):
        score_variants(promoter, {"fasta_file": str(chr20_fasta)}, bad, tmp_path / "o.vcf", progress=False)
    assert not (tmp_path / "o.vcf").exists()


# ---- masked LM: zero-shot log-likelihood ratio ---------------------------------------------------------------------
def test_mlm_pseudo_log_likelihood_ratio(tiny_zoo, chr20_fasta, genome, tmp_path):
    import torch

    out = tmp_path / "mlm.vcf"
    result = score_variants(tiny_zoo["models"]["mlm"], {"fasta_file": str(chr20_fasta)}, TEST_VCF, out,
                            scores=["pll_ref", "pll_alt", "llr"], llr_flank=16, progress=False,
                            return_predictions=True)
    info = info_by_id(out)
    llr_id = PREFIX + "mlm:LLR"
    assert values(info["ref_equals_alt"][llr_id]) == [[0.0]]
    assert info["del_left_anchor"][llr_id] == info["del_right_anchor"][llr_id]
    for vid in ("snv_plus", "ins_plus", "del_plus", "mnv_plus", "complex", "snv_minus", "lower_case"):
        llr = values(info[vid][llr_id])[0][0]
        assert math.isfinite(llr) and llr != 0, vid
    assert all(math.isfinite(v[0]) for v in values(info["multi_plus"][llr_id]))
    assert "Prediction from model outputs: pseudo_log_likelihood" in "".join(header_lines(out))

    # pll_ref is Predictor.pseudo_log_likelihood of the documented stretch: 16 bp + REF + 16 bp
    predictor = load_scoring_model(tiny_zoo["models"]["mlm"]).mlm
    s = 361_599
    ref = genome.fetch("20", s - 150, s + 150)
    alt = ref[:150] + "A" + ref[151:]
    expected_ref, expected_alt = predictor.pseudo_log_likelihood([ref, alt], [(134, 167), (134, 167)])
    assert values(info["snv_plus"][PREFIX + "mlm:PLL_REF"])[0][0] == pytest.approx(expected_ref, rel=1e-5)
    assert values(info["snv_plus"][llr_id])[0][0] == pytest.approx(expected_alt - expected_ref, rel=1e-4, abs=1e-5)

    # masked_token_log_probs is the plain masked-LM computation: mask one token, read its log-probability
    encoded = predictor.encode([ref], with_offsets=True)[0]
    position = 7
    ids = list(encoded.ids)
    ids[position] = predictor.tokenizer.mask_id
    full = torch.tensor([[predictor.tokenizer.cls_id, *ids, predictor.tokenizer.sep_id]])
    with torch.no_grad():
        logits = predictor.model(full, torch.ones_like(full)).logits[0, position + 1]
    manual = torch.log_softmax(logits.float(), -1)[encoded.ids[position]].item()
    assert predictor.masked_token_log_probs([encoded.ids], [[position]])[0][0] == pytest.approx(manual, abs=1e-5)
    assert result.predictions["llr"].shape[1] == 1

    # both strands: still exactly 0 for ALT == REF, finite otherwise
    both = score_variants(tiny_zoo["models"]["mlm"], {"fasta_file": str(chr20_fasta)}, TEST_VCF,
                          tmp_path / "mlm_rc.vcf", rc_average=True, llr_flank=16, progress=False,
                          return_predictions=True)
    llr = both.predictions["llr"]["pseudo_log_likelihood"]
    assert llr["chr20:500500:T:T"] == 0.0 and np.isfinite(llr.to_numpy()).all()
    assert any("rc_average=true" in line for line in header_lines(tmp_path / "mlm_rc.vcf"))


# ---- per-nucleotide (splice) model ---------------------------------------------------------------------------------
def test_splice_largest_change_and_offset(splice, chr20_fasta, genome, tmp_path):
    out = tmp_path / "splice.vcf"
    distance = 30
    result = score_variants(splice, {"fasta_file": str(chr20_fasta)}, TEST_VCF, out, splice_distance=distance,
                            progress=False, return_predictions=True)
    info = info_by_id(out)
    header = "".join(header_lines(out))
    assert "Prediction from model outputs: acceptor|donor" in header and "splice_distance=30" in header

    # SNV G>A at 0-based 361,599: window 200 bp centred (+ 2 x 100 bp context), variant at track index 100
    s = 361_599
    ref = genome.fetch("20", s - 200, s + 200)
    alt = ref[:200] + "A" + ref[201:]
    tracks = splice.predict([ref, alt])
    reported = values(info["snv_plus"][PREFIX + "splice:MAX_DIFF"])[0]
    offsets = values(info["snv_plus"][PREFIX + "splice:MAX_DIFF_OFFSET"])[0]
    for column, label in enumerate(["acceptor", "donor"]):
        delta = tracks[label][1] - tracks[label][0]
        near = delta[100 - distance: 100 + 1 + distance]
        # bases of one token share its value: among equal largest changes the base nearest the variant counts
        candidates = np.flatnonzero(np.abs(near) == np.abs(near).max())
        best = int(candidates[np.argmin(np.abs(candidates - distance))])
        assert reported[column] == pytest.approx(near[best], rel=1e-4, abs=1e-7)
        assert offsets[column] == best - distance
    # every scored variant: the change lies within the distance of the REF allele (the longest REF is 30 bp)
    for vid, fields in info.items():
        if PREFIX + "splice:MAX_DIFF_OFFSET" in fields:
            for alt_offsets in values(fields[PREFIX + "splice:MAX_DIFF_OFFSET"]):
                assert all(math.isnan(o) or -distance <= o <= distance + 30 for o in alt_offsets), vid
    assert values(info["ref_equals_alt"][PREFIX + "splice:MAX_DIFF"]) == [[0.0, 0.0]]
    assert result.predictions["max_diff"].shape[1] == 2


def test_embedding_models_score_distances(tiny_zoo, chr20_fasta, tmp_path):
    with pytest.raises(ValueError, match="seq_length"):
        score_variants(tiny_zoo["models"]["embedding"], {"fasta_file": str(chr20_fasta)}, TEST_VCF,
                       tmp_path / "e.vcf", progress=False)
    result = score_variants(tiny_zoo["models"]["embedding"], {"fasta_file": str(chr20_fasta)}, TEST_VCF,
                            tmp_path / "e.vcf", seq_length=120, progress=False, return_predictions=True)
    cosine = result.predictions["cosine_distance"]["embedding"]
    assert cosine["chr20:500500:T:T"] == 0 and (cosine.drop("chr20:500500:T:T") > 0).all()


# ---- CLI, plot, bench scripts ----------------------------------------------------------------------------------------
def test_cli_score_variants_and_plot_effects(tiny_zoo, chr20_fasta, tmp_path, capsys):
    from kipoi_genalm.cli import main

    out, table, png = tmp_path / "cli.vcf.gz", tmp_path / "cli.tsv", tmp_path / "effects.png"
    code = main(["score-variants", str(tiny_zoo["models"]["promoter"]), "--vcf", str(TEST_VCF), "--fasta",
                 str(chr20_fasta), "-o", str(out), "--table", str(table), "--scores", "diff,logit",
                 "--no-progress", "--model-batch-size", "8"])
    printed = capsys.readouterr().out
    assert code == 0 and "18 scored" in printed and "ref_mismatch 1" in printed
    assert PREFIX + "promoter:LOGIT" in info_by_id(out)["snv_plus"]
    assert main(["plot-effects", str(out), "-o", str(png), "--score", "diff"]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["plot-effects", str(table), "-o", str(tmp_path / "t.png"), "--score", "logit", "--region",
                 "chr20:361,500-361,700"]) == 0
    assert main(["plot-effects", str(out), "-o", str(tmp_path / "x.png"), "--score", "ref"]) == 2
    assert "no INFO field KV:<source>:<model>:REF" in capsys.readouterr().err
    code = main(["score-variants", "GENA-LM/promoter", "--group-dir", str(tiny_zoo["group"]), "--vcf",
                 str(TEST_VCF), "--fasta", str(chr20_fasta), "-o", str(tmp_path / "x.vcf"), "--scores", "max_diff",
                 "--no-progress"])
    assert code == 2 and "do not apply" in capsys.readouterr().err


def test_saturation_benchmark_and_splice_positive_control_run(tiny_zoo, chr20_fasta, promoters_bed,
                                                              spliceai_table, tmp_path, capsys):
    saturation = load_script("make_saturation_vcf")
    vcf, bed = tmp_path / "sat.vcf", tmp_path / "sat.bed"
    n = saturation.write_saturation_vcf(chr20_fasta, promoters_bed, "TRIB3_1", vcf, bed, upstream=10, downstream=5)
    with VcfReader(vcf) as reader:
        records = list(reader)
    assert n == len(records) == 3 * 16 and len({r.pos for r in records}) == 16
    assert all(r.alts[0] != r.ref for r in records)

    bench = load_script("veff_throughput")
    rows = bench.main(["--model", str(tiny_zoo["models"]["promoter"]), "--fasta", str(chr20_fasta), "--bed",
                       str(promoters_bed), "--promoter", "TRIB3_1", "--upstream", "10", "--downstream", "5",
                       "--work-dir", str(tmp_path / "bench")])
    printed = capsys.readouterr().out
    assert "variants/s" in printed and "CPU" in printed
    assert {row["mode"] for row in rows} == {"centred", "regions"}
    assert all(row["variants_per_s"] > 0 and row["scored"] == 48 for row in rows)
    assert next(r for r in rows if r["mode"] == "regions")["reference_windows"] == 1

    control = load_script("splice_positive_control")
    report = control.main(["--model", str(tiny_zoo["models"]["splice"]), "--fasta", str(chr20_fasta), "--table",
                           str(spliceai_table), "--max-introns", "6", "--work-dir", str(tmp_path / "splice")])
    assert report["n_positive"] > 0 and report["n_positive"] == report["n_negative"]
    # a random tiny model: its AUROC is whatever it is, but it lies in its own bootstrap interval
    low, high = report["auroc_95ci"]
    assert low <= report["auroc"] <= high and 0 < report["mann_whitney_p"] <= 1
    # the control's metric on separable scores: 1 when splice-site SNVs score higher, 0 when lower
    labels = [0] * 20 + [1] * 20
    separable = [i / 100 for i in range(20)] + [0.5 + i / 100 for i in range(20)]
    assert control.auroc(labels, separable) == 1.0 and control.auroc(labels, separable[::-1]) == 0.0
    assert control.auroc_interval(labels, separable, resamples=200) == pytest.approx((1.0, 1.0))
    assert math.isnan(control.auroc([1, 1], [0.2, 0.3]))
    assert "AUROC" in capsys.readouterr().out
    # gene-strand mode (the default): every variant in its own 1-bp interval on its transcript's strand, and
    # no two intervals of one run within a model window of each other
    from genalm_models.tasks.splice import read_splice_table

    strands = {t.name: t.strand for t in read_splice_table(str(spliceai_table))}
    window = load_scoring_model(tiny_zoo["models"]["splice"]).info.window.input_length
    beds = sorted((tmp_path / "splice").glob("splice_control_*.bed"))
    assert beds
    seen_minus = False
    for bed in beds:
        rows = [line.split("\t") for line in bed.read_text().splitlines()]
        for chrom, start, end, name, _, strand in rows:
            assert int(end) - int(start) == 1 and strand.strip() == strands[name.split("_", 1)[1].rsplit("_", 1)[0]]
            seen_minus |= strand.strip() == "-"
        starts = sorted(int(r[1]) for r in rows)
        assert all(b - a >= window for a, b in zip(starts, starts[1:]))
    assert seen_minus
    plus = control.main(["--model", str(tiny_zoo["models"]["splice"]), "--fasta", str(chr20_fasta), "--table",
                         str(spliceai_table), "--max-introns", "6", "--strand", "plus", "--work-dir",
                         str(tmp_path / "splice_plus")])
    assert plus["strand"] == "plus" and plus["n_positive"] == report["n_positive"]

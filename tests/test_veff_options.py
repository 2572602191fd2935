"""`score_variants` takes one options object (kipoi_genalm.veff_run.ScoreVariantsOptions); the keyword form builds
the same object (issue 16, part 6). Tiny promoter model of conftest.py (`tiny_zoo`), the test VCF of test_veff.py."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from kipoi_genalm.adapter import FolderModel
from kipoi_genalm.veff import ScoreVariantsOptions, score_variants

TEST_VCF = Path(__file__).resolve().parent / "data" / "veff_test.vcf"


def test_the_options_object_and_the_keyword_form_write_the_same_vcf(tiny_zoo, chr20_fasta, tmp_path):
    model = FolderModel(tiny_zoo["models"]["promoter"])
    options = ScoreVariantsOptions(model, {"fasta_file": str(chr20_fasta)}, TEST_VCF, tmp_path / "a.vcf",
                                   scores=["diff"], batch_size=4, progress=False)
    by_options = score_variants(options)
    by_keywords = score_variants(model, {"fasta_file": str(chr20_fasta)}, TEST_VCF, tmp_path / "b.vcf",
                                 scores=["diff"], batch_size=4, progress=False)
    assert by_options.n_scored == by_keywords.n_scored > 0
    body = [[line for line in (tmp_path / name).read_text().splitlines() if not line.startswith("#")]
            for name in ("a.vcf", "b.vcf")]
    assert body[0] == body[1] and len(body[0]) > 5


def test_unknown_or_extra_arguments_are_refused_before_anything_loads(tmp_path):
    with pytest.raises(TypeError, match="unknown option.*windw"):
        score_variants("GENA-LM/none", {"fasta_file": "x.fa"}, "in.vcf", tmp_path / "out.vcf", windw=3)
    options = ScoreVariantsOptions("GENA-LM/none", {"fasta_file": "x.fa"}, "in.vcf", tmp_path / "out.vcf")
    with pytest.raises(TypeError, match="everything in the ScoreVariantsOptions"):
        score_variants(options, progress=False)
    with pytest.raises(TypeError, match="required"):
        score_variants("GENA-LM/none", {"fasta_file": "x.fa"})
    # the options object documents every setting score_variants takes (one place for defaults)
    names = {f.name for f in dataclasses.fields(ScoreVariantsOptions)}
    assert {"model", "dl_args", "input_vcf", "output_vcf", "scores", "mlm_estimator", "allow_ref_mismatch"} <= names
    assert not list(tmp_path.iterdir())

"""Output trouble is found before the work (input faults, kinds 11 and 14a): a missing folder, a folder given as the
output, an output that is an input, an impossible device: one `error:` line naming the path, exit 2, before any
model is loaded; a failed write names its output."""
from __future__ import annotations

import errno
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from genalm_models.io_utils import atomic_write, check_output_path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
GENALM = str(BIN / "genalm-kipoi") if (BIN / "genalm-kipoi").exists() else shutil.which("genalm-kipoi")
VCF = ROOT / "tests" / "data" / "veff_test.vcf"


def genalm(*args: str, home: Path) -> subprocess.CompletedProcess:
    return subprocess.run([GENALM, *args], capture_output=True, text=True, cwd=home,
                          env={"HOME": str(home), "PATH": "/usr/bin:/bin"})


def test_check_output_path(tmp_path):
    with pytest.raises(ValueError, match=r"-o .*missing/out\.tsv: the folder .*missing does not exist"):
        check_output_path(tmp_path / "missing" / "out.tsv")
    with pytest.raises(ValueError, match="is a folder"):
        check_output_path(tmp_path)
    source = tmp_path / "in.vcf"
    source.write_text("x")
    with pytest.raises(ValueError, match="is the input file"):
        check_output_path(tmp_path / "." / "in.vcf", [source])
    assert check_output_path(tmp_path / "out.vcf", [source]) == tmp_path / "out.vcf"
    assert not list(tmp_path.glob(".*"))  # the write probe is gone


def test_a_failed_write_names_its_output(tmp_path, monkeypatch):
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError, match=r"out\.txt: No space left on device"):
        with atomic_write(tmp_path / "out.txt") as handle:
            handle.write("x")
            monkeypatch.setattr("os.fsync", full)
    assert not list(tmp_path.iterdir())


def test_cli_refuses_bad_outputs_and_devices_before_the_work(tmp_path, chr20_fasta, promoters_bed):
    out = genalm("score-variants", "GENA-LM/promoter", "--vcf", str(VCF), "--fasta", str(chr20_fasta), "-o",
                 str(tmp_path / "nowhere" / "x.vcf.gz"), home=tmp_path)
    assert out.returncode == 2 and "nowhere" in out.stderr and "does not exist" in out.stderr
    vcf = tmp_path / "in.vcf"
    vcf.write_text(VCF.read_text())
    out = genalm("score-variants", "GENA-LM/promoter", "--vcf", str(vcf), "--fasta", str(chr20_fasta), "-o",
                 str(vcf), home=tmp_path)
    assert out.returncode == 2 and "is the input file" in out.stderr and vcf.read_text() == VCF.read_text()
    out = genalm("predict", "GENA-LM/promoter", "--intervals", str(promoters_bed), "--fasta", str(chr20_fasta),
                 "-o", str(tmp_path), home=tmp_path)
    assert out.returncode == 2 and "must end in .tsv" in out.stderr
    out = genalm("predict", "GENA-LM/promoter", "--intervals", str(promoters_bed), "--fasta", str(chr20_fasta),
                 "-o", str(tmp_path / "gone" / "out.tsv"), home=tmp_path)
    assert out.returncode == 2 and "does not exist" in out.stderr
    import torch

    if not torch.cuda.is_available():
        out = genalm("scan", "GENA-LM/promoter_300", "--fasta", str(chr20_fasta), "--region", "chr20:400001-401000",
                     "--device", "cuda", "-o", str(tmp_path / "t.bedGraph"), "--no-progress", home=tmp_path)
        assert out.returncode == 2 and "no CUDA support" in out.stderr, out.stderr
        assert "Traceback" not in out.stderr and "AssertionError" not in out.stderr

"""The bundled zoo (plugin/zoo/GENA-LM): every model passes `kipoi test` and runs `kipoi predict` as users type it,
has a model card, and the whole bundle stays within its size budget."""
import os
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
ZOO = ROOT / "plugin" / "zoo" / "GENA-LM"
# the models trained by this package (weights in the folder); the official GENA-LM models' folders (weights fetched
# from the hub on first use, tests/test_official_models.py) are listed beside them
MODELS = sorted(p.parent.name for p in ZOO.glob("*/model.safetensors"))
OFFICIAL = sorted(str(p.parent.relative_to(ZOO)) for p in ZOO.rglob("model.yaml")
                  if not (p.parent / "model.safetensors").exists())
BUDGET_BYTES = 40 * 1024 * 1024

pytestmark = pytest.mark.skipif(not MODELS, reason="no bundled model exported yet")


def run(command, home: Path, cwd: Path) -> str:
    env = dict(os.environ, HOME=str(home), GIT_CONFIG_GLOBAL="/dev/null", GIT_TERMINAL_PROMPT="0",
               GENALM_PROGRESS="0")
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return result.stdout + result.stderr


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("home")
    run(["genalm-kipoi", "register"], home, ROOT)
    return home


def test_bundle_size_and_model_cards():
    total = sum(p.stat().st_size for p in ZOO.rglob("*") if p.is_file())
    assert total < BUDGET_BYTES, f"bundled zoo is {total / 2**20:.1f} MB"
    for name in MODELS:
        card = (ZOO / name / "README.md").read_text()
        assert "python -m genalm_models.train" in card, name  # the command that trained it
        assert "## Metrics" in card and "Notes and limitations" in card, name
        assert (ZOO / name / "training_curves.png").is_file(), name


def test_kipoi_ls_lists_every_bundled_and_official_model(home, tmp_path):
    # kipoi ls shows a backbone with fine-tuned heads as a group, "bert-large-t2t/ (4)": itself and its heads
    output = run(["kipoi", "ls", "GENA-LM"], home, tmp_path).splitlines()
    assert len(OFFICIAL) == 14
    for name in MODELS + [m for m in OFFICIAL if "/" not in m]:
        assert name in output or any(line.startswith(f"{name}/ (") for line in output), name
    for backbone in {m.split("/")[0] for m in OFFICIAL if "/" in m}:
        listed = run(["kipoi", "ls", f"GENA-LM/{backbone}"], home, tmp_path).splitlines()
        for name in [m for m in OFFICIAL if m == backbone or m.startswith(backbone + "/")]:
            assert f"GENA-LM/{name}" in listed, name


@pytest.mark.parametrize("name", MODELS)
def test_bundled_model_passes_kipoi_test_and_predicts(name, home, tmp_path):
    output = run(["kipoi", "test", f"GENA-LM/{name}", "--source", "kipoi"], home, tmp_path)
    assert "Successfully ran test_predict" in output
    folder = ZOO / name
    args = ('{"intervals_file": "%s", "fasta_file": "%s"}' % (folder / "example.bed", folder / "example.fa.gz"))
    out = tmp_path / "out.h5" if name in ("mlm", "embedding") else tmp_path / "out.tsv"
    run(["kipoi", "predict", f"GENA-LM/{name}", f"--dataloader_args={args}", "-o", str(out)], home, tmp_path)
    assert out.is_file() and Path(str(out) + ".provenance.json").is_file()
    if out.suffix == ".tsv":
        n_intervals = sum(1 for line in (folder / "example.bed").read_text().splitlines() if line.strip())
        assert len(pd.read_csv(out, sep="\t")) == n_intervals


BF16_TOLERANCE = 0.02  # max |P_bf16 - P_fp32|, stated in plugin/README.md


@pytest.mark.parametrize("name", [m for m in MODELS if m.startswith("promoter")])
def test_bf16_stays_within_the_stated_tolerance_of_fp32(name):
    from kipoi_genalm.adapter import FolderModel, PredictOptions
    from kipoi_genalm.folder import read_folder_info
    from kipoi_genalm.sequences import IntervalSequences

    folder = ZOO / name
    data = IntervalSequences(folder / "example.bed", folder / "example.fa.gz", read_folder_info(folder).window)
    seqs = [data[i].sequence for i in range(len(data))]
    fp32 = FolderModel(folder, PredictOptions(precision="fp32")).predict(seqs)
    bf16 = FolderModel(folder, PredictOptions(precision="bf16")).predict(seqs)
    assert np.abs(fp32 - bf16).max() <= BF16_TOLERANCE
    assert not np.array_equal(fp32, bf16)  # the bf16 path really ran in lower precision


def test_the_readme_main_job_runs_without_warnings(home, tmp_path):
    """The README's main command on the bundled example files: no "predictions may be meaningless" warning (the
    example FASTA is the training reference cut after the last example, which the reference check knows), nothing
    counted in the provenance file."""
    import json

    folder = ZOO / "promoter"
    args = ('{"intervals_file": "%s", "fasta_file": "%s"}' % (folder / "example.bed", folder / "example.fa.gz"))
    out = tmp_path / "promoter_predictions.tsv"
    output = run(["kipoi", "predict", "GENA-LM/promoter", f"--dataloader_args={args}", "-m", "-o", str(out)],
                 home, tmp_path)
    assert "WARNING" not in output and "meaningless" not in output, output[-2000:]
    assert json.loads(Path(f"{out}.provenance.json").read_text())["warnings"]["count"] == 0

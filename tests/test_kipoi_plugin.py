"""The Kipoi plugin end to end, with the REAL `kipoi` and `genalm-kipoi` commands in subprocesses.

Every subprocess gets its own HOME (so ~/.kipoi is a temporary folder) and GIT_CONFIG_GLOBAL=/dev/null; github.com
is unreachable, as on an offline machine. "The public zoo" is a local bare repository; its arrival is simulated by a
git config that maps https://github.com/kipoi/models.git to it (`url.<bare>.insteadOf`). The models are the tiny
exported models of the `tiny_zoo` fixture (conftest.py), registered with `--group-dir`.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from kipoi_genalm.folder import read_folder_info, sha256_file

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
KIPOI = str(BIN / "kipoi") if (BIN / "kipoi").exists() else shutil.which("kipoi")
GENALM_KIPOI = str(BIN / "genalm-kipoi") if (BIN / "genalm-kipoi").exists() else shutil.which("genalm-kipoi")
PUBLIC_ZOO_URL = "https://github.com/kipoi/models.git"

pytestmark = pytest.mark.skipif(not (KIPOI and GENALM_KIPOI), reason="the kipoi / genalm-kipoi commands are "
                                                                      "not installed (pip install -e .)")


# ---- helpers ----------------------------------------------------------------------------------------------------
def environment(home: Path, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GENALM_") or k == "GENALM_CACHE_DIR"}
    env.update(HOME=str(home), GIT_CONFIG_GLOBAL="/dev/null", GIT_CONFIG_NOSYSTEM="1", PYTHONWARNINGS="ignore")
    env.update(extra)
    return env


def run(command: list[str], home: Path, cwd: Path, expect: int = 0, **extra_env: str) -> str:
    result = subprocess.run(command, cwd=cwd, env=environment(home, **extra_env), capture_output=True, text=True)
    output = result.stdout + result.stderr
    if expect is not None:
        assert result.returncode == expect, f"{' '.join(command)} -> {result.returncode}\n{output[-4000:]}"
    return output


def kipoi(args: list[str], home: Path, cwd: Path, expect: int = 0, **extra_env: str) -> str:
    return run([KIPOI, *args], home, cwd, expect, **extra_env)


def genalm(args: list[str], home: Path, cwd: Path, expect: int = 0, **extra_env: str) -> str:
    return run([GENALM_KIPOI, *args], home, cwd, expect, **extra_env)


def dataloader_args(intervals: Path, fasta: Path, **more) -> str:
    return "--dataloader_args=" + json.dumps({"intervals_file": str(intervals), "fasta_file": str(fasta), **more})


def git(repo: Path, *args: str) -> str:
    result = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                            env=environment(repo.parent))
    assert result.returncode == 0, result.stderr
    return result.stdout


def snapshot(home: Path) -> dict[str, str]:
    """Every path under HOME with the sha256 of its content (git objects left out: pulls may repack them)."""
    state = {}
    for path in sorted(home.rglob("*")):
        relative = str(path.relative_to(home))
        if "/objects/" in relative or relative.endswith("/objects"):
            continue
        if path.is_symlink():
            state[relative] = "link:" + os.readlink(path)
        elif path.is_file():
            state[relative] = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            state[relative] = "dir"
    return state


@pytest.fixture(scope="module")
def public_zoo(tmp_path_factory) -> dict:
    """A bare repository standing in for github.com/kipoi/models, holding one model, and a git config that makes
    the GitHub URL point at it ("the network is back")."""
    root = tmp_path_factory.mktemp("public_zoo")
    work = root / "work"
    (work / "PublicModel").mkdir(parents=True)
    (work / "PublicModel" / "model.yaml").write_text(
        "defined_as: kipoi.model.SklearnModel\nargs:\n  pkl_file: model.pkl\ninfo:\n  authors:\n    - name: someone\n"
        "  doc: a model of the public zoo\ndependencies:\n  pip: [scikit-learn]\nschema:\n  inputs:\n    shape: (1,)\n"
        "    doc: x\n  targets:\n    shape: (1,)\n    doc: y\n")
    env = environment(root)
    for command in (["git", "init", "-q", "-b", "master"], ["git", "add", "-A"],
                    ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "public zoo"]):
        subprocess.run(command, cwd=work, env=env, check=True)
    bare = root / "models.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(bare)], env=env, check=True)
    online = root / "online.gitconfig"
    online.write_text(f'[url "file://{bare}"]\n\tinsteadOf = {PUBLIC_ZOO_URL}\n')
    return {"bare": bare, "online_config": online}


def clone_public_zoo(public_zoo: dict, destination: Path) -> None:
    """A user's clone of the zoo whose origin is the real (here unreachable) GitHub URL."""
    subprocess.run(["git", "clone", "-q", "--depth=1", f"file://{public_zoo['bare']}", str(destination)],
                   env=environment(destination.parent), check=True)
    git(destination, "remote", "set-url", "origin", PUBLIC_ZOO_URL)


@pytest.fixture(scope="module")
def registered_home(tmp_path_factory, tiny_zoo) -> Path:
    """A HOME with no Kipoi setup in which `genalm-kipoi register` was run (no public zoo)."""
    home = tmp_path_factory.mktemp("home_registered")
    genalm(["register", "--group-dir", str(tiny_zoo["group"])], home, home)
    return home


def intervals_for(name: str, tiny_zoo, promoters_bed: Path) -> Path:
    # the embedding model takes intervals as they are: give it its 150 bp example windows, not 1-bp TSS records;
    # the 1 kb RMT promoter model is the slowest: its few examples are enough
    if name in ("embedding", "promoter_rmt"):
        return tiny_zoo["models"][name] / "example.bed"
    return promoters_bed


def n_intervals(path: Path) -> int:
    return sum(1 for line in path.read_text().splitlines() if line.strip())


# ---- registration: where kipoi finds GENA-LM --------------------------------------------------------------------
def test_user_without_kipoi_setup_registers_predicts_and_later_gets_the_public_zoo(
        tmp_path, tiny_zoo, public_zoo, promoters_bed, chr20_fasta):
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    args = dataloader_args(promoters_bed, chr20_fasta)
    before = kipoi(["predict", "GENA-LM/promoter", args, "-o", "out.tsv"], home, work, expect=None)
    assert "GENA-LM/promoter doesn't exist" in before and not (work / "out.tsv").exists()

    group = str(tiny_zoo["group"])
    assert "registered:" in genalm(["register", "--group-dir", group], home, work)
    assert "already registered" in genalm(["register", "--group-dir", group], home, work)
    models = home / ".kipoi" / "models"
    assert (models / "GENA-LM").resolve() == tiny_zoo["group"].resolve()
    assert git(models, "config", "--get", "remote.origin.url").strip() == PUBLIC_ZOO_URL

    # exactly as typed: default source, relative output path; no failed `git pull` of the absent public zoo
    output = kipoi(["predict", "GENA-LM/promoter", args, "-o", "out.tsv"], home, work)
    assert "Done! Predictions stored in out.tsv" in output
    assert "git pull" not in output and "unable to access" not in output and "Update " not in output
    table = pd.read_csv(work / "out.tsv", sep="\t")
    assert list(table.columns) == ["preds/promoter"] and len(table) == n_intervals(promoters_bed)
    assert table["preds/promoter"].between(0, 1).all()

    # the network comes back: with kipoi's automatic pull back on, its own `git pull` brings the public zoo into
    # the seeded repository
    assert "kipoi's automatic `git pull`: off (set by register)" in genalm(["status", "--group-dir", group], home,
                                                                             work)
    assert "is on again" in genalm(["register", "--group-dir", group, "--auto-update"], home, work)
    listing = kipoi(["ls"], home, work, GIT_CONFIG_GLOBAL=str(public_zoo["online_config"]))
    assert "GENA-LM/ (5)" in listing and "PublicModel" in listing
    assert (models / "PublicModel" / "model.yaml").is_file()
    assert git(models, "status", "--porcelain") == ""  # the link is excluded, the clone is clean
    assert "public zoo: cloned" in genalm(["status", "--group-dir", group], home, work)
    assert "GENA-LM/ (5)" in kipoi(["ls"], home, work)  # offline again: both still listed

    assert "unregistered" in genalm(["unregister", "--group-dir", group], home, work)
    assert not (models / "GENA-LM").exists() and (models / "PublicModel").is_dir()
    assert "/GENA-LM" not in (models / ".git" / "info" / "exclude").read_text()
    assert subprocess.run(["git", "-C", str(models), "config", "--get", "genalm.seeded"],
                          capture_output=True).returncode == 1
    assert "not registered" in genalm(["unregister", "--group-dir", group], home, work)


def test_unregister_before_the_zoo_arrived_restores_a_fresh_home(tmp_path, tiny_zoo):
    home = tmp_path / "home"
    home.mkdir()
    group = str(tiny_zoo["group"])
    assert "not registered" in genalm(["status", "--group-dir", group], home, tmp_path)  # kipoi writes its config
    fresh = snapshot(home)
    assert list(fresh) == [".kipoi", ".kipoi/config.yaml"]
    genalm(["register", "--group-dir", group], home, tmp_path)
    assert (home / ".kipoi" / "models" / ".git").is_dir()
    genalm(["unregister", "--group-dir", group], home, tmp_path)
    assert snapshot(home) == fresh


def kipoi_config(home: Path) -> str:
    return (home / ".kipoi" / "config.yaml").read_text()


def test_register_turns_off_the_failing_pull_of_the_zoo_it_seeded_and_unregister_restores_it(tmp_path, tiny_zoo):
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    group = str(tiny_zoo["group"])
    genalm(["status", "--group-dir", group], home, work)  # kipoi writes its default config
    fresh, fresh_config = snapshot(home), kipoi_config(home)
    assert "auto_update: true" in fresh_config

    report = genalm(["register", "--group-dir", group], home, work)
    assert "automatic `git pull` of the absent public zoo turned off" in report
    config = kipoi_config(home)
    assert "auto_update: false" in config and "auto_update: true" not in config
    assert config == fresh_config.replace("auto_update: true", "auto_update: false")  # that line only
    listing = kipoi(["ls"], home, work)
    assert "GENA-LM/" in listing and "git" not in listing and "unable to access" not in listing
    assert "already registered" in genalm(["register", "--group-dir", group], home, work)
    assert kipoi_config(home) == config  # idempotent

    assert "auto_update edit" in genalm(["unregister", "--group-dir", group], home, work)
    assert snapshot(home) == fresh


def test_auto_update_edit_keeps_a_hand_written_config_byte_for_byte(tmp_path, tiny_zoo):
    home, work = tmp_path / "home", tmp_path / "work"
    (home / ".kipoi").mkdir(parents=True)
    work.mkdir()
    group = str(tiny_zoo["group"])
    # no auto_update line (kipoi's default is true), comments, an extra source, Windows line ends
    original = ("# my kipoi config\r\nmodel_sources:\r\n  kipoi:   # the public zoo\r\n    type: git\r\n"
                f"    remote_url: {PUBLIC_ZOO_URL}\r\n    local_path: {home}/zoo/\r\n\r\n"
                f"  mylab:\r\n    type: local\r\n    local_path: {home}/mylab\r\n")
    (home / ".kipoi" / "config.yaml").write_bytes(original.encode())
    (home / "mylab").mkdir()
    before = snapshot(home)
    genalm(["register", "--group-dir", group], home, work)
    edited = (home / ".kipoi" / "config.yaml").read_bytes().decode()
    assert edited == original.replace("  kipoi:   # the public zoo\r\n",
                                      "  kipoi:   # the public zoo\r\n    auto_update: false\r\n")
    assert "git" not in kipoi(["ls"], home, work)
    genalm(["unregister", "--group-dir", group], home, work)
    assert snapshot(home) == before


def test_a_users_own_auto_update_and_the_auto_update_option_are_respected(tmp_path, tiny_zoo):
    group = str(tiny_zoo["group"])
    for setting, option, expected in (("false", [], "auto_update: false"),
                                      ("true", ["--auto-update"], "auto_update: true")):
        home = tmp_path / setting
        (home / ".kipoi").mkdir(parents=True)
        (home / ".kipoi" / "config.yaml").write_text(
            f"model_sources:\n  kipoi:\n    type: git\n    remote_url: {PUBLIC_ZOO_URL}\n"
            f"    local_path: {home}/zoo/\n    auto_update: {setting}\n")
        before = snapshot(home)
        report = genalm(["register", "--group-dir", group, *option], home, home)
        assert "turned off" not in report and expected in kipoi_config(home)
        assert "turned off" not in genalm(["register", "--group-dir", group], home, home)  # "kept" is remembered
        assert expected in kipoi_config(home)
        genalm(["unregister", "--group-dir", group], home, home)
        assert snapshot(home) == before


def test_auto_update_edit_refuses_what_it_cannot_edit_safely():
    from kipoi_genalm.registration import _edit_auto_update

    flow = "model_sources: {kipoi: {type: git, remote_url: x, local_path: y, auto_update: true}}\n"
    assert _edit_auto_update(flow, "kipoi", "disable") is None
    two_sources = ("model_sources:\n  other:\n    type: git\n    auto_update: true\n  kipoi:\n    type: git\n"
                   "    auto_update: yes  # keep\n")
    edited = _edit_auto_update(two_sources, "kipoi", "disable")
    assert edited == two_sources.replace("auto_update: yes  # keep", "auto_update: false  # keep")
    assert _edit_auto_update(edited, "kipoi", "restore:replaced:yes") == two_sources
    assert _edit_auto_update(two_sources, "missing", "disable") is None


def test_user_with_a_clone_of_the_zoo_keeps_it_untouched(tmp_path, tiny_zoo, public_zoo, promoters_bed,
                                                         chr20_fasta):
    home, work = tmp_path / "home", tmp_path / "work"
    (home / ".kipoi").mkdir(parents=True)
    work.mkdir()
    models = home / ".kipoi" / "models"
    clone_public_zoo(public_zoo, models)
    kipoi(["ls"], home, work)  # a user who has used kipoi: its config and the failed pull's traces exist
    before = snapshot(home)

    group = str(tiny_zoo["group"])
    genalm(["register", "--group-dir", group], home, work)
    assert "already registered" in genalm(["register", "--group-dir", group], home, work)
    kipoi(["predict", "GENA-LM/promoter", dataloader_args(promoters_bed, chr20_fasta), "-o", "out.tsv"], home, work)
    assert len(pd.read_csv(work / "out.tsv", sep="\t")) == n_intervals(promoters_bed)
    assert git(models, "status", "--porcelain") == ""
    assert "PublicModel" in kipoi(["ls"], home, work)

    genalm(["unregister", "--group-dir", group], home, work)
    assert snapshot(home) == before


def test_custom_config_and_other_sources_are_never_broken(tmp_path, tiny_zoo, public_zoo):
    home, work = tmp_path / "home", tmp_path / "work"
    (home / ".kipoi").mkdir(parents=True)
    work.mkdir()
    clone_public_zoo(public_zoo, home / "zoo-clone")
    lab = home / "mylab" / "LabModel"
    lab.mkdir(parents=True)
    shutil.copy(public_zoo["bare"].parent / "work" / "PublicModel" / "model.yaml", lab / "model.yaml")
    (home / ".kipoi" / "config.yaml").write_text(
        "# my hand-written kipoi config -- keep my comments!\nmodel_sources:\n  kipoi:\n    type: git\n"
        f"    remote_url: {PUBLIC_ZOO_URL}\n    local_path: {home}/zoo-clone/\n    auto_update: true\n"
        f"  mylab:            # lab-internal models\n    type: local\n    local_path: {home}/mylab\n")
    kipoi(["ls"], home, work)
    before = snapshot(home)

    group = str(tiny_zoo["group"])
    assert f"{home}/zoo-clone/GENA-LM" in genalm(["register", "--group-dir", group], home, work)
    assert "GENA-LM/ (5)" in kipoi(["ls"], home, work)
    assert "LabModel" in kipoi(["ls", "--source", "mylab"], home, work)
    assert (home / ".kipoi" / "config.yaml").read_text().startswith("# my hand-written kipoi config")
    genalm(["unregister", "--group-dir", group], home, work)
    assert snapshot(home) == before


def test_register_refuses_to_touch_a_foreign_group_folder(tmp_path, tiny_zoo):
    home = tmp_path / "home"
    foreign = home / ".kipoi" / "models" / "GENA-LM"
    foreign.mkdir(parents=True)
    (foreign / "notes.txt").write_text("mine")
    output = genalm(["register", "--group-dir", str(tiny_zoo["group"])], home, tmp_path, expect=1)
    assert "already exists and is not a link made by genalm-kipoi; not touching it" in output
    assert (foreign / "notes.txt").read_text() == "mine"
    empty_group = tmp_path / "empty" / "GENA-LM"
    empty_group.mkdir(parents=True)
    assert "nothing to register" in genalm(["register", "--group-dir", str(empty_group)], home, tmp_path, expect=1)


# ---- every model through the kipoi CLI ----------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["promoter", "promoter_rmt", "splice", "embedding", "mlm"])
def test_kipoi_test_passes_offline(name, registered_home, tmp_path):
    output = kipoi(["test", f"GENA-LM/{name}", "--source", "kipoi"], registered_home, tmp_path)
    assert "Using downloaded and verified file" in output  # the shipped expectation, no download
    assert "All predictions match" in output and "Successfully ran test_predict" in output


def test_a_wrong_expectation_fails_kipoi_test_even_in_a_later_output(registered_home, tiny_zoo, tmp_path):
    """kipoi 0.8.6 compared only the first array of dict outputs; the plugin makes it compare all of them."""
    tampered = tmp_path / "tampered.h5"
    shutil.copy(tiny_zoo["models"]["splice"] / "downloaded" / "model_files" / "test.expect.h5", tampered)
    with h5py.File(tampered, "a") as handle:
        handle["preds/donor"][0, 5] += 0.01
    output = kipoi(["test", "GENA-LM/splice", "--source", "kipoi", "-e", str(tampered)], registered_home, tmp_path,
                   expect=1)
    assert "don't match the expected predictions" in output and "output 'donor'" in output


@pytest.fixture(scope="module")
def promoter_outputs(registered_home, tmp_path_factory, promoters_bed, chr20_fasta) -> Path:
    """`kipoi predict GENA-LM/promoter ... -o out.tsv` and `-o out.h5` exactly as typed. An out.h5 is there
    already: kipoi alone fails on it ("name already exists"), the plugin's atomic writer replaces it."""
    work = tmp_path_factory.mktemp("promoter_outputs")
    with h5py.File(work / "out.h5", "w") as handle:
        handle["preds"] = np.zeros((3, 1))
    args = dataloader_args(promoters_bed, chr20_fasta)
    kipoi(["predict", "GENA-LM/promoter", args, "-m", "-o", "out.tsv"], registered_home, work)  # as in README.md
    kipoi(["predict", "GENA-LM/promoter", args, "-m", "-o", "out.h5"], registered_home, work)
    return work


READABLE_COLUMNS = ["metadata/ranges/chr", "metadata/ranges/start", "metadata/ranges/end", "metadata/ranges/id",
                    "metadata/ranges/strand", "preds/promoter"]


def test_the_readme_main_command_gives_a_readable_table(promoter_outputs, promoters_bed):
    """README.md's set-up command keeps the interval columns (-m); the table reads chr, start, end, name, strand,
    then P(promoter) - not a lone column of numbers in kipoi's string order."""
    setup = (ROOT / "README.md").read_text().split("## Set-up", 1)[1].split("\n## ", 1)[0]
    command = next(line for line in setup.splitlines() if "kipoi predict GENA-LM/promoter" in line)
    assert " -m " in command and "-o promoter_predictions.tsv" in command
    table = pd.read_csv(promoter_outputs / "out.tsv", sep="\t")
    assert list(table.columns) == READABLE_COLUMNS
    first = promoters_bed.read_text().splitlines()[0].split("\t")
    assert table["metadata/ranges/id"][0] == first[3] and table["metadata/ranges/chr"][0] == first[0]


def test_promoter_tsv_h5_and_provenance(promoter_outputs, tiny_zoo, promoters_bed):
    table = pd.read_csv(promoter_outputs / "out.tsv", sep="\t")
    n = n_intervals(promoters_bed)
    assert len(table) == n
    with h5py.File(promoter_outputs / "out.h5") as handle:
        preds = handle["preds/promoter"][:]   # one named output per label, not an (n, 1) array
        assert preds.shape == (n,) and list(table.columns) == READABLE_COLUMNS
        np.testing.assert_allclose(preds, table["preds/promoter"], rtol=1e-6)
        ranges = handle["metadata/ranges"]
        assert ranges["chr"][0] == b"chr20" and ranges["end"][0] - ranges["start"][0] == 300
        stored = json.loads(handle.attrs["genalm_provenance"])
    weights = tiny_zoo["models"]["promoter"] / "model.safetensors"
    for output in ("out.tsv", "out.h5"):
        document = json.loads((promoter_outputs / f"{output}.provenance.json").read_text())
        model = document["models"][0]
        assert model["name"] == "GENA-LM/promoter" and model["weights_sha256"] == sha256_file(weights)
        assert model["version"] == read_folder_info(weights.parent).version
        assert document["inputs"]["intervals_file"] == str(promoters_bed)
        assert document["inputs"]["reference_check"] == "ok"  # chr20_2mb.fa.gz is the training reference
        assert document["warnings"]["count"] == 0
    assert stored["models"][0]["weights_sha256"] == sha256_file(weights)
    assert not [p for p in os.listdir(promoter_outputs) if p.endswith(".partial")]


@pytest.mark.parametrize("name", ["promoter_rmt", "splice", "embedding", "mlm"])
def test_kipoi_predict_tsv_and_h5(name, registered_home, tiny_zoo, tmp_path, promoters_bed, chr20_fasta):
    intervals = intervals_for(name, tiny_zoo, promoters_bed)
    output = kipoi(["predict", f"GENA-LM/{name}", dataloader_args(intervals, chr20_fasta), "-o", "out.tsv",
                    "out.h5"], registered_home, tmp_path)
    # the dataloader's schema agrees with every model's (dict outputs): no warning on correct use
    assert "is not compatible" not in output and "dataloader.output_schema is compatible" in output
    assert "WARNING" not in output
    n = n_intervals(intervals)
    table = pd.read_csv(tmp_path / "out.tsv", sep="\t")
    assert len(table) == n
    info = read_folder_info(tiny_zoo["models"][name])
    with h5py.File(tmp_path / "out.h5") as handle:
        if name == "promoter_rmt":
            assert handle["preds/promoter"].shape == (n,) and list(table.columns) == ["preds/promoter"]
        elif name == "splice":  # per-nucleotide tracks on the 200 bp region, one per label
            assert sorted(handle["preds"]) == ["acceptor", "donor"]
            assert handle["preds/acceptor"].shape == (n, 200)
            # positions in numeric order (kipoi wrote /0, /1, /10, /100, ...); 400 columns: no HDF5 note
            assert list(table.columns) == [f"preds/{label}/{i}" for label in ("acceptor", "donor")
                                           for i in range(200)]
            assert ((handle["preds/donor"][:] >= 0) & (handle["preds/donor"][:] <= 1)).all()
            assert "write HDF5 instead" not in output
        else:  # embeddings: pooled + per-token
            hidden = json.loads((tiny_zoo["models"][name] / "config.json").read_text())["hidden_size"]
            preds = handle["preds"]
            assert sorted(preds) == ["n_tokens", "pooled", "token_embeddings", "token_spans"]
            assert preds["pooled"].shape == (n, hidden)
            counts = preds["n_tokens"][:]
            states = preds["token_embeddings"][:]
            assert (counts > 0).all() and states.shape[0] == n and states.shape[2] == hidden
            row = states[0, : counts[0]]
            np.testing.assert_allclose(row.mean(axis=0), preds["pooled"][0], rtol=1e-4, atol=1e-5)
            assert np.isnan(states[0, counts[0]:]).all()
            spans = preds["token_spans"][0, : counts[0]]
            assert spans[0, 0] == 0 and (spans[1:, 0] == spans[:-1, 1]).all()  # tokens tile the sequence
            width = states.shape[1]
            assert list(table.columns[:3]) == ["preds/n_tokens", "preds/pooled/0", "preds/pooled/1"]
            assert f"preds/token_embeddings/{width - 1}/{hidden - 1}" == table.columns[-width * 2 - 1]
            # thousands of per-token columns: the user is pointed to HDF5
            assert table.shape[1] > 1000 and "write HDF5 instead" in output
    assert json.loads((tmp_path / "out.h5.provenance.json").read_text())["models"][0]["name"] == info.name


def test_kipoi_info_shows_the_model_documentation(registered_home, tmp_path):
    output = kipoi(["info", "GENA-LM/promoter"], registered_home, tmp_path)
    for text in ("'GENA-LM/promoter' from source 'kipoi'", "-249 to +50", "probability per output: promoter",
                 "GENALM_PRECISION", "Reverse-complement averaging is not offered",
                 "https://doi.org/10.1093/nar/gkae1310", "intervals_file", "fasta_file",
                 "reference_contigs"):
        assert text in " ".join(output.split()), text  # kipoi wraps the doc: compare with whitespace collapsed


def test_python_api_returns_the_cli_numbers(registered_home, promoter_outputs, promoters_bed, chr20_fasta,
                                            tmp_path):
    script = tmp_path / "api.py"
    script.write_text(
        "import json, sys, numpy as np, kipoi\n"
        "model = kipoi.get_model('GENA-LM/promoter')\n"
        f"kwargs = dict(intervals_file={str(promoters_bed)!r}, fasta_file={str(chr20_fasta)!r})\n"
        "preds = model.pipeline.predict(kwargs, batch_size=7)\n"
        "try:\n"
        "    model.configure(rc_average=True)\n"
        "except ValueError as err:\n"
        "    print('refused:', err)\n"
        "model.configure(precision='bf16')\n"
        "bf16 = model.pipeline.predict(kwargs, batch_size=64)\n"
        f"np.save({str(tmp_path / 'api.npy')!r}, np.stack([preds['promoter'], bf16['promoter']]))\n"
        "print(type(model).__name__, model.genalm_info.name)\n")
    output = run([sys.executable, str(script)], registered_home, tmp_path)
    assert "GenaLMModel GENA-LM/promoter" in output
    # reverse-complement averaging is refused for the TSS-anchored promoter model, with the reason
    assert "refused: GENA-LM/promoter: rc_average" in output and "anchored on the 5' end" in output
    plain, bf16 = np.load(tmp_path / "api.npy")
    cli = pd.read_csv(promoter_outputs / "out.tsv", sep="\t")["preds/promoter"].to_numpy()
    np.testing.assert_allclose(plain, cli, rtol=1e-5, atol=1e-6)
    assert not np.array_equal(bf16, plain) and np.abs(bf16 - plain).max() < 0.05  # configure() took effect


def test_environment_options_reach_the_model_through_kipoi_predict(registered_home, tiny_zoo, tmp_path,
                                                                   promoters_bed, chr20_fasta):
    from kipoi_genalm.adapter import FolderModel, PredictOptions
    from kipoi_genalm.sequences import IntervalSequences

    # reverse-complement averaging where it is meaningful: embeddings (pooled) of the embedding model
    intervals = tiny_zoo["models"]["embedding"] / "example.bed"
    kipoi(["predict", "GENA-LM/embedding", dataloader_args(intervals, chr20_fasta), "-o", "rc.h5"],
          registered_home, tmp_path, GENALM_RC_AVERAGE="1", GENALM_BATCH_SIZE="5", GENALM_EMBEDDING_OUTPUTS="pooled")
    folder = tiny_zoo["models"]["embedding"]
    data = IntervalSequences(intervals, chr20_fasta, read_folder_info(folder).window)
    sequences = [data[i].sequence for i in range(len(data))]
    expected = FolderModel(folder, PredictOptions(rc_average=True)).predict(sequences)["pooled"]
    forward = FolderModel(folder).predict(sequences)["pooled"]
    with h5py.File(tmp_path / "rc.h5") as handle:
        assert sorted(handle["preds"]) == ["pooled"]  # GENALM_EMBEDDING_OUTPUTS reached the model
        np.testing.assert_allclose(handle["preds/pooled"][:], expected, rtol=1e-4, atol=1e-6)
    assert np.abs(expected - forward).max() > 1e-4  # GENALM_RC_AVERAGE reached the model
    document = json.loads((tmp_path / "rc.h5.provenance.json").read_text())
    assert document["models"][0]["rc_average"] is True


@pytest.mark.parametrize("name, reason", [
    ("promoter", "its window is anchored on the 5' end (TSS) of the interval's strand"),
    ("splice", "its per-nucleotide outputs are strand-specific"),
])
def test_rc_average_is_refused_where_the_reverse_complement_is_another_site(name, reason, registered_home,
                                                                              tmp_path, promoters_bed, chr20_fasta):
    """GENALM_RC_AVERAGE=1 pulled every promoter score to ~0.5 (the other strand's window is not the same
    promoter): refused before anything is predicted, with the reason; through genalm-kipoi as one error line."""
    output = kipoi(["predict", f"GENA-LM/{name}", dataloader_args(promoters_bed, chr20_fasta), "-o", "rc.tsv"],
                   registered_home, tmp_path, expect=1, GENALM_RC_AVERAGE="1")
    assert f"GENA-LM/{name}: rc_average (GENALM_RC_AVERAGE, --rc-average) is not offered for this model: " \
           f"{reason}" in output
    assert not (tmp_path / "rc.tsv").exists()
    output = genalm(["predict", f"GENA-LM/{name}", "--intervals", str(promoters_bed), "--fasta", str(chr20_fasta),
                     "-o", "rc.tsv", "--rc-average"], registered_home, tmp_path, expect=2)
    assert f"error: GENA-LM/{name}: rc_average" in output and reason in output and "Traceback" not in output


def test_a_failed_run_leaves_no_partial_output(registered_home, tmp_path, chr20_fasta):
    """The third interval is too long for the plain model: the run fails in its second batch, after the first
    batch was written. The old out.tsv stays as it was, no out.h5 appears, no temporary file is left."""
    intervals = tmp_path / "mixed.bed"
    intervals.write_text("chr20\t100000\t100100\ta\t0\t+\nchr20\t200000\t200100\tb\t0\t+\n"
                         "chr20\t300000\t302000\tlong\t0\t+\n")
    (tmp_path / "out.tsv").write_text("previous results\n")
    args = dataloader_args(intervals, chr20_fasta, sequence_length=None, anchor="center")
    output = kipoi(["predict", "GENA-LM/promoter", args, "--batch_size", "2", "-o", "out.tsv", "out.h5"],
                   registered_home, tmp_path, expect=1)
    assert "this model takes at most" in output
    # (input faults, kind 4) the error names the BED line, not the input's index in its batch
    assert "mixed.bed:3" in output and "2,000 bp" in output, output[-3000:]
    assert (tmp_path / "out.tsv").read_text() == "previous results\n"
    assert sorted(os.listdir(tmp_path)) == ["mixed.bed", "out.tsv"]


def test_warnings_reach_the_terminal_under_kipoi_predict_and_are_counted(registered_home, tmp_path, chr20_genome,
                                                                         promoters_bed):
    """kipoi's logging set-up shows only CRITICAL records: a FASTA of another assembly and an all-N window used to
    pass with nothing on screen. Now both are printed under the plain `kipoi` command and counted in provenance."""
    fasta = tmp_path / "other_assembly.fa"  # contig 20 of another length than the model's reference
    fasta.write_text(">20\n" + chr20_genome.fetch("20", 0, 1_000_000) + "\n")
    intervals = tmp_path / "x.bed"  # the chromosome starts with 60 kb of N: the first window is all N
    tss = next(line for line in promoters_bed.read_text().splitlines() if int(line.split("\t")[1]) < 990_000)
    intervals.write_text("chr20\t1000\t1001\tgap\t0\t+\n" + tss + "\n")
    output = kipoi(["predict", "GENA-LM/promoter", dataloader_args(intervals, fasta), "-m", "-o", "out.tsv"],
                   registered_home, tmp_path)
    assert "contig 20 is 1,000,000 bp, but 20 is 2,000,000 bp" in output and "predictions may be meaningless" in output
    assert "chr20:751-1051(+) from" in output and "100% of the window is N" in output
    assert output.count("WARNING [kipoi_genalm") == 2
    warnings = json.loads((tmp_path / "out.tsv.provenance.json").read_text())["warnings"]
    assert warnings["count"] == 2 and warnings["by_kind"] == {"reference_mismatch": 1, "n_rich_window": 1}
    assert any("100% of the window is N" in message for message in warnings["messages"])


def test_bed_without_strands_is_an_error_for_tss_anchored_models(registered_home, tmp_path, chr20_fasta):
    """A BED3 file used to be read on '+' without a word: a '-' strand promoter got the wrong window. Now it is
    an error naming the file and the count, unless `use_strand: false` says to read everything on '+'; a model
    with centred windows (splice) takes BED3 as before."""
    intervals = tmp_path / "tss.bed"
    intervals.write_text("chr20\t271365\t271366\nchr20\t68312\t68313\tDEFB125_1\t0\t+\nchr20\t500000\t500001\n")
    output = kipoi(["predict", "GENA-LM/promoter", dataloader_args(intervals, chr20_fasta), "-o", "out.tsv"],
                   registered_home, tmp_path, expect=1)
    assert f"{intervals}: 2 of 3 intervals have no strand" in output and "use_strand: false" in output
    assert not (tmp_path / "out.tsv").exists()
    kipoi(["predict", "GENA-LM/promoter", dataloader_args(intervals, chr20_fasta, use_strand=False), "-m", "-o",
           "out.tsv"], registered_home, tmp_path)
    assert list(pd.read_csv(tmp_path / "out.tsv", sep="\t")["metadata/ranges/strand"]) == ["+"] * 3
    kipoi(["predict", "GENA-LM/splice", dataloader_args(intervals, chr20_fasta), "-o", "splice.h5"],
          registered_home, tmp_path)


# ---- genalm-kipoi: predict wrapper, scan, FASTA check -----------------------------------------------------------
def test_genalm_kipoi_predict_without_registration(tiny_zoo, tmp_path, promoters_bed, chr20_fasta):
    home = tmp_path / "home"
    home.mkdir()
    group = str(tiny_zoo["group"])
    output = genalm(["predict", "GENA-LM/splice", "--group-dir", group, "--intervals", str(promoters_bed),
                     "--fasta", str(chr20_fasta), "-o", "splice.h5", "--precision", "bf16"], home, tmp_path)
    assert "predictions written to splice.h5" in output
    with h5py.File(tmp_path / "splice.h5") as handle:
        assert handle["preds/acceptor"].shape == (n_intervals(promoters_bed), 200)
        assert "metadata" in handle  # interval columns are kept by default
    assert json.loads((tmp_path / "splice.h5.provenance.json").read_text())["models"][0]["precision"] == "bf16"

    bad = tmp_path / "bad.bed"
    bad.write_text("chr20\t100000\t100001\ta\t0\t+\nchrUn\t5\t6\tb\t0\t+\n")
    output = genalm(["predict", "GENA-LM/promoter", "--group-dir", group, "--intervals", str(bad), "--fasta",
                     str(chr20_fasta), "-o", "bad.tsv"], home, tmp_path, expect=2)
    assert f"error: {bad}:2: chromosome 'chrUn' is not in" in output and "Traceback" not in output
    assert not (tmp_path / "bad.tsv").exists()


def test_scan_writes_a_bedgraph_track(tiny_zoo, tmp_path, chr20_fasta):
    from kipoi_genalm.adapter import FolderModel
    from kipoi_genalm.sequences import IntervalSequences

    home = tmp_path / "home"
    home.mkdir()
    group = str(tiny_zoo["group"])
    genalm(["scan", "GENA-LM/promoter", "--group-dir", group, "--fasta", str(chr20_fasta), "--region",
            "chr20:100,001-101,000", "--step", "100", "--strand", "-", "-o", "p.bedGraph"], home, tmp_path)
    lines = (tmp_path / "p.bedGraph").read_text().splitlines()
    assert lines[0].startswith('track type=bedGraph name="GENA-LM/promoter promoter"')
    rows = [line.split("\t") for line in lines[1:]]
    assert [(int(r[1]), int(r[2])) for r in rows] == [(s, s + 100) for s in range(100_000, 101_000, 100)]
    # bin 3 = the model's TSS window around base 100,349 on '-'
    site = tmp_path / "site.bed"
    site.write_text("chr20\t100349\t100350\tx\t0\t-\n")
    folder = tiny_zoo["models"]["promoter"]
    data = IntervalSequences(site, chr20_fasta, read_folder_info(folder).window)
    assert float(rows[3][3]) == pytest.approx(float(FolderModel(folder).predict([data[0].sequence])[0, 0]),
                                              rel=1e-5)
    assert json.loads((tmp_path / "p.bedGraph.provenance.json").read_text())["inputs"]["strand"] == "-"

    genalm(["scan", "GENA-LM/splice", "--group-dir", group, "--fasta", str(chr20_fasta), "--region",
            "chr20:300,001-300,450", "--output-label", "donor", "-o", "s.bedGraph", "--no-progress"], home, tmp_path)
    rows = [line.split("\t") for line in (tmp_path / "s.bedGraph").read_text().splitlines()[1:]]
    assert int(rows[0][1]) == 300_000 and int(rows[-1][2]) == 300_450
    assert all(int(a[2]) == int(b[1]) for a, b in zip(rows, rows[1:]))  # per-base values, contiguous


def test_check_fasta_against_the_training_assembly(tiny_zoo, tmp_path, chr20_fasta):
    home = tmp_path / "home"
    home.mkdir()
    group = str(tiny_zoo["group"])
    output = genalm(["check-fasta", "GENA-LM/promoter", str(chr20_fasta), "--group-dir", group], home, tmp_path)
    assert "matches" in output
    truncated = tiny_zoo["models"]["promoter"] / "example.fa.gz"  # contig 20 cut short
    output = genalm(["check-fasta", "GENA-LM/promoter", str(truncated), "--group-dir", group], home, tmp_path,
                    expect=1)
    assert "MISMATCH: contig 20 is" in output and "2,000,000 bp in the reference the model was trained on" in output
    listing = genalm(["list", "--group-dir", group], home, tmp_path)
    assert len(listing.splitlines()) == 5 and "GENA-LM/splice" in listing and "sha256:" in listing


def test_the_bundled_group_is_the_package_zoo_folder():
    import kipoi_genalm

    # editable and wheel installs alike: the group kipoi links to is a real folder inside the package
    assert kipoi_genalm.GROUP_DIR == Path(kipoi_genalm.__file__).resolve().parent / "zoo" / "GENA-LM"
    assert kipoi_genalm.GROUP_DIR.parent.parent == ROOT / "plugin"


# ---- in-process: the adapter ------------------------------------------------------------------------------------
def test_adapter_options_and_shapes(tiny_zoo, chr20_fasta, promoters_bed):
    from genalm_models.genome import reverse_complement
    from kipoi_genalm.adapter import FolderModel, PredictOptions, as_sequences
    from kipoi_genalm.sequences import IntervalSequences

    folder = tiny_zoo["models"]["splice"]
    data = IntervalSequences(promoters_bed, chr20_fasta, read_folder_info(folder).window)
    sequences = [data[i].sequence for i in range(4)]
    model = FolderModel(folder)
    forward = model.predict(sequences)
    assert forward["acceptor"].shape == (4, 200)
    with pytest.raises(ValueError, match="GENA-LM/splice: rc_average .* strand-specific"):
        model.configure(rc_average=True)  # splice sites belong to one strand
    assert model.options.rc_average is False  # a refused change leaves the options as they were
    with pytest.raises(ValueError, match="not offered"):
        FolderModel(tiny_zoo["models"]["promoter"], PredictOptions(rc_average=True))
    embedding = FolderModel(tiny_zoo["models"]["embedding"], PredictOptions(embedding_outputs=("pooled",)))
    plain = embedding.predict(sequences)["pooled"]
    reverse = embedding.predict([reverse_complement(s) for s in sequences])["pooled"]
    embedding.configure(rc_average=True)  # offered for embeddings: the pooled vectors of both strands, averaged
    np.testing.assert_allclose(embedding.predict(sequences)["pooled"], (plain + reverse) / 2, rtol=1e-4, atol=1e-6)
    model.configure(precision="bf16")
    np.testing.assert_allclose(model.predict(sequences)["donor"], forward["donor"], atol=0.05)
    with pytest.raises(ValueError, match="one length"):
        model.predict([sequences[0], sequences[1][:-1]])

    assert as_sequences(np.array([b"ACGT", "GG"], dtype=object)) == ["ACGT", "GG"]
    assert as_sequences({"seq": np.array(["AC"])}) == ["AC"]
    assert PredictOptions.build({"rc_average": "yes", "batch_size": "8"}).batch_size == 8
    environment_options = PredictOptions().with_environment({"GENALM_PRECISION": "bf16", "GENALM_RC_AVERAGE": "1"})
    assert (environment_options.precision, environment_options.rc_average) == ("bf16", True)
    with pytest.raises(ValueError, match="GENALM_PRECISION.*fp32 or bf16"):
        PredictOptions().with_environment({"GENALM_PRECISION": "fp8"})
    with pytest.raises(ValueError, match="unknown option"):
        PredictOptions.build({"temperature": 1})


def test_changed_weights_are_reported_and_recorded(tiny_zoo, tmp_path, caplog):
    from kipoi_genalm.adapter import FolderModel

    folder = tmp_path / "promoter"
    shutil.copytree(tiny_zoo["models"]["promoter"], folder)
    from safetensors.torch import load_file, save_file

    state = load_file(str(folder / "model.safetensors"))
    state["classifier.bias"] += 1
    save_file(state, str(folder / "model.safetensors"))
    model = FolderModel(folder)
    assert "weights were changed after export" in caplog.text
    record = model.provenance()
    assert record["weights_sha256"] == sha256_file(folder / "model.safetensors") != record["weights_sha256_at_export"]


@pytest.fixture(scope="module")
def kipoi_in_process(kipoi_imported):
    """kipoi imported in this process (safely: see conftest.kipoi_imported), with our writer patches applied."""
    from kipoi_genalm import kipoi_compat

    kipoi_compat.apply()
    return sys.modules["kipoi"]


def test_kipoi_writers_are_atomic_and_record_provenance(kipoi_in_process, tmp_path):
    import gc

    from kipoi import writers

    from kipoi_genalm import kipoi_compat, provenance

    writer = writers.get_writer(str(tmp_path / "a.tsv"))
    writer.batch_write({"preds": np.zeros((2, 1))})
    assert not (tmp_path / "a.tsv").exists()  # nothing appears under the final name before close()
    del writer  # a failed run drops its writer without close(): the temporary file goes with it
    gc.collect()
    assert os.listdir(tmp_path) == []

    key = provenance.register_model({"name": "GENA-LM/test", "weights_sha256": "abc"})
    writer = writers.get_writer(str(tmp_path / "b.h5"))
    provenance.note_prediction(key)
    writer.batch_write({"preds": {"x": np.ones((3, 2))}})
    writer.close()
    assert sorted(os.listdir(tmp_path)) == ["b.h5", "b.h5.provenance.json"]
    assert provenance.read_sidecar(tmp_path / "b.h5")["models"] == [{"name": "GENA-LM/test", "weights_sha256": "abc"}]
    with h5py.File(tmp_path / "b.h5") as handle:
        assert handle["preds/x"].shape == (3, 2) and "genalm_provenance" in handle.attrs

    compare = kipoi_compat.compare_outputs
    assert compare({"a": np.ones(2), "b": np.zeros(2)}, {"a": np.ones(2), "b": np.zeros(2)}, exact=False)
    with pytest.raises(AssertionError, match="output 'b'"):
        compare({"a": np.ones(2), "b": np.zeros(2)}, {"a": np.ones(2), "b": np.ones(2)}, exact=False, decimal=4)
    with pytest.raises(AssertionError, match="structure"):
        compare({"a": np.ones(2)}, {"a": np.ones(2), "b": np.ones(2)})


# ---- the repository root as a Kipoi model -----------------------------------------------------------------------
def test_repository_root_is_a_kipoi_model(tiny_zoo, tmp_path, promoters_bed, chr20_fasta):
    """`kipoi test .` on the root's model.yaml + dataloader.py, in a copy whose plugin/zoo/GENA-LM/promoter is the
    tiny model (the real bundled model is exported there by the release process); and on the repository itself
    once that model exists."""
    layout = tmp_path / "repo"
    (layout / "plugin" / "zoo" / "GENA-LM").mkdir(parents=True)
    for name in ("model.yaml", "dataloader.py"):
        shutil.copy(ROOT / name, layout / name)
    shutil.copytree(tiny_zoo["models"]["promoter"], layout / "plugin" / "zoo" / "GENA-LM" / "promoter")
    home = tmp_path / "home"
    home.mkdir()
    output = kipoi(["test", "."], home, layout)
    assert "All predictions match" in output and "Successfully ran test_predict" in output
    kipoi(["predict", ".", "--source", "dir", dataloader_args(promoters_bed, chr20_fasta), "-o", "root.tsv"], home,
          layout)
    assert len(pd.read_csv(layout / "root.tsv", sep="\t")) == n_intervals(promoters_bed)

    if (ROOT / "plugin" / "zoo" / "GENA-LM" / "promoter" / "model.yaml").is_file():
        output = kipoi(["test", "."], home, ROOT)
        assert "Successfully ran test_predict" in output


def test_embedding_inputs_of_any_length_through_kipoi_predict(registered_home, tiny_zoo, tmp_path, chr20_fasta):
    """GENA-LM/embedding takes any length: an input with more tokens than max_tokens (96 here) used to stop the run;
    now it is embedded whole (pooled, n_tokens), its per-token rows stay empty (never truncated), and a warning
    says so and how to get them. Short inputs in the same batch keep their per-token arrays."""
    intervals = tmp_path / "long.bed"
    intervals.write_text("chr20\t300000\t303000\tlong\t0\t+\nchr20\t400000\t400150\tshort\t0\t-\n")
    output = kipoi(["predict", "GENA-LM/embedding", dataloader_args(intervals, chr20_fasta), "-m", "-o", "e.h5"],
                   registered_home, tmp_path)
    assert "have more tokens than max_tokens=96" in output and "GENALM_MAX_TOKENS=" in output
    with h5py.File(tmp_path / "e.h5") as handle:
        preds = {key: handle[f"preds/{key}"][:] for key in handle["preds"]}
    assert np.isfinite(preds["pooled"]).all() and preds["n_tokens"][0] > 96 >= preds["n_tokens"][1]
    assert np.isnan(preds["token_embeddings"][0]).all() and (preds["token_spans"][0] == -1).all()
    assert np.isfinite(preds["token_embeddings"][1, : preds["n_tokens"][1]]).all()
    from kipoi_genalm.adapter import FolderModel, PredictOptions
    from genalm_models.genome import Genome

    whole = FolderModel(tiny_zoo["models"]["embedding"], PredictOptions(embedding_outputs=("pooled",)))
    np.testing.assert_allclose(preds["pooled"][0], whole.predict([Genome(chr20_fasta).fetch("20", 300000, 303000)])
                               ["pooled"][0], rtol=1e-4, atol=1e-6)
    warnings = json.loads((tmp_path / "e.h5.provenance.json").read_text())["warnings"]
    assert warnings["by_kind"] == {"tokens_over_max_tokens": 1}


def test_inputs_far_longer_than_a_segment_run_through_rmt(tiny_zoo, chr20_fasta):
    """16 kb and 100 kb inputs: the RMT models read them whole (many segments), nothing is truncated."""
    from genalm_models.genome import Genome
    from kipoi_genalm.adapter import FolderModel, PredictOptions

    genome = Genome(chr20_fasta)
    seqs = [genome.fetch("20", 300_000, 316_000), genome.fetch("20", 400_000, 500_000)]
    embedding = FolderModel(tiny_zoo["models"]["embedding"], PredictOptions(embedding_outputs=("pooled",)))
    pooled = embedding.predict(seqs)["pooled"]
    assert pooled.shape[0] == 2 and np.isfinite(pooled).all()
    promoter = FolderModel(tiny_zoo["models"]["promoter_rmt"], PredictOptions())
    probs = promoter.predict(seqs)
    assert probs.shape[0] == 2 and np.all((probs >= 0) & (probs <= 1))


def test_registrations_at_once_in_a_fresh_home_all_succeed(tmp_path):
    """(input faults, kind 13) four `genalm-kipoi register` started together in a HOME without ~/.kipoi: each one
    succeeds, and the result is one link and one seeded repository."""
    home = tmp_path / "home"
    home.mkdir()
    processes = [subprocess.Popen([GENALM_KIPOI, "register"], cwd=home, env=environment(home),
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(4)]
    outputs = [(p.wait(timeout=120), p.stdout.read()) for p in processes]
    assert all(code == 0 for code, _ in outputs), outputs
    assert sum("registered:" in out and "already" not in out for _, out in outputs) == 1, outputs
    assert (home / ".kipoi" / "models" / "GENA-LM").is_symlink()


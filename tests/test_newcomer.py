"""A newcomer's first hour (issue 14): the set-up works on a system Python (PEP 668) by making its own virtual
environment, torch's CPU build where there is no GPU, a wheel and true Kipoi dependency lists, `kipoi get-example`,
and no noise: a one-line corpus summary, a progress bar with a total, `genalm-kipoi` options with help and
defaults. (The quiet `git pull` is tested with the registration, in test_kipoi_plugin.py; the README's two commands
on a clean clone run in scripts/fresh_setup_check.sh, which CI runs.)
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "scripts"
BIN = Path(sys.executable).parent
KIPOI = str(BIN / "kipoi") if (BIN / "kipoi").exists() else shutil.which("kipoi")
GENALM_KIPOI = str(BIN / "genalm-kipoi") if (BIN / "genalm-kipoi").exists() else shutil.which("genalm-kipoi")
SYSTEM_PYTHON = Path("/usr/bin/python3")

sys.path.insert(0, str(SCRIPTS))
import choose_torch  # noqa: E402  (scripts/choose_torch.py: standard library only)

sys.path.remove(str(SCRIPTS))


# ---- 1. the environment install.sh installs into ----------------------------------------------------------------
def dry_run(env: dict, repo: Path) -> str:
    """`bash scripts/install.sh --dry-run` in `repo`, a copy of the scripts (with no .venv of an earlier install)."""
    (repo / "scripts").mkdir(parents=True, exist_ok=True)
    for name in ("install.sh", "choose_torch.py", "activate"):
        shutil.copy(SCRIPTS / name, repo / "scripts" / name)
    result = subprocess.run(["bash", str(repo / "scripts" / "install.sh"), "--dry-run"], cwd=repo, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def bare_env(tmp_path: Path, **extra: str) -> dict:
    """`env -i PATH=/usr/bin:/bin HOME=...` plus this machine's pip settings (how it reaches its index)."""
    env = {k: v for k, v in os.environ.items() if k.startswith("PIP_")}
    env.update(PATH="/usr/bin:/bin", HOME=str(tmp_path), LANG="C.UTF-8", **extra)
    return env


@pytest.mark.skipif(not SYSTEM_PYTHON.exists(), reason="no system /usr/bin/python3")
def test_install_makes_the_projects_venv_when_no_environment_is_active(tmp_path):
    repo = tmp_path / "repo"
    plan = dry_run(bare_env(tmp_path), repo)
    venv_python = f"{repo}/.venv/bin/python"
    assert "+ python3 -m venv --clear .venv" in plan
    assert f"environment: {repo}/.venv" in plan
    installs = [line for line in plan.splitlines() if " -m pip install" in line]
    assert installs and all(line.startswith(f"+ {venv_python} -m pip install") for line in installs), plan
    assert f"+ {repo}/.venv/bin/genalm-kipoi register --force" in plan


def test_a_python_that_has_torch_lends_it_to_the_venv(tmp_path):
    """A GPU image's Python with its own torch: the venv sees it (no second download of the CUDA build)."""
    plan = dry_run(bare_env(tmp_path, PYTHON=sys.executable), tmp_path / "repo")  # this Python has torch
    assert f"+ {sys.executable} -m venv --clear --system-site-packages .venv" in plan


@pytest.mark.skipif(not SYSTEM_PYTHON.exists(), reason="no system /usr/bin/python3")
def test_install_gets_python3_venv_with_apt_when_the_system_python_lacks_it(tmp_path):
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "ensurepip.py").write_text("raise ImportError('as on Debian without python3-venv')\n")
    plan = dry_run(bare_env(tmp_path, PYTHONPATH=str(blocker)), tmp_path / "repo")
    assert "+ apt-get install -y -qq python3-venv" in plan
    assert plan.index("python3-venv") < plan.index("-m venv --clear .venv")


@pytest.mark.parametrize("variable", ["VIRTUAL_ENV", "CONDA_PREFIX"])
def test_install_respects_an_active_environment(tmp_path, variable):
    prefix = tmp_path / "env"
    (prefix / "bin").mkdir(parents=True)
    python = prefix / "bin" / "python"  # an environment that already has torch: this one, by another name
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    python.chmod(0o755)
    env = dict(os.environ, **{variable: str(prefix)})
    env.pop("VIRTUAL_ENV" if variable == "CONDA_PREFIX" else "CONDA_PREFIX", None)
    plan = dry_run(env, tmp_path / "repo")
    assert f"environment: {prefix}" in plan and "-m venv" not in plan
    assert f"+ {prefix}/bin/python -m pip install -q -e .[test]" in plan
    assert "torch==" not in plan.replace("torch: torch", "")  # the installed torch is kept


def test_activate_puts_the_venv_on_path_and_leaves_an_active_environment_alone(tmp_path):
    (tmp_path / "scripts").mkdir()
    shutil.copy(SCRIPTS / "activate", tmp_path / "scripts" / "activate")
    bash = ["bash", "-c", ". scripts/activate && command -v python"]
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "CONDA_PREFIX")}
    missing = subprocess.run(bash, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert missing.returncode != 0 and "bash scripts/install.sh" in missing.stderr
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", ".venv"], cwd=tmp_path, check=True)
    found = subprocess.run(bash, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert found.returncode == 0 and found.stdout.strip() == str(tmp_path / ".venv" / "bin" / "python")
    active = subprocess.run(bash, cwd=tmp_path, env=dict(env, VIRTUAL_ENV="/elsewhere"), capture_output=True,
                            text=True)
    assert active.returncode == 0 and str(tmp_path) not in active.stdout


def test_the_readme_and_test_sh_use_the_environment_install_sh_made():
    readme = (ROOT / "README.md").read_text()
    setup = readme[readme.index("## Set-up"):]
    first = setup[setup.index("```bash") + len("```bash"):].split("```")[0].strip()
    assert first.startswith("bash scripts/install.sh && . scripts/activate && kipoi ")
    test_sh = (SCRIPTS / "test.sh").read_text()
    assert test_sh.index("bash scripts/install.sh") < test_sh.index(". scripts/activate") < \
        test_sh.index("python -m pytest")
    assert "scripts/fresh_setup_check.sh" in (ROOT / ".ci" / "run").read_text()
    assert "/.venv/" in (ROOT / ".gitignore").read_text().splitlines()


# ---- 2. torch: the CPU build where there is no GPU --------------------------------------------------------------
def test_torch_choice():
    cpu_index = choose_torch.CPU_INDEX
    assert choose_torch.decide("2.5.1+cu124", gpu=False, configured=None) == ([], "torch 2.5.1+cu124 is installed: kept")
    assert choose_torch.decide(None, gpu=True, configured=None)[0] == ["torch==2.13.0"]
    assert choose_torch.decide(None, gpu=False, configured="2.13.0+cpu")[0] == ["torch==2.13.0"]
    for configured in ("2.13.0", None):  # the registry's default (CUDA) build, or no answer
        assert choose_torch.decide(None, gpu=False, configured=configured)[0] == \
            ["torch==2.13.0", "--extra-index-url", cpu_index]
    # a torch setup.py does not accept would be replaced by pip with the newest default build: install 2.13.0
    assert choose_torch.decide("1.13.1", gpu=False, configured="2.13.0+cpu")[0] == ["torch==2.13.0"]
    assert choose_torch.has_nvidia_gpu({"GENALM_GPU": "1"}) and not choose_torch.has_nvidia_gpu({"GENALM_GPU": "0"})


def fake_torch_wheel(folder: Path, version: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    info = f"torch-{version}.dist-info"
    with zipfile.ZipFile(folder / f"torch-{version}-py3-none-any.whl", "w") as wheel:
        wheel.writestr("torch/__init__.py", "")
        wheel.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: torch\nVersion: {version}\n")
        wheel.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        wheel.writestr(f"{info}/RECORD", "")


@pytest.mark.parametrize("version, plain", [("2.13.0+cpu", True), ("2.13.0", False)])
def test_what_the_configured_index_serves_decides_the_cpu_index(tmp_path, monkeypatch, version, plain):
    """An index (here a wheel folder) that serves the CPU build is used as it is (offline mirrors); one that serves
    the default build gets PyTorch's CPU index added. Only the wheel's metadata is read (a dry run)."""
    fake_torch_wheel(tmp_path / "wheels", version)
    for name in [k for k in os.environ if k.startswith("PIP_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)  # no pip.conf: only the folder below
    configured = choose_torch.configured_torch(extra_args=["--no-index", "--find-links", str(tmp_path / "wheels")])
    assert configured == version
    args, _ = choose_torch.decide(None, gpu=False, configured=configured)
    assert (args == ["torch==2.13.0"]) is plain


# ---- 3. a wheel, and Kipoi dependency lists that are true -------------------------------------------------------
def test_pip_wheel_builds_with_the_bundled_zoo_and_the_requirements(tmp_path):
    from genalm_models.requirements import INSTALL_REQUIRES

    source = tmp_path / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    source.mkdir()
    for name in ("setup.py", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for name in ("genalm_models", "plugin"):
        shutil.copytree(ROOT / name, source / name, ignore=ignore)
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                             str(tmp_path / "dist"), str(source)], capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    wheel, = (tmp_path / "dist").glob("genalm_models-*-py3-none-any.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata = archive.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    tracked = subprocess.run(["git", "ls-files", "plugin/zoo"], cwd=ROOT, capture_output=True, text=True).stdout
    zoo = ["kipoi_genalm/" + path[len("plugin/"):] for path in tracked.split()]
    assert zoo and not [path for path in zoo if path not in names]
    assert "kipoi_genalm/zoo/GENA-LM/promoter/model.safetensors" in names and "genalm_models/export.py" in names
    requires = [line.split(": ", 1)[1] for line in metadata.splitlines() if line.startswith("Requires-Dist: ")
                and "extra ==" not in line]
    from packaging.requirements import Requirement

    def parsed(requirements):
        return sorted((Requirement(r).name, Requirement(r).specifier) for r in requirements)

    assert parsed(requires) == parsed(INSTALL_REQUIRES)


def model_yamls() -> list[Path]:
    return [ROOT / "model.yaml"] + sorted((ROOT / "plugin" / "zoo").rglob("model.yaml"))


def test_model_folders_list_installable_dependencies_and_say_how_to_get_the_code(tiny_zoo):
    from kipoi_genalm.zoo_export import dependencies_comment
    from genalm_models.requirements import KIPOI_DEPENDENCIES

    folders = model_yamls() + sorted(tiny_zoo["group"].rglob("model.yaml"))  # committed ones and fresh exports
    for path in folders:
        text = path.read_text()
        dependencies = yaml.safe_load(text)["dependencies"]
        assert dependencies == KIPOI_DEPENDENCIES, path
        assert "genalm-models" not in dependencies["pip"], path  # on no index: `kipoi env create` would fail
        assert "dependencies:\n" + dependencies_comment() in text, path


@pytest.mark.skipif(not (KIPOI and GENALM_KIPOI), reason="kipoi / genalm-kipoi commands not installed")
def test_kipoi_env_export_lists_only_packages_an_index_has(tmp_path, tiny_zoo):
    from genalm_models.requirements import INSTALL_REQUIRES

    env = dict(os.environ, HOME=str(tmp_path), GIT_CONFIG_GLOBAL="/dev/null", GIT_TERMINAL_PROMPT="0")
    subprocess.run([GENALM_KIPOI, "register", "--group-dir", str(tiny_zoo["group"])], env=env, check=True,
                   capture_output=True)
    result = subprocess.run([KIPOI, "env", "export", "GENA-LM/promoter", "-o", str(tmp_path / "env.yaml")],
                            env=env, cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    exported = yaml.safe_load((tmp_path / "env.yaml").read_text())["dependencies"]
    pip = next(item["pip"] for item in exported if isinstance(item, dict))
    assert "python>=3.10" in exported
    assert set(pip) <= set(INSTALL_REQUIRES) | {"kipoi"} and set(INSTALL_REQUIRES) <= set(pip)


# ---- 10. kipoi get-example writes the example files -------------------------------------------------------------
@pytest.mark.skipif(not (KIPOI and GENALM_KIPOI), reason="kipoi / genalm-kipoi commands not installed")
def test_kipoi_get_example_copies_the_example_files_and_they_predict(tmp_path, tiny_zoo):
    env = dict(os.environ, HOME=str(tmp_path / "home"), GIT_CONFIG_GLOBAL="/dev/null", GIT_TERMINAL_PROMPT="0",
               PYTHONWARNINGS="ignore")
    (tmp_path / "home").mkdir()
    subprocess.run([GENALM_KIPOI, "register", "--group-dir", str(tiny_zoo["group"])], env=env, check=True,
                   capture_output=True)
    result = subprocess.run([KIPOI, "get-example", "GENA-LM/promoter", "-o", "example"], env=env, cwd=tmp_path,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    kwargs = json.loads(result.stdout.strip().splitlines()[-1])
    folder = tiny_zoo["models"]["promoter"]
    for name in ("example.bed", "example.fa.gz", "example.fa.gz.fai", "example.fa.gz.gzi"):
        if (folder / name).exists():
            assert (tmp_path / "example" / name).read_bytes() == (folder / name).read_bytes(), name
    assert kwargs["intervals_file"] == "example/example.bed" and kwargs["fasta_file"] == "example/example.fa.gz"
    args = json.dumps({"intervals_file": kwargs["intervals_file"], "fasta_file": kwargs["fasta_file"]})
    predicted = subprocess.run([KIPOI, "predict", "GENA-LM/promoter", f"--dataloader_args={args}", "-o", "p.tsv"],
                               env=env, cwd=tmp_path, capture_output=True, text=True)
    assert predicted.returncode == 0, predicted.stderr[-2000:]
    rows = len((tmp_path / "p.tsv").read_text().splitlines()) - 1
    assert rows == sum(1 for line in (folder / "example.bed").read_text().splitlines() if line.strip())


# ---- 11. no noise -----------------------------------------------------------------------------------------------
def test_train_corpus_prints_one_line_and_keeps_the_manifest(tmp_path, chr20_fasta):
    out = tmp_path / "corpus"
    result = subprocess.run([sys.executable, "-m", "genalm_models.train", "corpus", "--fasta", str(chr20_fasta),
                             "--output-dir", str(out), "--passes", "1"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    manifest = json.loads((out / "manifest.json").read_text())
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1, result.stdout
    assert f"{manifest['documents']:,} documents" in lines[0] and str(out / "manifest.json") in lines[0]


def test_score_variants_progress_bar_has_a_total(tiny_zoo, chr20_fasta, tmp_path, capsys):
    from kipoi_genalm.cli import main
    from kipoi_genalm.veff_io import count_vcf_records

    vcf = ROOT / "tests" / "data" / "veff_test.vcf"
    records = sum(1 for line in vcf.read_text().splitlines() if line.strip() and not line.startswith("#"))
    assert count_vcf_records(vcf) == records
    code = main(["score-variants", str(tiny_zoo["models"]["promoter"]), "--vcf", str(vcf), "--fasta",
                 str(chr20_fasta), "-o", str(tmp_path / "out.vcf")])
    assert code == 0
    assert f"{records}/{records}" in capsys.readouterr().err  # tqdm: done/total (and with it the ETA)


def test_count_vcf_records_on_gzip_blank_lines_and_block_edges(tmp_path):
    import gzip

    from kipoi_genalm.veff_io import count_vcf_records

    text = "##fileformat=VCFv4.2\n#CHROM\tPOS\n\n20\t1\n\n\n20\t2\n20\t3"
    (tmp_path / "a.vcf").write_text(text)
    with gzip.open(tmp_path / "a.vcf.gz", "wt") as handle:
        handle.write(text)
    for block in (1, 2, 3, 7, 1 << 20):
        assert count_vcf_records(tmp_path / "a.vcf", block=block) == 3
        assert count_vcf_records(tmp_path / "a.vcf.gz", block=block) == 3


def test_every_genalm_kipoi_option_has_help_and_shows_its_default():
    from kipoi_genalm.cli import build_parser

    parser = build_parser()
    subcommands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    for name, sub in subcommands.items():
        text = " ".join(sub.format_help().split())
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help, f"genalm-kipoi {name} {action.option_strings or action.dest}: no help text"
            if action.option_strings and action.default not in (None, False):
                assert f"(default: {action.default})" in text or "default" in action.help, \
                    f"genalm-kipoi {name} {action.option_strings[0]}: default {action.default!r} not shown"

"""The training package end to end on a tiny model and the real chr20 slice: MLM, exact resume, DDP equivalence."""
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from safetensors.numpy import load_file

from genalm_models.pretrain.masking import MaskingConfig, mask_tokens, select_span_positions
from genalm_models.train.config import RunConfig, RunConfigError
from genalm_models.train.data import GlobalBatchSampler

REPO = Path(__file__).resolve().parents[1]
TRAIN = [sys.executable, "-m", "genalm_models.train"]


def run(args, **kw):
    env = dict(os.environ, GENALM_PROGRESS="0", OMP_NUM_THREADS="1")
    return subprocess.run(args, capture_output=True, text=True, env=env, cwd=kw.pop("cwd", REPO), **kw)


@pytest.fixture(scope="session")
def mlm_data(tmp_path_factory, chr20_fasta):
    """Tokenizer + corpus + packed samples built with the package's own commands."""
    root = tmp_path_factory.mktemp("mlm")
    out = run(TRAIN + ["tokenizer", "--fasta", str(chr20_fasta), "--out", str(root / "tok"), "--vocab-size", "300",
                       "--max-bp", "400000"])
    assert out.returncode == 0, out.stderr
    out = run(TRAIN + ["corpus", "--fasta", str(chr20_fasta), "--output-dir", str(root / "corpus"),
                       "--passes", "1", "--documents-per-shard", "4"])
    assert out.returncode == 0, out.stderr
    for name in ("packed", "packed_valid"):
        out = run(TRAIN + ["pack", "--corpus", str(root / "corpus"), "--tokenizer", str(root / "tok"),
                           "--out", str(root / name), "--max-tokens", "62"])
        assert out.returncode == 0, out.stderr
    return root


def write_config(root: Path, name: str, **train) -> Path:
    cfg = {
        "run_dir": str(root / name),
        "model": {"tokenizer": str(root / "tok"), "head": "mlm",
                  "config": {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
                             "intermediate_size": 64, "max_position_embeddings": 64}},
        "data": {"task": "mlm", "packed": str(root / "packed"), "valid_packed": str(root / "packed_valid")},
        "optim": {"lr": 1e-3, "warmup_steps": 5},
        "train": {"steps": 30, "micro_batch_size": 4, "log_every": 5, "eval_every": 15, "save_every": 10,
                  "max_eval_examples": 16, **train},
    }
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def final_weights(run_dir: Path) -> dict:
    latest = (run_dir / "checkpoints" / "latest").read_text().strip()
    return load_file(str(run_dir / "checkpoints" / latest / "model.safetensors"))


def assert_same_weights(a: dict, b: dict, atol: float) -> None:
    assert a.keys() == b.keys()
    worst = max(float(np.abs(a[k].astype(np.float64) - b[k]).max()) for k in a)
    assert worst <= atol, worst


# ---- masking -----------------------------------------------------------------------------------------------------
def test_masking_statistics_match_the_recipe():
    cfg = MaskingConfig()
    rng = np.random.default_rng(0)
    selected_frac, kinds, span_lengths = [], np.zeros(3), []
    for _ in range(400):
        ids = rng.integers(10, 300, size=500)
        inputs, labels = mask_tokens(ids, cfg, rng, mask_id=4, special_ids={0, 1, 2, 3, 4, 5}, vocab_size=300,
                                     first_regular_id=6)
        sel = labels != -100
        selected_frac.append(sel.mean())
        kinds += [(inputs[sel] == 4).sum(), ((inputs[sel] != 4) & (inputs[sel] != ids[sel])).sum(),
                  (inputs[sel] == ids[sel]).sum()]
        assert (labels[sel] == ids[sel]).all()
        assert (inputs[~sel] == ids[~sel]).all()
    assert abs(np.mean(selected_frac) - 0.15) < 0.005
    kinds /= kinds.sum()
    # 80/10/10 (a random replacement equal to the original counts as "kept": 1/294 of them)
    np.testing.assert_allclose(kinds, [0.8, 0.1, 0.1], atol=0.01)
    # spans: lengths 1..3 drawn with P ~ 1/n; measured on isolated spans in a long sequence at low density
    sparse = MaskingConfig(mlm_probability=0.02)
    for _ in range(300):
        sel = select_span_positions(2000, np.ones(2000, bool), sparse, rng)
        edges = np.diff(np.concatenate([[0], sel.astype(int), [0]]))
        span_lengths += list(np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1))
    counts = np.bincount(span_lengths, minlength=4)[1:4] / len(span_lengths)
    np.testing.assert_allclose(counts, np.array([6, 3, 2]) / 11, atol=0.04)


def test_special_tokens_are_never_masked():
    ids = np.array([1] + [7] * 100 + [5] * 20 + [2])
    rng = np.random.default_rng(1)
    for _ in range(50):
        inputs, labels = mask_tokens(ids, MaskingConfig(), rng, 4, {0, 1, 2, 3, 4, 5}, 300, 6)
        assert (labels[[0, -1]] == -100).all() and (labels[101:121] == -100).all()


def test_sampler_micro_batches_do_not_depend_on_world_size():
    one = GlobalBatchSampler(50, 3, world_size=1, rank=0, grad_accum=2, seed=3, start_step=0, steps=9)
    ranks = [GlobalBatchSampler(50, 3, world_size=2, rank=r, grad_accum=1, seed=3, start_step=0, steps=9)
             for r in range(2)]
    single = list(one)
    for step in range(9):
        assert single[2 * step] == ranks[0].micro_batch_refs(step, 0)
        assert single[2 * step + 1] == ranks[1].micro_batch_refs(step, 0)
    resumed = list(GlobalBatchSampler(50, 3, 1, 0, 2, 3, start_step=4, steps=9))
    assert resumed == single[8:]
    # every sample once per epoch
    seen = [r.index for batch in single for r in batch]
    assert sorted(seen[:50]) == list(range(50))


# ---- config errors -----------------------------------------------------------------------------------------------
def test_bad_configs_are_clear(tmp_path):
    with pytest.raises(RunConfigError, match="unknown key"):
        RunConfig.from_dict({"train": {"stepz": 3}})
    with pytest.raises(RunConfigError, match="precision"):
        RunConfig.from_dict({"train": {"precision": "fp8"}, "data": {"packed": "x"}, "model": {"tokenizer": "t"}})
    with pytest.raises(RunConfigError, match="expected"):
        RunConfig.from_dict({"train": {"steps": "many"}})
    bad = tmp_path / "c.yaml"
    bad.write_text("train:\n  steps: [1\n")
    with pytest.raises(RunConfigError, match="line"):
        RunConfig.load(bad)


# ---- end to end --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def pretrained(mlm_data) -> Path:
    """A tiny MLM backbone pretrained by the package (the starting point of the fine-tuning tests)."""
    cfg = write_config(mlm_data, "e2e", steps=20)
    out = run(TRAIN + ["pretrain", "--config", str(cfg)])
    assert out.returncode == 0, out.stderr
    return mlm_data / "e2e" / "checkpoints" / "step_0000019"


def test_pretrain_end_to_end_and_refuses_to_overwrite(mlm_data, pretrained):
    cfg = mlm_data / "e2e.yaml"
    run_dir = mlm_data / "e2e"
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    assert any("valid_mlm_loss" in line for line in lines)
    windows = [r for r in map(json.loads, lines) if "tokens_per_s" in r]
    assert windows and all(0.05 < r["peak_rss_gb"] < 64 for r in windows)  # this process's peak memory, GB
    # it learns: the training loss falls over the 20 steps (measured 5.68 -> 5.60) and the held-out loss ends below
    # the uniform guess over the 300-token vocabulary (ln 300 = 5.70) and below its value at step 15
    assert windows[-1]["train_loss"] < windows[0]["train_loss"] - 0.04, windows
    valid = [r["valid_mlm_loss"] for r in map(json.loads, lines) if "valid_mlm_loss" in r]
    assert len(valid) == 2 and valid[1] < valid[0] < np.log(300), valid
    assert (run_dir / "config.yaml").is_file()
    again = run(TRAIN + ["pretrain", "--config", str(cfg)])
    assert again.returncode == 2 and "--resume" in again.stderr


def test_kill_and_resume_gives_the_same_weights(mlm_data):
    reference = write_config(mlm_data, "uninterrupted", steps=60, save_every=7)
    assert run(TRAIN + ["pretrain", "--config", str(reference)]).returncode == 0
    killed = write_config(mlm_data, "killed", steps=60, save_every=7)
    env = dict(os.environ, GENALM_PROGRESS="0", OMP_NUM_THREADS="1")
    proc = subprocess.Popen(TRAIN + ["pretrain", "--config", str(killed)], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    latest = mlm_data / "killed" / "checkpoints" / "latest"
    deadline = time.time() + 120
    while not latest.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.01)
    time.sleep(0.15)  # somewhere in the middle of the following steps (maybe inside a checkpoint write)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    interrupted_at = latest.read_text().strip()
    assert interrupted_at != "step_0000059", "the run finished before it could be killed"
    out = run(TRAIN + ["pretrain", "--config", str(killed), "--resume"])
    assert out.returncode == 0, out.stderr
    assert "resumed from" in out.stdout
    assert_same_weights(final_weights(mlm_data / "killed"), final_weights(mlm_data / "uninterrupted"), atol=1e-6)
    # the metrics log has each step once
    steps = [yaml.safe_load(line)["step"] for line in (mlm_data / "killed" / "metrics.jsonl").read_text().splitlines()
             if "train_loss" in line]
    assert steps == sorted(set(steps))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_ddp_equals_one_process(mlm_data):
    single = write_config(mlm_data, "single", steps=12, grad_accum=2, dropout=False, eval_every=100)
    assert run(TRAIN + ["pretrain", "--config", str(single)]).returncode == 0
    double = write_config(mlm_data, "ddp", steps=12, grad_accum=1, dropout=False, eval_every=100)
    out = run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port",
               str(free_port()), "-m", "genalm_models.train", "pretrain", "--config", str(double)], timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "2 process(es)" in out.stdout
    assert_same_weights(final_weights(mlm_data / "ddp"), final_weights(mlm_data / "single"), atol=1e-5)


def test_two_node_rendezvous_on_localhost(mlm_data):
    cfg = write_config(mlm_data, "nodes", steps=4, grad_accum=1, dropout=False, eval_every=100)
    port = free_port()
    procs = []
    env = dict(os.environ, GENALM_PROGRESS="0", OMP_NUM_THREADS="1")
    for node in range(2):
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--node-rank", str(node),
             "--nproc-per-node", "1", "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{port}",
             "--rdzv-id", "genalm-test", "-m", "genalm_models.train", "pretrain", "--config", str(cfg)],
            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    assert any("2 process(es)" in o for o in outputs)
    assert (mlm_data / "nodes" / "checkpoints" / "latest").is_file()


def task_config(mlm_data: Path, name: str, task: str, args: dict, head: str, rmt: dict | None = None,
                **train) -> Path:
    cfg = {
        "run_dir": str(mlm_data / name),
        "model": {"init_from": str(mlm_data / "e2e" / "checkpoints" / "step_0000019"), "head": head, "rmt": rmt},
        "data": {"task": task, "args": args},
        "optim": {"lr": 1e-3, "warmup_steps": 2},
        "train": {"steps": 6, "micro_batch_size": 4, "log_every": 3, "eval_every": 6, "save_every": 6, **train},
    }
    path = mlm_data / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def promoter_args(chr20_fasta, promoters_bed) -> dict:
    return {"tss_bed": str(promoters_bed), "fasta": str(chr20_fasta), "upstream": 99, "downstream": 50,
            "split": {"valid": ["chr20:1000001-1400000"], "test": ["chr20:1420001-2000000"]}}


def test_finetune_promoter_and_evaluate(mlm_data, pretrained, chr20_fasta, promoters_bed):
    cfg = task_config(mlm_data, "promoter", "promoter", promoter_args(chr20_fasta, promoters_bed),
                      "sequence_classification")
    out = run(TRAIN + ["finetune", "--config", str(cfg)])
    assert out.returncode == 0, out.stderr
    assert "newly initialised" in out.stdout + out.stderr  # the classifier head starts fresh, and says so
    assert "valid_f1" in (mlm_data / "promoter" / "metrics.jsonl").read_text()
    model = mlm_data / "promoter" / "checkpoints" / "step_0000005"
    out = run(TRAIN + ["evaluate", "--model", str(model), "--config", str(cfg), "--split", "test",
                       "--bootstrap", "50", "--out", str(mlm_data / "promoter_test.json")])
    assert out.returncode == 0, out.stderr
    assert "roc_auc" in out.stdout and "95% CI" in out.stdout
    import json
    result = json.loads((mlm_data / "promoter_test.json").read_text())
    # 6 steps teach the tiny model little; the metric must still be the ROC-AUC of its own per-example outputs
    from sklearn.metrics import roc_auc_score

    rows = result["predictions"]
    assert result["n_examples"] == len(rows) > 10 and {r["label"] for r in rows} == {0, 1}
    expected = roc_auc_score([r["label"] for r in rows], [r["output"][1] for r in rows])
    assert result["metrics"]["roc_auc"] == pytest.approx(expected, abs=1e-9)
    low, high = result["ci95"]["roc_auc"]
    assert low <= result["metrics"]["roc_auc"] <= high


def test_rmt_token_task_finetune(mlm_data, pretrained, chr20_fasta, spliceai_table):
    args = {"table": str(spliceai_table), "fasta": str(chr20_fasta), "center": 300, "flank": 150,
            "exclude_paralogs_from": [],
            "split": {"valid": ["chr20:1000001-1400000"], "test": ["chr20:1420001-2000000"]}}
    cfg = task_config(mlm_data, "splice", "splice", args, "token_classification", rmt={"num_mem_tokens": 4},
                      max_eval_examples=40)
    out = run(TRAIN + ["rmt", "--config", str(cfg)])
    assert out.returncode == 0, out.stderr
    assert "RMT" in out.stdout
    log = (mlm_data / "splice" / "metrics.jsonl").read_text()
    assert "valid_token_pr_auc_mean" in log or "valid_pr_auc" in log, log


def test_rmt_mlm_pretraining_with_segment_curriculum(mlm_data, pretrained):
    out = run(TRAIN + ["pack", "--corpus", str(mlm_data / "corpus"), "--tokenizer", str(mlm_data / "tok"),
                       "--out", str(mlm_data / "packed_rmt"), "--max-tokens", "171"])
    assert out.returncode == 0, out.stderr
    cfg = yaml.safe_load(write_config(mlm_data, "rmt_mlm", steps=8, eval_every=8).read_text())
    cfg["model"] = {"init_from": str(mlm_data / "e2e" / "checkpoints" / "step_0000019"), "head": "mlm",
                    "rmt": {"num_mem_tokens": 4, "bptt_depth": 2}}
    cfg["data"].update(packed=str(mlm_data / "packed_rmt"), segment_curriculum=[[0, 1], [3, 2], [6, 3]],
                       random_segments_probability=0.5)
    path = mlm_data / "rmt_mlm.yaml"
    path.write_text(yaml.safe_dump(cfg))
    out = run(TRAIN + ["rmt", "--config", str(path)])
    assert out.returncode == 0, out.stderr
    saved = json.loads((mlm_data / "rmt_mlm" / "checkpoints" / "step_0000007" / "config.json").read_text())
    assert saved["rmt"]["num_mem_tokens"] == 4


SAMPLES = REPO.parent / "shared" / "data" / "samples"


@pytest.mark.skipif(not SAMPLES.is_dir(), reason="../shared/data/samples is not beside the repository")
def test_chromatin_and_enhancer_tasks_train_from_the_real_sample_files(mlm_data, pretrained):
    chromatin = task_config(mlm_data, "chromatin", "chromatin",
                            {"path": str(SAMPLES / "deepsea_test_100.csv.gz"), "crop": 150, "valid_fraction": 0.2,
                             "test_fraction": 0.2}, "sequence_classification", steps=3, precision="bf16")
    out = run(TRAIN + ["finetune", "--config", str(chromatin)])
    assert out.returncode == 0, out.stderr
    assert "valid_" in (mlm_data / "chromatin" / "metrics.jsonl").read_text()
    # DeepSTARR: 249 bp regression; RMT takes the full length whatever the token count; fp16 uses loss scaling
    enhancer = task_config(mlm_data, "enhancer", "enhancer",
                           {"fasta": str(SAMPLES / "deepstarr_test_10.fa"), "valid_fraction": 0.2,
                            "test_fraction": 0.2}, "sequence_classification", rmt={"num_mem_tokens": 2},
                           steps=3, micro_batch_size=2, precision="fp16")
    out = run(TRAIN + ["rmt", "--config", str(enhancer)])
    assert out.returncode == 0, out.stderr
    log = (mlm_data / "enhancer" / "metrics.jsonl").read_text()
    assert "pearson" in log, log


def test_regions_and_kmer_baseline_commands(mlm_data, chr20_fasta, promoters_bed):
    out = run(TRAIN + ["regions", "--fasta", str(chr20_fasta), "--valid", "chr20:1000001-1400000", "--test",
                       "chr20:1420001-2000000", "--out", str(mlm_data / "regions")])
    assert out.returncode == 0, out.stderr
    table = (mlm_data / "regions" / "regions.bed").read_text().split("\n")
    assert "20\t1400000\t1420000\tgap" in table or any("\tgap" in line for line in table)
    heldout = [line.split("\t") for line in (mlm_data / "regions" / "heldout.bed").read_text().splitlines()]
    assert heldout and all(int(start) >= 1000000 - 16000 for _, start, *_ in heldout)
    cfg = task_config(mlm_data, "baseline_cfg", "promoter", promoter_args(chr20_fasta, promoters_bed),
                      "sequence_classification")
    out = run(TRAIN + ["baseline", "--config", str(cfg), "--k-max", "3", "--bootstrap", "20",
                       "--out", str(mlm_data / "kmer.json"), "data.args.negatives=genomic"])
    assert out.returncode == 0, out.stderr
    result = json.loads((mlm_data / "kmer.json").read_text())
    # promoters against random genomic windows are separable by k-mer content (CpG): measured ROC-AUC 0.84 on the
    # 32 test windows of the slice
    assert result["model"].startswith("k-mer") and result["metrics"]["roc_auc"] > 0.75, result["metrics"]


# ---- damaged files name themselves (issue: input faults, kind 10) ----------------------------------------------------
def test_damaged_checkpoints_and_a_torn_log_line(mlm_data, pretrained, tmp_path):
    import shutil

    from genalm_models.checkpoint import CheckpointError, load_model

    folder = tmp_path / "damaged"
    shutil.copytree(pretrained, folder)
    weights = folder / "model.safetensors"
    for content in (weights.read_bytes()[:1000], b""):
        weights.write_bytes(content)
        with pytest.raises(CheckpointError, match=r"damaged/model\.safetensors: cannot be read as safetensors.*"
                                                   r"truncated or damaged"):
            load_model(folder)
    # the trainer state on --resume: a copy of the run with its last checkpoint's trainer state cut, and a torn
    # last line in metrics.jsonl (killed while writing)
    run_dir = tmp_path / "run"
    shutil.copytree(mlm_data / "e2e", run_dir)
    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())  # the saved config, moved with the run
    cfg["run_dir"] = str(run_dir)
    cfg["train"]["steps"] = 22
    for path in (run_dir / "config.yaml", tmp_path / "run.yaml"):
        path.write_text(yaml.safe_dump(cfg))
    with open(run_dir / "metrics.jsonl", "a") as handle:
        handle.write('{"step": 19, "loss": 1.2')  # torn
    last = run_dir / "checkpoints" / (run_dir / "checkpoints" / "latest").read_text().strip()
    state = last / "trainer.safetensors"
    intact = state.read_bytes()
    state.write_bytes(intact[:100])
    out = run(TRAIN + ["pretrain", "--config", str(tmp_path / "run.yaml"), "--resume"])
    assert out.returncode == 2 and "trainer.safetensors: cannot be read as safetensors" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr
    state.write_bytes(intact)
    out = run(TRAIN + ["pretrain", "--config", str(tmp_path / "run.yaml"), "--resume"])
    assert out.returncode == 0, out.stderr[-2000:]
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] >= 20


def test_a_pickle_with_objects_is_refused_without_suggesting_to_trust_it(tmp_path):
    import pickle

    from genalm_models.checkpoint import CheckpointError, read_state_dict

    import collections

    with open(tmp_path / "pytorch_model.bin", "wb") as handle:  # an object torch's safe loader does not allow
        pickle.dump({"bert.x": collections.Counter("acgt")}, handle)
    with pytest.raises(CheckpointError) as error:
        read_state_dict(tmp_path)
    message = str(error.value)
    assert "pytorch_model.bin" in message and "refused" in message
    assert "weights_only=False" not in message and "likely succeed" not in message


def test_configs_refuse_what_cannot_be_meant(tmp_path):
    """(input faults, kind 9) typos in nested sections, non-finite and out-of-range values are refused when the
    config is read; YAML 1.1 text numbers such as `1e-4` are read as numbers."""
    base = {"model": {"tokenizer": "tok", "config": {"hidden_size": 64}}, "data": {"packed": "p"}}

    def config(**changes):
        data = yaml.safe_load(yaml.safe_dump(base))
        for key, value in changes.items():
            section, name = key.split("__")
            data.setdefault(section, {})[name] = value
        return data

    with pytest.raises(RunConfigError, match=r"model\.config\.hiden_size.*did you mean hidden_size"):
        RunConfig.from_dict(config(model__config={"hiden_size": 64}))
    with pytest.raises(RunConfigError, match=r"model\.rmt\.num_mem_token\b.*did you mean num_mem_tokens"):
        RunConfig.from_dict(config(model__rmt={"num_mem_token": 5}))
    with pytest.raises(RunConfigError, match=r"optim\.lr must be a finite number"):
        RunConfig.from_dict(config(optim__lr=float("inf")))
    with pytest.raises(RunConfigError, match="mlm_probability"):
        RunConfig.from_dict(config(data__mlm_probability=2.0))
    with pytest.raises(RunConfigError, match=r"optim\.betas must be two numbers"):
        RunConfig.from_dict(config(optim__betas=[0.9]))
    path = tmp_path / "c.yaml"
    path.write_text("model: {tokenizer: tok}\ndata: {packed: p}\noptim: {lr: 1e-4}\n")
    assert RunConfig.load(path).optim.lr == 1e-4                # YAML 1.1 reads 1e-4 as the string '1e-4'
    assert RunConfig.load(path, ["optim.lr=3e-4"]).optim.lr == 3e-4   # the docstring's example


def test_a_non_finite_loss_stops_the_run_with_a_message(mlm_data):
    cfg = write_config(mlm_data, "diverged", steps=3)
    data = yaml.safe_load(cfg.read_text())
    data["optim"]["lr"] = 1e30   # finite, but the weights blow up at once
    data["optim"]["clip_grad_norm"] = None
    data["optim"]["warmup_steps"] = 0
    cfg.write_text(yaml.safe_dump(data))
    out = run(TRAIN + ["pretrain", "--config", str(cfg)])
    assert out.returncode == 2 and "the training loss is nan" in out.stderr.lower(), out.stderr[-2000:]
    assert "Traceback" not in out.stderr

"""MLM training throughput: tokens/s and the fraction of step time spent waiting for data, 1 process vs 2-process DDP.

    python bench/bench_training.py                       # zoo-size and base-size models, bf16 and fp32
    python bench/bench_training.py --quick               # zoo size, bf16 only (smoke run)

Everything goes through the real training command (`python -m genalm_models.train pretrain`, and `torchrun` for
DDP) on a packed corpus built here from real chr20 sequence (tests/data/chr20_2mb.fa.gz by default) with the
bundled zoo tokenizer. The global batch is the same in every row (16 x 510 tokens): one process with micro-batch
16, or two processes (gloo, one thread each) with micro-batch 8. tokens/s and the data-wait fraction are read from
the run's metrics.jsonl, leaving out the first logging window (warm-up), with the peak resident memory of all the
run's processes. On CPU a third row per bf16 model runs one process with `train.keep_freed_memory: true` (opt-in:
faster, but more memory). On a GPU machine the same runs use the GPU (NCCL for DDP when there are two GPUs).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SIZES = {
    "zoo": dict(hidden_size=192, num_hidden_layers=4, num_attention_heads=3, intermediate_size=768),
    "base": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072),
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(command: list[str], env: dict | None = None) -> None:
    out = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{out.stdout[-1500:]}\n{out.stderr[-3000:]}")


def build_data(work: Path, fasta: str, tokenizer: str) -> Path:
    packed = work / "packed"
    if not (packed / "packing.json").is_file():
        train = [sys.executable, "-m", "genalm_models.train"]
        run(train + ["corpus", "--fasta", fasta, "--output-dir", str(work / "corpus"), "--passes", "2",
                     "--overwrite"])
        run(train + ["pack", "--corpus", str(work / "corpus"), "--tokenizer", tokenizer, "--out", str(packed),
                     "--max-tokens", "510"])
    return packed


def train_rate(work: Path, packed: Path, tokenizer: str, size: str, precision: str, procs: int, steps: int,
               log_every: int, keep_freed_memory: bool = False) -> dict:
    name = f"{size}_{precision}_{procs}p{'_keep' if keep_freed_memory else ''}"
    run_dir = work / name
    shutil.rmtree(run_dir, ignore_errors=True)  # a fresh run every time
    config = {
        "run_dir": str(run_dir),
        "model": {"tokenizer": tokenizer, "head": "mlm",
                  "config": {**SIZES[size], "max_position_embeddings": 512, "pre_layer_norm": True}},
        "data": {"task": "mlm", "packed": str(packed)},
        "optim": {"lr": 1e-4, "warmup_steps": 2, "schedule": "linear"},
        "train": {"steps": steps, "micro_batch_size": 16 // procs, "grad_accum": 1, "precision": precision,
                  "seed": 0, "log_every": log_every, "eval_every": 10 ** 6, "save_every": 10 ** 6,
                  "keep_freed_memory": keep_freed_memory},
    }
    path = work / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    env = dict(os.environ, GENALM_PROGRESS="0")
    if procs == 1:
        run([sys.executable, "-m", "genalm_models.train", "pretrain", "--config", str(path)], env)
    else:
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 2) // procs))
        run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(procs), "--master-port",
             str(free_port()), "-m", "genalm_models.train", "pretrain", "--config", str(path)], env)
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    windows = [r for r in records if "tokens_per_s" in r][1:]  # the first window holds the warm-up
    if not windows:
        raise RuntimeError(f"{run_dir}: too few logged windows; raise --steps")
    return {"tokens_per_s": sum(r["tokens_per_s"] for r in windows) / len(windows),
            "data_wait": sum(r["data_wait_fraction"] for r in windows) / len(windows),
            "peak_rss_gb": max(r["peak_rss_gb"] for r in windows)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fasta", default=str(ROOT / "tests" / "data" / "chr20_2mb.fa.gz"))
    parser.add_argument("--tokenizer", default=str(ROOT / "plugin" / "zoo" / "GENA-LM" / "mlm"))
    parser.add_argument("--work-dir", help="keep the corpus and runs here (default: a temporary folder)")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()

    import torch

    from bench.hardware import describe

    print(describe())
    device = "cuda" if torch.cuda.is_available() else "cpu"
    rows = [("zoo", "bf16", 30, 10)]
    if not args.quick:
        rows += [("zoo", "fp32", 30, 10), ("base", "bf16", 6, 2), ("base", "fp32", 6, 2)]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work_dir or tmp)
        work.mkdir(parents=True, exist_ok=True)
        packed = build_data(work, args.fasta, args.tokenizer)
        print(f"data: {args.fasta} packed at 510 tokens with {args.tokenizer}; global batch 16 x 510 tokens\n")
        print("| model | precision | processes | tokens/s | vs 1 process | data-wait fraction | peak RSS GB "
              "(all processes) |")
        print("|---|---|---|---|---|---|---|")
        for size, precision, steps, log_every in rows:
            one = train_rate(work, packed, args.tokenizer, size, precision, 1, steps, log_every)
            runs = [("1", one), ("2 (DDP, gloo)", train_rate(work, packed, args.tokenizer, size, precision, 2,
                                                             steps, log_every))]
            if device == "cpu" and precision == "bf16":
                # the opt-in allocator setting: faster, at a memory cost (base fp32 would come near this
                # machine's 24 GiB, so bf16 only)
                runs.append(("1, keep_freed_memory", train_rate(work, packed, args.tokenizer, size, precision, 1,
                                                                 steps, log_every, keep_freed_memory=True)))
            for procs, r in runs:
                print(f"| {size} ({SIZES[size]['num_hidden_layers']} x {SIZES[size]['hidden_size']}) | {precision} | "
                      f"{procs} | {r['tokens_per_s']:,.0f} | {r['tokens_per_s'] / one['tokens_per_s']:.2f}x | "
                      f"{r['data_wait']:.4f} | {r['peak_rss_gb']:.1f} |", flush=True)


if __name__ == "__main__":
    main()

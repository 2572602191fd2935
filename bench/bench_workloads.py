"""Real workloads side by side in one run (issue 17): shared CPU, varied input lengths, zero-shot MLM scores.

    python bench/bench_workloads.py --quick -o bench_workloads.md     # < 3 min on a 2-core machine
    python bench/bench_workloads.py -o bench_workloads.md             # the issue's sizes (320 windows, 977 SNVs)

Run it without OMP_NUM_THREADS / GENALM_THREADS set (they would fix every row's thread count).

1. Shared CPU. The bundled GENA-LM/promoter on real chr20 EPDnew TSS windows (2 kb), fp32 and bf16, through
   `Predictor`: the plain modules (optimize=False) and the fast path, each with torch's default threads (all
   CPUs: the behaviour before cpu_threads.py) and with the automatic count (cpu_threads.ThreadPolicy), first with
   nothing started by the script ("idle": the load average says what else ran), then with a competing torch job
   started by the script (`a @ a` on 2048 x 2048 in a loop, default threads), killed afterwards. Columns:
   windows/s, and windows per CPU-second this process got (wall x cores it used: the throughput per available core).
2. Varied lengths. The fast path (automatic threads, batches of 4) on N real windows (every batch a token count not
   seen before, kernels built on the spot) and on one window repeated N times (one shape, warmed up); and the start-up cost of a new shape: the first call of a batch of
   a new token count minus a repeated call of it (oneDNN builds its kernels per shape), median over shapes.
3. MLM scores. The bundled GENA-LM/mlm on a saturation-mutagenesis VCF (every SNV of a stretch upstream of a real
   chr20 TSS; bench/make_saturation_vcf.py) in 1 kb centred windows: `score_variants` with the pseudo-likelihood
   (pll, llr_flank 32) and with the masked marginal; seconds, speed-up, Spearman correlation of the two llr columns.
Writes a markdown table (stdout and -o), with os.getloadavg() before each part.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.hardware import describe  # noqa: E402
from bench.make_saturation_vcf import write_saturation_vcf  # noqa: E402
from genalm_models.checkpoint import load_model  # noqa: E402
from genalm_models.cpu_threads import available_cpus  # noqa: E402
from genalm_models.genome import Genome, read_bed  # noqa: E402
from genalm_models.io_utils import write_text_atomic  # noqa: E402
from genalm_models.predict import Predictor  # noqa: E402
from genalm_models.tokenizer import GenaTokenizer  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
ZOO = ROOT / "plugin" / "zoo" / "GENA-LM"
COMPETITOR = "import torch; a = torch.randn(2048, 2048); [a @ a for _ in range(10 ** 6)]"


def load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def chr20_windows(fasta: Path, bed: Path, count: int, length: int = 2000) -> list[str]:
    """`count` real windows of `length` bp centred on chr20 EPDnew TSSs (BED names `chr20`, FASTA `20`)."""
    seqs = []
    with Genome(fasta) as genome:
        for interval in read_bed(bed):
            start = interval.five_prime - length // 2
            if start < 0:
                continue
            seq = genome.fetch("20", start, start + length, strand=interval.strand)
            if seq.count("N") < length // 10:
                seqs.append(seq)
            if len(seqs) == count:
                break
    return seqs


def timed(predictor: Predictor, seqs: list[str]) -> tuple[float, float]:
    """(seconds, CPU-seconds this process used) of one predict over `seqs`."""
    t0, c0 = time.perf_counter(), os.times()
    predictor.predict(seqs)
    c1 = os.times()
    return time.perf_counter() - t0, (c1.user + c1.system) - (c0.user + c0.system)


def predictor(model, tokenizer, precision: str, optimize: bool, threads: str) -> Predictor:
    os.environ["GENALM_THREADS"] = threads
    return Predictor(model, tokenizer, device="cpu", precision=precision, optimize=optimize)


def shared_cpu(model, tokenizer, seqs: list[str], precisions: list[str], lines: list[str]) -> dict:
    cpus = available_cpus()
    paths = [("plain modules", False, str(cpus)), ("plain modules", False, "auto"),
             ("fast path", True, str(cpus)), ("fast path", True, "auto")]
    results = {}
    lines += ["## 1. Shared CPU: GENA-LM/promoter, real chr20 2 kb TSS windows", "",
              f"{len(seqs)} windows; threads `{cpus}` = torch's default (all CPUs, the old behaviour), `auto` = "
              "cpu_threads.ThreadPolicy. Per CPU-s: windows per CPU-second this process got.", "",
              "| condition | load avg (1/5/15 min) | precision | path | threads | windows/s | per CPU-s | "
              "vs plain (same threads) |", "|---|---|---|---|---|---:|---:|---:|"]
    competitor = None
    try:
        for condition in ("idle", "competing torch job"):
            if condition != "idle":
                env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "GENALM_THREADS")}
                competitor = subprocess.Popen([sys.executable, "-c", COMPETITOR], env=env)
                time.sleep(3.0)  # let it start and the load average see it
            for precision in precisions:
                built = {key: predictor(model, tokenizer, precision, opt, threads)
                         for key in paths for (_, opt, threads) in [key]}
                for p in built.values():  # warm-up (weights packed, first shapes built) and >= 1 s of load history
                    p.predict(seqs[:4])
                for key, p in built.items():
                    seconds, cpu = timed(p, seqs)
                    results[(condition, precision, key[0], key[2])] = (len(seqs) / seconds, len(seqs) / max(cpu, 1e-9))
                for key in paths:
                    rate, per_cpu = results[(condition, precision, key[0], key[2])]
                    plain = results[(condition, precision, "plain modules", key[2])][0]
                    used = built[key].threads.threads
                    lines.append(f"| {condition} | {load()} | {precision} | {key[0]} | {key[2]} (used {used}) | "
                                 f"{rate:.3g} | {per_cpu:.3g} | {rate / plain:.2f}x |")
                print("\n".join(lines[-4:]), flush=True)
    finally:
        if competitor is not None:
            competitor.kill()
            competitor.wait()
        os.environ.pop("GENALM_THREADS", None)
    lines.append("")
    for precision in precisions:
        idle = results[("idle", precision, "fast path", "auto")]
        busy = results[("competing torch job", precision, "fast path", "auto")]
        plain = max(results[("competing torch job", precision, "plain modules", t)][0] for t in (str(cpus), "auto"))
        lines.append(f"- {precision}, competing job: fast path (auto) {busy[0]:.3g} windows/s = "
                     f"{busy[0] / plain:.2f}x the best plain-module row; per CPU-second {busy[1]:.3g} vs "
                     f"{idle[1]:.3g} idle ({idle[1] / busy[1]:.2f}x; goal <= 2x)")
    lines.append("")
    return results


def varied_lengths(model, tokenizer, seqs: list[str], precisions: list[str], lines: list[str]) -> None:
    lines += ["## 2. Varied lengths: real windows (a different token count in every batch) vs one shape", "",
              "| load avg | precision | real windows, tokens/s | one window repeated, tokens/s | ratio | "
              "new-shape start-up (median first - repeat call, batch 8) |", "|---|---|---:|---:|---:|---:|"]
    for precision in precisions:
        p = predictor(model, tokenizer, precision, True, "auto")
        counts = [len(e.ids) for e in p.encode(seqs, with_offsets=False)]
        # the repeated window: the one nearest the mean token count (attention grows with the square of it)
        typical = min(range(len(seqs)), key=lambda i: abs(counts[i] - np.mean(counts)))
        same = [seqs[typical]] * len(seqs)
        p.batch_size = 4  # several batches, each of its own token count
        p.predict(same[:4])  # warm-up on the repeated shape only: every batch of the real windows is a new shape
        varied_s, _ = timed(p, seqs)
        same_s, _ = timed(p, same)
        varied_rate = sum(counts) / varied_s
        same_rate = counts[typical] * len(seqs) / same_s
        # start-up of a new shape: batches of 8 cut to token counts not seen before in this process
        encoded = p.encode(seqs[:8], with_offsets=False)
        extra = []
        for width in range(min(counts) - 40, min(counts) - 40 - 4 * 7, -7):
            rows = [e.ids[:width] for e in encoded]
            t0 = time.perf_counter()
            p.run(rows)
            first = time.perf_counter() - t0
            t0 = time.perf_counter()
            p.run(rows)
            extra.append(first - (time.perf_counter() - t0))
        lines.append(f"| {load()} | {precision} | {varied_rate:.0f} ({min(counts)}-{max(counts)} tokens) | "
                     f"{same_rate:.0f} ({counts[typical]} tokens) | {same_rate / varied_rate:.2f}x | "
                     f"{1000 * statistics.median(extra):.0f} ms |")
        print(lines[-1], flush=True)
    os.environ.pop("GENALM_THREADS", None)
    lines.append("")


def mlm_scores(fasta: Path, bed: Path, upstream: int, seq_length: int, lines: list[str], workdir: Path) -> None:
    from scipy.stats import spearmanr

    from kipoi_genalm.veff import load_scoring_model, score_variants

    vcf = workdir / "saturation.vcf"
    n = write_saturation_vcf(fasta, bed, None, vcf, upstream=upstream, downstream=0)
    lines += ["## 3. Zero-shot MLM scores: GENA-LM/mlm, saturation mutagenesis upstream of a chr20 TSS", "",
              f"{n} SNVs, {seq_length} bp windows centred on each; fast path, automatic threads.", "",
              "| load avg | estimator | seconds | variants/s | speed-up | Spearman(llr, pll llr) |",
              "|---|---|---:|---:|---:|---:|"]
    values = {}
    seconds = {}
    scoring = load_scoring_model(str(ZOO / "mlm"))  # loaded once: the rows time the scoring, not the loading
    for estimator in ("pll", "masked-marginal"):
        t0 = time.perf_counter()
        result = score_variants(scoring, {"fasta_file": str(fasta)}, vcf, workdir / f"{estimator}.vcf",
                                seq_length=seq_length, progress=False, return_predictions=True,
                                mlm_estimator=estimator)
        seconds[estimator] = time.perf_counter() - t0
        frame = result.predictions["llr"]
        values[estimator] = frame[frame.columns[0]]
    pll = values["pll"]
    for estimator in ("pll", "masked-marginal"):
        joined = pll.to_frame("a").join(values[estimator].to_frame("b"), how="inner").dropna()
        rho = spearmanr(joined["a"], joined["b"]).statistic
        lines.append(f"| {load()} | {estimator} | {seconds[estimator]:.1f} | {n / seconds[estimator]:.2f} | "
                     f"{seconds['pll'] / seconds[estimator]:.1f}x | {rho:.3f} |")
    print("\n".join(lines[-2:]), flush=True)
    lines.append("")


def bert_base_like(model):
    """Random weights at bert-base shapes with the bundled model's vocabulary and head (seeded)."""
    from genalm_models.modeling_gena import build_model

    torch.manual_seed(0)
    config = model.config.__class__(**{**model.config.to_dict(), "hidden_size": 768, "num_hidden_layers": 12,
                                        "num_attention_heads": 12, "intermediate_size": 3072})
    return build_model(config, "sequence_classification").eval()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes: < 3 min on a 2-core machine")
    parser.add_argument("--fasta", type=Path, default=DATA / "genome" / "GRCh37_chr20.fa.gz")
    parser.add_argument("--bed", type=Path, default=DATA / "promoters" / "epdnew_hs006_GRCh37_chr20_tss.bed")
    parser.add_argument("--parts", default="1,2,3", help="which parts to run (comma list of 1, 2, 3)")
    parser.add_argument("--backbone", choices=("bundled", "base"), default="bundled",
                        help="parts 1-2: the bundled promoter model (4 x 192) or random weights at bert-base shapes "
                             "(12 x 768, the bundled tokenizer)")
    parser.add_argument("--windows", type=int, default=None, help="parts 1-2: windows (default 16 / 320)")
    parser.add_argument("-o", "--output", type=Path, default=None, help="markdown file to write")
    args = parser.parse_args(argv)
    for name in ("OMP_NUM_THREADS", "GENALM_THREADS"):
        if os.environ.pop(name, None) is not None:
            print(f"note: {name} ignored by this benchmark (each row sets its own thread count)", file=sys.stderr)
    parts = {int(p) for p in args.parts.split(",")}
    windows, precisions = (16, ["fp32", "bf16"]) if args.quick else (320, ["fp32", "bf16"])
    upstream, seq_length = (7, 1000) if args.quick else (325, 1000)  # 3 SNVs per base: 24 / 978 SNVs
    lines = [f"# Real workloads ({'--quick' if args.quick else 'full'}), {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
             "", "```", describe(), f"CPUs available to this process: {available_cpus()}; load average at start "
             f"{load()}", "```", ""]
    started = time.perf_counter()
    folder = ZOO / "promoter"
    model, _ = load_model(folder)
    tokenizer = GenaTokenizer.from_pretrained(folder)
    if args.backbone == "base":
        model = bert_base_like(model)
    seqs = chr20_windows(args.fasta, args.bed, args.windows or windows)
    lines.append(f"Model for parts 1-2: {'GENA-LM/promoter (4 x 192)' if args.backbone == 'bundled' else 'random weights at bert-base shapes (12 x 768, 3072 FFN)'}.")
    lines.append("")
    if 1 in parts:
        shared_cpu(model, tokenizer, seqs, precisions, lines)
    if 2 in parts:
        varied_lengths(model, tokenizer, seqs, precisions, lines)
    if 3 in parts:
        with tempfile.TemporaryDirectory() as tmp:
            mlm_scores(args.fasta, args.bed, upstream, seq_length, lines, Path(tmp))
    lines.append(f"Total {time.perf_counter() - started:.0f} s.")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.output is not None:
        write_text_atomic(args.output, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

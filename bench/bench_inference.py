"""Backbone inference speed on this machine, against the machine's own GEMM limit measured in the same run.

    python bench/bench_inference.py                 # bert-base size (12 x 768), 512 tokens, batch 8
    python bench/bench_inference.py --size large    # bert-large size
    python bench/bench_inference.py --quick         # a small model, for a smoke run

For each path: tokens/s, achieved GFLOP/s (model FLOPs per non-padding token x tokens/s), and that as a fraction of
the best bf16 / fp32 GEMM rate measured at the model's own matrix shapes (best of several runs). `eager fp32` is the
published code's way (explicit attention matrix, fp32); the speed-up column is relative to it. The bf16 rows also
report the relative error of the final hidden states against fp32 on the same input.
The GEMM limit and the models are measured in alternating rounds (best of the rounds for each), so a machine that
speeds up or slows down during the run moves both sides alike. One line before the table times the fast bf16 path
before `keep_freed_memory()` (what `Predictor` applies on CPU); everything else runs after it.
"""
from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.hardware import describe  # noqa: E402
from genalm_models.config import GenaConfig  # noqa: E402
from genalm_models.inference import keep_freed_memory, onednn_usable, optimize_for_inference  # noqa: E402
from genalm_models.modeling_gena import GenaForEmbedding, set_attention_implementation  # noqa: E402

SIZES = {
    "base": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072),
    "large": dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096),
    "quick": dict(hidden_size=256, num_hidden_layers=2, num_attention_heads=4, intermediate_size=1024),
}


def dense_shapes(cfg: GenaConfig) -> list[tuple[int, int]]:
    """(in, out) features of one layer's dense GEMMs: Q, K, V, O, FFN up, FFN down."""
    h, f = cfg.hidden_size, cfg.intermediate_size
    return [(h, h)] * 4 + [(h, f), (f, h)]


def layer_flops(cfg: GenaConfig, seq_len: int) -> tuple[float, float]:
    """Multiply-adds x 2 of one layer per token: (the dense layers, the two attention products)."""
    return 2.0 * sum(k * n for k, n in dense_shapes(cfg)), 2.0 * 2 * seq_len * cfg.hidden_size


def flops_per_token(cfg: GenaConfig, seq_len: int) -> float:
    """Multiply-adds x 2 of the encoder per token: the dense layers plus the two attention products."""
    return cfg.num_hidden_layers * sum(layer_flops(cfg, seq_len))


def best_time(fn, repeats: int) -> float:
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def gemm_rate(cfg: GenaConfig, batch: int, seq_len: int, dtype: torch.dtype, repeats: int) -> dict[str, float]:
    """The machine's GEMM rate at this model's own matrix shapes, best of `repeats` per shape.

    Returns FLOP/s for "dense" (Q, K, V, O, FFN up, FFN down on batch x seq_len rows), "attention" (the two
    attention products of every head, Q K^T and P V, as batched GEMMs over batch x heads) and "model": all of one
    layer's GEMMs in the proportion the model does them (total FLOPs / total best time), the limit the model's own
    FLOP count (dense + attention) is held against. Each dense shape is timed as a plain `torch.mm` and, where
    oneDNN is usable, as a oneDNN GEMM on a pre-packed weight; each attention product as `torch.bmm` over all heads
    of the batch and over one sequence's heads at a time (times the batch); the fastest counts, so the limit is the
    best this machine does at these shapes, not a handicapped one."""
    h = cfg.hidden_size
    rows = batch * seq_len
    flops = {"dense": 0.0, "attention": 0.0}
    seconds = {"dense": 0.0, "attention": 0.0}
    for k, n in dense_shapes(cfg):
        a = torch.randn(rows, k, dtype=dtype)
        b = torch.randn(k, n, dtype=dtype)
        best = best_time(lambda: torch.mm(a, b), repeats)
        if onednn_usable(torch.device("cpu"), dtype):
            packed = torch.ops.mkldnn._reorder_linear_weight(b.t().contiguous(), rows)
            best = min(best, best_time(
                lambda: torch.ops.mkldnn._linear_pointwise(a, packed, None, "none", [], ""), repeats))
        flops["dense"] += 2.0 * rows * k * n
        seconds["dense"] += best
    heads = cfg.num_attention_heads
    d = h // heads
    q = torch.randn(batch * heads, seq_len, d, dtype=dtype)
    k = torch.randn(batch * heads, seq_len, d, dtype=dtype)
    p = torch.randn(batch * heads, seq_len, seq_len, dtype=dtype)
    for left, right in [(q, k.transpose(1, 2)), (p, k)]:  # Q K^T, then P V (V has K's shape)
        best = best_time(lambda: torch.bmm(left, right), repeats)
        one_sequence = best_time(lambda: torch.bmm(left[:heads], right[:heads]), repeats) * batch
        flops["attention"] += 2.0 * left.shape[0] * left.shape[1] * left.shape[2] * right.shape[2]
        seconds["attention"] += min(best, one_sequence)
    rates = {part: flops[part] / seconds[part] for part in flops}
    rates["model"] = gemm_mix(cfg, seq_len, rates)
    return rates


def int8_dense_rate(cfg: GenaConfig, batch: int, seq_len: int, repeats: int) -> dict[str, float]:
    """FLOP/s of torch's dynamic int8 linear (fp32 activations quantized per call, int8 VNNI GEMM, per-channel int8
    weights) at the model's dense shapes, per quantized engine: what an int8 path could start from."""
    import warnings

    rows = batch * seq_len
    rates = {}
    for engine in ("x86", "onednn"):
        if engine not in torch.backends.quantized.supported_engines:
            continue
        torch.backends.quantized.engine = engine
        flops = seconds = 0.0
        for k, n in dense_shapes(cfg):
            a = torch.randn(rows, k)
            w = torch.randn(n, k)
            with warnings.catch_warnings():  # quantized tensor types are deprecated in torch; still there in 2.13
                warnings.simplefilter("ignore")
                qw = torch.quantize_per_channel(w, w.abs().amax(1) / 127, torch.zeros(n, dtype=torch.long), 0,
                                                torch.qint8)
            packed = torch.ops.quantized.linear_prepack(qw, torch.zeros(n))
            seconds += best_time(lambda: torch.ops.quantized.linear_dynamic(a, packed, False), repeats)
            flops += 2.0 * rows * k * n
        rates[engine] = flops / seconds
    return rates


def gemm_mix(cfg: GenaConfig, seq_len: int, rates: dict[str, float]) -> float:
    """The rate of the model's GEMM FLOPs done at these dense and attention rates, in the model's proportion."""
    dense, attention = layer_flops(cfg, seq_len)
    return (dense + attention) / (dense / rates["dense"] + attention / rates["attention"])


def forward(model, ids, mask, autocast_bf16: bool = False) -> tuple[float, torch.Tensor]:
    """Seconds for one forward pass, and the final hidden states in fp32."""
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast_bf16):
        t0 = time.perf_counter()
        hidden = model(ids, mask).hidden_states
        seconds = time.perf_counter() - t0
    return seconds, hidden.float()


def model_rate(model, ids, mask, repeats: int) -> float:
    """tokens/s, best of `repeats` forwards after a warm-up."""
    forward(model, ids, mask)
    return float(mask.sum()) / min(forward(model, ids, mask)[0] for _ in range(repeats))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=sorted(SIZES), default="base")
    parser.add_argument("--quick", action="store_true", help="small model and few repeats (smoke run)")
    parser.add_argument("--seq-len", type=int, default=512)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--fasta", default="../shared/data/genome/GRCh37_chr20.fa.gz",
                        help="for the bundled promoter model's bf16 tolerance on real windows ('' skips it)")
    parser.add_argument("--tss", default="../shared/data/promoters/epdnew_hs006_GRCh37_chr20_tss.bed")
    args = parser.parse_args()
    from genalm_models.process_settings import apply_process_settings

    # huge pages, bounded kernel caches: before the model is built (torch and oneDNN read them at first use)
    apply_process_settings("bench_inference", keep_freed_memory=False)
    size = "quick" if args.quick else args.size
    repeats = 2 if args.quick else args.repeats
    cfg = GenaConfig(vocab_size=32000, max_position_embeddings=max(512, args.seq_len), hidden_dropout_prob=0.0,
                     attention_probs_dropout_prob=0.0, **SIZES[size])
    torch.manual_seed(0)
    model = GenaForEmbedding(cfg).eval()
    ids = torch.randint(6, cfg.vocab_size, (args.batch, args.seq_len))
    mask = torch.ones_like(ids)
    per_token = flops_per_token(cfg, args.seq_len)

    print(describe())
    print(f"model: {size} ({cfg.num_hidden_layers} x {cfg.hidden_size}), {args.seq_len} tokens x batch {args.batch}, "
          f"{per_token / 1e9:.3f} GFLOP per token")
    # before the allocator setting: the fast path with glibc's default handling of large blocks (that setting is
    # process-wide and cannot be taken back, so this one row is not interleaved with the others)
    fast = optimize_for_inference(model, "bf16")
    default_alloc_tps = model_rate(fast, ids, mask, repeats)
    del fast
    print(f"fast bf16 before keep_freed_memory(): {default_alloc_tps:,.0f} tokens/s "
          f"({default_alloc_tps * per_token / 1e9:.1f} GFLOP/s, best of {repeats}); "
          f"keep_freed_memory() applied: {keep_freed_memory()}")

    eager = copy.deepcopy(model)
    set_attention_implementation(eager, "eager")
    set_attention_implementation(model, "sdpa")
    paths = [("eager fp32 (published way)", eager, False), ("sdpa fp32", model, False),
             ("sdpa bf16 autocast", model, True)]
    for name, precision, onednn in [("fast fp32 (fused QKV, packed oneDNN GEMMs + epilogues)", "fp32", None),
                                    ("fast bf16, plain GEMMs (bf16 weights, fused QKV)", "bf16", False),
                                    ("fast bf16 (bf16 weights, fused QKV, packed oneDNN + epilogues)", "bf16", None)]:
        paths.append((name, optimize_for_inference(model, precision, use_onednn=onednn), False))
    hidden = {name: forward(path, ids, mask, autocast)[1] for name, path, autocast in paths}  # also warms up
    reference = hidden[paths[0][0]]

    # rounds: every round measures the GEMM limit and times one forward of every path, so a machine that speeds up
    # or slows down during the run (shared hosts do) moves both sides alike; the best of the rounds counts for each
    dtypes = [("fp32", torch.float32), ("bf16", torch.bfloat16)]
    gemm = {name: {"dense": 0.0, "attention": 0.0} for name, _ in dtypes}
    seconds = {name: float("inf") for name, _, _ in paths}
    for _ in range(repeats):
        for name, dtype in dtypes:
            rates = gemm_rate(cfg, args.batch, args.seq_len, dtype, repeats=2)
            gemm[name] = {part: max(gemm[name][part], rates[part]) for part in ("dense", "attention")}
        for name, path, autocast in paths:
            seconds[name] = min(seconds[name], forward(path, ids, mask, autocast)[0])
    for rates in gemm.values():
        rates["model"] = gemm_mix(cfg, args.seq_len, rates)
    limits = {name: rates["model"] for name, rates in gemm.items()}
    print(f"GEMM rate at the model's shapes (best of {repeats} rounds x 2), GFLOP/s:")
    print("| dtype | dense layers | attention products | the model's mix (the limit) |\n|---|---|---|---|")
    for name, rates in gemm.items():
        print(f"| {name} | {rates['dense'] / 1e9:.1f} | {rates['attention'] / 1e9:.1f} | {rates['model'] / 1e9:.1f} |")

    try:
        int8 = int8_dense_rate(cfg, args.batch, args.seq_len, repeats)
        print("int8 dense GEMM (torch dynamic quantized linear), GFLOP/s: " + ", ".join(
            f"{engine} {rate / 1e9:.1f}" for engine, rate in int8.items())
            + f" (bf16 dense: {gemm['bf16']['dense'] / 1e9:.1f})")
    except (RuntimeError, AttributeError) as error:  # quantized ops missing from this torch build
        print(f"int8 dense GEMM: not available ({error})")

    tokens = float(mask.sum())
    eager_tps = tokens / seconds[paths[0][0]]
    print(f"\nmodels: best of {repeats} rounds")
    print("| path | tokens/s | GFLOP/s | % of bf16 GEMM (model mix) | % of bf16 dense GEMM | % of fp32 GEMM "
          "(model mix) | vs eager fp32 | rel. error vs fp32 |")
    print("|---|---|---|---|---|---|---|---|")
    for name, path, autocast in paths:
        tps = tokens / seconds[name]
        achieved = tps * per_token
        err = (hidden[name] - reference).norm() / reference.norm()
        print(f"| {name} | {tps:,.0f} | {achieved / 1e9:.1f} | {100 * achieved / limits['bf16']:.0f}% | "
              f"{100 * achieved / gemm['bf16']['dense']:.0f}% | "
              f"{100 * achieved / limits['fp32']:.0f}% | {tps / eager_tps:.2f}x | "
              f"{'' if name == paths[0][0] else f'{float(err):.2e}'} |")
    if args.fasta and not args.quick:
        print("\n" + bundled_promoter_tolerance(args.fasta, args.tss))


def bundled_promoter_tolerance(fasta: str, tss_bed: str, n: int = 400) -> str:
    """max |P_bf16 fast - P_fp32 plain| of the bundled GENA-LM/promoter on real chr20 windows (TSS-anchored
    windows of the first n/2 TSSs and the same windows shifted 5 kb)."""
    from genalm_models.checkpoint import load_model
    from genalm_models.genome import Genome, read_bed
    from genalm_models.predict import Predictor
    from genalm_models.tokenizer import GenaTokenizer

    folder = Path(__file__).resolve().parents[1] / "plugin" / "zoo" / "GENA-LM" / "promoter"
    model, _ = load_model(folder)
    tokenizer = GenaTokenizer.from_pretrained(folder)
    genome = Genome(fasta)
    seqs = []
    for interval in list(read_bed(tss_bed))[: n // 2]:
        for shift in (0, 5000):
            start = interval.start + shift - 1000
            seqs.append(genome.fetch(interval.chrom, start, start + 2000))
    plain = np.stack(Predictor(model, tokenizer, device="cpu", precision="fp32", optimize=False).predict(seqs))
    fast = np.stack(Predictor(model, tokenizer, device="cpu", precision="bf16").predict(seqs))
    fast32 = np.stack(Predictor(model, tokenizer, device="cpu", precision="fp32").predict(seqs))
    return (f"bundled GENA-LM/promoter on {len(seqs)} real chr20 2 kb windows: max |P(fast bf16) - P(plain fp32)| = "
            f"{np.abs(fast - plain).max():.4f} (tolerance 0.02); max |P(fast fp32) - P(plain fp32)| = "
            f"{np.abs(fast32 - plain).max():.1e}")


if __name__ == "__main__":
    main()

"""RMT on long inputs: peak memory and time per segment at 16 kb, 64 kb and 256 kb, beside full attention.

    python bench/bench_rmt.py --fasta ../shared/data/genome/GRCh37_chr20.fa.gz \
        --tokenizer ../shared/data/gena_lm_official/tokenizer_t2t
    python bench/bench_rmt.py --quick ...       # a small model, for a smoke run

The model is GENA-LM base size (12 x 768, the official 512 positions, m = 10 memory tokens, random weights: speed
and memory do not depend on the values) run through the fast inference copy in bf16 (`--precision fp32` for fp32).
Inputs are real chr20 sequence from 30 Mb on, tokenized with the given tokenizer (the official t2t one by
default). Each measurement runs in a fresh subprocess (bench/peak_memory.py), which resets the peak-RSS mark
(VmHWM) after a warm-up and reports the peak RSS above the resident baseline (weights, tokenizer and warm-up already
loaded), so the numbers are the memory the forward pass itself needs. Each input is run twice in its process:
the first call also pays oneDNN's one-off set-up of kernels for each new segment length (~3.5 MB per shape at
base size, cached for the life of the process; a long input's chunks have up to two lengths, 499 tokens has one),
the second call is the forward pass alone. Times come from the same probe run again with the allocator as users
get it (`keep_freed_memory`), since the memory probe's allocator setting makes every large block fault in anew.
The reference is the same RMT model on one segment (499 content tokens); "full attention" is the same encoder with
as many position embeddings as tokens (where time allows: `--full-max-bp`).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.peak_memory import forward_peak, run_probe  # noqa: E402

SIZES = {"base": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072),
         "quick": dict(hidden_size=128, num_hidden_layers=2, num_attention_heads=2, intermediate_size=512)}


def probe(args) -> dict:
    """One measurement, inside its own process: mode is 'rmt', 'full' or 'segment'."""
    import torch

    from genalm_models.config import GenaConfig, RMTConfig
    from genalm_models.genome import Genome
    from genalm_models.inference import keep_freed_memory, optimize_for_inference
    from genalm_models.modeling_gena import GenaForSequenceClassification
    from genalm_models.rmt import RMT
    from genalm_models.tokenizer import GenaTokenizer

    keep_freed_memory()  # as Predictor does; a no-op in the memory probe (its MALLOC_MMAP_THRESHOLD_ stays)
    tokenizer = GenaTokenizer.from_pretrained(args.tokenizer)
    seq = Genome(args.fasta).fetch(args.chrom, args.start, args.start + args.bp)
    ids = tokenizer.encode_batch([seq], add_special_tokens=False)[0]
    rmt_mode = args.mode in ("rmt", "rmt1")
    if args.mode == "rmt1":
        ids = ids[:499]  # exactly one RMT segment (512 positions - 10 memory - 3 special tokens)
    positions = 512 if args.mode != "full" else len(ids) + 2
    cfg = GenaConfig(vocab_size=tokenizer.vocab_size, max_position_embeddings=positions, hidden_dropout_prob=0.0,
                     attention_probs_dropout_prob=0.0, **SIZES[args.size])
    torch.manual_seed(0)
    model = GenaForSequenceClassification(cfg)
    if rmt_mode:
        model = RMT(model, RMTConfig(num_mem_tokens=10), cls_id=tokenizer.cls_id, sep_id=tokenizer.sep_id,
                    pad_id=tokenizer.pad_id)
    model = optimize_for_inference(model, args.precision, "cpu")
    if rmt_mode:
        content = torch.tensor([ids])
        n_segments = model.segments_needed(len(ids))
        call = lambda: model(content, torch.ones_like(content))  # noqa: E731
    else:
        if args.mode == "segment":
            ids = ids[:510]
        full = torch.tensor([[tokenizer.cls_id] + ids + [tokenizer.sep_id]])
        n_segments = 1
        call = lambda: model(full, torch.ones_like(full))  # noqa: E731
    with torch.inference_mode():
        if rmt_mode:  # warm-up on a tiny input: allocator and kernel set-up are part of the baseline
            model(content[:, :8], torch.ones_like(content[:, :8]))
        else:
            warm = torch.tensor([[tokenizer.cls_id] + ids[:8] + [tokenizer.sep_id]])
            model(warm, torch.ones_like(warm))
        first = forward_peak(call)   # includes oneDNN creating its kernels for this input's segment shapes
        again = forward_peak(call)   # the same input again: kernels cached, only the forward pass itself
    return {"tokens": len(ids), "segments": n_segments, "seconds": again["seconds"], "extra_mb": again["extra_mb"],
            "first_extra_mb": first["extra_mb"], "peak_mb": max(first["peak_mb"], again["peak_mb"])}


def measure(args, mode: str, bp: int) -> dict:
    """Memory from a probe with glibc's mmap threshold fixed low (the peak follows live tensors); seconds from a
    second probe with the allocator as users get it (keep_freed_memory, what Predictor applies)."""
    argv = [__file__, "--probe", mode, "--bp", str(bp), "--fasta", args.fasta, "--tokenizer", args.tokenizer,
            "--size", args.size, "--precision", args.precision, "--chrom", args.chrom, "--start", str(args.start)]
    memory = run_probe(argv)
    memory["seconds"] = run_probe(argv, fixed_malloc=False)["seconds"]
    return memory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fasta", default="../shared/data/genome/GRCh37_chr20.fa.gz")
    parser.add_argument("--tokenizer", default="../shared/data/gena_lm_official/tokenizer_t2t")
    parser.add_argument("--chrom", default="20")
    parser.add_argument("--start", type=int, default=30_000_000)
    parser.add_argument("--size", choices=sorted(SIZES), default="base")
    parser.add_argument("--quick", action="store_true", help="small model, 16 and 64 kb only")
    parser.add_argument("--precision", choices=["bf16", "fp32"], default="bf16")
    parser.add_argument("--full-max-bp", type=int, default=64_000, help="longest input tried with full attention")
    parser.add_argument("--probe", choices=["rmt", "rmt1", "full", "segment"], help=argparse.SUPPRESS)
    parser.add_argument("--bp", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe:
        print(json.dumps(probe(argparse.Namespace(**{**vars(args), "mode": args.probe}))))
        return
    if args.quick:
        args.size = "quick"
    lengths = [16_000, 64_000] if args.quick else [16_000, 64_000, 256_000]

    from bench.hardware import describe

    print(describe())
    print(f"model: {args.size} size, {args.precision}, fast inference path; RMT m=10 over 512-position segments; "
          f"tokenizer {args.tokenizer}")
    plain = measure(args, "segment", 8_000)
    single = measure(args, "rmt1", 8_000)
    print(f"\nplain encoder, 510 tokens: {plain['seconds']:.2f} s, forward pass +{plain['extra_mb']:.0f} MB above the "
          f"loaded model\nsingle RMT segment (499 tokens + memory): {single['seconds']:.2f} s, forward pass "
          f"+{single['extra_mb']:.0f} MB (first call +{single['first_extra_mb']:.0f} MB), process peak "
          f"{single['peak_mb']:.0f} MB\n")
    print("| input | tokens | segments | RMT forward MB (x single segment) | first call MB (x single segment) | "
          "RMT process peak MB (x single segment) | RMT s/segment | full attention forward MB | full attention s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for bp in lengths:
        rmt = measure(args, "rmt", bp)
        full = measure(args, "full", bp) if bp <= args.full_max_bp else None
        full_cells = (f"{full['extra_mb']:.0f} | {full['seconds']:.2f}" if full else "not run (quadratic time) | -")
        print(f"| {bp // 1000} kb | {rmt['tokens']:,} | {rmt['segments']} | {rmt['extra_mb']:.0f} "
              f"({rmt['extra_mb'] / single['extra_mb']:.2f}x) | {rmt['first_extra_mb']:.0f} "
              f"({rmt['first_extra_mb'] / single['first_extra_mb']:.2f}x) | {rmt['peak_mb']:.0f} "
              f"({rmt['peak_mb'] / single['peak_mb']:.2f}x) | {rmt['seconds'] / rmt['segments']:.3f} | "
              f"{full_cells} |", flush=True)


if __name__ == "__main__":
    main()

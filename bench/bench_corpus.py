"""Corpus building and tokenization speed over a whole chromosome (bp/s).

    python bench/bench_corpus.py --fasta ../shared/data/genome/GRCh37_chr20.fa.gz

Rows:
- corpus: `python -m genalm_models.train corpus` (one pass, both strands, jsonl.gz shards): input bp / wall s;
- tokenize: GenaTokenizer.encode_batch over the chromosome in 100 kb pieces, with the official t2t tokenizer
  (32k) and the bundled zoo tokenizer (4k): bp / s, tokens and bp per token;
- pack: `python -m genalm_models.train pack` of the corpus into 510-token samples (tokenizes both strands):
  corpus bp (as the manifest counts them) / wall s.
Commands run as users run them (subprocesses, start-up included).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def timed(command: list[str]) -> float:
    t0 = time.perf_counter()
    out = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{out.stderr[-3000:]}")
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fasta", default="../shared/data/genome/GRCh37_chr20.fa.gz")
    parser.add_argument("--contig", default="20")
    parser.add_argument("--tokenizers", nargs="+", default=["../shared/data/gena_lm_official/tokenizer_t2t",
                                                            str(ROOT / "plugin" / "zoo" / "GENA-LM" / "mlm")])
    parser.add_argument("--piece-bp", type=int, default=100_000)
    args = parser.parse_args()

    from bench.hardware import describe
    from genalm_models.genome import Genome
    from genalm_models.tokenizer import GenaTokenizer

    print(describe())
    genome = Genome(args.fasta)
    t0 = time.perf_counter()
    seq = genome.fetch(args.contig, 0, genome.contig_lengths[args.contig])
    read_s = time.perf_counter() - t0
    bp = len(seq)
    print(f"{args.fasta} contig {args.contig}: {bp:,} bp (read in {read_s:.1f} s)\n")
    print("| step | what | wall s | bp/s | notes |")
    print("|---|---|---|---|---|")
    train = [sys.executable, "-m", "genalm_models.train"]
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus"
        seconds = timed(train + ["corpus", "--fasta", args.fasta, "--contigs", args.contig, "--passes", "1",
                                 "--output-dir", str(corpus), "--output-format", "jsonl.gz"])
        manifest = json.loads((corpus / "manifest.json").read_text())
        print(f"| corpus | 1 pass, both strands, jsonl.gz | {seconds:.1f} | {bp / seconds / 1e6:.1f} M | "
              f"chromosome bp / s; writes {manifest['documents']:,} documents, {manifest['bp']:,} bp |", flush=True)
        pieces = [seq[i: i + args.piece_bp] for i in range(0, bp, args.piece_bp)]
        for path in args.tokenizers:
            tokenizer = GenaTokenizer.from_pretrained(path)
            t0 = time.perf_counter()
            ids = tokenizer.encode_batch(pieces, add_special_tokens=False)
            seconds = time.perf_counter() - t0
            n_tokens = sum(len(x) for x in ids)
            print(f"| tokenize | {Path(path).name} ({tokenizer.vocab_size:,} tokens) | {seconds:.1f} | "
                  f"{bp / seconds / 1e6:.1f} M | {n_tokens:,} tokens, {bp / n_tokens:.2f} bp/token |", flush=True)
        tokenizer_dir = args.tokenizers[-1]
        seconds = timed(train + ["pack", "--corpus", str(corpus), "--tokenizer", tokenizer_dir,
                                 "--out", str(Path(tmp) / "packed"), "--max-tokens", "510"])
        corpus_bp = manifest["bp"]
        print(f"| pack | corpus -> 510-token samples, {Path(tokenizer_dir).name} tokenizer | {seconds:.1f} | "
              f"{corpus_bp / seconds / 1e6:.1f} M | the corpus: {corpus_bp:,} bp (both strands, no N runs) |",
              flush=True)


if __name__ == "__main__":
    main()

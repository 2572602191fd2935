"""End to end: `kipoi predict GENA-LM/promoter` over 10,000 real chr20 intervals vs the model's own forward time.

    python bench/bench_end_to_end.py --fasta ../shared/data/genome/GRCh37_chr20.fa.gz

1. Writes a BED of `--n` real chr20 intervals (seeded random positions, windows with < 10% N; lengths vary from
   1 bp to 3 kb: the model's dataloader places its 2 kb TSS window on each).
2. Start-up: `kipoi predict` on the first interval alone (process start, imports, model and FASTA loading).
3. Total: `kipoi predict` on all intervals, as a user types it (TSV output).
4. Forward: in this process, the same model folder and options, the same sequences in the same kipoi batches
   (`--batch-size`), tokenized and length-batched by the same Predictor, timing only the model calls.
Prints the ratio (total - start-up) / forward (target <= 1.3) and intervals/s, for fp32 and bf16
(GENALM_PRECISION).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def write_intervals(path: Path, fasta: str, n: int, seed: int) -> None:
    from genalm_models.genome import Genome, find_chrom

    genome = Genome(fasta)
    contig = find_chrom("20", genome.contig_lengths)
    length = genome.contig_lengths[contig]
    rng = random.Random(seed)
    lines = []
    while len(lines) < n:
        width = rng.choice([1, 200, 1000, 2000, 3000])
        start = rng.randrange(5_000, length - 5_000 - width)
        window = genome.fetch(contig, max(0, start - 1000), start + 1000)
        if window.count("N") > 0.1 * len(window):
            continue
        lines.append(f"chr20\t{start}\t{start + width}\tr{len(lines)}\t0\t{rng.choice('+-')}\n")
    path.write_text("".join(lines))


def kipoi_predict(model: str, bed: Path, fasta: str, out: Path, batch_size: int, precision: str) -> float:
    args = json.dumps({"intervals_file": str(bed), "fasta_file": fasta})
    env = dict(os.environ, GENALM_PRECISION=precision, GENALM_PROGRESS="0")
    t0 = time.perf_counter()
    result = subprocess.run(["kipoi", "predict", model, f"--dataloader_args={args}", "-o", str(out),
                             "--batch_size", str(batch_size)], capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - t0
    if result.returncode != 0:
        raise RuntimeError(f"kipoi predict failed:\n{result.stderr[-3000:]}")
    return seconds


def forward_seconds(model: str, bed: Path, fasta: str, batch_size: int, precision: str) -> float:
    """The model calls alone, on the batches kipoi predict makes."""
    from kipoi_genalm.adapter import FolderModel, PredictOptions
    from kipoi_genalm.folder import read_folder_info
    from kipoi_genalm.sequences import IntervalSequences
    from kipoi_genalm.veff import find_model_folder

    folder = find_model_folder(model)
    folder_model = FolderModel(folder, PredictOptions(precision=precision))
    data = IntervalSequences(bed, fasta, read_folder_info(folder).window)
    predictor = folder_model.predictor
    total = 0.0
    for first in range(0, len(data), batch_size):
        seqs = [data[i].sequence for i in range(first, min(len(data), first + batch_size))]
        encoded = predictor.encode(seqs, with_offsets=predictor.token_level)
        for batch in predictor.batches(encoded):
            t0 = time.perf_counter()
            predictor.run([encoded[i].ids for i in batch])
            total += time.perf_counter() - t0
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fasta", default="../shared/data/genome/GRCh37_chr20.fa.gz")
    parser.add_argument("--model", default="GENA-LM/promoter")
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=32, help="kipoi predict --batch_size (kipoi's default)")
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    fasta = str(Path(args.fasta).resolve())

    from bench.hardware import describe

    print(describe())
    with tempfile.TemporaryDirectory() as tmp:
        bed, one = Path(tmp) / "intervals.bed", Path(tmp) / "one.bed"
        write_intervals(bed, fasta, args.n, args.seed)
        one.write_text(bed.read_text().splitlines(keepends=True)[0])
        print(f"{args.model}: {args.n:,} real chr20 intervals (widths 1 bp - 3 kb), kipoi batch {args.batch_size}\n")
        print("| precision | start-up s | total s | total - start-up s | model forward s | ratio | intervals/s "
              "(excl. start-up) |")
        print("|---|---|---|---|---|---|---|")
        for precision in args.precisions:
            startup = kipoi_predict(args.model, one, fasta, Path(tmp) / "one.tsv", args.batch_size, precision)
            total = kipoi_predict(args.model, bed, fasta, Path(tmp) / "all.tsv", args.batch_size, precision)
            rows = sum(1 for _ in open(Path(tmp) / "all.tsv")) - 1
            assert rows == args.n, f"kipoi wrote {rows} rows for {args.n} intervals"
            forward = forward_seconds(args.model, bed, fasta, args.batch_size, precision)
            work = total - startup
            print(f"| {precision} | {startup:.1f} | {total:.1f} | {work:.1f} | {forward:.1f} | {work / forward:.2f} | "
                  f"{args.n / work:,.0f} |", flush=True)


if __name__ == "__main__":
    main()

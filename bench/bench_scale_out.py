"""Scale-out of sharded score-variants and scan (kipoi_genalm.distributed): 1 vs 2 processes, and peak memory vs
input size.

    python bench/bench_scale_out.py --quick      # 6 small runs on the tests/data slice, one scan strand: ~2 min idle
    python bench/bench_scale_out.py      # the full measurement on chr20: 10k / 100k / 1M variants with
                                         # GENA-LM/promoter_300, 1 / 10 / 63 Mb x 2 strands with GENA-LM/splice
                                         # (per-base tracks): about 2 hours on 2 CPUs

Every run is what a user types: `python -m torch.distributed.run --standalone --nproc-per-node N -m
kipoi_genalm.cli score-variants|scan ...` in a fresh process, so model loading, planning (one pass over the VCF,
sha256 of the inputs), scoring and the merge (BGZF + tabix) are all in the wall time. Reported:
- variants/s (VCF records per second of wall time) and Mb/s (scanned bp per second) at 1 and 2 processes (at the
  smallest input size), and the scaling efficiency rate(2) / (2 x rate(1));
- peak memory: the largest resident set of any process of the run (ru_maxrss of the waited-for descendants, read
  in a fresh wrapper process per run), at each input size: it should not grow with the input (the chunk size, which
  sets the model calls, is the same at every size; each process scores its part as one shard, in one long call,
  unless --shards says otherwise). `--variant-procs` / `--scan-procs` give the processes per size
  (default: the 1M-variant run on 2 processes, so that each process scores 500k records - the table says how much
  input each process handled);
- the shard plan alone (the streaming pass over the whole VCF that every process makes) at 10k, 100k and 1M
  records: seconds and peak memory;
- `--parts growth`: one long plain score-variants run with the 2 kb promoter model (RSS at each tenth of the run);
- `--parts caches`: the kernel caches at the libraries' 1,024 entries vs the bound `genalm-kipoi` applies
  (`genalm_models.process_settings`), side by side, fp32 and bf16: a 4 Mb scan and 600 variants of the 2 kb
  promoter model, speed ratio and peak memory.
The VCF holds one SNV every few bases of the FASTA's non-N sequence (REF from the FASTA), written by this script;
scans read both strands (--quick: '+') of a region starting after the chromosome's leading N run. Results go to
stdout as a table and to --json.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.hardware import describe  # noqa: E402

ENV = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
SCAN = "scan"


def write_snv_vcf(fasta: str, path: Path, count: int, start: int, stride: int) -> tuple[str, int, int]:
    """`count` SNVs every `stride` bp from `start` on the FASTA's first contig (skipping N); returns (contig, first
    position, last position)."""
    from genalm_models.genome import Genome

    with Genome(fasta) as genome:
        contig = next(iter(genome.contig_lengths))
        length = genome.contig_lengths[contig]
        written, pos, first = 0, start, None
        block_start, block = -1, ""
        with open(path, "w") as out:
            out.write("##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n")
            while written < count:
                if pos >= length:
                    raise ValueError(f"{fasta}: {count} SNVs every {stride} bp do not fit on {contig}")
                if not block_start <= pos < block_start + len(block):
                    block_start, block = pos, genome.fetch(contig, pos, min(length, pos + 1_000_000)).upper()
                ref = block[pos - block_start]
                if ref in "ACGT":
                    alt = "ACGT"[("ACGT".index(ref) + 1) % 4]
                    out.write(f"{contig}\t{pos + 1}\tsnv{written}\t{ref}\t{alt}\t.\t.\t.\n")
                    first = pos + 1 if first is None else first
                    written += 1
                pos += stride
    return contig, first, pos - stride + 1


def _tree_rss_mb(pid: int) -> float:
    """The largest VmRSS (MB) among `pid` and its descendants (0 once they are gone)."""
    largest, pending = 0.0, [pid]
    while pending:
        current = pending.pop()
        try:
            for line in open(f"/proc/{current}/status"):
                if line.startswith("VmRSS:"):
                    largest = max(largest, int(line.split()[1]) / 1024)
            for task in os.listdir(f"/proc/{current}/task"):
                pending += [int(c) for c in open(f"/proc/{current}/task/{task}/children").read().split()]
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return largest


def measured(command: list[str], poll: float = 0.5, env: dict | None = None) -> dict:
    """Run `command` in a fresh wrapper process: wall seconds, the largest RSS of any of its processes (MB, from
    ru_maxrss of the waited-for descendants), and the RSS over time - the largest process's VmRSS sampled every
    `poll` s, reported at each tenth of the run (rss_deciles_mb: 10%, 20%, ... 100% of the wall time), so that a
    run whose memory rose with the records it scored shows it even when its peak came early."""
    wrapper = ("import json, resource, subprocess, sys, time; t = time.perf_counter(); "
               "r = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
               "print(json.dumps({'rc': r.returncode, 'seconds': time.perf_counter() - t, 'peak_mb': "
               "resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 'stderr': r.stderr[-2000:]}))")
    process = subprocess.Popen([sys.executable, "-c", wrapper, *command], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=env or ENV)
    samples = []
    while process.poll() is None:
        samples.append(_tree_rss_mb(process.pid))
        time.sleep(poll)
    stdout, _ = process.communicate()
    report = json.loads(stdout.strip().splitlines()[-1])
    if report["rc"] != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{report['stderr']}")
    samples = [value for value in samples if value > 0] or [0.0]
    report["rss_deciles_mb"] = [round(samples[min(len(samples) - 1, int(len(samples) * k / 10))]) for k in
                                range(1, 10)] + [round(samples[-1])]
    return report


def torchrun(nproc: int, *args: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
            "-m", "kipoi_genalm.cli", *args]


def bench_variants(args, work: Path) -> list[dict]:
    rows = []
    sizes = sorted(set(args.variants))
    procs = dict(zip(sizes, args.variant_procs))
    for size in sizes:
        vcf = work / f"snv_{size}.vcf"
        write_snv_vcf(args.fasta, vcf, size, args.start, args.stride)
        chunk = args.chunk_size   # the same at every size: model calls (and their memory) do not change with it
        for nproc in ([1, 2] if size == args.rate_variants else [procs.get(size, 1)]):
            shard_records = max(chunk, size // (args.shards or nproc))
            out = work / f"scored_{size}_{nproc}.vcf.gz"
            report = measured(torchrun(nproc, "score-variants", args.variant_model, "--vcf", str(vcf), "--fasta",
                                       args.fasta, "-o", str(out), "--no-progress", "--shard-records", str(shard_records),
                                       "--chunk-size", str(chunk), "--scores", "diff"))
            rows.append({"what": "score-variants", "model": args.variant_model, "input": f"{size} variants",
                         "per_process": f"{size // nproc} variants", "size": size, "processes": nproc,
                         "seconds": round(report["seconds"], 2), "rate": round(size / report["seconds"], 2),
                         "unit": "variants/s", "peak_mb": round(report["peak_mb"], 1),
                         "rss_deciles_mb": report["rss_deciles_mb"]})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def bench_scan(args, work: Path) -> list[dict]:
    from genalm_models.genome import Genome

    rows = []
    with Genome(args.fasta) as genome:
        contig, length = next(iter(genome.contig_lengths.items()))
    procs = dict(zip(sorted(set(args.scan_mb)), args.scan_procs))
    for mb in sorted(set(args.scan_mb)):
        bp = int(mb * 1_000_000)
        start = args.start
        end = min(length, start + bp)
        for nproc in ([1, 2] if mb == args.rate_mb else [procs.get(mb, 1)]):
            seconds, peak, deciles = 0.0, 0.0, []
            for strand in args.strands:
                out = work / f"scan_{mb}_{nproc}_{'plus' if strand == '+' else 'minus'}.bedGraph"
                report = measured(torchrun(nproc, "scan", args.scan_model, "--fasta", args.fasta, "--region",
                                           f"{contig}:{start + 1}-{end}", "--strand", strand, "--step",
                                           str(args.step), "-o", str(out), "--no-progress", "--shard-bp",
                                           str(max(1, (end - start) // (args.shards or nproc)))))
                seconds += report["seconds"]
                peak = max(peak, report["peak_mb"])
                deciles.append(report["rss_deciles_mb"])
            rows.append({"what": SCAN, "model": args.scan_model,
                         "input": f"{(end - start) / 1e6:g} Mb x {len(args.strands)} strand(s)",
                         "per_process": f"{(end - start) / 1e6 / nproc:g} Mb",
                         "size": end - start, "processes": nproc, "seconds": round(seconds, 2),
                         "rate": round(len(args.strands) * (end - start) / 1e6 / seconds, 4),
                         "unit": "Mb/s (strand-Mb)", "peak_mb": round(peak, 1), "rss_deciles_mb": deciles[-1]})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def bench_growth(args, work: Path) -> list[dict]:
    """One long single-process run of plain `genalm-kipoi score-variants` (no torchrun) with `--growth-model`
    (default the 2 kb GENA-LM/promoter: its windows give many different token counts, the case where the heap grew
    with every chunk): RSS at each tenth of the run."""
    vcf = work / f"growth_{args.growth_records}.vcf"
    write_snv_vcf(args.fasta, vcf, args.growth_records, args.start, args.stride)
    report = measured([sys.executable, "-m", "kipoi_genalm.cli", "score-variants", args.growth_model, "--vcf",
                       str(vcf), "--fasta", args.fasta, "-o", str(work / "growth.vcf.gz"), "--no-progress",
                       "--chunk-size", str(args.growth_chunk), "--scores", "diff"])
    row = {"what": "score-variants (1 process, no torchrun)", "model": args.growth_model,
           "input": f"{args.growth_records} variants", "per_process": f"{args.growth_records} variants",
           "size": args.growth_records, "processes": 1, "seconds": round(report["seconds"], 2),
           "rate": round(args.growth_records / report["seconds"], 2), "unit": "variants/s",
           "peak_mb": round(report["peak_mb"], 1), "rss_deciles_mb": report["rss_deciles_mb"]}
    print(json.dumps(row), flush=True)
    return [row]


def bench_caches(args, work: Path) -> list[dict]:
    """The kernel caches side by side (genalm_models.process_settings.bound_kernel_caches): the same plain
    single-process runs with oneDNN's and ideep's caches at the libraries' 1,024 entries (set as a user would set
    them) and at the bound `genalm-kipoi` applies, in fp32 and bf16 - a '+' strand scan of --caches-mb Mb with
    --scan-model and a score-variants run of --caches-records records with --growth-model (many token counts: a
    kernel per new shape). Each pair runs back to back; the ratio is bounded / 1,024 (speed) and the peaks."""
    from genalm_models.genome import Genome
    from genalm_models.process_settings import KERNEL_CACHE_ENTRIES, KERNEL_CACHE_VARIABLES

    with Genome(args.fasta) as genome:
        contig, length = next(iter(genome.contig_lengths.items()))
    end = min(length, args.start + int(args.caches_mb * 1_000_000))
    vcf = work / f"caches_{args.caches_records}.vcf"
    write_snv_vcf(args.fasta, vcf, args.caches_records, args.start, args.stride)
    runs = [("scan", args.scan_model, f"{(end - args.start) / 1e6:g} Mb x 1 strand", (end - args.start) / 1e6,
             "Mb/s", ["scan", args.scan_model, "--fasta", args.fasta, "--region", f"{contig}:{args.start + 1}-{end}",
                      "--strand", "+", "--step", str(args.step), "--no-progress"]),
            ("score-variants", args.growth_model, f"{args.caches_records} variants", args.caches_records,
             "variants/s", ["score-variants", args.growth_model, "--vcf", str(vcf), "--fasta", args.fasta,
                            "--no-progress", "--chunk-size", str(args.growth_chunk), "--scores", "diff"])]
    rows = []
    for precision in ("fp32", "bf16"):
        for what, model, label, size, unit, command in runs:
            by_entries = {}
            for entries in (1024, KERNEL_CACHE_ENTRIES):
                env = dict(ENV, **{name: str(entries) for name in KERNEL_CACHE_VARIABLES})
                suffix = ".bedGraph" if what == "scan" else ".vcf.gz"
                report = measured([sys.executable, "-m", "kipoi_genalm.cli", *command, "--precision", precision,
                                   "-o", str(work / f"caches_{what}_{precision}_{entries}{suffix}")], env=env)
                row = {"what": f"{what} {precision}, kernel caches {entries}", "model": model, "input": label,
                       "per_process": label, "size": size, "processes": 1, "seconds": round(report["seconds"], 2),
                       "rate": round(size / report["seconds"], 4), "unit": unit,
                       "peak_mb": round(report["peak_mb"], 1), "rss_deciles_mb": report["rss_deciles_mb"],
                       "kernel_cache_entries": entries, "precision": precision}
                by_entries[entries] = row
                rows.append(row)
                print(json.dumps(row), flush=True)
            bounded, unbounded = by_entries[KERNEL_CACHE_ENTRIES], by_entries[1024]
            print(f"{what} {precision}: kernel caches {KERNEL_CACHE_ENTRIES} vs 1024: speed "
                  f"x{bounded['rate'] / unbounded['rate']:.2f}, peak {bounded['peak_mb']:.0f} vs "
                  f"{unbounded['peak_mb']:.0f} MB", flush=True)
    return rows


PLAN_PROBE = """
import json, resource, sys, time
from kipoi_genalm.distributed import plan_variant_shards
t = time.perf_counter()
shards, ordered = plan_variant_shards(sys.argv[1], None, 1000, 10000)
print(json.dumps({"seconds": time.perf_counter() - t, "shards": len(shards),
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def bench_plan(args, work: Path) -> list[dict]:
    """The shard plan alone (the one pass over the whole VCF every process makes): seconds and peak memory."""
    rows = []
    for size in sorted(set(args.plan_variants)):
        vcf = work / f"plan_{size}.vcf"
        write_snv_vcf(args.fasta, vcf, size, args.start, args.stride)
        result = subprocess.run([sys.executable, "-c", PLAN_PROBE, str(vcf)], capture_output=True, text=True,
                                env=ENV, check=True)
        report = json.loads(result.stdout.strip().splitlines()[-1])
        rows.append({"what": "shard plan", "input": f"{size} variants", "size": size, "processes": 1,
                     "seconds": round(report["seconds"], 2), "rate": round(size / report["seconds"], 1),
                     "unit": "variants/s", "peak_mb": round(report["peak_mb"], 1)})
        print(json.dumps(rows[-1]), flush=True)
        vcf.unlink()
    return rows


def efficiency(rows: list[dict]) -> list[str]:
    lines = []
    for what in ("score-variants", SCAN):
        by = {(r["size"], r["processes"]): r["rate"] for r in rows if r["what"] == what}
        for (size, nproc), rate in by.items():
            if nproc == 2 and (size, 1) in by:
                lines.append(f"{what} at {size}: 2 processes {rate} vs 1 process {by[(size, 1)]} -> scaling "
                             f"efficiency {rate / (2 * by[(size, 1)]):.2f} (wall time includes each process's "
                             "start-up and model load, and the merge)")
    return lines


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes on the tests/data chr20 slice (< 3 min)")
    parser.add_argument("--variant-model", default="GENA-LM/promoter_300", help="model of score-variants")
    parser.add_argument("--scan-model", default="GENA-LM/splice",
                        help="model of scan (default: per-base tracks, the largest output)")
    parser.add_argument("--variant-procs", default="1,1,2", help="processes per VCF size (in size order)")
    parser.add_argument("--scan-procs", default="1,1,1", help="processes per scan length (in size order)")
    parser.add_argument("--fasta", default=None, help="default: tests/data/chr20_2mb.fa.gz (quick) or "
                                                      "../shared/data/genome/GRCh37_chr20.fa.gz")
    parser.add_argument("--variants", default="10000,100000,1000000", help="VCF sizes (records)")
    parser.add_argument("--plan-variants", default="10000,100000,1000000", help="VCF sizes for the plan alone")
    parser.add_argument("--scan-mb", default="1,10,63", help="scan lengths (Mb; capped at the contig's end)")
    parser.add_argument("--start", type=int, default=60_000,
                        help="0-based start of the VCF and scans (after the N run)")
    parser.add_argument("--stride", type=int, default=3, help="bp between SNVs")
    parser.add_argument("--step", type=int, default=50, help="scan bin (bp)")
    parser.add_argument("--shards", type=int, default=0,
                        help="shards per input (about); 0: one per process, so that each process scores its part "
                             "in one long call (the case where memory could grow with the input)")
    parser.add_argument("--chunk-size", type=int, default=1000, help="score-variants --chunk-size (records)")
    parser.add_argument("--strands", default="+-", help="scan strands: + - or +- (both, as whole-genome tracks)")
    parser.add_argument("--json", default=None, help="also write the results here")
    parser.add_argument("--parts", default="plan,variants,scan,growth,caches",
                        help="which measurements to run (comma list of plan, variants, scan, growth, caches)")
    parser.add_argument("--growth-model", default="GENA-LM/promoter", help="model of the growth run")
    parser.add_argument("--growth-records", type=int, default=6000, help="VCF records of the growth run")
    parser.add_argument("--growth-chunk", type=int, default=500, help="--chunk-size of the growth run")
    parser.add_argument("--caches-mb", type=float, default=4.0, help="scan length of the kernel-cache comparison")
    parser.add_argument("--caches-records", type=int, default=600,
                        help="VCF records of the kernel-cache comparison (with --growth-model)")
    args = parser.parse_args(argv)
    if args.quick:
        args.variants, args.scan_mb, args.chunk_size, args.strands = "40,160", "0.002,0.008", 10, "+"
        args.plan_variants, args.variant_procs, args.scan_procs = "10000,100000", "1,1", "1,1"
        args.growth_records, args.growth_chunk = 200, 50
        args.caches_mb, args.caches_records = 0.008, 100
        args.variant_model = args.scan_model = "GENA-LM/promoter"
        args.fasta = args.fasta or str(ROOT / "tests" / "data" / "chr20_2mb.fa.gz")
    args.fasta = args.fasta or str(ROOT.parent / "shared" / "data" / "genome" / "GRCh37_chr20.fa.gz")
    args.variants = [int(v) for v in args.variants.split(",")]
    args.scan_mb = [float(v) for v in args.scan_mb.split(",")]
    args.plan_variants = [int(v) for v in args.plan_variants.split(",")]
    args.variant_procs = [int(v) for v in args.variant_procs.split(",")]
    args.scan_procs = [int(v) for v in args.scan_procs.split(",")]
    for name, sizes, procs in (("--variant-procs", args.variants, args.variant_procs),
                               ("--scan-procs", args.scan_mb, args.scan_procs)):
        if len(procs) != len(set(sizes)) or min(procs) < 1:
            parser.error(f"{name}: one process count >= 1 per size ({len(set(sizes))}), got {procs}")
    args.rate_variants, args.rate_mb = min(args.variants), min(args.scan_mb)   # 1 vs 2 processes: the cheapest
    hardware = describe()
    print(hardware, flush=True)
    started = time.perf_counter()
    load = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench_scale_out_") as folder:
        parts = {"plan": bench_plan, "variants": bench_variants, "scan": bench_scan, "growth": bench_growth,
                 "caches": bench_caches}
        chosen = args.parts.split(",")
        unknown = sorted(set(chosen) - set(parts))
        if unknown:
            parser.error(f"--parts: unknown {', '.join(unknown)}; known: {', '.join(parts)}")
        rows = [row for name in chosen for row in parts[name](args, Path(folder))]
    summary = efficiency(rows)
    print(f"\n{'what':34} {'input':>20} {'procs':>5} {'per process':>16} {'seconds':>8} {'rate':>10} {'unit':18} "
          f"{'peak MB':>8}  RSS MB at each tenth of the run")
    for r in rows:
        print(f"{r['what']:34} {r['input']:>20} {r['processes']:>5} {r.get('per_process', ''):>16} "
              f"{r['seconds']:>8} {r['rate']:>10} {r['unit']:18} {r['peak_mb']:>8}  "
              f"{' '.join(str(v) for v in r.get('rss_deciles_mb', []))}")
    for line in summary:
        print(line)
    result = {"hardware": hardware, "load_average_before": load, "rows": rows, "efficiency": summary,
              "seconds": round(time.perf_counter() - started, 1), "quick": args.quick}
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1, default=str) + "\n")
    return result


if __name__ == "__main__":
    main()

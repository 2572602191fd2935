"""Variant-effect scoring throughput: variants per second on a saturation-mutagenesis VCF of a real promoter.

    python bench/veff_throughput.py --model GENA-LM/promoter --fasta genome.fa.gz \
        --bed tests/data/promoters_chr20_2mb.bed --promoter TRIB3_1

Builds every SNV from -upstream to +downstream of the promoter's TSS (bench/make_saturation_vcf.py), loads the
model once, warms it up, then scores the VCF with `score_variants` in
- centred mode: a window centred on each SNV (the three SNVs at a position share their reference window), and
- region mode: the promoter's own model window (TSS-anchored for the promoter models) - one reference window
  for all SNVs,
and prints the hardware and a table of variants/s (scored ALT alleles per second of wall time, VCF reading and
writing included; model loading and warm-up not included). `--model` takes a bundled name or a model folder, so
the same script measures the tiny test models (smoke runs) and the real bundled ones.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from make_saturation_vcf import write_saturation_vcf  # noqa: E402

from bench.hardware import describe  # noqa: E402


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="GENA-LM/<name> or a model folder")
    parser.add_argument("--fasta", required=True)
    parser.add_argument("--bed", required=True, help="TSS BED holding the promoter")
    parser.add_argument("--promoter", default="TRIB3_1", help="BED name of the promoter (default TRIB3_1)")
    parser.add_argument("--upstream", type=int, default=200)
    parser.add_argument("--downstream", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=64, help="sequences per model call")
    parser.add_argument("--chunk-size", type=int, default=1000, help="VCF records per chunk")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default=None)
    parser.add_argument("--device", default=None)
    parser.add_argument("--scores", default=None, help="comma-separated scores (default: the model kind's)")
    parser.add_argument("--group-dir", default=None, help="folder of GENA-LM/<name> models (default: bundled)")
    parser.add_argument("--work-dir", default=None, help="where the VCFs go (default: a temporary folder)")
    args = parser.parse_args(argv)
    from genalm_models.process_settings import apply_process_settings

    # huge pages, bounded kernel caches: before the model loads (torch and oneDNN read them at first use)
    apply_process_settings("veff_throughput", keep_freed_memory=False)

    from kipoi_genalm.veff import load_scoring_model, score_variants

    work = Path(args.work_dir or tempfile.mkdtemp(prefix="veff_bench_"))
    work.mkdir(parents=True, exist_ok=True)
    vcf, region_bed = work / "saturation.vcf", work / "promoter.bed"
    n_snvs = write_saturation_vcf(args.fasta, args.bed, args.promoter, vcf, region_bed, args.upstream,
                                  args.downstream)
    model = load_scoring_model(args.model, {"batch_size": args.batch_size, "precision": args.precision,
                                            "device": args.device}, args.group_dir)
    common = dict(dl_args={"fasta_file": str(args.fasta)}, scores=args.scores, chunk_size=args.chunk_size,
                  progress=False)
    # warm-up (first CUDA kernels, allocator, tokenizer): a few variants, not timed
    warm = work / "warmup.vcf"
    warm.write_text("".join(line for i, line in enumerate(vcf.read_text().splitlines(keepends=True))
                            if line.startswith("#") or i < 40))
    score_variants(model, input_vcf=warm, output_vcf=work / "warmup.scored.vcf", **common)

    rows = []
    for mode, regions in (("centred", None), ("regions", region_bed)):
        result = score_variants(model, input_vcf=vcf, output_vcf=work / f"saturation.{mode}.vcf",
                                restriction_bed=regions, **common)
        rows.append({"mode": mode, "variants": n_snvs, "scored": result.n_scored,
                     "reference_windows": result.ref_windows_predicted,
                     "alt_sequences": result.alt_sequences_predicted, "seconds": result.seconds,
                     "variants_per_s": result.n_scored / result.seconds if result.seconds else float("nan")})

    info = model.info
    options = model.runner.options if model.runner is not None else model.options
    print(describe())
    print(f"model: {info.name} {info.version} ({info.kind}, {info.window.describe()}), precision "
          f"{options.precision}, batch size {options.batch_size}")
    print(f"VCF: every SNV from -{args.upstream} to +{args.downstream} of {args.promoter} ({n_snvs} SNVs)\n")
    print("| mode | SNVs | scored | reference windows | alt sequences | seconds | variants/s |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        print(f"| {row['mode']} | {row['variants']} | {row['scored']} | {row['reference_windows']} | "
              f"{row['alt_sequences']} | {row['seconds']:.2f} | {row['variants_per_s']:.1f} |")
    return rows


if __name__ == "__main__":
    main()

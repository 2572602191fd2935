"""Genome-wide meaning of a 1:1-trained promoter model: sliding-window scan of a held-out chr20 region vs EPDnew.

    python recipes/zoo/scan_precision.py --model GENA-LM/promoter --fasta ../shared/data/genome/GRCh37_chr20.fa.gz \
        --tss ../shared/data/promoters/epdnew_hs006_GRCh37_chr20_tss.bed --region chr20:42,000,001-48,000,000 \
        --step 500 --out runs/zoo/eval/scan_promoter.json

Both strands of the region are scanned with `genalm-kipoi scan` (the plugin's own scan: each bin centre is a
candidate TSS with the model's TSS-anchored window). A bin is a hit if an annotated TSS on the same strand lies
within `--tolerance` bp of its centre. For each threshold on P(promoter) it reports:
- precision: the fraction of called bins (P >= threshold) that are hits; the base rate (fraction of all bins that
  are hits) is what calling at random would give;
- recall: the fraction of annotated TSSs in the region with a called bin on their strand within the tolerance;
- calls per Mb (both strands);
and, over all thresholds, the average precision of the bins ranked by P (base rate = chance).
The region must be held out from training (the default is the zoo's test region).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from sklearn.metrics import average_precision_score

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def read_bedgraph(path: Path) -> tuple[np.ndarray, np.ndarray]:
    starts, values = [], []
    for line in path.read_text().splitlines():
        if not line or line.startswith(("track", "#", "browser")):
            continue
        fields = line.split("\t")
        starts.append((int(fields[1]) + int(fields[2]) - 1) // 2)  # the bin centre, as the scan places it
        values.append(float(fields[3]))
    return np.asarray(starts), np.asarray(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="GENA-LM/promoter")
    parser.add_argument("--fasta", required=True)
    parser.add_argument("--tss", required=True, help="EPDnew TSS BED (BED6 with strand)")
    parser.add_argument("--region", default="chr20:42,000,001-48,000,000")
    parser.add_argument("--step", type=int, default=500)
    parser.add_argument("--tolerance", type=int, default=500, help="bp between a bin centre and a TSS for a hit")
    parser.add_argument("--thresholds", type=float, nargs="+", default=[0.5, 0.9, 0.95, 0.98, 0.99])
    parser.add_argument("--precision", default="bf16", choices=["fp32", "bf16"])
    parser.add_argument("--out", required=True, help="JSON result")
    args = parser.parse_args()

    from genalm_models.genome import read_bed
    from genalm_models.io_utils import write_text_atomic
    from genalm_models.genome import parse_region_1based, same_chrom

    region = parse_region_1based(args.region, what="--region")
    start, end = region.start, region.end
    tss = {"+": [], "-": []}
    for interval in read_bed(args.tss):
        if same_chrom(interval.chrom, region.chrom) and start <= interval.start < end:
            tss[interval.strand if interval.strand in "+-" else "+"].append(interval.start)
    result = {"model": args.model, "region": args.region, "step": args.step, "tolerance": args.tolerance,
              "n_tss": sum(len(v) for v in tss.values()), "thresholds": {}}
    centres, values, hits = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for strand in "+-":
            out = Path(tmp) / f"scan{strand}.bedGraph"
            subprocess.run(["genalm-kipoi", "scan", args.model, "--fasta", args.fasta, "--region", args.region,
                            "--step", str(args.step), "--strand", strand, "--precision", args.precision, "-o",
                            str(out), "--no-progress"], check=True)
            c, v = read_bedgraph(out)
            sites = np.sort(np.asarray(tss[strand], dtype=np.int64))
            near = np.zeros(len(c), dtype=bool)
            if len(sites):
                idx = np.searchsorted(sites, c)
                for shift in (-1, 0):
                    j = np.clip(idx + shift, 0, len(sites) - 1)
                    near |= np.abs(sites[j] - c) <= args.tolerance
            centres.append((strand, c, sites))
            values.append(v)
            hits.append(near)
    all_values, all_hits = np.concatenate(values), np.concatenate(hits)
    result["n_bins"] = int(len(all_values))
    result["base_rate"] = float(all_hits.mean())
    result["average_precision"] = float(average_precision_score(all_hits, all_values)) if all_hits.any() else None
    megabases = 2 * (end - start) / 1e6
    for threshold in args.thresholds:
        called = all_values >= threshold
        found = 0
        for (strand, c, sites), v in zip(centres, values):
            called_centres = c[v >= threshold]
            for site in sites:
                if len(called_centres) and np.abs(called_centres - site).min() <= args.tolerance:
                    found += 1
        result["thresholds"][str(threshold)] = {
            "called_bins": int(called.sum()),
            "precision": float(all_hits[called].mean()) if called.any() else None,
            "recall": found / result["n_tss"] if result["n_tss"] else None,
            "calls_per_mb": float(called.sum() / megabases),
        }
    write_text_atomic(args.out, json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()

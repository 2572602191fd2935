"""Positive control for splice variant scoring: do SNVs that break canonical splice sites score higher than SNVs
deep in the same introns?

    python bench/splice_positive_control.py --model GENA-LM/splice --fasta GRCh37_chr20.fa.gz \
        --table spliceai_canonical_GRCh37_chr20.txt.gz --regions-bed regions.bed --split test

From a SpliceAI canonical-transcript table and the FASTA (tables are read by genalm_models.tasks.splice):
- positives: for each intron with a canonical GT...AG (checked on the FASTA, on the transcript's strand), one SNV
  at each of the 4 bases of the GT and the AG (the ALT base drawn at random among the 3 others); these break the
  donor or the acceptor;
- negatives, matched: 4 SNVs in the same intron at random positions at least `--min-depth` bp (default 100) from
  both intron ends; introns too short for that are left out (with their positives).
With `--regions-bed` (a BED4 region table, e.g. `regions.bed` of `python -m genalm_models.train regions`), only
introns whose variants' model windows lie wholly inside a region of `--split` (default test: held-out regions) are
used; a BED without split names keeps all its regions. `--max-introns` keeps a seeded random subset.
The variants are scored with `score_variants` (score max_diff within `--distance` bp); a variant's score is its
largest |max_diff| over the model's outputs (acceptor, donor). The splice model reads sequence 5'->3' on the gene's
strand, as it was trained, and a VCF has no strand: by default (`--strand gene`) each variant is scored in region
mode on a 1-bp BED interval at the variant carrying its transcript's strand (the kipoi-veff way: the dataloader's
intervals give the strand), so the model window is centred on the variant and read on the gene's strand.
`--strand plus` scores plain centred windows on '+' (genes on '-' are then read against their orientation).
Printed: the counts, AUROC (scikit-learn) of positives vs negatives with a 95% bootstrap interval and a one-sided
Mann-Whitney p-value, and AUROC of donor-breaking and acceptor-breaking SNVs on their own.
"""
from __future__ import annotations

import argparse
import random
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from genalm_models.genome import Genome, read_bed, reverse_complement, same_chrom  # noqa: E402
from genalm_models.io_utils import write_text_atomic  # noqa: E402
from genalm_models.tasks.splice import read_splice_table  # noqa: E402

BASES = "ACGT"
SPLIT_NAMES = {"train", "valid", "test", "gap"}


@dataclass(frozen=True)
class Intron:
    chrom: str
    start: int          # 0-based, first intron base
    end: int            # 0-based exclusive
    strand: str
    transcript: str


@dataclass(frozen=True)
class ControlVariant:
    chrom: str
    position: int       # 0-based
    ref: str
    alt: str
    kind: str           # donor | acceptor | deep
    transcript: str
    intron_start: int
    strand: str         # the transcript's

    @property
    def name(self) -> str:
        return f"{self.kind}_{self.transcript}_{self.position + 1}"

    @property
    def positive(self) -> bool:
        return self.kind != "deep"


def introns_of_table(table: str) -> list[Intron]:
    introns = []
    for transcript in read_splice_table(table):
        # read_splice_table gives the exon bases next to each intron: left of it and right of it (genomic)
        left, right = ((transcript.donors, transcript.acceptors) if transcript.strand == "+"
                       else (transcript.acceptors, transcript.donors))
        for left_site, right_site in zip(sorted(left), sorted(right)):
            introns.append(Intron(transcript.chrom, left_site + 1, right_site, transcript.strand, transcript.name))
    return introns


def allowed_regions(bed: str | None, split: str) -> list[tuple[str, int, int]] | None:
    if bed is None:
        return None
    intervals = list(read_bed(bed))
    has_splits = any(i.name in SPLIT_NAMES for i in intervals)
    chosen = [i for i in intervals if not has_splits or i.name == split]
    if not chosen:
        raise ValueError(f"{bed}: no region named {split!r}")
    return [(i.chrom, i.start, i.end) for i in chosen]


def inside(regions, chrom: str, start: int, end: int) -> bool:
    return regions is None or any(same_chrom(c, chrom) and s <= start and end <= e for c, s, e in regions)


def control_variants(introns: list[Intron], genome: Genome, rng: random.Random, min_depth: int) -> list[ControlVariant]:
    """4 motif-breaking SNVs and 4 deep intronic SNVs per canonical intron deep enough for them."""
    variants = []
    for intron in introns:
        if intron.end - intron.start < 2 * min_depth + 4 or intron.chrom not in genome:
            continue
        five = genome.fetch(intron.chrom, intron.start, intron.start + 2)      # '+' strand bases
        three = genome.fetch(intron.chrom, intron.end - 2, intron.end)
        if intron.strand == "+":
            canonical = five == "GT" and three == "AG"
            kinds = {intron.start: "donor", intron.end - 2: "acceptor"}
        else:
            canonical = reverse_complement(three) == "GT" and reverse_complement(five) == "AG"
            kinds = {intron.start: "acceptor", intron.end - 2: "donor"}
        if not canonical:
            continue
        for first, kind in kinds.items():
            for position in (first, first + 1):
                ref = genome.fetch(intron.chrom, position, position + 1)
                alt = rng.choice([b for b in BASES if b != ref])
                variants.append(ControlVariant(intron.chrom, position, ref, alt, kind, intron.transcript,
                                               intron.start, intron.strand))
        deep = rng.sample(range(intron.start + min_depth, intron.end - min_depth), 4)
        for position in deep:
            ref = genome.fetch(intron.chrom, position, position + 1)
            if ref not in BASES:
                continue
            alt = rng.choice([b for b in BASES if b != ref])
            variants.append(ControlVariant(intron.chrom, position, ref, alt, "deep", intron.transcript,
                                           intron.start, intron.strand))
    # introns shared by overlapping transcripts would repeat positions: keep each position once
    unique = {}
    for variant in variants:
        unique.setdefault((variant.chrom, variant.position), variant)
    return list(unique.values())


def write_vcf(variants: list[ControlVariant], path: Path) -> None:
    lines = ["##fileformat=VCFv4.2\n", "##comment=splice positive control (bench/splice_positive_control.py)\n",
             "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"]
    for v in sorted(variants, key=lambda v: (v.chrom, v.position)):
        lines.append(f"{v.chrom}\t{v.position + 1}\t{v.name}\t{v.ref}\t{v.alt}\t.\t.\t.\n")
    write_text_atomic(path, lines)


def spaced_groups(variants: list[ControlVariant], spacing: int) -> list[list[ControlVariant]]:
    """Variants split into groups in which any two on the same chromosome lie at least `spacing` bp apart."""
    groups: list[list[ControlVariant]] = []
    last: list[dict[str, int]] = []
    for v in sorted(variants, key=lambda v: (v.chrom, v.position)):
        for group, ends in zip(groups, last):
            if v.position - ends.get(v.chrom, -spacing) >= spacing:
                break
        else:
            groups.append([])
            last.append({})
            group, ends = groups[-1], last[-1]
        group.append(v)
        ends[v.chrom] = v.position
    return groups


def write_strand_bed(variants: list[ControlVariant], path: Path) -> None:
    """One 1-bp interval per variant, named after it, on its transcript's strand."""
    write_text_atomic(path, [f"{v.chrom}\t{v.position}\t{v.position + 1}\t{v.name}\t0\t{v.strand}\n"
                             for v in sorted(variants, key=lambda v: (v.chrom, v.position))])


def auroc_interval(labels: list[int], scores: list[float], resamples: int = 1000, seed: int = 0
                   ) -> tuple[float, float]:
    """95% bootstrap interval of the AUROC (variants resampled with replacement)."""
    rng = np.random.default_rng(seed)
    labels_a, scores_a = np.asarray(labels), np.asarray(scores)
    values = []
    for _ in range(resamples):
        pick = rng.integers(0, len(labels_a), len(labels_a))
        values.append(auroc(labels_a[pick].tolist(), scores_a[pick].tolist()))
    low, high = np.nanpercentile(values, [2.5, 97.5])
    return float(low), float(high)


def auroc(labels: list[int], scores: list[float]) -> float:
    from sklearn.metrics import roc_auc_score

    if len(set(labels)) < 2:
        return float("nan")
    return float(roc_auc_score(labels, scores))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="GENA-LM/splice", help="GENA-LM/<name> or a model folder (token kind)")
    parser.add_argument("--fasta", required=True)
    parser.add_argument("--table", required=True, help="SpliceAI canonical-transcript table (plain or .gz)")
    parser.add_argument("--regions-bed", default=None, help="region table: use only introns inside --split regions")
    parser.add_argument("--split", default="test")
    parser.add_argument("--min-depth", type=int, default=100, help="negatives: min bp from both intron ends")
    parser.add_argument("--max-introns", type=int, default=None, help="seeded random subset of the introns")
    parser.add_argument("--distance", type=int, default=50, help="bp each side of the variant for max_diff")
    parser.add_argument("--strand", choices=["gene", "plus"], default="gene",
                        help="read each variant's window on its transcript's strand (default) or on '+'")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--precision", choices=["fp32", "bf16"], default=None)
    parser.add_argument("--device", default=None)
    parser.add_argument("--group-dir", default=None)
    parser.add_argument("--work-dir", default=None)
    args = parser.parse_args(argv)

    from kipoi_genalm.veff import load_scoring_model, score_variants

    model = load_scoring_model(args.model, {"batch_size": args.batch_size, "precision": args.precision,
                                            "device": args.device}, args.group_dir)
    if model.kind != "token":
        raise ValueError(f"{model.name} is a {model.kind} model; the splice control needs per-nucleotide outputs")
    half_window = (model.info.window.input_length or 0) // 2 + 1
    regions = allowed_regions(args.regions_bed, args.split)
    rng = random.Random(args.seed)
    introns = [i for i in introns_of_table(args.table)
               if inside(regions, i.chrom, i.start - half_window, i.end + half_window)]
    if args.max_introns is not None:
        rng.shuffle(introns)
        introns = introns[: args.max_introns]
    with Genome(args.fasta) as genome:
        variants = control_variants(introns, genome, rng, args.min_depth)
    if not variants:
        raise ValueError("no usable introns (canonical GT-AG, deep enough, inside the chosen regions)")

    work = Path(args.work_dir or tempfile.mkdtemp(prefix="splice_control_"))
    work.mkdir(parents=True, exist_ok=True)
    # --strand gene: each variant in its own stranded window. Variants closer than a window would also be scored in
    # each other's windows (region mode scores every window holding a variant), so they go to separate runs.
    groups = spaced_groups(variants, 2 * half_window) if args.strand == "gene" else [variants]
    frames = []
    for group, members in enumerate(groups):
        vcf, bed = work / f"splice_control_{group}.vcf", None
        write_vcf(members, vcf)
        if args.strand == "gene":
            bed = work / f"splice_control_{group}.bed"
            write_strand_bed(members, bed)
        scored = work / f"splice_control_{group}.scored.vcf"
        result = score_variants(model, {"fasta_file": str(args.fasta)}, vcf, scored, scores=["max_diff"],
                                splice_distance=args.distance, return_predictions=True, restriction_bed=bed,
                                progress=False)
        frames.append(result.predictions["max_diff"])
    frame = pd.concat(frames)
    score_by_id = {}
    for key, row in zip(frame.index, np.abs(frame[list(model.info.output_labels)].to_numpy()).max(axis=1)):
        chrom, pos = key.split(":")[:2]
        score_by_id[(chrom, int(pos) - 1)] = float(row)
    kinds = {(v.chrom, v.position): v.kind for v in variants}
    labels, scores, kind_of = [], [], []
    for key, score in score_by_id.items():
        labels.append(int(kinds[key] != "deep"))
        scores.append(score)
        kind_of.append(kinds[key])
    report = {"model": model.name, "n_introns": len({(v.chrom, v.intron_start) for v in variants}),
              "strand": args.strand, "n_positive": sum(labels), "n_negative": len(labels) - sum(labels),
              "auroc": auroc(labels, scores)}
    for kind in ("donor", "acceptor"):
        chosen = [i for i, k in enumerate(kind_of) if k in (kind, "deep")]
        report[f"auroc_{kind}"] = auroc([labels[i] for i in chosen], [scores[i] for i in chosen])
    positives = [s for s, label in zip(scores, labels) if label]
    negatives = [s for s, label in zip(scores, labels) if not label]
    from scipy.stats import mannwhitneyu

    report["auroc_95ci"] = auroc_interval(labels, scores, seed=args.seed)
    report["mann_whitney_p"] = float(mannwhitneyu(positives, negatives, alternative="greater").pvalue)
    print(f"{model.name} {model.info.version}: {report['n_positive']} splice-site-breaking SNVs vs "
          f"{report['n_negative']} deep intronic SNVs (>= {args.min_depth} bp from both ends) in "
          f"{report['n_introns']} introns" + (f" of the {args.split} regions of {args.regions_bed}" if regions else ""))
    print(f"median score (max |max_diff| over {', '.join(model.info.output_labels)} within {args.distance} bp): "
          f"positives {np.median(positives):.4g}, negatives {np.median(negatives):.4g}")
    print("windows read on " + ("each transcript's strand (region mode, 1-bp stranded intervals)"
                                if args.strand == "gene" else "'+' (centred mode)"))
    low, high = report["auroc_95ci"]
    print(f"AUROC {report['auroc']:.4f} [{low:.3f}, {high:.3f}] (donor SNVs {report['auroc_donor']:.4f}, acceptor "
          f"SNVs {report['auroc_acceptor']:.4f}); one-sided Mann-Whitney p = {report['mann_whitney_p']:.2g}")
    return report


if __name__ == "__main__":
    main()

"""Per-position effect track of scored variants (e.g. a saturation-mutagenesis VCF) drawn to a PNG.

    genalm-kipoi plot-effects scored.vcf.gz -o effects.png --score diff
    plot_effects("scored.tsv", "effects.png", score="diff", label="promoter")

Input: a VCF written by `score_variants` (INFO `KV:<source>:<model>:<SCORE>`) or its table (.tsv / .tsv.gz /
.parquet, columns `<score>:<label>`). Two panels share the genomic axis (1-based positions):
- top: the largest |score| per position over all ALTs there (SNVs and indels, at their first changed base);
- bottom: one row per base A/C/G/T, the score of each SNV (reference base left blank), diverging colours
  centred on 0.
Written atomically (temporary file + os.replace).
"""
from __future__ import annotations

import math
import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from genalm_models.genome import VcfReader, same_chrom
from genalm_models.io_utils import atomic_write

from .veff_variants import is_sequence_allele, trim_alleles

BASES = "ACGT"


@dataclass
class EffectTrack:
    """Scores by position: `snv[pos][base]` for SNVs, `all_values[pos]` for every scored ALT (1-based pos)."""

    chrom: str
    score: str
    label: str
    model: str
    snv: dict[int, dict[str, float]] = field(default_factory=lambda: defaultdict(dict))
    reference: dict[int, str] = field(default_factory=dict)
    all_values: dict[int, list[float]] = field(default_factory=lambda: defaultdict(list))

    def add(self, pos: int, ref: str, alt: str, value: float) -> None:
        if not math.isfinite(value) or not is_sequence_allele(alt):
            return
        start, trimmed_ref, trimmed_alt = trim_alleles(pos, ref, alt)  # 1-based in, 1-based out
        if not trimmed_ref and not trimmed_alt:
            return
        self.all_values[start].append(value)
        if len(trimmed_ref) == 1 and len(trimmed_alt) == 1:
            self.snv[start][trimmed_alt] = value
            self.reference[start] = trimmed_ref


def _score_fields(ids: list[str], score: str, model: str | None) -> list[str]:
    wanted = [i for i in ids if i.startswith("KV:") and i.rsplit(":", 1)[-1] == score.upper()]
    if model is not None:
        wanted = [i for i in wanted if i.split(":", 2)[2].rsplit(":", 1)[0] == model]
    return wanted


def _in_region(region: tuple[str, int, int], chrom: str, pos: int) -> bool:
    return same_chrom(chrom, region[0]) and region[1] < pos <= region[2]


def read_vcf_track(path: str | os.PathLike, score: str, label: str | None, model: str | None,
                   region: tuple[str, int, int] | None = None) -> EffectTrack:
    with VcfReader(path) as reader:
        descriptions = {}
        for line in reader.header_lines:
            if line.startswith("##INFO=<ID=KV:"):
                field_id = line[len("##INFO=<ID="):].split(",Number=", 1)[0]
                descriptions[field_id] = line.split("Prediction from model outputs: ", 1)[-1].split('"', 1)[0]
        fields = _score_fields(list(descriptions), score, model)
        if not fields:
            raise ValueError(f"{path}: no INFO field KV:<source>:<model>:{score.upper()}"
                             + (f" for model {model}" if model else "") + "; fields there: "
                             + (", ".join(descriptions) or "none"))
        if len(fields) > 1:
            raise ValueError(f"{path}: several models scored {score}: {', '.join(fields)}; choose one with "
                             "model=... (--model-name)")
        field_id = fields[0]
        labels = descriptions[field_id].split("|")
        label = label or labels[0]
        if label not in labels:
            raise ValueError(f"{path}: {field_id} has outputs {', '.join(labels)}, not {label!r}")
        column = labels.index(label)
        track = None
        for record in reader:
            if region is not None and not _in_region(region, record.chrom, record.pos):
                continue
            value_text = next((item.split("=", 1)[1] for item in record.info.split(";")
                               if item.startswith(field_id + "=")), None)
            if value_text is None:
                continue
            if track is None:
                track = EffectTrack(record.chrom, score, label, field_id.split(":", 2)[2].rsplit(":", 1)[0])
            elif record.chrom != track.chrom:
                raise ValueError(f"{path}:{record.line}: the track covers one chromosome ({track.chrom}), found "
                                 f"{record.chrom}; choose a region")
            for alt, per_alt in zip(record.alts, value_text.split(",")):
                if per_alt == ".":
                    continue
                track.add(record.pos, record.ref, alt, float(per_alt.split("|")[column]))
    if track is None:
        raise ValueError(f"{path}: no scored variants" + (" in the region" if region is not None else ""))
    return track


def read_table_track(path: str | os.PathLike, score: str, label: str | None,
                     region: tuple[str, int, int] | None = None) -> EffectTrack:
    import pandas as pd

    frame = pd.read_parquet(path) if str(path).endswith(".parquet") else pd.read_csv(path, sep="\t")
    columns = [c for c in frame.columns if c.split(":", 1)[0] == score.lower()]
    if not columns:
        raise ValueError(f"{path}: no column {score.lower()}:<label>; columns: {', '.join(frame.columns)}")
    labels = [c.split(":", 1)[1] for c in columns]
    label = label or labels[0]
    if label not in labels:
        raise ValueError(f"{path}: score {score} has outputs {', '.join(labels)}, not {label!r}")
    rows = frame[frame["skipped"].fillna("") == ""]
    if region is not None:
        rows = rows[[_in_region(region, c, p) for c, p in zip(rows["chrom"], rows["pos"])]]
    if "nearest_region" in rows.columns:
        rows = rows[rows["nearest_region"].fillna(False).astype(bool)]
    chroms = rows["chrom"].unique()
    if len(chroms) != 1:
        raise ValueError(f"{path}: the track covers one chromosome, found {', '.join(map(str, chroms)) or 'none'}")
    track = EffectTrack(str(chroms[0]), score, label, "")
    for pos, ref, alt, value in zip(rows["pos"], rows["ref"], rows["alt"], rows[f"{score.lower()}:{label}"]):
        track.add(int(pos), str(ref), str(alt), float(value))
    return track


def plot_effects(scored: str | os.PathLike, output_png: str | os.PathLike, score: str = "diff",
                 label: str | None = None, model: str | None = None, title: str | None = None,
                 region: str | None = None) -> Path:
    """Draw the effect track of `scored` (VCF or table) to `output_png`; returns the PNG path.

    region: `chrom:start-end` (1-based, inclusive) to draw only part of it (needed when several chromosomes
    hold scored variants).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from genalm_models.genome import parse_region_1based

    typed = parse_region_1based(region, what="--region") if region is not None else None
    bounds = (typed.chrom, typed.start, typed.end) if typed is not None else None
    name = str(scored)
    if name.endswith((".tsv", ".tsv.gz", ".parquet")):
        track = read_table_track(scored, score, label, bounds)
    else:
        track = read_vcf_track(scored, score, label, model, bounds)
    if not track.all_values:
        raise ValueError(f"{scored}: no scored variants for {score}")
    first, last = min(track.all_values), max(track.all_values)
    positions = np.arange(first, last + 1)
    largest = np.array([max((abs(v) for v in track.all_values.get(p, [])), default=np.nan) for p in positions])
    grid = np.full((4, len(positions)), np.nan)
    for column, position in enumerate(positions):
        for row, base in enumerate(BASES):
            grid[row, column] = track.snv.get(position, {}).get(base, np.nan)

    figure, (top, bottom) = plt.subplots(2, 1, figsize=(max(6.0, min(24.0, len(positions) / 12)), 4.5),
                                         sharex=True, gridspec_kw={"height_ratios": [1.3, 1]})
    present = np.isfinite(largest)
    top.vlines(positions[present], 0, largest[present], color="#3b6ea8", linewidth=1.2)
    top.set_ylabel(f"max |{track.score}|")
    top.set_title(title or f"{track.model or 'model'} {track.label}: {track.score} per position ({track.chrom})")
    limit = np.nanmax(np.abs(grid)) if np.isfinite(grid).any() else 1.0
    image = bottom.imshow(grid, aspect="auto", cmap="RdBu_r", vmin=-limit, vmax=limit, interpolation="nearest",
                          extent=(first - 0.5, last + 0.5, 3.5, -0.5))
    bottom.set_yticks(range(4), list(BASES))
    bottom.set_ylabel("ALT base")
    bottom.set_xlabel(f"{track.chrom} position (1-based)")
    bottom.ticklabel_format(axis="x", useOffset=False, style="plain")
    figure.colorbar(image, ax=[top, bottom], fraction=0.025, pad=0.01, label=f"{track.score} ({track.label})")
    with atomic_write(output_png, "wb") as handle:
        figure.savefig(handle, format="png", dpi=110, bbox_inches="tight")
    plt.close(figure)
    return Path(output_png)

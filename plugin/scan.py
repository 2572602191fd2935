"""Sliding-window scan of a genomic region with a GENA-LM model, written as a bedGraph track.

    genalm-kipoi scan GENA-LM/promoter --fasta genome.fa --region chr20:1,000,001-1,100,000 --step 50 \
        -o promoter.bedGraph

The region is typed as samtools reads it (1-based, both ends inclusive; `genome.parse_region_1based` parses it).
Sequence models (promoter, ...): the region is cut into bins of `step` bp; each bin centre is treated as a
candidate site (a 1-bp interval on `strand`) and gets the model's own window around it - the same window the
dataloader builds for a BED interval (TSS-anchored for the promoter models, centred otherwise). The bin's value is
the chosen output (default the first, e.g. P(promoter)).
Per-nucleotide models (splice): the region is tiled with the model's window (`sequence_length` bp plus its context
flanks) and every base gets its own value; runs of equal values are merged into one bedGraph line.
Values are written in genomic coordinates for either strand. The output is written atomically with a
`<output>.provenance.json` sidecar (model name, version, weights sha256, region, strand).
Predictions go through `FolderModel.predict` (one `Predictor`); bins and windows are made as they are needed and
handed over in chunks (`CHUNK_WINDOWS`), and freed memory is released between chunks, so the progress bar moves and
no part of the region is held. With the kernel caches bounded (`genalm_models.process_settings`, applied by the
`genalm-kipoi` command) the resident set does not grow with the region's length: `bench/bench_scale_out.py`
(README "Genome-scale runs") measures it at 1, 10 and 63 Mb.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from genalm_models.genome import Genome, GenomeError, Interval
from genalm_models.inference import release_freed_memory
from genalm_models.io_utils import atomic_write

from . import provenance
from .adapter import FolderModel
from .sequences import chunked, input_region, target_region

CHUNK_WINDOWS = 256


@dataclass(frozen=True)
class ScanRequest:
    chrom: str
    start: int
    end: int
    step: int = 50
    strand: str = "+"
    output: str | None = None      # output label; default the first

    def validate(self) -> "ScanRequest":
        if self.start < 0 or self.end <= self.start:
            raise ValueError(f"region {self.chrom}:{self.start}-{self.end} is empty or negative")
        if self.step < 1:
            raise ValueError(f"step must be >= 1, got {self.step}")
        if self.strand not in ("+", "-"):
            raise ValueError(f"strand must be + or -, got {self.strand!r}")
        return self


def _spans(start: int, end: int, width: int) -> Iterator[tuple[int, int]]:
    """[start, end) cut into consecutive spans of `width` bp (the last one shorter), made as they are needed."""
    for left in range(start, end, width):
        yield left, min(left + width, end)


def _progress(iterable, total: int, enabled: bool, what: str):
    if not enabled:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=what, unit="chunk")


def scan_values(model: FolderModel, genome: Genome, request: ScanRequest, progress: bool = False
                ) -> Iterator[tuple[int, int, float]]:
    """(start, end, value) in genomic order, covering [request.start, request.end)."""
    request.validate()
    info = model.info
    name = genome.resolve(request.chrom)
    length = genome.contig_lengths[name]
    if request.end > length:
        raise GenomeError(f"region {request.chrom}:{request.start}-{request.end} runs past the end of {name} "
                          f"(length {length:,})")
    if info.kind in ("embedding", "mlm"):
        raise ValueError(f"{info.name} returns embeddings; scan needs a model with scores (sequence or "
                         "per-nucleotide outputs)")
    labels = info.output_labels
    label = request.output or labels[0]
    if label not in labels:
        raise ValueError(f"{info.name} has no output {label!r}; outputs: {', '.join(labels)}")
    if info.kind == "sequence":
        yield from _scan_sequence(model, genome, request, labels.index(label), progress)
    else:
        yield from _scan_tracks(model, genome, request, label, progress)


def _scan_sequence(model: FolderModel, genome: Genome, request: ScanRequest, column: int, progress: bool):
    window = model.info.window
    if window.sequence_length is None:
        raise ValueError(f"{model.info.name} takes any length: give it intervals with `genalm-kipoi predict` "
                         "instead of scanning")
    bins = _spans(request.start, request.end, request.step)
    total = math.ceil(math.ceil((request.end - request.start) / request.step) / CHUNK_WINDOWS)
    for chunk in _progress(chunked(bins, CHUNK_WINDOWS), total, progress, "scan"):
        sequences = []
        for bin_start, bin_end in chunk:
            centre = (bin_start + bin_end - 1) // 2
            site = Interval(request.chrom, centre, centre + 1, strand=request.strand)
            sequences.append(genome.fetch(input_region(target_region(site, window), window)))
        values = model.predict(sequences)[:, column]
        release_freed_memory()   # what this chunk freed goes back to the system (inference.py)
        for (bin_start, bin_end), value in zip(chunk, values):
            yield bin_start, bin_end, float(value)


def _scan_tracks(model: FolderModel, genome: Genome, request: ScanRequest, label: str, progress: bool):
    window = model.info.window
    block = window.sequence_length
    blocks = (Interval(request.chrom, left, right, strand=request.strand)
              for left, right in _spans(request.start, request.end, block))
    per_chunk = max(1, CHUNK_WINDOWS // 8)
    total = math.ceil(math.ceil((request.end - request.start) / block) / per_chunk)
    for chunk in _progress(chunked(blocks, per_chunk), total, progress, "scan"):
        # every block is predicted at full width (the last one runs past the region; its tail is dropped)
        full = [Interval(b.chrom, b.start, b.start + block, strand=b.strand) for b in chunk]
        sequences = [genome.fetch(input_region(b, window)) for b in full]
        tracks = model.predict(sequences)[label]
        release_freed_memory()
        for region, track in zip(chunk, tracks):
            values = track[::-1] if request.strand == "-" else track   # back to genomic order
            yield from _runs(region.start, values[: region.end - region.start])


def _runs(start: int, values: np.ndarray) -> Iterator[tuple[int, int, float]]:
    """Merge equal neighbouring values into (start, end, value) runs."""
    if len(values) == 0:
        return
    change = np.flatnonzero(np.diff(values) != 0) + 1
    edges = np.concatenate([[0], change, [len(values)]])
    for left, right in zip(edges[:-1], edges[1:]):
        yield start + int(left), start + int(right), float(values[left])


def write_bedgraph(path: str | Path, chrom: str, rows: Iterator[tuple[int, int, float]], track_name: str,
                   description: str) -> int:
    """Stream rows to `path` atomically; returns the number of data lines."""
    count = 0
    with atomic_write(path, "w") as handle:
        handle.write(f'track type=bedGraph name="{track_name}" description="{description}"\n')
        for start, end, value in rows:
            shown = "nan" if math.isnan(value) else f"{value:.6g}"
            handle.write(f"{chrom}\t{start}\t{end}\t{shown}\n")
            count += 1
    return count


def scan_to_bedgraph(model: FolderModel, fasta: str | Path, request: ScanRequest, output: str | Path,
                     progress: bool = False) -> int:
    request = request.validate()
    genome = Genome(fasta)
    try:
        labels = model.info.output_labels
        label = request.output or (labels[0] if labels else None)
        description = (f"{model.info.name} {model.info.version} {label} strand {request.strand} "
                       f"step {request.step if model.info.kind == 'sequence' else 1}")
        count = write_bedgraph(output, request.chrom, scan_values(model, genome, request, progress),
                               track_name=f"{model.info.name} {label}", description=description)
    finally:
        genome.close()
    document = provenance.record(output, [model.provenance()], inputs={
        "fasta_file": str(fasta), "region": f"{request.chrom}:{request.start + 1}-{request.end}",
        "step": request.step, "strand": request.strand, "output": label})
    provenance.write_sidecar(output, document)
    return count

"""The exported GENA-LM model folder format, and how its window places a model's input on the genome.

An exported folder (written by `genalm_models.export.export_model`) holds

    config.json              the GenaConfig (official field names, `rmt` section for RMT models)
    model.safetensors        the weights (official parameter names; fp16 by default)
    tokenizer.json, special_tokens_map.json, tokenizer_config.json
    genalm.json              this module's `FolderInfo`: name, version, kind, window, labels, weights checksum,
                             the contig lengths of the reference the model was trained on, where it came from
    example.bed, example.fa.gz (+ .fai, .gzi)   small real example inputs (see export.py for how they are cut)
    README.md                the model card
    run_config.yaml          the training run config, when the model came from a training run

and, when the Kipoi plugin (`kipoi_genalm`, the `plugin/` folder) is installed, what Kipoi reads (written by
`kipoi_genalm.zoo_export`):

    model.yaml                                 the Kipoi description (schema, info, dataloader args, test expectation)
    downloaded/model_files/test.expect.h5      predictions on the examples, checked by `kipoi test`

No torch and no kipoi here: the exporter, the Kipoi dataloader and model, variant scoring and the CLIs all read it.
`WindowSpec` with `target_region` / `input_region` is the one definition of how a BED interval becomes the DNA a
model reads (training examples, the Kipoi dataloader, variant scoring, genome scans).

Errors: `FolderError` (a ValueError) naming the file; `target_region` raises `genalm_models.genome.GenomeError`
naming the interval (file:line) for intervals a window cannot be placed on.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from .genome import GenomeError, Interval
from .io_utils import write_text_atomic

INFO_FILE = "genalm.json"
WEIGHTS_FILE = "model.safetensors"
FORMAT_VERSION = 1

# What a model returns through Kipoi, by kind (see adapter.py for the arrays):
#   sequence   one probability (or value) per output label, (B, k)
#   token      per-nucleotide tracks aligned to the target region, {label: (B, L)}
#   embedding  {pooled: (B, H), token_embeddings: (B, M, H), token_spans: (B, M, 2), n_tokens: (B,)}
#   mlm        the MLM backbone read as an embedding model: same outputs as `embedding`
KINDS = ("sequence", "token", "embedding", "mlm")
ANCHORS = ("center", "tss")


class FolderError(ValueError):
    """A model folder that is incomplete or inconsistent; the message names the file."""


@dataclass(frozen=True)
class WindowSpec:
    """How a BED interval becomes the model's input.

    sequence_length: width (bp) of the region the predictions refer to; None = the interval as it is.
    anchor: "center" - that region is centred on the interval's centre;
            "tss"    - it is placed around the interval's 5' end (strand-aware): `upstream` bases upstream of it,
                       the rest downstream. GENA-LM's promoter windows are TSS-anchored (-249..+50 for 300 bp).
    flank: context (bp) added on both sides of that region before it is given to the model. Token-level outputs
           are cropped back to the region, so they stay aligned with it (SpliceAI-style 5 kb + 2 x 5 kb context).
    """

    sequence_length: int | None = None
    anchor: str = "center"
    upstream: int | None = None
    flank: int = 0

    def validate(self, where: str = "window") -> "WindowSpec":
        if self.sequence_length is not None and (not isinstance(self.sequence_length, int)
                                                 or self.sequence_length < 1):
            raise FolderError(f"{where}: sequence_length must be a positive integer or null, "
                              f"got {self.sequence_length!r}")
        if self.anchor not in ANCHORS:
            raise FolderError(f"{where}: anchor must be one of {', '.join(ANCHORS)}, got {self.anchor!r}")
        if self.anchor == "tss":
            if self.sequence_length is None:
                raise FolderError(f"{where}: anchor 'tss' needs a sequence_length")
            if self.upstream is None or not 0 <= self.upstream < self.sequence_length:
                raise FolderError(f"{where}: anchor 'tss' needs 0 <= upstream < sequence_length "
                                  f"(got upstream={self.upstream!r}, sequence_length={self.sequence_length})")
        if not isinstance(self.flank, int) or self.flank < 0:
            raise FolderError(f"{where}: flank must be an integer >= 0, got {self.flank!r}")
        return self

    @property
    def input_length(self) -> int | None:
        """Bases the model sees per interval, or None when that follows the interval."""
        return None if self.sequence_length is None else self.sequence_length + 2 * self.flank

    def describe(self) -> str:
        if self.sequence_length is None:
            text = "the interval as it is (any length)"
        elif self.anchor == "tss":
            downstream = self.sequence_length - self.upstream - 1
            text = f"{self.sequence_length} bp from -{self.upstream} to +{downstream} around the interval's 5' end"
        else:
            text = f"{self.sequence_length} bp centred on the interval"
        if self.flank:
            text += f", plus {self.flank} bp of context on each side"
        return text


@dataclass
class FolderInfo:
    """The contents of `genalm.json`."""

    name: str                                   # Kipoi name, e.g. GENA-LM/promoter
    version: str
    kind: str                                   # one of KINDS
    head: str                                   # the GenaConfig head the weights were trained with
    window: WindowSpec
    labels: list[str]                           # the model head's labels (config order)
    output_labels: list[str]                    # what Kipoi returns, in order (sequence kind: may drop a class)
    output_indices: list[int]                   # which head outputs those are
    weights_sha256: str
    weights_dtype: str = "float16"
    task: str | None = None
    rmt: bool = False
    reference_name: str | None = None           # e.g. "GRCh37"
    reference_contigs: dict[str, int] = field(default_factory=dict)  # contig -> length of the training FASTA
    source: dict[str, Any] = field(default_factory=dict)             # what the folder was exported from
    exported_at: str | None = None
    exporter: dict[str, str] = field(default_factory=dict)           # software versions at export
    # how the tokens are laid out for the head: "standard" ([CLS] tokens [SEP] / RMT segments) or the layout an
    # official head was trained with ("spliceai": genalm_models.official_layouts)
    input_layout: str = "standard"
    # config.json values the official fine-tuning script set, used where the hub's config.json lacks them
    config_defaults: dict[str, Any] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    @property
    def hub(self) -> tuple[str, str] | None:
        """(repository, revision) for a folder whose weights come from the Hugging Face hub, else None."""
        if self.source.get("type") != "hub":
            return None
        return self.source["repo_id"], self.source["revision"]

    def validate(self, where: str = INFO_FILE) -> "FolderInfo":
        if self.kind not in KINDS:
            raise FolderError(f"{where}: kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if len(self.output_labels) != len(self.output_indices):
            raise FolderError(f"{where}: output_labels and output_indices differ in length")
        if any(not 0 <= i < max(len(self.labels), 1) for i in self.output_indices):
            raise FolderError(f"{where}: output_indices {self.output_indices} do not index labels {self.labels}")
        self.window.validate(f"{where}: window")
        if self.source.get("type") == "hub" and not (self.source.get("repo_id") and self.source.get("revision")):
            raise FolderError(f"{where}: a hub source needs repo_id and revision")
        if self.input_layout not in ("standard", "spliceai"):
            raise FolderError(f"{where}: input_layout must be standard or spliceai, got {self.input_layout!r}")
        if self.input_layout == "spliceai" and (self.kind != "token" or not self.window.flank
                                                or self.window.sequence_length is None):
            raise FolderError(f"{where}: the spliceai layout needs a token model with a fixed window and flanks")
        if self.kind == "token" and self.window.sequence_length is None and self.window.flank:
            raise FolderError(f"{where}: a flank needs a fixed sequence_length")
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = INFO_FILE) -> "FolderInfo":
        data = dict(data)
        version = data.get("format_version", FORMAT_VERSION)
        if version > FORMAT_VERSION:
            raise FolderError(f"{where}: format_version {version} is newer than this "
                              f"genalm-models reads ({FORMAT_VERSION}); upgrade genalm-models")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise FolderError(f"{where}: unknown keys {', '.join(unknown)}")
        try:
            data["window"] = WindowSpec(**data.get("window", {}))
            info = cls(**data)
        except TypeError as err:
            raise FolderError(f"{where}: {err}") from None
        return info.validate(where)


def read_folder_info(folder: str | os.PathLike) -> FolderInfo:
    path = Path(folder) / INFO_FILE
    if not path.is_file():
        raise FolderError(f"{path}: not found; is {folder} a model folder written by genalm_models.export?")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise FolderError(f"{path}: line {err.lineno}: invalid JSON: {err.msg}") from None
    return FolderInfo.from_dict(data, str(path))


def write_folder_info(folder: str | os.PathLike, info: FolderInfo) -> Path:
    path = Path(folder) / INFO_FILE
    write_text_atomic(path, json.dumps(info.validate().to_dict(), indent=2) + "\n")
    return path


def package_version(name: str) -> str:
    """The installed version of distribution `name` (importlib.metadata), or "unknown"."""
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "unknown"


def sha256_file(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def md5_file(path: str | os.PathLike) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------------------------------
# Window arithmetic: BED interval -> the region predictions refer to -> the region the model reads
# ---------------------------------------------------------------------------------------------------------------
def target_region(interval: Interval, window: WindowSpec) -> Interval:
    """The region (without flanks) the model's predictions for `interval` refer to.

    Width `window.sequence_length` bp (centred, or -upstream..+downstream around the strand-aware 5' end for
    anchor "tss"), or the interval itself when the window has no fixed length. The result may run off the contig
    (the FASTA reader N-pads it). Raises GenomeError (naming the interval) for a zero-length interval.
    """
    if window.sequence_length is None:
        if interval.width == 0:  # the model would read an empty sequence: no tokens, a NaN "prediction"
            raise GenomeError(f"{interval.describe()}: a zero-length interval has no sequence for a model that "
                              "reads each interval as it is; give the bases to read (end > start)")
        return interval
    if window.anchor == "tss":
        if interval.width == 0:
            raise GenomeError(f"{interval.describe()}: a zero-length interval has no 5' end to anchor a window on")
        return interval.window(window.upstream, window.sequence_length - window.upstream - 1)
    return interval.resize(window.sequence_length)


def input_region(region: Interval, window: WindowSpec) -> Interval:
    """`region` (a `target_region`) widened by `window.flank` bp of context on each side: what the model reads."""
    if not window.flank:
        return region
    return Interval(region.chrom, region.start - window.flank, region.end + window.flank, name=region.name,
                    score=region.score, strand=region.strand, extra=region.extra, source=region.source,
                    line=region.line)


def rc_average_refusal(info) -> str | None:
    """Why reverse-complement averaging is meaningless for this model, or None where it is offered.

    `info`: anything with `kind`, `task` and `window.anchor` (a FolderInfo, or an export plan before its folder
    exists), so the exported card and the Kipoi model say the same.

    Averaging with the reverse complement assumes the target does not depend on the strand read: true for centred
    windows of strand-symmetric targets (open chromatin, enhancer activity) and for embeddings (pooled), false for
      - TSS-anchored / promoter windows: the reverse complement of a promoter window is the other strand's
        window (upstream and downstream swapped), not the same promoter; averaging pulls scores towards 0.5;
      - per-nucleotide (splice) tracks: a splice site belongs to one strand; averaging mixes the two strands'
        sites.
    """
    if info.kind == "token":
        return ("its per-nucleotide outputs are strand-specific (a splice site belongs to one strand; averaging "
                "with the reverse complement mixes the two strands' sites)")
    if info.window.anchor == "tss" or info.task == "promoter":
        return ("its window is anchored on the 5' end (TSS) of the interval's strand; the reverse complement is "
                "the other strand's window, not the same promoter, so averaging pulls scores towards 0.5")
    return None

"""The pretraining corpus config: everything that decides a corpus; the defaults are the published GENA-LM recipe
(see `pretrain.corpus` for what each setting does). Values are checked and converted by `typed_config`."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any, Optional, Union

from genalm_models import typed_config

PathLike = Union[str, "os.PathLike[str]"]

OUTPUT_FORMATS = ("jsonl", "jsonl.gz")
UNPHASED_MODES = ("as_phased", "skip", "error")
REF_MISMATCH_MODES = ("error", "skip")


class CorpusError(ValueError):
    """A bad corpus config, an output folder that cannot be used, or an unreadable corpus on disk."""


@dataclass
class CorpusConfig:
    """Everything that decides a corpus; the defaults are the published GENA-LM recipe."""

    fasta_paths: list[str]
    output_dir: str
    passes: int = 10
    sentences_per_document: tuple[int, int] = (50, 100)  # inclusive range, drawn per document
    sentence_bp: tuple[int, int] = (500, 1000)  # inclusive range, drawn per sentence
    max_start_offset: int = 5000  # each stretch starts at a random offset in [0, max_start_offset]
    min_contig_length: int = 10_000  # shorter FASTA sequences are left out
    contigs: Optional[list[str]] = None  # use only these (None: all); `chr20` and `20` are the same contig
    exclude_contigs: list[str] = field(default_factory=list)  # left out, in addition to mitochondria
    exclude_mitochondria: bool = True
    both_strands: bool = True
    max_n_fraction: float = 0.5  # sentences with more N than this are skipped
    split_n_run_bp: Optional[int] = 50  # N runs at least this long split stretches; None: never split
    min_stretch_bp: int = 10_000  # stretches between split N runs shorter than this are skipped
    vcf_path: Optional[str] = None
    samples: Optional[list[str]] = None  # VCF samples to use (None: all of them)
    include_reference: bool = True  # also emit the reference itself when a VCF is given
    unphased: str = "as_phased"  # heterozygous '/' genotypes: "as_phased", "skip" or "error"
    ref_mismatch: str = "error"  # VCF REF differing from the FASTA: "error" or "skip"
    documents_per_shard: int = 1000
    seed: int = 0
    output_format: str = "jsonl"  # "jsonl" or "jsonl.gz"
    overwrite: bool = False  # replace a previous corpus in output_dir
    read_chunk_bp: int = 1_000_000  # how much sequence is read from the FASTA at a time
    # BED of regions masked with N before tiling (e.g. a task's held-out test regions, so that pretraining never
    # sees them); variants inside them are not applied. The N runs then split stretches like assembly gaps.
    exclude_regions: Optional[str] = None

    def __post_init__(self) -> None:
        # What JSON, YAML and argparse give (a single path, Path objects, lists for ranges, numbers as text) is
        # checked and converted against the field types by the one typed-config mechanism.
        values = {item.name: getattr(self, item.name) for item in dataclasses.fields(self)}
        checked = typed_config.check(CorpusConfig, values, "invalid corpus config", CorpusError, construct=False)
        for name, value in checked.items():
            setattr(self, name, tuple(value) if name in ("sentences_per_document", "sentence_bp") else value)
        self.validate()

    def validate(self) -> None:
        """The rules the types cannot say; raises CorpusError listing every problem."""
        problems = []
        if not self.fasta_paths:
            problems.append("fasta_paths is empty")
        if not self.output_dir:
            problems.append("output_dir is empty")
        for name in ("sentences_per_document", "sentence_bp"):
            low, high = getattr(self, name)
            if not 1 <= low <= high:
                problems.append(f"{name} must be integers 1 <= min <= max, got {getattr(self, name)!r}")
        for name in ("passes", "documents_per_shard", "read_chunk_bp"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be an integer >= 1, got {getattr(self, name)!r}")
        for name in ("max_start_offset", "min_contig_length", "min_stretch_bp", "seed"):
            if getattr(self, name) < 0:
                problems.append(f"{name} must be an integer >= 0, got {getattr(self, name)!r}")
        if not 0.0 <= self.max_n_fraction <= 1.0:
            problems.append(f"max_n_fraction must be in [0, 1], got {self.max_n_fraction!r}")
        if self.split_n_run_bp is not None and self.split_n_run_bp < 1:
            problems.append(f"split_n_run_bp must be an integer >= 1 or None, got {self.split_n_run_bp!r}")
        if self.output_format not in OUTPUT_FORMATS:
            problems.append(f"output_format must be one of {OUTPUT_FORMATS}, got {self.output_format!r}")
        if self.unphased not in UNPHASED_MODES:
            problems.append(f"unphased must be one of {UNPHASED_MODES}, got {self.unphased!r}")
        if self.ref_mismatch not in REF_MISMATCH_MODES:
            problems.append(f"ref_mismatch must be one of {REF_MISMATCH_MODES}, got {self.ref_mismatch!r}")
        if self.samples is not None and self.vcf_path is None:
            problems.append("samples are given but no vcf_path")
        if self.vcf_path is not None and self.samples is not None and not self.samples:
            problems.append("samples is an empty list (use None for all samples of the VCF)")
        if not self.include_reference and self.vcf_path is None:
            problems.append("include_reference=False and no VCF: there would be nothing to write")
        if problems:
            raise CorpusError("invalid corpus config: " + "; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready copy (ranges as lists)."""
        result = dataclasses.asdict(self)
        result["sentences_per_document"] = list(self.sentences_per_document)
        result["sentence_bp"] = list(self.sentence_bp)
        return result

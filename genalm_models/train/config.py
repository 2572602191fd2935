"""One typed config per run: YAML file + `section.key=value` overrides, saved next to the checkpoints.

The same config drives training, export and the Kipoi model: `model` describes the network (or where to start
from), `data` the task, `optim`/`train` the loop. Defaults are GENA-LM's published recipe where one exists
(AdamW, lr 1e-4, 10k warm-up steps for pretraining, 15% masking); the small CPU recipes override them.

Every value is checked and converted by `typed_config` (OmegaConf structured configs) against the sections below;
the open sections are typed by the classes that read them: `model.config` by GenaConfig, `model.rmt` by RMTConfig,
`data.args` by the task's config class (`tasks.TASK_KINDS`). They keep only the keys written (converted), so a
saved config says what was asked. Unknown keys and wrong types are one-line RunConfigErrors naming the file and the
dotted key (`recipes/x.yaml: data.args.upstream: expected int, got 'far'`).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .. import typed_config
from ..config import GenaConfig, RMTConfig
from ..io_utils import write_text_atomic


class RunConfigError(ValueError):
    """A run config that cannot be read or meant: one line naming the file, the dotted key and the problem."""


@dataclass
class ModelSection:
    # Start from an existing model folder (ours or an official HF-format GENA-LM checkpoint), or build from
    # `config` (GenaConfig fields) when null.
    init_from: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    tokenizer: str | None = None      # tokenizer folder; default: the init_from folder
    head: str = "mlm"                 # mlm | sequence_classification | token_classification
    rmt: dict[str, Any] | None = None  # RMTConfig fields: wraps the model in recurrent memory
    # Smooth absolute positions at initialisation (issue 19): the position-embedding rows of the content tokens
    # (from the first content position: 1 for plain models, m + 2 for RMT) are replaced by their Gaussian-filtered
    # version (sigma in positions), each row rescaled to the table's mean row norm, so neighbouring positions get
    # nearly the same embedding. A short pretraining leaves the table noise (neighbours nearly orthogonal), which a
    # fine-tuned head can use as a per-position code: its output then jumps when a window moves by one token.
    smooth_positions: float | None = None
    # Parameters not trained: every parameter whose name contains one of these strings (e.g. "position_embeddings")
    freeze: list[str] = field(default_factory=list)


@dataclass
class DataSection:
    task: str = "mlm"                 # mlm | promoter | splice | chromatin | enhancer
    packed: str | None = None         # MLM: folder of packed samples (train pack ...)
    valid_packed: str | None = None   # MLM: held-out packed samples for validation loss
    args: dict[str, Any] = field(default_factory=dict)  # the task's own config (paths, windows, splits)
    # MLM masking (GENA-LM recipe)
    mlm_probability: float = 0.15
    short_sample_probability: float = 0.1
    # RMT curriculum: list of [start_step, n_segments] (e.g. [[0, 2], [1000, 4], [2000, 8]]); and with probability
    # `random_segments_probability` a step uses a random number of segments in 1..current maximum.
    segment_curriculum: list[list[int]] | None = None
    random_segments_probability: float = 0.0
    num_workers: int = 0
    # token tasks: BCE weight of the positive class, one per label (rare splice sites: e.g. [50, 50])
    pos_weight: list[float] | None = None


@dataclass
class OptimSection:
    lr: float = 1e-4
    weight_decay: float = 0.01
    betas: list[float] = field(default_factory=lambda: [0.9, 0.98])
    eps: float = 1e-6
    warmup_steps: int = 10_000
    schedule: str = "linear"          # linear | cosine | constant (after warm-up)
    clip_grad_norm: float | None = 1.0


@dataclass
class TrainSection:
    steps: int = 100
    micro_batch_size: int = 8
    grad_accum: int = 1
    precision: str = "fp32"           # fp32 | bf16 | fp16 (fp16 uses loss scaling)
    seed: int = 42
    device: str = "auto"              # auto | cpu | cuda
    log_every: int = 10
    eval_every: int = 100
    save_every: int = 100
    keep_checkpoints: int = 2
    eval_batch_size: int = 32
    dropout: bool = True              # False: disable dropout (exact-equivalence tests)
    compile: bool = False             # torch.compile the model
    # CPU: keep freed memory in the process for reuse (inference.keep_freed_memory) instead of faulting fresh pages
    # in every step: +30-60% tokens/s here, but +25-50% peak memory (bench/bench_training.py), hence opt-in
    keep_freed_memory: bool = False
    max_eval_examples: int | None = None


@dataclass
class RunConfig:
    run_dir: str = "runs/run"
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    optim: OptimSection = field(default_factory=OptimSection)
    train: TrainSection = field(default_factory=TrainSection)

    # ---- load / save ---------------------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> "RunConfig":
        """The run config of a mapping (a parsed YAML file), checked and converted by `typed_config.build`; `source`
        names the file in errors. Raises RunConfigError (one line: file, dotted key, problem)."""
        return typed_config.build(cls, data, source, RunConfigError).validate(source)

    @classmethod
    def load(cls, path: str | Path, overrides: list[str] = ()) -> "RunConfig":
        """A YAML run config with `section.key=value` overrides (values read as YAML, e.g. `optim.lr=3e-4`)."""
        data = typed_config.load_yaml_mapping(path, RunConfigError)
        data = typed_config.apply_overrides(data, overrides, RunConfigError, str(path))
        return cls.from_dict(data, str(path))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def save(self, path: str | Path) -> None:
        write_text_atomic(path, yaml.safe_dump(self.to_dict(), sort_keys=False))

    # ---- checks --------------------------------------------------------------------------------------------
    def validate(self, source: str = "config") -> "RunConfig":
        def fail(msg: str) -> None:
            raise RunConfigError(f"{source}: {msg}")

        t, o, d, m = self.train, self.optim, self.data, self.model
        if t.steps < 1 or t.micro_batch_size < 1 or t.grad_accum < 1:
            fail("train.steps, train.micro_batch_size and train.grad_accum must be >= 1")
        if t.precision not in ("fp32", "bf16", "fp16"):
            fail(f"train.precision must be fp32, bf16 or fp16, got {t.precision!r}")
        if t.device not in ("auto", "cpu", "cuda"):
            fail(f"train.device must be auto, cpu or cuda, got {t.device!r}")
        if min(t.log_every, t.eval_every, t.save_every) < 1:
            fail("train.log_every / eval_every / save_every must be >= 1")
        if o.lr <= 0 or o.warmup_steps < 0:
            fail("optim.lr must be > 0 and optim.warmup_steps >= 0")
        if o.schedule not in ("linear", "cosine", "constant"):
            fail(f"optim.schedule must be linear, cosine or constant, got {o.schedule!r}")
        if m.head not in ("mlm", "sequence_classification", "token_classification"):
            fail(f"model.head must be mlm, sequence_classification or token_classification, got {m.head!r}")
        if d.task == "mlm":
            if m.head != "mlm":
                fail("data.task mlm needs model.head mlm")
            if not d.packed:
                fail("data.packed (a folder made by `train pack`) is required for MLM training")
        if m.init_from is None and not m.tokenizer:
            fail("model.tokenizer is required when model.init_from is not given")
        if d.segment_curriculum is not None:
            if m.rmt is None:
                fail("data.segment_curriculum needs model.rmt")
            steps = [s for s, _ in d.segment_curriculum]
            if steps != sorted(steps) or steps[0] != 0 or any(n < 1 for _, n in d.segment_curriculum):
                fail("data.segment_curriculum must be [[0, n0], [step1, n1], ...] with increasing steps, n >= 1")
        if not 0 <= d.random_segments_probability <= 1:
            fail("data.random_segments_probability must be in [0, 1]")
        for where, value in _floats(self):
            if not math.isfinite(value):
                fail(f"{where} must be a finite number, got {value}")
        if not 0 < d.mlm_probability < 1 or not 0 <= d.short_sample_probability <= 1:
            fail(f"data.mlm_probability must be in (0, 1) and data.short_sample_probability in [0, 1], got "
                 f"{d.mlm_probability} and {d.short_sample_probability}")
        if len(o.betas) != 2 or not all(isinstance(b, (int, float)) and 0 <= b < 1 for b in o.betas):
            fail(f"optim.betas must be two numbers in [0, 1), e.g. [0.9, 0.98], got {o.betas!r}")
        if o.weight_decay < 0 or o.eps <= 0 or (o.clip_grad_norm is not None and o.clip_grad_norm <= 0):
            fail("optim.weight_decay must be >= 0, optim.eps > 0 and optim.clip_grad_norm > 0 or null")
        # the open sections, each typed by the class that reads it
        m.config = typed_config.check(typed_config.constructor_schema(GenaConfig, exclude=("extra",)), m.config,
                                      source, RunConfigError, "model.config.", construct=False)
        if m.rmt is not None:
            m.rmt = typed_config.check(RMTConfig, m.rmt, source, RunConfigError, "model.rmt.")
        if d.task != "mlm":
            from ..tasks import TASK_KINDS

            if d.task not in TASK_KINDS:
                fail(f"data.task must be mlm or one of {', '.join(TASK_KINDS)}, got {d.task!r}")
            d.args = typed_config.check(TASK_KINDS[d.task][0], d.args, source, RunConfigError, "data.args.")
        return self


def _floats(section: Any, prefix: str = "") -> list[tuple[str, float]]:
    """Every float (and list-of-float) value of the config, with its dotted name."""
    found = []
    for f in dataclasses.fields(section):
        value = getattr(section, f.name)
        if dataclasses.is_dataclass(value):
            found += _floats(value, f"{prefix}{f.name}.")
        elif isinstance(value, float):
            found.append((f"{prefix}{f.name}", value))
        elif isinstance(value, list):
            found += [(f"{prefix}{f.name}", v) for v in value if isinstance(v, float)]
    return found

"""Model folders in the official GENA-LM / Hugging Face format: `config.json` + weights (+ tokenizer files).

Weights are read from `model.safetensors` or, for official hub folders, `pytorch_model.bin` (a pickle: loaded with
`torch.load(weights_only=True)`, which refuses anything but tensors). We always write safetensors. Parameter names
are the official ones (`bert.encoder.layer.0.pre_attention_ln.weight`, ...); RMT checkpoints carry the backbone
under `model.` and memory-token rows appended to the word embeddings.

Missing and unexpected parameters are never ignored silently: `load_model` returns a `LoadReport` and logs it, and
`strict=True` turns any mismatch into an error.
"""
from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes
from torch import nn

from .config import ConfigError, GenaConfig, RMTConfig
from .io_utils import atomic_write
from .modeling_gena import ARCHITECTURE_HEADS, HEAD_ARCHITECTURES, HEADS, build_model
from .rmt import RMT

log = logging.getLogger(__name__)

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
# Buffers some official files carry that hold no learned state.
IGNORED_KEYS = ("bert.embeddings.position_ids",)
# Tied or aliased parameters: stored once, restored by tying. The decoder weight is an alias only while the config
# ties it (`GenaConfig.ties_word_embeddings`); an untied decoder is a parameter of its own, loaded and saved as such.
ALIASES = {"cls.predictions.decoder.weight": "bert.embeddings.word_embeddings.weight",
           "cls.predictions.decoder.bias": "cls.predictions.bias"}
DECODER, EMBEDDINGS = "cls.predictions.decoder.weight", "bert.embeddings.word_embeddings.weight"


class CheckpointError(ValueError):
    pass


@dataclass
class LoadReport:
    source: str
    missing: list[str] = field(default_factory=list)      # in the model, not in the file: freshly initialised
    unexpected: list[str] = field(default_factory=list)   # in the file, not used by the model
    ignored: list[str] = field(default_factory=list)      # known non-parameters (position_ids buffers)

    @property
    def clean(self) -> bool:
        return not self.missing and not self.unexpected

    def __str__(self) -> str:
        lines = [f"loaded {self.source}"]
        if self.missing:
            lines.append(f"  newly initialised (not in checkpoint): {', '.join(self.missing)}")
        if self.unexpected:
            lines.append(f"  unused checkpoint parameters: {', '.join(self.unexpected)}")
        return "\n".join(lines)


def read_state_dict(folder: str | os.PathLike) -> tuple[dict[str, torch.Tensor], Path]:
    folder = Path(folder)
    for name in WEIGHT_FILES:
        path = folder / name
        if path.is_file():
            if name.endswith(".safetensors"):
                return load_file(str(path)), path
            try:
                state = torch.load(path, map_location="cpu", weights_only=True)
            except Exception as err:  # weights_only refuses arbitrary pickled objects: say so plainly
                raise CheckpointError(f"{path}: cannot be loaded safely as plain tensors ({err})") from None
            if not isinstance(state, dict):
                raise CheckpointError(f"{path}: expected a dict of tensors, got {type(state).__name__}")
            return state, path
    raise CheckpointError(f"{folder}: no weights found (looked for {', '.join(WEIGHT_FILES)})")


def resolve_model_folder(path: str | os.PathLike) -> Path:
    """A model folder, or a training run directory (then its latest checkpoint)."""
    path = Path(path)
    if (path / "config.json").is_file():
        return path
    latest = path / "checkpoints" / "latest"
    if latest.is_file():
        return path / "checkpoints" / latest.read_text().strip()
    raise CheckpointError(f"{path}: neither a model folder (config.json) nor a run directory (checkpoints/latest)")


def head_from_config(config: GenaConfig) -> str:
    for arch in config.architectures or []:
        if arch in ARCHITECTURE_HEADS:
            return ARCHITECTURE_HEADS[arch]
    return "mlm"


def _normalise_keys(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Strip an RMT `model.` prefix and drop known non-parameters; keep aliases consistent."""
    if state and all(k.startswith("model.") for k in state):
        state = {k[len("model."):]: v for k, v in state.items()}
    ignored = [k for k in state if k in IGNORED_KEYS]
    state = {k: v for k, v in state.items() if k not in IGNORED_KEYS}
    return state, ignored


def _infer_rmt(config: GenaConfig, state: dict[str, torch.Tensor], path: Path) -> GenaConfig:
    """Official RMT checkpoints append the m memory-token rows to the word embeddings but their config.json has no
    `rmt` section: recognise them by the extra rows."""
    emb = state.get("bert.embeddings.word_embeddings.weight")
    if config.rmt is not None or emb is None or emb.shape[0] <= config.vocab_size:
        return config
    extra = emb.shape[0] - config.vocab_size
    log.warning("%s: %d word-embedding rows beyond the vocabulary of %d: loading as an RMT model with %d memory "
                "tokens", path, extra, config.vocab_size, extra)
    return config.replace(rmt=RMTConfig(num_mem_tokens=extra))


def _untie_differing_decoder(config: GenaConfig, head: str, state: dict[str, torch.Tensor], path: Path
                             ) -> tuple[GenaConfig, str | None]:
    """A checkpoint whose MLM decoder differs from its word embeddings was trained untied: keep it untied
    (`tie_word_embeddings: false`, as HF) instead of replacing the decoder by the embeddings. Equal or absent: tied."""
    decoder, embeddings = state.get(DECODER), state.get(EMBEDDINGS)
    if head != "mlm" or decoder is None or embeddings is None or not config.ties_word_embeddings:
        return config, None
    if decoder.shape == embeddings.shape and torch.equal(decoder, embeddings):
        return config, None
    note = (f"{path}: {DECODER} differs from {EMBEDDINGS}: the decoder is kept untied "
            "(tie_word_embeddings: false)")
    return config.replace(tie_word_embeddings=False), note


def load_model(folder: str | os.PathLike, head: str | None = None, config: GenaConfig | None = None,
               strict: bool = False, num_labels: int | None = None) -> tuple[nn.Module, LoadReport]:
    """Build the model described by `folder/config.json` and load its weights.

    head: "mlm", "sequence_classification", "token_classification" or "embedding"; default from the config's
    `architectures`. Loading a pretrained MLM folder with a classification head is how fine-tuning starts: the
    head's parameters are then reported as newly initialised. Returns the model (an `RMT` when the config has an
    `rmt` section) and the report.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"{folder}: model folder not found")
    config = config or GenaConfig.from_json(folder / "config.json")
    if num_labels is not None and num_labels != config.num_labels:
        config = config.replace(num_labels=num_labels, id2label=None)
    head = head or head_from_config(config)
    state, path = read_state_dict(folder)
    state, ignored = _normalise_keys(state)
    config = _infer_rmt(config, state, path)
    config, untied = _untie_differing_decoder(config, head, state, path)
    if untied:
        log.warning("%s", untied)

    model = build_model(config, head)
    if config.rmt is not None:
        model = RMT(model, config.rmt)
        state = {f"model.{k}": v for k, v in state.items()}
        prefix = "model."
    else:
        prefix = ""
    own = model.state_dict()
    report = LoadReport(source=str(path), ignored=ignored)
    to_load = {}
    for key, value in state.items():
        if key not in own:
            report.unexpected.append(key)
            continue
        if own[key].shape != value.shape:
            raise CheckpointError(f"{path}: parameter {key} has shape {tuple(value.shape)} in the checkpoint but "
                                  f"{tuple(own[key].shape)} in the model built from config.json")
        to_load[key] = value
    aliases = {prefix + k: prefix + v for k, v in ALIASES.items()
               if k != DECODER or config.ties_word_embeddings}
    for key in own:
        if key in to_load:
            continue
        if key in aliases and aliases[key] in to_load:
            continue  # tied / aliased: restored through its twin
        report.missing.append(key)
    model.load_state_dict(to_load, strict=False)
    if hasattr(model, "model"):
        model.model.tie_weights()
    else:
        model.tie_weights()
    if strict and not report.clean:
        raise CheckpointError(str(report))
    if not report.clean:
        log.warning("%s", report)
    return model, report


def model_config(model: nn.Module) -> GenaConfig:
    inner = model.model if isinstance(model, RMT) else model
    return inner.config


def save_model(model: nn.Module, folder: str | os.PathLike, head: str | None = None,
               dtype: torch.dtype | None = None) -> Path:
    """Write `config.json` and `model.safetensors` (official names) into `folder`, atomically per file.

    dtype=torch.float16 halves the size of bundled models; loading casts back to float32.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    inner = model.model if isinstance(model, RMT) else model
    config = inner.config
    head = head or next((h for h, cls in HEADS.items() if type(inner) is cls), None)
    if head is None:
        raise CheckpointError(f"cannot tell the head of {type(inner).__name__}")
    # A copy: the live model's config is not ours to change.
    config = dataclasses.replace(config, architectures=[HEAD_ARCHITECTURES[head]],
                                 rmt=model.rmt if isinstance(model, RMT) else None)
    state = {}
    tied = getattr(getattr(inner, "cls", None), "predictions", None) is not None and \
        inner.cls.predictions.decoder.weight is inner.bert.embeddings.word_embeddings.weight
    for key, value in inner.state_dict().items():
        if key in ALIASES and (key != DECODER or tied):
            continue  # tied: stored once under its twin's name
        value = value.detach().cpu()
        if dtype is not None and value.is_floating_point():
            value = value.to(dtype)
        state[key] = value.contiguous()
    config.save(folder)
    target = folder / "model.safetensors"
    with atomic_write(target, "wb") as handle:
        # one metadata key only: safetensors writes several in a random order, and the file (and its sha256,
        # recorded in every export) must be the same bytes each time the same weights are saved; the head is in
        # config.json's `architectures`
        handle.write(safetensors_bytes(state, metadata={"format": "pt"}))
    return target


__all__ = ["CheckpointError", "ConfigError", "LoadReport", "load_model", "save_model", "read_state_dict",
           "head_from_config", "model_config"]

"""Model folders in the official GENA-LM / Hugging Face format: `config.json` + weights (+ tokenizer files).

Weights are read from `model.safetensors` or, for official hub folders, `pytorch_model.bin` (a pickle: loaded with
`torch.load(weights_only=True)`, which refuses anything but tensors). We always write safetensors. Parameter names
are the official ones (`bert.encoder.layer.0.pre_attention_ln.weight`, ...).

Official RMT checkpoints (the state_dict of the official `modeling_rmt.RMTEncoderFor*` wrapper, as its training
scripts save it under `model_state_dict`) carry the backbone under `model.`, the m memory-token rows appended to
the word embeddings, the buffers `mem_token_ids`, `cls_token`, `sep_token`, and the word embeddings a second time
as `model.embeddings.weight`; their config.json has no `rmt` section. They load as our `RMT` with the memory tokens
of the checkpoint and the official segment padding (`RMTConfig.segment_padding="official"`).

Missing and unexpected parameters are never ignored silently: a parameter of the model that the checkpoint lacks
(it would stay randomly initialised) is a `CheckpointError` unless the caller allows it (`allow_missing`: a new
classifier head when fine-tuning starts from a backbone); so is an unused checkpoint parameter (`allow_unexpected`),
except the heads a model leaves aside by design (`UNUSED_BY_HEAD`). `strict=True` refuses any mismatch at all.
`load_model` returns a `LoadReport` and logs it.
"""
from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

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
HUB_PREFIX = "hf://"   # a Hugging Face hub repository instead of a folder: hf://ORG/NAME[@REVISION]
# Buffers some official files carry that hold no learned state.
IGNORED_KEYS = ("bert.embeddings.position_ids",)
# Tied or aliased parameters: stored once, restored by tying. The decoder weight is an alias only while the config
# ties it (`GenaConfig.ties_word_embeddings`); an untied decoder is a parameter of its own, loaded and saved as such.
ALIASES = {"cls.predictions.decoder.weight": "bert.embeddings.word_embeddings.weight",
           "cls.predictions.decoder.bias": "cls.predictions.bias"}
DECODER, EMBEDDINGS = "cls.predictions.decoder.weight", "bert.embeddings.word_embeddings.weight"
# What the official RMT wrapper (modeling_rmt.py: extract_special_tokens, extend_word_embeddings) keeps in its
# state_dict besides `model.*`: three buffers, and the word-embedding module a second time under the wrapped model's
# `embeddings` attribute.
RMT_BUFFERS = ("mem_token_ids", "cls_token", "sep_token")
RMT_EMBEDDINGS_ALIAS = "embeddings.weight"
# Checkpoint parameters a head leaves unused by design (HF/official `_keys_to_ignore_on_load_unexpected`: the pooler
# for MLM and token heads; the NSP head of BertForPreTraining checkpoints read as MLM; every head, pretraining or
# fine-tuned, when only the backbone is read, as transformers' AutoModel does). Names in official backbone naming
# (no RMT `model.` prefix).
UNUSED_BY_HEAD = {
    "mlm": ("bert.pooler.", "cls.seq_relationship."),
    "sequence_classification": (),
    "token_classification": ("bert.pooler.",),
    "embedding": ("bert.pooler.", "cls.", "classifier."),
}


class CheckpointError(ValueError):
    pass


@dataclass
class LoadReport:
    source: str
    missing: list[str] = field(default_factory=list)      # in the model, not in the file: freshly initialised
    unexpected: list[str] = field(default_factory=list)   # in the file, not used by the model
    ignored: list[str] = field(default_factory=list)      # known non-parameters (position_ids, RMT buffers)
    notes: list[str] = field(default_factory=list)        # how the checkpoint was read (official RMT, untied decoder)

    @property
    def clean(self) -> bool:
        return not self.missing and not self.unexpected

    def __str__(self) -> str:
        lines = [f"loaded {self.source}"]
        lines += [f"  {note}" for note in self.notes]
        if self.missing:
            lines.append(f"  newly initialised (not in checkpoint): {', '.join(self.missing)}")
        if self.unexpected:
            lines.append(f"  unused checkpoint parameters: {', '.join(self.unexpected)}")
        return "\n".join(lines)


def read_safetensors(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file; a truncated, empty or damaged file is a CheckpointError naming it."""
    try:
        return load_file(str(path))
    except Exception as err:  # safetensors raises SafetensorError / OSError with no file name
        reason = str(err).splitlines()[0] if str(err) else err.__class__.__name__
        raise CheckpointError(f"{path}: cannot be read as safetensors ({reason}): the file is truncated or damaged; "
                              "export or download it again (a training checkpoint: delete that checkpoint folder "
                              "and resume from an earlier one)") from None


def read_state_dict(folder: str | os.PathLike) -> tuple[dict[str, torch.Tensor], Path]:
    folder = Path(folder)
    for name in WEIGHT_FILES:
        path = folder / name
        if path.is_file():
            if name.endswith(".safetensors"):
                return read_safetensors(path), path
            try:
                state = torch.load(path, map_location="cpu", weights_only=True)
            except Exception as err:  # weights_only refuses arbitrary pickled objects: say so plainly
                reason = str(err).splitlines()[0] if str(err) else err.__class__.__name__
                if "Weights only load failed" in reason or "weights_only" in reason:
                    reason = ("it holds Python objects other than tensors; unpickling them could run arbitrary "
                              "code, so it is refused (convert trusted files to safetensors)")
                raise CheckpointError(f"{path}: cannot be loaded safely as plain tensors: {reason}") from None
            if not isinstance(state, dict):
                raise CheckpointError(f"{path}: expected a dict of tensors, got {type(state).__name__}")
            if isinstance(state.get("model_state_dict"), dict):
                # the official training scripts' checkpoints: {"model_state_dict": ..., "optimizer_state_dict": ...}
                state = state["model_state_dict"]
            bad = next((k for k, v in state.items() if not isinstance(v, torch.Tensor)), None)
            if bad is not None:
                raise CheckpointError(f"{path}: entry {bad!r} is a {type(state[bad]).__name__}, not a tensor")
            return state, path
    raise CheckpointError(f"{folder}: no weights found (looked for {', '.join(WEIGHT_FILES)})")


def resolve_model_folder(path: str | os.PathLike) -> Path:
    """A model folder, a training run directory (then its latest checkpoint), or a Hugging Face hub repository
    `hf://ORG/NAME[@REVISION]` (e.g. `hf://AIRI-Institute/gena-lm-bert-base-t2t`, a fine-tuned head
    `hf://AIRI-Institute/gena-lm-bert-large-t2t@promoters_2000_run_1`): fetched once into the Hugging Face cache
    (`hub.fetch`; offline with HF_HUB_OFFLINE=1), its snapshot folder returned."""
    text = str(path)
    if text.startswith(HUB_PREFIX):
        from .hub import fetch

        repo_id, _, revision = text[len(HUB_PREFIX):].partition("@")
        return fetch(repo_id, revision or "main").folder
    path = Path(path)
    if (path / "config.json").is_file():
        return path
    latest = path / "checkpoints" / "latest"
    if latest.is_file():
        return path / "checkpoints" / latest.read_text().strip()
    raise CheckpointError(f"{path}: neither a model folder (config.json) nor a run directory (checkpoints/latest) "
                          f"nor a hub repository ({HUB_PREFIX}ORG/NAME[@REVISION])")


def head_from_config(config: GenaConfig) -> str:
    for arch in config.architectures or []:
        if arch in ARCHITECTURE_HEADS:
            return ARCHITECTURE_HEADS[arch]
    return "mlm"


def _short(names: list[str], limit: int = 8) -> str:
    return ", ".join(names[:limit]) + (f" ... ({len(names) - limit} more)" if len(names) > limit else "")


def _normalise_keys(state: dict[str, torch.Tensor], path: Path
                    ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], list[str]]:
    """Unwrap an official RMT state_dict and drop known non-parameters.

    Returns (backbone state in official names, the official RMT buffers found, ignored names). Keys under `model.`
    lose the prefix; `model.embeddings.weight` (the official wrapper's second name of the word embeddings) is
    dropped when it equals them (CheckpointError when it does not); other keys beside `model.*` stay, and are
    reported unused unless they are the wrapper's buffers.
    """
    buffers: dict[str, torch.Tensor] = {}
    ignored: list[str] = []
    if any(k.startswith("model.") for k in state):
        inner = {k[len("model."):]: v for k, v in state.items() if k.startswith("model.")}
        buffers = {k: v for k, v in state.items() if k in RMT_BUFFERS}
        ignored += list(buffers)
        stray = {k: v for k, v in state.items() if not k.startswith("model.") and k not in RMT_BUFFERS}
        alias = inner.pop(RMT_EMBEDDINGS_ALIAS, None)
        if alias is not None:
            ignored.append("model." + RMT_EMBEDDINGS_ALIAS)
            own = inner.setdefault(EMBEDDINGS, alias)
            if own is not alias and not (own.shape == alias.shape and torch.equal(own, alias)):
                raise CheckpointError(f"{path}: model.{RMT_EMBEDDINGS_ALIAS} differs from model.{EMBEDDINGS} (the "
                                      "official RMT wrapper stores one matrix under both names)")
        clash = [k for k in stray if k in inner]
        if clash:
            raise CheckpointError(f"{path}: parameters both with and without the RMT `model.` prefix: "
                                  f"{_short(clash)}")
        state = {**inner, **stray}
    ignored += [k for k in state if k in IGNORED_KEYS]
    state = {k: v for k, v in state.items() if k not in IGNORED_KEYS}
    return state, buffers, ignored


def _head_from_weights(state: dict[str, torch.Tensor]) -> str | None:
    """The head the weights were saved from: an MLM head if they have one; else a classifier with a pooler is a
    sequence head, one without a token head (BertForTokenClassification has no pooler). None: only a backbone."""
    if any(k.startswith("cls.predictions.") for k in state):
        return "mlm"
    if "classifier.weight" in state:
        return "sequence_classification" if "bert.pooler.dense.weight" in state else "token_classification"
    return None


def _infer_rmt(config: GenaConfig, state: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor], path: Path
               ) -> tuple[GenaConfig, dict[str, int], str | None]:
    """Recognise an official RMT checkpoint (config.json without an `rmt` section): by its `mem_token_ids` buffer,
    or by word-embedding rows beyond the vocabulary. Returns the config with an `rmt` section (official segment
    padding), the wrapper's [CLS]/[SEP] ids, and a note; the config unchanged when it is not one.

    HF's resize_token_embeddings, which the official wrapper calls, also raises the model config's vocab_size to
    vocab + m: a config.json saved from that model is read back with the vocabulary before the memory tokens.
    """
    if config.rmt is not None:
        return config, {}, None
    emb = state.get(EMBEDDINGS)
    rows = None if emb is None else emb.shape[0]
    if "mem_token_ids" in buffers:
        mem = [int(i) for i in buffers["mem_token_ids"].flatten().tolist()]
        m, first = len(mem), (mem[0] if mem else 0)
        if not mem or mem != list(range(first, first + m)):
            raise CheckpointError(f"{path}: mem_token_ids {mem} are not consecutive token ids")
        if rows is not None and rows != first + m:
            raise CheckpointError(f"{path}: mem_token_ids end at id {first + m - 1} but the word embeddings have "
                                  f"{rows} rows")
        if config.vocab_size == first + m:
            config = config.replace(vocab_size=first)
        elif config.vocab_size != first:
            raise CheckpointError(f"{path}: the memory tokens start at id {first} but config.json has vocab_size "
                                  f"{config.vocab_size}")
    elif rows is not None and rows > config.vocab_size:
        m = rows - config.vocab_size
    else:
        return config, {}, None
    ids = {name: int(buffers[key].flatten()[0]) for name, key in (("cls_id", "cls_token"), ("sep_id", "sep_token"))
           if key in buffers}
    note = (f"official RMT checkpoint: {m} memory tokens (their embeddings from the checkpoint), segments padded as "
            "the official RMT sequence classifier (rmt.segment_padding: official)")
    return config.replace(rmt=RMTConfig(num_mem_tokens=m, segment_padding="official")), ids, note


def _allowed(name: str, allowance: bool | str | Sequence[str]) -> bool:
    if isinstance(allowance, bool):
        return allowance
    prefixes = (allowance,) if isinstance(allowance, str) else tuple(allowance)
    return name.startswith(prefixes) if prefixes else False


def _untie_differing_decoder(config: GenaConfig, head: str, state: dict[str, torch.Tensor]
                             ) -> tuple[GenaConfig, str | None]:
    """A checkpoint whose MLM decoder differs from its word embeddings was trained untied: keep it untied
    (`tie_word_embeddings: false`, as HF) instead of replacing the decoder by the embeddings. Equal or absent: tied."""
    decoder, embeddings = state.get(DECODER), state.get(EMBEDDINGS)
    if head != "mlm" or decoder is None or embeddings is None or not config.ties_word_embeddings:
        return config, None
    if decoder.shape == embeddings.shape and torch.equal(decoder, embeddings):
        return config, None
    note = f"{DECODER} differs from {EMBEDDINGS}: the decoder is kept untied (tie_word_embeddings: false)"
    return config.replace(tie_word_embeddings=False), note


def load_model(folder: str | os.PathLike, head: str | None = None, config: GenaConfig | None = None,
               strict: bool = False, num_labels: int | None = None, *,
               allow_missing: bool | Sequence[str] = False,
               allow_unexpected: bool | Sequence[str] = False) -> tuple[nn.Module, LoadReport]:
    """Build the model described by `folder/config.json` and load its weights.

    head: "mlm", "sequence_classification", "token_classification" or "embedding"; default from the config's
    `architectures`, or from the weights when those name another head (the official configs say BertForMaskedLM
    even beside a fine-tuned classifier). config: used instead of `folder/config.json`; num_labels: a classifier
    of this many outputs (fine-tuning).

    allow_missing: model parameters the checkpoint may lack (they stay randomly initialised) - True for any, or
    name prefixes in official backbone naming (no RMT `model.` prefix), e.g. ("classifier.", "bert.pooler.") when
    fine-tuning starts from a pretrained backbone. allow_unexpected: likewise for checkpoint parameters the model
    does not use, beyond those its head leaves aside by design (`UNUSED_BY_HEAD`: pooler, pretraining heads).
    strict: no missing and no unused parameters at all, whatever is allowed.

    Returns the model (an `RMT` when the config has an `rmt` section or the checkpoint is an official RMT one, see
    the module docstring) and the `LoadReport` (logged when not clean). Raises CheckpointError (one line naming the
    weights file) for a missing folder or weights, parameters missing or unused beyond what is allowed, a shape
    that differs from config.json, or an inconsistent official RMT checkpoint; ConfigError for a bad config.json.

    A stock Hugging Face BigBird folder (config.json `model_type: big_bird`, gena-lm-bigbird-base-t2t) loads with
    transformers' own classes as a `bigbird.HFBigBird` (same arguments and errors; `config` may then be a
    transformers BigBirdConfig or a config.json dict).
    """
    from . import bigbird

    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"{folder}: model folder not found")
    if bigbird.is_bigbird(folder if config is None else config):
        return bigbird.load_bigbird(folder, head, config, strict, num_labels, allow_missing=allow_missing,
                                    allow_unexpected=allow_unexpected)
    config = config or GenaConfig.from_json(folder / "config.json")
    if num_labels is not None and num_labels != config.num_labels:
        config = config.replace(num_labels=num_labels, id2label=None)
    state, path = read_state_dict(folder)
    state, buffers, ignored = _normalise_keys(state, path)
    report = LoadReport(source=str(path), ignored=ignored)
    if head is None:
        head = head_from_config(config)
        saved = _head_from_weights(state)
        if head == "mlm" and saved in ("sequence_classification", "token_classification"):
            # the official configs (data/configs/*.json) name BertForMaskedLM whatever was fine-tuned from them
            report.notes.append(f"weights of a {saved} head without an MLM head (config.json's architectures say "
                                f"{head}): loaded as {saved}")
            head = saved
    if head not in UNUSED_BY_HEAD:
        raise CheckpointError(f"{path}: unknown head {head!r}; choose one of {', '.join(UNUSED_BY_HEAD)}")
    config, special_ids, note = _infer_rmt(config, state, buffers, path)
    if note:
        report.notes.append(note)
    config, untied = _untie_differing_decoder(config, head, state)
    if untied:
        report.notes.append(untied)

    model = build_model(config, head)
    if config.rmt is not None:
        model = RMT(model, config.rmt, **special_ids)
        state = {f"model.{k}": v for k, v in state.items()}
        prefix = "model."
    else:
        prefix = ""
    own = model.state_dict()
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

    check_report(report, head, path, strict, allow_missing, allow_unexpected, prefix)
    return model, report


def check_report(report: LoadReport, head: str, path: Path, strict: bool, allow_missing: bool | Sequence[str],
                 allow_unexpected: bool | Sequence[str], prefix: str = "", missing_by_design: tuple[str, ...] = ()
                 ) -> None:
    """Refuse (CheckpointError) parameters missing or unused beyond what `load_model`'s arguments allow; log the
    report when it is not clean. prefix: the RMT `model.` prefix, stripped before matching the allowances;
    missing_by_design: model parameters no head reads (bigbird.py: BigBird's pooler)."""
    def bare(name: str) -> str:
        return name[len(prefix):] if prefix and name.startswith(prefix) else name

    if strict and not report.clean:
        raise CheckpointError(f"{path}: strict load of the {head} model: " + "; ".join(
            part for part in (report.missing and f"newly initialised (not in checkpoint): {_short(report.missing)}",
                              report.unexpected and f"unused checkpoint parameters: {_short(report.unexpected)}")
            if part))
    missing = [k for k in report.missing
               if not (_allowed(bare(k), allow_missing) or bare(k).startswith(missing_by_design))]
    if missing:
        raise CheckpointError(f"{path}: {len(missing)} parameter(s) of the {head} model are not in the checkpoint "
                              f"and would stay randomly initialised: {_short(missing)} (pass allow_missing= to "
                              "load_model when that is intended, e.g. a new classifier head)")
    unused = [k for k in report.unexpected
              if not (_allowed(bare(k), allow_unexpected) or bare(k).startswith(UNUSED_BY_HEAD[head]))]
    if unused:
        raise CheckpointError(f"{path}: {len(unused)} checkpoint parameter(s) are not used by the {head} model: "
                              f"{_short(unused)} (wrong head or config.json? pass allow_unexpected= to load_model "
                              "when that is intended)")
    if not report.clean or report.notes:
        log.warning("%s", report)


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
           "read_safetensors",
           "head_from_config", "model_config"]

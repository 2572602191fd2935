"""The stock Hugging Face BigBird GENA-LM (`AIRI-Institute/gena-lm-bigbird-base-t2t`) behind our head interface.

That published model is no GENA-LM BERT (post-LN, gelu_new, transformers' block-sparse attention, 4096 positions):
it runs on transformers' own classes (`BigBirdForMaskedLM`, `BigBirdModel`, `BigBirdForSequenceClassification`,
`BigBirdForTokenClassification`; no remote code, no network), wrapped in `HFBigBird`, which behaves like our head
models as far as `predict.Predictor` and `predict.forward_content` need:
- `model(input_ids, attention_mask, labels=None, labels_mask=None)` returns a `GenaOutput` (hidden_states (B, T, H),
  the head's logits; with MLM labels, the logits of the labelled positions only, as `GenaForMaskedLM`; losses as our
  heads compute them);
- `.config` is a `GenaConfig` view of the BigBird config (max_position_embeddings 4096, so 4094 content tokens,
  ~36 kb; hidden_size; the problem type resolved as for our heads); `.head_name` says which head it is.

Attention as transformers computes it, made independent of batching:
- block-sparse attention needs more than (5 + 2 * num_random_blocks) * block_size tokens (704 for the published
  model); transformers runs shorter inputs with full attention, warns on every such call and then stays in full
  attention for all later inputs. We keep the switch but decide it per sequence on each call, and say so once per
  model;
- block-sparse attention is not padding-invariant (the last block is a global block; the random-block plan depends
  on the block count): sequences long enough for it run one at a time at their own length (padded to a multiple of
  the block size, as transformers pads), so each output is what transformers gives for that sequence alone. Shorter
  sequences run batched with full attention, which a padding mask keeps padding-invariant. In eval mode the random
  blocks are fixed: outputs are deterministic;
- transformers 5's block-sparse attention fails under autocast with fp32 weights (a dtype clash where it rebuilds the
  attention probabilities): block-sparse calls run with autocast off, in the weights' dtype. `Predictor` therefore
  runs bf16 as a bf16 copy of the weights (`inference_copy`): there is no fused inference copy of this model
  (inference.py knows only our modules).

Loading (`load_bigbird`, which `checkpoint.load_model` calls for a folder whose config.json says `model_type:
big_bird`) goes through transformers' `from_pretrained(..., output_loading_info=True)`: model parameters missing
from the checkpoint and checkpoint parameters the head does not use are a CheckpointError as for our models. Left
aside by design: what `checkpoint.UNUSED_BY_HEAD` lists, and BigBird's pooler, which none of our heads reads.
transformers is imported only when a BigBird is loaded.
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import logging
import os
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .config import GenaConfig
from .modeling_gena import GenaOutput, sequence_loss, token_loss

log = logging.getLogger(__name__)

MODEL_TYPE = "big_bird"
HF_CLASSES = {  # our head -> the transformers class it runs on
    "mlm": "BigBirdForMaskedLM",
    "embedding": "BigBirdModel",
    "sequence_classification": "BigBirdForSequenceClassification",
    "token_classification": "BigBirdForTokenClassification",
}
ARCHITECTURE_HEADS = {"BigBirdForPreTraining": "mlm", "BigBirdForMaskedLM": "mlm", "BigBirdModel": "embedding",
                      "BigBirdForSequenceClassification": "sequence_classification",
                      "BigBirdForTokenClassification": "token_classification"}
POOLER = "bert.pooler."  # in every transformers BigBird head, read by none of ours: a checkpoint may lack it


def is_bigbird(source: Any) -> bool:
    """Whether `source` (a model folder, a config.json dict or a config object) is a stock transformers BigBird."""
    if isinstance(source, (str, os.PathLike)):
        try:
            source = json.loads((Path(source) / "config.json").read_text())
        except (OSError, ValueError):
            return False
    if isinstance(source, dict):
        return source.get("model_type") == MODEL_TYPE
    return getattr(source, "model_type", None) == MODEL_TYPE


def hf_config(data: dict[str, Any]):
    """A config.json dict -> `transformers.BigBirdConfig`."""
    from transformers import BigBirdConfig

    return BigBirdConfig.from_dict(dict(data))


def gena_config(config) -> GenaConfig:
    """The `GenaConfig` view of a BigBirdConfig: the fields both have, post-LN, the BigBird attention in `extra`."""
    shared = {f.name: getattr(config, f.name) for f in dataclasses.fields(GenaConfig)
              if f.name not in ("rmt", "extra", "pre_layer_norm", "last_layer_norm") and hasattr(config, f.name)}
    extra = {"model_type": MODEL_TYPE, **{k: getattr(config, k) for k in
                                          ("attention_type", "block_size", "num_random_blocks")}}
    return GenaConfig(**shared, pre_layer_norm=False, last_layer_norm=False, extra=extra)


class HFBigBird(nn.Module):
    """A transformers BigBird head model (`.hf`) with the interface of our heads (see the module docstring)."""

    def __init__(self, hf_model: nn.Module, head: str):
        super().__init__()
        if head not in HF_CLASSES:
            raise ValueError(f"unknown head {head!r}; choose one of {', '.join(HF_CLASSES)}")
        self.hf = hf_model
        self.head_name = head
        self.config = gena_config(hf_model.config)
        self._said_full = False

    @property
    def bigbird(self) -> nn.Module:
        """The transformers `BigBirdModel` (embeddings + encoder)."""
        return self.hf if self.head_name == "embedding" else self.hf.bert

    @property
    def full_attention_max(self) -> int:
        """Inputs of at most this many tokens (specials included) run with full attention, as in transformers."""
        config = self.hf.config
        return (5 + 2 * config.num_random_blocks) * config.block_size

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None, labels: torch.Tensor | None = None,
                labels_mask: torch.Tensor | None = None) -> GenaOutput:
        h = self.encode(input_ids, attention_mask, token_type_ids)
        if self.head_name == "embedding":
            return GenaOutput(logits=None, hidden_states=h)
        if self.head_name == "mlm":
            if labels is None:
                return GenaOutput(logits=self.hf.cls(h), hidden_states=h)
            selected = labels != -100  # as GenaForMaskedLM: the vocabulary decoder only where there are labels
            logits = self.hf.cls(h[selected])
            loss = F.cross_entropy(logits.float(), labels[selected]) if logits.numel() else h.sum() * 0.0
            return GenaOutput(logits=logits, hidden_states=h, loss=loss)
        if self.head_name == "sequence_classification":
            logits = self.hf.classifier(h)  # BigBirdClassificationHead: dense, activation, out_proj on h[:, 0]
            loss = sequence_loss(logits, labels, self.config) if labels is not None else None
            return GenaOutput(logits=logits, hidden_states=h, loss=loss)
        logits = self.hf.classifier(self.hf.dropout(h))
        loss = token_loss(logits, labels, labels_mask, None, self.config) if labels is not None else None
        return GenaOutput(logits=logits, hidden_states=h, loss=loss)

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
               token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        """Last-layer states (B, T, H); each sequence computed as transformers computes it alone."""
        batch, width = input_ids.shape
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        if self.hf.config.attention_type != "block_sparse" or width <= self.full_attention_max:
            return self._run(input_ids, attention_mask, token_type_ids, "original_full")
        # one past each row's last attended token: its right padding is dropped, masked tokens inside it stay
        positions = torch.arange(1, width + 1, device=input_ids.device)
        ends = [max(1, n) for n in (attention_mask.bool() * positions).amax(dim=1).tolist()]
        rows: list[torch.Tensor | None] = [None] * batch
        short = [i for i, n in enumerate(ends) if n <= self.full_attention_max]
        if short:  # batched, full attention
            n = max(ends[i] for i in short)
            index = torch.tensor(short, device=input_ids.device)
            types = None if token_type_ids is None else token_type_ids[index, :n]
            h = self._run(input_ids[index, :n], attention_mask[index, :n], types, "original_full")
            for k, i in enumerate(short):
                rows[i] = h[k]
        for i, n in enumerate(ends):  # block-sparse: one at a time, at its own length
            if rows[i] is None:
                types = None if token_type_ids is None else token_type_ids[i: i + 1, :n]
                rows[i] = self._run(input_ids[i: i + 1, :n], attention_mask[i: i + 1, :n], types, "block_sparse")[0]
        return torch.stack([F.pad(r, (0, 0, 0, width - r.shape[0])) for r in rows])

    def _run(self, ids: torch.Tensor, mask: torch.Tensor, types: torch.Tensor | None, attention: str
             ) -> torch.Tensor:
        model, config = self.bigbird, self.hf.config
        if attention == "original_full" and config.attention_type == "block_sparse" and not self._said_full:
            log.warning("BigBird: inputs of at most %d tokens run with full attention, as transformers runs them "
                        "(block-sparse attention needs more); longer ones with block-sparse attention",
                        self.full_attention_max)
            self._said_full = True
        model.set_attention_type(attention)  # set on every call: transformers' own switch would stick
        pad = (-ids.shape[1]) % config.block_size if attention == "block_sparse" else 0
        if pad:  # as transformers pads (done here, where its note would name every new length)
            ids, mask = F.pad(ids, (0, pad), value=config.pad_token_id), F.pad(mask, (0, pad))
            types = None if types is None else F.pad(types, (0, pad))
        context = (torch.autocast(ids.device.type, enabled=False) if attention == "block_sparse"
                   else contextlib.nullcontext())
        with context:
            h = model(input_ids=ids, attention_mask=mask, token_type_ids=types).last_hidden_state
        return h[:, : h.shape[1] - pad]


def inference_copy(model: HFBigBird, precision: str, device: torch.device | str) -> HFBigBird:
    """What `Predictor` runs: the model itself (on `device`, eval) for fp32; a bf16 copy for bf16 (not autocast:
    transformers' block-sparse attention fails under it with fp32 weights)."""
    if precision == "bf16":
        model = copy.deepcopy(model).to(dtype=torch.bfloat16)
    return model.to(device).eval()


@contextlib.contextmanager
def _quiet_transformers():
    """Without transformers' load table and progress bars: our LoadReport says what matters."""
    from transformers.utils import logging as hf_logging

    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def load_bigbird(folder: str | os.PathLike, head: str | None = None, config: Any = None, strict: bool = False,
                 num_labels: int | None = None, *, allow_missing: bool | Sequence[str] = False,
                 allow_unexpected: bool | Sequence[str] = False):
    """`checkpoint.load_model` for a stock BigBird folder: (HFBigBird, LoadReport), same arguments and errors.

    config: a `transformers.BigBirdConfig` or a config.json dict used instead of folder/config.json; head: default
    from its `architectures` (BigBirdForPreTraining, the published model's, is read as the MLM head).
    """
    import transformers

    from .checkpoint import WEIGHT_FILES, CheckpointError, LoadReport, check_report

    folder = Path(folder)
    weights = next((folder / name for name in WEIGHT_FILES if (folder / name).is_file()), None)
    if weights is None:
        raise CheckpointError(f"{folder}: no weights found (looked for {', '.join(WEIGHT_FILES)})")
    if config is None:
        config = transformers.BigBirdConfig.from_json_file(str(folder / "config.json"))
    config = hf_config(config) if isinstance(config, dict) else copy.deepcopy(config)
    if num_labels is not None and num_labels != config.num_labels:
        config.num_labels = num_labels
    if head is None:
        head = next((ARCHITECTURE_HEADS[a] for a in config.architectures or [] if a in ARCHITECTURE_HEADS), "mlm")
    if head not in HF_CLASSES:
        raise CheckpointError(f"{weights}: unknown head {head!r}; choose one of {', '.join(HF_CLASSES)}")
    cls = getattr(transformers, HF_CLASSES[head])
    more = {"add_pooling_layer": False} if head == "embedding" else {}
    with _quiet_transformers():
        try:
            hf, info = cls.from_pretrained(str(folder), config=config, output_loading_info=True,
                                           local_files_only=True, **more)
        except (OSError, RuntimeError, ValueError) as err:  # a shape that differs from config.json, a bad file
            raise CheckpointError(f"{weights}: transformers.{cls.__name__} cannot load it: "
                                  f"{str(err).splitlines()[0] if str(err) else err.__class__.__name__}") from None
    if info.get("mismatched_keys") or info.get("error_msgs"):
        raise CheckpointError(f"{weights}: {info.get('mismatched_keys') or info.get('error_msgs')}")

    def official(name: str) -> str:  # BigBirdModel reports its own parameters without the checkpoint's `bert.`
        return name if name.startswith(("bert.", "cls.", "classifier.")) else "bert." + name

    report = LoadReport(source=str(weights), missing=sorted(official(k) for k in info["missing_keys"]),
                        unexpected=sorted(info["unexpected_keys"]))
    check_report(report, head, weights, strict, allow_missing, allow_unexpected, missing_by_design=(POOLER,))
    return HFBigBird(hf.to(torch.float32), head), report


__all__ = ["HFBigBird", "load_bigbird", "is_bigbird", "hf_config", "gena_config", "inference_copy", "HF_CLASSES"]

"""The GENA-LM BERT encoder and its heads, top to bottom.

Faithful to the published GENA-LM models (see ../shared/docs/gena-lm-reference.md):
- embeddings = word + token type + absolute position, then LayerNorm and dropout (kept in pre-LN models too);
- pre-LN layer:  h = h + drop(Wo attn(LN1 h));  h = h + drop(W2 gelu(W1 LN2 h))
  post-LN layer (stock BERT): h = LN(h + drop(Wo attn h));  h = LN(h + drop(W2 gelu(W1 h)))
- a final LayerNorm on the encoder output iff `last_layer_norm` (default: `pre_layer_norm`);
- heads: masked LM (tied decoder), sequence classification / regression on the pooled [CLS], token classification
  (single-label, multi-label BCE with optional pos_weight, or regression; label mask), the problem type resolved
  by `GenaConfig.resolved_problem_type`.
Module and parameter names reproduce the official checkpoints (`bert.encoder.layer.N.pre_attention_ln.weight`, ...)
so `state_dict()` is directly an official-format checkpoint. Loading and saving checkpoints lives in `checkpoint.py`.

The heads are `transformers.PreTrainedModel`s (config class `GenaConfig`, base model prefix "bert"): their
`from_pretrained` / `save_pretrained` go through `checkpoint.load_model` / `save_model` (strict about missing and
unused weights, pickle-free), and `register_auto_classes` (run when this module is imported) makes the Auto classes
build them for config.json files of model type "gena-lm" - never for transformers' own "bert".

Attention runs through `torch.nn.functional.scaled_dot_product_attention` with a key-padding mask, so a token's
output does not depend on how much padding its batch carries.
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers.utils import ModelOutput

from .config import MODEL_TYPE, GenaConfig

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")  # ORG/NAME on the Hugging Face hub
ACTIVATIONS = {
    "gelu": F.gelu,
    "gelu_new": lambda x: F.gelu(x, approximate="tanh"),
    "relu": F.relu,
}


@dataclass
class GenaOutput(ModelOutput):
    """What every head returns (a transformers `ModelOutput`: `out.loss`, `out["loss"]`, `out[0]`).

    loss: scalar, when labels were given. logits: (B, T, vocab) MLM, (B, C) sequence, (B, T, C) token heads; None for
    the embedding head. hidden_states: (B, T, H), the final encoder output (after the last LayerNorm, if any) - one
    tensor, not transformers' tuple of every layer; RMT reads its memory from it.
    """

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    hidden_states: torch.Tensor | None = None


# ---------------------------------------------------------------------------------------------------------------
# Backbone
# ---------------------------------------------------------------------------------------------------------------
class GenaEmbeddings(nn.Module):
    def __init__(self, config: GenaConfig):
        super().__init__()
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, inputs_embeds: torch.Tensor, token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        seq_len = inputs_embeds.shape[1]
        if seq_len > self.position_embeddings.num_embeddings:
            raise ValueError(f"input of {seq_len} tokens is longer than the model's "
                             f"{self.position_embeddings.num_embeddings} positions (use the RMT wrapper)")
        h = inputs_embeds + self.position_embeddings.weight[:seq_len]
        if token_type_ids is None:
            h = h + self.token_type_embeddings.weight[0]
        else:
            h = h + self.token_type_embeddings(token_type_ids)
        return self.dropout(self.LayerNorm(h))


class GenaSelfAttention(nn.Module):
    def __init__(self, config: GenaConfig):
        super().__init__()
        self.num_heads = config.num_attention_heads
        self.head_dim = config.head_dim
        self.query = nn.Linear(config.hidden_size, config.hidden_size)
        self.key = nn.Linear(config.hidden_size, config.hidden_size)
        self.value = nn.Linear(config.hidden_size, config.hidden_size)
        self.dropout_p = config.attention_probs_dropout_prob
        self.implementation = "sdpa"  # or "eager": see set_attention_implementation

    def forward(self, h: torch.Tensor, attn_mask: torch.Tensor | None) -> torch.Tensor:
        batch, seq_len, hidden = h.shape

        def heads(x: torch.Tensor) -> torch.Tensor:  # (B, T, H) -> (B, heads, T, head_dim)
            return x.view(batch, seq_len, self.num_heads, self.head_dim).transpose(1, 2)

        q, k, v = heads(self.query(h)), heads(self.key(h)), heads(self.value(h))
        dropout_p = self.dropout_p if self.training else 0.0
        if self.implementation == "eager":
            # The published code's way: the full (T x T) score matrix, softmax, dropout, weighted sum.
            scores = q @ k.transpose(-1, -2) / math.sqrt(self.head_dim)
            if attn_mask is not None:
                scores = scores + attn_mask
            ctx = F.dropout(torch.softmax(scores, dim=-1), p=dropout_p, training=self.training) @ v
        else:
            ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=dropout_p)
        return ctx.transpose(1, 2).reshape(batch, seq_len, hidden)


class GenaSelfOutput(nn.Module):
    """Attention output projection; the post-LN variant owns the LayerNorm after the residual."""

    def __init__(self, config: GenaConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        if not config.pre_layer_norm:
            self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, ctx: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        h = residual + self.dropout(self.dense(ctx))
        return self.LayerNorm(h) if hasattr(self, "LayerNorm") else h


class GenaAttention(nn.Module):
    def __init__(self, config: GenaConfig):
        super().__init__()
        self.self = GenaSelfAttention(config)
        self.output = GenaSelfOutput(config)


class GenaIntermediate(nn.Module):
    def __init__(self, config: GenaConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.intermediate_size)
        self.act = ACTIVATIONS[config.hidden_act]

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.act(self.dense(h))


class GenaOutputProjection(nn.Module):
    """FFN output projection (official name: `output`); post-LN variant owns the LayerNorm."""

    def __init__(self, config: GenaConfig):
        super().__init__()
        self.dense = nn.Linear(config.intermediate_size, config.hidden_size)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        if not config.pre_layer_norm:
            self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, ffn: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        h = residual + self.dropout(self.dense(ffn))
        return self.LayerNorm(h) if hasattr(self, "LayerNorm") else h


class GenaLayer(nn.Module):
    def __init__(self, config: GenaConfig):
        super().__init__()
        self.pre_layer_norm = config.pre_layer_norm
        if self.pre_layer_norm:
            self.pre_attention_ln = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
            self.post_attention_ln = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.attention = GenaAttention(config)
        self.intermediate = GenaIntermediate(config)
        self.output = GenaOutputProjection(config)

    def forward(self, h: torch.Tensor, attn_mask: torch.Tensor | None) -> torch.Tensor:
        if self.pre_layer_norm:
            h = self.attention.output(self.attention.self(self.pre_attention_ln(h), attn_mask), residual=h)
            return self.output(self.intermediate(self.post_attention_ln(h)), residual=h)
        h = self.attention.output(self.attention.self(h, attn_mask), residual=h)
        return self.output(self.intermediate(h), residual=h)


class GenaEncoder(nn.Module):
    def __init__(self, config: GenaConfig):
        super().__init__()
        self.layer = nn.ModuleList(GenaLayer(config) for _ in range(config.num_hidden_layers))
        if config.use_last_layer_norm:
            self.last_layer_ln = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, h: torch.Tensor, attn_mask: torch.Tensor | None) -> torch.Tensor:
        for layer in self.layer:
            h = layer(h, attn_mask)
        return self.last_layer_ln(h) if hasattr(self, "last_layer_ln") else h


class GenaPooler(nn.Module):
    def __init__(self, config: GenaConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.dense(h[:, 0]))


def padding_mask(attention_mask: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    """(B, T) 1/0 mask -> additive (B, 1, 1, T) mask for SDPA: padded keys get -inf-like weight.

    An additive float mask (rather than a boolean one) keeps SDPA on its fused CPU kernels; a row of all-padding
    keys cannot occur because [CLS] is never padding.
    """
    if attention_mask is None:
        return None
    keep = attention_mask[:, None, None, :].to(torch.bool)
    return torch.zeros(keep.shape, dtype=dtype, device=keep.device).masked_fill(~keep, torch.finfo(dtype).min)


class GenaModel(nn.Module):
    """The encoder: `bert.*` in official checkpoints."""

    def __init__(self, config: GenaConfig, add_pooling_layer: bool = False):
        super().__init__()
        self.config = config
        self.embeddings = GenaEmbeddings(config)
        self.encoder = GenaEncoder(config)
        self.pooler = GenaPooler(config) if add_pooling_layer else None

    def forward(self, input_ids: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None,
                inputs_embeds: torch.Tensor | None = None) -> torch.Tensor:
        if inputs_embeds is None:
            if input_ids is None:
                raise ValueError("give input_ids or inputs_embeds")
            inputs_embeds = self.embeddings.word_embeddings(input_ids)
        h = self.embeddings(inputs_embeds, token_type_ids)
        return self.encoder(h, padding_mask(attention_mask, h.dtype))


# ---------------------------------------------------------------------------------------------------------------
# Heads
# ---------------------------------------------------------------------------------------------------------------
class GenaPreTrainedModel(PreTrainedModel):
    """Shared by the heads: a `transformers.PreTrainedModel` whose weight initialisation is BERT's, with GENA-LM's
    scaled pre-LN output projections, and whose loading and saving are `checkpoint.py`'s."""

    config_class = GenaConfig
    config: GenaConfig
    base_model_prefix = "bert"      # official state-dict names: bert.embeddings..., bert.encoder...
    main_input_name = "input_ids"
    _no_split_modules = ["GenaLayer"]
    _supports_sdpa = True

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        """BERT's initialisation of one module (normal(0, initializer_range) weights, zero biases and padding row,
        unit LayerNorms)."""
        std = self.config.initializer_range
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=std)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, std=std)
            if module.padding_idx is not None:
                module.weight[module.padding_idx].zero_()
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)

    def init_weights(self) -> None:
        """Initialise every module (`_init_weights`, in module order), scale the pre-LN output projections, tie.
        Called by transformers' `post_init` at the end of each head's __init__."""
        std = self.config.initializer_range
        for module in self.modules():
            self._init_weights(module)
        if self.config.pre_layer_norm:
            # Residual branches add up over 2 * layers sublayers: scale their output projections down.
            scaled = std / math.sqrt(2 * self.config.num_hidden_layers)
            for layer in self.bert.encoder.layer:
                nn.init.normal_(layer.attention.output.dense.weight, std=scaled)
                nn.init.normal_(layer.output.dense.weight, std=scaled)
        self.tie_weights()

    def tie_weights(self, missing_keys: set[str] | None = None, recompute_mapping: bool = True) -> None:
        """No tied weights but the MLM decoder's (GenaForMaskedLM); transformers' arguments are accepted."""

    @property
    def word_embeddings(self) -> nn.Embedding:
        return self.bert.embeddings.word_embeddings

    def get_input_embeddings(self) -> nn.Embedding:
        return self.bert.embeddings.word_embeddings

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.bert.embeddings.word_embeddings = value

    # ---- transformers' loading and saving, through checkpoint.py ----------------------------------------------
    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, *model_args: Any,
                        config: GenaConfig | None = None, revision: str | None = None, strict: bool = False,
                        allow_missing: bool | Sequence[str] = False, allow_unexpected: bool | Sequence[str] = False,
                        num_labels: int | None = None, dtype: torch.dtype | str | None = None,
                        torch_dtype: torch.dtype | str | None = None, cache_dir: str | os.PathLike | None = None,
                        local_files_only: bool | None = None, **kwargs: Any) -> nn.Module:
        """This head with the weights of a model folder or Hugging Face hub repository.

        pretrained_model_name_or_path: a folder (official GENA-LM: config.json with model_type "bert" and
        `pytorch_model.bin`, read tensors-only; ours: model_type "gena-lm", `model.safetensors`), a run directory,
        or a hub id `ORG/NAME` (revision: a branch such as `promoters_2000_run_1`; fetched once into the Hugging
        Face cache by `hub.fetch`, offline with HF_HUB_OFFLINE=1 or local_files_only=True). No code from the hub is
        run: `auto_map` is ignored.

        Unlike transformers' own from_pretrained, which only warns, a parameter of the model that the checkpoint
        lacks or a checkpoint parameter the model does not use is a `checkpoint.CheckpointError` unless allowed:
        `allow_missing` / `allow_unexpected` (True, or name prefixes such as ("classifier.", "bert.pooler.")),
        `strict` (no mismatch at all); the heads' own by-design exceptions are `checkpoint.UNUSED_BY_HEAD`.
        num_labels: a classifier of that many outputs (fine-tuning; pass allow_missing=("classifier.",)). dtype:
        cast the loaded model (e.g. torch.bfloat16; "auto" keeps float32). config: used instead of the folder's
        config.json (what `AutoModel*.from_pretrained` passes). Other transformers loading options are refused
        with a TypeError naming them.

        Returns this head; a folder whose config has an `rmt` section (or an official RMT checkpoint) returns the
        `rmt.RMT` wrapper around this head, whose forward takes content tokens without [CLS]/[SEP]
        (`tokenizer(seqs, add_special_tokens=False)`). ConfigError / CheckpointError / hub.HubError: one line
        naming the file or repository and the problem.
        """
        from .checkpoint import load_model, resolve_model_folder

        # transformers' options that do not change what is loaded (the Auto classes pass them all); anything else
        # set is refused rather than silently ignored
        harmless = {"_from_auto", "_from_pipeline", "trust_remote_code", "use_safetensors", "force_download", "token",
                    "proxies", "code_revision", "adapter_kwargs"}
        refused = {k: v for k, v in kwargs.items() if v not in (None, False, {}, "")
                   and (k not in harmless or (k == "adapter_kwargs" and "_adapter_model_path" in v))}
        if kwargs.get("attn_implementation") in ("sdpa", "eager"):
            refused.pop("attn_implementation")
        if model_args or refused:
            raise TypeError(f"{cls.__name__}.from_pretrained: unsupported arguments "
                            f"{', '.join(sorted(refused)) or 'positional model_args'}")
        head = next((h for h, c in HEADS.items() if c is cls), None)
        if head is None:
            raise TypeError(f"{cls.__name__}.from_pretrained: use one of the heads {', '.join(c.__name__ for c in HEADS.values())}")
        source = str(pretrained_model_name_or_path)
        path = os.path.expanduser(source)
        if os.path.exists(path) or source.startswith("hf://") or not HUB_ID.match(source):
            folder = resolve_model_folder(path)  # CheckpointError for a path that is no model folder
        else:  # a hub id ORG/NAME
            from .hub import fetch

            folder = fetch(source, revision or "main", cache=cache_dir,
                           offline=True if local_files_only else None).folder
        if config is not None and not isinstance(config, GenaConfig):
            raise TypeError(f"{cls.__name__}.from_pretrained: config must be a GenaConfig, got "
                            f"{type(config).__name__}")
        model, _ = load_model(folder, head=head, config=config, strict=strict, num_labels=num_labels,
                              allow_missing=allow_missing, allow_unexpected=allow_unexpected)
        dtype = dtype if dtype is not None else torch_dtype
        if isinstance(dtype, str) and dtype != "auto":
            dtype = getattr(torch, dtype)
        if isinstance(dtype, torch.dtype):
            model = model.to(dtype)
        if kwargs.get("attn_implementation") in ("sdpa", "eager"):
            set_attention_implementation(model, kwargs["attn_implementation"])
        inner = getattr(model, "model", model)
        inner.name_or_path = inner.config.name_or_path = source
        return model.eval()

    def save_pretrained(self, save_directory: str | os.PathLike, is_main_process: bool = True,
                        state_dict: dict[str, torch.Tensor] | None = None, safe_serialization: bool = True,
                        push_to_hub: bool = False, **kwargs: Any) -> None:
        """`checkpoint.save_model`: config.json (official keys, model_type "gena-lm", `architectures` naming the
        head) and model.safetensors (official names, tied decoder stored once), each written atomically. The folder
        loads back with `from_pretrained` / `AutoModel*` after importing genalm_models, with `checkpoint.load_model`,
        and with the official GENA-LM code. Only safetensors are written; state_dict, when given, must be this
        model's own (transformers' Trainer passes it); push_to_hub is not supported."""
        from .checkpoint import save_model

        if push_to_hub or not safe_serialization:
            raise NotImplementedError("save_pretrained writes safetensors to a local folder only "
                                      "(push_to_hub / safe_serialization=False are not supported)")
        if state_dict is not None:
            own = self.state_dict()
            if state_dict.keys() != own.keys() or any(state_dict[k] is not own[k] and not torch.equal(
                    state_dict[k].cpu(), own[k].cpu()) for k in own):
                raise NotImplementedError("save_pretrained(state_dict=...): only the model's own weights can be "
                                          "saved")
        if is_main_process:
            save_model(self, save_directory)


class GenaPredictionHead(nn.Module):
    """`cls.predictions`: dense + act + LayerNorm, then a decoder tied to the word embeddings (unless the config's
    `tie_word_embeddings` is false)."""

    def __init__(self, config: GenaConfig):
        super().__init__()
        self.transform = nn.Module()
        self.transform.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.transform.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.act = ACTIVATIONS[config.hidden_act]
        self.decoder = nn.Linear(config.hidden_size, config.vocab_size)
        # Official checkpoints carry both `cls.predictions.bias` and `cls.predictions.decoder.bias`: one tensor.
        self.bias = self.decoder.bias

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        h = self.transform.LayerNorm(self.act(self.transform.dense(h)))
        return self.decoder(h)


class GenaForMaskedLM(GenaPreTrainedModel):
    """Masked LM. `labels` uses -100 for positions that carry no loss (HF convention)."""

    def __init__(self, config: GenaConfig):
        super().__init__(config)
        self.bert = GenaModel(config, add_pooling_layer=False)
        self.cls = nn.Module()
        self.cls.predictions = GenaPredictionHead(config)
        self.post_init()

    def tie_weights(self, missing_keys: set[str] | None = None, recompute_mapping: bool = True) -> None:
        """Share the word-embedding matrix with the decoder, unless `config.tie_word_embeddings` is false (HF
        semantics): then the decoder keeps a matrix of its own (a copy of the embeddings if it was tied)."""
        embeddings = self.bert.embeddings.word_embeddings.weight
        decoder = self.cls.predictions.decoder
        if self.config.ties_word_embeddings:
            decoder.weight = embeddings
        elif decoder.weight is embeddings:
            decoder.weight = nn.Parameter(embeddings.detach().clone())

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, inputs_embeds=None,
                labels: torch.Tensor | None = None, logits_positions: torch.Tensor | None = None) -> GenaOutput:
        h = self.bert(input_ids, attention_mask, token_type_ids, inputs_embeds)
        if labels is not None:
            # Only masked positions need the (vocab-wide) decoder: skip the rest, it is most of the head's cost.
            selected = labels != -100
            logits = self.cls.predictions(h[selected])
            loss = F.cross_entropy(logits.float(), labels[selected]) if logits.numel() else h.sum() * 0.0
            return GenaOutput(logits=logits, hidden_states=h, loss=loss)
        return GenaOutput(logits=self.cls.predictions(h), hidden_states=h)


def sequence_loss(logits: torch.Tensor, labels: torch.Tensor, config: GenaConfig) -> torch.Tensor:
    """The loss of a sequence head, by `config.resolved_problem_type("sequence_classification")` (official
    `BertForSequenceClassification.forward`).

    logits (B, C). labels: (B,) class ids for single-label; (B, C) 0/1 for multi-label; (B,) or (B, C) values for
    regression (MSE).
    """
    problem = config.resolved_problem_type("sequence_classification")
    logits = logits.float()
    if problem == "regression":
        return F.mse_loss(logits, labels.float().view_as(logits))
    if problem == "multi_label_classification":
        return F.binary_cross_entropy_with_logits(logits, labels.float())
    return F.cross_entropy(logits, labels.long().view(-1))


class GenaForSequenceClassification(GenaPreTrainedModel):
    """Classification or regression on the pooled [CLS] token (`problem_type` picks the loss)."""

    def __init__(self, config: GenaConfig):
        super().__init__(config)
        self.bert = GenaModel(config, add_pooling_layer=True)
        dropout = config.classifier_dropout if config.classifier_dropout is not None else config.hidden_dropout_prob
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def head(self, h: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(self.bert.pooler(h)))

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, inputs_embeds=None,
                labels: torch.Tensor | None = None) -> GenaOutput:
        h = self.bert(input_ids, attention_mask, token_type_ids, inputs_embeds)
        logits = self.head(h)
        loss = sequence_loss(logits, labels, self.config) if labels is not None else None
        return GenaOutput(logits=logits, hidden_states=h, loss=loss)


def token_loss(logits: torch.Tensor, labels: torch.Tensor, labels_mask: torch.Tensor | None,
               pos_weight: torch.Tensor | None, config: GenaConfig) -> torch.Tensor:
    """The loss of a token head, by `config.resolved_problem_type("token_classification")` (official
    `BertForTokenClassification.forward`; absent problem_type is single-label there).

    logits (B, T, C); labels_mask (B, T) selects the tokens that carry a label (None: all of them).
    - multi_label_classification: labels (B, T, C) 0/1; BCE with optional pos_weight (C,), the mean over the
      selected (token, class) pairs (GENA-LM splice sites);
    - single_label_classification: labels (B, T) class ids, -100 for no label; cross-entropy, the mean over the
      selected labelled tokens. ValueError for (B, T, C) labels (they are multi-label: set problem_type);
    - regression: labels (B, T, C) or, with C == 1, (B, T) values; MSE over the selected tokens.
    """
    problem = config.resolved_problem_type("token_classification")
    logits = logits.float()
    if problem == "single_label_classification":
        if labels.dim() != 2:
            raise ValueError(f"single-label token classification takes (batch, tokens) class ids, got labels of "
                             f"shape {tuple(labels.shape)}; for 0/1 labels per class set problem_type: "
                             "multi_label_classification")
        labels = labels.long()
        per = F.cross_entropy(logits.transpose(1, 2), labels, ignore_index=-100, reduction="none")  # (B, T)
        weight = (labels != -100).to(per.dtype)
    else:
        if problem == "multi_label_classification":
            per = F.binary_cross_entropy_with_logits(logits, labels.float(), reduction="none", pos_weight=pos_weight)
        else:
            per = (logits - labels.float().view_as(logits)) ** 2
        if labels_mask is None:
            return per.mean()
        weight = torch.ones_like(per)
    if labels_mask is not None:
        mask = labels_mask.to(per.dtype)
        weight = weight * (mask.unsqueeze(-1) if weight.dim() == 3 else mask)
    return (per * weight).sum() / weight.sum().clamp_min(1.0)


class GenaForTokenClassification(GenaPreTrainedModel):
    """Per-token classification or regression; `problem_type` picks the loss (`token_loss`). GENA-LM splice
    sites are multi-label (acceptor / donor); an absent problem_type is single-label, as in the official code."""

    def __init__(self, config: GenaConfig):
        super().__init__(config)
        self.bert = GenaModel(config, add_pooling_layer=False)
        dropout = config.classifier_dropout if config.classifier_dropout is not None else config.hidden_dropout_prob
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.register_buffer("pos_weight", None, persistent=False)
        self.post_init()

    def head(self, h: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(h))

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, inputs_embeds=None,
                labels: torch.Tensor | None = None, labels_mask: torch.Tensor | None = None) -> GenaOutput:
        h = self.bert(input_ids, attention_mask, token_type_ids, inputs_embeds)
        logits = self.head(h)
        loss = None
        if labels is not None:
            loss = token_loss(logits, labels, labels_mask, self.pos_weight, self.config)
        return GenaOutput(logits=logits, hidden_states=h, loss=loss)


class GenaForEmbedding(GenaPreTrainedModel):
    """The bare backbone as a model with the common interface: logits are None, hidden_states the embeddings."""

    def __init__(self, config: GenaConfig):
        super().__init__(config)
        self.bert = GenaModel(config, add_pooling_layer=False)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, inputs_embeds=None,
                labels=None) -> GenaOutput:
        return GenaOutput(logits=None, hidden_states=self.bert(input_ids, attention_mask, token_type_ids,
                                                               inputs_embeds))


HEADS: dict[str, type[GenaPreTrainedModel]] = {
    "mlm": GenaForMaskedLM,
    "sequence_classification": GenaForSequenceClassification,
    "token_classification": GenaForTokenClassification,
    "embedding": GenaForEmbedding,
}

# `architectures` names in official config.json files -> our head.
ARCHITECTURE_HEADS = {
    "BertForMaskedLM": "mlm",
    "BertForPreTraining": "mlm",
    "BertForSequenceClassification": "sequence_classification",
    "BertForTokenClassification": "token_classification",
    "BertModel": "embedding",
}
HEAD_ARCHITECTURES = {
    "mlm": "BertForMaskedLM",
    "sequence_classification": "BertForSequenceClassification",
    "token_classification": "BertForTokenClassification",
    "embedding": "BertModel",
}


def set_attention_implementation(model: nn.Module, implementation: str) -> nn.Module:
    """"sdpa" (default: fused kernels) or "eager" (explicit score matrix, as the published code; the reference the
    benchmarks compare against and the tests check the fused path with)."""
    if implementation not in ("sdpa", "eager"):
        raise ValueError(f"attention implementation must be 'sdpa' or 'eager', got {implementation!r}")
    for module in model.modules():
        if isinstance(module, GenaSelfAttention):
            module.implementation = implementation
    return model


def build_model(config: GenaConfig, head: str) -> GenaPreTrainedModel:
    if head not in HEADS:
        raise ValueError(f"unknown head {head!r}; choose one of {sorted(HEADS)}")
    return HEADS[head](config)


def register_auto_classes() -> None:
    """Make transformers' Auto classes build our heads for config.json files of model type "gena-lm" (the files we
    write): `AutoConfig` -> GenaConfig, `AutoModel` -> GenaForEmbedding (the backbone; `.hidden_states`),
    `AutoModelForMaskedLM`, `AutoModelForSequenceClassification`, `AutoModelForTokenClassification` -> our heads.
    `AutoTokenizer` needs nothing: our tokenizer_config.json files name `PreTrainedTokenizerFast` (tokenizer.py).

    Registration in the Auto mappings is transformers' extension point for models outside the library; it adds the
    "gena-lm" type and changes nothing else: "bert" folders (the official ones) still build transformers'
    BertModel, which ignores `pre_layer_norm` - load those with our classes (`GenaForMaskedLM.from_pretrained`).
    Run once when this module is imported (so by anything that loads a model); running it again is harmless.
    """
    from transformers import (AutoConfig, AutoModel, AutoModelForMaskedLM, AutoModelForSequenceClassification,
                              AutoModelForTokenClassification)

    AutoConfig.register(MODEL_TYPE, GenaConfig, exist_ok=True)
    for auto, head in ((AutoModel, "embedding"), (AutoModelForMaskedLM, "mlm"),
                       (AutoModelForSequenceClassification, "sequence_classification"),
                       (AutoModelForTokenClassification, "token_classification")):
        auto.register(GenaConfig, HEADS[head], exist_ok=True)


register_auto_classes()

"""Model configuration: the GENA-LM backbone, its head and the optional RMT wrapper.

`GenaConfig` is a `transformers.PretrainedConfig` of model type "gena-lm" (registered with `AutoConfig` by
`modeling_gena.register_auto_classes`; transformers' own "bert" type is left alone). It reads and writes
Hugging-Face-style `config.json` files: the official GENA-LM configs (`L12-H768-A12-V32k-preln.json`, ...,
model_type "bert", `pre_layer_norm`) load as they are, and the files we write keep the official keys, so the
official code also reads them (it only warns that the model type is not "bert"). Keys we do not use are kept in
`extra` and written back unchanged.
"""
from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from transformers import PretrainedConfig


class ConfigError(ValueError):
    """A config file or value that cannot describe a model we can build."""


PROBLEM_TYPES = ("single_label_classification", "multi_label_classification", "regression")
HIDDEN_ACTS = ("gelu", "gelu_new", "relu")
SEGMENT_PADDINGS = ("masked", "official")
MODEL_TYPE = "gena-lm"                 # what our config.json files say; registered with transformers' AutoConfig
READ_MODEL_TYPES = (None, "bert", MODEL_TYPE)  # what we read: official GENA-LM files say "bert"


@dataclass
class RMTConfig:
    """Recurrent Memory Transformer settings (GENA-LM: m = 10 for promoters, m = 5 for splice sites)."""

    num_mem_tokens: int = 10
    # Segments longer than `max_n_segments` raise an error instead of being cut (the official code truncates
    # silently). None: no limit.
    max_n_segments: int | None = None
    # "last": loss/readout from the last segment (sequence tasks); "mean": mean of the per-segment losses.
    loss: str = "last"
    # Truncated backpropagation: gradients flow through the memory of at most this many final segments.
    # None: full backpropagation through all segments.
    bptt_depth: int | None = None
    # How sequence-classification segments are padded (rmt.RMT._segment_input):
    # "masked" (ours): to the longest segment of the batch with [PAD], and the padding is masked out;
    # "official": as the official RMTEncoderForSequenceClassification (modeling_rmt.py, pad_add_special_tokens and
    #   get_attention_mask): every segment padded to the full input size with token id 0, which is not the pad id,
    #   so the attention mask keeps it and the [CLS] readout attends to the padding. Used for official RMT
    #   checkpoints (checkpoint.load_model sets it); it changes their logits by ~0.06 compared with "masked".
    # Token-level heads are padded the masked way in both modes (the official token wrapper pads with [PAD] and
    # masks it).
    segment_padding: str = "masked"

    def validate(self, input_size: int) -> None:
        if self.num_mem_tokens < 1:
            raise ConfigError(f"rmt.num_mem_tokens must be >= 1, got {self.num_mem_tokens}")
        if input_size - self.num_mem_tokens - 3 < 1:
            raise ConfigError(
                f"rmt.num_mem_tokens={self.num_mem_tokens} leaves no room for content in a "
                f"{input_size}-token segment")
        if self.loss not in ("last", "mean"):
            raise ConfigError(f"rmt.loss must be 'last' or 'mean', got {self.loss!r}")
        if self.max_n_segments is not None and self.max_n_segments < 1:
            raise ConfigError(f"rmt.max_n_segments must be >= 1 or null, got {self.max_n_segments}")
        if self.bptt_depth is not None and self.bptt_depth < 1:
            raise ConfigError(f"rmt.bptt_depth must be >= 1 or null, got {self.bptt_depth}")
        if self.segment_padding not in SEGMENT_PADDINGS:
            raise ConfigError(f"rmt.segment_padding must be one of {', '.join(SEGMENT_PADDINGS)}, got "
                              f"{self.segment_padding!r}")


class GenaConfig(PretrainedConfig):
    """A GENA-LM BERT encoder plus the head on top of it; a `transformers.PretrainedConfig` (a dataclass, as all
    configs of transformers 5).

    Field names and defaults follow the official GENA-LM `config.json` (bert-base-t2t). `last_layer_norm=None` means
    "absent from the file": it then follows `pre_layer_norm`, as in the published code. Build one with keywords
    (`GenaConfig(hidden_size=..., ...)`), `from_dict` / `from_json` / `from_pretrained` (a folder or hub id);
    `to_dict` is the config.json content (`OWN_FIELDS` plus `extra`, model_type "gena-lm"). The transformers fields
    of the base class (`return_dict`, `dtype`, ...) keep their defaults and are not written.
    """

    model_type: ClassVar[str] = MODEL_TYPE

    vocab_size: int = 32000
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-12
    pad_token_id: int = 3
    pre_layer_norm: bool = True
    last_layer_norm: bool | None = None
    position_embedding_type: str = "absolute"
    # Head. `num_labels` outputs; problem_type picks the loss (HF names). A field here (transformers derives it
    # from id2label): an absent id2label stays absent in the files we write.
    num_labels: int = 2
    problem_type: str | None = None
    id2label: dict[int, str] | None = None
    classifier_dropout: float | None = None
    architectures: list[str] | None = None
    # MLM decoder tied to the word embeddings (HF `tie_word_embeddings`); None: absent from the file = tied.
    # `checkpoint.load_model` sets False when a checkpoint's decoder differs from its embeddings.
    tie_word_embeddings: bool | None = None
    # Recurrent memory; None for a plain one-segment model.
    rmt: RMTConfig | None = None
    # Keys of the source file that we do not interpret, written back as they were.
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self, **kwargs: Any) -> None:
        super().__post_init__(**kwargs)
        if isinstance(self.rmt, dict):  # GenaConfig(rmt={...}) as in a config.json
            self.rmt = RMTConfig(**self.rmt)
        # transformers' pipelines read label2id beside id2label
        self.label2id = {v: int(k) for k, v in self.id2label.items()} if self.id2label else None

    # ---- derived -------------------------------------------------------------------------------------------
    @property
    def use_last_layer_norm(self) -> bool:
        return self.pre_layer_norm if self.last_layer_norm is None else bool(self.last_layer_norm)

    @property
    def ties_word_embeddings(self) -> bool:
        """Whether the MLM decoder shares the word-embedding matrix (HF default: yes, unless the key says false)."""
        return self.tie_word_embeddings is not False

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @property
    def labels(self) -> list[str]:
        if self.id2label:
            return [self.id2label[i] for i in range(self.num_labels)]
        return [f"LABEL_{i}" for i in range(self.num_labels)]

    def resolved_problem_type(self, head: str) -> str:
        """The problem type a head of this config computes its loss and its outputs with; the one place the rule
        lives (used by `modeling_gena.sequence_loss` / `token_loss` and `predict.Predictor.outputs`).

        head: "sequence_classification", "token_classification" or "mlm". An explicit `problem_type` wins. When it
        is absent, the official GENA-LM / Hugging Face rules apply:
        - sequence heads (official `BertForSequenceClassification.forward`): `num_labels == 1` is "regression",
          anything else "single_label_classification" (HF also picks multi-label when float labels are passed to
          the loss; outputs cannot depend on labels, so we do not);
        - token heads (official `BertForTokenClassification.__init__`): "single_label_classification", whatever
          `num_labels` is;
        - the masked-LM head is a softmax over the vocabulary: "single_label_classification".
        Raises ConfigError for any other head (the embedding head has no outputs to transform).
        """
        if head not in ("sequence_classification", "token_classification", "mlm"):
            raise ConfigError(f"head {head!r} has no problem type (only sequence_classification, "
                              "token_classification and mlm heads have one)")
        if head == "mlm":
            return "single_label_classification"
        if self.problem_type is not None:
            return self.problem_type
        if head == "sequence_classification" and self.num_labels == 1:
            return "regression"
        return "single_label_classification"

    @property
    def segment_size(self) -> int:
        """Content tokens one RMT segment carries: [CLS] MEM_1..MEM_m [SEP] content [SEP]."""
        m = self.rmt.num_mem_tokens if self.rmt else 0
        return self.max_position_embeddings - m - 3 if self.rmt else self.max_position_embeddings - 2

    # ---- validation ----------------------------------------------------------------------------------------
    def validate(self, source: str = "config") -> "GenaConfig":
        def fail(msg: str) -> None:
            raise ConfigError(f"{source}: {msg}")

        for name in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                     "max_position_embeddings", "type_vocab_size", "num_labels"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                fail(f"{name} must be a positive integer, got {value!r}")
        if self.hidden_size % self.num_attention_heads:
            fail(f"hidden_size {self.hidden_size} is not a multiple of num_attention_heads "
                 f"{self.num_attention_heads}")
        if self.hidden_act not in HIDDEN_ACTS:
            fail(f"hidden_act {self.hidden_act!r} is not supported (supported: {', '.join(HIDDEN_ACTS)})")
        if self.position_embedding_type != "absolute":
            fail(f"position_embedding_type {self.position_embedding_type!r} is not supported: only 'absolute' "
                 "positions are implemented (rotary embeddings exist only in the sparse BigBird-style GENA-LM models)")
        if self.problem_type is not None and self.problem_type not in PROBLEM_TYPES:
            fail(f"problem_type {self.problem_type!r} is not one of {PROBLEM_TYPES}")
        if not 0 <= self.pad_token_id < self.vocab_size:
            fail(f"pad_token_id {self.pad_token_id} is outside the vocabulary of {self.vocab_size}")
        if not (0.0 <= self.hidden_dropout_prob < 1 and 0.0 <= self.attention_probs_dropout_prob < 1):
            fail("dropout probabilities must be in [0, 1)")
        if self.layer_norm_eps <= 0:
            fail(f"layer_norm_eps must be > 0, got {self.layer_norm_eps}")
        if self.rmt is not None:
            try:
                self.rmt.validate(self.max_position_embeddings)
            except ConfigError as err:
                fail(str(err))
        return self

    # ---- (de)serialisation ---------------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, config_dict: dict[str, Any], source: str = "config", **kwargs: Any) -> "GenaConfig":
        """A config from a config.json dict (official GENA-LM: model_type "bert"; ours: "gena-lm"). Raises
        ConfigError (one line, naming `source`) for a sparse or BigBird config, another model type, a bad `rmt`
        section or a bad value.

        kwargs: as transformers' `PretrainedConfig.from_dict` (what `from_pretrained` and `AutoConfig` pass): fields
        to override (`num_labels=3`), `return_unused_kwargs` (then returns `(config, unused kwargs)`), and the
        bookkeeping keys transformers adds (`name_or_path`, `_from_auto`, ...).
        """
        data = dict(config_dict)
        return_unused = kwargs.pop("return_unused_kwargs", False)
        name_or_path = kwargs.pop("name_or_path", None)
        for key in ("_from_auto", "_from_pipeline", "_commit_hash"):
            kwargs.pop(key, None)
        own = set(OWN_FIELDS)
        unused = {k: v for k, v in kwargs.items() if k not in own}
        overrides = {k: v for k, v in kwargs.items() if k in own}
        if "num_labels" in overrides and "id2label" not in overrides:
            data.pop("id2label", None)  # a new number of labels replaces the file's label names
        data.update(overrides)
        if data.get("sparse_attention") or data.get("sparse_config_cls"):
            raise ConfigError(
                f"{source}: this is a block-sparse (BigBird-style, DeepSpeed sparse attention) GENA-LM config. "
                "Sparse attention is not implemented here; use a full-attention GENA-LM model (bert-base-t2t, "
                "bert-large-t2t, ...) or load the model with the official GENA-LM code and DeepSpeed.")
        if data.get("model_type") == "big_bird":
            raise ConfigError(
                f"{source}: this is a stock Hugging Face BigBird config (gena-lm-bigbird-base-t2t). It is not a "
                "GENA-LM BERT; checkpoint.load_model(folder) loads it with transformers' own BigBird classes "
                "(genalm_models/bigbird.py).")
        if data.get("model_type") not in READ_MODEL_TYPES:
            raise ConfigError(f"{source}: model_type {data.get('model_type')!r} is not a GENA-LM BERT model")
        data.pop("model_type", None)
        kwargs = {k: data.pop(k) for k in list(data) if k in own and k != "rmt"}
        rmt = data.pop("rmt", None)
        if rmt is not None and not isinstance(rmt, RMTConfig):
            try:
                kwargs["rmt"] = RMTConfig(**rmt)
            except TypeError as err:
                raise ConfigError(f"{source}: bad rmt section {rmt!r}: {err}") from None
        elif rmt is not None:
            kwargs["rmt"] = rmt
        if kwargs.get("id2label"):
            kwargs["id2label"] = {int(k): str(v) for k, v in kwargs["id2label"].items()}
            kwargs.setdefault("num_labels", len(kwargs["id2label"]))
        data.pop("label2id", None)
        try:
            cfg = cls(**kwargs, extra=data)
        except (TypeError, ValueError) as err:  # transformers' strict field checks (problem_type, ...)
            raise ConfigError(f"{source}: {str(err).splitlines()[0]}") from None
        if name_or_path is not None:
            cfg.name_or_path = name_or_path
        # HF configs may list labels without num_labels; keep the two consistent.
        if cfg.id2label and len(cfg.id2label) != cfg.num_labels:
            raise ConfigError(f"{source}: id2label has {len(cfg.id2label)} entries but num_labels is "
                              f"{cfg.num_labels}")
        cfg.validate(source)
        return (cfg, unused) if return_unused else cfg

    def to_dict(self) -> dict[str, Any]:
        """The config.json content: the official GENA-LM keys (absent optional ones stay absent), `extra` as read,
        model_type "gena-lm"."""
        out: dict[str, Any] = dict(self.extra)
        out["model_type"] = MODEL_TYPE
        for name in OWN_FIELDS:
            if name in ("extra", "rmt"):
                continue
            value = getattr(self, name)
            if value is None and name in ("last_layer_norm", "problem_type", "id2label", "classifier_dropout",
                                          "architectures", "tie_word_embeddings"):
                continue  # absent stays absent (last_layer_norm=None has a meaning)
            out[name] = value
        if self.id2label:
            out["id2label"] = {str(k): v for k, v in self.id2label.items()}
            out["label2id"] = {v: int(k) for k, v in self.id2label.items()}
        if self.rmt is not None:
            out["rmt"] = dataclasses.asdict(self.rmt)
            if self.rmt.segment_padding == "masked":
                del out["rmt"]["segment_padding"]  # the default: files written before the option stay the same
        return out

    def to_diff_dict(self) -> dict[str, Any]:
        """transformers writes this one (`to_json_string`, `save_pretrained`): the same as `to_dict`."""
        return self.to_dict()

    def save_pretrained(self, save_directory: str | os.PathLike, push_to_hub: bool = False, **kwargs: Any) -> None:
        """transformers' name for `save` (config.json, written atomically). push_to_hub is not supported."""
        if push_to_hub:
            raise NotImplementedError("GenaConfig.save_pretrained: push_to_hub is not supported; upload the folder "
                                      "with `hf upload`")
        self.save(save_directory)

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> "GenaConfig":
        path = Path(path)
        if path.is_dir():
            path = path / "config.json"
        if not path.is_file():
            raise ConfigError(f"{path}: config file not found")
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ConfigError(f"{path}: line {err.lineno}: invalid JSON: {err.msg}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a JSON object at the top level")
        return cls.from_dict(data, source=str(path))

    def save(self, folder: str | os.PathLike) -> Path:
        from .io_utils import write_text_atomic

        path = Path(folder) / "config.json"
        write_text_atomic(path, json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")
        return path

    def replace(self, **changes: Any) -> "GenaConfig":
        """A validated copy with `changes` (fields of `OWN_FIELDS`); ConfigError for a bad value."""
        try:
            copy = dataclasses.replace(self, **changes)
        except ConfigError:
            raise
        except (TypeError, ValueError) as err:  # transformers' strict field checks (problem_type, ...)
            raise ConfigError(f"config: {str(err).splitlines()[0]}") from None
        return copy.validate()


# The fields that are ours (the config.json keys we interpret), in their order; dataclasses.fields(GenaConfig) also
# lists the transformers base-class fields.
OWN_FIELDS: tuple[str, ...] = tuple(name for name in GenaConfig.__annotations__ if name != "model_type")

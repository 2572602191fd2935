"""An exported model folder as a function from DNA strings to Kipoi-shaped arrays (no kipoi here).

`FolderModel` loads the folder (config, weights, tokenizer, genalm.json) and runs every prediction through
`genalm_models.predict.Predictor` - the one predict path: tokenization, length-aware batching, device, bf16,
reverse-complement averaging. What it adds is only the shape Kipoi users get:

  kind       returns
  sequence   float32 (B, k): the head's probabilities (softmax / sigmoid) or values (regression) for the output
             labels in genalm.json; a two-class classifier returns only the positive class, e.g. P(promoter).
             Through Kipoi (`kipoi_outputs`) as {label: (B,)}: columns `preds/<label>`
  token      {label: float32 (B, L)}: per-nucleotide probabilities on the region the interval maps to (the
             context flanks the model also read are cropped off), 5'->3' on the interval's strand
  embedding  {"pooled": (B, H) mean of the last-layer token states,
  mlm         "token_embeddings": (B, M, H) the token states, NaN rows after the last token,
              "token_spans": int32 (B, M, 2) each token's [start, end) in the input sequence, -1 after the last,
              "n_tokens": int32 (B,)}
             M = `max_tokens`, by default the input length in bp (a token covers at least one base), so
             fixed-length windows give fixed shapes. `mlm` reads the MLM backbone's states (its vocabulary head is
             for training only).

             A sequence with more than M tokens (M = `max_tokens` set at export, e.g. 200 = ~1.1 kb) is still
             embedded whole (pooled, n_tokens); its per-token arrays stay NaN / -1, with a warning (never a
             silently truncated row).

Options (model.yaml `args`, overridden by environment variables, overridden by `configure(...)` / CLI flags):
  precision        fp32 | bf16                         GENALM_PRECISION
  rc_average       also predict the reverse complement and average (sequence outputs, pooled embeddings;
                   per-token embeddings stay forward-strand)   GENALM_RC_AVERAGE
                   Only where the reverse complement is the same site (`rc_average_refusal`): centred windows of
                   strand-symmetric targets (chromatin, enhancer, ...) and embeddings. Refused with the reason for
                   TSS-anchored / promoter models (the other strand's window is another promoter: scores are
                   pulled towards 0.5) and per-nucleotide (splice) models (a site belongs to one strand).
  device           auto | cpu | cuda | cuda:1          GENALM_DEVICE
  batch_size       sequences per model call            GENALM_BATCH_SIZE
  progress         a progress bar inside each Kipoi batch (long RMT inputs)   GENALM_PROGRESS
  embedding_outputs  "pooled,tokens" (default) or "pooled"   GENALM_EMBEDDING_OUTPUTS
  max_tokens       width M of the per-token arrays      GENALM_MAX_TOKENS
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from genalm_models.genome import reverse_complement
from genalm_models.model_folder import package_version, rc_average_refusal  # noqa: F401  (re-exported: veff, provenance, zoo_export)

from . import provenance
from .folder import WEIGHTS_FILE, FolderInfo, read_folder_info, sha256_file

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "bf16")
EMBEDDING_OUTPUTS = ("pooled", "tokens")
OPTION_ENV = {
    "precision": "GENALM_PRECISION",
    "rc_average": "GENALM_RC_AVERAGE",
    "device": "GENALM_DEVICE",
    "batch_size": "GENALM_BATCH_SIZE",
    "progress": "GENALM_PROGRESS",
    "embedding_outputs": "GENALM_EMBEDDING_OUTPUTS",
    "max_tokens": "GENALM_MAX_TOKENS",
}
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")


@dataclass(frozen=True)
class PredictOptions:
    precision: str = "fp32"
    rc_average: bool = False
    device: str = "auto"
    batch_size: int = 32
    progress: bool = False
    embedding_outputs: tuple[str, ...] = EMBEDDING_OUTPUTS
    max_tokens: int | None = None

    @classmethod
    def build(cls, values: Mapping[str, Any], where: str = "options") -> "PredictOptions":
        """From loosely typed values (YAML args, environment strings, CLI flags); unknown names are an error."""
        unknown = set(values) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"{where}: unknown option(s) {', '.join(sorted(unknown))}; "
                             f"known: {', '.join(OPTION_ENV)}")
        kwargs: dict[str, Any] = {}
        for name, value in values.items():
            if value is None:
                continue
            if name == "rc_average" or name == "progress":
                kwargs[name] = _parse_bool(value, f"{where}: {name}")
            elif name == "batch_size" or name == "max_tokens":
                kwargs[name] = _parse_positive_int(value, f"{where}: {name}")
            elif name == "embedding_outputs":
                kwargs[name] = _parse_outputs(value, f"{where}: {name}")
            else:
                kwargs[name] = str(value).strip()
        return cls(**kwargs).validate(where)

    def validate(self, where: str = "options") -> "PredictOptions":
        if self.precision not in PRECISIONS:
            raise ValueError(f"{where}: precision must be fp32 or bf16, got {self.precision!r}")
        if not (self.device == "auto" or self.device == "cpu" or self.device.startswith("cuda")
                or self.device == "mps"):
            raise ValueError(f"{where}: device must be auto, cpu, cuda or cuda:N, got {self.device!r}")
        return self

    def merged(self, values: Mapping[str, Any], where: str) -> "PredictOptions":
        current = dataclasses.asdict(self)
        current.update({k: v for k, v in values.items() if v is not None})
        return PredictOptions.build(current, where)

    def with_environment(self, environ: Mapping[str, str] = os.environ) -> "PredictOptions":
        values = {name: environ[var] for name, var in OPTION_ENV.items() if environ.get(var, "").strip()}
        if not values:
            return self
        where = "environment (" + ", ".join(OPTION_ENV[n] for n in values) + ")"
        return self.merged(values, where)


def _parse_bool(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"{where}: expected true/false, got {value!r}")


def _parse_positive_int(value: Any, where: str) -> int:
    try:
        number = int(str(value).strip())
    except ValueError:
        raise ValueError(f"{where}: expected a positive integer, got {value!r}") from None
    if number < 1:
        raise ValueError(f"{where}: expected a positive integer, got {value!r}")
    return number


def _parse_outputs(value: Any, where: str) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else list(value)
    items = tuple(str(i).strip() for i in items if str(i).strip())
    bad = [i for i in items if i not in EMBEDDING_OUTPUTS]
    if bad or not items:
        raise ValueError(f"{where}: expected a comma-separated subset of {', '.join(EMBEDDING_OUTPUTS)}, "
                         f"got {value!r}")
    return items


@contextlib.contextmanager
def _quiet_checkpoint_log():
    """An MLM folder read as an embedding model leaves its vocabulary head unused: expected, not worth a warning."""
    logger = logging.getLogger("genalm_models.checkpoint")
    previous = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(previous)


def check_rc_average(info: FolderInfo, options: "PredictOptions") -> None:
    reason = rc_average_refusal(info) if options.rc_average else None
    if reason is not None:
        raise ValueError(f"{info.name}: rc_average (GENALM_RC_AVERAGE, --rc-average) is not offered for this "
                         f"model: {reason}")


def kipoi_outputs(info: FolderInfo, predictions: np.ndarray | dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """What the Kipoi model returns: sequence outputs as {label: (B,)} (so `kipoi predict` names the columns
    `preds/promoter`, not `preds/0`); token and embedding outputs are dicts already."""
    if isinstance(predictions, dict):
        return predictions
    return {label: predictions[:, column] for column, label in enumerate(info.output_labels)}


def as_sequences(x: Any) -> list[str]:
    """What Kipoi hands `predict_on_batch`: a str ndarray from the dataloader, an object array of str or bytes
    from an HDF5 expectation file, a dict with one input, or a plain list."""
    if isinstance(x, Mapping):
        if len(x) != 1:
            raise ValueError(f"expected one input array (the DNA strings), got inputs {sorted(x)}")
        x = next(iter(x.values()))
    values = np.asarray(x, dtype=object).ravel() if not isinstance(x, str) else [x]
    sequences = []
    for value in values:
        if isinstance(value, bytes):
            value = value.decode("ascii")
        if not isinstance(value, str):
            raise TypeError(f"expected DNA strings, got {type(value).__name__}")
        sequences.append(value)
    return sequences


@dataclass
class Weights:
    """Where a model folder's weights are: the folder itself, or (official models) a Hugging Face cache snapshot."""

    folder: Path                 # config.json + weights
    tokenizer_folder: Path
    file: Path                   # the weights file
    sha256: str
    config: Any = None           # GenaConfig (a BigBirdConfig for a stock BigBird), when it differs from
                                 # folder/config.json as read plainly
    hub: Any = None              # genalm_models.hub.HubRevision of an official model


def locate_weights(folder: Path, info: FolderInfo) -> Weights:
    """The weights of `folder`: its own model.safetensors (checked against genalm.json), or for an official
    model the hub revision named in genalm.json, fetched once into the Hugging Face cache (hub.fetch; offline with
    HF_HUB_OFFLINE=1). Raises FileNotFoundError / hub.HubError with the file or repository and revision."""
    if info.hub is None:
        weights = folder / WEIGHTS_FILE
        if not weights.is_file():
            raise FileNotFoundError(f"{weights}: weights not found")
        sha = sha256_file(weights)
        if sha != info.weights_sha256:
            log.warning("%s: sha256 %s differs from the %s recorded at export (genalm.json); the weights were "
                        "changed after export", weights, sha[:12], info.weights_sha256[:12],
                        extra={"genalm_kind": "weights_changed"})
        return Weights(folder, folder, weights, sha)
    from genalm_models.bigbird import hf_config, is_bigbird
    from genalm_models.config import GenaConfig
    from genalm_models.hub import fetch, file_sha256

    hub = fetch(*info.hub)
    weights = next(hub.folder / name for name in (WEIGHTS_FILE, "pytorch_model.bin")
                   if (hub.folder / name).is_file())
    # what the official fine-tuning script set on the config (e.g. problem_type) where the hub's file lacks it
    config_file = hub.folder / "config.json"
    try:
        data = json.loads(config_file.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{config_file}: line {err.lineno}: invalid JSON: {err.msg}") from None
    data = {**info.config_defaults, **data}
    # a stock transformers BigBird (gena-lm-bigbird-base-t2t) keeps its own config class (genalm_models/bigbird.py)
    config = hf_config(data) if is_bigbird(data) else GenaConfig.from_dict(data, source=str(config_file))
    return Weights(hub.folder, hub.tokenizer_folder, weights, file_sha256(weights) or sha256_file(weights),
                   config, hub)


def load_folder_model(folder: Path, info: FolderInfo, head: str):
    """(model, tokenizer, Weights) of a model folder with the given head; missing weights are an error."""
    from genalm_models.checkpoint import load_model
    from genalm_models.tokenizer import GenaTokenizer

    weights = locate_weights(folder, info)
    with _quiet_checkpoint_log():
        model, report = load_model(weights.folder, head=head, config=weights.config)
    if report.missing:
        raise ValueError(f"{weights.file}: the weights lack parameters the model needs: "
                         f"{', '.join(report.missing[:6])}")
    return model, GenaTokenizer.from_pretrained(weights.tokenizer_folder), weights


class FolderModel:
    """A loaded model folder. `predict(strings)` gives the arrays documented at the top of this module."""

    def __init__(self, folder: str | os.PathLike, options: PredictOptions = PredictOptions()):
        self.folder = Path(folder).resolve()
        self.info: FolderInfo = read_folder_info(self.folder)
        check_rc_average(self.info, options)  # before loading the weights: a refused option fails at once
        self._token_overflow_warnings = 0
        # An MLM folder is read through the embedding head: Kipoi users get its states, not vocabulary logits.
        head = "embedding" if self.info.kind in ("embedding", "mlm") else self.info.head
        self.model, self.tokenizer, weights = load_folder_model(self.folder, self.info, head)
        self.weights_sha256, self.hub = weights.sha256, weights.hub
        self.options = options
        self.predictor = self._build_predictor(options)

    def _build_predictor(self, options: PredictOptions):
        from genalm_models.predict import Predictor

        return Predictor(self.model, self.tokenizer, device=None if options.device == "auto" else options.device,
                         precision=options.precision, batch_size=options.batch_size, progress=options.progress,
                         layout=self.info.input_layout, flank=self.info.window.flank)

    def configure(self, **changes: Any) -> PredictOptions:
        """Change options (precision, rc_average, device, batch_size, progress, embedding_outputs, max_tokens)."""
        options = self.options.merged(changes, "configure()")
        check_rc_average(self.info, options)
        self.options = options
        self.predictor = self._build_predictor(self.options)
        return self.options

    # ---- prediction -----------------------------------------------------------------------------------------
    def predict(self, sequences: Sequence[str]) -> np.ndarray | dict[str, np.ndarray]:
        from genalm_models.predict import InputTooLong

        from .sequences import origin_of

        sequences = list(sequences)
        kind = self.info.kind
        try:
            if kind == "sequence":
                return self._predict_sequence(sequences)
            if kind == "token":
                return self._predict_tracks(sequences)
            return self._predict_embeddings(sequences)
        except InputTooLong as err:  # name the BED line it came from when the dataloader read it
            where = origin_of(sequences[err.index]) or f"input sequence {err.index} of this batch"
            raise InputTooLong(err.index, err.tokens, err.limit,
                               f"{where} ({len(sequences[err.index]):,} bp)") from None

    def _predict_sequence(self, sequences: list[str]) -> np.ndarray:
        width = len(self.info.output_indices)
        if not sequences:
            return np.zeros((0, width), dtype=np.float32)
        values = self.predictor.predict(sequences, rc_average=self.options.rc_average)
        return np.stack(values)[:, self.info.output_indices].astype(np.float32)

    def _predict_tracks(self, sequences: list[str]) -> dict[str, np.ndarray]:
        flank = self.info.window.flank
        lengths = {len(s) for s in sequences}
        if len(lengths) > 1:
            raise ValueError(f"per-nucleotide outputs need inputs of one length, got lengths {sorted(lengths)}; "
                             "give the dataloader a sequence_length")
        length = lengths.pop() if lengths else 2 * flank
        if length < 2 * flank:
            raise ValueError(f"inputs of {length} bp are shorter than the model's two {flank} bp context flanks")
        tracks = self.predictor.predict(sequences, level="nucleotide", rc_average=self.options.rc_average)
        stacked = (np.stack(tracks) if tracks else np.zeros((0, length, len(self.info.labels))))
        stacked = stacked[:, flank: length - flank]
        return {label: stacked[:, :, index].astype(np.float32)
                for label, index in zip(self.info.output_labels, self.info.output_indices)}

    def _predict_embeddings(self, sequences: list[str]) -> dict[str, np.ndarray]:
        hidden = self.predictor.config.hidden_size
        wanted = self.options.embedding_outputs
        tracks = self.predictor.predict(sequences, level="token") if sequences else []
        pooled = np.stack([t.probs.mean(axis=0) if len(t.probs) else np.full(hidden, np.nan)
                           for t in tracks]).astype(np.float32) if tracks else np.zeros((0, hidden), np.float32)
        if self.options.rc_average and sequences:
            reverse = self.predictor.embed([reverse_complement(s) for s in sequences])
            pooled = ((pooled + np.stack(reverse)) / 2).astype(np.float32)
        out: dict[str, np.ndarray] = {}
        if "pooled" in wanted:
            out["pooled"] = pooled
        if "tokens" in wanted:
            width = self.options.max_tokens or max([len(s) for s in sequences] + [1])
            states = np.full((len(sequences), width, hidden), np.nan, dtype=np.float32)
            spans = np.full((len(sequences), width, 2), -1, dtype=np.int32)
            counts = np.zeros(len(sequences), dtype=np.int32)
            for row, track in enumerate(tracks):
                n = len(track.probs)
                counts[row] = n
                if n <= width:  # longer: left NaN / -1 (see _warn_token_overflow), never truncated
                    states[row, :n] = track.probs
                    spans[row, :n] = track.offsets
            if (counts > width).any():
                self._warn_token_overflow(counts, width, sequences)
            out.update(token_embeddings=states, token_spans=spans, n_tokens=counts)
        return out

    MAX_OVERFLOW_WARNINGS = 3

    def _warn_token_overflow(self, counts: np.ndarray, width: int, sequences: list[str]) -> None:
        """Per-token arrays have a fixed width (Kipoi's writers need one shape for all batches): rows with more
        tokens are embedded whole (pooled, n_tokens) and their per-token arrays stay empty. Shown for the first
        batches, counted for every one."""
        over = np.flatnonzero(counts > width)
        longest = int(counts.max())
        longest_bp = max(len(sequences[i]) for i in over)
        message = (f"{len(over)} of {len(counts)} sequences in a batch (the longest {longest_bp:,} bp, "
                   f"{longest} tokens) have more tokens than max_tokens={width}: their pooled embeddings and "
                   "n_tokens cover the whole sequence, their per-token arrays are left empty (NaN / -1). For "
                   f"per-token outputs set GENALM_MAX_TOKENS={longest} or more; for pooled only, "
                   "GENALM_EMBEDDING_OUTPUTS=pooled")
        self._token_overflow_warnings += 1
        if self._token_overflow_warnings > self.MAX_OVERFLOW_WARNINGS:
            provenance.note_warning(message, "tokens_over_max_tokens")
            return
        more = (" (further such batches are counted in the provenance file, not shown)"
                if self._token_overflow_warnings == self.MAX_OVERFLOW_WARNINGS else "")
        log.warning("%s%s", message, more, extra={"genalm_kind": "tokens_over_max_tokens"})

    # ---- provenance -----------------------------------------------------------------------------------------
    def provenance(self) -> dict[str, Any]:
        """Model name, version and weights checksum, and how it was run: recorded beside every output."""
        return {
            "name": self.info.name,
            "version": self.info.version,
            "kind": self.info.kind,
            "weights_sha256": self.weights_sha256,
            "weights_sha256_at_export": self.info.weights_sha256,
            "model_dir": str(self.folder),
            **({"hub": self.hub.provenance()} if self.hub is not None else {}),
            "window": self.info.window.describe(),
            "output_labels": list(self.info.output_labels),
            "precision": self.options.precision,
            "rc_average": self.options.rc_average,
            "device": str(self.predictor.device),
            "software": {name: package_version(name) for name in ("genalm-models", "kipoi", "torch")},
        }

"""The one prediction path: DNA strings -> tokens -> length-aware batches -> model -> numpy.

The Kipoi models, the variant scorer and training evaluation all call `Predictor`; none has its own batching
loop. It owns:
- tokenization (upper-casing, gap tokens) and the content-token layout: plain models see `[CLS] tokens [SEP]`,
  RMT models see only the content tokens and build their own segments;
- length-aware batching: sequences are sorted by token count and batched up to `batch_size` sequences and
  `max_batch_tokens` tokens, padding only to the longest in a batch; outputs come back in input order;
- device and precision: CPU or GPU, fp32 by default, bf16 on request; the model runs as the fused inference copy
  of `inference.py` (bf16 weights, fused QKV, packed oneDNN GEMMs on CPU), or as is with `optimize=False`. The
  transformers BigBird of `bigbird.py` (gena-lm-bigbird-base-t2t) has no fused copy (inference.py knows only our
  modules): it always runs as is, in fp32, or for bf16 as a bf16 copy of its weights (`bigbird.inference_copy`);
- output transforms from the model config (`GenaConfig.resolved_problem_type`): softmax (single-label), sigmoid
  (multi-label) or raw values (regression); for token heads, per-token tracks with nucleotide offsets or
  per-nucleotide arrays;
- CPU threads: before every batch, the count of `cpu_threads.ThreadPolicy` (the affinity mask, a user's
  GENALM_THREADS / OMP_NUM_THREADS / torch.set_num_threads, and the CPUs other processes leave free); the caller's
  count is back when a public call returns;
- on CPU, two process-wide settings when a Predictor is built: freed memory kept for reuse
  (`inference.keep_freed_memory`; `keep_freed_memory=False` opts out) and the kernel-cache bound
  (`process_settings.bound_kernel_caches`: sets LRU_CACHE_CAPACITY / ONEDNN_PRIMITIVE_CACHE_CAPACITY unless the user
  set them; the process's environment, so child processes inherit it);
- optional reverse-complement averaging;
- masked-LM log-probabilities (`masked_log_probs`: several tokens masked together, `masked_token_log_probs`: one
  at a time, `pseudo_log_likelihood`): the zero-shot variant scores of the MLM model.
`forward_content` is also the training loop's forward, so training and inference share the model call.
"""
from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .bigbird import HFBigBird, inference_copy
from .config import GenaConfig
from .cpu_threads import ThreadPolicy
from .genome import reverse_complement
from .inference import keep_freed_memory as keep_freed_memory_of_process
from .inference import optimize_for_inference
from .modeling_gena import HEADS, GenaOutput
from .official_layouts import LAYOUTS, spliceai_input
from .process_settings import bound_kernel_caches
from .rmt import RMT
from .tasks.base import TokenTrack
from .tokenizer import GenaTokenizer, token_values_to_nucleotides


class InputTooLong(ValueError):
    """An input with more tokens than a plain model takes; `index` is its position in the list given to predict,
    so that callers who know where the inputs came from (BED lines, VCF records) can name it."""

    def __init__(self, index: int, tokens: int, limit: int, where: str | None = None):
        self.index, self.tokens, self.limit = index, tokens, limit
        super().__init__(f"{where or f'input #{index}'}: {tokens} tokens, but this model takes at most {limit} per "
                         "input (no recurrent memory); inputs are never truncated silently: use shorter windows or "
                         "an RMT model")


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The head model inside DDP / torch.compile / RMT wrappers."""
    while True:
        if hasattr(model, "module"):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        elif isinstance(model, RMT):
            model = model.model
        else:
            return model


def is_rmt(model: torch.nn.Module) -> bool:
    while hasattr(model, "module") or hasattr(model, "_orig_mod"):
        model = getattr(model, "module", None) or model._orig_mod
    return isinstance(model, RMT)


def head_name(model: torch.nn.Module) -> str:
    """"mlm", "sequence_classification", "token_classification" or "embedding": the head inside any wrapper; our
    own heads by their class, others (bigbird.HFBigBird) by their `head_name`."""
    head = unwrap(model)
    return next((name for name, cls in HEADS.items() if isinstance(head, cls)), None) or head.head_name


def max_content_tokens(model: torch.nn.Module) -> int | None:
    """Longest content a model takes in one call: None (any length) for RMT, else positions - 2."""
    if is_rmt(model):
        return None
    return unwrap(model).config.max_position_embeddings - 2


def pad_batch(rows: Sequence[Sequence[int]], pad_id: int, device: torch.device | str = "cpu"
              ) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(1, max(len(r) for r in rows))
    ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = r
        mask[i, : len(r)] = 1
    return torch.from_numpy(ids).to(device), torch.from_numpy(mask).to(device)


def forward_content(model: torch.nn.Module, content_ids: torch.Tensor, content_mask: torch.Tensor,
                    cls_id: int, sep_id: int, pad_id: int, labels: torch.Tensor | None = None,
                    labels_mask: torch.Tensor | None = None) -> GenaOutput:
    """Run any model on right-padded content tokens (no specials). Token-level outputs and labels are aligned
    with `content_ids` whatever the model: plain models get `[CLS] ... [SEP]` added and stripped here."""
    if is_rmt(model):
        return model(content_ids, content_mask, labels=labels, labels_mask=labels_mask)
    limit = max_content_tokens(model)
    lengths = content_mask.sum(dim=1)
    if int(lengths.max()) > limit:
        raise ValueError(f"a sequence has {int(lengths.max())} tokens but this model takes at most {limit} "
                         "(it has no recurrent memory); use an RMT model or shorter inputs")
    batch, width = content_ids.shape
    ids = torch.full((batch, width + 2), pad_id, dtype=content_ids.dtype, device=content_ids.device)
    ids[:, 0] = cls_id
    ids[:, 1: width + 1] = torch.where(content_mask.bool(), content_ids, pad_id)
    ids[torch.arange(batch, device=ids.device), lengths + 1] = sep_id
    mask = F.pad(content_mask, (1, 1))
    mask[:, 0] = 1
    mask[torch.arange(batch, device=ids.device), lengths + 1] = 1
    head = head_name(model)
    token_level = head != "sequence_classification"
    if labels is not None and token_level:
        # labels follow the content tokens: shift them under [CLS]/[SEP]
        fill = -100 if head == "mlm" else 0
        labels = F.pad(labels, (0, 0, 1, 1) if labels.dim() == 3 else (1, 1), value=fill)
        if labels_mask is not None:
            labels_mask = F.pad(labels_mask, (1, 1))
        elif head != "mlm":
            labels_mask = F.pad(content_mask, (1, 1))
    if head == "mlm":
        out = model(ids, mask, labels=labels)
    elif labels_mask is not None:
        out = model(ids, mask, labels=labels, labels_mask=labels_mask)
    else:
        out = model(ids, mask, labels=labels)
    if token_level:
        hidden = out.hidden_states[:, 1: width + 1]
        logits = out.logits
        if logits is not None and not (head == "mlm" and labels is not None):
            logits = logits[:, 1: width + 1]
        return GenaOutput(logits=logits, hidden_states=hidden, loss=out.loss)
    return out


def span_token_weights(offsets: np.ndarray, span: tuple[int, int]) -> dict[int, float]:
    """{token index: share of the token's bases inside `span`} for the tokens overlapping `span`.

    offsets: (T, 2) [start, end) of each content token in its sequence. A token lying wholly inside the span
    gets 1.0, a token with 3 of its 6 bases inside gets 0.5; empty-span tokens are ignored.
    """
    start, end = span
    weights: dict[int, float] = {}
    for index, (token_start, token_end) in enumerate(np.asarray(offsets).reshape(-1, 2).tolist()):
        width = token_end - token_start
        overlap = min(token_end, end) - max(token_start, start)
        if width > 0 and overlap > 0:
            weights[index] = overlap / width
    return weights


def _thread_scoped(method):
    """A Predictor method that runs the model: torch's thread count is the policy's inside it, the caller's after."""
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        if self.threads is None:
            return method(self, *args, **kwargs)
        with self.threads.scope():
            return method(self, *args, **kwargs)
    return wrapper


@dataclass
class Encoded:
    ids: list[int]
    offsets: np.ndarray | None  # (T, 2) nucleotide spans, for token-level outputs


class Predictor:
    """Predictions for DNA strings from a loaded model and its tokenizer."""

    def __init__(self, model: torch.nn.Module, tokenizer: GenaTokenizer, device: str | torch.device | None = None,
                 precision: str = "fp32", batch_size: int = 32, max_batch_tokens: int = 32 * 512,
                 progress: bool = False, optimize: bool = True, keep_freed_memory: bool = True,
                 layout: str = "standard", flank: int = 0):
        if precision not in ("fp32", "bf16"):
            raise ValueError(f"precision must be 'fp32' or 'bf16', got {precision!r}")
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {device}: this torch ({torch.__version__}) has no CUDA support or sees no GPU; "
                             "use device cpu (or auto)")
        if self.device.type == "cpu" and keep_freed_memory:
            keep_freed_memory_of_process()  # no page faults on every batch's activations (inference.py)
        if self.device.type == "cpu":
            # a kernel per new batch shape, kept in two caches: bounded, before the weights are packed below
            # (process_settings.py); without effect where oneDNN already ran in this process
            bound_kernel_caches("Predictor")
        # CPU threads from the affinity mask, a user's setting, and the load of other processes (cpu_threads.py)
        self.threads = ThreadPolicy() if self.device.type == "cpu" else None
        if isinstance(unwrap(model), HFBigBird):  # no fused copy of transformers' modules (module docstring)
            self.model = inference_copy(model, precision, self.device)
        elif optimize:  # a fused copy in the inference dtype (inference.py); `model` itself is left as it is
            self.model = optimize_for_inference(model, precision, self.device)
        else:  # the plain modules, under autocast for bf16: the reference the fast path is tested against
            self.model = model.to(self.device).eval()
        self.tokenizer = tokenizer
        self.precision = precision
        self.batch_size = batch_size
        self.max_batch_tokens = max_batch_tokens
        self.progress = progress
        self.config: GenaConfig = unwrap(self.model).config
        self.head = unwrap(self.model)
        head = head_name(self.model)
        self.token_level = head != "sequence_classification"
        self.head_kind = head if head != "embedding" else "token_classification"
        # "standard": [CLS] tokens [SEP] (or RMT segments); "spliceai": the official SpliceAI head's layout of
        # `flank` + target + `flank` bp (official_layouts.py)
        self.layout = layout
        self.flank = flank
        if layout == "spliceai" and (not self.token_level or is_rmt(self.model)):
            raise ValueError("the SpliceAI layout is for plain (non-RMT) token-classification models")

    # ---- tokenization ----------------------------------------------------------------------------------------
    def encode(self, seqs: Sequence[str], with_offsets: bool) -> list[Encoded]:
        if with_offsets:
            pairs = self.tokenizer.encode_batch_with_offsets(list(seqs), add_special_tokens=False)
            return [Encoded(list(ids), np.asarray(offs, dtype=np.int64).reshape(-1, 2)) for ids, offs in pairs]
        return [Encoded(ids, None) for ids in self.tokenizer.encode_batch(list(seqs), add_special_tokens=False)]

    def batches(self, encoded: Sequence[Encoded]) -> list[list[int]]:
        """Indices of `encoded` grouped into length-sorted batches within the sequence and token budgets, longest
        batch first.

        Longest first because each batch's activations then fit in the blocks the previous, larger batch freed: in
        ascending order every batch asked the allocator for slightly more than any freed block and the heap grew
        through a call (a 2 kb promoter model over 400 sequences: +600 MB). A too-long input raises InputTooLong
        before any model call."""
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i].ids))
        limit = max_content_tokens(self.model)
        batches: list[list[int]] = []
        batch: list[int] = []
        for i in order:
            n = len(encoded[i].ids)
            if limit is not None and n > limit:
                raise InputTooLong(i, n, limit)
            cost = (len(batch) + 1) * max(n, 1)  # sorted: the newcomer is the longest
            if batch and (len(batch) >= self.batch_size or cost > self.max_batch_tokens):
                batches.append(batch)
                batch = []
            batch.append(i)
        if batch:
            batches.append(batch)
        return batches[::-1]

    # ---- model call --------------------------------------------------------------------------------------------
    def autocast(self):
        if self.precision == "bf16":
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def before_batch(self) -> None:
        """Called before every model call: on CPU, the thread count for this batch (`cpu_threads.ThreadPolicy`)."""
        if self.threads is not None:
            self.threads.before_batch()

    @_thread_scoped
    def run(self, rows: Sequence[Sequence[int]], labels: torch.Tensor | None = None) -> GenaOutput:
        """The model on right-padded content rows (`forward_content`); `labels` (B, T) for a masked-LM head."""
        ids, mask = pad_batch(rows, self.tokenizer.pad_id, self.device)
        self.before_batch()
        with torch.inference_mode(), self.autocast():
            return forward_content(self.model, ids, mask, self.tokenizer.cls_id, self.tokenizer.sep_id,
                                   self.tokenizer.pad_id, labels=labels)

    def outputs(self, logits: torch.Tensor) -> torch.Tensor:
        """Logits (..., C) -> what the head predicts, by `GenaConfig.resolved_problem_type` (absent problem_type:
        one label is regression, more labels single-label; token heads single-label, as the official code):
        softmax over C (single-label), sigmoid (multi-label) or the raw values (regression)."""
        logits = logits.float()
        problem = self.config.resolved_problem_type(self.head_kind)
        if problem == "multi_label_classification":
            return torch.sigmoid(logits)
        if problem == "regression":
            return logits
        return torch.softmax(logits, dim=-1)

    # ---- public API -------------------------------------------------------------------------------------------
    @_thread_scoped
    def predict(self, seqs: Sequence[str], level: str = "nucleotide", rc_average: bool = False) -> list:
        """Outputs in input order.

        Sequence heads: one (C,) array per sequence. Token heads: level="token" gives `TokenTrack`s,
        level="nucleotide" one (len(seq), C) array per sequence (each nucleotide takes its token's value).
        rc_average: also predict the reverse complement and average (token tracks are flipped back first).
        """
        if level not in ("token", "nucleotide"):
            raise ValueError(f"level must be 'token' or 'nucleotide', got {level!r}")
        forward = self._predict_strand(seqs, level)
        if not rc_average:
            return forward
        if self.token_level and level == "token":
            raise ValueError("reverse-complement averaging of token tracks needs level='nucleotide' "
                             "(the two strands tokenize differently)")
        reverse = self._predict_strand([reverse_complement(s) for s in seqs], level)
        if self.token_level:
            return [(f + r[::-1]) / 2 for f, r in zip(forward, reverse)]
        return [(f + r) / 2 for f, r in zip(forward, reverse)]

    def _predict_strand(self, seqs: Sequence[str], level: str) -> list:
        if self.layout == "spliceai":
            return self._predict_spliceai(seqs, level)
        encoded = self.encode(seqs, with_offsets=self.token_level)
        results: list = [None] * len(seqs)
        batches = self.batches(encoded)
        if self.progress:
            from tqdm.auto import tqdm
            batches = tqdm(batches, desc="predict", unit="batch")
        for batch in batches:
            out = self.run([encoded[i].ids for i in batch])
            if not self.token_level:
                values = self.outputs(out.logits).cpu().numpy()
                for row, i in enumerate(batch):
                    results[i] = values[row]
                continue
            source = out.hidden_states if out.logits is None else self.outputs(out.logits)
            values = source.float().cpu().numpy()
            for row, i in enumerate(batch):
                track = values[row, : len(encoded[i].ids)]
                if level == "token":
                    results[i] = TokenTrack(probs=track, offsets=encoded[i].offsets)
                else:
                    results[i] = token_values_to_nucleotides(track, encoded[i].offsets, len(seqs[i]))
        return results

    def _predict_spliceai(self, seqs: Sequence[str], level: str) -> list:
        """Token heads in the official SpliceAI layout: the target's tokens only, offsets in the whole input."""
        results: list = [None] * len(seqs)
        for start in range(0, len(seqs), self.batch_size):
            chunk = range(start, min(start + self.batch_size, len(seqs)))
            laid = [spliceai_input(self.tokenizer, seqs[i], self.flank, len(seqs[i]) - 2 * self.flank,
                                   self.config.max_position_embeddings) for i in chunk]
            ids = torch.from_numpy(np.stack([x.ids for x in laid])).to(self.device)  # all max_length long
            mask = torch.from_numpy(np.stack([x.attention_mask for x in laid])).to(self.device)
            self.before_batch()
            with torch.inference_mode(), self.autocast():
                out = self.model(ids, mask)
            values = self.outputs(out.logits).float().cpu().numpy()
            for row, (i, x) in enumerate(zip(chunk, laid)):
                track, offsets = values[row, x.target_positions], x.target_offsets + self.flank
                results[i] = (TokenTrack(probs=track, offsets=offsets) if level == "token"
                              else token_values_to_nucleotides(track, offsets, len(seqs[i])))
        return results

    # ---- masked-LM pseudo-likelihoods (zero-shot variant scores) ----------------------------------------------
    @_thread_scoped
    def masked_log_probs(self, token_ids: Sequence[Sequence[int]], positions: Sequence[Sequence[int]],
                         targets: Sequence[Sequence[int]] | None = None) -> list[np.ndarray]:
        """log P(target token at each position | the sequence with all its `positions` replaced by [MASK]).

        token_ids: content tokens of each sequence (no [CLS]/[SEP], as `encode` gives them); positions: for each
        sequence, the token indices masked together in its one masked copy; targets: for each sequence, the token
        id scored at each of its positions (default: the sequence's own tokens there). Masked copies go through
        the usual length-aware batches, sequences whose masked copies are equal share one forward pass, and the
        vocabulary decoder runs only on masked positions. Cost: one forward pass per distinct masked copy.
        Returns one float64 array per sequence, aligned with its `positions` (empty positions: an empty array).
        Raises ValueError for a position outside its sequence or given twice, or a target outside the vocabulary.
        """
        if self.head_kind != "mlm":
            raise ValueError(f"masked log-likelihoods need a masked-LM head, this model is "
                             f"{type(self.head).__name__}")
        if len(token_ids) != len(positions) or (targets is not None and len(targets) != len(positions)):
            raise ValueError(f"{len(token_ids)} sequences but {len(positions)} position lists"
                             + ("" if targets is None else f" and {len(targets)} target lists"))
        vocab = self.config.vocab_size
        copies: list[Encoded] = []  # the distinct masked copies
        copy_positions: list[list[int]] = []  # their masked positions, ascending
        copy_of: dict[tuple, int] = {}
        owners: list[list[int]] = []  # sequences reading each copy
        for index, (ids, wanted) in enumerate(zip(token_ids, positions)):
            wanted = [int(p) for p in wanted]
            if len(set(wanted)) != len(wanted):
                raise ValueError(f"sequence {index}: a token position is given twice in {wanted}")
            for position in wanted:
                if not 0 <= position < len(ids):
                    raise ValueError(f"sequence {index}: token position {position} is outside its {len(ids)} tokens")
            if targets is not None:
                if len(targets[index]) != len(wanted):
                    raise ValueError(f"sequence {index}: {len(wanted)} positions but {len(targets[index])} targets")
                bad = [t for t in targets[index] if not 0 <= int(t) < vocab]
                if bad:
                    raise ValueError(f"sequence {index}: target token {bad[0]} is outside the vocabulary ({vocab})")
            if not wanted:
                continue
            masked = list(ids)
            for position in wanted:
                masked[position] = self.tokenizer.mask_id
            key = (tuple(masked), tuple(sorted(wanted)))
            if key not in copy_of:
                copy_of[key] = len(copies)
                copies.append(Encoded(masked, None))
                copy_positions.append(sorted(wanted))
                owners.append([])
            owners[copy_of[key]].append(index)
        results = [np.zeros(len(wanted), dtype=np.float64) for wanted in positions]
        for batch in self.batches(copies):
            width = max(len(copies[c].ids) for c in batch)
            labels = torch.full((len(batch), max(1, width)), -100, dtype=torch.long)
            for row, c in enumerate(batch):
                labels[row, copy_positions[c]] = 0  # any valid id: only the positions' logits are read
            out = self.run([copies[c].ids for c in batch], labels=labels.to(self.device))
            # With labels, the MLM head returns logits only for labelled positions, row by row, each row's
            # positions in ascending order
            log_probs = torch.log_softmax(out.logits.float(), dim=-1)
            first = 0
            for c in batch:
                rows = log_probs[first: first + len(copy_positions[c])]
                first += len(copy_positions[c])
                at = {p: r for r, p in enumerate(copy_positions[c])}
                for index in owners[c]:
                    wanted = [int(p) for p in positions[index]]
                    truth = (targets[index] if targets is not None
                             else [token_ids[index][p] for p in wanted])
                    picked = rows[[at[p] for p in wanted], [int(t) for t in truth]]
                    results[index] = picked.double().cpu().numpy()
        return results

    def masked_token_log_probs(self, token_ids: Sequence[Sequence[int]], positions: Sequence[Sequence[int]]
                               ) -> list[np.ndarray]:
        """log P(token | the sequence with only that token replaced by [MASK]) for chosen content tokens.

        token_ids: content tokens of each sequence (no [CLS]/[SEP], as `encode` gives them); positions: for each
        sequence, the indices of the tokens to score. Every (sequence, position) pair is one masked copy of the
        sequence (`masked_log_probs` with one position each). Returns one float64 array per sequence, aligned
        with its `positions`.
        """
        if len(token_ids) != len(positions):
            raise ValueError(f"{len(token_ids)} sequences but {len(positions)} position lists")
        flat_ids = [ids for ids, wanted in zip(token_ids, positions) for _ in wanted]
        flat_positions = [[position] for wanted in positions for position in wanted]
        flat = self.masked_log_probs(flat_ids, flat_positions)
        results, first = [], 0
        for wanted in positions:
            results.append(np.array([v[0] for v in flat[first: first + len(wanted)]], dtype=np.float64))
            first += len(wanted)
        return results

    def pseudo_log_likelihood(self, seqs: Sequence[str], spans: Sequence[tuple[int, int]]) -> list[float]:
        """Pseudo-log-likelihood of the bases `span = (start, end)` of each sequence (see `span_token_weights`).

        Each content token overlapping the span is masked on its own; its log-probability is spread evenly over
        the bases it covers, and the span collects the share of the bases it holds. The score therefore refers
        to a fixed stretch of bases whatever the tokenization, which makes two alleles that tokenize differently
        comparable.
        """
        encoded = self.encode(seqs, with_offsets=True)
        weights = [span_token_weights(e.offsets, span) for e, span in zip(encoded, spans)]
        log_probs = self.masked_token_log_probs([e.ids for e in encoded], [list(w) for w in weights])
        return [float(sum(w * lp for w, lp in zip(wt.values(), values)))
                for wt, values in zip(weights, log_probs)]

    @_thread_scoped
    def embed(self, seqs: Sequence[str]) -> list[np.ndarray]:
        """Mean of the last-layer states over each sequence's content tokens (pooled embedding)."""
        encoded = self.encode(seqs, with_offsets=False)
        results: list = [None] * len(seqs)
        for batch in self.batches(encoded):
            out = self.run([encoded[i].ids for i in batch])
            states = out.hidden_states.float()
            if not self.token_level:
                raise ValueError("pooled embeddings need a token-level model (embedding / MLM head)")
            for row, i in enumerate(batch):
                n = len(encoded[i].ids)
                results[i] = states[row, :n].mean(dim=0).cpu().numpy()
        return results

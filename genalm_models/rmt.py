"""Recurrent Memory Transformer (RMT) around any GENA-LM head model, for inputs longer than one segment.

As published for GENA-LM:
- `m` memory tokens get new rows appended to the word-embedding matrix (ids vocab_size .. vocab_size+m-1); the
  initial memory is their embeddings.
- A segment is `[CLS] MEM_1..MEM_m [SEP] content [SEP]`: 512 - m - 3 content tokens at most. Memory is read and
  written at positions 1..m: the input embeddings there are overwritten with the current memory (position/type
  embeddings and the embedding LayerNorm then apply as usual), and the new memory is the last-layer output there.
- The content tokens (specials stripped) are cut into n = ceil(len / segment_size) near-equal chunks with
  `torch.chunk` semantics. Samples are right-aligned across a batch: one with fewer segments joins at a later step,
  so every sample's last segment is processed at the last step.
- Sequence tasks read the head on the last segment; the loss is the last segment's or the mean over segments.
  Token tasks return every content token's logits (the loss is the token-weighted mean over all segments).
- Truncated backpropagation (`bptt_depth=k`): the memory is detached before the last k segments, so gradients
  flow through at most k segments.
Unlike the official code, nothing is truncated silently: more segments than `max_n_segments` is an error.
Segments are right-padded with [PAD] and the padding is masked out; `RMTConfig.segment_padding="official"`
reproduces the official sequence classifier instead (every segment padded to the full input size with id 0, which
it attends to), for official RMT checkpoints.
Under `torch.no_grad()` a segment's activations are freed before the next segment runs, so inference memory does
not grow with the number of segments.

`RMT` is a transformers `PreTrainedModel` (the config of the head it wraps), so transformers' tools (Trainer,
pipelines, PEFT) take it as they take a head. Its input is the content tokens; tokenizer output with
`[CLS] ... [SEP]` around each row (what transformers' tokenizers and pipelines give) is also accepted: those two
tokens are dropped before the segments are built, and token-level outputs keep the input's width (zeros there).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .config import RMTConfig
from .modeling_gena import (GenaForEmbedding, GenaForMaskedLM, GenaForSequenceClassification,
                            GenaForTokenClassification, GenaOutput, GenaPreTrainedModel, sequence_loss, token_loss)


def segment_bounds(length: int, segment_size: int) -> list[tuple[int, int]]:
    """[start, end) of each segment of `length` content tokens, with torch.chunk semantics.

    n = ceil(length / segment_size) chunks are asked for; torch.chunk makes chunks of ceil(length / n) tokens,
    the last one shorter (and may return fewer than n chunks). An empty input is one empty segment.
    """
    if length == 0:
        return [(0, 0)]
    n = math.ceil(length / segment_size)
    chunk = math.ceil(length / n)
    return [(start, min(start + chunk, length)) for start in range(0, length, chunk)]


class RMT(GenaPreTrainedModel):
    """Wraps a head model (`GenaFor*`); official RMT checkpoints keep it under the `model.` prefix. A transformers
    `PreTrainedModel` sharing the wrapped head's config; its weights are the head's (never re-initialised here)."""

    base_model_prefix = "model"

    def __init__(self, model: GenaPreTrainedModel, rmt: RMTConfig, cls_id: int = 1, sep_id: int = 2,
                 pad_id: int | None = None, extend_embeddings: bool = True):
        super().__init__(model.config)
        self.model = model
        self.rmt = rmt
        self.num_mem_tokens = rmt.num_mem_tokens
        self.cls_id, self.sep_id = cls_id, sep_id
        self.pad_id = model.config.pad_token_id if pad_id is None else pad_id
        self.input_size = model.config.max_position_embeddings
        self.segment_size = self.input_size - self.num_mem_tokens - 3
        rmt.validate(self.input_size)
        self.vocab_size = model.config.vocab_size
        if extend_embeddings:
            self._extend_embeddings()
        self.register_buffer("mem_token_ids", torch.arange(self.vocab_size, self.vocab_size + self.num_mem_tokens),
                             persistent=False)
        self.post_init()  # transformers' bookkeeping; `init_weights` below leaves the weights alone

    def init_weights(self) -> None:
        """Nothing: the wrapped head initialised its weights, `_extend_embeddings` the memory rows."""

    def get_input_embeddings(self) -> nn.Embedding:
        return self.model.word_embeddings

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.model.set_input_embeddings(value)

    def _extend_embeddings(self) -> None:
        """Append m memory-token rows to the word embeddings (and to a tied MLM decoder)."""
        old = self.model.word_embeddings
        new = nn.Embedding(self.vocab_size + self.num_mem_tokens, old.embedding_dim, padding_idx=old.padding_idx)
        with torch.no_grad():
            new.weight[: self.vocab_size] = old.weight
            nn.init.normal_(new.weight[self.vocab_size:], std=self.model.config.initializer_range)
        self.model.bert.embeddings.word_embeddings = new
        if isinstance(self.model, GenaForMaskedLM):
            pred = self.model.cls.predictions
            decoder = nn.Linear(old.embedding_dim, new.num_embeddings)
            with torch.no_grad():
                decoder.bias.zero_()
                decoder.bias[: self.vocab_size] = pred.decoder.bias
                if not self.model.config.ties_word_embeddings:  # an untied decoder keeps its rows, new ones fresh
                    nn.init.normal_(decoder.weight, std=self.model.config.initializer_range)
                    decoder.weight[: self.vocab_size] = pred.decoder.weight
            pred.decoder = decoder
            pred.bias = decoder.bias
            self.model.tie_weights()

    # ------------------------------------------------------------------------------------------------------------
    def segments_needed(self, length: int) -> int:
        return len(segment_bounds(length, self.segment_size))

    def check_lengths(self, lengths: list[int]) -> None:
        limit = self.rmt.max_n_segments
        if limit is None:
            return
        for i, length in enumerate(lengths):
            n = self.segments_needed(length)
            if n > limit:
                raise ValueError(f"sample {i} has {length} tokens = {n} segments of at most {self.segment_size}, "
                                 f"more than max_n_segments={limit}; raise the limit or shorten the input "
                                 "(inputs are never truncated silently)")

    @property
    def official_padding(self) -> bool:
        """Whether segments are padded as the official RMTEncoderForSequenceClassification does (see
        `RMTConfig.segment_padding`): only sequence-classification heads in "official" mode."""
        return self.rmt.segment_padding == "official" and isinstance(self.model, GenaForSequenceClassification)

    def _segment_input(self, pieces: list[torch.Tensor], memory: torch.Tensor
                       ) -> tuple[torch.Tensor, torch.Tensor]:
        """Embeddings (B, W, H) and attention mask (B, W) for `[CLS] MEM [SEP] piece [SEP]`.

        "masked" padding: W is the longest piece's segment, padded with [PAD] and masked out. Official padding
        (official `pad_add_special_tokens` + `get_attention_mask`): W is the full input size, padded with id 0,
        and the mask is `ids != pad_id`, so the id-0 padding is attended to.
        """
        m = self.num_mem_tokens
        official = self.official_padding
        width = self.input_size if official else m + 3 + max(len(p) for p in pieces)
        device = memory.device
        ids = torch.full((len(pieces), width), 0 if official else self.pad_id, dtype=torch.long, device=device)
        mask = torch.zeros((len(pieces), width), dtype=torch.long, device=device)
        ids[:, 0] = self.cls_id
        ids[:, 1: m + 1] = self.mem_token_ids
        ids[:, m + 1] = self.sep_id
        for row, piece in enumerate(pieces):
            ids[row, m + 2: m + 2 + len(piece)] = piece
            ids[row, m + 2 + len(piece)] = self.sep_id
            mask[row, : m + 3 + len(piece)] = 1
        if official:
            mask = (ids != self.pad_id).long()
        embeds = self.model.word_embeddings(ids)
        embeds = torch.cat([embeds[:, :1], memory.to(embeds.dtype), embeds[:, m + 1:]], dim=1)
        return embeds, mask

    def initial_memory(self, batch: int) -> torch.Tensor:
        return self.model.word_embeddings(self.mem_token_ids).unsqueeze(0).expand(batch, -1, -1)

    def _strip_specials(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None
                        ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
        """Tokenizer output (`[CLS] content [SEP]` in every row; our code never passes [CLS] as content) ->
        (content ids, content mask, the positions of the input the content came from (B, L-1)); None for content
        input. ValueError when a row starts with [CLS] but does not end with [SEP]."""
        if input_ids.shape[1] < 2 or not bool((input_ids[:, 0] == self.cls_id).all()):
            return None
        mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask.long()
        last = mask.sum(dim=1) - 1
        rows = torch.arange(input_ids.shape[0], device=input_ids.device)
        if not bool((input_ids[rows, last] == self.sep_id).all()):
            raise ValueError("RMT input rows start with [CLS] but do not all end with [SEP]: pass content tokens "
                             "(add_special_tokens=False) or complete `[CLS] ... [SEP]` rows")
        ids, mask = input_ids[:, 1:].clone(), mask[:, 1:].clone()
        ids[rows, last - 1] = self.pad_id
        mask[rows, last - 1] = 0
        return ids, mask, last

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                labels: torch.Tensor | None = None, labels_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None) -> GenaOutput:
        """Run all segments.

        input_ids: (B, L) content tokens with no [CLS]/[SEP], right-padded; attention_mask (B, L) marks real ones.
        Rows of `[CLS] content [SEP]` (a transformers tokenizer's output) are also taken: see the module docstring.
        labels: (B,) / (B, C) for sequence heads; (B, L, C) for token heads; (B, L) with -100 for MLM.
        token_type_ids: accepted for tokenizer output; must be all zeros (segments have one type).
        Returns logits of the last segment (sequence heads), or of every content token (token / MLM heads:
        (B, L, C) aligned with `input_ids`); hidden_states are the content tokens' last-layer states for
        token-level heads and the last segment's states for sequence heads.
        """
        if token_type_ids is not None and bool(token_type_ids.any()):
            raise ValueError("RMT segments have a single token type: token_type_ids must be all zeros")
        stripped = self._strip_specials(input_ids, attention_mask)
        if stripped is not None:
            content, content_mask, _ = stripped
            token_level = not isinstance(self.model, GenaForSequenceClassification)
            if token_level and labels is not None:
                labels = labels[:, 1:]
            if labels_mask is not None:
                labels_mask = labels_mask[:, 1:]
            out = self.forward(content, content_mask, labels=labels, labels_mask=labels_mask)
            if token_level:  # back to the input's width: the [CLS] and [SEP] positions get zeros
                def widen(x: torch.Tensor | None) -> torch.Tensor | None:
                    if x is None or x.shape[:2] != content.shape:
                        return x  # MLM logits with labels: only the labelled positions
                    return F.pad(x, (0, 0, 1, 0))
                out = GenaOutput(loss=out.loss, logits=widen(out.logits), hidden_states=widen(out.hidden_states))
            return out
        batch = input_ids.shape[0]
        if attention_mask is None:
            lengths = [input_ids.shape[1]] * batch
        else:
            lengths = attention_mask.sum(dim=1).tolist()
        self.check_lengths(lengths)
        bounds = [segment_bounds(n, self.segment_size) for n in lengths]
        n_steps = max(len(b) for b in bounds)
        m = self.num_mem_tokens
        token_level = not isinstance(self.model, GenaForSequenceClassification)

        memory = self.initial_memory(batch)
        per_sample_tokens: list[list[torch.Tensor]] = [[] for _ in range(batch)]  # token-level outputs
        seg_losses: list[torch.Tensor] = []
        last_logits = last_hidden = None
        for step in range(n_steps):
            active = [i for i in range(batch) if step >= n_steps - len(bounds[i])]
            if self.rmt.bptt_depth is not None and step <= n_steps - self.rmt.bptt_depth:
                memory = memory.detach()
            pieces = []
            for i in active:
                start, end = bounds[i][step - (n_steps - len(bounds[i]))]
                pieces.append(input_ids[i, start:end])
            active_idx = torch.tensor(active, device=input_ids.device)
            embeds, mask = self._segment_input(pieces, memory[active_idx])
            if token_level:
                out = self.model(inputs_embeds=embeds, attention_mask=mask)
                states = out.hidden_states if out.logits is None else out.logits
                hidden = out.hidden_states
                if isinstance(self.model, GenaForMaskedLM):
                    states = hidden  # the (vocab-wide) decoder runs once, on masked tokens only, below
                for row, i in enumerate(active):
                    per_sample_tokens[i].append(states[row, m + 2: m + 2 + len(pieces[row])])
            else:
                out = self.model(inputs_embeds=embeds, attention_mask=mask)
                if labels is not None and self.rmt.loss == "mean":
                    seg_losses.append(sequence_loss(out.logits, labels[active_idx], self.model.config))
                if step == n_steps - 1:
                    last_logits, last_hidden = out.logits, out.hidden_states
            memory = memory.index_copy(0, active_idx, out.hidden_states[:, 1: m + 1].to(memory.dtype))
            # drop this segment's outputs before the next one runs: inference memory stays one segment's
            del out, embeds, mask

        if not token_level:
            loss = None
            if labels is not None:
                loss = (torch.stack(seg_losses).mean() if seg_losses
                        else sequence_loss(last_logits, labels, self.model.config))
            return GenaOutput(logits=last_logits, hidden_states=last_hidden, loss=loss)

        width = input_ids.shape[1]
        rows = [torch.cat(parts, dim=0) for parts in per_sample_tokens]
        states = torch.stack([F.pad(r, (0, 0, 0, width - r.shape[0])) for r in rows])
        if isinstance(self.model, GenaForMaskedLM):
            if labels is None:
                return GenaOutput(logits=self.model.cls.predictions(states), hidden_states=states)
            selected = labels != -100
            logits = self.model.cls.predictions(states[selected])
            loss = F.cross_entropy(logits.float(), labels[selected]) if logits.numel() else states.sum() * 0.0
            return GenaOutput(logits=logits, hidden_states=states, loss=loss)
        if isinstance(self.model, GenaForEmbedding):
            return GenaOutput(logits=None, hidden_states=states)
        assert isinstance(self.model, GenaForTokenClassification)
        loss = None
        if labels is not None:
            if labels_mask is None and attention_mask is not None:
                labels_mask = attention_mask
            loss = token_loss(states, labels, labels_mask, self.model.pos_weight, self.model.config)
        return GenaOutput(logits=states, hidden_states=states, loss=loss)

"""Token layouts the official GENA-LM fine-tuning code built, for the heads published with those layouts.

Most official heads read `[CLS] tokens [SEP]` (promoters: `EPDnewPromoterDataset.get_features`, right-truncated to
510 tokens) - the layout of `predict.forward_content`. The SpliceAI head was trained on another one, reproduced
here (official `downstream_tasks/SpliceAI/SpliceAIDataset.tokenize_inputs`, read, not copied):

* the input is `left context + target + right context` (SpliceAI data: 5,000 + 5,000 + 5,000 bp), with leading and
  trailing N runs of the contexts dropped;
* the target is tokenized on its own; the two contexts are tokenized as one string with a junction base between
  them (an unknown token that marks the boundary, then dropped), so BPE tokens never span the target's edges;
* the tokens are laid out as `[CLS] left [SEP] target [SEP] right ... [SEP]` in 512 positions:
  - target of 508 tokens or more (always, for 5 kb targets: ~780 tokens): `[CLS] [SEP] target[:508] [SEP] [SEP]`,
    i.e. **no context at all and only the first ~3.3 kb of the target** - unusual, but what the published weights
    were trained and evaluated on;
  - everything fits: `[CLS] left [SEP] target [SEP] right [PAD]... [SEP]`, padding masked;
  - too long: the contexts are trimmed from their outer ends, the longer one first, until 512 tokens remain.
Bases of the target outside the kept tokens get no prediction (NaN).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .tokenizer import GenaTokenizer

LAYOUTS = ("standard", "spliceai")
JUNCTION = "X"   # an unknown letter between the two contexts: one [UNK] token, removed after tokenization


@dataclass
class LaidOut:
    """One input in the official layout: `ids` and `attention_mask` of shape (max_length,); the target's tokens
    sit at `target_positions` and cover the target bases `target_offsets` (T, 2) (0 = the target's first base)."""

    ids: np.ndarray
    attention_mask: np.ndarray
    target_positions: np.ndarray
    target_offsets: np.ndarray


def spliceai_input(tokenizer: GenaTokenizer, sequence: str, flank: int, target_length: int,
                   max_length: int = 512) -> LaidOut:
    """The official SpliceAI layout of `sequence` = `flank` bp + `target_length` bp target + `flank` bp.

    Raises ValueError when `sequence` is not 2 * flank + target_length long.
    """
    if len(sequence) != 2 * flank + target_length:
        raise ValueError(f"the SpliceAI layout needs {flank} + {target_length} + {flank} bp, got {len(sequence)} bp")
    sequence = sequence.upper()
    left, target, right = sequence[:flank].lstrip("N"), sequence[flank: flank + target_length], \
        sequence[flank + target_length:].rstrip("N")
    (target_ids, target_offsets), = tokenizer.encode_batch_with_offsets([target], add_special_tokens=False)
    target_ids, target_offsets = list(target_ids), np.asarray(target_offsets, dtype=np.int64).reshape(-1, 2)
    cls, sep, pad = tokenizer.cls_id, tokenizer.sep_id, tokenizer.pad_id
    room = max_length - 4
    if len(target_ids) >= room:
        ids = [cls, sep] + target_ids[:room] + [sep, sep]
        positions = np.arange(2, 2 + room)
        target_offsets = target_offsets[:room]
        mask = [1] * len(ids)
    else:
        (context_ids, context_offsets), = tokenizer.encode_batch_with_offsets([left + JUNCTION + right],
                                                                              add_special_tokens=False)
        boundary = next(i for i, (start, end) in enumerate(context_offsets)
                        if start == len(left) and end == len(left) + 1)
        left_ids, right_ids = list(context_ids[:boundary]), list(context_ids[boundary + 1:])
        oversize = len(left_ids) + len(target_ids) + len(right_ids) + 4 - max_length
        n_pad = 0
        if oversize <= 0:
            n_pad = -oversize
        else:
            trim_left, trim_right = _trim(len(left_ids), len(right_ids), oversize)
            left_ids = left_ids[trim_left:]
            right_ids = right_ids[: len(right_ids) - trim_right]
        ids = [cls] + left_ids + [sep] + target_ids + [sep] + right_ids + [pad] * n_pad + [sep]
        mask = [0 if token == pad else 1 for token in ids]
        positions = np.arange(len(left_ids) + 2, len(left_ids) + 2 + len(target_ids))
    return LaidOut(ids=np.asarray(ids, dtype=np.int64), attention_mask=np.asarray(mask, dtype=np.int64),
                   target_positions=positions, target_offsets=target_offsets)


def _trim(n_left: int, n_right: int, oversize: int) -> tuple[int, int]:
    """Tokens to drop from the left and right contexts: the longer loses first, then both evenly (the official
    rule; an odd remainder comes off the left)."""
    difference = abs(n_left - n_right)
    first = min(difference, oversize)
    rest = oversize - first
    longer, shorter = first + (rest + 1) // 2, rest // 2
    return (longer, shorter) if n_left >= n_right else ((rest + 1) // 2, first + rest // 2)


__all__ = ["LAYOUTS", "LaidOut", "spliceai_input"]

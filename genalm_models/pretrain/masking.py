"""GENA-LM masked-language-model masking: 15% of tokens, in spans of 1-3 tokens with P(n) ~ 1/n, 80/10/10.

Randomness is keyed on (seed, epoch, sample index) through a numpy Generator, never on the process or the rank,
so a sample is masked identically in a 1-process run, a 2-process DDP run, and a run resumed after a kill.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class MaskingConfig:
    mlm_probability: float = 0.15
    max_span: int = 3             # span lengths 1..max_span, P(n) proportional to 1/n
    mask_fraction: float = 0.8    # of the selected tokens: replaced by [MASK]
    random_fraction: float = 0.1  # replaced by a random token; the rest is kept as is
    short_sample_probability: float = 0.1  # GENA-LM: 10% of samples are shortened to a random length
    min_short_length: int = 16

    def span_probabilities(self) -> np.ndarray:
        weights = 1.0 / np.arange(1, self.max_span + 1)
        return weights / weights.sum()


def sample_rng(seed: int, epoch: int, index: int, stream: int = 0) -> np.random.Generator:
    """An independent random stream per (seed, epoch, sample, purpose)."""
    return np.random.default_rng([seed, epoch, index, stream])


def select_span_positions(n_tokens: int, maskable: np.ndarray, cfg: MaskingConfig,
                          rng: np.random.Generator) -> np.ndarray:
    """Boolean (n_tokens,) selection of ~mlm_probability of the maskable tokens, grown span by span."""
    selected = np.zeros(n_tokens, dtype=bool)
    n_maskable = int(maskable.sum())
    target = int(round(cfg.mlm_probability * n_maskable))
    if target == 0:
        return selected
    probs = cfg.span_probabilities()
    candidates = np.flatnonzero(maskable)
    # Draw span starts among maskable tokens until enough are selected; spans may overlap (they then merge),
    # and a span never extends over an unmaskable token.
    count = 0
    for _ in range(4 * target + 10):  # bounded: each draw selects >= 1 token with high probability
        span = int(rng.choice(len(probs), p=probs)) + 1
        span = min(span, target - count)
        start = int(candidates[rng.integers(len(candidates))])
        stop = min(start + span, n_tokens)
        window = maskable[start:stop]
        if not window.all():
            stop = start + int(np.argmin(window))  # stop before the first unmaskable token
        new = (~selected[start:stop]).sum()
        selected[start:stop] = True
        count += int(new)
        if count >= target:
            break
    return selected


def mask_tokens(ids: np.ndarray, cfg: MaskingConfig, rng: np.random.Generator, mask_id: int,
                special_ids: set[int], vocab_size: int, first_regular_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Returns (input ids, labels): labels hold the original id at selected positions and -100 elsewhere."""
    ids = np.asarray(ids, dtype=np.int64)
    maskable = ~np.isin(ids, list(special_ids))
    selected = select_span_positions(len(ids), maskable, cfg, rng)
    labels = np.where(selected, ids, -100)
    inputs = ids.copy()
    roll = rng.random(len(ids))
    to_mask = selected & (roll < cfg.mask_fraction)
    to_random = selected & (roll >= cfg.mask_fraction) & (roll < cfg.mask_fraction + cfg.random_fraction)
    inputs[to_mask] = mask_id
    inputs[to_random] = rng.integers(first_regular_id, vocab_size, size=int(to_random.sum()))
    return inputs, labels


def maybe_shorten(ids: np.ndarray, cfg: MaskingConfig, rng: np.random.Generator) -> np.ndarray:
    """With probability `short_sample_probability`, keep only a random-length prefix (GENA-LM's 10% short samples,
    so the model also sees inputs shorter than the full 512 tokens)."""
    if len(ids) > cfg.min_short_length and rng.random() < cfg.short_sample_probability:
        return ids[: int(rng.integers(cfg.min_short_length, len(ids)))]
    return ids

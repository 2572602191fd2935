"""Variant-effect scores from the model's outputs on a reference and an alternative window (numpy only).

Sequence models (kind `sequence`, e.g. GENA-LM/promoter), per output label, from the probabilities p_ref, p_alt:
    ref        p_ref                      logit_ref  log(p_ref / (1 - p_ref))
    alt        p_alt                      logit_alt  log(p_alt / (1 - p_alt))
    diff       p_alt - p_ref              logit      logit_alt - logit_ref   (log odds ratio)
  Probabilities are clipped to [1e-7, 1 - 1e-7] before the logit. Regression models have no logit scores.

Per-nucleotide models (kind `token`, GENA-LM/splice), per label (acceptor, donor):
    max_diff         the largest change p_alt - p_ref (signed; largest in absolute value) over the bases within
                     `distance` bp of the variant (from `distance` bp before its first REF base to `distance` bp
                     after its last one, in the window's orientation; only bases the model has outputs for)
    max_diff_offset  where it happens: genomic position of that base minus the variant's (trimmed) start, in bp,
                     on the '+' strand (negative = lower coordinates); 0 for a base inserted by the variant
  Alignment of the two tracks (model orientation): bases before the variant and substituted bases compare with the
  same index; bases after the variant compare with their shifted index in the ALT window; deleted bases compare
  with 0 (the site is gone, as in SpliceAI), inserted bases with 0 (a new site); bases pushed out of the ALT window
  by an insertion are not compared.

Embedding models (kind `embedding`): `cosine_distance` (1 - cosine similarity) and `l2_distance` of the pooled
embeddings of the two windows (one value, label `embedding`).

Masked LM (kind `mlm`, GENA-LM/mlm): `pll_ref`, `pll_alt`, `llr` = pll_alt - pll_ref, by one of two estimators:
`pll` (default; veff.py and `genalm_models.predict.Predictor.pseudo_log_likelihood`) or `masked-marginal`
(veff_mlm.py: definitions, sources and costs of both).
"""
from __future__ import annotations

from typing import Callable

import numpy as np

PROBABILITY_CLIP = 1e-7

SEQUENCE_SCORES = ("ref", "alt", "diff", "logit_ref", "logit_alt", "logit")
TOKEN_SCORES = ("max_diff", "max_diff_offset")
EMBEDDING_SCORES = ("cosine_distance", "l2_distance")
MLM_SCORES = ("pll_ref", "pll_alt", "llr")
SCORES_BY_KIND = {"sequence": SEQUENCE_SCORES, "token": TOKEN_SCORES, "embedding": EMBEDDING_SCORES,
                  "mlm": MLM_SCORES}
DEFAULT_SCORES = {"sequence": SEQUENCE_SCORES, "token": TOKEN_SCORES, "embedding": EMBEDDING_SCORES,
                  "mlm": ("llr",)}
INTEGER_SCORES = frozenset({"max_diff_offset"})


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), PROBABILITY_CLIP, 1 - PROBABILITY_CLIP)
    return np.log(p) - np.log1p(-p)


def sequence_scores(ref: np.ndarray, alt: np.ndarray, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    ref = np.asarray(ref, dtype=np.float64)
    alt = np.asarray(alt, dtype=np.float64)
    compute: dict[str, Callable[[], np.ndarray]] = {
        "ref": lambda: ref,
        "alt": lambda: alt,
        "diff": lambda: alt - ref,
        "logit_ref": lambda: logit(ref),
        "logit_alt": lambda: logit(alt),
        "logit": lambda: logit(alt) - logit(ref),
    }
    return {name: compute[name]() for name in names}


def embedding_scores(ref: np.ndarray, alt: np.ndarray, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    ref = np.asarray(ref, dtype=np.float64)
    alt = np.asarray(alt, dtype=np.float64)
    out = {}
    if "cosine_distance" in names:
        norms = np.linalg.norm(ref) * np.linalg.norm(alt)
        out["cosine_distance"] = np.array([1.0 - float(ref @ alt) / norms if norms > 0 else np.nan])
    if "l2_distance" in names:
        out["l2_distance"] = np.array([float(np.linalg.norm(alt - ref))])
    return out


def aligned_track_changes(ref_track: np.ndarray, alt_track: np.ndarray, variant: int, ref_len: int, alt_len: int,
                          distance: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The per-base changes a variant makes to a per-nucleotide track, near the variant.

    ref_track, alt_track: (L, C) outputs on the reference and alternative windows (model orientation, the same
    L bases of the window's target region); variant: index in that track of the first REF base (may lie outside
    [0, L) when the variant sits in a context flank); ref_len / alt_len: trimmed allele lengths.
    Returns (deltas (M, C), ref indices (M,), inserted (M,) bool): for compared reference bases their index,
    for inserted ALT bases the reference index they were inserted before (and inserted=True).
    """
    length = ref_track.shape[0]
    index = np.arange(length)
    relative = index - variant
    near = (relative >= -distance) & (relative < ref_len + distance)
    kept = min(ref_len, alt_len)
    alt_index = np.where(index < variant + kept, index, index + alt_len - ref_len)
    deleted = (index >= variant + kept) & (index < variant + ref_len)
    comparable = near & (deleted | ((alt_index >= 0) & (alt_index < length)))
    ref_rows = index[comparable]
    alt_values = np.zeros((len(ref_rows), ref_track.shape[1]), dtype=np.float64)
    present = ~deleted[comparable]
    alt_values[present] = alt_track[alt_index[comparable][present]]
    deltas = alt_values - ref_track[ref_rows]
    inserted_rows = np.arange(variant + ref_len, variant + alt_len)  # ALT-window indices of extra inserted bases
    inserted_rows = inserted_rows[(inserted_rows >= 0) & (inserted_rows < length)]
    if len(inserted_rows):
        deltas = np.concatenate([deltas, alt_track[inserted_rows].astype(np.float64)])
        ref_rows = np.concatenate([ref_rows, np.full(len(inserted_rows), variant + ref_len)])
    inserted = np.zeros(len(ref_rows), dtype=bool)
    inserted[len(ref_rows) - len(inserted_rows):] = True
    return deltas, ref_rows, inserted


def max_change(deltas: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per column: the delta largest in absolute value (ties: the one nearest the variant) and its offset."""
    columns = deltas.shape[1] if deltas.ndim == 2 else 0
    if len(deltas) == 0:
        return np.full(columns, np.nan), np.full(columns, np.nan)
    best_values, best_offsets = np.empty(columns), np.empty(columns)
    for column in range(columns):
        # lexsort: last key first -> largest |delta|, then smallest |offset|
        order = np.lexsort((np.abs(offsets), -np.abs(deltas[:, column])))
        best_values[column] = deltas[order[0], column]
        best_offsets[column] = offsets[order[0]]
    return best_values, best_offsets

"""Zero-shot variant scores of the masked LM (kind mlm): the faster estimator next to the pseudo-likelihood.

`--mlm-estimator` / `score_variants(mlm_estimator=...)` picks how `pll_ref`, `pll_alt` and `llr` are computed:

pll (the default; `veff.MlmScorer`): the pseudo-log-likelihood of a fixed stretch of bases (`llr_flank` bases
  each side of the allele), every token overlapping it masked on its own (Salazar et al. 2020, "Masked Language
  Model Scoring", ACL). Cost: one forward pass per token of the stretch in each allele (~(2 x llr_flank + allele)
  / ~9 bp per token, ~8-10 passes per allele at the default 32 bp), reference-window tokens cached per window.

masked-marginal (`MaskedMarginalScorer`): the masked marginal of Meier et al. 2021 ("Language models enable
  zero-shot prediction of the effects of mutations on protein function", NeurIPS), eq. 1:
      sum over the variant's positions i of  log P(x_i = alt_i | x_-M) - log P(x_i = ref_i | x_-M),
  where x_-M is the sequence with the variant's positions M masked, all at once (one forward pass). For protein
  substitutions M is the same residues in both alleles. A BPE tokenizer cuts the two alleles differently around
  the variant, so here M is, in each allele, the run of tokens the two tokenizations do not share
  (`differing_tokens`): between the nearest token left of the variant and the nearest token right of it that
  both alleles have (same token, same bases). Then
      pll_ref = sum_{i in M_ref} log P(ref token i | REF window with M_ref masked)
      pll_alt = sum_{j in M_alt} log P(alt token j | ALT window with M_alt masked)
      llr     = pll_alt - pll_ref.
  Outside the runs both masked windows hold the same tokens, so where M_ref and M_alt have the same length (most
  SNVs) the two masked windows are the same input and one forward pass gives both terms, exactly Meier's score;
  otherwise (indels, SNVs that change the number of tokens) it is one pass per allele, and the terms are
  log-likelihoods of different token strings for the same bases in the same context. A run may be empty in one
  allele (an insertion between two tokens the REF keeps): that term is 0. Cost: 1-2 forward passes per variant
  (x2 with rc_average), batched across variants; REF copies shared by several ALTs of a window are computed once.
  ALT == REF gives 0. A variant running past the window's end gives nan.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from genalm_models.genome import reverse_complement

ESTIMATORS = ("pll", "masked-marginal")
DEFAULT_ESTIMATOR = "pll"


def differing_tokens(ref_offsets: np.ndarray, ref_ids: Sequence[int], ref_start: int, ref_len: int,
                     alt_offsets: np.ndarray, alt_ids: Sequence[int], alt_start: int, alt_len: int
                     ) -> tuple[list[int], list[int]]:
    """The token runs two alleles' tokenizations do not share around a variant: (REF token indices, ALT ones).

    offsets: (T, 2) [start, end) of each token in its window; the variant covers [ref_start, ref_start + ref_len)
    of the REF window and [alt_start, alt_start + alt_len) of the ALT window. A REF token and an ALT token are
    shared when they have the same id and cover the same reference bases (bases before the variant at the same
    distance from it, bases after it at the same distance from its end), lying wholly outside the variant. The runs
    are the tokens strictly between the nearest shared token ending at or before the variant and the nearest
    shared token starting at or after its end (window edges where there is none).
    """
    ref_offsets = np.asarray(ref_offsets).reshape(-1, 2)
    alt_offsets = np.asarray(alt_offsets).reshape(-1, 2)
    ref_end, alt_end = ref_start + ref_len, alt_start + alt_len

    def key_left(start, end, token):  # distance before the variant
        return int(start), int(end), int(token)

    alt_left = {key_left(s - alt_start, e - alt_start, t) : i
                for i, ((s, e), t) in enumerate(zip(alt_offsets.tolist(), alt_ids)) if e <= alt_start}
    alt_right = {(s - alt_end, e - alt_end, int(t)): i
                 for i, ((s, e), t) in enumerate(zip(alt_offsets.tolist(), alt_ids)) if s >= alt_end}
    left_ref, left_alt = -1, -1
    right_ref, right_alt = len(ref_ids), len(alt_ids)
    for i, ((s, e), t) in enumerate(zip(ref_offsets.tolist(), ref_ids)):
        if e <= ref_start:
            j = alt_left.get(key_left(s - ref_start, e - ref_start, t))
            if j is not None:
                left_ref, left_alt = i, j  # ascending: the last one found is the nearest
        elif s >= ref_end:
            j = alt_right.get((s - ref_end, e - ref_end, int(t)))
            if j is not None and j > left_alt:
                right_ref, right_alt = i, j
                break
    return list(range(left_ref + 1, right_ref)), list(range(left_alt + 1, right_alt))


class MaskedMarginalScorer:
    """Kind mlm, estimator masked-marginal (module docstring): the same interface as `veff.MlmScorer`."""

    labels = ["masked_marginal"]

    def __init__(self, model: Any, names: tuple[str, ...], rc_average: bool):
        self.predictor = model.mlm
        self.names = names
        self.rc_average = rc_average
        self.ref_windows_predicted = 0
        self.alt_sequences_predicted = 0
        self._seen_ref: set = set()

    def _views(self, job) -> list[tuple[str, str, int, int, int, int]]:
        """(ref sequence, alt sequence, variant start in ref, in alt, ref length, alt length) per strand read."""
        v, r, a = job.variant, len(job.allele.ref), len(job.allele.alt)
        length = len(job.ref_sequence)
        views = [(job.ref_sequence, job.alt_sequence, v, v, r, a)]
        if self.rc_average:
            views.append((reverse_complement(job.ref_sequence), reverse_complement(job.alt_sequence),
                          length - v - r, length - v - a, r, a))
        return views

    def score(self, jobs: list) -> list[dict[str, np.ndarray]]:
        sequences: dict[str, int] = {}
        for job in jobs:
            for ref, alt, *_ in self._views(job):
                sequences.setdefault(ref, len(sequences))
                sequences.setdefault(alt, len(sequences))
        texts = list(sequences)
        encoded = self.predictor.encode(texts, with_offsets=True)
        ids = [list(e.ids) for e in encoded]
        queries: list[tuple[list[int], list[int]]] = []  # (token ids, masked positions)
        plans = []
        for job in jobs:
            key = job.window.key
            if key not in self._seen_ref:
                self._seen_ref.add(key)
                self.ref_windows_predicted += 1
            if job.alt_sequence != job.ref_sequence:
                self.alt_sequences_predicted += 1
            views = []
            for ref, alt, ref_start, alt_start, r, a in self._views(job):
                length = len(ref)
                if ref == alt:
                    views.append(None)  # exactly 0
                    continue
                if ref_start < 0 or ref_start + r > length or alt_start < 0 or alt_start + a > length:
                    views.append("nan")
                    continue
                ref_enc, alt_enc = encoded[sequences[ref]], encoded[sequences[alt]]
                ref_run, alt_run = differing_tokens(ref_enc.offsets, ref_enc.ids, ref_start, r,
                                                    alt_enc.offsets, alt_enc.ids, alt_start, a)
                views.append((len(queries), len(queries) + 1))
                queries.append((ids[sequences[ref]], ref_run))
                queries.append((ids[sequences[alt]], alt_run))
            plans.append(views)
        values = self.predictor.masked_log_probs([q[0] for q in queries], [q[1] for q in queries]) \
            if queries else []
        results = []
        for views in plans:
            ref_terms, alt_terms = [], []
            for view in views:
                if view is None:
                    ref_terms.append(0.0)
                    alt_terms.append(0.0)
                elif view == "nan":
                    ref_terms.append(np.nan)
                    alt_terms.append(np.nan)
                else:
                    ref_terms.append(float(np.sum(values[view[0]])))
                    alt_terms.append(float(np.sum(values[view[1]])))
            ref_ll, alt_ll = float(np.mean(ref_terms)), float(np.mean(alt_terms))
            computed = {"pll_ref": ref_ll, "pll_alt": alt_ll, "llr": alt_ll - ref_ll}
            results.append({name: np.array([computed[name]]) for name in self.names})
        return results

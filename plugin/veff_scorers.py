"""Variant scoring, part 2 of 3: reference + alternative windows -> scores (veff.py has the user documentation).

`OutputScorer` (sequence, per-nucleotide and embedding models) and `MlmScorer` (kind mlm, pseudo-log-likelihood
ratio; `veff_mlm.MaskedMarginalScorer` is the faster estimator) take the `Job`s of a chunk - one ALT in one window -
and return each job's scores (veff_scores.py); each reference window is predicted once, however many variants it
holds, its outputs kept in a `WindowCache` (least recently used dropped first beyond `cache_mb`).
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from genalm_models.genome import reverse_complement

from .veff_load import ScoringModel
from .veff_scores import aligned_track_changes, embedding_scores, max_change, sequence_scores
from .veff_variants import Allele, Window, genomic_offset


@dataclass
class Job:
    """One ALT in one window."""

    allele: Allele
    window: Window
    ref_sequence: str
    alt_sequence: str
    variant: int            # index of the first REF base in the model-oriented input window


class WindowCache:
    """Reference-window outputs by window key, for reuse by later variants in the same window.

    Bounded two ways, so that memory does not grow with the number of records scored:
    - `forget_passed(chrom, start)`, called after each chunk of a position-sorted VCF, drops every window that ends
      at or before `start` on `chrom` and every window of another contig: no later record can fall in them (a VCF
      that is not sorted only loses reuse: such a window is predicted again);
    - beyond `max_bytes` the least recently used entries go first. An entry is charged its value's bytes plus
      `ENTRY_OVERHEAD` for the Python objects around it (key, array header, dict node), which for a promoter model's
      3-float output are most of its size.
    """

    ENTRY_OVERHEAD = 512

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self._items: OrderedDict[Any, tuple[Any, int, str, int]] = OrderedDict()
        self._bytes = 0

    def get(self, key):
        item = self._items.get(key)
        if item is None:
            return None
        self._items.move_to_end(key)
        return item[0]

    def lookup(self, key, sequence: str, found: dict, missing: dict) -> None:
        """Put `key`'s cached value in `found`, or else its `sequence` in `missing` (to predict), once per key."""
        if key in found or key in missing:
            return
        cached = self.get(key)
        if cached is not None:
            found[key] = cached
        else:
            missing[key] = sequence

    def put(self, key, value, nbytes: int, window: Window) -> None:
        if key in self._items:
            self._bytes -= self._items.pop(key)[1]
        size = nbytes + self.ENTRY_OVERHEAD
        self._items[key] = (value, size, window.chrom, window.end)
        self._bytes += size
        while self._bytes > self.max_bytes and len(self._items) > 1:
            _, (_, dropped, _, _) = self._items.popitem(last=False)
            self._bytes -= dropped

    def forget_passed(self, chrom: str, start: int) -> None:
        """Drop windows no record at or after (`chrom`, 0-based `start`) of a sorted VCF can fall in."""
        passed = [key for key, (_, _, window_chrom, window_end) in self._items.items()
                  if window_chrom != chrom or window_end <= start]
        for key in passed:
            self._bytes -= self._items.pop(key)[1]

    @property
    def nbytes(self) -> int:
        """Bytes charged for the entries held now (values + ENTRY_OVERHEAD each)."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._items)


class OutputScorer:
    """Sequence, per-nucleotide and embedding models: one output per window, scores from (ref, alt) outputs."""

    def __init__(self, model: ScoringModel, names: tuple[str, ...], cache: WindowCache, splice_distance: int):
        self.model = model
        self.names = names
        self.cache = cache
        self.splice_distance = splice_distance
        info = model.info
        self.labels = ["embedding"] if info.kind == "embedding" else list(info.output_labels)
        self.ref_windows_predicted = 0
        self.alt_sequences_predicted = 0

    def predict(self, sequences: list[str]) -> list[np.ndarray]:
        outputs = self.model.runner.predict(sequences)
        kind = self.model.kind
        if kind == "sequence":
            return list(outputs)
        if kind == "token":
            stacked = np.stack([outputs[label] for label in self.model.info.output_labels], axis=-1)
            return list(stacked)
        return list(outputs["pooled"])

    def score(self, jobs: list[Job]) -> list[dict[str, np.ndarray]]:
        ref_outputs: dict[Any, np.ndarray] = {}
        missing: dict[Any, str] = {}
        for job in jobs:
            self.cache.lookup(job.window.key, job.ref_sequence, ref_outputs, missing)
        alts: dict[str, int] = {}
        for job in jobs:
            if job.alt_sequence != job.ref_sequence:
                alts.setdefault(job.alt_sequence, len(alts))
        sequences = list(missing.values()) + list(alts)
        outputs = self.predict(sequences) if sequences else []
        windows = {job.window.key: job.window for job in jobs}
        for position, key in enumerate(missing):
            # a copy: a view would keep the whole chunk's output array alive in the cache
            ref_outputs[key] = np.array(outputs[position], copy=True)
            self.cache.put(key, ref_outputs[key], ref_outputs[key].nbytes, windows[key])
        self.ref_windows_predicted += len(missing)
        self.alt_sequences_predicted += len(alts)
        results = []
        for job in jobs:
            ref = ref_outputs[job.window.key]
            alt = ref if job.alt_sequence == job.ref_sequence else outputs[len(missing) + alts[job.alt_sequence]]
            results.append(self.compare(job, ref, alt))
        return results

    def compare(self, job: Job, ref: np.ndarray, alt: np.ndarray) -> dict[str, np.ndarray]:
        kind = self.model.kind
        if kind == "sequence":
            return sequence_scores(ref, alt, self.names)
        if kind == "embedding":
            return embedding_scores(ref, alt, self.names)
        window, allele = job.window, job.allele
        flank = window.flank
        deltas, rows, inserted = aligned_track_changes(ref, alt, job.variant - flank, len(allele.ref),
                                                       len(allele.alt), self.splice_distance)
        offsets = np.where(inserted, 0, genomic_offset(window, allele, rows + flank))
        values, where = max_change(deltas, offsets)
        return {name: (values if name == "max_diff" else where) for name in self.names}


@dataclass
class _TokenEntry:
    """A window's tokens and the masked log-probabilities computed for them so far."""

    ids: list[int]
    offsets: np.ndarray
    log_probs: dict[int, float] = field(default_factory=dict)

    @property
    def nbytes(self) -> int:
        return 16 * len(self.ids) + 64 * len(self.log_probs)


class MlmScorer:
    """Kind mlm: pseudo-log-likelihood ratio of the stretch around the variant (see the module docstring).

    Masked log-probabilities of reference-window tokens are cached per window and token, so a token of a
    reference window is masked and predicted once however many variants need it.
    """

    labels = ["pseudo_log_likelihood"]

    def __init__(self, model: ScoringModel, names: tuple[str, ...], cache: WindowCache, flank: int,
                 rc_average: bool):
        self.predictor = model.mlm
        self.names = names
        self.cache = cache
        self.flank = flank
        self.rc_average = rc_average
        self.ref_windows_predicted = 0
        self.alt_sequences_predicted = 0

    def _views(self, job: Job) -> list[tuple[tuple, str, tuple[int, int], str, tuple[int, int]]]:
        """(ref key, ref sequence, ref span, alt sequence, alt span) per strand read."""
        length = job.window.length
        v, r, a = job.variant, len(job.allele.ref), len(job.allele.alt)
        ref_span, alt_span = (v - self.flank, v + r + self.flank), (v - self.flank, v + a + self.flank)
        views = [((job.window.key, "forward"), job.ref_sequence, ref_span, job.alt_sequence, alt_span)]
        if self.rc_average:
            def mirrored(span):
                return (length - span[1], length - span[0])
            views.append(((job.window.key, "reverse"), reverse_complement(job.ref_sequence), mirrored(ref_span),
                          reverse_complement(job.alt_sequence), mirrored(alt_span)))
        return views

    def score(self, jobs: list[Job]) -> list[dict[str, np.ndarray]]:
        from genalm_models.predict import span_token_weights

        entries: dict[Any, _TokenEntry] = {}
        new_sequences: dict[Any, str] = {}
        plans = []
        for job in jobs:
            job_views = []
            for ref_key, ref_seq, ref_span, alt_seq, alt_span in self._views(job):
                alt_key = ref_key if alt_seq == ref_seq else ("alt", ref_key[1], alt_seq)
                self.cache.lookup(ref_key, ref_seq, entries, new_sequences)
                if alt_key not in entries:   # alternative windows are never cached
                    new_sequences.setdefault(alt_key, alt_seq)
                fits = all(0 <= s and e <= len(ref_seq) for s, e in (ref_span, alt_span))
                job_views.append((ref_key, ref_span, alt_key, alt_span, fits))
            plans.append(job_views)
        encoded = self.predictor.encode(list(new_sequences.values()), with_offsets=True)
        for (key, _), enc in zip(new_sequences.items(), encoded):
            entries[key] = _TokenEntry(list(enc.ids), enc.offsets)
            if key[0] == "alt":
                self.alt_sequences_predicted += 1
            elif key[1] == "forward":
                self.ref_windows_predicted += 1

        # every (entry, token) still lacking a masked log-probability, in one length-aware predict call
        wanted: dict[Any, set[int]] = {}
        weights: dict[tuple, dict[int, float]] = {}
        for job_views in plans:
            for ref_key, ref_span, alt_key, alt_span, fits in job_views:
                if not fits:
                    continue
                for key, span in ((ref_key, ref_span), (alt_key, alt_span)):
                    w = weights.setdefault((key, span), span_token_weights(entries[key].offsets, span))
                    need = [t for t in w if t not in entries[key].log_probs]
                    if need:
                        wanted.setdefault(key, set()).update(need)
        keys = list(wanted)
        positions = [sorted(wanted[k]) for k in keys]
        values = self.predictor.masked_token_log_probs([entries[k].ids for k in keys], positions) if keys else []
        for key, tokens, logps in zip(keys, positions, values):
            entries[key].log_probs.update(zip(tokens, logps.tolist()))
        windows = {(job.window.key, direction): job.window for job in jobs for direction in ("forward", "reverse")}
        for key, entry in entries.items():
            if key[0] != "alt":
                self.cache.put(key, entry, entry.nbytes, windows[key])

        results = []
        for job_views in plans:
            ref_plls, alt_plls = [], []
            for ref_key, ref_span, alt_key, alt_span, fits in job_views:
                if not fits:
                    ref_plls.append(np.nan)
                    alt_plls.append(np.nan)
                    continue
                for key, span, out in ((ref_key, ref_span, ref_plls), (alt_key, alt_span, alt_plls)):
                    log_probs = entries[key].log_probs
                    out.append(sum(w * log_probs[t] for t, w in weights[(key, span)].items()))
            ref_pll, alt_pll = float(np.mean(ref_plls)), float(np.mean(alt_plls))
            computed = {"pll_ref": ref_pll, "pll_alt": alt_pll, "llr": alt_pll - ref_pll}
            results.append({name: np.array([computed[name]]) for name in self.names})
        return results

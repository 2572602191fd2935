"""Tiling one sequence stream into documents of sentences (the GENA-LM recipe: see `pretrain.corpus`).

The sequence arrives in chunks (`_SequenceWindow` keeps only what is still needed); splitting N runs cut it into
stretches; every base is accounted for in `TileCounts`.
"""

from __future__ import annotations

import dataclasses
import random
import re
import sys
from dataclasses import dataclass
from typing import Generator, Iterable, Iterator, Optional

from genalm_models.genome import reverse_complement

from .corpus_config import CorpusConfig


class _SequenceWindow:
    """A forward-only view of a sequence that arrives in chunks; keeps only what is still needed.

    Positions are absolute (0 = first base of the sequence). `text[0]` is at `offset`.
    """

    def __init__(self, chunks: Iterable[str]):
        self._chunks = iter(chunks)
        self.text = ""
        self.offset = 0
        self.exhausted = False
        self._release_before = 0
        self._content_end: Optional[int] = None

    @property
    def end(self) -> int:
        """One past the last base read so far (the sequence length once `exhausted`)."""
        return self.offset + len(self.text)

    def release_before(self, position: int) -> None:
        """Bases before `position` will not be asked for again."""
        self._release_before = max(self._release_before, position)

    def fill_to(self, position: int) -> None:
        """Read until `position` is covered (or the sequence ends)."""
        while not self.exhausted and self.end < position:
            chunk = next(self._chunks, None)
            if chunk is None:
                self.exhausted = True
                break
            # Drop the released prefix while appending: each base is copied a bounded number of times.
            drop = min(max(0, self._release_before - self.offset), len(self.text))
            self.text = self.text[drop:] + chunk
            self.offset += drop

    def content_end(self) -> Optional[int]:
        """Where the N at the very end of the sequence begin (its length if none); None until the end is read."""
        if not self.exhausted:
            return None
        if self._content_end is None:
            self._content_end = self.offset + len(self.text.rstrip("N"))
        return self._content_end

    def find_base(self, position: int) -> Optional[int]:
        """The first position >= `position` that is not N, or None when only N follows."""
        while True:
            self.fill_to(position + 1)
            match = _NOT_N.search(self.text, max(0, position - self.offset))
            if match is not None:
                return self.offset + match.start()
            if self.exhausted:
                return None
            position = self.end
            self.release_before(position)


_NOT_N = re.compile("[^N]")


@dataclass
class TileCounts:
    """Where every base of a tiled sequence went; the bp fields add up to the sequence length."""

    document_bp: int = 0
    n_run_bp: int = 0  # in N runs that split stretches (and N at either end of the sequence)
    short_stretch_bp: int = 0  # in stretches shorter than min_stretch_bp
    short_stretches: int = 0
    offset_bp: int = 0  # before the random start of each stretch
    mostly_n_sentences: int = 0
    mostly_n_sentence_bp: int = 0
    dropped_tail_bp: int = 0  # stretch ends too short to make a sentence

    def add(self, other: "TileCounts") -> None:
        for item in dataclasses.fields(self):
            setattr(self, item.name, getattr(self, item.name) + getattr(other, item.name))


def tile_documents(
    chunks: Iterable[str], rng: random.Random, config: CorpusConfig, counts: TileCounts
) -> Iterator[tuple[int, list[str]]]:
    """Cut one sequence (given as chunks) into documents: yields `(start, sentences)` on the '+' strand."""
    window = _SequenceWindow(chunks)
    split_run = config.split_n_run_bp
    long_n_run = re.compile(f"N{{{split_run}}}") if split_run else None
    position = 0
    while True:
        if long_n_run is None:
            stretch_start = 0  # without splitting, the whole sequence is one stretch
        else:
            base = window.find_base(position)
            if base is None:
                window.fill_to(sys.maxsize)
                counts.n_run_bp += window.end - position
                return
            counts.n_run_bp += base - position
            stretch_start = base
            # A stretch must reach min_stretch_bp before the next splitting N run (or the sequence end).
            run = _find_run(window, long_n_run, stretch_start, stretch_start + config.min_stretch_bp, split_run)
            window.fill_to(stretch_start + config.min_stretch_bp)
            stretch_end = run if run is not None else (window.end if window.exhausted else None)
            if stretch_end is not None and stretch_end - stretch_start < config.min_stretch_bp:
                counts.short_stretches += 1
                counts.short_stretch_bp += stretch_end - stretch_start
                position = stretch_end
                continue
        offset = rng.randint(0, config.max_start_offset)
        tile_start = stretch_start + offset
        window.fill_to(tile_start)
        if window.exhausted:
            tile_start = min(tile_start, window.end)
        if long_n_run is not None:
            # Only when max_start_offset >= min_stretch_bp can the offset jump over a splitting run.
            run = _find_run(window, long_n_run, stretch_start, tile_start, split_run)
            if run is not None:
                counts.offset_bp += run - stretch_start
                position = run
                continue
        counts.offset_bp += tile_start - stretch_start
        stretch_end = yield from _tile_stretch(window, tile_start, rng, config, long_n_run, counts)
        if stretch_end is None:
            return
        position = stretch_end


def _find_run(
    window: _SequenceWindow, long_n_run: re.Pattern, start: int, end: int, run_length: int
) -> Optional[int]:
    """Where the first splitting N run that begins in [start, end) begins, or None."""
    if end <= start:
        return None
    window.fill_to(end + run_length - 1)
    low = start - window.offset
    match = long_n_run.search(window.text, low, end - window.offset + run_length - 1)
    if match is None or match.start() >= end - window.offset:
        return None
    return window.offset + match.start()


def _tile_stretch(
    window: _SequenceWindow,
    position: int,
    rng: random.Random,
    config: CorpusConfig,
    long_n_run: Optional[re.Pattern],
    counts: TileCounts,
) -> Generator[tuple[int, list[str]], None, Optional[int]]:
    """Tile sentences from `position` until a splitting N run (returned) or the sequence end (None)."""
    min_sentence, max_sentence = config.sentence_bp
    min_sentences, max_sentences = config.sentences_per_document
    run_length = config.split_n_run_bp or 0
    max_n_fraction = config.max_n_fraction
    sentences: list[str] = []
    document_start = position
    sentences_wanted = rng.randint(min_sentences, max_sentences)
    while True:
        length = rng.randint(min_sentence, max_sentence)
        window.release_before(position)
        window.fill_to(position + length + run_length)
        text, low = window.text, position - window.offset
        stretch_end = None
        available = min(length, window.end - position)
        if available < length:
            stretch_end = window.end  # the sequence ends inside this sentence
        if long_n_run is not None and text.find("N", low, low + available) >= 0:
            match = long_n_run.search(text, low, low + available + run_length - 1)
            if match is not None and match.start() < low + available:
                available = match.start() - low
                stretch_end = position + available
            elif window.exhausted and window.content_end() < position + available:
                # N at the end of the sequence are a gap like a splitting run, however short.
                available = max(0, window.content_end() - position)
                stretch_end = position + available
        length = available

        if stretch_end is not None and length < min_sentence:
            counts.dropped_tail_bp += length
        elif text.count("N", low, low + length) > max_n_fraction * length:
            # Skipping a sentence ends the document, so that every document stays contiguous.
            counts.mostly_n_sentences += 1
            counts.mostly_n_sentence_bp += length
            if sentences:
                yield document_start, sentences
            sentences = []
            document_start = position + length
            sentences_wanted = rng.randint(min_sentences, max_sentences)
        else:
            sentences.append(text[low : low + length])
        position += length

        if stretch_end is not None:
            if sentences:
                yield document_start, sentences
            return stretch_end if not (window.exhausted and stretch_end >= window.end) else None
        if len(sentences) == sentences_wanted:
            yield document_start, sentences
            sentences = []
            document_start = position
            sentences_wanted = rng.randint(min_sentences, max_sentences)




def minus_strand_sentences(sentences: list[str]) -> list[str]:
    """The '-' strand of a document: reverse complement of the whole, cut at the mirrored boundaries."""
    whole = reverse_complement("".join(sentences))
    result, position = [], 0
    for sentence in reversed(sentences):
        result.append(whole[position : position + len(sentence)])
        position += len(sentence)
    return result

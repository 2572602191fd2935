"""Tokenize a corpus once and pack it into fixed-budget MLM samples, stored as two flat numpy arrays.

GENA-LM packs consecutive sentences of one document into a sample up to the model's maximum length. We do it
once per (corpus, tokenizer, budget), and store `tokens.npy` (all sample tokens back to back) and `offsets.npy`
(sample boundaries). Training then memory-maps them: random access by sample index, tiny RAM, and every DDP rank
and DataLoader worker sees the same samples without re-tokenizing.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from ..io_utils import atomic_write, write_text_atomic
from ..tokenizer import GenaTokenizer

TOKENS_FILE = "tokens.npy"
OFFSETS_FILE = "offsets.npy"
INFO_FILE = "packing.json"


def pack_sentences(sentence_ids: list[list[int]], max_tokens: int) -> Iterator[list[int]]:
    """Greedy packing of consecutive sentences into samples of at most `max_tokens` tokens.

    A sentence longer than the budget (rare: 1 kb is ~150 tokens) is cut into budget-sized pieces.
    """
    sample: list[int] = []
    for ids in sentence_ids:
        while len(ids) > max_tokens:
            if sample:
                yield sample
                sample = []
            yield ids[:max_tokens]
            ids = ids[max_tokens:]
        if len(sample) + len(ids) > max_tokens:
            yield sample
            sample = []
        sample.extend(ids)
    if sample:
        yield sample


def pack_documents(documents: Iterable[list[str]], tokenizer: GenaTokenizer, max_tokens: int,
                   out_dir: str | Path, source: str = "") -> dict:
    """Tokenize documents (lists of sentences) and write the packed samples to `out_dir`."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    dtype = np.uint16 if tokenizer.vocab_size <= np.iinfo(np.uint16).max else np.uint32
    chunks: list[np.ndarray] = []
    lengths: list[int] = []
    n_docs = n_bp = 0
    for sentences in documents:
        n_docs += 1
        n_bp += sum(len(s) for s in sentences)
        ids = tokenizer.encode_batch(sentences, add_special_tokens=False)
        for sample in pack_sentences(ids, max_tokens):
            chunks.append(np.asarray(sample, dtype=dtype))
            lengths.append(len(sample))
    if not chunks:
        raise ValueError(f"{source or out_dir}: the corpus has no sentences to pack")
    tokens = np.concatenate(chunks)
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    with atomic_write(out_dir / TOKENS_FILE, "wb") as f:
        np.save(f, tokens)
    with atomic_write(out_dir / OFFSETS_FILE, "wb") as f:
        np.save(f, offsets)
    info = {"source": source, "documents": n_docs, "bp": n_bp, "samples": len(lengths), "tokens": int(len(tokens)),
            "max_tokens": max_tokens, "vocab_size": tokenizer.vocab_size,
            "bp_per_token": n_bp / max(1, len(tokens))}
    write_text_atomic(out_dir / INFO_FILE, json.dumps(info, indent=2) + "\n")
    return info


@dataclass
class PackedSamples:
    """Memory-mapped packed samples: `samples[i]` is a numpy array of token ids."""

    tokens: np.ndarray
    offsets: np.ndarray
    info: dict

    @classmethod
    def open(cls, folder: str | Path) -> "PackedSamples":
        folder = Path(folder)
        for name in (TOKENS_FILE, OFFSETS_FILE, INFO_FILE):
            if not (folder / name).is_file():
                raise FileNotFoundError(f"{folder}: no {name}; pack the corpus first "
                                        "(python -m genalm_models.train pack ...)")
        return cls(tokens=np.load(folder / TOKENS_FILE, mmap_mode="r"),
                   offsets=np.load(folder / OFFSETS_FILE), info=json.loads((folder / INFO_FILE).read_text()))

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, index: int) -> np.ndarray:
        return np.asarray(self.tokens[self.offsets[index]: self.offsets[index + 1]], dtype=np.int64)

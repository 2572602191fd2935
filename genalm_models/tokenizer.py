"""GENA-LM's BPE tokenizer: loading, saving, encoding with nucleotide-exact offsets, and training.

GENA-LM tokenizes DNA with a byte-pair-encoding model from the Hugging Face `tokenizers` library
(32,000 tokens). The `*-t2t` tokenizer has these parts, which `train_bpe_tokenizer` reproduces:

* special tokens `[UNK]`=0, `[CLS]`=1, `[SEP]`=2, `[PAD]`=3, `[MASK]`=4 and the gap token `-`=5;
* normalizer: strip surrounding whitespace, then replace every run of 10 or more `N` by `-`;
* pre-tokenizer: split on `-`, keeping it as its own piece (so the gap is always a token of its own);
* post-processor: `[CLS] A [SEP]`; decoder: plain concatenation (`BPEDecoder`).

Two properties of the official tokenizer need care, and `GenaTokenizer` takes it:

* It is case-sensitive and knows only upper-case letters: `acgt` becomes four `[UNK]`. We upper-case every
  input first.
* For the gap token, `tokenizers` reports the character span of only the *last* `N` of the run it replaced.
  `encode_with_offsets` widens it to the whole run, so that every token's span covers exactly the nucleotides
  it stands for and the spans of a bare sequence tile it without holes.

Inputs are bare sequences (letters only). Leading/trailing whitespace is stripped by the normalizer and then
belongs to no token (the offsets stay in the coordinates of the string you passed, so they remain correct,
but the spans no longer tile the whole string).

The first-generation tokenizer (models `gena-lm-bert-base`, `gena-lm-bigbird-base-sparse`) has other ids than
the t2t one: always load the tokenizer that ships in the checkpoint's own folder, never a "default" one.

With transformers: every tokenizer folder we write (and every official one) loads with
`transformers.AutoTokenizer.from_pretrained(folder)` as a `PreTrainedTokenizerFast` over the same `tokenizer.json`
(same ids). `GenaTokenizer.to_transformers()` gives that object for a tokenizer in hand, and
`GenaTokenizer.from_transformers(hf_tokenizer)` this class (upper-casing, nucleotide offsets) for one loaded by
transformers. Unlike `GenaTokenizer`, the transformers tokenizer does not upper-case: like the official one, it
turns `acgt` into [UNK] tokens, so give it upper-case sequences.

This module must not import torch or kipoi: it is used by light-weight data code (transformers, which imports
torch, is imported only inside the two conversion methods).
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
from tokenizers.models import BPE
from tokenizers.trainers import BpeTrainer

from .io_utils import write_text_atomic

TOKENIZER_FILE = "tokenizer.json"
SPECIAL_TOKENS_MAP_FILE = "special_tokens_map.json"
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"


@dataclass(frozen=True)
class SpecialTokens:
    """The texts of the special tokens. The defaults are GENA-LM's (BERT's) names."""

    unk: str = "[UNK]"
    cls: str = "[CLS]"
    sep: str = "[SEP]"
    pad: str = "[PAD]"
    mask: str = "[MASK]"
    # The t2t tokenizers replace long N runs by this token; first-generation tokenizers have none.
    gap: str = "-"

    def ordered(self, with_gap: bool) -> list[str]:
        """The official order, which fixes the ids 0..4 (and 5 for the gap token)."""
        names = [self.unk, self.cls, self.sep, self.pad, self.mask]
        return names + [self.gap] if with_gap else names

    def to_transformers_map(self) -> dict[str, str]:
        """The `special_tokens_map.json` content (as the official checkpoints ship it)."""
        return {
            "unk_token": self.unk,
            "sep_token": self.sep,
            "pad_token": self.pad,
            "cls_token": self.cls,
            "mask_token": self.mask,
        }


# Offsets given to special tokens ([CLS], [SEP], ...): an empty span, so they cover no nucleotide.
SPECIAL_TOKEN_OFFSETS = (0, 0)

# A run of N that the normalizer may have replaced by the gap token. We look for whole runs (not just 10+)
# because the regex replacement is greedy: the gap token always stands for the complete run that ends where
# `tokenizers` says the gap token ends.
_N_RUN = re.compile(r"N+")

# Upper-case IUPAC nucleotide codes (plus U); anything else in training data is almost surely a parsing bug.
IUPAC_LETTERS = "ACGTUNRYSWKMBDHV"
_NOT_IUPAC = re.compile(f"[^{IUPAC_LETTERS}]")


class TokenizerFileError(ValueError):
    """A tokenizer folder or file that is missing or cannot be read."""


def _upper_same_length(sequence: str, what: str) -> str:
    """Upper-case `sequence`; refuse characters whose upper case has another length (offsets would shift)."""
    if not isinstance(sequence, str):
        raise TypeError(f"{what} must be a str, got {type(sequence).__name__}")
    upper = sequence.upper()
    if len(upper) != len(sequence):
        raise ValueError(
            f"{what} contains characters whose upper case changes the length (e.g. 'ß'); "
            "DNA sequences must be ASCII letters"
        )
    return upper


def _read_json_object(path: Path) -> dict:
    try:
        with open(path, encoding="utf-8") as json_file:
            content = json.load(json_file)
    except json.JSONDecodeError as error:
        raise TokenizerFileError(
            f"{path}: line {error.lineno}, column {error.colno}: invalid JSON ({error.msg})"
        ) from None
    if not isinstance(content, dict):
        raise TokenizerFileError(f"{path}: line 1: expected a JSON object, found {type(content).__name__}")
    return content


def _special_tokens_from_map(path: Path) -> SpecialTokens:
    """Read special token names from a `special_tokens_map.json` (values may be strings or AddedToken dicts)."""
    content = _read_json_object(path)
    defaults = SpecialTokens()
    names = {}
    for field_name, key in (("unk", "unk_token"), ("cls", "cls_token"), ("sep", "sep_token"),
                            ("pad", "pad_token"), ("mask", "mask_token")):
        value = content.get(key, getattr(defaults, field_name))
        if isinstance(value, dict):
            value = value.get("content")
        if not isinstance(value, str) or not value:
            raise TokenizerFileError(f"{path}: '{key}' must be a non-empty string, found {value!r}")
        names[field_name] = value
    return SpecialTokens(**names)


class GenaTokenizer:
    """A GENA-LM tokenizer: a `tokenizers.Tokenizer` plus the special-token ids and offset corrections.

    Build one with `GenaTokenizer.from_pretrained(folder)` (an official or exported checkpoint folder) or
    `train_bpe_tokenizer(...)`.
    """

    def __init__(self, backend: Tokenizer, special_tokens: SpecialTokens = SpecialTokens()):
        self._backend = backend
        self._special_tokens = special_tokens
        self._ids = {}
        for role in ("unk", "cls", "sep", "pad", "mask"):
            token = getattr(special_tokens, role)
            token_id = backend.token_to_id(token)
            if token_id is None:
                raise TokenizerFileError(f"the tokenizer has no {role} token {token!r} in its vocabulary")
            self._ids[role] = token_id
        # The gap token is optional (first-generation tokenizers have none).
        self._gap_id = backend.token_to_id(special_tokens.gap)
        vocabulary = backend.get_vocab(with_added_tokens=True)
        self._vocab_size = backend.get_vocab_size(with_added_tokens=True)
        # id -> token text as an array, for decoding without a dictionary lookup per token.
        self._id_to_token = np.empty(self._vocab_size, dtype=object)
        self._id_to_token[:] = ""
        for token, token_id in vocabulary.items():
            self._id_to_token[token_id] = token

    # ---------------------------------------------------------------- loading and saving

    @classmethod
    def from_pretrained(cls, folder_or_file: str | os.PathLike) -> "GenaTokenizer":
        """Load from a checkpoint folder (with `tokenizer.json`) or from a `tokenizer.json` file. Never online.

        Special-token names come from `special_tokens_map.json` beside it when present, else the BERT defaults.
        """
        path = Path(folder_or_file)
        if path.is_dir():
            tokenizer_file = path / TOKENIZER_FILE
            if not tokenizer_file.is_file():
                present = sorted(p.name for p in path.iterdir())[:20]
                raise TokenizerFileError(
                    f"{path}: no {TOKENIZER_FILE} in this folder (it holds: {', '.join(present) or 'nothing'}); "
                    "a GENA-LM checkpoint folder ships its tokenizer as tokenizer.json"
                )
        elif path.is_file():
            tokenizer_file = path
        else:
            raise TokenizerFileError(f"{path}: no such tokenizer folder or file")
        try:
            backend = Tokenizer.from_file(str(tokenizer_file))
        except Exception as error:  # tokenizers raises a bare Exception with serde's line/column message
            raise TokenizerFileError(f"{tokenizer_file}: cannot be read as a tokenizers JSON file: {error}") from None
        special_map_file = tokenizer_file.parent / SPECIAL_TOKENS_MAP_FILE
        special_tokens = (
            _special_tokens_from_map(special_map_file) if special_map_file.is_file() else SpecialTokens()
        )
        return cls(backend, special_tokens)

    def save(self, folder: str | os.PathLike, model_max_length: int | None = None) -> Path:
        """Write `tokenizer.json`, `special_tokens_map.json` and `tokenizer_config.json` into `folder`.

        The folder loads with `GenaTokenizer.from_pretrained` and with `transformers.AutoTokenizer`
        (`PreTrainedTokenizerFast`). `model_max_length` (512 or 4096 for GENA-LM models) is recorded when given.
        """
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        special_map = self._special_tokens.to_transformers_map()
        config: dict = {"tokenizer_class": "PreTrainedTokenizerFast", **special_map}
        if model_max_length is not None:
            config["model_max_length"] = int(model_max_length)
        write_text_atomic(folder / TOKENIZER_FILE, self._backend.to_str(pretty=True))
        write_text_atomic(folder / SPECIAL_TOKENS_MAP_FILE, json.dumps(special_map, indent=2) + "\n")
        write_text_atomic(folder / TOKENIZER_CONFIG_FILE, json.dumps(config, indent=2) + "\n")
        return folder

    def to_transformers(self, model_max_length: int | None = None):
        """This tokenizer as a `transformers.PreTrainedTokenizerFast` (a copy of the same `tokenizers` backend and
        special tokens): what `AutoTokenizer.from_pretrained` gives for a folder `save` wrote. It does not upper-case
        (see the module docstring)."""
        from transformers import PreTrainedTokenizerFast

        options = {} if model_max_length is None else {"model_max_length": int(model_max_length)}
        return PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_str(self._backend.to_str()),
                                       **self._special_tokens.to_transformers_map(), **options)

    @classmethod
    def from_transformers(cls, hf_tokenizer) -> "GenaTokenizer":
        """A `GenaTokenizer` over the backend of a transformers fast tokenizer (e.g. from `AutoTokenizer`), with its
        special tokens. TokenizerFileError when it is not a fast tokenizer or lacks one of the special tokens."""
        backend = getattr(hf_tokenizer, "backend_tokenizer", None)
        if not isinstance(backend, Tokenizer):
            raise TokenizerFileError(f"{type(hf_tokenizer).__name__} is not a transformers fast tokenizer (it has no "
                                     "`tokenizers` backend)")
        defaults = SpecialTokens()
        names = {role: getattr(hf_tokenizer, f"{role}_token", None) or getattr(defaults, role)
                 for role in ("unk", "cls", "sep", "pad", "mask")}
        return cls(Tokenizer.from_str(backend.to_str()), SpecialTokens(**{k: str(v) for k, v in names.items()}))

    # ---------------------------------------------------------------- vocabulary facts

    @property
    def backend(self) -> Tokenizer:
        """The wrapped `tokenizers.Tokenizer` (e.g. for settings this class does not expose)."""
        return self._backend

    @property
    def special_tokens(self) -> SpecialTokens:
        return self._special_tokens

    @property
    def vocab_size(self) -> int:
        return self._vocab_size

    def __len__(self) -> int:
        return self._vocab_size

    @property
    def unk_id(self) -> int:
        return self._ids["unk"]

    @property
    def cls_id(self) -> int:
        return self._ids["cls"]

    @property
    def sep_id(self) -> int:
        return self._ids["sep"]

    @property
    def pad_id(self) -> int:
        return self._ids["pad"]

    @property
    def mask_id(self) -> int:
        return self._ids["mask"]

    @property
    def gap_id(self) -> int | None:
        """Id of the token that replaces runs of 10+ N (t2t tokenizers), or None if the tokenizer has none."""
        return self._gap_id

    @property
    def special_ids(self) -> set[int]:
        """Ids of [UNK], [CLS], [SEP], [PAD], [MASK] and the gap token (the tokens `tokenizers` marks special)."""
        ids = set(self._ids.values())
        if self._gap_id is not None:
            ids.add(self._gap_id)
        return ids

    def token_to_id(self, token: str) -> int | None:
        return self._backend.token_to_id(token)

    def id_to_token(self, token_id: int) -> str | None:
        return self._backend.id_to_token(token_id)

    # ---------------------------------------------------------------- encoding

    def encode(self, sequence: str, add_special_tokens: bool = True) -> list[int]:
        """Token ids of one sequence (upper-cased first); `[CLS] ... [SEP]` around it by default."""
        upper = _upper_same_length(sequence, "sequence")
        return self._backend.encode(upper, add_special_tokens=add_special_tokens).ids

    def encode_batch(self, sequences: Sequence[str], add_special_tokens: bool = True) -> list[list[int]]:
        """Token ids of many sequences, encoded in parallel by `tokenizers` without computing offsets.

        This is the fast path for scanning genomes: it does no per-token work in Python.
        """
        uppers = [_upper_same_length(sequence, f"sequence #{index}") for index, sequence in enumerate(sequences)]
        encodings = self._backend.encode_batch_fast(uppers, add_special_tokens=add_special_tokens)
        return [encoding.ids for encoding in encodings]

    def encode_with_offsets(
        self, sequence: str, add_special_tokens: bool = False
    ) -> tuple[list[int], list[tuple[int, int]]]:
        """Token ids and, per token, the 0-based half-open span `(start, end)` of `sequence` it stands for.

        A gap token spans the whole run of N it replaced. Special tokens get `SPECIAL_TOKEN_OFFSETS` (0, 0),
        an empty span. For a bare sequence the non-empty spans tile it: joining `sequence[start:end]` over the
        tokens gives `sequence` back.
        """
        upper = _upper_same_length(sequence, "sequence")
        encoding = self._backend.encode(upper, add_special_tokens=add_special_tokens)
        return encoding.ids, self._corrected_offsets(upper, encoding.ids, encoding.offsets)

    def encode_batch_with_offsets(
        self, sequences: Sequence[str], add_special_tokens: bool = False
    ) -> list[tuple[list[int], list[tuple[int, int]]]]:
        """`encode_with_offsets` for many sequences, encoded in parallel by `tokenizers`."""
        uppers = [_upper_same_length(sequence, f"sequence #{index}") for index, sequence in enumerate(sequences)]
        encodings = self._backend.encode_batch(uppers, add_special_tokens=add_special_tokens)
        return [
            (encoding.ids, self._corrected_offsets(upper, encoding.ids, encoding.offsets))
            for upper, encoding in zip(uppers, encodings)
        ]

    def _corrected_offsets(
        self, upper: str, ids: list[int], offsets: list[tuple[int, int]]
    ) -> list[tuple[int, int]]:
        """Widen each gap token's span from the last N of its run to the whole run."""
        if self._gap_id is None or self._gap_id not in ids:
            return offsets
        run_start_by_end = {match.end(): match.start() for match in _N_RUN.finditer(upper)}
        corrected = list(offsets)
        # Gap tokens are rare (one per long N run), so this loop touches few tokens.
        for token_index in np.flatnonzero(np.asarray(ids) == self._gap_id):
            start, end = corrected[token_index]
            # A literal '-' in the input is also the gap token; it ends on '-', not on an N run, and keeps its span.
            if end - start == 1 and end in run_start_by_end:
                corrected[token_index] = (run_start_by_end[end], end)
        return corrected

    # ---------------------------------------------------------------- decoding

    def decode(self, ids: Iterable[int], skip_special_tokens: bool = True, gap_text: str = "-") -> str:
        """The nucleotide string the ids stand for.

        The length of an N run replaced by the gap token is lost in tokenization, so a gap token decodes to
        `gap_text` (default "-"; pass e.g. "N" * 10 for a placeholder run). With `skip_special_tokens`, the other
        special tokens ([CLS], [SEP], [PAD], [MASK], [UNK]) are dropped; otherwise they appear as their text.
        """
        id_array = np.asarray(list(ids), dtype=np.int64)
        if id_array.size and (id_array.min() < 0 or id_array.max() >= self._vocab_size):
            bad = id_array[(id_array < 0) | (id_array >= self._vocab_size)][0]
            raise ValueError(f"token id {bad} is outside the vocabulary (0..{self._vocab_size - 1})")
        pieces = self._id_to_token[id_array].copy()
        if self._gap_id is not None:
            pieces[id_array == self._gap_id] = gap_text
        if skip_special_tokens:
            other_specials = np.fromiter(self._ids.values(), dtype=np.int64)
            pieces = pieces[~np.isin(id_array, other_specials)]
        return "".join(pieces)


# -------------------------------------------------------------------- token <-> nucleotide mapping


def _validated_offsets(offsets, sequence_length: int) -> tuple[np.ndarray, np.ndarray]:
    """Starts and ends of `offsets` as int64 arrays, after checking they are spans inside the sequence."""
    spans = np.asarray(offsets, dtype=np.int64).reshape(-1, 2)
    starts, ends = spans[:, 0], spans[:, 1]
    bad = np.flatnonzero((starts < 0) | (ends < starts) | (ends > sequence_length))
    if bad.size:
        index = int(bad[0])
        raise ValueError(
            f"token #{index} has span {tuple(spans[index].tolist())}, not inside a sequence of length {sequence_length}"
        )
    # Non-empty spans must not overlap, else "the token covering a nucleotide" would not be unique.
    non_empty = np.flatnonzero(ends > starts)
    order = non_empty[np.argsort(starts[non_empty], kind="stable")]
    overlapping = np.flatnonzero(starts[order][1:] < ends[order][:-1])
    if overlapping.size:
        first, second = int(order[overlapping[0]]), int(order[overlapping[0] + 1])
        raise ValueError(
            f"tokens #{first} {tuple(spans[first].tolist())} and #{second} {tuple(spans[second].tolist())} overlap"
        )
    return starts, ends


def nucleotide_to_token_index(offsets, sequence_length: int) -> np.ndarray:
    """For each nucleotide, the index of the token whose span covers it (-1 where no token does).

    `offsets` are per-token `(start, end)` spans as `encode_with_offsets` returns them (specials are empty).
    """
    starts, ends = _validated_offsets(offsets, sequence_length)
    lengths = ends - starts
    token_of_nucleotide = np.full(sequence_length, -1, dtype=np.int64)
    # Position k of token t's span is starts[t] + k; build all covered positions at once.
    covered_tokens = np.repeat(np.arange(len(starts)), lengths)
    first_position_in_run = np.repeat(np.cumsum(lengths) - lengths, lengths)
    positions = np.repeat(starts, lengths) + (np.arange(covered_tokens.size) - first_position_in_run)
    token_of_nucleotide[positions] = covered_tokens
    return token_of_nucleotide


def nucleotide_labels_to_tokens(labels, offsets, reduce: str = "any", empty_value: float = 0) -> np.ndarray:
    """Per-token labels from per-nucleotide labels.

    `labels` has shape (L,) or (L, C) (C classes). `reduce="any"`: a token is positive for class c if any
    nucleotide it covers is non-zero (bool result); `reduce="mean"`: the mean label over its nucleotides
    (float result). Tokens covering no nucleotide (special tokens) get `empty_value`. Result: (T,) or (T, C).
    """
    labels = np.asarray(labels)
    if labels.ndim not in (1, 2):
        raise ValueError(f"labels must have shape (L,) or (L, C), got {labels.shape}")
    starts, ends = _validated_offsets(offsets, labels.shape[0])
    if reduce == "any":
        values = (labels != 0).astype(np.int64)
    elif reduce == "mean":
        values = labels.astype(np.float64)
    else:
        raise ValueError(f"reduce must be 'any' or 'mean', got {reduce!r}")
    # Prefix sums turn every span sum into one subtraction, whatever the span lengths.
    prefix = np.concatenate([np.zeros((1,) + values.shape[1:], dtype=values.dtype), np.cumsum(values, axis=0)])
    span_sums = prefix[ends] - prefix[starts]
    lengths = (ends - starts).reshape((-1,) + (1,) * (values.ndim - 1))
    empty = lengths == 0
    if reduce == "any":
        result = span_sums > 0
        if empty_value:
            result = result | np.broadcast_to(empty, result.shape)
        return result
    with np.errstate(invalid="ignore", divide="ignore"):
        result = span_sums / lengths
    return np.where(empty, float(empty_value), result)


def token_values_to_nucleotides(values, offsets, sequence_length: int, fill_value: float = np.nan) -> np.ndarray:
    """Spread per-token values back to nucleotides: each nucleotide gets the value of the token covering it.

    `values` has shape (T,) or (T, C); the result has shape (L,) or (L, C), float, with `fill_value` where no
    token covers a nucleotide (e.g. beyond a truncated input).
    """
    values = np.asarray(values)
    spans = np.asarray(offsets).reshape(-1, 2)
    if values.ndim not in (1, 2) or values.shape[0] != spans.shape[0]:
        raise ValueError(
            f"values must have shape (T,) or (T, C) with T = {spans.shape[0]} tokens, got {values.shape}"
        )
    token_of_nucleotide = nucleotide_to_token_index(spans, sequence_length)
    result = np.full((sequence_length,) + values.shape[1:], fill_value, dtype=np.result_type(values, np.float32))
    covered = token_of_nucleotide >= 0
    result[covered] = values[token_of_nucleotide[covered]]
    return result


# -------------------------------------------------------------------- training


def _training_sentences(sequences: Iterable[str]) -> Iterator[str]:
    """Upper-cased, stripped, validated sentences; a bad one raises an error naming it."""
    for index, sentence in enumerate(sequences):
        if not isinstance(sentence, str):
            raise TypeError(f"training sentence #{index} is a {type(sentence).__name__}, expected str")
        upper = sentence.strip().upper()
        if not upper:
            continue
        bad = _NOT_IUPAC.search(upper)
        if bad is not None:
            raise ValueError(
                f"training sentence #{index} has {bad.group()!r} at position {bad.start()}: "
                f"only IUPAC nucleotide letters ({IUPAC_LETTERS}) are allowed"
            )
        yield upper


def build_untrained_tokenizer(
    gap_token: bool = True,
    gap_min_run: int = 10,
    special_tokens: SpecialTokens = SpecialTokens(),
) -> Tokenizer:
    """An empty BPE `tokenizers.Tokenizer` with the GENA-LM t2t pipeline around it (no vocabulary yet)."""
    backend = Tokenizer(BPE(unk_token=special_tokens.unk))
    steps = [normalizers.Strip()]
    if gap_token:
        if gap_min_run < 2:
            raise ValueError(f"gap_min_run must be at least 2, got {gap_min_run}")
        steps.append(normalizers.Replace(Regex(f"N{{{gap_min_run},}}"), special_tokens.gap))
        backend.pre_tokenizer = pre_tokenizers.Split(special_tokens.gap, "isolated")
    backend.normalizer = normalizers.Sequence(steps)
    # The ids of [CLS]/[SEP] are fixed by the official order of the special tokens (1 and 2).
    ordered = special_tokens.ordered(gap_token)
    backend.post_processor = processors.BertProcessing(
        (special_tokens.sep, ordered.index(special_tokens.sep)), (special_tokens.cls, ordered.index(special_tokens.cls))
    )
    backend.decoder = decoders.BPEDecoder(suffix=" ")
    return backend


def train_bpe_tokenizer(
    sequences: Iterable[str],
    vocab_size: int = 32_000,
    min_frequency: int = 0,
    gap_token: bool = True,
    gap_min_run: int = 10,
    initial_alphabet: str = "ACGTN",
    limit_alphabet: int | None = None,
    max_token_length: int | None = None,
    show_progress: bool = False,
    sequence_count: int | None = None,
) -> GenaTokenizer:
    """Train a GENA-LM-style BPE tokenizer from an iterable of DNA "sentences" (streamed, never joined).

    The recipe of the official tokenizers: `tokenizers`' `BpeTrainer` with its default merge settings
    (`min_frequency=0`, no alphabet limit), vocabulary 32,000, each sentence (GENA-LM used 500-1000 bp pieces)
    one BPE "word". Special tokens keep the official ids: [UNK]=0, [CLS]=1, [SEP]=2, [PAD]=3, [MASK]=4 and,
    with `gap_token`, "-"=5, which replaces runs of `gap_min_run` or more N. Sentences are upper-cased; the
    alphabet is `initial_alphabet` (so A, C, G, T, N always have tokens) plus the letters seen in the data,
    which must be IUPAC codes. `sequence_count` only feeds the progress bar.
    """
    special_tokens = SpecialTokens()
    ordered_specials = special_tokens.ordered(gap_token)
    alphabet = sorted(set(initial_alphabet.upper()))
    bad_letters = [letter for letter in alphabet if letter not in IUPAC_LETTERS]
    if bad_letters:
        raise ValueError(f"initial_alphabet has non-IUPAC letters {bad_letters}")
    if vocab_size < len(ordered_specials) + len(alphabet):
        raise ValueError(
            f"vocab_size {vocab_size} is smaller than the special tokens plus the alphabet "
            f"({len(ordered_specials)} + {len(alphabet)})"
        )
    backend = build_untrained_tokenizer(gap_token, gap_min_run, special_tokens)
    trainer_options = dict(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=ordered_specials,
        initial_alphabet=alphabet,
        show_progress=show_progress,
    )
    if limit_alphabet is not None:
        trainer_options["limit_alphabet"] = limit_alphabet
    if max_token_length is not None:
        trainer_options["max_token_length"] = max_token_length
    backend.train_from_iterator(_training_sentences(sequences), BpeTrainer(**trainer_options), length=sequence_count)
    tokenizer = GenaTokenizer(backend, special_tokens)
    # The ids are a contract with every checkpoint trained on this tokenizer: check them, do not assume them.
    for expected_id, token in enumerate(ordered_specials):
        if tokenizer.token_to_id(token) != expected_id:
            raise RuntimeError(f"trained tokenizer gave {token!r} id {tokenizer.token_to_id(token)}, expected {expected_id}")
    return tokenizer

"""Tests for genalm_models.tokenizer: the official t2t tokenizer, exact offsets, label mapping, training."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from genalm_models.tokenizer import (
    SPECIAL_TOKEN_OFFSETS,
    GenaTokenizer,
    TokenizerFileError,
    nucleotide_labels_to_tokens,
    nucleotide_to_token_index,
    token_values_to_nucleotides,
    train_bpe_tokenizer,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
# CI and developers keep the shared data beside the repository (../shared relative to the repository root).
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
OFFICIAL_TOKENIZER = SHARED_DATA / "gena_lm_official" / "tokenizer_t2t"
TEST_FASTA = REPO_ROOT / "tests" / "data" / "chr20_2mb.fa.gz"
SHARED_FASTA = SHARED_DATA / "genome" / "GRCh37_chr20.fa.gz"

needs_official = pytest.mark.skipif(
    not (OFFICIAL_TOKENIZER / "tokenizer.json").is_file(),
    reason=f"official GENA-LM t2t tokenizer not found at {OFFICIAL_TOKENIZER} (shared data folder absent)",
)


def _chr20_fasta() -> Path:
    if TEST_FASTA.is_file():
        return TEST_FASTA
    if SHARED_FASTA.is_file():
        return SHARED_FASTA
    pytest.skip(f"no chr20 FASTA: neither {TEST_FASTA} nor {SHARED_FASTA} exists")


def _fetch_chr20(start: int, end: int) -> str:
    import pysam
    with pysam.FastaFile(str(_chr20_fasta())) as fasta:
        return fasta.fetch("20", start, end)


@pytest.fixture(scope="module")
def official() -> GenaTokenizer:
    if not (OFFICIAL_TOKENIZER / "tokenizer.json").is_file():
        pytest.skip(f"official GENA-LM t2t tokenizer not found at {OFFICIAL_TOKENIZER} (shared data folder absent)")
    return GenaTokenizer.from_pretrained(OFFICIAL_TOKENIZER)


@pytest.fixture(scope="module")
def real_dna() -> str:
    """20 kb of real chr20 sequence without N (from the slice's q-side part, far from the training region)."""
    sequence = _fetch_chr20(1_500_000, 1_520_000)
    assert "N" not in sequence
    return sequence


@pytest.fixture(scope="module")
def small_trained() -> GenaTokenizer:
    """A 300-token BPE trained on 400 kb of chr20 (including its leading 60 kb N run), in 500-1000 bp sentences."""
    sequence = _fetch_chr20(0, 400_000)
    rng = np.random.default_rng(0)
    sentences, position = [], 0
    while position < len(sequence):
        length = int(rng.integers(500, 1001))
        sentences.append(sequence[position : position + length])
        position += length
    # A generator: training must work on a stream, not only on a list.
    return train_bpe_tokenizer((sentence for sentence in sentences), vocab_size=300)


def _n_run_cases(dna: str) -> list[tuple[str, list[tuple[int, int]]]]:
    """Sequences with N runs at the start, middle and end (lengths 9, 10, 25), and a mixture with short runs.

    Returns (sequence, spans of the runs of 10+ N) pairs.
    """
    cases = []
    for run_length in (9, 10, 25):
        run = "N" * run_length
        body = dna[:300]
        for sequence, run_start in (
            (run + body, 0),
            (body[:150] + run + body[150:], 150),
            (body + run, 300),
        ):
            long_runs = [(run_start, run_start + run_length)] if run_length >= 10 else []
            cases.append((sequence, long_runs))
    mixed_parts = [dna[0:40], "N", dna[40:77], "N" * 9, dna[77:90], "N" * 10, dna[90:91], "N" * 25,
                   dna[91:130], "NN", dna[130:131], "N" * 3, dna[131:200], "N" * 12]
    mixed = "".join(mixed_parts)
    long_runs = []
    position = 0
    for part in mixed_parts:
        if part and set(part) == {"N"} and len(part) >= 10:
            long_runs.append((position, position + len(part)))
        position += len(part)
    cases.append((mixed, long_runs))
    return cases


def _check_offsets(tokenizer: GenaTokenizer, sequence: str, long_runs: list[tuple[int, int]]) -> None:
    ids, offsets = tokenizer.encode_with_offsets(sequence)
    assert len(ids) == len(offsets)
    assert "".join(sequence[start:end] for start, end in offsets) == sequence
    # Spans tile the sequence in order: each starts where the previous one ended.
    assert offsets[0][0] == 0 and offsets[-1][1] == len(sequence)
    assert all(offsets[i][1] == offsets[i + 1][0] for i in range(len(offsets) - 1))
    gap_spans = [span for token_id, span in zip(ids, offsets) if token_id == tokenizer.gap_id]
    assert gap_spans == long_runs
    # Every other token stands for exactly the letters it covers.
    for token_id, (start, end) in zip(ids, offsets):
        if token_id != tokenizer.gap_id:
            assert tokenizer.id_to_token(token_id) == sequence[start:end]


# ------------------------------------------------------------------ official tokenizer


def test_official_special_ids(official):
    assert official.vocab_size == 32_000
    assert (official.unk_id, official.cls_id, official.sep_id, official.pad_id, official.mask_id) == (0, 1, 2, 3, 4)
    assert official.gap_id == 5
    assert official.special_ids == {0, 1, 2, 3, 4, 5}


def test_official_template_and_case(official, real_dna):
    sequence = real_dna[:500]
    ids = official.encode(sequence)
    assert ids[0] == official.cls_id and ids[-1] == official.sep_id
    assert official.encode(sequence, add_special_tokens=False) == ids[1:-1]
    assert official.encode(sequence.lower()) == ids
    mixed_case = "".join(c.lower() if i % 3 else c for i, c in enumerate(sequence))
    assert official.encode(mixed_case) == ids
    assert official.unk_id not in ids
    # The raw backend turns lower case into [UNK]: that is why the wrapper upper-cases.
    assert official.unk_id in official.backend.encode(sequence.lower()).ids


def test_official_encode_batch_matches_single(official, real_dna):
    sequences = [real_dna[i * 700 : (i + 1) * 700] for i in range(5)] + ["acgtNNNNNNNNNNNNacgt", ""]
    assert official.encode_batch(sequences) == [official.encode(s) for s in sequences]
    assert official.encode_batch(sequences, add_special_tokens=False) == [
        official.encode(s, add_special_tokens=False) for s in sequences
    ]
    batch = official.encode_batch_with_offsets(sequences)
    assert batch == [official.encode_with_offsets(s) for s in sequences]


def test_official_offsets_reconstruct_sequence_with_n_runs(official, real_dna):
    for sequence, long_runs in _n_run_cases(real_dna):
        _check_offsets(official, sequence, long_runs)
        lower_ids, lower_offsets = official.encode_with_offsets(sequence.lower())
        assert (lower_ids, lower_offsets) == official.encode_with_offsets(sequence)


def test_official_backend_gap_offsets_are_what_we_correct(official):
    # Documents the upstream behaviour our correction exists for: the raw span is only the last N.
    sequence = "ACGT" + "N" * 12 + "ACGT"
    raw = official.backend.encode(sequence, add_special_tokens=False)
    raw_gap_spans = [span for token_id, span in zip(raw.ids, raw.offsets) if token_id == official.gap_id]
    assert raw_gap_spans == [(15, 16)]
    ids, offsets = official.encode_with_offsets(sequence)
    assert [span for token_id, span in zip(ids, offsets) if token_id == official.gap_id] == [(4, 16)]


def test_official_offsets_with_special_tokens_and_literal_dash(official):
    sequence = "N" * 12 + "-ACGT"
    ids, offsets = official.encode_with_offsets(sequence, add_special_tokens=True)
    assert ids[0] == official.cls_id and ids[-1] == official.sep_id
    assert offsets[0] == SPECIAL_TOKEN_OFFSETS and offsets[-1] == SPECIAL_TOKEN_OFFSETS
    # The N run and the literal '-' are two gap tokens; each keeps its own span.
    assert [span for token_id, span in zip(ids, offsets) if token_id == official.gap_id] == [(0, 12), (12, 13)]
    assert "".join(sequence[s:e] for s, e in offsets) == sequence


def test_official_random_sequences_with_n_runs(official):
    rng = np.random.default_rng(7)
    for _ in range(50):
        pieces = []
        for _ in range(int(rng.integers(1, 8))):
            if rng.random() < 0.5:
                piece = "".join(rng.choice(list("ACGT"), size=int(rng.integers(1, 60))))
            else:
                piece = "N" * int(rng.integers(1, 40))
            pieces.append(piece)
        sequence = "".join(pieces)
        # Adjacent N pieces merge into one run, so find the long runs in the joined sequence.
        long_runs = [(m.start(), m.end()) for m in re.finditer("N{10,}", sequence)]
        _check_offsets(official, sequence, long_runs)


def test_official_decode(official, real_dna):
    sequence = real_dna[:1000]
    assert official.decode(official.encode(sequence)) == sequence
    with_gap = "ACGTA" + "N" * 30 + "TTGCA"
    assert official.decode(official.encode(with_gap)) == "ACGTA-TTGCA"
    assert official.decode(official.encode(with_gap), gap_text="N" * 10) == "ACGTA" + "N" * 10 + "TTGCA"
    kept = official.decode(official.encode("ACGT"), skip_special_tokens=False)
    assert kept.startswith("[CLS]") and kept.endswith("[SEP]")
    with pytest.raises(ValueError, match="outside the vocabulary"):
        official.decode([1, 32_000])


def test_rejects_non_string_and_length_changing_input(official):
    with pytest.raises(TypeError, match="must be a str"):
        official.encode(b"ACGT")
    with pytest.raises(ValueError, match="upper case changes the length"):
        official.encode_with_offsets("ACGTß")
    with pytest.raises(TypeError, match="sequence #1"):
        official.encode_batch(["ACGT", None])


# ------------------------------------------------------------------ loading and saving


def test_save_load_round_trip_and_autotokenizer(official, real_dna, tmp_path):
    folder = official.save(tmp_path / "tok", model_max_length=512)
    assert sorted(p.name for p in folder.iterdir()) == [
        "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json"
    ]
    config = json.loads((folder / "tokenizer_config.json").read_text())
    assert config["tokenizer_class"] == "PreTrainedTokenizerFast" and config["model_max_length"] == 512
    reloaded = GenaTokenizer.from_pretrained(folder)
    sequences = [real_dna[:3000], "ACGT" + "N" * 15 + "GGCAT", "nnnnnnnnnnnnacgt"]
    assert reloaded.encode_batch(sequences) == official.encode_batch(sequences)
    assert reloaded.special_ids == official.special_ids
    # A tokenizer.json path works as well as its folder.
    assert GenaTokenizer.from_pretrained(folder / "tokenizer.json").encode(sequences[0]) == official.encode(sequences[0])

    import transformers
    hf = transformers.AutoTokenizer.from_pretrained(str(folder))
    assert (hf.pad_token_id, hf.cls_token_id, hf.sep_token_id, hf.mask_token_id, hf.unk_token_id) == (3, 1, 2, 4, 0)
    for sequence in sequences[:2]:
        assert hf(sequence)["input_ids"] == official.encode(sequence)


def test_from_pretrained_errors(tmp_path):
    with pytest.raises(TokenizerFileError, match="no such tokenizer folder or file"):
        GenaTokenizer.from_pretrained(tmp_path / "missing")
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(TokenizerFileError, match="no tokenizer.json in this folder"):
        GenaTokenizer.from_pretrained(tmp_path)
    (tmp_path / "tokenizer.json").write_text('{"version": "1.0",\n  "model": ')
    with pytest.raises(TokenizerFileError, match="tokenizer.json: cannot be read"):
        GenaTokenizer.from_pretrained(tmp_path)


@needs_official
def test_bad_special_tokens_map_names_file_and_line(tmp_path):
    folder = tmp_path / "tok"
    folder.mkdir()
    (folder / "tokenizer.json").write_bytes((OFFICIAL_TOKENIZER / "tokenizer.json").read_bytes())
    (folder / "special_tokens_map.json").write_text('{\n  "pad_token": "[PAD]",\n  "cls_token": \n}\n')
    with pytest.raises(TokenizerFileError, match=r"special_tokens_map.json: line 4"):
        GenaTokenizer.from_pretrained(folder)
    (folder / "special_tokens_map.json").write_text('{"pad_token": "<pad>"}')
    with pytest.raises(TokenizerFileError, match="no pad token '<pad>'"):
        GenaTokenizer.from_pretrained(folder)


def test_tokenizer_module_does_not_import_torch_or_kipoi():
    code = "import sys, genalm_models.tokenizer; print(sorted({'torch', 'kipoi'} & set(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    assert result.stdout.strip() == "[]"


# ------------------------------------------------------------------ token <-> nucleotide mapping


def test_label_mapping_hand_built_example():
    # Sequence of 12 nucleotides: [CLS] | 0..3 | 3..4 | 4..10 (gap) | 10..12 | [SEP]
    offsets = [(0, 0), (0, 3), (3, 4), (4, 10), (10, 12), (0, 0)]
    labels = np.zeros((12, 2), dtype=np.int64)
    labels[2, 0] = 1  # class 0 inside token 1
    labels[9, 1] = 2  # class 1 (any non-zero counts) at the last nucleotide of the gap token 3
    labels[10, 0] = 1  # class 0 in token 4
    labels[11, 0] = 1
    expected_any = np.array([[0, 0], [1, 0], [0, 0], [0, 1], [1, 0], [0, 0]], dtype=bool)
    assert np.array_equal(nucleotide_labels_to_tokens(labels, offsets), expected_any)
    mean = nucleotide_labels_to_tokens(labels[:, 0], offsets, reduce="mean")
    assert np.allclose(mean, [0, 1 / 3, 0, 0, 1, 0])
    specials_ignored = nucleotide_labels_to_tokens(labels[:, 0], offsets, reduce="mean", empty_value=-100)
    assert np.allclose(specials_ignored, [-100, 1 / 3, 0, 0, 1, -100])

    assert np.array_equal(nucleotide_to_token_index(offsets, 12), [1, 1, 1, 2, 3, 3, 3, 3, 3, 3, 4, 4])
    token_scores = np.array([[9, 9], [0.1, 0.2], [0.3, 0.4], [0.5, 0.6], [0.7, 0.8], [9, 9]])
    per_nucleotide = token_values_to_nucleotides(token_scores, offsets, 12)
    assert per_nucleotide.shape == (12, 2)
    assert np.allclose(per_nucleotide[:, 1], [0.2] * 3 + [0.4] + [0.6] * 6 + [0.8] * 2)
    # Nucleotides no token covers (a truncated tail) get the fill value.
    truncated = token_values_to_nucleotides(token_scores[:3, 0], offsets[:3], 12, fill_value=-1.0)
    assert np.allclose(truncated, [0.1] * 3 + [0.3] + [-1.0] * 8)


def test_label_mapping_rejects_bad_spans():
    with pytest.raises(ValueError, match=r"token #1 has span \(2, 13\)"):
        nucleotide_to_token_index([(0, 2), (2, 13)], 12)
    with pytest.raises(ValueError, match="overlap"):
        nucleotide_to_token_index([(0, 3), (2, 5)], 12)
    with pytest.raises(ValueError, match="T = 2 tokens"):
        token_values_to_nucleotides(np.zeros(3), [(0, 2), (2, 4)], 4)
    with pytest.raises(ValueError, match="reduce must be"):
        nucleotide_labels_to_tokens(np.zeros(4), [(0, 4)], reduce="max")


@needs_official
def test_label_round_trip_on_real_tokens(official, real_dna):
    sequence = real_dna[:2000] + "N" * 50 + real_dna[2000:3000]
    ids, offsets = official.encode_with_offsets(sequence, add_special_tokens=True)
    labels = np.zeros(len(sequence), dtype=np.int64)
    labels[[5, 999, 2010, 2900]] = 1
    token_labels = nucleotide_labels_to_tokens(labels, offsets)
    positive_tokens = set(nucleotide_to_token_index(offsets, len(sequence))[[5, 999, 2010, 2900]].tolist())
    assert set(np.flatnonzero(token_labels).tolist()) == positive_tokens
    back = token_values_to_nucleotides(token_labels.astype(float), offsets, len(sequence))
    # Spreading back marks every nucleotide of a positive token, so it covers every labelled nucleotide.
    assert np.all(back[labels == 1] == 1)
    assert back[2000:2050].tolist() == [1.0] * 50  # position 2010 is in the gap token: the whole run


# ------------------------------------------------------------------ training


def test_trained_tokenizer_ids_and_vocabulary(small_trained):
    tokenizer = small_trained
    assert tokenizer.vocab_size == 300
    assert [tokenizer.id_to_token(i) for i in range(6)] == ["[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]", "-"]
    assert (tokenizer.unk_id, tokenizer.cls_id, tokenizer.sep_id, tokenizer.pad_id, tokenizer.mask_id) == (
        0, 1, 2, 3, 4)
    assert tokenizer.gap_id == 5
    for letter in "ACGTN":
        assert tokenizer.token_to_id(letter) is not None
    # BPE learnt multi-letter tokens from real DNA.
    assert max(len(tokenizer.id_to_token(i)) for i in range(6, 300)) >= 4


def test_trained_tokenizer_offsets_and_compression(small_trained, real_dna):
    for sequence, long_runs in _n_run_cases(real_dna):
        _check_offsets(small_trained, sequence, long_runs)
    ids = small_trained.encode(real_dna[:5000], add_special_tokens=False)
    assert small_trained.unk_id not in ids
    assert len(ids) < 5000 / 2  # merges compress the held-out sequence


def test_trained_tokenizer_save_load_round_trip(small_trained, real_dna, tmp_path):
    small_trained.save(tmp_path)
    reloaded = GenaTokenizer.from_pretrained(tmp_path)
    sequences = [real_dna[:4000], "GATTACA" + "N" * 11 + "CAT"]
    assert reloaded.encode_batch(sequences) == small_trained.encode_batch(sequences)
    assert reloaded.encode_batch_with_offsets(sequences) == small_trained.encode_batch_with_offsets(sequences)
    # Atomic writes leave no temporary files behind.
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json"
    ]
    import transformers
    hf = transformers.AutoTokenizer.from_pretrained(str(tmp_path))
    assert hf(sequences[1])["input_ids"] == small_trained.encode(sequences[1])


def test_training_without_gap_token(real_dna):
    tokenizer = train_bpe_tokenizer([real_dna[i : i + 800] for i in range(0, 16_000, 800)], vocab_size=60,
                                    gap_token=False)
    assert tokenizer.gap_id is None
    assert tokenizer.special_ids == {0, 1, 2, 3, 4}
    sequence = "ACGT" + "N" * 12 + "ACGT"
    ids, offsets = tokenizer.encode_with_offsets(sequence)
    assert "".join(sequence[s:e] for s, e in offsets) == sequence
    assert tokenizer.id_to_token(ids[0])[0] == "A"


def test_training_rejects_bad_input():
    with pytest.raises(ValueError, match=r"training sentence #1 has 'X' at position 2"):
        train_bpe_tokenizer(["ACGT", "acxgt"], vocab_size=40)
    with pytest.raises(TypeError, match="training sentence #0 is a bytes"):
        train_bpe_tokenizer([b"ACGT"], vocab_size=40)
    with pytest.raises(ValueError, match="smaller than the special tokens plus the alphabet"):
        train_bpe_tokenizer(["ACGT"], vocab_size=8)

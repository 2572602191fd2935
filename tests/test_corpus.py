"""Tests for the pretraining corpus builder (genalm_models/pretrain/: corpus.py and its modules).

Most tests run on the real first 2 Mb of GRCh37 chr20 (tests/data/chr20_2mb.fa.gz, contig `20`, which starts
with a 60 kb N run); contig selection and N handling use small FASTA files written by the tests.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from genalm_models.genome import GenomeError, reverse_complement
from genalm_models.pretrain.corpus import (
    CorpusConfig,
    CorpusError,
    Haplotype,
    TileCounts,
    Variant,
    apply_variants,
    build_corpus,
    corpus_main,
    corpus_shard_paths,
    iter_corpus_documents,
    iter_corpus_sentences,
    read_corpus_manifest,
    tile_documents,
)

SLICE_LENGTH = 2_000_000
FIRST_BASE = 60_000  # the slice is N before this


def plus_documents(documents, pass_number=None, haplotype=None):
    return [
        d
        for d in documents
        if d["strand"] == "+" and d["haplotype"] == haplotype and (pass_number is None or d["pass"] == pass_number)
    ]


def write_fasta(path: Path, records: dict[str, str]) -> Path:
    with open(path, "w") as handle:
        for name, sequence in records.items():
            handle.write(f">{name}\n")
            for start in range(0, len(sequence), 60):
                handle.write(sequence[start : start + 60] + "\n")
    return path


def random_dna(length: int, seed: int) -> str:
    generator = random.Random(seed)
    return "".join(generator.choice("ACGT") for _ in range(length))


@pytest.fixture(scope="module")
def chr20_sequence(chr20_genome) -> str:
    return chr20_genome.fetch("20", 0, SLICE_LENGTH)


@pytest.fixture(scope="module")
def chr20_corpus(chr20_fasta, tmp_path_factory):
    """Three passes over the 2 Mb slice, both strands, several shards."""
    output = tmp_path_factory.mktemp("corpus") / "chr20"
    config = CorpusConfig(fasta_paths=[chr20_fasta], output_dir=output, passes=3, seed=7, documents_per_shard=40)
    summary = build_corpus(config)
    return output, summary, list(iter_corpus_documents(output))


# ------------------------------------------------------------------------------------------ the recipe


def test_documents_follow_the_recipe(chr20_corpus, chr20_sequence):
    _, _, documents = chr20_corpus
    for pass_number in range(3):
        forward = plus_documents(documents, pass_number)
        assert len(forward) > 20
        assert FIRST_BASE <= forward[0]["start"] <= FIRST_BASE + 5000
        # The sequence ends with a tail too short to be a sentence, or with a shortened last sentence.
        assert SLICE_LENGTH - 500 < forward[-1]["end"] <= SLICE_LENGTH
        for index, document in enumerate(forward):
            lengths = [len(sentence) for sentence in document["sentences"]]
            assert all(500 <= length <= 1000 for length in lengths)
            if index < len(forward) - 1:
                assert 50 <= len(lengths) <= 100
                assert forward[index + 1]["start"] == document["end"], "documents are tiled without gaps"
            joined = "".join(document["sentences"])
            assert joined == chr20_sequence[document["start"] : document["end"]]
            assert set(joined) <= set("ACGTN")
    # Every '+' document is followed by its reverse complement, sentence boundaries mirrored.
    for plus, minus in zip(documents[0::2], documents[1::2]):
        assert (plus["strand"], minus["strand"]) == ("+", "-")
        assert (minus["contig"], minus["start"], minus["end"], minus["pass"]) == (
            plus["contig"], plus["start"], plus["end"], plus["pass"]
        )
        assert minus["sentences"] == [reverse_complement(s) for s in reversed(plus["sentences"])]
    # Passes tile differently.
    boundaries = [{d["end"] for d in plus_documents(documents, p)} for p in range(3)]
    assert boundaries[0] != boundaries[1] != boundaries[2]


def test_manifest_counts_and_bp_accounting(chr20_corpus):
    output, summary, documents = chr20_corpus
    manifest = read_corpus_manifest(output)
    assert manifest["documents"] == len(documents) == summary["documents"]
    assert manifest["sentences"] == sum(len(d["sentences"]) for d in documents)
    assert manifest["bp"] == sum(len(s) for d in documents for s in d["sentences"])
    assert [p.name for p in corpus_shard_paths(output)] == [f"shard_{i:05d}.jsonl" for i in range(len(manifest["shards"]))]
    assert all(shard["documents"] == 40 for shard in manifest["shards"][:-1])
    accounting = manifest["accounting"]
    assert accounting["source_bp"] == 3 * SLICE_LENGTH
    assert accounting["document_bp"] * 2 == manifest["bp"]
    assert sum(value for key, value in accounting.items() if key != "source_bp") == accounting["source_bp"]
    assert accounting["n_run_bp"] == 3 * FIRST_BASE
    assert manifest["config"]["seed"] == 7
    assert sum(1 for _ in iter_corpus_sentences(output)) == manifest["sentences"]


def test_start_offsets_lie_in_range_and_differ_between_passes(chr20_fasta, tmp_path):
    config = CorpusConfig(fasta_paths=[chr20_fasta], output_dir=tmp_path / "c", passes=10, both_strands=False, seed=3)
    build_corpus(config)
    documents = list(iter_corpus_documents(tmp_path / "c"))
    assert {d["strand"] for d in documents} == {"+"}
    offsets = [plus_documents(documents, p)[0]["start"] - FIRST_BASE for p in range(10)]
    assert all(0 <= offset <= 5000 for offset in offsets)
    assert len(set(offsets)) >= 8


def test_same_seed_same_bytes_other_seed_other_corpus(chr20_fasta, tmp_path):
    def shards(seed, name):
        config = CorpusConfig(
            fasta_paths=[chr20_fasta], output_dir=tmp_path / name, passes=1, seed=seed, documents_per_shard=25
        )
        build_corpus(config)
        return [path.read_bytes() for path in corpus_shard_paths(tmp_path / name)]

    first = shards(11, "a")
    assert first == shards(11, "b")
    assert first != shards(12, "c")


# sha256 over (shard name, shard bytes) of two fixed-seed builds, recorded with the single-file corpus.py (commit
# f963af4) before it was split into corpus_config / haplotypes / tiling / contigs / shards: the split changes no byte.
GOLDEN_SHARDS = {
    "reference": ("9d2e2fc8835073188da2cb129b1fc678bd080538c90692ce3aee10a3fa8789a0", 6),
    "haplotypes": ("e62dcff170cda037dc9963b9b93c6203004e77c4c85c19e1410da63ecc576f45", 6),
}


def test_fixed_seed_shards_are_byte_identical_to_the_recorded_ones(chr20_fasta, data_dir, tmp_path):
    import hashlib

    settings = {
        "reference": dict(passes=2, seed=11, documents_per_shard=25),
        "haplotypes": dict(passes=1, seed=5, vcf_path=str(data_dir / "corpus_variants.vcf"), samples=["S1", "S2"],
                           read_chunk_bp=10_000, output_format="jsonl.gz", documents_per_shard=60),
    }
    for name, extra in settings.items():
        build_corpus(CorpusConfig(fasta_paths=[str(chr20_fasta)], output_dir=str(tmp_path / name), **extra))
        digest, shards = hashlib.sha256(), sorted((tmp_path / name).glob("shard_*"))
        for shard in shards:
            digest.update(shard.name.encode())
            digest.update(shard.read_bytes())
        assert (digest.hexdigest(), len(shards)) == GOLDEN_SHARDS[name], name


def test_gzip_output_holds_the_same_documents(chr20_corpus, chr20_fasta, tmp_path):
    output, _, documents = chr20_corpus
    config = CorpusConfig(
        fasta_paths=[chr20_fasta], output_dir=tmp_path / "gz", passes=3, seed=7, documents_per_shard=40,
        output_format="jsonl.gz",
    )
    build_corpus(config)
    assert corpus_shard_paths(tmp_path / "gz")[0].name == "shard_00000.jsonl.gz"
    assert list(iter_corpus_documents(tmp_path / "gz")) == documents


def test_tiling_streams_the_sequence():
    """The tiler pulls sequence only as far as it needs: never the whole contig before its first document."""
    pulled = []

    def chunks():
        for number in range(200):
            pulled.append(number)
            yield random_dna(10_000, number)

    config = CorpusConfig(fasta_paths=["unused.fa"], output_dir="unused")
    documents = tile_documents(chunks(), random.Random(0), config, TileCounts())
    start, sentences = next(documents)
    end = start + sum(map(len, sentences))
    assert end < 110_000
    assert len(pulled) * 10_000 <= end + 2 * 10_000


# ------------------------------------------------------------------------------- contigs and N handling


def test_contig_selection(tmp_path):
    fasta = write_fasta(
        tmp_path / "genome.fa",
        {
            "chr1": random_dna(30_000, 1),
            "chr2": random_dna(30_000, 2),
            "tiny": random_dna(9_999, 3),
            "chrM": random_dna(16_569, 4),
        },
    )
    build_corpus(CorpusConfig(fasta_paths=[fasta], output_dir=tmp_path / "all", passes=1))
    manifest = read_corpus_manifest(tmp_path / "all")
    assert [contig["name"] for contig in manifest["contigs"]] == ["chr1", "chr2"]
    assert manifest["skipped"]["contigs_excluded"] == ["chrM"]
    assert manifest["skipped"]["contigs_too_short"] == 1
    assert {d["contig"] for d in iter_corpus_documents(tmp_path / "all")} == {"chr1", "chr2"}

    # User exclusions match either naming convention; an include list names the only contigs to use.
    build_corpus(CorpusConfig(fasta_paths=[fasta], output_dir=tmp_path / "ex", passes=1, exclude_contigs=["2"]))
    assert {d["contig"] for d in iter_corpus_documents(tmp_path / "ex")} == {"chr1"}
    build_corpus(CorpusConfig(fasta_paths=[fasta], output_dir=tmp_path / "in", passes=1, contigs=["chr2"]))
    assert {d["contig"] for d in iter_corpus_documents(tmp_path / "in")} == {"chr2"}
    build_corpus(
        CorpusConfig(
            fasta_paths=[fasta], output_dir=tmp_path / "mt", passes=1, contigs=["MT"], exclude_mitochondria=False
        )
    )
    assert {d["contig"] for d in iter_corpus_documents(tmp_path / "mt")} == {"chrM"}
    with pytest.raises(CorpusError, match="chr9"):
        build_corpus(CorpusConfig(fasta_paths=[fasta], output_dir=tmp_path / "none", contigs=["chr9"]))


def test_long_n_runs_split_stretches_and_short_stretches_are_skipped(tmp_path):
    left, right = random_dna(15_000, 5), random_dna(20_000, 6)
    short = random_dna(8_000, 7)
    # N runs of 50+ split; the 8 kb piece between two of them is shorter than min_stretch_bp.
    sequence = "NNNNN" + left + "N" * 200 + short + "N" * 60 + right + "N" * 30
    fasta = write_fasta(tmp_path / "gaps.fa", {"gappy": sequence})
    build_corpus(CorpusConfig(fasta_paths=[fasta], output_dir=tmp_path / "c", passes=4, seed=1))
    manifest = read_corpus_manifest(tmp_path / "c")
    right_start = 5 + 15_000 + 200 + 8_000 + 60
    assert manifest["skipped"]["short_stretches"] == 4
    assert manifest["accounting"]["short_stretch_bp"] == 4 * 8_000
    for pass_number in range(4):
        documents = plus_documents(list(iter_corpus_documents(tmp_path / "c")), pass_number)
        on_left = [d for d in documents if d["end"] <= 5 + 15_000]
        on_right = [d for d in documents if d["start"] >= right_start]
        assert len(on_left) + len(on_right) == len(documents), "no document spans a long N run"
        assert 5 <= on_left[0]["start"] <= 5 + 5000
        assert right_start <= on_right[0]["start"] <= right_start + 5000
        for document in documents:
            assert "N" not in "".join(document["sentences"])
            assert "".join(document["sentences"]) == sequence[document["start"] : document["end"]]


def test_mostly_n_sentences_are_skipped_and_end_the_document(tmp_path):
    # 40 N + 10 A repeated: 80% N in runs shorter than split_n_run_bp, so only the sentence rule applies.
    noisy = ("N" * 40 + "ACGTACGTAC") * 200
    sequence = random_dna(12_000, 8) + noisy + random_dna(12_000, 9)
    fasta = write_fasta(tmp_path / "noisy.fa", {"noisy": sequence})
    config = CorpusConfig(
        fasta_paths=[fasta], output_dir=tmp_path / "c", passes=3, sentences_per_document=(50, 100), seed=2
    )
    build_corpus(config)
    manifest = read_corpus_manifest(tmp_path / "c")
    assert manifest["skipped"]["mostly_n_sentences"] >= 3 * 8
    documents = plus_documents(list(iter_corpus_documents(tmp_path / "c")))
    for document in documents:
        for sentence in document["sentences"]:
            assert sentence.count("N") <= len(sentence) / 2
        assert "".join(document["sentences"]) == sequence[document["start"] : document["end"]]
    # Skipped sentences cut documents: some document ends where the noisy region begins, another starts after it.
    assert any(12_000 - 1000 < d["end"] <= 12_000 + 1000 for d in documents)
    assert any(22_000 - 1000 <= d["start"] < 22_000 + 1000 for d in documents)


def test_without_splitting_the_leading_n_run_is_skipped_sentence_by_sentence(chr20_fasta, tmp_path):
    config = CorpusConfig(fasta_paths=[chr20_fasta], output_dir=tmp_path / "c", passes=1, split_n_run_bp=None)
    build_corpus(config)
    manifest = read_corpus_manifest(tmp_path / "c")
    assert manifest["skipped"]["mostly_n_sentences"] >= FIRST_BASE // 1000 - 5
    first = plus_documents(list(iter_corpus_documents(tmp_path / "c")))[0]
    # The first kept sentence is at most half N, so it starts at most 500 bp before the first base.
    assert FIRST_BASE - 500 <= first["start"] <= FIRST_BASE + 1000
    assert first["sentences"][0].count("N") <= len(first["sentences"][0]) / 2


# ------------------------------------------------------------------------------------------- variants


def test_apply_variants_snv_insertion_deletion_mnv():
    reference = "ACGTACGTAC"  # positions 100..109
    variants = [Variant(101, "C", "T"), (103, "T", "TGGG"), Variant(105, "CGT", "C"), (108, "AC", "GG")]
    assert apply_variants(reference, 100, variants) == "AT" + "G" + "TGGG" + "A" + "C" + "GG"
    assert apply_variants(reference, 100, []) == reference
    with pytest.raises(GenomeError, match="VCF line 12.*REF does not match"):
        apply_variants(reference, 100, [Variant(101, "G", "T", 12)])
    with pytest.raises(GenomeError, match="overlaps"):
        apply_variants(reference, 100, [(105, "CGT", "C"), (106, "G", "A")])
    with pytest.raises(GenomeError, match="past the end"):
        apply_variants(reference, 100, [(109, "CA", "C")])


def test_haplotype_coordinates_map_back_to_the_reference():
    haplotype = Haplotype("S:1", "c", 100, [Variant(10, "A", "ATTT"), Variant(20, "CGGG", "C")])
    assert haplotype.length == 100 + 3 - 3
    assert [haplotype.to_reference(p) for p in (0, 10, 11, 12, 13, 14, 23, 24, 25)] == [
        0, 10, 11, 11, 11, 11, 20, 24, 25
    ]
    assert haplotype.to_reference(haplotype.length) == 100


# The haplotypes of tests/data/corpus_variants.vcf over chr20:999,960-1,000,030, written out by hand from the
# reference GGTGAGAGCA TGAGTAACTC AGCTCAGGTC ACACAGCAGG TGGGAGAGAA CTGGAACAAG AACCCAGTGC.
REGION = (999_960, 1_000_030)
EXPECTED_REGION = {
    # SNV G>A; multi-allelic T>C (ALT 1); deletion AGGTG>A; the overlapping G>C is skipped; <DEL> not applied.
    "S1:1": "GATGAGAGCA" "CGAGTAACTC" "AGCTCAGGTC" "ACACAGCA" "GGAGAGAA" "CTGGAACAAG" "AACCCAGTGC",
    # T>G (ALT 2); insertion A>ATTTG; deletion; C>T (ALT 1 of T,<DEL>).
    "S1:2": "GGTGAGAGCA" "GGAGTAACTC" "ATTTGGCTCAGGTC" "ACACAGCA" "GGAGAGAA" "TTGGAACAAG" "AACCCAGTGC",
    # T>G; insertion; unphased 0/1 deletion taken in written order (not here); G>C; missing allele; MNV AA>GT.
    "S2:1": "GGTGAGAGCA" "GGAGTAACTC" "ATTTGGCTCAGGTC" "ACACAGCACG" "TGGGAGAGAA" "CTGGAACAAG" "GTCCCAGTGC",
    # insertion; deletion (second allele of 0/1); C>T; MNV.
    "S2:2": "GGTGAGAGCA" "TGAGTAACTC" "ATTTGGCTCAGGTC" "ACACAGCA" "GGAGAGAA" "TTGGAACAAG" "GTCCCAGTGC",
}


@pytest.fixture(scope="module")
def variant_corpus(chr20_fasta, data_dir, tmp_path_factory):
    output = tmp_path_factory.mktemp("variants") / "c"
    config = CorpusConfig(
        fasta_paths=[chr20_fasta],
        output_dir=output,
        passes=2,
        vcf_path=data_dir / "corpus_variants.vcf",
        samples=["S1", "S2"],
        # Small reads, so that the deletion at 999,997-1,000,002 straddles a read boundary (1,000,000).
        read_chunk_bp=10_000,
        seed=5,
    )
    summary = build_corpus(config)
    return summary, list(iter_corpus_documents(output))


def test_haplotype_documents_carry_the_sample_alleles(variant_corpus, chr20_sequence):
    summary, documents = variant_corpus
    before, after = chr20_sequence[: REGION[0]], chr20_sequence[REGION[1] :]
    assert {d["haplotype"] for d in documents} == {None, "S1:1", "S1:2", "S2:1", "S2:2"}
    for label, region in EXPECTED_REGION.items():
        haplotype = before + region + after
        shift = len(region) - (REGION[1] - REGION[0])
        for pass_number in range(2):
            forward = plus_documents(documents, pass_number, label)
            assert forward[0]["hap_start"] < REGION[0] and forward[-1]["hap_end"] > REGION[1] + shift
            for index, document in enumerate(forward):
                joined = "".join(document["sentences"])
                assert joined == haplotype[document["hap_start"] : document["hap_end"]]
                assert all(500 <= len(s) <= 1000 for s in document["sentences"])
                if index < len(forward) - 1:
                    assert forward[index + 1]["hap_start"] == document["hap_end"]
                # Reference coordinates: unchanged before the region, shifted back after it.
                if document["hap_end"] <= REGION[0]:
                    assert (document["start"], document["end"]) == (document["hap_start"], document["hap_end"])
                if document["hap_start"] >= REGION[1] + shift:
                    assert document["start"] == document["hap_start"] - shift
                    assert document["end"] == document["hap_end"] - shift
        minus = [d for d in documents if d["haplotype"] == label and d["strand"] == "-"]
        assert len(minus) == len(plus_documents(documents, None, label))
        for document in minus:
            joined = "".join(document["sentences"])
            assert joined == reverse_complement(haplotype[document["hap_start"] : document["hap_end"]])
    # The reference is emitted too, unchanged.
    for document in plus_documents(documents, 0, None):
        assert "".join(document["sentences"]) == chr20_sequence[document["start"] : document["end"]]


def test_variant_counts(variant_corpus):
    summary, _ = variant_corpus
    counts = summary["variants"]
    assert counts["vcf_records"] == 8
    assert counts["vcf_records_on_other_contigs"] == 1
    assert counts["unphased_genotypes"] == 1
    assert counts["overlapping_variants_skipped"] == 1
    assert counts["unsupported_alleles"] == 1
    assert counts["missing_alleles"] == 1
    assert counts["variants_applied"] == 3 + 4 + 4 + 4
    lengths = {hap["label"]: hap["length"] for hap in summary["contigs"][0]["haplotypes"]}
    assert lengths == {"S1:1": SLICE_LENGTH - 4, "S1:2": SLICE_LENGTH, "S2:1": SLICE_LENGTH + 4, "S2:2": SLICE_LENGTH}
    accounting = summary["accounting"]
    assert accounting["source_bp"] == 2 * (5 * SLICE_LENGTH)
    assert sum(value for key, value in accounting.items() if key != "source_bp") == accounting["source_bp"]


def write_vcf(path: Path, records: list[str], samples=("S1",)) -> Path:
    header = "##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t" + "\t".join(samples)
    path.write_text(header + "\n" + "\n".join(records) + "\n")
    return path


def test_ref_mismatch_names_the_vcf_line_or_is_skipped(chr20_fasta, tmp_path):
    # chr20:999,962 (1-based) is G; the second record claims T.
    vcf = write_vcf(tmp_path / "bad.vcf", ["20\t999962\t.\tG\tA\t.\t.\t.\tGT\t1|0", "20\t999962\t.\tT\tA\t.\t.\t.\tGT\t0|1"])
    config = CorpusConfig(fasta_paths=[chr20_fasta], output_dir=tmp_path / "out", passes=1, vcf_path=vcf)
    with pytest.raises(GenomeError, match=r"bad\.vcf:4: REF 'T' does not match .*20:999962.* is 'G'"):
        build_corpus(config)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir()), "nothing written on error"

    config.ref_mismatch = "skip"
    summary = build_corpus(config)
    assert summary["variants"]["ref_mismatch_records_skipped"] == 1
    assert summary["variants"]["variants_applied"] == 1


def test_vcf_problems_are_reported(chr20_fasta, data_dir, tmp_path):
    vcf = data_dir / "corpus_variants.vcf"
    with pytest.raises(GenomeError, match="S9"):
        build_corpus(CorpusConfig(fasta_paths=[chr20_fasta], output_dir=tmp_path / "a", vcf_path=vcf, samples=["S9"]))
    with pytest.raises(GenomeError, match=r"corpus_variants\.vcf:6: sample S3: .*3 alleles"):
        build_corpus(CorpusConfig(fasta_paths=[chr20_fasta], output_dir=tmp_path / "b", vcf_path=vcf, samples=["S3"]))
    with pytest.raises(GenomeError, match=r"corpus_variants\.vcf:9: sample S2: unphased"):
        build_corpus(
            CorpusConfig(
                fasta_paths=[chr20_fasta], output_dir=tmp_path / "c", vcf_path=vcf, samples=["S2"], unphased="error"
            )
        )
    too_high = write_vcf(tmp_path / "allele.vcf", ["20\t999962\t.\tG\tA\t.\t.\t.\tGT\t0|2"])
    with pytest.raises(GenomeError, match=r"allele\.vcf:3: .*allele 2 .*only 1 ALT"):
        build_corpus(CorpusConfig(fasta_paths=[chr20_fasta], output_dir=tmp_path / "d", vcf_path=too_high))


# --------------------------------------------------------------------------------- output folder, reader


def small_config(tmp_path: Path, **overrides) -> CorpusConfig:
    fasta = tmp_path / "small.fa"
    if not fasta.exists():
        write_fasta(fasta, {"chr1": random_dna(40_000, 10)})
    settings = dict(fasta_paths=[fasta], output_dir=tmp_path / "corpus", passes=2, documents_per_shard=2,
                    sentence_bp=(500, 600), sentences_per_document=(5, 8))
    settings.update(overrides)
    return CorpusConfig(**settings)


def test_non_empty_output_dir_needs_overwrite(tmp_path):
    config = small_config(tmp_path)
    first = build_corpus(config)
    with pytest.raises(CorpusError, match="not empty.*overwrite=True"):
        build_corpus(config)
    (tmp_path / "corpus" / "notes.txt").write_text("kept")
    # What atomic_write leaves behind when a build is killed mid-shard is cleaned up too.
    (tmp_path / "corpus" / ".shard_00007.jsonl.1234.abcd.tmp").write_text("half a shard")
    config.overwrite = True
    config.documents_per_shard = 1000
    second = build_corpus(config)
    assert len(second["shards"]) == 1 < len(first["shards"])
    names = sorted(path.name for path in (tmp_path / "corpus").iterdir())
    assert names == ["manifest.json", "notes.txt", "shard_00000.jsonl"]


def test_corrupt_or_incomplete_corpus_is_reported(tmp_path):
    build_corpus(small_config(tmp_path))
    corpus = tmp_path / "corpus"
    shard = corpus / "shard_00001.jsonl"
    lines = shard.read_bytes().splitlines(keepends=True)
    shard.write_bytes(lines[0] + lines[1][: len(lines[1]) // 2] + b"\n")
    with pytest.raises(CorpusError, match=r"shard_00001\.jsonl:2: invalid JSON"):
        list(iter_corpus_documents(corpus))

    shard.write_bytes(lines[0] + json.dumps({"contig": "chr1", "strand": "+"}).encode() + b"\n")
    with pytest.raises(CorpusError, match=r"shard_00001\.jsonl:2: document has no 'start'"):
        list(iter_corpus_documents(corpus))

    shard.write_bytes(lines[0])
    with pytest.raises(CorpusError, match=r"shard_00001\.jsonl: 1 documents, but the manifest says 2"):
        list(iter_corpus_documents(corpus))

    shard.unlink()
    with pytest.raises(CorpusError, match=r"shard not found: .*shard_00001\.jsonl"):
        list(iter_corpus_documents(corpus))

    (corpus / "manifest.json").write_text('{"format_version": 1, "shards": [')
    with pytest.raises(CorpusError, match=r"manifest\.json:1: invalid JSON"):
        list(iter_corpus_documents(corpus))
    (corpus / "manifest.json").unlink()
    with pytest.raises(CorpusError, match="not a finished corpus"):
        list(iter_corpus_documents(corpus))


def test_corrupt_gzip_shard_is_reported(tmp_path):
    build_corpus(small_config(tmp_path, output_format="jsonl.gz"))
    shard = tmp_path / "corpus" / "shard_00000.jsonl.gz"
    data = shard.read_bytes()
    shard.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorpusError, match=r"shard_00000\.jsonl\.gz:\d+: cannot decompress"):
        list(iter_corpus_documents(tmp_path / "corpus"))


def test_invalid_configs_are_rejected(tmp_path):
    with pytest.raises(CorpusError, match="sentence_bp"):
        small_config(tmp_path, sentence_bp=(1000, 500))
    with pytest.raises(CorpusError, match="max_n_fraction"):
        small_config(tmp_path, max_n_fraction=1.5)
    with pytest.raises(CorpusError, match="samples are given but no vcf_path"):
        small_config(tmp_path, samples=["S1"])
    with pytest.raises(CorpusError, match="output_format"):
        small_config(tmp_path, output_format="txt")


def test_command_line(tmp_path, capsys):
    fasta = write_fasta(tmp_path / "cli.fa", {"chr1": random_dna(30_000, 12)})
    code = corpus_main(["--fasta", str(fasta), "--output-dir", str(tmp_path / "out"), "--passes", "2", "--seed", "4"])
    assert code == 0
    assert "documents" in capsys.readouterr().out
    manifest = read_corpus_manifest(tmp_path / "out")
    assert manifest["config"]["passes"] == 2 and manifest["config"]["seed"] == 4
    assert {d["pass"] for d in iter_corpus_documents(tmp_path / "out")} == {0, 1}
    # A second run into the same folder is refused with a clear message, not a traceback.
    assert corpus_main(["--fasta", str(fasta), "--output-dir", str(tmp_path / "out")]) == 2
    assert "overwrite" in capsys.readouterr().err


def test_excluded_regions_never_reach_the_corpus(tmp_path, chr20_fasta):
    """Held-out test regions are masked with N: no document overlaps them, and the rest is still tiled."""
    bed = tmp_path / "test_regions.bed"
    bed.write_text("chr20\t500000\t900000\ttest\n")
    cfg = CorpusConfig(fasta_paths=[str(chr20_fasta)], output_dir=str(tmp_path / "c"), passes=2,
                       exclude_regions=str(bed))
    build_corpus(cfg)
    docs = list(iter_corpus_documents(tmp_path / "c"))
    assert docs
    assert all(d["end"] <= 500000 or d["start"] >= 900000 for d in docs)
    assert any(d["start"] >= 900000 for d in docs) and any(d["end"] <= 500000 for d in docs)

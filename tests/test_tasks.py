"""Downstream tasks: datasets from the real chr20 slice and sample files, region splits, and metrics."""
from __future__ import annotations

import gzip
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import pearsonr
from sklearn.metrics import (accuracy_score, average_precision_score, f1_score, matthews_corrcoef,
                             roc_auc_score)

from genalm_models.genome import GenomeError, reverse_complement
from genalm_models.tasks import (
    TASK_KINDS, ChromatinTask, ChromatinTaskConfig, EnhancerTask, EnhancerTaskConfig, Example, PromoterTask,
    PromoterTaskConfig, RegionSplit, RegionTable, SpliceCsvTask, SpliceCsvTaskConfig, SpliceTask,
    SpliceTaskConfig, TokenTrack, bootstrap_ci, bootstrap_task_metrics, make_task, random_split,
)
from genalm_models.tasks.chromatin import chromatin_metrics, read_deepsea_csv
from genalm_models.tasks.enhancer import read_deepstarr
from genalm_models.tasks.metrics import binary_classification_metrics
from genalm_models.tasks.promoter import distance_to_nearest, piece_bounds, shuffle_pieces
from genalm_models.tasks.splice import (read_splice_table, read_spliceai_csv, splice_metrics,
                                        splice_site_motifs)

SAMPLES = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "samples"
# The slice is chr20:0-2,000,000: valid and test ranges chosen so each split holds TSSs and transcripts.
SLICE_SPLIT = dict(valid=("chr20:560001-1000000",), test=("chr20:1280001-1700000",), gap=16_000)


def sample(name: str) -> Path:
    path = SAMPLES / name
    if not path.exists():
        pytest.skip(f"shared sample file {path} is not available")
    return path


def tss_positions(bed: Path) -> list[int]:
    return sorted(int(line.split("\t")[1]) for line in bed.read_text().splitlines() if line.strip())


@pytest.fixture(scope="module")
def promoter_300(chr20_fasta, promoters_bed):
    task = PromoterTask(PromoterTaskConfig(str(promoters_bed), str(chr20_fasta), split=RegionSplit(**SLICE_SPLIT)))
    return task, task.build()


# ------------------------------------------------------------------------------------------- promoters


@pytest.mark.parametrize("upstream, downstream", [(249, 50), (1000, 999)])
def test_promoter_windows_put_the_tss_at_the_same_offset_on_both_strands(
        chr20_fasta, promoters_bed, chr20_genome, upstream, downstream):
    task = PromoterTask(PromoterTaskConfig(str(promoters_bed), str(chr20_fasta), upstream=upstream,
                                           downstream=downstream, split=RegionSplit(**SLICE_SPLIT)))
    positives = [e for split in task.build().values() for e in split if e.label == 1]
    tss_by_name = {line.split("\t")[3]: (int(line.split("\t")[1]), line.split("\t")[5])
                   for line in promoters_bed.read_text().splitlines()}
    strands = Counter()
    for example in positives:
        tss, strand = tss_by_name[example.meta["name"]]
        assert len(example.seq) == upstream + 1 + downstream
        forward = chr20_genome.fetch("20", example.meta["start"], example.meta["end"], strand="+")
        if strand == "+":
            assert example.meta["start"] == tss - upstream
            assert example.seq == forward
            assert example.seq[upstream] == chr20_genome.fetch("20", tss, tss + 1)
        else:
            assert example.meta["end"] == tss + upstream + 1
            assert example.seq == reverse_complement(forward)
            assert example.seq[upstream] == reverse_complement(chr20_genome.fetch("20", tss, tss + 1))
            # Downstream of a minus-strand TSS lies at lower coordinates: the last base is tss - downstream.
            last_base = chr20_genome.fetch("20", tss - downstream, tss - downstream + 1)
            assert example.seq[-1] == reverse_complement(last_base)
        strands[strand] += 1
    assert strands["+"] > 5 and strands["-"] > 5


def test_shuffled_negatives_keep_8_pieces_and_the_composition(promoter_300):
    task, splits = promoter_300
    for examples in splits.values():
        assert len(examples) % 2 == 0
        for positive, negative in zip(examples[0::2], examples[1::2]):
            assert (positive.label, negative.label) == (1, 0)
            assert negative.meta["kind"] == "shuffled"
            order = negative.meta["piece_order"]
            bounds = piece_bounds(len(positive.seq), 20)
            pieces = [positive.seq[bounds[i]:bounds[i + 1]] for i in range(20)]
            assert sorted(order) == list(range(20))
            assert sum(order[i] == i for i in range(20)) == 8
            assert negative.seq == "".join(pieces[i] for i in order)
            assert Counter(negative.seq) == Counter(positive.seq)
            new_bounds = piece_bounds(len(negative.seq), 20)
            kept = [i for i in range(20) if order[i] == i]
            assert all(negative.seq[new_bounds[i]:new_bounds[i + 1]] == pieces[i] for i in kept)


def test_shuffle_is_seeded_and_moves_exactly_the_chosen_pieces():
    sequence = "".join(np.random.default_rng(1).choice(list("ACGT"), 300))
    first = shuffle_pieces(sequence, np.random.default_rng(7))
    assert first == shuffle_pieces(sequence, np.random.default_rng(7))
    assert first != shuffle_pieces(sequence, np.random.default_rng(8))
    for seed in range(50):
        _, order = shuffle_pieces(sequence, np.random.default_rng(seed), n_pieces=20, n_moved=12)
        assert sum(order[i] != i for i in range(20)) == 12


def test_genomic_negatives_are_far_from_every_tss(chr20_fasta, promoters_bed, chr20_genome):
    min_distance = 10_000
    task = PromoterTask(PromoterTaskConfig(str(promoters_bed), str(chr20_fasta), negatives="genomic",
                                           min_tss_distance=min_distance, split=RegionSplit(**SLICE_SPLIT)))
    splits = task.build()
    table = task.region_table()
    all_tss = tss_positions(promoters_bed)
    n_negatives = 0
    for split, examples in splits.items():
        for positive, negative in zip(examples[0::2], examples[1::2]):
            meta = negative.meta
            assert meta["kind"] == "genomic" and negative.label == 0
            assert len(negative.seq) == len(positive.seq) == 300
            assert distance_to_nearest(all_tss, meta["start"], meta["end"]) >= min_distance
            assert min(abs(t - p) for t in all_tss for p in (meta["start"], meta["end"] - 1)) >= min_distance
            assert table.split_of(meta["chrom"], meta["start"], meta["end"]) == split
            assert negative.seq == chr20_genome.fetch("20", meta["start"], meta["end"], strand=meta["strand"])
            assert negative.seq.count("N") <= 0.05 * 300
            n_negatives += 1
    assert n_negatives == sum(len(e) for e in splits.values()) // 2


def test_promoter_build_is_reproducible_and_deduplicates(chr20_fasta, promoters_bed, tmp_path):
    duplicated = tmp_path / "dup.bed"
    lines = promoters_bed.read_text().splitlines()
    copy = lines[3].split("\t")
    copy[3] = "ALIAS_1"
    duplicated.write_text("\n".join(lines + ["\t".join(copy)]) + "\n")
    config = dict(fasta=str(chr20_fasta), split=RegionSplit(**SLICE_SPLIT))
    original = PromoterTask(PromoterTaskConfig(str(promoters_bed), **config))
    with_duplicate = PromoterTask(PromoterTaskConfig(str(duplicated), **config))
    first, second = original.build(), with_duplicate.build()
    assert with_duplicate.report["duplicate_window"] == original.report.get("duplicate_window", 0) + 1
    for split in first:
        assert [e.seq for e in first[split]] == [e.seq for e in second[split]]
    assert [e.seq for e in original.build()["train"]] == [e.seq for e in first["train"]]


def test_examples_never_cross_regions_and_splits_are_16kb_apart(promoter_300):
    task, splits = promoter_300
    table = task.region_table()
    # The region table: regions of different splits are separated by >= 16 kb of gap.
    usable = [r for r in table.regions if r.split != "gap"]
    for left, right in zip(usable, usable[1:]):
        if left.split != right.split:
            assert right.start - left.end >= 16_000
    windows = [(split, e.meta["start"], e.meta["end"]) for split, examples in splits.items()
               for e in examples if e.label == 1]
    for split, start, end in windows:
        region = table.region_of("20", start, end)
        assert region is not None and region.split == split and region.start <= start and end <= region.end
    for split_a, start_a, end_a in windows:
        for split_b, start_b, end_b in windows:
            if split_a != split_b:
                assert max(start_b - end_a, start_a - end_b) >= 16_000
    assert {s for s, _, _ in windows} == {"train", "valid", "test"}
    # The named test range is kept exactly; exclusion intervals cover it and its gaps.
    assert [(r.start, r.end) for r in table.regions_of("test")] == [(1_280_000, 1_700_000)]
    excluded = table.exclusion_intervals()
    assert [(i.start, i.end) for i in excluded] == [(1_264_000, 1_716_000)]


def test_region_split_from_fractions_and_bed_round_trip(tmp_path):
    lengths = {"1": 50_000_000, "20": 63_025_520, "X": 155_000_000}
    split = RegionSplit(valid_fraction=0.2, test_fraction=0.2, block_size=1_000_000, gap=20_000, seed=3)
    table = split.table(lengths)
    assert all(r.chrom != "X" for r in table.regions)
    assert table.split_of("chrX", 1_000, 2_000) is None
    sizes = {s: sum(r.width for r in table.regions_of(s)) for s in ("train", "valid", "test")}
    total = sum(sizes.values())
    assert 0.15 < sizes["test"] / total < 0.25 and 0.15 < sizes["valid"] / total < 0.25
    for chrom in ("1", "20"):
        usable = [r for r in table.regions if r.chrom == chrom and r.split != "gap"]
        assert usable[0].start >= 0
        for left, right in zip(usable, usable[1:]):
            assert right.start - left.end >= (20_000 if left.split != right.split else 1)
    assert split.table(lengths).regions == table.regions  # seeded
    path = tmp_path / "regions.bed"
    table.write_bed(path)
    assert RegionTable.read_bed(path).regions == table.regions
    # read through the one BED reader: comments and track lines pass, errors name file and line
    path.write_text("track name=splits\n# made by hand\n" + path.read_text() + "chr20\t0\t100\ttrian\n")
    with pytest.raises(GenomeError, match=rf"^{path}:{len(table.regions) + 3}: split 'trian': the 4th column"):
        RegionTable.read_bed(path)
    with pytest.raises(ValueError, match="reserved"):
        RegionSplit(test=("chrX:1-1000000",)).table(lengths)
    with pytest.raises(ValueError, match="overlaps"):
        RegionSplit(valid=("20:1-2000000",), test=("chr20:1000001-3000000",)).table(lengths)


def test_chrx_tss_are_never_used(chr20_fasta, promoters_bed, tmp_path):
    bed = tmp_path / "with_x.bed"
    bed.write_text(promoters_bed.read_text() + "chrX\t1000000\t1000001\tXGENE_1\t0\t+\n")
    task = PromoterTask(PromoterTaskConfig(str(bed), str(chr20_fasta), split=RegionSplit(**SLICE_SPLIT)))
    splits = task.build()
    assert task.report["tss_on_chrX_skipped"] == 1
    assert all(e.meta.get("name") != "XGENE_1" for examples in splits.values() for e in examples)


def test_promoter_input_errors_name_file_and_line(chr20_fasta, tmp_path):
    bed = tmp_path / "bad.bed"
    bed.write_text("chr20\t68312\t68313\tA_1\t0\t+\nchr20\t123230\t123231\tB_1\t0\t.\n")
    with pytest.raises(GenomeError, match=r"bad\.bed:2: a TSS needs a strand"):
        PromoterTask(PromoterTaskConfig(str(bed), str(chr20_fasta), split=RegionSplit(**SLICE_SPLIT))).build()
    with pytest.raises(ValueError, match="published promoter windows"):
        PromoterTaskConfig.published(500, str(bed), str(chr20_fasta))
    assert PromoterTaskConfig.published(16000, "a", "b").width == 16000


def test_promoter_metrics_equal_sklearn():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    p1 = np.clip(y * 0.3 + rng.random(200) * 0.7, 0, 1)
    task = PromoterTask(PromoterTaskConfig("unused.bed", "unused.fa"))
    examples = [Example("ACGT", int(label)) for label in y]
    scores = task.metrics(examples, [np.array([1 - p, p]) for p in p1])
    predicted = (p1 >= 0.5).astype(int)
    assert scores["f1"] == pytest.approx(f1_score(y, predicted))
    assert scores["mcc"] == pytest.approx(matthews_corrcoef(y, predicted))
    assert scores["accuracy"] == pytest.approx(accuracy_score(y, predicted))
    assert scores["roc_auc"] == pytest.approx(roc_auc_score(y, p1))
    assert scores["pr_auc"] == pytest.approx(average_precision_score(y, p1))
    assert math.isnan(binary_classification_metrics([1, 1, 1], [0.2, 0.6, 0.9])["roc_auc"])
    with pytest.raises(ValueError, match="probabilities per example"):
        task.metrics(examples[:2], [np.array([0.5]), np.array([0.5])])


def test_bootstrap_ci_contains_the_point_estimate():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 150)
    p = np.clip(y * 0.25 + rng.random(150) * 0.75, 0, 1)
    point = roc_auc_score(y, p)
    low, high = bootstrap_ci(roc_auc_score, y, p, n_resamples=1000, seed=0)
    assert low < point < high and high - low < 0.3
    assert (low, high) == bootstrap_ci(roc_auc_score, y, p, n_resamples=1000, seed=0)
    task = PromoterTask(PromoterTaskConfig("unused.bed", "unused.fa"))
    examples = [Example("A", int(label)) for label in y]
    predictions = [np.array([1 - v, v]) for v in p]
    intervals = bootstrap_task_metrics(task, examples, predictions, n_resamples=300, seed=0)
    point_scores = task.metrics(examples, predictions)
    for name in ("f1", "mcc", "roc_auc", "pr_auc", "accuracy"):
        assert intervals[name][0] <= point_scores[name] <= intervals[name][1]


# ----------------------------------------------------------------------------------------- splice sites


def test_splice_table_convention_gives_gt_donors_and_ag_acceptors(spliceai_table, chr20_genome):
    transcripts = read_splice_table(str(spliceai_table))
    assert len(transcripts) == 36 and {t.strand for t in transcripts} == {"+", "-"}
    motifs = splice_site_motifs(transcripts, chr20_genome)
    assert motifs["n_donors"] > 100
    assert motifs["donor_gt_fraction"] >= 0.98
    assert motifs["acceptor_ag_fraction"] >= 0.98


def test_splice_windows_are_oriented_labelled_in_the_centre_and_split(chr20_fasta, spliceai_table, chr20_genome):
    task = SpliceTask(SpliceTaskConfig(str(spliceai_table), str(chr20_fasta), center=1000, flank=1000,
                                       split=RegionSplit(**SLICE_SPLIT)))
    splits = task.build()
    table = task.region_table()
    motif = Counter()
    for split, examples in splits.items():
        for example in examples:
            meta = example.meta
            assert len(example.seq) == 3000 and example.label.shape == (3000, 2)
            assert not example.label_mask[:1000].any() and not example.label_mask[2000:].any()
            assert not example.label[~example.label_mask].any()
            assert table.split_of("20", meta["visible_start"], meta["visible_end"]) == split
            genome_seq = chr20_genome.fetch("20", meta["start"], meta["end"], strand=meta["strand"])
            visible = np.array([base != "N" for base in example.seq])
            assert all(a == b for a, b, v in zip(example.seq, genome_seq, visible) if v)
            for i in np.flatnonzero(example.label[:, 1]):
                motif["donor", example.seq[i + 1:i + 3]] += 1
            for i in np.flatnonzero(example.label[:, 0]):
                motif["acceptor", example.seq[i - 2:i]] += 1
    donors = sum(v for (kind, _), v in motif.items() if kind == "donor")
    acceptors = sum(v for (kind, _), v in motif.items() if kind == "acceptor")
    assert donors > 50 and motif["donor", "GT"] / donors > 0.97
    assert acceptors > 50 and motif["acceptor", "AG"] / acceptors > 0.97
    # Paralogous genes never reach the test split (SpliceAI protocol).
    paralogs = {t.name for t in read_splice_table(str(spliceai_table)) if t.paralog}
    assert not paralogs & {e.meta["name"] for e in splits["test"]}
    assert {e.meta["strand"] for e in splits["train"]} == {"+", "-"}


def test_minus_strand_splice_window_is_the_reverse_complement(chr20_fasta, spliceai_table, chr20_genome):
    task = SpliceTask(SpliceTaskConfig(str(spliceai_table), str(chr20_fasta), center=1000, flank=1000,
                                       n_outside_transcript=False, split=RegionSplit(**SLICE_SPLIT)))
    minus = [e for e in task.build()["train"] if e.meta["strand"] == "-"][:5]
    assert minus
    for example in minus:
        forward = chr20_genome.fetch("20", example.meta["start"], example.meta["end"], strand="+")
        assert example.seq == reverse_complement(forward)


def test_splice_train_windows_without_sites_can_be_thinned(chr20_fasta, spliceai_table):
    def build(keep):
        task = SpliceTask(SpliceTaskConfig(str(spliceai_table), str(chr20_fasta), center=1000, flank=1000,
                                           train_keep_empty=keep, split=RegionSplit(**SLICE_SPLIT)))
        return task.build(), task.report
    key = lambda e: (e.meta["name"], e.meta["block"])  # noqa: E731
    (every, _), (thinned, report) = build(1.0), build(0.3)
    with_sites = {key(e) for e in every["train"] if e.label.any()}
    empty = {key(e) for e in every["train"] if not e.label.any()}
    kept = {key(e) for e in thinned["train"]}
    assert with_sites <= kept                        # every window holding a site stays
    # the report counts what was kept and left out (the training log prints it)
    assert report["train_windows_with_sites"] == len(with_sites)
    assert report["train_sites"] == sum(int(e.label.sum()) for e in thinned["train"])
    assert report["train_windows_without_sites_left_out"] == len(empty) - len(kept & empty)
    kept_empty = kept & empty
    assert 0.15 * len(empty) < len(kept_empty) < 0.45 * len(empty)
    assert kept_empty == {key(e) for e in build(0.3)[0]["train"]} & empty  # the same subset every run
    for split in ("valid", "test"):                  # held-out splits are never thinned
        assert [key(e) for e in thinned[split]] == [key(e) for e in every[split]]
    with pytest.raises(ValueError, match="train_keep_empty"):
        SpliceTaskConfig(str(spliceai_table), str(chr20_fasta), train_keep_empty=0.0)


def test_token_level_splice_metric_on_a_hand_built_track():
    length = 30
    labels = np.zeros((length, 2), dtype=np.uint8)
    labels[[10, 18], 0] = 1   # acceptors
    labels[[12, 22], 1] = 1   # donors
    labels[5, 0] = 1          # an acceptor inside a token that straddles the edge of the labelled centre
    mask = np.zeros(length, dtype=bool)
    mask[5:25] = True
    example = Example("A" * length, labels, label_mask=mask)
    offsets = np.array([(0, 4), (4, 7), (7, 9), (9, 12), (12, 13), (13, 17), (17, 20), (20, 24), (24, 26), (26, 30)])
    probs = np.array([[.9, .9], [.8, .1], [.1, .2], [.7, .3], [.2, .6], [.3, .1], [.4, .2], [.1, .5], [.9, .9],
                      [.9, .9]])
    track = TokenTrack(probs=probs, offsets=offsets)
    scores = splice_metrics([example], [track])
    # Tokens fully inside [5, 25): #2..#7 (7-9, 9-12, 12-13, 13-17, 17-20, 20-24).
    inside = slice(2, 8)
    token_acceptor = np.array([0, 1, 0, 0, 1, 0])
    token_donor = np.array([0, 0, 1, 0, 0, 1])
    expected_acceptor = average_precision_score(token_acceptor, probs[inside, 0])
    expected_donor = average_precision_score(token_donor, probs[inside, 1])
    assert scores["token_pr_auc_acceptor"] == pytest.approx(expected_acceptor)
    assert scores["token_pr_auc_donor"] == pytest.approx(expected_donor)
    assert scores["token_pr_auc_mean"] == pytest.approx((expected_acceptor + expected_donor) / 2)
    # Nucleotide level: every base of [5, 25) takes its token's probability.
    lengths = offsets[:, 1] - offsets[:, 0]
    per_base = np.repeat(probs, lengths, axis=0)
    expected = [average_precision_score(labels[5:25, c], per_base[5:25, c]) for c in (0, 1)]
    assert scores["nucleotide_pr_auc_acceptor"] == pytest.approx(expected[0])
    assert scores["nucleotide_pr_auc_donor"] == pytest.approx(expected[1])
    # Per-nucleotide arrays instead of tracks give the same nucleotide-level numbers.
    same = splice_metrics([example], [per_base])
    assert same["nucleotide_pr_auc_donor"] == pytest.approx(expected[1]) and "token_pr_auc_mean" not in same


def test_splice_table_errors_name_file_and_line(tmp_path):
    table = tmp_path / "table.txt"
    table.write_text("G1\t0\tchr20\t+\t100\t900\t200,\t300,\nG2\t0\tchr20\t+\t100\t900\t200,400,\t300,\n")
    with pytest.raises(GenomeError, match=r"table\.txt:2: 2 exon ends but 1 exon starts"):
        read_splice_table(str(table))


# ------------------------------------------------------------------------------------------ sample files


def test_spliceai_csv_sample_loads_with_gt_donors_and_ag_acceptors():
    examples = read_spliceai_csv(str(sample("spliceai_test_10.csv")))
    assert len(examples) == 10
    motif = Counter()
    for example in examples:
        assert len(example.seq) == 15_000 and example.label.shape == (15_000, 2)
        assert not example.label_mask[:5000].any() and not example.label_mask[10_000:].any()
        for i in np.flatnonzero(example.label[:, 1]):
            motif["donor", example.seq[i + 1:i + 3]] += 1
        for i in np.flatnonzero(example.label[:, 0]):
            motif["acceptor", example.seq[i - 2:i]] += 1
    assert motif["donor", "GT"] >= 12 and motif["acceptor", "AG"] >= 13
    assert sum(int(e.label_mask.sum()) for e in examples) == 10 * 5000 - 718  # one sample has 718 '-1' labels
    splits = SpliceCsvTask(SpliceCsvTaskConfig(str(sample("spliceai_test_10.csv")))).build()
    assert sorted(len(v) for v in splits.values()) == [1, 1, 8]


def test_deepsea_sample_loads_and_chromatin_metrics_follow_the_groups():
    examples = read_deepsea_csv(str(sample("deepsea_test_100.csv.gz")))
    assert len(examples) == 100
    # GENA-LM's extended-context DeepSEA data: 8 kb around the original 1 kb sequence.
    assert all(len(e.seq) == 8000 and e.label.shape == (919,) for e in examples)
    cropped = read_deepsea_csv(str(sample("deepsea_test_100.csv.gz")), crop=1000)
    assert all(c.seq == e.seq[3500:4500] for c, e in zip(cropped, examples))
    task = ChromatinTask(ChromatinTaskConfig(str(sample("deepsea_test_100.csv.gz"))))
    assert len(task.labels) == 919 and task.labels[124] == "dhs_125" and task.labels[125] == "tf_126"
    assert task.labels[815] == "histone_816"
    splits = task.build()
    assert {k: len(v) for k, v in splits.items()} == {"train": 80, "valid": 10, "test": 10}
    y = np.array([e.label for e in examples])
    scores = np.random.default_rng(0).random(y.shape) + 0.3 * y
    result = task.metrics(examples, list(scores))
    aucs = []
    for first, last in ((0, 125), (125, 815), (815, 919)):
        group = [roc_auc_score(y[:, c], scores[:, c]) for c in range(first, last) if len(set(y[:, c])) == 2]
        aucs.append(np.median(group))
    assert result["auc_median_dhs"] == pytest.approx(aucs[0])
    assert result["auc_median_tf"] == pytest.approx(aucs[1])
    assert result["auc_median_histone"] == pytest.approx(aucs[2])
    assert result["auc_mean_of_medians"] == pytest.approx(np.mean(aucs))
    # Another label count has no DeepSEA groups: one median over the labels with both classes.
    other = chromatin_metrics(np.array([[0, 1, 1], [1, 1, 0], [0, 1, 1]]), np.array([[.1, .5, .9], [.8, .5, .2],
                                                                                   [.3, .5, .7]]))
    assert other == {"auc_median_all": 1.0, "n_labels_scored": 2.0}


def test_deepsea_errors_name_file_and_line(tmp_path):
    path = tmp_path / "bad.csv.gz"
    good = "A" * 1000 + "," + ",".join(["0"] * 919)
    bad = "A" * 1000 + "," + ",".join(["0"] * 918 + ["2"])
    with gzip.open(path, "wt") as handle:
        handle.write(good + "\n" + bad + "\n")
    with pytest.raises(GenomeError, match=r"bad\.csv\.gz:2: column 920 is '2'"):
        read_deepsea_csv(str(path))


def test_deepstarr_sample_loads_with_targets_from_the_header():
    fasta = sample("deepstarr_test_10.fa")
    examples = read_deepstarr(str(fasta))
    assert len(examples) == 10 and all(len(e.seq) == 249 for e in examples)
    header, first_row = (sample("deepstarr_test_10_activity.txt").read_text().splitlines()[:2])
    columns = header.split("\t")
    values = first_row.split("\t")
    expected = [float(values[columns.index("Dev_log2_enrichment")]), float(values[columns.index("Hk_log2_enrichment")])]
    assert examples[0].label.tolist() == pytest.approx(expected)
    assert examples[0].meta["name"] == "chr2R_10574736_10574984_+_positive_peaks"
    task = EnhancerTask(EnhancerTaskConfig(str(fasta)))
    assert task.problem_type == "regression" and task.labels == ["Dev_log2_enrichment", "Hk_log2_enrichment"]
    assert sum(len(v) for v in task.build().values()) == 10
    y = np.array([e.label for e in examples], dtype=np.float64)
    predicted = y + np.random.default_rng(0).normal(0, 0.5, y.shape)
    result = task.metrics(examples, list(predicted))
    for k, name in enumerate(task.labels):
        assert result[f"pearson_{name}"] == pytest.approx(pearsonr(y[:, k], predicted[:, k])[0])


def test_deepstarr_row_count_mismatch_is_an_error(tmp_path):
    (tmp_path / "s.fa").write_text(">a\nACGT\n>b\nACGA\n")
    (tmp_path / "s_activity.txt").write_text("Dev_log2_enrichment\tHk_log2_enrichment\n1.0\t2.0\n")
    with pytest.raises(GenomeError, match="1 activity rows for 2 sequences"):
        read_deepstarr(str(tmp_path / "s.fa"))
    (tmp_path / "s_activity.txt").write_text("Dev_log2_enrichment\tHk_log2_enrichment\n1.0\t2.0\n1.0\tx\n")
    with pytest.raises(GenomeError, match=r"s_activity\.txt:3: a target value is not a number"):
        read_deepstarr(str(tmp_path / "s.fa"))


def test_random_split_and_make_task():
    splits = random_split(list(range(100)), 0.1, 0.2, seed=5)
    assert [len(splits[s]) for s in ("train", "valid", "test")] == [70, 10, 20]
    assert sorted(sum(splits.values(), [])) == list(range(100))
    assert random_split(list(range(100)), 0.1, 0.2, seed=5) == splits
    assert set(TASK_KINDS) == {"promoter", "splice", "splice_csv", "chromatin", "enhancer"}
    task = make_task("promoter", tss_bed="a.bed", fasta="b.fa", upstream=1000, downstream=999,
                     split={"test": ["chr20:1-1000000"], "gap": 20_000})
    assert task.config.width == 2000 and task.config.split.test == ("chr20:1-1000000",)
    seeded = make_task("chromatin", {"path": "x.csv.gz"}, seed=7)
    assert seeded.config.seed == 7 and make_task("chromatin", {"path": "x", "seed": 1}, seed=7).config.seed == 1
    with pytest.raises(ValueError, match=r"chromatin task: unknown key windows; known: .*n_labels"):
        make_task("chromatin", path="x", windows=3)
    with pytest.raises(ValueError, match=r"chromatin task: crop: expected int or None, got 'wide'"):
        make_task("chromatin", path="x", crop="wide")

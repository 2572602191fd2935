"""Memory that does not grow with the input: the variant scorer's window cache forgets windows a sorted VCF has
passed, and a scan makes its bins as it goes (a chromosome's bins are never held). The measured numbers (peak RSS
at 10k / 100k / 1M variants and 1 / 10 / 63 Mb scans) come from `python bench/bench_scale_out.py`."""
from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from kipoi_genalm.veff_scorers import WindowCache
from kipoi_genalm.veff_variants import Window


def _window(chrom: str, start: int, end: int) -> Window:
    return Window(chrom, start, end, "+")


def test_window_cache_charges_python_overhead_and_forgets_passed_windows():
    cache = WindowCache(max_bytes=10 * (WindowCache.ENTRY_OVERHEAD + 12))
    for start in range(0, 3000, 100):          # 30 windows of 3 floats: only 10 fit once overhead is charged
        window = _window("20", start, start + 300)
        cache.put(window.key, np.zeros(3, np.float32), 12, window)
    assert len(cache) == 10 and cache.nbytes == 10 * (WindowCache.ENTRY_OVERHEAD + 12)
    assert cache.get(_window("20", 2900, 3200).key) is not None and cache.get(_window("20", 0, 300).key) is None

    cache.forget_passed("20", 2600)            # windows ending at or before 2600 can hold no later record
    assert sorted(key[1] for key in cache._items) == [2400, 2500, 2600, 2700, 2800, 2900]
    other = _window("21", 0, 300)
    cache.put(other.key, np.zeros(3, np.float32), 12, other)
    cache.forget_passed("21", 10)              # a new contig: every window of the previous one goes
    assert list(cache._items) == [other.key]


def test_cache_lookup_splits_cached_from_missing_once_per_key():
    cache = WindowCache(1 << 20)
    kept = _window("20", 0, 100)
    cache.put(kept.key, "cached", 1, kept)
    found, missing = {}, {}
    for key, sequence in [(kept.key, "A"), (("20", 5, 105, "+"), "C"), (("20", 5, 105, "+"), "G")]:
        cache.lookup(key, sequence, found, missing)
    assert found == {kept.key: "cached"} and missing == {("20", 5, 105, "+"): "C"}


def _snv_vcf(path: Path, fasta: Path, count: int, stride: int) -> Path:
    from genalm_models.genome import Genome

    lines = ["##fileformat=VCFv4.2", "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO"]
    with Genome(fasta) as genome:
        contig = next(iter(genome.contig_lengths))
        block = genome.fetch(contig, 100_000, 100_000 + count * stride).upper()
    for index in range(count):
        ref = block[index * stride]
        if ref in "ACGT":
            lines.append(f"{contig}\t{100_001 + index * stride}\tv{index}\t{ref}\t{'CAGT'['ACGT'.index(ref)]}\t.\t.\t.")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_scoring_a_long_sorted_vcf_keeps_a_bounded_cache(tiny_zoo, tmp_path, chr20_fasta, monkeypatch):
    """The cache holds the windows near the frontier only: the same at 300 and at 900 records (before the fix it
    held one entry per record: 900)."""
    from kipoi_genalm import veff_run
    from kipoi_genalm.veff_run import ScoreVariantsOptions, run_score_variants

    sizes = []
    put = WindowCache.put

    def tracking_put(self, key, value, nbytes, window):
        put(self, key, value, nbytes, window)
        sizes.append(len(self))

    monkeypatch.setattr(WindowCache, "put", tracking_put)
    monkeypatch.setattr(veff_run, "LEFT_ALIGN_MARGIN", 2_000)
    peaks = []
    for count in (300, 900):
        sizes.clear()
        vcf = _snv_vcf(tmp_path / f"snv{count}.vcf", chr20_fasta, count, stride=40)
        result = run_score_variants(ScoreVariantsOptions(
            model=str(tiny_zoo["models"]["promoter"]), dl_args={"fasta_file": str(chr20_fasta)}, input_vcf=vcf,
            output_vcf=tmp_path / f"out{count}.vcf", chunk_size=50, progress=False))
        assert result.n_scored > 0.9 * count
        peaks.append(max(sizes))
    # 2,000 bp of margin / 40 bp per record + one chunk of 50 records (+ the windows the chunk's records reach)
    assert peaks[0] == peaks[1] <= 2_000 // 40 + 50 + 10


@pytest.mark.parametrize("mode", ["regions", "centred"])
def test_forgetting_passed_windows_changes_no_written_value(tiny_zoo, tmp_path, chr20_fasta, promoters_bed,
                                                              monkeypatch, mode):
    """Region mode (many records per window, windows spanning chunk borders) and centred mode (several records at
    one position across chunk borders): forgetting with no margin at all writes the same bytes and predicts the
    same reference windows as never forgetting."""
    from genalm_models.genome import Genome
    from kipoi_genalm import veff_run
    from kipoi_genalm.veff_run import ScoreVariantsOptions, run_score_variants

    tss = [int(line.split("\t")[1]) for line in Path(promoters_bed).read_text().splitlines()[:3]]
    lines = ["##fileformat=VCFv4.2", "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO"]
    with Genome(chr20_fasta) as genome:
        for site in tss:
            for pos in range(site - 400, site + 400, 37):
                ref = genome.fetch("chr20", pos, pos + 1).upper()
                alts = [b for b in "ACGT" if b != ref]
                copies = 2 if mode == "centred" else 1     # the same position twice: one window, two records
                lines += [f"chr20\t{pos + 1}\t.\t{ref}\t{alts[k]}\t.\t.\t." for k in range(copies)]
    vcf = tmp_path / "dense.vcf"
    vcf.write_text("\n".join(lines) + "\n")
    # fixed threads: the automatic count follows the machine's load, and a GEMM on 1 or 2 threads differs in its
    # last bits (README, sharded runs) - which would show here as a difference that forgetting did not make
    monkeypatch.setenv("GENALM_THREADS", "1")
    results = {}
    for margin in (0, 10**9):
        monkeypatch.setattr(veff_run, "LEFT_ALIGN_MARGIN", margin)
        out = tmp_path / f"out_{mode}_{margin}.vcf"
        results[margin] = run_score_variants(ScoreVariantsOptions(
            model=str(tiny_zoo["models"]["promoter"]), dl_args={"fasta_file": str(chr20_fasta)}, input_vcf=vcf,
            output_vcf=out, chunk_size=5, progress=False,
            restriction_bed=str(promoters_bed) if mode == "regions" else None))
    assert results[0].n_scored == results[10**9].n_scored > 20
    assert results[0].ref_windows_predicted == results[10**9].ref_windows_predicted
    assert (tmp_path / f"out_{mode}_0.vcf").read_bytes() == (tmp_path / f"out_{mode}_{10**9}.vcf").read_bytes()


def test_scan_makes_bins_as_it_goes(tiny_zoo, chr20_fasta, monkeypatch):
    """The first values of a whole-chromosome scan come after one model call of one chunk, with Python memory of
    that chunk only (a list of the ~1.8 million bins, as before, took > 150 MB)."""
    import tracemalloc

    from genalm_models.genome import Genome
    from kipoi_genalm import scan
    from kipoi_genalm.adapter import FolderModel

    model = FolderModel(tiny_zoo["models"]["promoter"])
    calls = []
    predict = model.predict
    monkeypatch.setattr(model, "predict", lambda sequences: calls.append(len(sequences)) or predict(sequences))
    with Genome(chr20_fasta) as genome:
        contig, length = next(iter(genome.contig_lengths.items()))
        request = scan.ScanRequest(contig, 100_000, length - 100_000, step=1)   # ~1.8 million bins
        list(itertools.islice(scan.scan_values(model, genome, request), 1))   # imports and kernels first
        calls.clear()
        tracemalloc.start()
        try:
            first = list(itertools.islice(scan.scan_values(model, genome, request), 3))
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert [row[:2] for row in first] == [(100_000, 100_001), (100_001, 100_002), (100_002, 100_003)]
    assert calls == [scan.CHUNK_WINDOWS]
    assert peak < 30 * 2**20, f"{peak / 2**20:.0f} MB of Python objects for one chunk of a scan"


def test_scan_chunks_cover_the_region_exactly():
    from kipoi_genalm import scan, sequences

    spans = list(scan._spans(10, 1_013, 100))
    assert spans[0] == (10, 110) and spans[-1] == (1_010, 1_013) and len(spans) == 11
    chunks = list(sequences.chunked(iter(spans), 4))
    assert [len(c) for c in chunks] == [4, 4, 3] and list(itertools.chain(*chunks)) == spans


def test_batches_run_longest_first_with_the_same_grouping(tiny_zoo):
    """Longest batch first, so that each batch fits in what the previous one freed (no heap growth through a call);
    the grouping - and so every value - is what ascending order gave."""
    from genalm_models.predict import Encoded
    from kipoi_genalm.adapter import FolderModel

    predictor = FolderModel(tiny_zoo["models"]["promoter"]).predictor
    lengths = [5, 90, 17, 64, 33, 90, 2, 48, 71, 12] * 8
    encoded = [Encoded(list(range(n)), None) for n in lengths]
    batches = predictor.batches(encoded)
    longest = [max(lengths[i] for i in batch) for batch in batches]
    assert longest == sorted(longest, reverse=True) and len(batches) > 2
    assert sorted(i for batch in batches for i in batch) == list(range(len(lengths)))
    ascending = sorted(range(len(lengths)), key=lambda i: lengths[i])
    assert [i for batch in reversed(batches) for i in batch] == ascending


RELEASE_PROBE = """
import resource
from genalm_models.inference import keep_freed_memory, release_freed_memory

def rss_mb():
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * resource.getpagesize() / 2**20

assert keep_freed_memory("test")            # freed blocks below 1 GiB stay in the process
blocks = [bytearray(8 * 2**20) for _ in range(40)]
held = rss_mb()
del blocks
kept = rss_mb()
assert release_freed_memory()
print(held, kept, rss_mb())
"""


def test_release_freed_memory_gives_kept_memory_back():
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", RELEASE_PROBE], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    held, kept, released = map(float, result.stdout.split())
    assert kept > held - 100          # 320 MB freed, still resident (keep_freed_memory)
    assert released < kept - 250      # and handed back


KERNEL_CACHE_PROBE = """
import ctypes, json, sys
from genalm_models.process_settings import apply_process_settings

settings = apply_process_settings("test", huge_pages=False, keep_freed_memory=False)   # before torch builds a kernel
import torch
from genalm_models.inference import FastLinear, onednn_usable

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                     "fsmblks", "uordblks", "fordblks", "keepcost")]
libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MallInfo2
assert onednn_usable(torch.device("cpu"), torch.float32), "this test needs oneDNN (the fast path's packed GEMMs)"
linear = FastLinear(torch.randn(512, 128), torch.zeros(512), activation="gelu", packed=True)
in_use = {}
with torch.inference_mode():
    for rows in range(1, 601):             # 600 GEMM shapes, as 600 batches of different token counts
        linear(torch.randn(rows, 128))
        if rows in (300, 600):
            in_use[rows] = libc.mallinfo2().uordblks
print(json.dumps({"settings": settings, "growth_mb": (in_use[600] - in_use[300]) / 2**20}))
"""


def _clean_env(**values: str) -> dict:
    import os

    env = {key: value for key, value in os.environ.items() if key not in (
        "ONEDNN_PRIMITIVE_CACHE_CAPACITY", "LRU_CACHE_CAPACITY", "DNNL_PRIMITIVE_CACHE_CAPACITY", "ONEDNN_VERBOSE")}
    env.update(values)
    return env


@pytest.mark.parametrize("user_value", [None, "1024"])
def test_kernel_caches_are_bounded_unless_the_user_says_otherwise(tmp_path, user_value):
    """Every new GEMM shape left a compiled oneDNN kernel (~0.6 MB) in two 1,024-entry caches: a scan's resident
    set grew with its length. `apply_process_settings` caps both (process_settings.py); a user's value is kept."""
    import json
    import subprocess
    import sys

    env = _clean_env(**({"ONEDNN_PRIMITIVE_CACHE_CAPACITY": user_value, "LRU_CACHE_CAPACITY": user_value}
                        if user_value else {}))
    result = subprocess.run([sys.executable, "-c", KERNEL_CACHE_PROBE], capture_output=True, text=True, timeout=300,
                            env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    if user_value is None:
        assert report["settings"] == {"bounded_kernel_caches": True}
        assert report["growth_mb"] < 20, report       # full at 128 entries: the last 300 shapes add nothing
    else:
        assert report["settings"] == {"bounded_kernel_caches": False}
        assert report["growth_mb"] > 100, report      # 300 new shapes, 300 more kept kernels: what the bound stops


REPEAT_PROBE = """
import random, sys
from genalm_models.process_settings import apply_process_settings

apply_process_settings("test", huge_pages=False, keep_freed_memory=False)
import torch
from kipoi_genalm.adapter import FolderModel, PredictOptions
from kipoi_genalm.cli import GROUP_DIR

precision = "bf16" if torch.ops.mkldnn._is_mkldnn_bf16_supported() else "fp32"
model = FolderModel(GROUP_DIR / "promoter_300", PredictOptions(precision=precision, device="cpu"))
random.seed(1)
sequences = ["".join(random.choice("ACGT") for _ in range(300)) for _ in range(8)]
for _ in range(int(sys.argv[1])):
    model.predict(sequences)
"""


def test_the_bound_leaves_room_for_a_whole_forward_pass(tmp_path):
    """One forward pass uses ~25 kernels in bf16 (blocked attention included): a cache smaller than that rebuilds
    them on every call (2x slower). With the bound, calls at one shape after the first build no kernel (oneDNN's
    verbose log: `create:cache_miss` lines), while a 16-entry cache rebuilds them on every call."""
    import subprocess
    import sys

    def misses(calls: int, **env: str) -> int:
        # one fixed thread count: the automatic policy follows the machine's load, and oneDNN builds a kernel per
        # thread count too, which would count as misses on a busy machine
        result = subprocess.run([sys.executable, "-c", REPEAT_PROBE, str(calls)], capture_output=True, text=True,
                                timeout=300, env=_clean_env(ONEDNN_VERBOSE="2", GENALM_THREADS="2", **env),
                                cwd=tmp_path)
        assert result.returncode == 0, result.stderr[-2000:]
        return result.stdout.count("create:cache_miss")

    first = misses(1)
    assert first > 0 and misses(3) == first
    small = {"ONEDNN_PRIMITIVE_CACHE_CAPACITY": "16", "LRU_CACHE_CAPACITY": "16"}
    assert misses(3, **small) > misses(1, **small)


PREDICTOR_PROBE = """
import json, os, sys
from genalm_models.config import GenaConfig
from genalm_models.modeling_gena import GenaForSequenceClassification
from genalm_models.predict import Predictor
from genalm_models.tokenizer import GenaTokenizer

tokenizer = GenaTokenizer.from_pretrained(sys.argv[1])
config = GenaConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                    intermediate_size=64, max_position_embeddings=128, num_labels=2).validate()
before = [os.environ.get("LRU_CACHE_CAPACITY"), os.environ.get("ONEDNN_PRIMITIVE_CACHE_CAPACITY")]
predictor = Predictor(GenaForSequenceClassification(config), tokenizer, device="cpu")
after = [os.environ.get("LRU_CACHE_CAPACITY"), os.environ.get("ONEDNN_PRIMITIVE_CACHE_CAPACITY")]
print(json.dumps({"before": before, "after": after}))
"""


def test_a_cpu_predictor_bounds_the_kernel_caches_for_python_users(tiny_tokenizer_dir, tmp_path):
    """Python users who never go through an entry point get the bound from the Predictor (before it packs the
    weights), as they get the freed-memory setting."""
    import json
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", PREDICTOR_PROBE, str(tiny_tokenizer_dir)], capture_output=True,
                            text=True, timeout=300, env=_clean_env(), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {"before": [None, None], "after": ["128", "128"]}


@pytest.mark.parametrize("value", ["0", "abc"])
def test_an_lru_cache_capacity_that_would_crash_ideep_is_refused(tmp_path, value):
    """PyTorch's ideep layer segfaults on LRU_CACHE_CAPACITY=0 or a non-number (a scan died with exit code 139 after a
    warning): refused with one line naming the variable, before any model runs."""
    import subprocess
    import sys

    code = ("from genalm_models.process_settings import apply_process_settings\n"
            "apply_process_settings('test', huge_pages=False, keep_freed_memory=False)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            env=_clean_env(LRU_CACHE_CAPACITY=value), cwd=tmp_path)
    assert result.returncode == 1
    assert f"ValueError: LRU_CACHE_CAPACITY='{value}': expected a whole number >= 1" in result.stderr

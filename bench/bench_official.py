"""The published GENA-LM heads at their official sizes on this machine: intervals/s and variants/s, fast path vs
plain modules, fp32 and bf16, through the product's own path for official models.

    python bench/bench_official.py                                  # the full run (<= 10 min on 2 cores)
    python bench/bench_official.py --sizes base --n-intervals 2 --n-variants 2    # a smoke run

No network: random-weight official-format checkpoints (config.json with the official keys, pytorch_model.bin with
the official parameter names, the t2t tokenizer; tests/hub_cache.py) at the official shapes are laid out in a
temporary Hugging Face cache exactly as `snapshot_download` leaves a hub branch (blobs, snapshots, refs), one cache
per model. Each model is then measured in a fresh process with HF_HUB_OFFLINE=1 and HF_HUB_CACHE on its cache,
through the real path: `FolderModel(official.find(NAME).folder, PredictOptions(precision=...))` (genalm.json ->
`genalm_models.hub.fetch` -> the checkpoint loader) and `kipoi_genalm.veff.score_variants`.

Models (shapes from the official configs, `../shared/data/gena_lm_official/configs`):
  promoters_2000  GENA-LM/bert-large-t2t/promoters_2000: sequence classification, 2 labels, input -1000..+999 of
                  the TSS, strand-aware. The official bert-base-t2t has no promoters_2000 branch, so the base row
                  puts a base-size checkpoint under the large repository's branch name in its own cache (same
                  Kipoi name, same folder, same code path; only the weights' shape differs).
  spliceai        GENA-LM/bert-base-t2t/spliceai (base), GENA-LM/bert-large-t2t/spliceai (large): token
                  classification, 3 labels, multi_label_classification, 15 kb inputs (5 kb target + 5 kb each
                  side) in the official SpliceAI layout (512 tokens).
  base  = 12 layers, hidden 768, 12 heads, FFN 3072, layer_norm_eps 1e-12, pre-LN (no last LN);
  large = 24 layers, hidden 1024, 16 heads, FFN 4096, layer_norm_eps 1e-5, pre-LN + last LN; vocab 32000, 512
  positions.

Paths, per precision: "fast" is the default `Predictor` (the fused inference copy of genalm_models/inference.py),
as every prediction runs; "plain" is the same loaded model through `Predictor(..., optimize=False)` - the plain
torch modules (sdpa attention), under bf16 autocast for bf16: the reference tests/test_inference.py and
bench_inference.py hold the fast path to. Both share the FolderModel's loaded weights, tokenizer and batching.
"official way" (fp32 only, intervals only) is the published code's way of running the head (`official_pipeline`):
the explicit attention matrix, and for promoters_2000 the official fine-tuning pipeline's padding of every window to
512 tokens; its outputs are checked against plain fp32 (same model, so ~1e-7). The issue's goal, ">= 3x the
official eager fp32 end to end", is the "fast vs official way" column.

Inputs (real chr20, GRCh37; never chrX): `--n-intervals` TSS windows of EPDnew chr20 promoters / 15 kb windows
around annotated donor and acceptor sites of the SpliceAI canonical table, seeded random picks whose windows hold
no N and do not overlap. Variants: `--variants-per-window` random SNVs in each of the first windows until
`--n-variants` (anywhere in the 2 kb promoter window; within 500 bp of the splice site), written as a VCF and
scored by `score_variants` in region mode over those windows (`--veff-mode regions`: one reference window per
region + one ALT window per SNV) or with a window centred on each SNV (`--veff-mode centred`).

Timing: intervals/s = intervals / wall time of `FolderModel.predict` on the pre-fetched sequences (tokenization,
length-aware batching, forward, outputs; FASTA reading not timed); variants/s = scored SNVs / `score_variants`
wall time (VCF reading and writing included; model loading not). Each path is warmed up first (predict on 2
sequences, score_variants on 1 SNV); the paths of a model alternate within each of `--repeats` rounds (the best
round counts). Peak RSS: the worker process's VmHWM (loading + all four paths of its model).
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import json
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # tests/hub_cache.py: the hub layout the tests use too

SHAPES = {
    "base": dict(num_hidden_layers=12, hidden_size=768, num_attention_heads=12, intermediate_size=3072,
                 layer_norm_eps=1e-12, pre_layer_norm=True, last_layer_norm=False),
    "large": dict(num_hidden_layers=24, hidden_size=1024, num_attention_heads=16, intermediate_size=4096,
                  layer_norm_eps=1e-5, pre_layer_norm=True, last_layer_norm=True),
    # not an official size: the script's plumbing in seconds (unit test, smoke runs)
    "tiny": dict(num_hidden_layers=2, hidden_size=32, num_attention_heads=2, intermediate_size=64,
                 layer_norm_eps=1e-12, pre_layer_norm=True, last_layer_norm=False),
}
OFFICIAL_SHAPE = dict(vocab_size=32000, max_position_embeddings=512)
TASKS = {  # task -> the official Kipoi name run at each size
    "promoters_2000": {"base": "GENA-LM/bert-large-t2t/promoters_2000",  # base-size weights: see the docstring
                       "large": "GENA-LM/bert-large-t2t/promoters_2000"},
    "spliceai": {"base": "GENA-LM/bert-base-t2t/spliceai", "large": "GENA-LM/bert-large-t2t/spliceai"},
}
SPLICE_SNV_SPAN = 500   # SNVs within this many bp of the splice site (inside the part the official layout reads)
PATHS = [("fp32", "plain"), ("fp32", "fast"), ("bf16", "plain"), ("bf16", "fast")]


@dataclasses.dataclass(frozen=True)
class Case:
    task: str
    size: str

    @property
    def name(self) -> str:
        return TASKS[self.task]["base" if self.size == "tiny" else self.size]

    @property
    def label(self) -> str:
        return f"{self.task}-{self.size}"


# ---------------------------------------------------------------------------------------------------------------
# Checkpoints in a Hugging Face cache
# ---------------------------------------------------------------------------------------------------------------
def build_cache(case: Case, root: Path, seed: int = 0) -> Path:
    """A Hugging Face cache holding `case.name`'s hub branch with a random checkpoint of `case.size`'s shape."""
    from hub_cache import put_in_hub_cache, write_official_checkpoint
    from kipoi_genalm import official

    model = official.find(case.name)
    cache, made = root / case.label / "hub", root / case.label / "made"
    config = {**OFFICIAL_SHAPE, **model.config_defaults, **SHAPES[case.size]}
    write_official_checkpoint(made, model.head, seed=seed, **config)
    put_in_hub_cache(cache, model.repo_id, model.revision, made)
    shutil.rmtree(made)
    return cache


# ---------------------------------------------------------------------------------------------------------------
# Real inputs: windows around TSSs / splice sites, SNVs in them
# ---------------------------------------------------------------------------------------------------------------
def _not_x(chrom: str) -> bool:
    from genalm_models.tasks.splits import is_reserved_chromosome

    return not is_reserved_chromosome(chrom)


def candidate_sites(task: str, tss_bed: str | os.PathLike, splice_table: str | os.PathLike) -> list:
    """1-bp stranded Intervals: EPDnew TSSs, or the donors and acceptors of the canonical transcripts."""
    from genalm_models.genome import Interval, read_bed
    from genalm_models.tasks.splice import read_splice_table

    if task == "promoters_2000":
        return [Interval(i.chrom, i.start, i.end, name=i.name, strand=i.strand)
                for i in read_bed(tss_bed) if _not_x(i.chrom)]
    sites = []
    for t in read_splice_table(str(splice_table)):
        if not _not_x(t.chrom):
            continue
        for kind, positions in (("donor", t.donors), ("acceptor", t.acceptors)):
            sites += [Interval(t.chrom, p, p + 1, name=f"{t.name}_{kind}_{p + 1}", strand=t.strand)
                      for p in positions]
    return sites


def choose_windows(sites: list, window, genome, n: int, seed: int) -> list:
    """Up to `n` sites (seeded random order) whose model windows (flanks included) hold no N, lie on the
    chromosome and overlap no other chosen window; as (site, fetched region)."""
    from kipoi_genalm.sequences import input_region, target_region

    order = list(sites)
    random.Random(seed).shuffle(order)
    chosen: list = []
    for site in order:
        if len(chosen) == n:
            break
        fetched = input_region(target_region(site, window), window)
        name = genome.resolve(site.chrom)
        if fetched.start < 0 or fetched.end > genome.contig_lengths[name]:
            continue
        if any(fetched.chrom == f.chrom and fetched.start < f.end and f.start < fetched.end for _, f in chosen):
            continue
        if "N" in genome.fetch(name, fetched.start, fetched.end).upper():
            continue
        chosen.append((site, fetched))
    return chosen


def write_bed(path: Path, sites: list) -> None:
    path.write_text("".join(f"{s.chrom}\t{s.start}\t{s.end}\t{s.name}\t0\t{s.strand}\n" for s in sites))


def write_snv_vcf(path: Path, chosen: list, task: str, window, genome, n_variants: int, per_window: int,
                  seed: int) -> list:
    """`per_window` random SNVs in each chosen window until `n_variants`; returns the sites used as regions."""
    from kipoi_genalm.sequences import target_region

    rng = random.Random(seed + 1)
    records, used = [], []
    for site, _ in chosen:
        if len(records) >= n_variants:
            break
        region = target_region(site, window)
        if task == "spliceai":
            lo, hi = site.start - SPLICE_SNV_SPAN, site.start + SPLICE_SNV_SPAN + 1
        else:
            lo, hi = region.start, region.end
        name = genome.resolve(site.chrom)
        take = min(per_window, n_variants - len(records))
        for pos in sorted(rng.sample(range(lo, hi), take)):
            ref = genome.fetch(name, pos, pos + 1).upper()
            alt = rng.choice([b for b in "ACGT" if b != ref])
            records.append((site.chrom, pos + 1, f"{site.name}_{pos + 1}_{ref}>{alt}", ref, alt))
        used.append(site)
    chroms = {r[0] for r in records}
    header = ["##fileformat=VCFv4.2\n"]
    header += [f"##contig=<ID={c},length={genome.contig_lengths[genome.resolve(c)]}>\n" for c in sorted(chroms)]
    header += [f"##comment=random SNVs in real {task} windows; made by bench/bench_official.py\n",
               "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"]
    records.sort(key=lambda r: (r[0], r[1]))
    path.write_text("".join(header) + "".join(f"{c}\t{p}\t{i}\t{r}\t{a}\t.\t.\t.\n" for c, p, i, r, a in records))
    return used


def make_inputs(case: Case, work: Path, fasta: str, tss_bed: str, splice_table: str, n_intervals: int,
                n_variants: int, per_window: int, seed: int) -> dict:
    """intervals.bed (n windows), regions.bed (the windows holding SNVs) and snvs.vcf for one task."""
    from genalm_models.genome import Genome
    from kipoi_genalm import official

    window = official.find(case.name).window
    folder = work / case.task
    folder.mkdir(parents=True, exist_ok=True)
    with Genome(fasta) as genome:
        wanted = max(n_intervals, -(-n_variants // per_window))
        chosen = choose_windows(candidate_sites(case.task, tss_bed, splice_table), window, genome, wanted, seed)
        if len(chosen) < wanted:
            raise SystemExit(f"{case.task}: only {len(chosen)} usable windows for {wanted} wanted")
        write_bed(folder / "intervals.bed", [s for s, _ in chosen[:n_intervals]])
        used = write_snv_vcf(folder / "snvs.vcf", chosen, case.task, window, genome, n_variants, per_window, seed)
        write_bed(folder / "regions.bed", used)
    return {"intervals": str(folder / "intervals.bed"), "regions": str(folder / "regions.bed"),
            "vcf": str(folder / "snvs.vcf")}


# ---------------------------------------------------------------------------------------------------------------
# Measuring one model (in the worker process; the unit test calls it in-process)
# ---------------------------------------------------------------------------------------------------------------
def path_models(folder_model) -> dict:
    """{(precision, path): a FolderModel} sharing `folder_model`'s loaded weights, tokenizer and options: "fast"
    through FolderModel's own predictor (configure), "plain" through `Predictor(..., optimize=False)` built with
    the fast predictor's own settings."""
    from genalm_models.predict import Predictor

    out = {}
    for precision in ("fp32", "bf16"):
        fast = copy.copy(folder_model)
        if fast.options.precision != precision:
            fast.configure(precision=precision)
        plain = copy.copy(fast)
        p = fast.predictor
        plain.predictor = Predictor(folder_model.model, folder_model.tokenizer, device=p.device, precision=precision,
                                    batch_size=p.batch_size, max_batch_tokens=p.max_batch_tokens,
                                    progress=p.progress, layout=p.layout, flank=p.flank, optimize=False)
        out[precision, "fast"], out[precision, "plain"] = fast, plain
    return out


def official_pipeline(folder_model, batch_size: int):
    """The published code's way of running a head, as a function of sequences -> outputs (fp32, timed from the
    sequences like the other paths):
    - attention with the explicit score matrix, fp32 (`set_attention_implementation(..., "eager")`: the published
      `modeling_bert.py`'s computation; the tests hold our modules to the official code to 7e-6);
    - sequence heads (promoters_2000): the official fine-tuning data pipeline
      (`downstream_tasks/promoter_prediction/dataset.py`, `EPDnewPromoterDataset.get_features` with its defaults
      `max_seq_len=512, pad_to_max=True, truncate='right'`): every window is `[CLS] tokens [SEP]` padded to 512,
      batches of `batch_size` in input order;
    - the SpliceAI layout already fills all 512 positions (`Predictor`'s spliceai layout is the official one), so
      there the published way differs only in the attention: the plain Predictor on the eager copy.
    Outputs go through the head's own activation (`Predictor.outputs`), so they compare with the other paths."""
    import numpy as np
    import torch

    from genalm_models.modeling_gena import set_attention_implementation
    from genalm_models.predict import Predictor

    source = folder_model.predictor
    eager = set_attention_implementation(copy.deepcopy(folder_model.model), "eager").eval()
    plain = Predictor(eager, folder_model.tokenizer, device=source.device, precision="fp32",
                      batch_size=batch_size, max_batch_tokens=source.max_batch_tokens, progress=False,
                      layout=source.layout, flank=source.flank, optimize=False)
    if source.layout == "spliceai" or source.token_level:
        official = copy.copy(folder_model)
        official.predictor = plain
        return official.predict
    tokenizer, width = folder_model.tokenizer, eager.config.max_position_embeddings

    def predict(sequences):
        outputs = []
        # the CPU thread policy of the other paths (cpu_threads.py), so that only the published way differs
        with (plain.threads.scope() if plain.threads is not None else contextlib.nullcontext()):
            for start in range(0, len(sequences), batch_size):
                rows = tokenizer.encode_batch(list(sequences[start: start + batch_size]), add_special_tokens=False)
                ids = torch.full((len(rows), width), tokenizer.pad_id, dtype=torch.long)
                mask = torch.zeros((len(rows), width), dtype=torch.long)
                for i, row in enumerate(rows):
                    tokens = [tokenizer.cls_id, *row[: width - 2], tokenizer.sep_id]
                    ids[i, : len(tokens)] = torch.tensor(tokens)
                    mask[i, : len(tokens)] = 1
                plain.before_batch()
                with torch.inference_mode():
                    logits = eager(ids.to(plain.device), mask.to(plain.device)).logits
                outputs.extend(plain.outputs(logits).cpu().numpy())
                predict.input_widths.add(ids.shape[1])
        return np.stack(outputs)[:, folder_model.info.output_indices].astype(np.float32)   # as FolderModel.predict
    predict.input_widths = set()   # what the model was given: 512 tokens per window (checked by the unit test)
    return predict


def _max_abs_diff(a, b) -> float:
    import numpy as np

    if isinstance(a, dict):
        return max(_max_abs_diff(a[k], b[k]) for k in a)
    diff = np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64))
    return float(np.nanmax(diff)) if np.isfinite(diff).any() else float("nan")


def measure_case(name: str, fasta: str, intervals_bed: str, regions_bed: str, vcf: str, work: str,
                 veff_mode: str = "regions", repeats: int = 1, batch_size: int = 32) -> dict:
    """Load the official model `name` (HF_HUB_OFFLINE / HF_HUB_CACHE as set by the caller) and time its four
    paths, and the published way (`official_pipeline`, intervals only). Returns {"rows": [{precision, path,
    intervals, intervals_s, variants, variants_scored, variants_s, max_abs_diff_vs_plain}], "official":
    {intervals, intervals_s, input_widths (tokens per padded input; sequence heads), max_abs_diff_vs_plain_fp32},
    "load_s", "tokens_per_input", "info"}."""
    from kipoi_genalm import official
    from kipoi_genalm.adapter import FolderModel, PredictOptions
    from kipoi_genalm.sequences import IntervalSequences
    from kipoi_genalm.veff import score_variants

    t0 = time.perf_counter()
    loaded = FolderModel(official.find(name).folder, PredictOptions(precision="fp32", batch_size=batch_size))
    load_s = time.perf_counter() - t0
    models = path_models(loaded)
    data = IntervalSequences(intervals_bed, fasta, loaded.info.window)
    sequences = [data[i].sequence for i in range(len(data))]
    data.close()
    predictor = loaded.predictor
    if predictor.layout == "spliceai":
        tokens = float(predictor.config.max_position_embeddings)
    else:
        tokens = sum(len(e.ids) + 2 for e in predictor.encode(sequences, with_offsets=False)) / len(sequences)

    work_dir = Path(work)
    work_dir.mkdir(parents=True, exist_ok=True)
    lines = Path(vcf).read_text().splitlines(keepends=True)
    warm_vcf = work_dir / "warmup.vcf"
    warm_vcf.write_text("".join(line for line in lines if line.startswith("#")) +
                        next(line for line in lines if not line.startswith("#")))
    common = {"dl_args": {"fasta_file": str(fasta)}, "progress": False,
              "restriction_bed": regions_bed if veff_mode == "regions" else None}
    for model in models.values():  # warm-up: oneDNN kernels, allocator, tokenizer, the scorer's imports
        model.predict(sequences[:2])
        score_variants(model, input_vcf=warm_vcf, output_vcf=work_dir / "warmup.scored.vcf", **common)
    official_predict = official_pipeline(loaded, batch_size)
    official_predict(sequences[:2])
    outputs, seconds = {}, {key: [float("inf"), float("inf")] for key in models}
    official_s = float("inf")
    results = {}
    for _ in range(repeats):
        start = time.perf_counter()
        official_outputs = official_predict(sequences)
        official_s = min(official_s, time.perf_counter() - start)
        for key, model in models.items():
            start = time.perf_counter()
            outputs[key] = model.predict(sequences)
            seconds[key][0] = min(seconds[key][0], time.perf_counter() - start)
        for key, model in models.items():
            result = score_variants(model, input_vcf=vcf, output_vcf=work_dir / f"scored.{key[0]}.{key[1]}.vcf",
                                    **common)
            if result.n_skipped:
                raise RuntimeError(f"{name}: score_variants skipped {dict(result.skipped)}")
            seconds[key][1] = min(seconds[key][1], result.seconds)
            results[key] = result
    rows = []
    for (precision, path), model in models.items():
        rows.append({"precision": precision, "path": path, "intervals": len(sequences),
                     "intervals_s": seconds[precision, path][0], "variants": results[precision, path].n_records,
                     "variants_scored": results[precision, path].n_scored,
                     "ref_windows": results[precision, path].ref_windows_predicted,
                     "alt_sequences": results[precision, path].alt_sequences_predicted,
                     "variants_s": seconds[precision, path][1],
                     "max_abs_diff_vs_plain": _max_abs_diff(outputs[precision, path], outputs[precision, "plain"])})
    config = predictor.config
    official = {"intervals": len(sequences), "intervals_s": official_s,
                "input_widths": sorted(getattr(official_predict, "input_widths", ())),
                "max_abs_diff_vs_plain_fp32": _max_abs_diff(official_outputs, outputs["fp32", "plain"])}
    return {"rows": rows, "official": official, "load_s": load_s, "tokens_per_input": tokens,
            "info": {"name": loaded.info.name, "revision": loaded.info.version, "kind": loaded.info.kind,
                     "window": loaded.info.window.describe(), "layout": predictor.layout,
                     "shape": f"{config.num_hidden_layers} x {config.hidden_size}",
                     "weights_file": str(loaded.hub.folder) if loaded.hub is not None else None,
                     "device": str(predictor.device)}}


def worker(spec: dict) -> None:
    """`--worker JSON`: measure one model in this fresh process, print the result (and the peak RSS) as JSON."""
    from bench.peak_memory import status_kb

    out = measure_case(**spec)
    out["peak_rss_gb"] = status_kb("VmHWM") / 2**20
    print(json.dumps(out))


# ---------------------------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------------------------
def _rate(n: int, seconds: float) -> float:
    return n / seconds if seconds > 0 else float("nan")


def table(measured: list[tuple[Case, dict]]) -> str:
    lines = ["| model | size | precision | intervals/s official way (fp32) | intervals/s plain | intervals/s fast | "
             "fast/plain | fast vs plain fp32 | **fast vs official way** | variants/s plain | variants/s fast | "
             "fast/plain | max abs diff fast-plain |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for case, out in measured:
        rows = {(r["precision"], r["path"]): r for r in out["rows"]}
        ref = _rate(rows["fp32", "plain"]["intervals"], rows["fp32", "plain"]["intervals_s"])
        official = _rate(out["official"]["intervals"], out["official"]["intervals_s"])
        for precision in ("fp32", "bf16"):
            plain, fast = rows[precision, "plain"], rows[precision, "fast"]
            ip, if_ = _rate(plain["intervals"], plain["intervals_s"]), _rate(fast["intervals"], fast["intervals_s"])
            vp = _rate(plain["variants_scored"], plain["variants_s"])
            vf = _rate(fast["variants_scored"], fast["variants_s"])
            lines.append(f"| {case.task} | {case.size} | {precision} | {official:.2f} | {ip:.2f} | {if_:.2f} | "
                         f"{if_ / ip:.2f}x | {if_ / ref:.2f}x | **{if_ / official:.2f}x** | {vp:.2f} | {vf:.2f} | "
                         f"{vf / vp:.2f}x | "
                         f"{fast['max_abs_diff_vs_plain']:.1e} |")
    return "\n".join(lines)


def model_table(measured: list[tuple[Case, dict]]) -> str:
    lines = ["| model | size | Kipoi name (hub branch) | layers x hidden | input | tokens/input | intervals | "
             "SNVs scored (ref windows + ALT windows per path) | load s | peak RSS GB |",
             "|---|---|---|---|---|---:|---:|---|---:|---:|"]
    for case, out in measured:
        info, row = out["info"], out["rows"][0]
        lines.append(f"| {case.task} | {case.size} | {info['name']} ({info['revision']}) | {info['shape']} | "
                     f"{info['window']} | {out['tokens_per_input']:.0f} | {row['intervals']} | "
                     f"{row['variants_scored']} ({row['ref_windows']} + {row['alt_sequences']}) | "
                     f"{out['load_s']:.1f} | {out['peak_rss_gb']:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[tuple[Case, dict]]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fasta", default="../shared/data/genome/GRCh37_chr20.fa.gz")
    parser.add_argument("--tss-bed", default="../shared/data/promoters/epdnew_hs006_GRCh37_chr20_tss.bed")
    parser.add_argument("--splice-table", default="../shared/data/splice/spliceai_canonical_GRCh37_chr20.txt.gz")
    parser.add_argument("--tasks", nargs="+", choices=sorted(TASKS), default=["promoters_2000", "spliceai"])
    parser.add_argument("--sizes", nargs="+", choices=sorted(SHAPES), default=["base", "large"],
                        help="official sizes; tiny (2 x 32, not official) runs the plumbing in seconds")
    parser.add_argument("--n-intervals", type=int, default=16, help="windows timed through FolderModel.predict")
    parser.add_argument("--n-variants", type=int, default=16, help="SNVs scored through score_variants")
    parser.add_argument("--variants-per-window", type=int, default=4)
    parser.add_argument("--veff-mode", choices=["regions", "centred"], default="regions")
    parser.add_argument("--repeats", type=int, default=1, help="rounds over the paths (best round counts)")
    parser.add_argument("--batch-size", type=int, default=32, help="sequences per model call (kipoi's default)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work-dir", default=None, help="keep caches and inputs here (default: a temporary folder)")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    from genalm_models.process_settings import apply_process_settings

    # here and in the workers, before any model is built (process_settings.py)
    apply_process_settings("bench_official", keep_freed_memory=False)
    if args.worker:
        worker(json.loads(args.worker))
        return []
    if min(args.n_intervals, args.n_variants, args.variants_per_window, args.repeats) < 1:
        parser.error("--n-intervals, --n-variants, --variants-per-window and --repeats must be >= 1")

    from bench.hardware import describe
    from bench.peak_memory import run_probe

    started = time.perf_counter()
    fasta = str(Path(args.fasta).resolve())
    temporary = None
    if args.work_dir:
        work = Path(args.work_dir).resolve()
        work.mkdir(parents=True, exist_ok=True)
    else:
        temporary = tempfile.TemporaryDirectory(prefix="bench_official_")
        work = Path(temporary.name)
    cases = [Case(task, size) for task in args.tasks for size in args.sizes]
    measured = []
    previous = {k: os.environ.get(k) for k in ("HF_HUB_OFFLINE", "HF_HUB_CACHE")}
    try:
        inputs = {task: make_inputs(Case(task, "base"), work / "inputs", fasta, args.tss_bed, args.splice_table,
                                    args.n_intervals, args.n_variants, args.variants_per_window, args.seed)
                  for task in args.tasks}
        for case in cases:
            t0 = time.perf_counter()
            cache = build_cache(case, work / "caches", seed=args.seed)
            built = time.perf_counter() - t0
            spec = {"name": case.name, "fasta": fasta, "intervals_bed": inputs[case.task]["intervals"],
                    "regions_bed": inputs[case.task]["regions"], "vcf": inputs[case.task]["vcf"],
                    "work": str(work / "scored" / case.label), "veff_mode": args.veff_mode,
                    "repeats": args.repeats, "batch_size": args.batch_size}
            os.environ.update(HF_HUB_OFFLINE="1", HF_HUB_CACHE=str(cache))
            t0 = time.perf_counter()
            out = run_probe([str(Path(__file__).resolve()), "--worker", json.dumps(spec)], fixed_malloc=False)
            print(f"{case.label}: checkpoint built in {built:.0f} s, measured in {time.perf_counter() - t0:.0f} s",
                  file=sys.stderr, flush=True)
            measured.append((case, out))
            shutil.rmtree(cache.parent, ignore_errors=True)  # large checkpoints: 1.3 GB each
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        if temporary is not None:
            temporary.cleanup()

    print(describe())
    print(f"official GENA-LM heads, random weights at the official shapes, from an offline Hugging Face cache; "
          f"real chr20 windows: {args.n_intervals} per model; {args.n_variants} SNVs "
          f"({args.variants_per_window} per window, {args.veff_mode} mode); kipoi batch {args.batch_size}; "
          f"best of {args.repeats} round(s); total {time.perf_counter() - started:.0f} s\n")
    print(model_table(measured) + "\n")
    print(table(measured))
    print("\nfast = default Predictor (genalm_models/inference.py); plain = Predictor(optimize=False), the plain "
          "modules (bf16: autocast). official way = the published code's way, fp32: explicit attention matrix, and "
          "for promoters_2000 the official data pipeline's padding of every window to 512 tokens "
          "(`official_pipeline`). fast vs plain fp32 / vs official way: the fast path's intervals/s over theirs. "
          "max abs diff: largest |fast - plain| of the interval outputs (probabilities) at the same precision; "
          "official way vs plain fp32: " + ", ".join(
              f"{case.label} {out['official']['max_abs_diff_vs_plain_fp32']:.1e}" for case, out in measured) + ".")
    return measured


if __name__ == "__main__":
    main()

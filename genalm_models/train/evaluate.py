"""`train evaluate`: metrics of any model folder on a task's held-out split, with bootstrap 95% CIs.

The predictions come from the shared predict path (`Predictor`), the metrics from the task module. With
`stability=True` (`--stability`), sequence models also get the stability report of `genalm_models.stability` on
the split's windows: |dP| when each window (read again from the task's FASTA) moves by 1-50 bp, and the
per-position profile of single-base changes. Any model folder works: a run, an exported Kipoi folder, an HF-format
folder, or an official checkpoint `hf://AIRI-Institute/gena-lm-bert-large-t2t@promoters_2000_run_1`.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from ..checkpoint import load_model, resolve_model_folder
from ..io_utils import write_text_atomic
from ..predict import Predictor
from ..tokenizer import GenaTokenizer
from .config import RunConfig, RunConfigError


def load_predictor(model_dir: str | Path, precision: str = "fp32", batch_size: int = 32) -> Predictor:
    model_dir = resolve_model_folder(model_dir)
    model, _ = load_model(model_dir, strict=True)
    return Predictor(model, GenaTokenizer.from_pretrained(model_dir), precision=precision, batch_size=batch_size)


def predict_split(model_dir: str | Path, cfg: RunConfig, split: str, precision: str = "fp32",
                  batch_size: int | None = None, predictor: Predictor | None = None):
    """(task, examples, predictions) for one split."""
    from ..tasks import make_task

    if cfg.data.task == "mlm":
        raise RunConfigError("evaluate needs a downstream task config (data.task), not mlm")
    task = make_task(cfg.data.task, cfg.data.args, seed=cfg.train.seed)
    examples = task.build()[split]
    predictor = predictor or load_predictor(model_dir, precision, batch_size or cfg.train.eval_batch_size)
    level = "token" if task.head == "token_classification" else "nucleotide"
    return task, examples, predictor.predict([e.seq for e in examples], level=level)


def stability_windows(examples, max_windows: int | None = None):
    """The examples that are genome windows (chrom/start/end/strand in meta: promoter TSS windows and genomic
    negatives; shuffled negatives are not), as `StabilityWindow`s; at most `max_windows`, TSS windows and others
    alternating, in split order."""
    from ..genome import Interval
    from ..stability import StabilityWindow

    kept = []
    for e in examples:
        meta = e.meta
        if not all(k in meta for k in ("chrom", "start", "end")):
            continue
        label = int(e.label) if np.ndim(e.label) == 0 else None
        kept.append(StabilityWindow(Interval(meta["chrom"], int(meta["start"]), int(meta["end"]),
                                             strand=meta.get("strand", "+") or "+"), name=example_id(e), label=label))
    if max_windows is not None and len(kept) > max_windows:
        positives = [w for w in kept if w.label == 1]
        others = [w for w in kept if w.label != 1]
        mixed = [w for pair in zip(positives, others) for w in pair]
        mixed += positives[len(others):] + others[len(positives):]
        kept = mixed[:max_windows]
    return kept


def evaluate_stability(predictor: Predictor, cfg: RunConfig, examples, shifts=None, max_windows: int | None = None,
                       per_bin: int = 2, per_edge: int = 5, seed: int = 0) -> dict:
    """`genalm_models.stability.stability_report` on the split's genome windows (see the module docstring)."""
    from ..genome import Genome
    from ..stability import DEFAULT_SHIFTS, stability_report

    if predictor.token_level:
        raise RunConfigError("--stability is for sequence models (one output per window), not token-level heads")
    fasta = next((cfg.data.args.get(k) for k in ("fasta", "fasta_file", "genome") if cfg.data.args.get(k)), None)
    windows = stability_windows(examples, max_windows)
    if fasta is None or not windows:
        raise RunConfigError("--stability needs windows of a reference genome: a task whose examples carry their "
                             "coordinates (promoter) and a FASTA in data.args")

    def predict(seqs):
        return np.asarray(predictor.predict(list(seqs)))

    with Genome(fasta) as genome:
        windows = [w for w in windows if w.interval.end <= genome.contig_lengths[genome.resolve(w.interval.chrom)]]
        report = stability_report(predict, genome, windows, shifts or DEFAULT_SHIFTS, per_bin, per_edge, seed)
    report["windows"] = (f"{len(windows)} held-out windows ({sum(w.label == 1 for w in windows)} TSS windows, "
                         f"{sum(w.label == 0 for w in windows)} negatives) of {fasta}")
    return report


def example_id(example) -> str:
    """A name that identifies an example across models with other windows: the TSS name for promoters, the
    positive's name + kind for their negatives, else coordinates."""
    meta = example.meta
    if meta.get("kind") == "promoter" and meta.get("name"):
        return str(meta["name"])
    if meta.get("positive"):
        return f"{meta['positive']}/{meta.get('kind', 'negative')}"
    return f"{meta.get('chrom')}:{meta.get('start')}-{meta.get('end')}{meta.get('strand', '')}"


def evaluate_folder(model_dir: str, config: str, overrides: list[str], split: str = "test", out: str | None = None,
                    bootstrap: int = 1000, precision: str = "fp32", stability: bool = False,
                    stability_shifts=None, stability_windows_max: int | None = None,
                    stability_per_bin: int = 2) -> dict:
    from ..tasks.metrics import bootstrap_task_metrics

    cfg = RunConfig.load(config, overrides)
    t0 = time.perf_counter()
    predictor = load_predictor(model_dir, precision, cfg.train.eval_batch_size)
    task, examples, predictions = predict_split(model_dir, cfg, split, precision, predictor=predictor)
    seconds = time.perf_counter() - t0
    metrics = task.metrics(examples, predictions)
    intervals = bootstrap_task_metrics(task, examples, predictions, n_resamples=bootstrap) if bootstrap else {}
    print(f"{task.name} / {split}: {len(examples)} examples, model {model_dir}")
    print(f"{'metric':<28}{'value':>10}   95% CI")
    for key, value in metrics.items():
        low, high = intervals.get(key, (float("nan"), float("nan")))
        print(f"{key:<28}{value:>10.4f}   [{low:.4f}, {high:.4f}]")
    result = {"task": task.name, "split": split, "n_examples": len(examples), "model": str(model_dir),
              "metrics": metrics, "ci95": {k: list(v) for k, v in intervals.items()}, "predict_seconds": seconds}
    if task.head == "sequence_classification":
        # per-example outputs, so that models can be compared on the same examples (paired) afterwards
        result["predictions"] = [
            {"id": example_id(e), "label": np.asarray(e.label).tolist(), "output": [float(v) for v in p]}
            for e, p in zip(examples, predictions)]
    if stability:
        from ..stability import format_stability

        t0 = time.perf_counter()
        result["stability"] = evaluate_stability(predictor, cfg, examples, stability_shifts, stability_windows_max,
                                                 stability_per_bin, seed=cfg.train.seed)
        result["stability"]["seconds"] = time.perf_counter() - t0
        print()
        print(format_stability(result["stability"], f"stability on {split}: {result['stability']['windows']}"))
    if out:
        write_text_atomic(out, json.dumps(result, indent=2) + "\n")
    return result

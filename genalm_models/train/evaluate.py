"""`train evaluate`: metrics of any model folder on a task's held-out split, with bootstrap 95% CIs.

The predictions come from the shared predict path (`Predictor`), the metrics from the task module.
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


def predict_split(model_dir: str | Path, cfg: RunConfig, split: str, precision: str = "fp32",
                  batch_size: int | None = None):
    """(task, examples, predictions) for one split."""
    from ..tasks import make_task

    if cfg.data.task == "mlm":
        raise RunConfigError("evaluate needs a downstream task config (data.task), not mlm")
    task = make_task(cfg.data.task, cfg.data.args, seed=cfg.train.seed)
    examples = task.build()[split]
    model_dir = resolve_model_folder(model_dir)
    model, _ = load_model(model_dir, strict=True)
    tokenizer = GenaTokenizer.from_pretrained(model_dir)
    predictor = Predictor(model, tokenizer, precision=precision,
                          batch_size=batch_size or cfg.train.eval_batch_size)
    level = "token" if task.head == "token_classification" else "nucleotide"
    return task, examples, predictor.predict([e.seq for e in examples], level=level)


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
                    bootstrap: int = 1000, precision: str = "fp32") -> dict:
    from ..tasks.metrics import bootstrap_task_metrics

    cfg = RunConfig.load(config, overrides)
    t0 = time.perf_counter()
    task, examples, predictions = predict_split(model_dir, cfg, split, precision)
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
    if out:
        write_text_atomic(out, json.dumps(result, indent=2) + "\n")
    return result

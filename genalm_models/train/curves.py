"""Training and validation curves of a run (`metrics.jsonl`) as a PNG, for model cards."""
from __future__ import annotations

import json
from pathlib import Path

from ..io_utils import atomic_write


def read_metrics(path: str | Path) -> list[dict]:
    """The rows of a `metrics.jsonl`. A torn last line (a run killed while writing it) is dropped; a bad line
    elsewhere is an error naming the file and line."""
    lines = Path(path).read_text().splitlines()
    last = max((i for i, line in enumerate(lines) if line.strip()), default=-1)
    rows = []
    for number, line in enumerate(lines, 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as err:
                if number - 1 == last:
                    break
                raise ValueError(f"{path}:{number}: not a JSON line ({err.msg})") from None
    return rows


def plot_curves(metrics_jsonl: str | Path, out_png: str | Path, title: str = "") -> Path:
    """Left: training loss (and validation MLM loss); right: the validation metrics of the task."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_metrics(metrics_jsonl)
    train = [(r["step"], r["train_loss"]) for r in rows if "train_loss" in r]
    valid_keys = sorted({k for r in rows for k in r if k.startswith("valid_")})
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    if train:
        left.plot(*zip(*train), label="train loss")
    if "valid_mlm_loss" in valid_keys:
        left.plot(*zip(*[(r["step"], r["valid_mlm_loss"]) for r in rows if "valid_mlm_loss" in r]), "o-",
                  label="valid MLM loss")
    left.set_xlabel("step")
    left.set_ylabel("loss")
    left.legend()
    for key in valid_keys:
        if key == "valid_mlm_loss" or key.startswith("valid_n_"):
            continue
        points = [(r["step"], r[key]) for r in rows if key in r]
        right.plot(*zip(*points), "o-", label=key[len("valid_"):])
    right.set_xlabel("step")
    right.set_ylabel("validation metric")
    if right.lines:
        right.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    with atomic_write(out_png, "wb") as handle:
        fig.savefig(handle, format="png", dpi=100)
    plt.close(fig)
    return Path(out_png)

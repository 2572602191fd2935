"""Which model made an output file: a JSON sidecar written next to every output (no kipoi, no torch here).

`kipoi predict` writes its output files itself, so the model cannot add columns to them without changing what
Kipoi users parse. Instead every output gets a sidecar `<output>.provenance.json`:

    {"output": "out.tsv", "created": "...", "command": [...],
     "models": [{"name": "GENA-LM/promoter", "version": "...", "weights_sha256": "...", "precision": "fp32",
                 "rc_average": false, "device": "cpu", ...}],
     "inputs": {"intervals_file": ..., "fasta_file": ..., "reference_check": "ok" | [mismatches] | "not checked"}}

How it gets there: a GENA-LM model registers itself here when it is loaded and notes each batch it predicts; the
dataloader registers its input files. The atomic Kipoi writers (kipoi_compat.py) and our own writers (scan,
`genalm-kipoi predict`) ask, when they finish, which models predicted since they were opened.
"""
from __future__ import annotations

import datetime as _dt
import itertools
import json
import os
import sys
from pathlib import Path
from typing import Any

SIDECAR_SUFFIX = ".provenance.json"

_counter = itertools.count(1)
_models: dict[int, dict[str, Any]] = {}     # model key -> provenance
_last_use: dict[int, int] = {}              # model key -> tick of its last prediction
_inputs: dict[str, Any] | None = None       # the most recently opened dataloader's inputs


def tick() -> int:
    """A point in time; pair with `models_used_since`."""
    return next(_counter)


def register_model(info: dict[str, Any]) -> int:
    key = tick()
    _models[key] = dict(info)
    return key


def update_model(key: int, info: dict[str, Any]) -> None:
    _models[key] = dict(info)


def note_prediction(key: int) -> None:
    _last_use[key] = tick()


def register_inputs(info: dict[str, Any]) -> None:
    global _inputs
    _inputs = dict(info)


def models_used_since(start: int) -> list[dict[str, Any]]:
    return [_models[key] for key, used in sorted(_last_use.items(), key=lambda kv: kv[1]) if used > start]


def sidecar_path(output: str | os.PathLike) -> Path:
    return Path(f"{output}{SIDECAR_SUFFIX}")


def record(output: str | os.PathLike, models: list[dict[str, Any]], inputs: dict[str, Any] | None = None,
           extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The provenance document for `output` (not written)."""
    document = {
        "output": os.path.basename(str(output)),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": list(sys.argv),
        "models": models,
        "inputs": inputs if inputs is not None else _inputs,
    }
    if extra:
        document.update(extra)
    return document


def write_sidecar(output: str | os.PathLike, document: dict[str, Any]) -> Path:
    from genalm_models.io_utils import write_text_atomic

    path = sidecar_path(output)
    write_text_atomic(path, json.dumps(document, indent=2, default=str) + "\n")
    return path


def read_sidecar(output: str | os.PathLike) -> dict[str, Any]:
    return json.loads(sidecar_path(output).read_text())

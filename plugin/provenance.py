"""Which model made an output file: a JSON sidecar written next to every output (no kipoi, no torch here).

`kipoi predict` writes its output files itself, so the model cannot add columns to them without changing what
Kipoi users parse. Instead every output gets a sidecar `<output>.provenance.json`:

    {"output": "out.tsv", "created": "...", "command": [...],
     "models": [{"name": "GENA-LM/promoter", "version": "...", "weights_sha256": "...", "precision": "fp32",
                 "rc_average": false, "device": "cpu", ...}],
     "inputs": {"intervals_file": ..., "fasta_file": ..., "reference_check": "ok" | [mismatches] | "not checked"},
     "warnings": {"count": 2, "by_kind": {"n_rich_window": 1, "reference_mismatch": 1}, "messages": [...]}}

How it gets there: a GENA-LM model registers itself here when it is loaded and notes each batch it predicts; the
dataloader registers its input files. The atomic Kipoi writers (kipoi_compat.py) and our own writers (scan,
`genalm-kipoi predict`) ask, when they finish, which models predicted since they were opened.

Warnings ("this result may be wrong": wrong assembly, N-rich windows, changed weights, ...): everything the plugin
and the library log at WARNING or above goes through `WarningHandler`, attached to the `kipoi_genalm` and
`genalm_models` loggers by the entry points (`install_warning_handler`: the `genalm-kipoi` command,
`kipoi_compat.apply` when Kipoi loads a GENA-LM model or dataloader, `start_run`), never on import. It counts each warning for the sidecar of the run (from the loading of its model and
dataloader on) and prints it to stderr when no other handler would show it. The `kipoi` command configures
logging so that only CRITICAL records reach the terminal (its root handler); without this handler every plugin
warning would be invisible under `kipoi predict`. Warnings left unprinted on purpose (the 6th N-rich window, ...)
are counted with `note_warning`.
"""
from __future__ import annotations

import datetime as _dt
import itertools
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

SIDECAR_SUFFIX = ".provenance.json"

_counter = itertools.count(1)
_models: dict[int, dict[str, Any]] = {}     # model key -> provenance
_last_use: dict[int, int] = {}              # model key -> tick of its last prediction
_inputs: dict[str, Any] | None = None       # the most recently opened dataloader's inputs
_model_started: dict[int, int] = {}         # model key -> tick before the model began loading
_run_started = 0                            # tick before the most recent dataloader began reading its inputs
# every warning: [tick, kind, message, count]; after a run's first MAX_WARNING_MESSAGES, messages are not kept and
# consecutive warnings of one kind share an entry (tick = the latest), so a run of millions of intervals stays small
_warnings: list[list] = []
_run_floor = 0                              # warnings after this tick may share entries (see start_run)
_messages_in_run = 0
MAX_WARNING_MESSAGES = 20                   # messages kept in a sidecar (all are counted)
WARNING_LOGGERS = ("kipoi_genalm", "genalm_models")


def tick() -> int:
    """A point in time; pair with `models_used_since`."""
    return next(_counter)


def start_run() -> int:
    """A tick taken when a model or dataloader begins loading: its run's warnings are counted from here (the
    warning handler is attached now if no entry point did it before)."""
    global _run_floor, _messages_in_run
    install_warning_handler()
    _run_floor = tick()
    _messages_in_run = 0
    return _run_floor


def register_model(info: dict[str, Any], started: int | None = None) -> int:
    """started: a tick taken before the model began loading (warnings from then on belong to its runs)."""
    key = tick()
    _models[key] = dict(info)
    _model_started[key] = key if started is None else started
    return key


def update_model(key: int, info: dict[str, Any]) -> None:
    _models[key] = dict(info)


def note_prediction(key: int) -> None:
    _last_use[key] = tick()


def register_inputs(info: dict[str, Any], started: int | None = None) -> None:
    """started: a tick taken before the dataloader began reading its inputs (its warnings count from then)."""
    global _inputs, _run_started
    _inputs = dict(info)
    _run_started = tick() if started is None else started


def models_used_since(start: int) -> list[dict[str, Any]]:
    return [_models[key] for key, used in sorted(_last_use.items(), key=lambda kv: kv[1]) if used > start]


def run_started(opened_at: int) -> int:
    """Where the warnings of an output opened at `opened_at` begin: when its dataloader or the earliest of the
    models that predicted into it began loading."""
    starts = [_model_started.get(key, key) for key, used in _last_use.items() if used > opened_at]
    return min([_run_started, *starts])


# ---- warnings -----------------------------------------------------------------------------------------------------
def note_warning(message: str, kind: str = "warning") -> None:
    """Count a warning for the provenance sidecar (WarningHandler does this for every logged warning)."""
    global _messages_in_run
    now = tick()
    last = _warnings[-1] if _warnings else None
    if _messages_in_run < MAX_WARNING_MESSAGES:
        _warnings.append([now, kind, message, 1])
        _messages_in_run += 1
    elif last is not None and last[1] == kind and last[2] is None and last[0] > _run_floor:
        last[0] = now
        last[3] += 1
    else:
        _warnings.append([now, kind, None, 1])


def warnings_since(start: int) -> dict[str, Any]:
    """{"count", "by_kind", "messages" (the first MAX_WARNING_MESSAGES)} of the warnings after tick `start`."""
    chosen = [entry for entry in _warnings if entry[0] > start]
    by_kind: dict[str, int] = {}
    for _, kind, _, count in chosen:
        by_kind[kind] = by_kind.get(kind, 0) + count
    messages = [message for _, _, message, _ in chosen if message is not None]
    return {"count": sum(by_kind.values()), "by_kind": by_kind, "messages": messages[:MAX_WARNING_MESSAGES]}


class WarningHandler(logging.Handler):
    """Counts WARNING+ records for provenance and shows them on stderr when nothing else would.

    "Nothing else": no handler on the way from the record's logger to the root accepts the record's level (Python's
    last-resort handler does not count: it is only used when there is no handler at all, and this is one). Under
    the `kipoi` command the root's only handler takes CRITICAL, so the record is printed here; under pytest's
    caplog or an application's own logging set-up it is left to them. A record's kind is its `genalm_kind` extra
    attribute (e.g. `log.warning(..., extra={"genalm_kind": "n_rich_window"})`), else "warning".
    """

    def __init__(self):
        super().__init__(logging.WARNING)
        self.setFormatter(logging.Formatter("WARNING [%(name)s] %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
            note_warning(message, getattr(record, "genalm_kind", "warning"))
            if not self._shown_elsewhere(record):
                stream = sys.stderr
                stream.write(self.format(record) + "\n")
                stream.flush()
        except Exception:  # a logging handler must never raise into the caller
            self.handleError(record)

    def _shown_elsewhere(self, record: logging.LogRecord) -> bool:
        logger: logging.Logger | None = logging.getLogger(record.name)
        while logger is not None:
            for handler in logger.handlers:
                if not isinstance(handler, WarningHandler) and record.levelno >= handler.level:
                    return True
            if not logger.propagate:
                return False
            logger = logger.parent
        return False


def install_warning_handler() -> None:
    """Attach WarningHandler to the plugin's and the library's loggers (idempotent). Also re-enables them: a
    `logging.config.fileConfig` run after they were created (the `kipoi` command's) disables existing loggers."""
    for name in WARNING_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(h, WarningHandler) for h in logger.handlers):
            logger.addHandler(WarningHandler())
        for other, candidate in list(logging.root.manager.loggerDict.items()):
            if (other == name or other.startswith(name + ".")) and isinstance(candidate, logging.Logger):
                candidate.disabled = False


def sidecar_path(output: str | os.PathLike) -> Path:
    return Path(f"{output}{SIDECAR_SUFFIX}")


def record(output: str | os.PathLike, models: list[dict[str, Any]], inputs: dict[str, Any] | None = None,
           extra: dict[str, Any] | None = None, since: int | None = None) -> dict[str, Any]:
    """The provenance document for `output` (not written). since: the tick the run's warnings count from
    (default: when the most recent dataloader began, or the start of the process)."""
    document = {
        "output": os.path.basename(str(output)),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": list(sys.argv),
        "models": models,
        "inputs": inputs if inputs is not None else _inputs,
        "warnings": warnings_since(_run_started if since is None else since),
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


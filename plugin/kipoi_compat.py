"""Make kipoi 0.8.6 work on numpy 2, write its TSV/HDF5 outputs atomically, and record provenance.

Applied by one function, `apply()`, called by the entry points: the Kipoi model class (`GenaLMModel.__init__`) and
dataloader (`IntervalSeqDl.__init__`) when Kipoi loads them - i.e. in `kipoi.get_model("GENA-LM/...")` before
`kipoi predict` creates its writers - and the exporter's expectation writer (`zoo_export.py`); importing a module
changes nothing. The first call checks the installed kipoi against the version these patches were written for
(KIPOI_VERSION; another version gets one clear warning naming both, and the patches are applied anyway), applies
them and logs one DEBUG line; later calls only re-attach the warning handler and re-check 4 below (kipoi's CLI
module may be imported after the first call).

1. numpy 2 removed `np.string_` / `np.unicode_`; kipoi's HDF5 writer still names them (`-o out.h5` and
   `kipoi test -o` crash without the aliases). The aliases are only added when missing.
2. kipoi's TSV writer appends to the final file batch by batch and its HDF5 writer opens the final file in append
   mode, so a failed run leaves a truncated output behind (and an existing `out.h5` makes the next run fail with
   "name already exists"). The writers `kipoi.writers.get_writer` hands out for `.tsv`, `.h5` and `.hdf5` are
   replaced by subclasses that write to a hidden temporary file in the output's folder and move it over the
   final name (`io_utils.move_into_place`) only in `close()`, which kipoi calls after the last batch. A run that fails or
   is interrupted never creates or truncates the output; its temporary file is removed at interpreter exit.
3. On `close()` they also write `<output>.provenance.json` (model name, version, weights sha256, options, input
   files; see provenance.py) when a GENA-LM model predicted into them, and HDF5 outputs get the same JSON in the
   file attribute `genalm_provenance`.
4. `kipoi test` compares expected and observed predictions with kipoi_utils' `compare_numpy_dict`, which checks
   only the first array of a dict-valued output (see `compare_outputs`): replaced by a version that checks all.
The TSV writer also orders its columns for people (`column_order`: metadata/ranges chr, start, end, id, strand
first, then the predictions, positions in numeric order: /2 before /10, where kipoi sorted them as strings), avoids
`DataFrame.sort_index(inplace=True)` (deprecated in pandas 3.1), and says on stderr when a table gets more than
TSV_COLUMN_NOTE columns (per-nucleotide or per-token outputs) that HDF5 (`-o out.h5`) suits them better.
This changes kipoi's writers for the whole process (other models' outputs become atomic too, without sidecar).
"""
from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
from pathlib import Path

import numpy as np

from . import provenance

log = logging.getLogger(__name__)

KIPOI_VERSION = "0.8.6"   # the kipoi these patches were written for and tested against (setup: kipoi==0.8.6)
_REMOVED_NUMPY_ALIASES = {"string_": np.bytes_, "unicode_": np.str_}
TSV_COLUMN_NOTE = 1000
_RANGES_ORDER = {"chr": 0, "start": 1, "end": 2, "id": 3, "strand": 4}
_TOP_ORDER = {"metadata": 0, "inputs": 1, "targets": 2, "preds": 3}
_pending_temporaries: set[str] = set()
_applied = False


def apply_numpy_aliases() -> None:
    for name, replacement in _REMOVED_NUMPY_ALIASES.items():
        if not hasattr(np, name):
            setattr(np, name, replacement)


def _temporary_beside(final_path: str) -> str:
    from genalm_models.io_utils import temporary_beside

    # also sweeps the temporaries of writers that were killed (SIGKILL)
    temporary = str(temporary_beside(os.path.abspath(final_path), "partial"))
    _pending_temporaries.add(temporary)
    return temporary


def _publish(temporary: str, final_path: str) -> bool:
    """Move a finished temporary output into place; False when nothing was written (no batches)."""
    _pending_temporaries.discard(temporary)
    from genalm_models.io_utils import move_into_place

    if not os.path.exists(temporary):
        return False
    move_into_place(temporary, final_path)
    return True


def _discard(temporary: str) -> None:
    """A writer dropped without close() (its run failed): remove its temporary file now rather than at exit."""
    if temporary in _pending_temporaries:
        _pending_temporaries.discard(temporary)
        with contextlib.suppress(OSError):
            os.unlink(temporary)


@atexit.register
def _remove_unfinished_outputs() -> None:
    for temporary in list(_pending_temporaries):
        with contextlib.suppress(OSError):
            os.unlink(temporary)
    _pending_temporaries.clear()


def column_order(name: str, sep: str = "/") -> tuple:
    """Sort key of a flattened column name: metadata (ranges as chr, start, end, id, strand) before inputs,
    targets and predictions; numeric parts as numbers (preds/donor/2 before preds/donor/10)."""
    key = []
    for depth, part in enumerate(name.split(sep)):
        if part.isdigit():
            key.append((0, int(part), ""))
        elif depth == 0 and part in _TOP_ORDER:
            key.append((1, _TOP_ORDER[part], part))
        elif part in _RANGES_ORDER and name.startswith(f"metadata{sep}ranges{sep}"):
            key.append((1, _RANGES_ORDER[part], part))
        else:
            key.append((2, 0, part))
    return tuple(key)


def _note_wide_table(path: str, n_columns: int) -> None:
    import sys

    print(f"note: {path}: {n_columns:,} columns (per-position outputs, one column each); a table this wide is "
          "hard to read or load - write HDF5 instead (-o out.h5; arrays keep their shape), or for embedding "
          "models GENALM_EMBEDDING_OUTPUTS=pooled", file=sys.stderr)


def _provenance_document(final_path: str, opened_at: int) -> dict | None:
    models = provenance.models_used_since(opened_at)
    if not models:
        return None  # not a GENA-LM output: leave no sidecar
    return provenance.record(final_path, models, since=provenance.run_started(opened_at))


def _make_writers():
    from kipoi import writers

    base_tsv, base_hdf5 = writers.TsvBatchWriter, writers.HDF5BatchWriter

    class AtomicTsvBatchWriter(base_tsv):
        """kipoi's TSV writer, writing to a temporary file that replaces `file_path` on close()."""

        def __init__(self, file_path, nested_sep="/"):
            self.final_path = str(file_path)
            self._opened_at = provenance.tick()
            super().__init__(_temporary_beside(self.final_path), nested_sep=nested_sep)

        def batch_write(self, batch):
            # kipoi's own version, without `sort_index(inplace=True)` (deprecated in pandas 3.1, removed later)
            import pandas as pd
            from kipoi_utils.data_utils import flatten_batch

            frame = pd.DataFrame(flatten_batch(batch, nested_sep=self.nested_sep))
            frame = frame[sorted(frame.columns, key=lambda c: column_order(str(c), self.nested_sep))]
            if self.first_pass:
                if frame.shape[1] > TSV_COLUMN_NOTE:
                    _note_wide_table(self.final_path, frame.shape[1])
                frame.to_csv(self.file_path, sep="\t", index=False)
                self.first_pass = False
            else:
                frame.to_csv(self.file_path, sep="\t", index=False, header=None, mode="a")

        def close(self):
            super().close()
            document = _provenance_document(self.final_path, self._opened_at)
            if _publish(self.file_path, self.final_path) and document is not None:
                provenance.write_sidecar(self.final_path, document)

        def __del__(self):
            _discard(getattr(self, "file_path", ""))

    class AtomicHDF5BatchWriter(base_hdf5):
        """kipoi's HDF5 writer on a fresh temporary file that replaces `file_path` on close()."""

        def __init__(self, file_path, chunk_size=10000, compression="gzip"):
            self.final_path = str(file_path)
            self._opened_at = provenance.tick()
            super().__init__(_temporary_beside(self.final_path), chunk_size=chunk_size, compression=compression)

        def close(self):
            document = _provenance_document(self.final_path, self._opened_at)
            if document is not None:
                self.f.attrs["genalm_provenance"] = json.dumps(document, default=str)
            super().close()
            if _publish(self.file_path, self.final_path) and document is not None:
                provenance.write_sidecar(self.final_path, document)

        def __del__(self):
            _discard(getattr(self, "file_path", ""))

    return writers, AtomicTsvBatchWriter, AtomicHDF5BatchWriter


def apply_atomic_writers() -> None:
    global _applied
    if _applied:
        return
    writers, tsv, hdf5 = _make_writers()
    originals = {writers.TsvBatchWriter: tsv, writers.HDF5BatchWriter: hdf5}
    # get_writer looks the classes up as module globals and in FILE_SUFFIX_MAP at call time.
    writers.TsvBatchWriter = tsv
    writers.HDF5BatchWriter = hdf5
    for suffix, cls in list(writers.FILE_SUFFIX_MAP.items()):
        if cls in originals:
            writers.FILE_SUFFIX_MAP[suffix] = originals[cls]
    _applied = True


def compare_outputs(a, b, exact: bool = True, decimal: int = 7) -> bool:
    """kipoi's `compare_numpy_dict`, fixed: every key of a dict output is compared, and a mismatch raises.

    kipoi 0.8.6's version returns `np.testing.assert_almost_equal(...)`, i.e. None, for the first array of a dict;
    it then reports "false for key" and stops, and `kipoi test` ignores the returned False - so only the first
    output of a dict-valued model was ever checked.
    """
    from collections.abc import Mapping

    if isinstance(a, Mapping) or isinstance(b, Mapping):
        if not (isinstance(a, Mapping) and isinstance(b, Mapping)) or set(a) != set(b):
            keys = [sorted(x) if isinstance(x, Mapping) else type(x).__name__ for x in (a, b)]
            raise AssertionError(f"outputs differ in structure: {keys[0]} vs {keys[1]}")
        for key in a:
            try:
                compare_outputs(a[key], b[key], exact, decimal)
            except AssertionError as err:
                raise AssertionError(f"output {key!r}: {err}") from None
        return True
    if a is None and b is None:
        return True
    if exact:
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    else:
        np.testing.assert_almost_equal(np.asarray(a), np.asarray(b), decimal=decimal)
    return True


def apply_strict_test_comparison() -> None:
    import sys

    cli = sys.modules.get("kipoi.cli.main")  # loaded when the kipoi CLI runs `kipoi test`
    if cli is not None and getattr(cli, "compare_numpy_dict", None) is not compare_outputs:
        cli.compare_numpy_dict = compare_outputs


_checked_version: str | None = None


def check_kipoi_version() -> str:
    """The installed kipoi version; warns once (naming both versions) when it is not KIPOI_VERSION."""
    from genalm_models.model_folder import package_version

    version = package_version("kipoi")
    if version != KIPOI_VERSION:
        log.warning("kipoi %s is installed, but kipoi_genalm's patches to kipoi (numpy-2 aliases, atomic writers "
                    "with provenance sidecars, `kipoi test` comparing every output) were written for kipoi %s; they "
                    "are applied anyway - if outputs or `kipoi test` misbehave, install kipoi==%s", version,
                    KIPOI_VERSION, KIPOI_VERSION, extra={"genalm_kind": "kipoi_version"})
    return version


def apply() -> None:
    """Apply every patch of the module docstring, the first time it is called in a process (one DEBUG log line);
    later calls re-attach the warning handler and re-check `kipoi test`'s comparison only."""
    global _checked_version
    provenance.install_warning_handler()  # after the `kipoi` command's logging set-up: see provenance.py
    if _checked_version is None:
        _checked_version = check_kipoi_version()
        missing = [name for name in _REMOVED_NUMPY_ALIASES if not hasattr(np, name)]
        apply_numpy_aliases()
        apply_atomic_writers()
        log.debug("kipoi %s patched for GENA-LM: numpy aliases added (%s), atomic provenance-recording writers for "
                  ".tsv/.h5/.hdf5, `kipoi test` compares every output", _checked_version,
                  ", ".join(f"np.{name}" for name in missing) or "none missing")
    apply_strict_test_comparison()


def is_temporary_output(path: str | Path) -> bool:
    return Path(path).name.startswith(".") and Path(path).name.endswith(".partial")

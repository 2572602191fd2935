"""kipoi_genalm: GENA-LM DNA language models in the Kipoi model zoo.

    genalm-kipoi register          make `kipoi predict GENA-LM/<model> ...` find the bundled models (once per user)
    kipoi predict GENA-LM/promoter --dataloader_args='{"intervals_file": "x.bed", "fasta_file": "genome.fa"}' \\
        -o out.tsv
    genalm-kipoi predict / scan / check-fasta / status / unregister   (see `genalm-kipoi --help`)

Submodules (imported on first use, so that `genalm-kipoi register` does not load torch):
    kipoi_model   GenaLMModel, the class every GENA-LM model.yaml names (thin adapter over adapter.FolderModel)
    dataloaders   IntervalSeqDl, the standardized BED + FASTA dataloader
    adapter       FolderModel / PredictOptions: a model folder as strings -> arrays, over genalm_models.predict
    sequences     BED intervals -> model input strings (windows, strands, chromosome names, checks)
    folder        genalm.json (FolderInfo), checksums, reference contig checks
    registration  register / unregister / status of the GENA-LM group in a Kipoi model source
    kipoi_compat  numpy-2 aliases and atomic, provenance-recording Kipoi writers (applied by the entry points)
    zoo_export    the Kipoi files of an exported folder: model.yaml, the `kipoi test` expectation
    veff          variant-effect scoring (veff_load, veff_scorers, veff_run: loading, scorers, the run)
    provenance    the `<output>.provenance.json` sidecars
    scan          sliding-window scan of a region to a bedGraph track
    official      the published GENA-LM models: official names -> hub repository, revision, window, outputs
    cli           the `genalm-kipoi` command
"""
from __future__ import annotations

import importlib
from pathlib import Path

GROUP_NAME = "GENA-LM"
# The bundled models: <package>/zoo/GENA-LM/<model>/model.yaml. It must be a real folder on disk (editable or
# wheel install) because the Kipoi source links to it.
ZOO_DIR = Path(__file__).resolve().parent / "zoo"
GROUP_DIR = ZOO_DIR / GROUP_NAME

_SUBMODULES = ("kipoi_model", "dataloaders", "adapter", "sequences", "folder", "registration", "kipoi_compat",
               "provenance", "scan", "cli", "official", "veff", "veff_io", "veff_plot", "veff_scores", "veff_variants",
               "veff_load", "veff_scorers", "veff_run", "zoo_export")


def __getattr__(name: str):
    # kipoi resolves `defined_as: kipoi_genalm.kipoi_model.GenaLMModel` by importing `kipoi_genalm` and then
    # getattr()-ing `kipoi_model`: import the submodule at that moment.
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["GROUP_NAME", "GROUP_DIR", "ZOO_DIR", *_SUBMODULES]

"""The Kipoi half of exporting a model: model.yaml, the `kipoi test` expectation, running `kipoi test`.

    export_kipoi_model(source, out, name="GENA-LM/promoter")   # genalm_models.export.export_model + these files

`genalm_models.export` writes the Kipoi-free model folder (weights, config.json, tokenizer, genalm.json, examples,
model card) and knows nothing of Kipoi; `add_kipoi_files` is its *finisher* for Kipoi, called on the folder while
it is still being built (a failure leaves the target folder as it was). setup.py registers it under the entry
point group `genalm_models.export_finishers`, which `python -m genalm_models.train export` loads, so the CLI writes
the same complete Kipoi folder as `export_kipoi_model`.

Files added:
    model.yaml                                 schema, info, LOCAL default dataloader args, the test section
    downloaded/model_files/test.expect.h5      predictions of the exported (fp16-rounded) weights on the examples;
                                               kipoi reads this shipped file (the md5 in model.yaml matches it)
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from genalm_models.export import (
    CITE_AS, TSS_INPUT_NOTE, ExportedFolder, ExportError, Plan, describe_architecture, export_model, model_doc)
from genalm_models.io_utils import write_text_atomic
from genalm_models.model_folder import md5_file
from genalm_models.requirements import KIPOI_DEPENDENCIES, KIPOI_NOTE

from . import kipoi_compat
from .adapter import FolderModel, PredictOptions, kipoi_outputs, rc_average_refusal
from .folder import format_reference_contigs
from .sequences import IntervalSequences

PRECISION_DECIMAL = 4              # kipoi test: |expected - observed| < 1.5e-4 (CPU vs GPU float noise)
# kipoi treats a default argument that names an existing path as a file and makes it absolute; a small integer is
# also "an existing path" to os.path.exists (an open file descriptor), which crashes kipoi. Such values are written
# as strings; the dataloader reads integers from strings.
SMALLEST_PLAIN_INT_DEFAULT = 64
EXPECT_FILE = Path("downloaded") / "model_files" / "test.expect.h5"


def export_kipoi_model(source: str | os.PathLike, out: str | os.PathLike, name: str,
                       config_path: str | os.PathLike | None = None, fp16: bool = True, **options: Any) -> Path:
    """A complete, self-testing Kipoi model folder for `source` at `out` (the options of
    `genalm_models.export.export_model`; check_with_kipoi=True also runs `kipoi test` on it); returns `out`."""
    return export_model(source, out, name, config_path=config_path, fp16=fp16, finishers=[add_kipoi_files],
                        **options)


def add_kipoi_files(exported: ExportedFolder) -> None:
    """The export finisher: the expectation file, model.yaml and, when asked (check_with_kipoi), `kipoi test`."""
    expect_md5 = write_expectation(exported.plan, exported.folder)
    write_model_yaml(exported.plan, exported.info, exported.config, exported.folder, expect_md5)
    if exported.options.check_with_kipoi:
        run_kipoi_test(exported.folder)


def run_kipoi_test(folder: Path) -> None:
    """`kipoi test <folder>` in a subprocess (offline; checks predictions against the expectation file).
    Raises ExportError with the tail of kipoi's output when it fails."""
    kipoi = shutil.which("kipoi") or str(Path(sys.executable).with_name("kipoi"))
    result = subprocess.run([kipoi, "test", str(folder), "--source", "dir"], capture_output=True, text=True)
    if result.returncode != 0:
        raise ExportError(f"kipoi test {folder} failed:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}")


def _example_inputs(plan: Plan, folder: Path) -> list[str]:
    """The model inputs of example.bed / example.fa.gz, built by the Kipoi dataloader's own code."""
    data = IntervalSequences(folder / "example.bed", folder / "example.fa.gz", plan.window)
    try:
        return [data[i].sequence for i in range(len(data))]
    finally:
        data.close()


def write_expectation(plan: Plan, folder: Path) -> str:
    """Predictions of the exported (fp16-rounded) weights on the examples, as `kipoi test -o` writes them."""
    kipoi_compat.apply()
    from kipoi.writers import HDF5BatchWriter  # after apply(): the atomic writer (kipoi_compat.py)

    inputs = _example_inputs(plan, folder)
    options = PredictOptions(max_tokens=plan.max_tokens)
    runner = FolderModel(folder, options)
    preds = kipoi_outputs(runner.info, runner.predict(inputs))
    path = folder / EXPECT_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    # chunks of exactly the example count: kipoi's default (10,000 rows) pads every per-token array to megabytes
    writer = HDF5BatchWriter(str(path), chunk_size=len(inputs))
    writer.batch_write({"inputs": np.array(inputs), "preds": preds})
    writer.close()
    return md5_file(path)


def _small_ints_as_strings(args: dict[str, Any]) -> dict[str, Any]:
    return {k: (str(v) if isinstance(v, int) and not isinstance(v, bool) and v < SMALLEST_PLAIN_INT_DEFAULT
                else v) for k, v in args.items()}


def _schema_targets(plan: Plan, config) -> dict[str, Any]:
    length = plan.window.sequence_length
    if plan.kind == "sequence":  # one named output per label: `kipoi predict` columns preds/<label>
        regression = config.resolved_problem_type("sequence_classification") == "regression"
        what = "predicted value" if regression else "probability"
        return {label: {"shape": "()", "doc": f"{what}: {label}"} for label in plan.output_labels}
    if plan.kind == "token":
        return {label: {"shape": f"({length},)", "doc": f"P({label}) for each base of the region"}
                for label in plan.output_labels}
    hidden, width = config.hidden_size, plan.max_tokens
    return {"pooled": {"shape": f"({hidden},)", "doc": "mean of the last-layer token states"},
            "token_embeddings": {"shape": f"({width}, {hidden})", "doc": "last-layer state of each token (NaN after "
                                                                          "the last token)"},
            "token_spans": {"shape": f"({width}, 2)", "doc": "[start, end) of each token in the input sequence "
                                                             "(-1 after the last token)"},
            "n_tokens": {"shape": "()", "doc": "number of tokens"}}


def write_model_yaml(plan: Plan, info, config, folder: Path, expect_md5: str | None) -> None:
    """model.yaml for `plan` (schema, info, LOCAL default dataloader args, the test expectation's md5; no test
    section when expect_md5 is None), written atomically."""
    window = plan.window
    default_args: dict[str, Any] = {}
    if window.sequence_length is not None:
        default_args["sequence_length"] = window.sequence_length
    if window.anchor != "center":
        default_args["anchor"] = window.anchor
    if window.upstream is not None and window.anchor == "tss":
        default_args["upstream"] = window.upstream
    if window.flank:
        default_args["flank"] = window.flank
    default_args["reference_contigs"] = format_reference_contigs(_reference_for_check(info.reference_contigs))
    args: dict[str, Any] = {"model_dir": ".", "precision": "fp32", "rc_average": False, "device": "auto",
                            "batch_size": 32}
    if plan.kind in ("embedding", "mlm"):
        args.update(embedding_outputs="pooled,tokens", max_tokens=plan.max_tokens)
    short = plan.name.rsplit("/", 1)[-1]
    description = {
        "defined_as": "kipoi_genalm.kipoi_model.GenaLMModel",
        "args": args,
        "default_dataloader": {"defined_as": "kipoi_genalm.dataloaders.IntervalSeqDl",
                               "default_args": _small_ints_as_strings(default_args)},
        "info": {
            "authors": [{"name": "GENA-LM authors (Fishman V., Kuratov Y. et al.)"}],
            "contributors": [{"name": "genalm-models exporter"}],
            "doc": model_doc(plan, config, rc_average_refusal(info) is None),
            "version": plan.version,
            "license": plan.license,
            "cite_as": CITE_AS,
            "trained_on": plan.trained_on or _trained_on(plan, info),
            "training_procedure": _training_procedure(info, config),
            "tags": ["DNA language model", "GENA-LM", "transformer", short] + (["RMT"] if config.rmt else []),
        },
        "dependencies": {key: list(value) for key, value in KIPOI_DEPENDENCIES.items()},
        "schema": {
            "inputs": {"name": "seq", "shape": "()", "special_type": "DNAStringSeq",
                       "doc": f"DNA sequence ({window.describe()}), 5'->3'"
                              + (f". {TSS_INPUT_NOTE}" if window.anchor == "tss" and window.sequence_length else ""),
                       "associated_metadata": "ranges"},
            "targets": _schema_targets(plan, config),
        },
    }
    if expect_md5 is not None:  # None: no expectation (official models: their weights are not shipped)
        description["test"] = {
            # kipoi first looks for <model folder>/downloaded/model_files/test.expect.h5 (shipped) and downloads
            # from `url` only when that file is missing or its md5 differs: the URL is a placeholder.
            "expect": {"url": f"https://genalm-kipoi.invalid/{plan.name}/test.expect.h5", "md5": expect_md5},
            "precision_decimal": PRECISION_DECIMAL,
        }
    header = (f"# {plan.name} {plan.version}: written by genalm_models.export; regenerate rather than edit.\n"
              "# Windows, labels and the weights checksum are also in genalm.json.\n")
    text = yaml.safe_dump(description, sort_keys=False, width=110, allow_unicode=False)
    text = text.replace("\ndependencies:\n", "\ndependencies:\n" + dependencies_comment(), 1)
    write_text_atomic(folder / "model.yaml", header + text)


def dependencies_comment() -> str:
    """The comment at the top of model.yaml's `dependencies:` block: how to install the model's own code."""
    import textwrap

    return "".join(f"  # {line}\n" for line in textwrap.wrap(KIPOI_NOTE, width=106))


def _reference_for_check(contigs: dict[str, int]) -> dict[str, int]:
    """The contigs written into model.yaml: all of them for small references, else those of 1 Mb or more."""
    if len(contigs) <= 50:
        return dict(contigs)
    return {name: length for name, length in contigs.items() if length >= 1_000_000}


def _trained_on(plan: Plan, info) -> str:
    reference = f"{plan.reference_name} " if plan.reference_name else ""
    contigs = ", ".join(list(info.reference_contigs)[:5])
    task = f"{plan.task} task" if plan.task else "pretraining/fine-tuning"
    return f"{task} on {reference}{plan.fasta.name} (contigs {contigs}); see README.md and run_config.yaml"


def _training_procedure(info, config) -> str:
    return (f"GENA-LM BERT ({describe_architecture(config)}) trained with genalm_models.train or released by the GENA-LM "
            f"authors (source: {info.source.get('type')}); weights stored as {info.weights_dtype}; the run config "
            "is in run_config.yaml when the model came from a training run")

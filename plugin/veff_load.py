"""Variant scoring, part 1 of 3: the model as the scorer loads it (veff.py has the user documentation).

`load_scoring_model` turns a bundled name, a model folder, a `FolderModel` or a Kipoi `GenaLMModel` into a
`ScoringModel`: the folder facts and the predict path for its kind (`FolderModel` for sequence / token / embedding
models, a masked-LM `Predictor` for kind mlm). Errors: FileNotFoundError naming the model and the bundled models,
TypeError for another kind of object, ValueError for options a loaded model cannot take.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

from . import GROUP_DIR, GROUP_NAME
from .adapter import FolderModel, PredictOptions, load_folder_model, package_version
from .folder import FolderInfo, read_folder_info


@dataclass
class ScoringModel:
    """A GENA-LM model as the scorer needs it: its folder facts, and the predict path for its kind."""

    info: FolderInfo
    folder: Path
    weights_sha256: str
    runner: FolderModel | None            # sequence / token / embedding kinds
    mlm: Any = None                       # kind mlm: a `Predictor` over the masked-LM head
    options: PredictOptions = PredictOptions()
    owned: bool = True                    # loaded here (its options may be changed without restoring them)
    hub: Any = None                       # the hub revision of an official MLM model (genalm_models.hub)

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def kind(self) -> str:
        return self.info.kind

    def provenance(self) -> dict[str, Any]:
        if self.runner is not None:
            return self.runner.provenance()
        return {"name": self.info.name, "version": self.info.version, "kind": self.info.kind,
                "weights_sha256": self.weights_sha256, "weights_sha256_at_export": self.info.weights_sha256,
                "model_dir": str(self.folder), "window": self.info.window.describe(),
                **({"hub": self.hub.provenance()} if self.hub is not None else {}),
                "precision": self.options.precision, "device": str(self.mlm.device),
                "software": {n: package_version(n) for n in ("genalm-models", "kipoi", "torch")}}


def find_model_folder(name: str, group_dir: str | os.PathLike | None = None) -> Path:
    """A folder for `name`: a model folder path (with genalm.json), or `GENA-LM/<model>` of the bundled group."""
    path = Path(name)
    if (path / "genalm.json").is_file():
        return path.resolve()
    group = Path(group_dir) if group_dir is not None else GROUP_DIR
    prefix = f"{GROUP_NAME}/"
    if name.startswith(prefix) and (group / name[len(prefix):] / "genalm.json").is_file():
        return (group / name[len(prefix):]).resolve()
    available = sorted(str(p.parent.relative_to(group)) for p in group.rglob("genalm.json"))
    raise FileNotFoundError(f"model {name!r}: not a model folder (no genalm.json) and not one of the bundled "
                            f"models in {group} ({', '.join(f'{GROUP_NAME}/{m}' for m in available) or 'none'})")


def _mlm_predictor(folder: Path, options: PredictOptions):
    """(Predictor, Weights) of the masked-LM head of an MLM folder (FolderModel reads such folders as embedding
    models)."""
    from genalm_models.predict import Predictor

    model, tokenizer, weights = load_folder_model(folder, read_folder_info(folder), head="mlm")
    predictor = Predictor(model, tokenizer, device=None if options.device == "auto" else options.device,
                          precision=options.precision, batch_size=options.batch_size)
    return predictor, weights


def load_scoring_model(model: Any, option_changes: Mapping[str, Any] | None = None,
                       group_dir: str | os.PathLike | None = None) -> ScoringModel:
    """`model`: `GENA-LM/<name>`, a model folder path, a `FolderModel`, a Kipoi `GenaLMModel` (or a ScoringModel).

    option_changes (precision, device, batch_size, rc_average): applied to models loaded here; a model handed in
    is configured by `score_variants` for the run and restored afterwards.
    """
    changes = {k: v for k, v in (option_changes or {}).items() if v is not None}
    if isinstance(model, ScoringModel):
        # loaded once by the caller (benchmarks, repeated runs): from here on it is like a model handed in
        if model.mlm is not None:
            options = model.options.merged(changes, "score_variants options")
            if dataclasses.replace(options, rc_average=model.options.rc_average) != model.options:
                raise ValueError("a loaded masked-LM ScoringModel keeps its device, precision and batch size; "
                                 "load it with the options wanted")
            return dataclasses.replace(model, options=options, owned=False)
        return dataclasses.replace(model, owned=False)
    runner = getattr(model, "runner", model)   # a Kipoi GenaLMModel wraps a FolderModel
    if isinstance(runner, FolderModel):
        if runner.info.kind == "mlm":
            options = runner.options.merged(changes, "score_variants options")
            predictor, weights = _mlm_predictor(runner.folder, options)
            return ScoringModel(runner.info, runner.folder, weights.sha256, None, predictor, options, owned=False,
                                hub=weights.hub)
        return ScoringModel(runner.info, runner.folder, runner.weights_sha256, runner, None, runner.options,
                            owned=False)
    if not isinstance(model, (str, os.PathLike)):
        raise TypeError(f"model must be a name, a folder, a FolderModel or a GenaLMModel, got {type(model).__name__}")
    folder = find_model_folder(str(model), group_dir)
    options = PredictOptions().with_environment().merged(changes, "score_variants options")
    info = read_folder_info(folder)
    if info.kind == "mlm":
        predictor, weights = _mlm_predictor(folder, options)
        return ScoringModel(info, folder, weights.sha256, None, predictor, options, hub=weights.hub)
    runner = FolderModel(folder, options)
    return ScoringModel(runner.info, runner.folder, runner.weights_sha256, runner, None, runner.options)


@contextlib.contextmanager
def configured(model: ScoringModel, changes: Mapping[str, Any]) -> Iterator[None]:
    """Run with options changed on the model's FolderModel; restore the previous options afterwards."""
    runner = model.runner
    changes = {k: v for k, v in changes.items() if v is not None}
    if runner is None or not changes:
        yield
        return
    previous = runner.options
    runner.configure(**changes)
    try:
        yield
    finally:
        if not model.owned:
            runner.configure(**dataclasses.asdict(previous))

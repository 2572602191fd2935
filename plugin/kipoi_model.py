"""The Kipoi model class every GENA-LM model.yaml names: a thin adapter over `adapter.FolderModel`.

model.yaml:
    defined_as: kipoi_genalm.kipoi_model.GenaLMModel
    args: {model_dir: ., precision: fp32, rc_average: false, device: auto, batch_size: 32}

Kipoi instantiates it with the model folder as working directory, so `model_dir: .` is the folder itself. Options
can be changed without editing model.yaml through environment variables (GENALM_PRECISION=bf16,
GENALM_RC_AVERAGE=1, GENALM_DEVICE=cuda:1, ... - see adapter.py), which is the only way to reach them from
`kipoi predict`, or from Python with `model.configure(rc_average=True)`.
"""
from __future__ import annotations

from typing import Any

from kipoi.model import BaseModel

from . import kipoi_compat, provenance
from .adapter import FolderModel, PredictOptions, as_sequences, kipoi_outputs


class GenaLMModel(BaseModel):
    """GENA-LM through Kipoi: DNA strings in, numpy arrays out (shapes by model kind: see adapter.py)."""

    def __init__(self, model_dir: str = ".", precision: str = "fp32", rc_average: bool = False,
                 device: str = "auto", batch_size: int = 32, progress: bool = False,
                 embedding_outputs: str | None = None, max_tokens: int | None = None):
        from genalm_models.io_utils import exit_cleanly_on_sigterm
        from genalm_models.process_settings import apply_process_settings

        # the entry point Kipoi calls: our patches to kipoi (kipoi_compat.py) and the process settings for fast CPU
        # inference (process_settings.py) are applied here, once per process, not when the module is imported
        kipoi_compat.apply()
        apply_process_settings("kipoi model load")
        exit_cleanly_on_sigterm()  # under the `kipoi` CLI too: SIGTERM removes partial outputs like Ctrl-C
        options = PredictOptions.build(
            dict(precision=precision, rc_average=rc_average, device=device, batch_size=batch_size,
                 progress=progress, embedding_outputs=embedding_outputs, max_tokens=max_tokens),
            "model.yaml args").with_environment()
        started = provenance.start_run()  # warnings while loading (changed weights, ...) belong to this model's runs
        self.runner = FolderModel(model_dir, options)
        self._provenance_key = provenance.register_model(self.runner.provenance(), started=started)

    @property
    def genalm_info(self):
        """genalm.json of the folder (name, version, kind, window, labels, reference contigs, checksum)."""
        return self.runner.info

    def configure(self, **changes: Any) -> PredictOptions:
        """e.g. `model.configure(rc_average=True, precision="bf16")`; returns the options now in force."""
        options = self.runner.configure(**changes)
        provenance.update_model(self._provenance_key, self.runner.provenance())
        return options

    def predict_on_batch(self, x):
        predictions = kipoi_outputs(self.runner.info, self.runner.predict(as_sequences(x)))
        provenance.note_prediction(self._provenance_key)
        return predictions

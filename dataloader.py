"""The repository root as a Kipoi model folder (with model.yaml): `kipoi test .` from the repository root.

The dataloader is the plugin's standardized one (`kipoi_genalm.dataloaders`, where it is implemented and
documented), re-exported here with two differences only: its `kipoi test` example files are those of the bundled
promoter model, and its default window and reference contigs are read from that model's genalm.json, so this
folder never holds a second copy of them.
"""
from pathlib import Path

from kipoi_genalm.dataloaders import interval_dataloader_class

PROMOTER_DIR = "plugin/zoo/GENA-LM/promoter"

IntervalSeqDl = interval_dataloader_class(
    "IntervalSeqDl",
    intervals_example=f"{PROMOTER_DIR}/example.bed",
    fasta_example=f"{PROMOTER_DIR}/example.fa.gz",
    module=__name__,
    defaults_from=Path(__file__).resolve().parent / PROMOTER_DIR,
)

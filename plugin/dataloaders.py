"""The standardized GENA-LM Kipoi dataloader: BED intervals + reference FASTA -> DNA strings.

Every GENA-LM model.yaml names it by package path (`kipoi_genalm.dataloaders.IntervalSeqDl`), not as
`dataloader.X`: Kipoi imports `dataloader` from sys.path first, so any other `dataloader.py` there (the repository
root has one) would silently replace ours. The repository root's `dataloader.py` re-exports a variant built by
`interval_dataloader_class` whose example files live in the bundled promoter model.

The layers are kipoiseq's: read the intervals (`genalm_models.genome.read_bed`), transform them into the model's
window (`target_region` / `input_region`), extract the sequence (`sequences.ReferenceExtractor`, kipoiseq's extractor
interface over our FASTA reader), compose them in the Dataset. `sequences.IntervalSequences` holds the first three
(see there for windows, strands, chromosome names, N-padding, the checks, and which kipoiseq pieces are not used and
why: tests/test_library_parity.py); this module composes: the Kipoi description and the sample layout:
    {"inputs": str array (the sequence),
     "metadata": {"ranges": GenomicRanges(chr, start, end, id, strand) of the region the predictions refer to},
     "targets": float32 array of the extra BED columns, only with ignore_targets: false}

The output schema declares no `targets`: Kipoi checks a dataloader's targets against the model's outputs
(`ModelSchema.compatible_with_schema`), and extra BED columns are whatever the user's file holds, not the model's
outputs ({label: ...} dicts): declaring them made every model print "dataloader.output_schema is not compatible
with model.schema". They are read only on request (`ignore_targets: false`).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from kipoi.data import Dataset, kipoi_dataloader
from kipoi.metadata import GenomicRanges

from . import kipoi_compat, provenance
from .folder import INFO_FILE, format_reference_contigs, read_folder_info
from .sequences import IntervalSequences, as_bool, window_spec

_DESCRIPTION = """
info:
    doc: >
        GENA-LM standardized dataloader. Reads BED intervals (BED3 to BED6 and more; extra columns from the 7th on
        are ignored unless ignore_targets is false; plain or gzip; track, browser, comment and header lines
        skipped) and returns, for each, the reference sequence the model reads: upper-case, reverse-complemented
        on '-' strands, N-padded where the window runs past a chromosome end. Chromosome names are matched across
        conventions (chr20 = 20, chrM = MT). Unknown chromosomes, malformed lines, intervals past a chromosome end
        and (for TSS-anchored windows) intervals without a strand are errors naming the file, raised before
        anything is predicted.
    authors:
        - name: GENA-LM Kipoi plugin (genalm-models)
    license: MIT
args:
    intervals_file:
        doc: >
            BED file (BED3..BED6 and more; plain or .gz); chr20 or 20 naming. TSS-anchored models (anchor tss)
            need the strand (column 6) of every interval: without it the run stops with an error naming the file
            and the count, unless use_strand is false
        example: {intervals_example}
    fasta_file:
        doc: >
            Reference FASTA, plain or BGZF-compressed. Without an index beside it (or in a read-only folder) an
            index is built once in ~/.cache/genalm_models (or $GENALM_CACHE_DIR)
        example: {fasta_example}
    sequence_length:
        doc: >
            Width (bp) of the region predictions refer to; null takes each interval as it is (any-length models).
            Each model sets its own window in model.yaml default_args
    anchor:
        doc: >
            center - the window is centred on the interval; tss - it is placed around the interval's 5' end
            (strand-aware), `upstream` bases upstream of it (GENA-LM promoter windows)
    upstream:
        doc: Bases upstream of the 5' end, for anchor tss
    flank:
        doc: >
            Context (bp) read on both sides of the window; per-nucleotide outputs are cropped back to the window
    use_strand:
        doc: >
            Reverse-complement intervals on the '-' strand (BED column 6); false reads every interval on '+' (and
            lets TSS-anchored models read intervals without a strand, as '+')
    reference_contigs:
        doc: >
            Contig lengths of the reference the model was trained on (contig=length,...). The FASTA's contigs
            used by the BED file are compared with them and a warning names any mismatch (wrong assembly).
            none/empty disables the check
        example: none
    ignore_targets:
        doc: >
            true (default) - extra BED columns (7th on) are ignored; false - they are read as numbers and returned
            as `targets` (not part of the output schema: they are the file's values, not the model's outputs)
output_schema:
    inputs:
        name: seq
        shape: ()
        special_type: DNAStringSeq
        doc: DNA sequence, 5' to 3' on the interval's strand
        associated_metadata: ranges
    metadata:
        ranges:
            type: GenomicRanges
            doc: >
                Region the predictions refer to (BED chromosome name, 0-based start, end, BED name, strand);
                start/end may lie beyond a chromosome end where the window was N-padded
"""


class _IntervalSeqDlBase(Dataset):
    """BED + FASTA -> DNA strings (the Kipoi description is added by `interval_dataloader_class`)."""

    def __init__(self, intervals_file, fasta_file, sequence_length=None, anchor="center", upstream=None, flank=0,
                 use_strand=True, reference_contigs=None, ignore_targets=True):
        kipoi_compat.apply()  # Kipoi's entry point for a dataloader: our patches to kipoi, once (kipoi_compat.py)
        started = provenance.start_run()  # the warnings of reading the inputs belong to this run's outputs
        window = window_spec(sequence_length, anchor, upstream, flank)
        self.sequences = IntervalSequences(intervals_file, fasta_file, window,
                                           use_strand=as_bool(use_strand, "use_strand"),
                                           reference_contigs=reference_contigs,
                                           ignore_targets=as_bool(ignore_targets, "ignore_targets"))
        checked = self.sequences.reference_mismatches or ("ok" if self.sequences.reference_matches
                                                          else "not checked")
        provenance.register_inputs({
            "intervals_file": str(intervals_file), "fasta_file": str(fasta_file),
            "n_intervals": len(self.sequences), "window": window.describe(), "reference_check": checked},
            started=started)

    def __len__(self):
        return len(self.sequences)

    def __getitem__(self, index):
        item = self.sequences[index]
        strand = item.region.strand if item.region.strand in ("+", "-") else "*"
        sample = {
            "inputs": np.array(item.sequence),
            "metadata": {"ranges": GenomicRanges(chr=item.interval.chrom, start=item.region.start,
                                                 end=item.region.end, id=self.sequences.region_id(item.interval),
                                                 strand=strand)},
        }
        if item.targets is not None:
            sample["targets"] = item.targets
        return sample

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # kipoi derives a class per model (its default_args) inside the model's folder: `get-example` needs it
        cls._model_folder = os.getcwd()

    @classmethod
    def download_example(cls, output_dir, absolute_path=False, dry_run=False):
        """`kipoi get-example`: copy the model folder's example files (kipoi itself copies only remote ones)."""
        from .examples import copy_examples

        return copy_examples(cls.args, getattr(cls, "_model_folder", None), output_dir, absolute_path, dry_run)


def interval_dataloader_class(name: str = "IntervalSeqDl", intervals_example: str = "example.bed",
                              fasta_example: str = "example.fa.gz", module: str | None = None,
                              defaults_from: str | os.PathLike | None = None) -> type:
    """A Kipoi dataloader class whose `kipoi test` examples are the given files (relative to the model folder).

    defaults_from: a model folder whose genalm.json supplies the default window and reference contigs (the root
    model uses it, so its model.yaml needs no copy of them); ignored when that folder has no genalm.json yet.
    """
    doc = _DESCRIPTION.replace("{intervals_example}", intervals_example).replace("{fasta_example}", fasta_example)
    namespace = {"__doc__": doc, "__module__": module or __name__}
    info_file = Path(defaults_from) / INFO_FILE if defaults_from is not None else None
    if info_file is not None and info_file.is_file():
        info = read_folder_info(defaults_from)
        window, contigs = info.window, format_reference_contigs(info.reference_contigs)

        def __init__(self, intervals_file, fasta_file, sequence_length=window.sequence_length,
                     anchor=window.anchor, upstream=window.upstream, flank=window.flank, use_strand=True,
                     reference_contigs=contigs, ignore_targets=True):
            _IntervalSeqDlBase.__init__(self, intervals_file, fasta_file, sequence_length, anchor, upstream, flank,
                                        use_strand, reference_contigs, ignore_targets)

        namespace["__init__"] = __init__
    cls = type(name, (_IntervalSeqDlBase,), namespace)
    return kipoi_dataloader()(cls)


IntervalSeqDl = interval_dataloader_class()

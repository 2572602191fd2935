"""The model folder format as the Kipoi plugin sees it, and the reference-contig facts its dataloader checks.

The folder format itself (`FolderInfo`, `WindowSpec`, genalm.json, checksums) is Kipoi-free and lives in
`genalm_models.model_folder`; it is re-exported here so plugin code and users can keep importing it from
`kipoi_genalm.folder`. What stays here: the reference contigs as a Kipoi dataloader argument string and their check
against a user's FASTA.
"""
from __future__ import annotations

from typing import Mapping

from genalm_models.genome.names import find_chrom
from genalm_models.model_folder import (  # noqa: F401  (re-exported)
    ANCHORS, FORMAT_VERSION, INFO_FILE, KINDS, WEIGHTS_FILE, FolderError, FolderInfo, WindowSpec, md5_file,
    read_folder_info, sha256_file, write_folder_info)


# ---------------------------------------------------------------------------------------------------------------
# Reference contigs: is the user's FASTA the assembly the model was trained on?
# ---------------------------------------------------------------------------------------------------------------
def format_reference_contigs(contigs: Mapping[str, int]) -> str:
    """`{"20": 63025520}` -> `"20=63025520"`: a plain string, as a Kipoi dataloader default argument must be."""
    return ",".join(f"{name}={length}" for name, length in contigs.items())


def parse_reference_contigs(text: str | Mapping[str, int] | None, where: str = "reference_contigs"
                            ) -> dict[str, int]:
    """The inverse of `format_reference_contigs`; None, "" and "none" mean "do not check"."""
    if text is None:
        return {}
    if isinstance(text, Mapping):
        return {str(k): int(v) for k, v in text.items()}
    text = str(text).strip()
    if text.lower() in ("", "none", "off", "false"):
        return {}
    contigs = {}
    for item in text.split(","):
        name, sep, length = item.strip().partition("=")
        if not sep or not name or not length.strip().isdigit():
            raise ValueError(f"{where}: {item!r} is not of the form contig=length (e.g. 20=63025520)")
        contigs[name] = int(length)
    return contigs


def compare_contigs(fasta_contigs: Mapping[str, int], reference: Mapping[str, int],
                    only: list[str] | None = None) -> tuple[list[str], list[str]]:
    """(mismatches, matches): messages for the contigs both sides know, under either naming convention.

    only: FASTA contig names to check (those the BED file uses); default all.
    """
    mismatches, matches = [], []
    for name in (only if only is not None else list(fasta_contigs)):
        length = fasta_contigs.get(name)
        if length is None:
            continue
        expected_name = find_chrom(name, reference)
        if expected_name is None:
            continue
        expected = reference[expected_name]
        if expected == length:
            matches.append(name)
        else:
            mismatches.append(f"contig {name} is {length:,} bp, but {expected_name} is {expected:,} bp in the "
                              "reference the model was trained on")
    return mismatches, matches

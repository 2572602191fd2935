"""Chromosome names across conventions: the one rule set of the package (no torch, no kipoi here).

UCSC spells human chromosomes `chr20`, `chrX`, `chrM`; Ensembl and NCBI spell them `20`, `X`, `MT`. Every place
that compares a name from one file with a name from another (BED vs FASTA, VCF vs FASTA, a user's `--contigs`,
split regions, a model folder's contig lengths) uses these functions, so they all agree:

- a leading `chr` is dropped, in any case (`chr20`, `Chr20`, `CHR20` -> `20`), when something follows it (a contig
  named just `chr` keeps its name);
- the mitochondrion is one contig whatever its spelling: `chrM`, `chrMT`, `M`, `MT` (any case) -> `MT`;
- everything else is compared exactly, case included (`chrUn_KI270302v1` and `chrUn_ki270302v1` differ), as
  samtools, pyfaidx and tabix compare names.
"""

from __future__ import annotations

from typing import Iterable, Optional

MITOCHONDRIAL = "MT"  # the canonical name of the mitochondrial chromosome
_MITOCHONDRIAL_SPELLINGS = ("MT", "M", "chrM", "chrMT")


def _without_chr(name: str) -> str:
    return name[3:] if len(name) > 3 and name[:3].lower() == "chr" else name


def canonical_chrom(name: str) -> str:
    """The one spelling of a chromosome used to compare names: `chr20`/`20` -> `20`, `chrM`/`M`/`MT` -> `MT`.

    A comparison key, not a name to write out: files keep their own spellings (use `find_chrom` to get the name
    another file uses).
    """
    bare = _without_chr(name)
    return MITOCHONDRIAL if bare.upper() in ("M", "MT") else bare


def same_chrom(a: str, b: str) -> bool:
    """True when `a` and `b` name the same chromosome under the rules above (`chr20` and `20`, `chrM` and `MT`)."""
    return canonical_chrom(a) == canonical_chrom(b)


def chrom_spellings(name: str) -> list[str]:
    """The other spellings of `name`, most likely first: `chr20` -> [`20`]; `20` -> [`chr20`];
    `chrM` -> [`M`, `MT`, `chrMT`]. `name` itself is not in the list."""
    bare = _without_chr(name)
    candidates = [bare, f"chr{bare}"]
    if canonical_chrom(name) == MITOCHONDRIAL:
        candidates += list(_MITOCHONDRIAL_SPELLINGS)
    return [spelling for spelling in dict.fromkeys(candidates) if spelling != name]


def find_chrom(name: str, available: Iterable[str]) -> Optional[str]:
    """The name `available` (a FASTA's or a table's contig names) uses for chromosome `name`, or None.

    `name` itself when present; otherwise the first of `chrom_spellings(name)` that is present.
    """
    names = available if isinstance(available, (set, frozenset, dict)) else set(available)
    if name in names:
        return name
    return next((spelling for spelling in chrom_spellings(name) if spelling in names), None)

"""Shared pytest fixtures: the small, real test files in tests/data (see tests/data/make_test_data.py)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import pytest

DATA_DIR = Path(__file__).resolve().parent / "data"

@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA_DIR


@pytest.fixture(scope="session")
def chr20_fasta() -> Path:
    """BGZF FASTA (with .fai and .gzi beside it): GRCh37 chr20:0-2,000,000 under the name `20`.

    Real coordinates: it starts with the chromosome's 60,000 bp N run (first base 60,000 is G).
    """
    return DATA_DIR / "chr20_2mb.fa.gz"


@pytest.fixture(scope="session")
def promoters_bed() -> Path:
    """EPDnew TSSs (BED6, 1-bp, names like DEFB125_1, `chr20`) lying in the FASTA slice."""
    return DATA_DIR / "promoters_chr20_2mb.bed"


@pytest.fixture(scope="session")
def spliceai_table() -> Path:
    """SpliceAI canonical transcripts (name, paralog, chrom, strand, tx start, tx end, exon ends,
    exon starts) lying fully in the FASTA slice."""
    return DATA_DIR / "spliceai_chr20_2mb.txt"


@pytest.fixture(scope="session", autouse=True)
def index_cache_dir(tmp_path_factory) -> Iterator[Path]:
    """A private FASTA index cache for the whole session, so tests never write to the user's ~/.cache.

    `genalm_models.genome.Genome` builds indexes under $GENALM_CACHE_DIR when the FASTA has none beside it.
    """
    cache = tmp_path_factory.mktemp("genalm_cache")
    previous = os.environ.get("GENALM_CACHE_DIR")
    os.environ["GENALM_CACHE_DIR"] = str(cache)
    yield cache
    if previous is None:
        os.environ.pop("GENALM_CACHE_DIR", None)
    else:
        os.environ["GENALM_CACHE_DIR"] = previous


@pytest.fixture(scope="session")
def chr20_genome(chr20_fasta):
    """A `genalm_models.genome.Genome` over the chr20 slice, shared by the whole session."""
    from genalm_models.genome import Genome

    return Genome(chr20_fasta)

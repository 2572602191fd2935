"""The GENA-LM pretraining corpus: genome (and haplotype) sequence cut into documents of sentences.

The published recipe (docs/gena-lm-reference.md, "Pretraining corpus"), and how it is implemented here:

* A **document** is a contiguous stretch of one sequence, made of 50-100 consecutive **sentences** of random
  length 500-1000 bp. Documents are tiled along the sequence: the next document starts where the previous one
  ended. Tiling starts at a random offset of 0-5 kb, drawn anew in each of the 10 **passes**, so that sentence
  and document boundaries differ between passes.
* Both strands: every document is written once as read on '+' and once reverse-complemented ('-'). The '-'
  document holds the same bases: its sentences are the reverse complements of the '+' sentences, in reverse
  order, so that joining them gives the reverse complement of the '+' document.
* FASTA sequences shorter than `min_contig_length` (10 kb) and mitochondria (MT/chrM/...) are left out; the
  user can exclude more, or name the only contigs to use. Everything is upper case.
* **N runs.** As in the published pipeline (which cut chromosomes into gap-free contigs first), a run of at
  least `split_n_run_bp` N (default 50; assembly gaps) splits a sequence into **stretches**: documents never
  span such a run, the last document and the last sentence of a stretch may be shorter (a final sentence
  shorter than the minimum sentence length is dropped), stretches shorter than `min_stretch_bp` (10 kb) are
  skipped, and each stretch starts at its own random 0-5 kb offset. Shorter N runs stay inside sentences; a
  sentence with more than `max_n_fraction` (50%) N is skipped, and the document ends there (documents stay
  contiguous) and a new one starts after the skipped sentence. With `split_n_run_bp=None` nothing is split
  and only the sentence rule applies.
* **Population variants.** With a VCF, every selected sample gives two haplotypes: the reference with that
  haplotype's alleles applied (SNVs, MNVs, insertions and deletions; any REF/ALT pair is applied as "replace
  the REF bases by the ALT bases"). Each haplotype is tiled like the reference, on both strands. Decisions:
    - Phased `0|1` genotypes give haplotype 1 (first allele) and 2 (second). Unphased `0/1` genotypes whose
      two alleles differ are, by default, taken as phased in the order written (`unphased="as_phased"`, and
      counted); `"skip"` leaves both haplotypes on the reference there, `"error"` stops.
    - A haploid genotype (`1`) is applied to haplotype 1 only; a missing allele (`.`) is the reference;
      symbolic (`<DEL>`), `*` and breakend alleles are not applied. All are counted.
    - REF must match the FASTA: a mismatch raises GenomeError naming the VCF file and line (or, with
      `ref_mismatch="skip"`, the record is dropped and counted). This is checked for all variants before any
      output is written.
    - Overlapping variants on one haplotype: the first (lowest position, then file order) is kept and later
      ones overlapping it are skipped and counted.
* Nothing loads a whole chromosome as one string: sequence is read in `read_chunk_bp` windows with
  `Genome.fetch`, and haplotype sequence is produced window by window by applying that window's variants
  (`apply_variants`), so memory stays at a few windows whatever the chromosome size.

Output (folder `output_dir`): shards `shard_00000.jsonl` (or `.jsonl.gz`), each written atomically, holding
`documents_per_shard` documents, one JSON object per line::

    {"contig": "20", "strand": "+", "start": 60123, "end": 118456, "haplotype": null, "pass": 0,
     "sentences": ["ACGT...", ...]}

`start`/`end` are 0-based, half-open reference coordinates of the bases the document covers; `pass` counts
from 0; `haplotype` is null for the reference and `"SAMPLE:1"` / `"SAMPLE:2"` for a sample's haplotypes, whose
documents also carry `hap_start`/`hap_end`, the span on that haplotype's own sequence (with indels the two
spans differ in length). Documents are written pass by pass (each pass covers all contigs and haplotypes), so
the first shards already hold one full pass. `manifest.json`, written last, lists the shards with their
document, sentence and bp counts, the skipped counts, a bp accounting, and the config. A folder without a
manifest is an unfinished build, and the readers refuse it.

The output is a function of the config and the seed alone: the same inputs give byte-identical shards.

The code, by concept: `corpus_config` (CorpusConfig), `contigs` (which sequences, how they are read, masked
regions), `haplotypes` (VCF samples' haplotypes), `tiling` (one sequence into documents), `shards` (the files on
disk and their readers); this module builds a corpus from them and holds the `corpus` command.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import random
import sys
import time
from pathlib import Path
from typing import Any, Optional, Sequence

from genalm_models.genome import Genome, GenomeError
from genalm_models.genome.variants import apply_variants

from .contigs import ContigPlan, MaskedGenome, plan_contigs, read_exclusions, reference_chunks
from .corpus_config import (OUTPUT_FORMATS, REF_MISMATCH_MODES, UNPHASED_MODES, CorpusConfig, CorpusError,
                            PathLike)
from .haplotypes import Haplotype, Variant, load_haplotypes, without_regions
from .shards import (FORMAT_VERSION, MANIFEST_NAME, ShardWriter, corpus_shard_paths, iter_corpus_documents,
                     iter_corpus_sentences, iter_shard_documents, prepare_output_dir, read_corpus_manifest,
                     write_manifest)
from .tiling import TileCounts, minus_strand_sentences, tile_documents

__all__ = [
    "CorpusConfig", "CorpusError", "OUTPUT_FORMATS", "UNPHASED_MODES", "REF_MISMATCH_MODES", "PathLike",
    "Variant", "Haplotype", "apply_variants", "TileCounts", "tile_documents",
    "FORMAT_VERSION", "MANIFEST_NAME", "read_corpus_manifest", "corpus_shard_paths", "iter_shard_documents",
    "iter_corpus_documents", "iter_corpus_sentences",
    "build_corpus", "add_corpus_arguments", "corpus_config_from_arguments", "corpus_main",
]

logger = logging.getLogger(__name__)


def build_corpus(config: CorpusConfig) -> dict[str, Any]:
    """Build the corpus described by `config` into `config.output_dir`; returns the manifest (plus timing).

    Raises CorpusError for a bad config or a non-empty output folder (unless `overwrite`), GenomeError for
    bad FASTA/VCF input (naming file and line). On any error the shards written so far are removed.
    """
    config.validate()
    began = time.perf_counter()
    output_dir = Path(config.output_dir)
    genomes = [Genome(path) for path in config.fasta_paths]
    try:
        skipped: dict[str, Any] = {"contigs_excluded": [], "contigs_too_short": 0, "bp_in_contigs_too_short": 0}
        plans = plan_contigs(genomes, config, skipped)
        if not plans:
            raise CorpusError(
                f"no contig of {', '.join(config.fasta_paths)} is left to tile (min_contig_length="
                f"{config.min_contig_length}, excluded: {skipped['contigs_excluded']})"
            )
        variant_counts: dict[str, int] = {}
        haplotypes: dict[str, list[Haplotype]] = {}
        if config.vcf_path is not None:
            names = [plan.name for plan in plans]
            duplicated = sorted({name for name in names if names.count(name) > 1})
            if duplicated:
                raise CorpusError(
                    f"contig(s) {', '.join(duplicated)} appear in more than one FASTA file, so the VCF "
                    f"{config.vcf_path} cannot tell which one its variants belong to"
                )
            haplotypes = load_haplotypes(
                config.vcf_path,
                {plan.name: plan for plan in plans},
                samples=config.samples,
                unphased=config.unphased,
                ref_mismatch=config.ref_mismatch,
                chunk_bp=config.read_chunk_bp,
                counts=variant_counts,
            )
        if config.exclude_regions is not None:
            masks = read_exclusions(config.exclude_regions, plans)
            plans = [dataclasses.replace(plan, genome=MaskedGenome(plan.genome, masks)) for plan in plans]
            haplotypes = {name: [without_regions(hap, masks.get(name, [])) for hap in haps]
                          for name, haps in haplotypes.items()}
            skipped["excluded_region_bp"] = sum(end - start for spans in masks.values() for start, end in spans)
        # The output folder is touched only once every input has been checked.
        prepare_output_dir(output_dir, config.overwrite)
        writer = ShardWriter(output_dir, config.documents_per_shard, config.output_format)
        try:
            counts, source_bp = _write_documents(config, plans, haplotypes, writer)
            shards = writer.close()
        except BaseException as error:
            writer.abort(error)
            raise
    finally:
        for genome in genomes:
            genome.close()

    manifest = {
        "format_version": FORMAT_VERSION,
        "documents": sum(shard["documents"] for shard in shards),
        "sentences": sum(shard["sentences"] for shard in shards),
        "bp": sum(shard["bp"] for shard in shards),
        "shards": shards,
        "contigs": [
            {
                "name": plan.name,
                "fasta": config.fasta_paths[plan.fasta_index],
                "length": plan.length,
                "haplotypes": [
                    {"label": hap.label, "length": hap.length, "variants": len(hap)}
                    for hap in haplotypes.get(plan.name, [])
                ],
            }
            for plan in plans
        ],
        "skipped": {
            **skipped,
            "short_stretches": counts.short_stretches,
            "mostly_n_sentences": counts.mostly_n_sentences,
        },
        # Per pass and sequence, on the '+' strand: where each base went. The bp fields sum to source_bp.
        "accounting": {
            "source_bp": source_bp,
            "document_bp": counts.document_bp,
            "n_run_bp": counts.n_run_bp,
            "short_stretch_bp": counts.short_stretch_bp,
            "offset_bp": counts.offset_bp,
            "mostly_n_sentence_bp": counts.mostly_n_sentence_bp,
            "dropped_tail_bp": counts.dropped_tail_bp,
        },
        "variants": variant_counts,
        "config": config.to_dict(),
    }
    write_manifest(output_dir, manifest)
    elapsed = time.perf_counter() - began
    logger.info(
        "corpus: %d documents, %d bp in %d shards, %.1f s (%.2f Mbp/s of source sequence)",
        manifest["documents"], manifest["bp"], len(shards), elapsed, source_bp / max(elapsed, 1e-9) / 1e6,
    )
    return {**manifest, "output_dir": str(output_dir), "elapsed_seconds": elapsed}




def _write_documents(
    config: CorpusConfig,
    plans: list[ContigPlan],
    haplotypes: dict[str, list[Haplotype]],
    writer: ShardWriter,
) -> tuple[TileCounts, int]:
    """Tile every (pass, contig, sequence) and write its documents; returns the counts and source bp."""
    total = TileCounts()
    source_bp = 0
    for pass_number in range(config.passes):
        for plan in plans:
            sequences: list[Optional[Haplotype]] = [None] if config.include_reference else []
            sequences += haplotypes.get(plan.name, [])
            for haplotype in sequences:
                label = None if haplotype is None else haplotype.label
                # One generator per sequence and pass, keyed by name: a sequence's documents do not depend
                # on which other contigs or samples are in the corpus.
                rng = random.Random(f"{config.seed}|{pass_number}|{plan.fasta_index}|{plan.name}|{label}")
                if haplotype is None:
                    chunks = reference_chunks(plan.genome, plan.name, plan.length, config.read_chunk_bp)
                    source_bp += plan.length
                else:
                    chunks = haplotype.chunks(plan.genome, config.read_chunk_bp)
                    source_bp += haplotype.length
                logger.info("corpus: pass %d, %s, %s", pass_number, plan.name, label or "reference")
                counts = TileCounts()
                for start, sentences in tile_documents(chunks, rng, config, counts):
                    bp = sum(len(sentence) for sentence in sentences)
                    end = start + bp
                    counts.document_bp += bp
                    document: dict[str, Any] = {"contig": plan.name, "strand": "+"}
                    if haplotype is None:
                        document.update(start=start, end=end, haplotype=None)
                    else:
                        document.update(
                            start=haplotype.to_reference(start),
                            end=haplotype.to_reference(end),
                            haplotype=label,
                            hap_start=start,
                            hap_end=end,
                        )
                    document["pass"] = pass_number
                    document["sentences"] = sentences
                    writer.write(document, bp)
                    if config.both_strands:
                        document["strand"] = "-"
                        document["sentences"] = minus_strand_sentences(sentences)
                        writer.write(document, bp)
                total.add(counts)
    return total, source_bp


# ---------------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------------


def add_corpus_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the corpus options to an argparse parser (e.g. the `corpus` sub-command of the training CLI)."""
    defaults = CorpusConfig(fasta_paths=["-"], output_dir="-")
    parser.add_argument("--fasta", dest="fasta_paths", nargs="+", required=True, help="FASTA file(s), plain or BGZF")
    parser.add_argument("--output-dir", required=True, help="folder for the shards and manifest.json")
    parser.add_argument("--passes", type=int, default=defaults.passes)
    parser.add_argument("--sentences-per-document", type=int, nargs=2, metavar=("MIN", "MAX"),
                        default=list(defaults.sentences_per_document))
    parser.add_argument("--sentence-bp", type=int, nargs=2, metavar=("MIN", "MAX"), default=list(defaults.sentence_bp))
    parser.add_argument("--max-start-offset", type=int, default=defaults.max_start_offset)
    parser.add_argument("--min-contig-length", type=int, default=defaults.min_contig_length)
    parser.add_argument("--contigs", nargs="+", default=None, help="use only these contigs")
    parser.add_argument("--exclude-contigs", nargs="+", default=[], help="leave these out (mitochondria always are)")
    parser.add_argument("--keep-mitochondria", action="store_true", help="do not exclude MT/chrM")
    parser.add_argument("--one-strand", action="store_true", help="do not add the reverse-complement documents")
    parser.add_argument("--max-n-fraction", type=float, default=defaults.max_n_fraction)
    parser.add_argument("--split-n-run-bp", type=int, default=defaults.split_n_run_bp,
                        help="N runs at least this long split stretches (0: never split)")
    parser.add_argument("--min-stretch-bp", type=int, default=defaults.min_stretch_bp)
    parser.add_argument("--vcf", dest="vcf_path", default=None, help="VCF with the population variants to apply")
    parser.add_argument("--samples", nargs="+", default=None, help="VCF samples to use (default: all)")
    parser.add_argument("--no-reference", action="store_true", help="with --vcf, emit only the haplotypes")
    parser.add_argument("--unphased", choices=UNPHASED_MODES, default=defaults.unphased)
    parser.add_argument("--ref-mismatch", choices=REF_MISMATCH_MODES, default=defaults.ref_mismatch)
    parser.add_argument("--documents-per-shard", type=int, default=defaults.documents_per_shard)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--output-format", choices=OUTPUT_FORMATS, default=defaults.output_format)
    parser.add_argument("--overwrite", action="store_true", help="replace a corpus already in --output-dir")
    parser.add_argument("--exclude-regions", default=None,
                        help="BED of regions masked with N (e.g. held-out test regions of the fine-tuning tasks)")


def corpus_config_from_arguments(args: argparse.Namespace) -> CorpusConfig:
    """The CorpusConfig described by arguments parsed with `add_corpus_arguments`."""
    return CorpusConfig(
        fasta_paths=args.fasta_paths,
        output_dir=args.output_dir,
        passes=args.passes,
        sentences_per_document=tuple(args.sentences_per_document),
        sentence_bp=tuple(args.sentence_bp),
        max_start_offset=args.max_start_offset,
        min_contig_length=args.min_contig_length,
        contigs=args.contigs,
        exclude_contigs=args.exclude_contigs,
        exclude_mitochondria=not args.keep_mitochondria,
        both_strands=not args.one_strand,
        max_n_fraction=args.max_n_fraction,
        split_n_run_bp=args.split_n_run_bp or None,
        min_stretch_bp=args.min_stretch_bp,
        vcf_path=args.vcf_path,
        samples=args.samples,
        include_reference=not args.no_reference,
        unphased=args.unphased,
        ref_mismatch=args.ref_mismatch,
        documents_per_shard=args.documents_per_shard,
        seed=args.seed,
        output_format=args.output_format,
        overwrite=args.overwrite,
        exclude_regions=args.exclude_regions,
    )


def corpus_main(argv: Optional[Sequence[str]] = None) -> int:
    """`corpus` command: build a corpus from command-line arguments; prints a one-line summary, returns 0.

    Input problems print `error: <message naming file and line>` and return 2.
    """
    parser = argparse.ArgumentParser(
        prog="corpus", description="Build the GENA-LM pretraining corpus (documents of sentences, JSONL shards)."
    )
    add_corpus_arguments(parser)
    args = parser.parse_args(argv)
    try:
        summary = build_corpus(corpus_config_from_arguments(args))
    except (CorpusError, GenomeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(
        f"{summary['documents']} documents, {summary['sentences']} sentences, {summary['bp']} bp in "
        f"{len(summary['shards'])} shard(s) in {summary['output_dir']} ({summary['elapsed_seconds']:.1f} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(corpus_main())

"""Variant-effect scoring in the kipoi-veff style, for every GENA-LM model.

    from kipoi_genalm.veff import ScoreVariantsOptions, score_variants
    result = score_variants(ScoreVariantsOptions("GENA-LM/promoter", {"fasta_file": "genome.fa"}, "in.vcf.gz",
                                                 "out.vcf.gz", scores=["ref", "alt", "diff", "logit"],
                                                 output_table="out.tsv"))
    print(result.summary())
    # the same, keyword form: score_variants("GENA-LM/promoter", {"fasta_file": ...}, "in.vcf.gz", "out.vcf.gz", ...)

    genalm-kipoi score-variants GENA-LM/promoter --vcf in.vcf.gz --fasta genome.fa -o out.vcf.gz --table out.tsv

First, the VCF's coordinates are checked against the FASTA (`screen_reference`): when REF disagrees with the
FASTA (or lies past a chromosome end) at >= 10% of at least 20 records checked among the first 10,000 records with
an ALT on a chromosome of the FASTA, the VCF is for another assembly or another coordinate system (0-based POS,
...): the run is refused before anything is predicted, with examples and, when POS looks shifted by one, that
diagnosis; `allow_ref_mismatch=True` (`--allow-ref-mismatch`) scores anyway with a warning (logged, in the summary
and the provenance sidecar). With the right reference virtually every REF matches (a VCF is written against its
reference), while a VCF on shifted coordinates or another assembly mismatches at 40-80% of its records (chance
matches of single bases), so 10% separates them with a wide margin; 20 records keep one or two odd records of a
tiny VCF from deciding. A whole file that crosses the same threshold only after the first 10,000 records gets the
warning at the end.

Then, per VCF record, streaming (records are read, scored and written in chunks of `chunk_size`):
1. check REF against the FASTA; skip (never score, never fail on) records and ALTs that cannot be scored - no
   ALT, unknown chromosome, REF past the chromosome end, REF mismatch, REF with N (or another ambiguity code),
   symbolic/breakend/`*` ALTs, ALTs with IUPAC ambiguity codes, REF longer than the window, or (region mode) a
   variant in no region's window - flagging them per ALT in the INFO field KV_SKIPPED and counting them. Letters
   that are neither bases nor IUPAC codes (U, X, ...) are an error naming the file and line;
2. trim each ALT to its minimal form, left-align indels against the reference (as `bcftools norm`; the allele as
   scored goes into INFO KV_NORMALISED when it differs from the record) and build the reference window and the
   alternative window the model reads
   (centred on the variant at the model's input length, or the model window of each BED region holding it);
   indels keep the window length and the variant position (deletions extend the window's 3' end with reference
   bases, insertions trim it): see veff_variants.py;
3. predict through the model's one predict path (`FolderModel` -> `genalm_models.predict.Predictor`: length-aware
   batches, device, bf16, reverse-complement averaging); each reference window is predicted once, however many
   variants it holds (an LRU cache of reference outputs, keyed by window, bounded by `cache_mb`);
4. compute the scores (veff_scores.py) and write them as INFO fields `KV:<source>:<model>:<SCORE>`, Number=A
   (values of the ALTs `,`-separated in ALT order, `.` for a skipped ALT; the model outputs of one ALT
   `|`-separated, in the order the header description lists them); optionally a table with one row per
   (variant, ALT, window) - `.tsv`, `.tsv.gz` or `.parquet` (pyarrow). The header records the model:
   `##KV_model=<ID=GENA-LM/promoter,source=kipoi,version=...,sha256=...,kind=...,window=...,mode=...>`.
Outputs are written atomically (temporary file in the output folder, moved into place at the end): an interrupted or
failed run leaves no output under the final name. `.vcf.gz` / `.bgz` outputs are BGZF (tabix-ready).

Scores by model kind (default in brackets; `scores=` picks any of the kind's):
  sequence   ref, alt, diff, logit_ref, logit_alt, logit                 [all six]
  token      max_diff, max_diff_offset: the largest change of each label's per-base probability within
             `splice_distance` bp of the variant, and its signed genomic offset [both]
  embedding  cosine_distance, l2_distance of the pooled embeddings      [both]
  mlm        pll_ref, pll_alt, llr                                       [llr]
rc_average=True averages every model output over both strands before the scores are computed (sequence
probabilities, per-base tracks flipped back, pooled embeddings, and for the MLM the pseudo-log-likelihoods).

Zero-shot score of the masked LM (kind mlm), `llr` = PLL(ALT window) - PLL(REF window), where PLL of a window is
the pseudo-log-likelihood of a fixed stretch of bases: the `llr_flank` bases before the variant, the allele's
bases, and the `llr_flank` bases after it (REF: flank + trimmed REF + flank; ALT: flank + trimmed ALT + flank, in
the ALT window, where the flanking bases are the same reference bases). Each token overlapping the stretch is
replaced by [MASK] on its own (everything else unmasked), and log P(true token) is spread evenly over the token's
bases; the stretch collects the share of the bases it holds (`Predictor.pseudo_log_likelihood`). Because the score
refers to the same bases whatever the tokenization, alleles that tokenize differently compare; ALT == REF (or any
ALT window equal to the REF window) gives exactly 0. For indels the stretches differ by the allele length: the
llr is the log-likelihood ratio of the two haplotypes' stretches, as for any likelihood of sequences of
different length. A stretch that does not fit in the window (very long indels) gives nan.


Where the code is, by concept (this module is the entry point and the documentation):
  veff_load.py      the model as the scorer loads it (ScoringModel, load_scoring_model, find_model_folder)
  veff_scorers.py   reference + alternative windows -> scores, each reference window predicted once
  veff_run.py       ScoreVariantsOptions, run_score_variants (checks, coordinate screen, chunks, outputs), ScoreResult
  veff_variants.py  alleles, normalisation, windows; veff_scores.py the score functions; veff_mlm.py the
                    masked-marginal estimator; veff_io.py VCF header/INFO and table output; veff_plot.py plots
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any, Mapping

from .veff_load import ScoringModel, find_model_folder, load_scoring_model  # noqa: F401  (the public names)
from .veff_run import (  # noqa: F401
    DEFAULT_CACHE_MB, DEFAULT_CHUNK_SIZE, DEFAULT_LLR_FLANK, DEFAULT_SPLICE_DISTANCE, DL_ARG_NAMES,
    REF_SCREEN_MIN_CHECKED, ReferenceScreen, ScoreResult, ScoreVariantsOptions, run_score_variants,
    screen_reference)
from .veff_scorers import Job, MlmScorer, OutputScorer, WindowCache  # noqa: F401

__all__ = ["score_variants", "ScoreVariantsOptions", "run_score_variants", "ScoreResult", "ScoringModel",
           "load_scoring_model", "find_model_folder", "screen_reference", "ReferenceScreen", "Job", "WindowCache",
           "OutputScorer", "MlmScorer", "DEFAULT_CACHE_MB", "DEFAULT_CHUNK_SIZE", "DEFAULT_LLR_FLANK",
           "DEFAULT_SPLICE_DISTANCE", "DL_ARG_NAMES", "REF_SCREEN_MIN_CHECKED"]


def score_variants(options: ScoreVariantsOptions | Any, dl_args: Mapping[str, Any] | None = None,
                   input_vcf: str | os.PathLike | None = None, output_vcf: str | os.PathLike | None = None,
                   **settings: Any) -> ScoreResult:
    """Score the variants of a VCF (module docstring): `score_variants(ScoreVariantsOptions(...))`.

    The keyword form `score_variants(model, dl_args, input_vcf, output_vcf, scores=..., ...)` builds the options
    from the same names (ScoreVariantsOptions documents each); an unknown name is a TypeError naming it.
    """
    if isinstance(options, ScoreVariantsOptions):
        if dl_args is not None or input_vcf is not None or output_vcf is not None or settings:
            raise TypeError("score_variants(options): give everything in the ScoreVariantsOptions, nothing else")
        return run_score_variants(options)
    known = {f.name for f in dataclasses.fields(ScoreVariantsOptions)}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise TypeError(f"score_variants: unknown option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    if dl_args is None or input_vcf is None or output_vcf is None:
        raise TypeError("score_variants(model, dl_args, input_vcf, output_vcf, ...): dl_args, input_vcf and "
                        "output_vcf are required")
    return run_score_variants(ScoreVariantsOptions(options, dl_args, input_vcf, output_vcf, **settings))

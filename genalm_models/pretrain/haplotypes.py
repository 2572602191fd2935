"""Population variants applied to the reference: each VCF sample's two haplotypes, streamed window by window.

The decisions (phasing, haploid and missing calls, symbolic alleles, REF checks, overlaps) are listed in the
`pretrain.corpus` docstring. Sequence is produced by `genome.variants.apply_variants`, the package's one applier.
"""

from __future__ import annotations

import bisect
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, NamedTuple, Optional, Sequence

from genalm_models.genome import Genome, GenomeError, VcfReader, parse_genotype
from genalm_models.genome.names import chrom_spellings
from genalm_models.genome.variants import apply_variants

from .corpus_config import PathLike

if TYPE_CHECKING:
    from .contigs import ContigPlan


class Variant(NamedTuple):
    """One allele to apply: REF bases at 0-based `start` replaced by `alt`. `line`: its VCF line, if any."""

    start: int
    ref: str
    alt: str
    line: Optional[int] = None

    @property
    def end(self) -> int:
        return self.start + len(self.ref)


class Haplotype:
    """The variants of one haplotype on one contig, non-overlapping and sorted, with coordinate maps.

    Haplotype coordinates are positions on the haplotype's own sequence; `to_reference` maps them back.
    """

    def __init__(self, label: str, contig: str, reference_length: int, variants: Sequence[Variant]):
        self.label = label
        self.contig = contig
        self.reference_length = reference_length
        self.starts = [variant.start for variant in variants]
        self.ends = [variant.end for variant in variants]
        self.refs = [variant.ref for variant in variants]
        self.alts = [variant.alt for variant in variants]
        self.hap_starts = []  # where each variant's ALT allele starts on the haplotype
        shift = 0
        for variant in variants:
            self.hap_starts.append(variant.start + shift)
            shift += len(variant.alt) - len(variant.ref)
        self.length = reference_length + shift

    def __len__(self) -> int:
        return len(self.starts)

    def to_reference(self, hap_position: int) -> int:
        """The reference position a haplotype position derives from (works for half-open ends too).

        Inside an ALT allele, position k of the allele maps to REF base k (or just past REF when the allele
        is longer), so the map never decreases.
        """
        index = bisect.bisect_right(self.hap_starts, hap_position) - 1
        if index < 0:
            return hap_position
        into_allele = hap_position - self.hap_starts[index]
        ref_length = self.ends[index] - self.starts[index]
        if into_allele < len(self.alts[index]):
            return self.starts[index] + min(into_allele, ref_length)
        return self.ends[index] + into_allele - len(self.alts[index])

    def chunks(self, genome: Genome, chunk_bp: int) -> Iterator[str]:
        """The haplotype sequence, window by window (their concatenation is the whole haplotype)."""
        first_variant = 0
        window_start = 0
        while window_start < self.reference_length:
            window_end = min(self.reference_length, window_start + chunk_bp)
            after_window = bisect.bisect_left(self.starts, window_end, lo=first_variant)
            # A variant starting in this window but ending past it would be cut in two: widen the window to
            # its end. Only the last one can, as variants do not overlap.
            if after_window > first_variant and self.ends[after_window - 1] > window_end:
                window_end = self.ends[after_window - 1]
            reference = genome.fetch(self.contig, window_start, window_end)
            yield apply_variants(
                reference,
                window_start,
                zip(
                    self.starts[first_variant:after_window],
                    self.refs[first_variant:after_window],
                    self.alts[first_variant:after_window],
                ),
            )
            first_variant = after_window
            window_start = window_end


def _is_applicable_allele(allele: str) -> bool:
    """Plain bases only: symbolic `<DEL>`, the spanning-deletion `*` and breakends are not sequence."""
    return allele.isalpha()


def load_haplotypes(
    vcf_path: PathLike,
    contigs: dict[str, "ContigPlan"],
    samples: Optional[Sequence[str]] = None,
    unphased: str = "as_phased",
    ref_mismatch: str = "error",
    chunk_bp: int = 1_000_000,
    counts: Optional[dict[str, int]] = None,
) -> dict[str, list[Haplotype]]:
    """Read a VCF and build each selected sample's two haplotypes on each contig in `contigs`.

    Returns contig name -> haplotypes, in sample order (`SAMPLE:1`, `SAMPLE:2`, ...). `counts` (optional)
    receives the numbers of unphased, haploid, missing, unsupported, overlapping, mismatching and
    off-contig calls. REF alleles are checked against the FASTA before anything is returned.
    """
    counts = counts if counts is not None else {}
    for key in (
        "vcf_records",
        "vcf_records_on_other_contigs",
        "unphased_genotypes",
        "haploid_genotypes",
        "missing_alleles",
        "unsupported_alleles",
        "ref_mismatch_records_skipped",
        "overlapping_variants_skipped",
        "variants_applied",
    ):
        counts.setdefault(key, 0)
    # VCF names may use the other convention (chr20 vs 20): map every spelling to the planned contig.
    contig_by_name: dict[str, str] = {}
    for name in contigs:
        for spelling in [name, *chrom_spellings(name)]:
            contig_by_name.setdefault(spelling, name)

    with VcfReader(vcf_path) as reader:
        vcf = reader.path
        if not reader.samples:
            raise GenomeError(f"{vcf}: the VCF has no sample columns, so there are no haplotypes to build")
        if samples is None:
            samples = list(reader.samples)
        missing = [name for name in samples if name not in reader.samples]
        if missing:
            shown = ", ".join(reader.samples[:10]) + (" ..." if len(reader.samples) > 10 else "")
            raise GenomeError(f"{vcf}: sample(s) {', '.join(missing)} not in the VCF; it has: {shown}")
        if len(set(samples)) != len(samples):
            raise GenomeError(f"{vcf}: a sample is listed twice in {list(samples)}")
        columns = [reader.samples.index(name) for name in samples]
        # raw[contig][sample_number][haplotype_number] -> variants in file order
        raw: dict[str, list[list[list[Variant]]]] = {
            name: [[[], []] for _ in samples] for name in contigs
        }
        for record in reader:
            counts["vcf_records"] += 1
            contig = contig_by_name.get(record.chrom)
            if contig is None:
                counts["vcf_records_on_other_contigs"] += 1
                continue
            where = f"{vcf}:{record.line}"
            keys = (record.format or "").split(":")
            if "GT" not in keys:
                raise GenomeError(f"{where}: FORMAT {record.format!r} has no GT field")
            gt_index = keys.index("GT")
            ref = record.ref.upper()
            for sample_number, column in enumerate(columns):
                values = record.samples[column].split(":")
                text = values[gt_index] if gt_index < len(values) else "."
                try:
                    genotype = parse_genotype(text)
                except GenomeError as exc:
                    raise GenomeError(f"{where}: sample {samples[sample_number]}: {exc}") from None
                alleles = genotype.alleles
                if len(alleles) > 2:
                    raise GenomeError(
                        f"{where}: sample {samples[sample_number]}: GT {text!r} has {len(alleles)} alleles; "
                        f"only haploid and diploid genotypes are supported"
                    )
                if len(alleles) == 1:
                    if alleles[0]:
                        counts["haploid_genotypes"] += 1
                elif not genotype.phased and alleles[0] != alleles[1]:
                    counts["unphased_genotypes"] += 1
                    if unphased == "error":
                        raise GenomeError(
                            f"{where}: sample {samples[sample_number]}: unphased heterozygous GT {text!r} "
                            f"(unphased='error')"
                        )
                    if unphased == "skip":
                        continue
                for haplotype_number, allele in enumerate(alleles):
                    if allele is None:
                        counts["missing_alleles"] += 1
                        continue
                    if allele == 0:
                        continue
                    if allele > len(record.alts):
                        raise GenomeError(
                            f"{where}: sample {samples[sample_number]}: allele {allele} in GT {text!r} but "
                            f"only {len(record.alts)} ALT allele(s)"
                        )
                    alt = record.alts[allele - 1]
                    if not _is_applicable_allele(alt):
                        counts["unsupported_alleles"] += 1
                        continue
                    raw[contig][sample_number][haplotype_number].append(
                        Variant(record.start, ref, alt.upper(), record.line)
                    )

    result: dict[str, list[Haplotype]] = {}
    for contig, per_sample in raw.items():
        plan = contigs[contig]
        bad_lines = _check_reference_alleles(
            plan.genome, contig, plan.length, per_sample, vcf, ref_mismatch, chunk_bp
        )
        counts["ref_mismatch_records_skipped"] += len(bad_lines)
        haplotypes = []
        for sample_number, per_haplotype in enumerate(per_sample):
            for haplotype_number, variants in enumerate(per_haplotype):
                kept = _without_overlaps([v for v in variants if v.line not in bad_lines], counts)
                counts["variants_applied"] += len(kept)
                label = f"{samples[sample_number]}:{haplotype_number + 1}"
                haplotypes.append(Haplotype(label, contig, plan.length, kept))
        result[contig] = haplotypes
    return result


def _without_overlaps(variants: list[Variant], counts: dict[str, int]) -> list[Variant]:
    """Sorted by position (ties: file order); a variant overlapping an earlier kept one is dropped."""
    kept: list[Variant] = []
    kept_until = -1
    for variant in sorted(variants, key=lambda v: (v.start, v.line if v.line is not None else 0)):
        if variant.start < kept_until:
            counts["overlapping_variants_skipped"] += 1
            continue
        kept.append(variant)
        kept_until = variant.end
    return kept


def _check_reference_alleles(
    genome: Genome,
    contig: str,
    length: int,
    per_sample: list[list[list[Variant]]],
    vcf: Path,
    ref_mismatch: str,
    chunk_bp: int,
) -> set[int]:
    """Compare every distinct REF with the FASTA, streaming the contig; returns the VCF lines that differ."""
    distinct = sorted(
        {(v.start, v.ref, v.line) for per_haplotype in per_sample for variants in per_haplotype for v in variants}
    )
    bad_lines: set[int] = set()
    window_start, window = 0, ""
    for start, ref, line in distinct:
        end = start + len(ref)
        if end > length:
            found = None
        else:
            if start >= window_start + len(window):
                window_start = start
                window = genome.fetch(contig, start, min(length, start + chunk_bp))
            if end <= window_start + len(window):
                found = window[start - window_start : end - window_start]
            else:  # a REF straddling the window end (rare): read it on its own
                found = genome.fetch(contig, start, end)
        if found == ref:
            continue
        if ref_mismatch == "error":
            if found is None:
                problem = f"runs past the end of {contig} (length {length})"
            else:
                problem = f"is {found!r} in the FASTA {genome.path}"
            raise GenomeError(
                f"{vcf}:{line}: REF {ref!r} does not match the reference: {contig}:{start + 1} "
                f"(1-based) {problem}"
            )
        bad_lines.add(line)
    return bad_lines




def without_regions(haplotype: Haplotype, spans: list[tuple[int, int]]) -> Haplotype:
    """The haplotype minus its variants that touch an excluded span (their REF is masked with N)."""
    if not spans:
        return haplotype
    kept = []
    for start, end, ref, alt in zip(haplotype.starts, haplotype.ends, haplotype.refs, haplotype.alts):
        i = bisect.bisect_left([a for a, _ in spans], end) - 1  # the last span starting before the variant ends
        if not (i >= 0 and spans[i][1] > start):
            kept.append(Variant(start, ref, alt))
    return Haplotype(haplotype.label, haplotype.contig, haplotype.reference_length, kept)

"""Sharded, resumable `score-variants` and `scan`: one process per GPU under torchrun, or one cluster job per shard.

    torchrun --nproc-per-node 8 -m kipoi_genalm.cli score-variants GENA-LM/promoter --vcf in.vcf.gz \
        --fasta hg38.fa -o out.vcf.gz                     # ranks share the shards; rank 0 merges
    genalm-kipoi score-variants ... -o out.vcf.gz --shard 3/8    # a workflow engine's job 3 of 8 (0-based)
    genalm-kipoi merge out.vcf.gz                                # ... and the merge once all jobs are done
    ... --resume                                                 # after a kill: finished shards are kept

The work is cut into shards once, deterministically, before anything is predicted (`plan_variant_shards`,
`plan_scan_shards`), and the plan goes into `<output>.shards/manifest.json` with what decides the result: the
sha256 of every input file, the model (name, folder, weights sha256) and every setting that changes a value.
Shards are the same whatever the number of processes: process r of n takes shards r, r + n, r + 2n, ...

Variants: a shard is a run of consecutive VCF records (input order). A cut falls only where a single run starts a
chunk (`chunk_size` records), at least `shard_records` records into a shard, and where no reference window is
shared across it (a new contig; region mode: a gap wider than the longest region window; centred mode: a new
position), so each model call of a shard is the call a single run makes - batching can move the last bits of a
float, so equal calls are what makes the result equal byte for byte - and region mode predicts each window once.
Each shard is scored by the one single-process `score_variants` (veff.py) on a sub-VCF of its records, into
`shard-NNNNN.vcf` (written atomically); a `shard-NNNNN.done.json` marker with the output's sha256 and the run's
counts is written last. Scan: a shard is a stretch of the region aligned to the scan's own prediction chunks
(`scan.CHUNK_WINDOWS` bins of `step`, or 32 model windows for per-nucleotide models), so every model call sees
the same windows as in a single run; each is scanned by `scan.scan_to_bedgraph`.

Merge (rank 0 once every shard is done, or `genalm-kipoi merge`): the header of shard 0 and the records of every
shard in plan order, through the writer a single run uses (BGZF for `.gz`), so the result is the single-process
output byte for byte; a BGZF VCF of sorted records gets a tabix index (`pysam.tabix_index`, `.tbi`), a scan
optionally a bigWig (pyBigWig) from the merged bedGraph. Everything is streamed: memory does not grow with the
number of records or bases.

`--resume` keeps shards whose marker exists and whose output still has the recorded sha256, and refuses a run whose
inputs, model, settings or plan differ from the manifest, naming what changed. torch.distributed (gloo, from
torchrun's RANK / WORLD_SIZE / MASTER_ADDR) carries the plan from rank 0 to the others; shard completion is read
from the markers, which also drive rank 0's progress bar over all ranks (total and ETA, in records or bp).
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import re
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from genalm_models.genome import Genome, GenomeError, VcfReader
from genalm_models.io_utils import atomic_path, atomic_write, check_output_path, write_text_atomic
from genalm_models.model_folder import sha256_file

log = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = 1
# the shard planners' version, recorded in each manifest (not compared): raised whenever the plan of the same inputs
# and settings changes (2: an unsorted VCF is one shard), so that a refused resume can say why
PLANNER_VERSION = 2
DEFAULT_SHARD_RECORDS = 10_000
DEFAULT_SHARD_BP = 1_000_000
# the parts of a manifest a resumed run must agree with (the rest - times, output names - may differ)
COMPARED = ("format", "command", "inputs", "model", "settings", "shards")


# ---------------------------------------------------------------------------------------------------------------
# Processes: torchrun ranks, workflow-engine jobs, or one plain process
# ---------------------------------------------------------------------------------------------------------------
@dataclasses.dataclass
class Workers:
    """Who runs which shards. rank/world: this process among those sharing the shards (torchrun, or --shard i/n).
    distributed: torch.distributed is initialised (gloo) and rank 0 plans and merges for all."""

    rank: int = 0
    world: int = 1
    distributed: bool = False
    job: tuple[int, int] | None = None      # --shard i/n: this job only runs its shards, never merges

    def owns(self, index: int) -> bool:
        return index % self.world == self.rank

    @property
    def merges(self) -> bool:
        return self.job is None and self.rank == 0

    def broadcast(self, value: Any) -> Any:
        """Rank 0's `value` on every rank (pickled through gloo)."""
        if not self.distributed:
            return value
        import torch.distributed as dist

        box = [value if self.rank == 0 else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def close(self) -> None:
        if self.distributed:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """`--shard 3/8` -> (3, 8): job 3 of 8, numbered from 0."""
    if text is None:
        return None
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not match or not 0 <= int(match[1]) < int(match[2]):
        raise ValueError(f"--shard {text!r}: give JOB/JOBS with 0 <= JOB < JOBS, e.g. 0/8 ... 7/8")
    return int(match[1]), int(match[2])


def under_torchrun() -> bool:
    """True in a process started by torchrun (it sets RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT)."""
    return all(name in os.environ for name in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"))


def start_workers(job: tuple[int, int] | None = None) -> Workers:
    """The Workers of this process: torchrun's ranks (gloo process group), a workflow job, or one process."""
    if job is not None:
        if under_torchrun() and int(os.environ["WORLD_SIZE"]) > 1:
            raise ValueError("--shard JOB/JOBS is for separate jobs of a workflow engine, not for torchrun ranks "
                             "(torchrun shares the shards among its ranks by itself)")
        return Workers(job[0], job[1], job=job)
    if not under_torchrun():
        return Workers()
    import datetime

    import torch.distributed as dist

    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    if not dist.is_initialized():
        # the plan is the only collective: ranks then wait on shard markers, so a long timeout costs nothing
        dist.init_process_group("gloo", timeout=datetime.timedelta(hours=float(
            os.environ.get("GENALM_DIST_TIMEOUT_HOURS", "24"))))
    return Workers(rank, world, distributed=True)


def rank_device(device: str | None) -> str | None:
    """Under torchrun on a GPU machine each rank takes GPU LOCAL_RANK (`cuda` and `auto` become `cuda:N`)."""
    if "LOCAL_RANK" not in os.environ or device not in (None, "auto", "cuda"):
        return device
    import torch

    if not torch.cuda.is_available():
        return device
    return f"cuda:{int(os.environ['LOCAL_RANK']) % torch.cuda.device_count()}"


# ---------------------------------------------------------------------------------------------------------------
# Manifest
# ---------------------------------------------------------------------------------------------------------------
def describe_input(path: str | os.PathLike | None) -> dict[str, Any] | None:
    if path is None:
        return None
    path = Path(path)
    return {"path": str(path.resolve()), "size": path.stat().st_size, "sha256": sha256_file(path)}


def shards_dir(output: str | os.PathLike, given: str | os.PathLike | None = None) -> Path:
    """Where the shards of `output` live: `given`, or `<output>.shards` next to it."""
    if given is not None:
        return Path(given)
    output = Path(output)
    return output.parent / f"{output.name}.shards"


def read_manifest(work: Path) -> dict[str, Any] | None:
    path = work / MANIFEST_NAME
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: not a readable shard manifest ({err})") from None


def _differences(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = "") -> list[str]:
    out = []
    for key in sorted(set(old) | set(new), key=str):
        a, b = old.get(key), new.get(key)
        if a == b:
            continue
        name = f"{prefix}{key}"
        if isinstance(a, dict) and isinstance(b, dict):
            out += _differences(a, b, name + ".")
        elif key == "shards" and isinstance(a, list) and isinstance(b, list):
            out.append(f"shards (the plan: {len(a)} then, {len(b)} now)" if len(a) != len(b) else
                       f"shards (the plan: {len(a)} then and now, cut elsewhere)")
        else:
            out.append(f"{name} ({_short(a)} then, {_short(b)} now)")
    return out


def _short(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def _compared(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """What a resumed run must agree with: inputs by size and sha256 (not by path: jobs on other machines may mount
    them elsewhere), the model by name and weights sha256, every setting, the plan."""
    compared = {k: manifest.get(k) for k in COMPARED}
    compared["inputs"] = {name: None if item is None else {k: v for k, v in item.items() if k != "path"}
                          for name, item in (manifest.get("inputs") or {}).items()}
    compared["model"] = {k: v for k, v in (manifest.get("model") or {}).items() if k != "folder"}
    return compared


def settle_manifest(work: Path, manifest: dict[str, Any], resume: bool) -> dict[str, Any]:
    """Write `manifest` into `work`, or check it against the one there: the same run may continue (resume) or be
    redone; another run's shards are never mixed in - the error names what changed."""
    work.mkdir(parents=True, exist_ok=True)
    old = read_manifest(work)
    if old is not None:
        changed = _differences(_compared(old), _compared(manifest))
        if changed:
            verb = "cannot resume" if resume else "refusing to mix runs"
            if all(item.startswith("shards ") for item in changed):   # same inputs and settings, another plan
                then = old.get("planner_version")
                by = (f"planner version {then}" if then is not None else "a planner older than version 2")
                raise ValueError(f"{work / MANIFEST_NAME}: {verb}: the inputs and settings are the same, but the "
                                 f"shards were planned differently ({changed[0]}; planned by {by}, this is "
                                 f"version {manifest.get('planner_version')}). Remove {work} to start over, or "
                                 "write to another output")
            raise ValueError(f"{work / MANIFEST_NAME}: {verb}: the shards there belong to a run with other "
                             f"inputs or settings - changed: {'; '.join(changed[:6])}"
                             + (f" (+{len(changed) - 6} more)" if len(changed) > 6 else "")
                             + f". Remove {work} to start over, or write to another output")
        return old
    write_text_atomic(work / MANIFEST_NAME, json.dumps(manifest, indent=1, default=str) + "\n")
    return manifest


def shard_name(index: int) -> str:
    return f"shard-{index:05d}"


def marker_path(work: Path, index: int) -> Path:
    return work / f"{shard_name(index)}.done.json"


def finished(work: Path, index: int, output: Path, check_sha: bool = True) -> dict[str, Any] | None:
    """The marker of shard `index` when the shard is done and its output is what the marker recorded."""
    path = marker_path(work, index)
    try:
        marker = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if not output.is_file() or (check_sha and sha256_file(output) != marker.get("sha256")):
        return None
    return marker


def write_marker(work: Path, index: int, output: Path, extra: Mapping[str, Any]) -> None:
    document = {"shard": index, "output": output.name, "sha256": sha256_file(output), **extra}
    write_text_atomic(marker_path(work, index), json.dumps(document, indent=1, default=str) + "\n")


class CrossRankProgress:
    """A progress bar over every rank's shards (total and ETA), moved by the shard markers that appear; rank 0 only."""

    def __init__(self, work: Path, sizes: Mapping[int, int], enabled: bool, what: str, unit: str):
        self.work, self.sizes = work, dict(sizes)
        self.enabled = enabled
        self.what, self.unit = what, unit
        self._stop = threading.Event()
        self._thread = None
        self._bar = None

    def _done(self) -> int:
        return sum(size for index, size in self.sizes.items() if marker_path(self.work, index).is_file())

    def __enter__(self) -> "CrossRankProgress":
        if self.enabled:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=sum(self.sizes.values()), desc=self.what, unit=self.unit, unit_scale=True)
            self._bar.update(self._done())
            self._thread = threading.Thread(target=self._run, name="shard-progress", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            self._refresh()

    def _refresh(self) -> None:
        done = self._done()
        if done > self._bar.n:
            self._bar.update(done - self._bar.n)

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._stop.set()
            self._thread.join()
            if exc[0] is None:
                self._refresh()
            self._bar.close()


def _wait_for_shards(work: Path, outputs: Mapping[int, Path], poll: float = 1.0) -> None:
    """Rank 0, its own shards done: wait for the others' markers (a failed rank stops the whole torchrun job)."""
    pending = [index for index in outputs if finished(work, index, outputs[index], check_sha=False) is None]
    while pending:
        time.sleep(poll)
        pending = [index for index in pending if finished(work, index, outputs[index], check_sha=False) is None]


# ---------------------------------------------------------------------------------------------------------------
# Variants: the plan
# ---------------------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class VariantShard:
    """Records `first` .. `first + records - 1` (0-based ordinals of the VCF's data records), from `chrom`:`first_pos`
    to `last_chrom`:`last_pos`."""

    index: int
    chrom: str
    first: int
    records: int
    first_pos: int
    last_chrom: str
    last_pos: int


def max_region_length(bed: str | os.PathLike | None) -> int:
    """The longest interval of a BED file (0 without one), read by the one BED reader (`genome.read_bed`): a bad
    line is the error a single run gives, raised at planning."""
    if bed is None:
        return 0
    from genalm_models.genome import read_bed

    return max((interval.end - interval.start for interval in read_bed(bed)), default=0)


def plan_variant_shards(vcf: str | os.PathLike, window_span: int | None, chunk_size: int,
                        shard_records: int = DEFAULT_SHARD_RECORDS) -> tuple[list[VariantShard], bool]:
    """Cut the records of `vcf` into shards in one streaming pass.

    A cut falls only where a single run starts a chunk (a multiple of `chunk_size` records) - so every model call
    of a shard is the call a single run makes, whatever batching does to the last bits of a float - at least
    `shard_records` records into a shard, and where no reference window can be shared across it: on a new contig,
    or (region mode, `window_span` given) more than `window_span` bp after the previous record, or (centred mode,
    `window_span` None: windows are centred on each allele) at a new position. A VCF without such places stays in
    one shard, and so does one that is not sorted (with a warning). Returns (shards, sorted): sorted says whether
    contigs come in blocks and positions never decrease inside one (what a tabix index needs).
    """
    if shard_records < 1 or chunk_size < 1:
        raise ValueError(f"shard_records and chunk_size must be >= 1, got {shard_records} and {chunk_size}")
    shards: list[VariantShard] = []
    seen: set[str] = set()
    is_sorted = True
    start, chrom, first_pos = 0, None, 0
    last_chrom, last_pos = None, 0
    ordinal = -1
    with VcfReader(vcf) as reader:
        for ordinal, record in enumerate(reader):
            if last_chrom is None:
                chrom, first_pos = record.chrom, record.pos
            else:
                new_contig = record.chrom != last_chrom
                if new_contig:
                    is_sorted = is_sorted and record.chrom not in seen
                    seen.add(last_chrom)
                elif record.pos < last_pos:
                    is_sorted = False
                apart = new_contig or (record.pos != last_pos if window_span is None
                                       else record.pos - last_pos > window_span)
                if apart and ordinal % chunk_size == 0 and ordinal - start >= shard_records:
                    shards.append(VariantShard(len(shards), chrom, start, ordinal - start, first_pos, last_chrom,
                                               last_pos))
                    start, chrom, first_pos = ordinal, record.chrom, record.pos
            last_chrom, last_pos = record.chrom, record.pos
    if last_chrom is not None:
        shards.append(VariantShard(len(shards), chrom, start, ordinal + 1 - start, first_pos, last_chrom, last_pos))
    else:   # no records: one empty shard, so the merge writes the header as a single run does
        shards.append(VariantShard(0, "", 0, 0, 0, "", 0))
    if not is_sorted and len(shards) > 1:
        # a record can share a window with one far back in the file: no cut is safe (nor a tabix index possible)
        log.warning("%s: the records are not sorted by contig and position, so they are scored as one shard (the "
                    "output must equal a single run's); sort the VCF (bcftools sort) to spread it over processes",
                    vcf, extra={"genalm_kind": "unsorted_vcf"})
        first, last = shards[0], shards[-1]
        shards = [VariantShard(0, first.chrom, 0, ordinal + 1, first.first_pos, last.last_chrom, last.last_pos)]
    return shards, is_sorted


# ---------------------------------------------------------------------------------------------------------------
# Variants: a rank's work
# ---------------------------------------------------------------------------------------------------------------
SCORE_SETTINGS = ("scores", "seq_length", "rc_average", "chunk_size", "llr_flank", "splice_distance", "source",
                  "precision", "batch_size", "allow_ref_mismatch", "cache_mb", "mlm_estimator")


def _window_span(scoring, dl_args: Mapping[str, Any], regions: Any, seq_length: int | None = None) -> int | None:
    """Region mode: bp beyond which two variants share no region window (the longest region plus the window - the
    run's --seq-length first, as the scorer reads it - and its flanks); centred mode: None (each allele has its own
    window)."""
    if regions is None:
        return None
    window = scoring.info.window
    length = seq_length or dl_args.get("sequence_length") or window.sequence_length or 0
    flank = int(dl_args.get("flank", window.flank) or 0)
    upstream = int(dl_args.get("upstream") or window.upstream or 0)
    return int(length) + 2 * flank + upstream + max_region_length(regions)


def _translate_error(err: Exception, sub_vcf: Path, header_count: int, lines: Sequence[int], input_vcf: Path
                     ) -> Exception:
    """An error about line L of a shard's sub-VCF, told about the input VCF's line instead."""
    text = str(err)

    def original(match: re.Match) -> str:
        index = int(match[1]) - header_count - 1
        return f"{input_vcf}:{lines[index]}" if 0 <= index < len(lines) else f"{input_vcf}"

    text = re.sub(re.escape(str(sub_vcf)) + r":(\d+)", original, text)
    text = text.replace(str(sub_vcf), str(input_vcf))
    return type(err)(text) if isinstance(err, ValueError) else err


def score_variants_sharded(model: str, dl_args: Mapping[str, Any], input_vcf: str | os.PathLike,
                           output_vcf: str | os.PathLike, *, job: tuple[int, int] | None = None,
                           resume: bool = False, shard_records: int = DEFAULT_SHARD_RECORDS,
                           work_dir: str | os.PathLike | None = None, restriction_bed: str | os.PathLike | None = None,
                           output_table: str | os.PathLike | None = None, progress: bool = True,
                           device: str | None = None, group_dir: str | os.PathLike | None = None,
                           **settings: Any) -> str:
    """`score_variants` over shards (module docstring): this process's shards, then (rank 0 of torchrun or a
    plain process) the merge into `output_vcf`. Returns a summary. settings: the score_variants options of
    SCORE_SETTINGS (same meaning). Errors: ValueError / GenomeError naming the file and line or the change that
    stops a resume."""
    from .veff import DEFAULT_CHUNK_SIZE, load_scoring_model, screen_reference

    unknown = sorted(set(settings) - set(SCORE_SETTINGS))
    if unknown:
        raise TypeError(f"unknown settings: {', '.join(unknown)}")
    dl_args = dict(dl_args)
    input_vcf, output_vcf = Path(input_vcf), Path(output_vcf)
    if "fasta_file" not in dl_args:
        raise ValueError("dl_args must name the reference: {'fasta_file': 'genome.fa'}")
    if output_table is not None and str(output_table).endswith(".parquet"):
        raise ValueError(f"{output_table}: a sharded run writes .tsv / .tsv.gz tables (Parquet shards would not "
                         "merge into the single-run file); use .tsv.gz, or run without shards")
    if not str(output_vcf).endswith((".vcf", ".vcf.gz", ".vcf.bgz")):
        raise ValueError(f"{output_vcf}: the output must end in .vcf, .vcf.gz or .vcf.bgz")
    regions = restriction_bed if restriction_bed is not None else dl_args.get("intervals_file")
    inputs = (input_vcf, dl_args["fasta_file"], regions)
    for output in (output_vcf, output_table):
        if output is not None:
            check_output_path(output, inputs, "output")
    work = shards_dir(output_vcf, work_dir)
    workers = start_workers(job)
    try:
        options = {"rc_average": settings.get("rc_average"), "batch_size": settings.get("batch_size"),
                   "device": rank_device(device), "precision": settings.get("precision")}
        scoring = load_scoring_model(model, options, group_dir)

        def plan() -> dict[str, Any]:
            with Genome(dl_args["fasta_file"]) as genome:
                screen = screen_reference(input_vcf, genome)
            if screen.looks_wrong and not settings.get("allow_ref_mismatch"):
                raise GenomeError(screen.message(input_vcf, dl_args["fasta_file"]) + ". Pass --allow-ref-mismatch "
                                  "to score it anyway (mismatching records are flagged, never scored)")
            span = _window_span(scoring, dl_args, regions, settings.get("seq_length"))
            chunk_size = settings.get("chunk_size") or DEFAULT_CHUNK_SIZE   # where a single run starts chunks
            shards, is_sorted = plan_variant_shards(input_vcf, span, chunk_size, shard_records)
            effective = {**{k: settings.get(k) for k in SCORE_SETTINGS}, "dl_args": {
                k: v for k, v in dl_args.items() if k not in ("fasta_file", "intervals_file")},
                "shard_records": shard_records, "window_span": span, "table": output_table is not None}
            manifest = {
                "format": MANIFEST_FORMAT, "command": "score-variants", "planner_version": PLANNER_VERSION,
                "inputs": {"vcf": describe_input(input_vcf), "fasta": describe_input(dl_args["fasta_file"]),
                           "regions": describe_input(regions)},
                "model": {"name": scoring.name, "folder": str(scoring.folder),
                          "weights_sha256": scoring.weights_sha256},
                "settings": effective,
                "shards": [dataclasses.asdict(s) for s in shards],
                "sorted": is_sorted,
                "outputs": {"vcf": str(output_vcf.resolve()),
                            "table": str(Path(output_table).resolve()) if output_table else None},
                "reference_screen": {"checked": screen.checked, "mismatched": screen.mismatched,
                                     "warning": screen.message(input_vcf, dl_args["fasta_file"])
                                     if screen.looks_wrong else None},
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
            return settle_manifest(work, manifest, resume)

        manifest = _planned(workers, plan)
        shards = [VariantShard(**s) for s in manifest["shards"]]
        outputs, mine, bar = _my_shards(workers, work, shards, ".vcf", {s.index: s.records for s in shards}, resume,
                                        progress, f"score variants ({scoring.name}, {len(shards)} shards)", "record")
        with bar:
            _score_shards(scoring, mine, outputs, work, input_vcf, dl_args, regions, output_table is not None,
                          {k: v for k, v in settings.items()})
            stopped = _rank_done(workers, work, outputs, mine, "scored")
        return stopped or merge(output_vcf, work, table=output_table)
    finally:
        workers.close()


def _my_shards(workers: Workers, work: Path, shards: Sequence[Any], suffix: str, sizes: Mapping[int, int],
               resume: bool, progress: bool, what: str, unit: str
               ) -> tuple[dict[int, Path], list[Any], "CrossRankProgress"]:
    """(every shard's output path, the shards this process runs - owned, and on resume not yet finished - and the
    cross-rank progress bar, shown by rank 0)."""
    outputs = {s.index: work / f"{shard_name(s.index)}{suffix}" for s in shards}
    mine = [s for s in shards if workers.owns(s.index) and not (resume and finished(work, s.index, outputs[s.index]))]
    return outputs, mine, CrossRankProgress(work, sizes, progress and workers.rank == 0, what, unit)


def _rank_done(workers: Workers, work: Path, outputs: Mapping[int, Path], mine: Sequence[Any], verb: str
               ) -> str | None:
    """After this process's shards: a summary line for a process that does not merge, else None once every shard
    is finished (the merging process waits for the others)."""
    if not workers.merges:
        return (f"job {workers.rank}/{workers.world}: {len(mine)} shard(s) {verb} in {work}" if workers.job
                else f"rank {workers.rank}: {len(mine)} shard(s) {verb}")
    _wait_for_shards(work, outputs)
    return None


def _planned(workers: Workers, plan: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Rank 0 plans (and settles the manifest); every rank gets the plan, or rank 0's error."""
    if workers.rank == 0 or not workers.distributed:
        try:
            manifest = plan()
        except Exception as err:
            workers.broadcast({"error": f"{type(err).__name__}", "message": str(err)})
            raise
        return workers.broadcast(manifest)
    manifest = workers.broadcast(None)
    if "error" in manifest:
        raise ValueError(f"rank 0 could not plan the shards: {manifest['message']}")
    return manifest


def _score_shards(scoring, shards: list[VariantShard], outputs: Mapping[int, Path], work: Path, input_vcf: Path,
                  dl_args: Mapping[str, Any], regions: Any, with_table: bool, settings: Mapping[str, Any]) -> None:
    """Score this process's shards in one pass over the input VCF: each shard's records go to a sub-VCF that the
    single-process score_variants scores (then the sub-VCF is removed)."""
    from .veff import score_variants

    if not shards:
        return
    pending = sorted(shards, key=lambda s: s.first)
    kwargs = {k: v for k, v in settings.items() if k != "allow_ref_mismatch"}
    with VcfReader(input_vcf) as reader:
        header = "".join(line + "\n" for line in reader.header_lines)
        records = enumerate(reader)
        for shard in pending:
            sub_vcf = work / f"{shard_name(shard.index)}.input.vcf"
            lines: list[int] = []
            with atomic_write(sub_vcf, "w") as handle:
                handle.write(header)
                for ordinal, record in records:
                    if ordinal < shard.first:
                        continue
                    handle.write(record.raw + "\n")
                    lines.append(record.line)
                    if ordinal == shard.first + shard.records - 1:
                        break
            if len(lines) != shard.records:
                raise ValueError(f"{input_vcf}: shard {shard.index} should hold {shard.records} records from record "
                                 f"{shard.first + 1}, found {len(lines)}; has the file changed since it was planned?")
            table = work / f"{shard_name(shard.index)}.tsv" if with_table else None
            try:
                # the whole VCF's reference check was made when planning; a shard's own check would refuse or
                # accept on other records than a single run does
                result = score_variants(scoring, dl_args, sub_vcf, outputs[shard.index], restriction_bed=regions,
                                        output_table=table, progress=False, allow_ref_mismatch=True, **kwargs)
            except (ValueError, OSError) as err:
                raise _translate_error(err, sub_vcf, len(reader.header_lines), lines, input_vcf) from err
            finally:
                with contextlib.suppress(FileNotFoundError):
                    sub_vcf.unlink()
            write_marker(work, shard.index, outputs[shard.index], {
                "records": shard.records, "table_sha256": sha256_file(table) if table else None,
                "result": {"n_records": result.n_records, "n_alleles": result.n_alleles, "n_scored": result.n_scored,
                           "skipped": dict(result.skipped), "n_normalised": result.n_normalised,
                           "ref_windows_predicted": result.ref_windows_predicted,
                           "alt_sequences_predicted": result.alt_sequences_predicted,
                           "ref_checked": result.ref_checked, "ref_mismatched": result.ref_mismatched,
                           "seconds": result.seconds, "mode": result.mode}})


# ---------------------------------------------------------------------------------------------------------------
# Scan
# ---------------------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class ScanShard:
    index: int
    chrom: str
    start: int      # 0-based, half-open
    end: int


def scan_unit(kind: str, step: int, sequence_length: int | None) -> int:
    """bp of one prediction chunk of a single-process scan: shards cut on multiples of it see the same model calls."""
    from .scan import CHUNK_WINDOWS

    if kind == "sequence":
        return CHUNK_WINDOWS * step
    if not sequence_length:
        raise ValueError("a per-nucleotide model without a fixed window cannot be scanned")
    return max(1, CHUNK_WINDOWS // 8) * sequence_length


def plan_scan_shards(chrom: str, start: int, end: int, unit: int, shard_bp: int = DEFAULT_SHARD_BP
                     ) -> list[ScanShard]:
    """[start, end) cut into shards of about `shard_bp` (a multiple of `unit`, at least one unit), from start."""
    size = max(unit, round(shard_bp / unit) * unit)
    return [ScanShard(i, chrom, s, min(s + size, end)) for i, s in enumerate(range(start, end, size))]


def scan_sharded(model: str | os.PathLike, fasta: str | os.PathLike, request, output: str | os.PathLike, *,
                 job: tuple[int, int] | None = None, resume: bool = False, shard_bp: int = DEFAULT_SHARD_BP,
                 work_dir: str | os.PathLike | None = None, bigwig: str | os.PathLike | None = None,
                 options: Mapping[str, Any] | None = None, group_dir: Path | None = None,
                 progress: bool = True) -> str:
    """`scan_to_bedgraph` over shards of the region (module docstring), merged into `output` (+ `bigwig`).
    options: the model's predict options (rc_average, precision, device, batch_size)."""
    from . import GROUP_DIR
    from .adapter import FolderModel, PredictOptions
    from .cli import _require_folder
    from .scan import ScanRequest, scan_to_bedgraph

    output = Path(output)
    check_output_path(output, (fasta,))
    if bigwig is not None:
        check_output_path(bigwig, (fasta, output), "--bigwig")
    request = request.validate()
    if shard_bp < 1:
        raise ValueError(f"shard_bp must be >= 1, got {shard_bp}")
    work = shards_dir(output, work_dir)
    workers = start_workers(job)
    try:
        options = dict(options or {})
        options["device"] = rank_device(options.get("device"))
        folder = _require_folder(str(model), Path(group_dir) if group_dir is not None else GROUP_DIR)
        runner = FolderModel(folder, PredictOptions().with_environment().merged(options, "command line"))
        info = runner.info

        def plan() -> dict[str, Any]:
            with Genome(fasta) as genome:   # the region must lie on the FASTA: one error line now, not per shard
                name = genome.resolve(request.chrom)
                if request.end > genome.contig_lengths[name]:
                    raise GenomeError(f"region {request.chrom}:{request.start + 1}-{request.end} runs past the end "
                                      f"of {name} (length {genome.contig_lengths[name]:,})")
                length = genome.contig_lengths[name]
            unit = scan_unit(info.kind, request.step, info.window.sequence_length)
            shards = plan_scan_shards(request.chrom, request.start, request.end, unit, shard_bp)
            manifest = {
                "format": MANIFEST_FORMAT, "command": "scan", "planner_version": PLANNER_VERSION,
                "inputs": {"fasta": describe_input(fasta)},
                "model": {"name": info.name, "folder": str(runner.folder), "weights_sha256": runner.weights_sha256},
                "settings": {**dataclasses.asdict(request), **{k: options.get(k) for k in
                                                              ("rc_average", "precision", "batch_size")},
                             "shard_bp": shard_bp, "unit": unit},
                "shards": [dataclasses.asdict(s) for s in shards],
                "outputs": {"bedgraph": str(output.resolve()),
                            "bigwig": str(Path(bigwig).resolve()) if bigwig else None},
                "contig_lengths": {request.chrom: length},   # the merge's bigWig header: no FASTA needed there
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
            return settle_manifest(work, manifest, resume)

        manifest = _planned(workers, plan)
        shards = [ScanShard(**s) for s in manifest["shards"]]
        outputs, mine, bar = _my_shards(workers, work, shards, ".bedGraph", {s.index: s.end - s.start for s in shards},
                                        resume, progress, f"scan ({info.name}, {len(shards)} shards)", "bp")
        with bar:
            for shard in mine:
                sub = ScanRequest(request.chrom, shard.start, shard.end, step=request.step, strand=request.strand,
                                  output=request.output)
                count = scan_to_bedgraph(runner, fasta, sub, outputs[shard.index], progress=False)
                write_marker(work, shard.index, outputs[shard.index], {"lines": count, "bp": shard.end - shard.start})
            stopped = _rank_done(workers, work, outputs, mine, "scanned")
        return stopped or merge(output, work, bigwig=bigwig)
    finally:
        workers.close()


# ---------------------------------------------------------------------------------------------------------------
# Merge
# ---------------------------------------------------------------------------------------------------------------
def _split_header(path: Path, is_header: Callable[[bytes], bool]) -> tuple[bytes, int]:
    """(header bytes, offset of the first data line) of a plain-text shard."""
    header = bytearray()
    with open(path, "rb") as handle:
        for line in handle:
            if not is_header(line):
                break
            header += line
    return bytes(header), len(header)


def _copy_body(path: Path, offset: int, out, block: int = 1 << 20) -> None:
    with open(path, "rb") as handle:
        handle.seek(offset)
        while chunk := handle.read(block):
            out.write(chunk)


def _concatenate(parts: Sequence[Path], output: Path, is_header: Callable[[bytes], bool]) -> None:
    """The header of the first part and every part's body, into `output` atomically (BGZF for .gz / .bgz, as the
    single-process writers write it). Every part must have the same header."""
    from .veff_io import is_gzip_name

    first_header, _ = _split_header(parts[0], is_header)
    with atomic_write(output, "wb", bgzf=is_gzip_name(output)) as out:
        out.write(first_header)
        for part in parts:
            header, offset = _split_header(part, is_header)
            if header != first_header:
                raise ValueError(f"{part}: its header differs from {parts[0]}'s; the shards are not of one run")
            _copy_body(part, offset, out)


def tabix_index(path: Path) -> Path:
    """A tabix index `<path>.tbi` for a BGZF VCF of sorted records (written atomically)."""
    import pysam

    index = Path(f"{path}.tbi")
    with atomic_path(index) as temporary:
        pysam.tabix_index(str(path), preset="vcf", force=True, index=str(temporary))
    return index


def bedgraph_to_bigwig(bedgraph: str | os.PathLike, bigwig: str | os.PathLike, fasta: str | os.PathLike | None = None,
                       batch: int = 100_000, contig_lengths: Mapping[str, int] | None = None) -> int:
    """Convert a bedGraph of one or more contigs (sorted, as scan writes it) to bigWig with pyBigWig, streaming in
    batches, written atomically. Contig lengths come from `contig_lengths` (names as the bedGraph spells them; a
    sharded scan's manifest records them, so a merge on another machine needs no FASTA) or else from `fasta`. nan
    values are left out (bigWig has no missing value other than no entry). Returns the entries written."""
    try:
        import pyBigWig
    except ImportError:
        raise ValueError("--bigwig needs pyBigWig: pip install pyBigWig") from None
    bigwig = Path(bigwig)
    chroms: list[str] = []
    with open(bedgraph) as handle:
        for line in handle:
            if line.startswith(("track", "#", "browser")) or not line.strip():
                continue
            chrom = line.split("\t", 1)[0]
            if not chroms or chroms[-1] != chrom:
                if chrom in chroms:
                    raise ValueError(f"{bedgraph}: {chrom} appears in two separate blocks; bigWig needs sorted input")
                chroms.append(chrom)
    if contig_lengths is not None and all(chrom in contig_lengths for chrom in chroms):
        sizes = [(chrom, int(contig_lengths[chrom])) for chrom in chroms]
    else:
        if fasta is None:
            raise ValueError(f"{bedgraph}: contig lengths of {', '.join(chroms)} unknown: give the FASTA")
        with Genome(fasta) as genome:
            sizes = [(chrom, genome.contig_lengths[genome.resolve(chrom)]) for chrom in chroms]
    written = 0
    with atomic_path(bigwig) as temporary:
        writer = pyBigWig.open(str(temporary), "w")
        try:
            writer.addHeader(sizes, maxZooms=10)
            batch_rows: tuple[list, list, list, list] = ([], [], [], [])

            def flush():
                nonlocal written
                if batch_rows[0]:
                    writer.addEntries(*batch_rows)
                    written += len(batch_rows[0])
                    for column in batch_rows:
                        column.clear()

            with open(bedgraph) as handle:
                for number, line in enumerate(handle, start=1):
                    if line.startswith(("track", "#", "browser")) or not line.strip():
                        continue
                    fields = line.rstrip("\n").split("\t")
                    try:
                        chrom, start, end, value = fields[0], int(fields[1]), int(fields[2]), float(fields[3])
                    except (IndexError, ValueError):
                        raise ValueError(f"{bedgraph}:{number}: not a bedGraph line (chrom, start, end, value)") \
                            from None
                    if value != value:   # nan
                        continue
                    if batch_rows[0] and batch_rows[0][-1] != chrom:
                        flush()
                    for column, item in zip(batch_rows, (chrom, start, end, value)):
                        column.append(item)
                    if len(batch_rows[0]) >= batch:
                        flush()
            flush()
        finally:
            writer.close()
    return written


def merge(output: str | os.PathLike, work_dir: str | os.PathLike | None = None, *,
          table: str | os.PathLike | None = None, bigwig: str | os.PathLike | None = None) -> str:
    """Merge the finished shards of `work_dir` (default `<output>.shards`) into `output` (module docstring).

    score-variants: the VCF (+ `.tbi` for a sorted BGZF VCF), the table if the run wrote one (`table`, default the
    one the manifest names), the provenance sidecar with the summed counts. scan: the bedGraph (+ bigWig: `bigwig`,
    default the manifest's). Refuses, naming them, shards that are missing or whose output changed since."""
    from . import provenance

    output = Path(output)
    work = shards_dir(output, work_dir)
    manifest = read_manifest(work)
    if manifest is None:
        raise FileNotFoundError(f"{work / MANIFEST_NAME}: no shard manifest (run score-variants / scan with --shard "
                                "or under torchrun first)")
    command = manifest["command"]
    suffix = ".vcf" if command == "score-variants" else ".bedGraph"
    indexes = [s["index"] for s in manifest["shards"]]
    parts = [work / f"{shard_name(i)}{suffix}" for i in indexes]
    markers = [finished(work, i, part) for i, part in zip(indexes, parts)]
    missing = [i for i, marker in zip(indexes, markers) if marker is None]
    if missing:
        shown = ", ".join(str(i) for i in missing[:10]) + (" ..." if len(missing) > 10 else "")
        raise ValueError(f"{work}: {len(missing)} of {len(indexes)} shards are not done ({shown}); run the jobs "
                         "again (with --resume) before merging")
    if not parts:
        raise ValueError(f"{work}: the plan has no shards (the input has no records)")
    started = time.perf_counter()
    if command == "scan":
        _concatenate(parts, output, lambda line: line.startswith(b"track"))
        first = provenance.read_sidecar(parts[0])
        settings = manifest["settings"]
        document = provenance.record(output, first["models"], inputs={
            **first["inputs"], "region": f"{settings['chrom']}:{settings['start'] + 1}-{settings['end']}"},
            extra={"shards": {"count": len(parts), "manifest": str(work / MANIFEST_NAME)}})
        provenance.write_sidecar(output, document)
        lines = sum(marker["lines"] for marker in markers)
        text = f"{lines} bedGraph lines written to {output} (merged from {len(parts)} shards)"
        bigwig = bigwig if bigwig is not None else manifest["outputs"].get("bigwig")
        if bigwig:
            entries = bedgraph_to_bigwig(output, bigwig, manifest["inputs"]["fasta"]["path"],
                                         contig_lengths=manifest.get("contig_lengths"))
            text += f"; bigWig {bigwig} ({entries} entries)"
        return text

    _concatenate(parts, output, lambda line: line.startswith(b"#"))
    table = table if table is not None else manifest["outputs"].get("table")
    if table is not None:
        tables = [work / f"{shard_name(i)}.tsv" for i in indexes]
        for part, marker in zip(tables, markers):
            if not part.is_file() or sha256_file(part) != marker.get("table_sha256"):
                raise ValueError(f"{part}: missing or changed since its shard finished; run it again (--resume)")
        check_output_path(table, (), "table")
        _concatenate_tables(tables, Path(table))
    totals: Counter = Counter()
    skipped: Counter = Counter()
    for marker in markers:
        result = marker["result"]
        skipped.update(result["skipped"])
        totals.update({k: v for k, v in result.items() if isinstance(v, (int, float)) and k != "seconds"})
    index_note = ""
    if str(output).endswith((".gz", ".bgz")):
        if manifest.get("sorted"):
            index_note = f"; tabix index {tabix_index(output)}"
        else:
            index_note = "; not tabix-indexed: the input VCF's records are not sorted"
    warnings = []
    screen = manifest.get("reference_screen") or {}
    if screen.get("warning"):
        warnings.append(screen["warning"])
    first = provenance.read_sidecar(parts[0])
    inputs = {**first["inputs"], "input_vcf": manifest["inputs"]["vcf"]["path"]}
    document = provenance.record(output, first["models"], inputs=inputs, extra={
        "summary": {"records": totals["n_records"], "alleles": totals["n_alleles"], "scored": totals["n_scored"],
                    "skipped": dict(skipped), "normalised": totals["n_normalised"],
                    "reference_check": {"records_checked": totals["ref_checked"],
                                        "ref_mismatch": totals["ref_mismatched"]},
                    "warnings": warnings},
        "shards": {"count": len(parts), "manifest": str(work / MANIFEST_NAME)}})
    provenance.write_sidecar(output, document)
    mode = markers[0]["result"]["mode"]
    text = (f"{manifest['model']['name']}: {totals['n_records']} records, {totals['n_alleles']} ALT alleles, "
            f"{totals['n_scored']} scored ({mode} mode; {len(parts)} shards; {totals['ref_windows_predicted']} "
            f"reference windows and {totals['alt_sequences_predicted']} alternative sequences predicted; merged in "
            f"{time.perf_counter() - started:.1f} s)")
    if skipped:
        text += "\nskipped " + ", ".join(f"{reason} {count}" for reason, count in sorted(skipped.items()))
    text += "".join(f"\nWARNING: {w}" for w in warnings)
    text += f"\nwritten: {output}" + (f" and {table}" if table else "") + index_note
    return text


def _concatenate_tables(parts: Sequence[Path], output: Path) -> None:
    """Shard tables (.tsv, first line the columns) into one .tsv / .tsv.gz, as the single-run TableWriter writes."""
    from .veff_io import is_gzip_name

    with atomic_write(output, "wb", bgzf=is_gzip_name(output)) as out:
        columns = None
        for part in parts:
            with open(part, "rb") as source:
                first = source.readline()
                if columns is None:
                    columns = first
                    out.write(first)
                elif first != columns:
                    raise ValueError(f"{part}: its columns differ from {parts[0]}'s; the shards are not of one run")
                while chunk := source.read(1 << 20):
                    out.write(chunk)

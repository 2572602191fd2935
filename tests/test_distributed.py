"""Sharded, resumable score-variants and scan (kipoi_genalm.distributed, issue 18) on the bundled models and the
real chr20 slice: torchrun with 2 gloo processes on CPU, workflow-engine jobs (--shard i/n + merge), SIGKILL of a
rank then --resume; every result compared byte for byte with a single-process run."""
from __future__ import annotations

import gzip
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from genalm_models.genome import Genome

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
FASTA = DATA / "chr20_2mb.fa.gz"
BED = DATA / "promoters_chr20_2mb.bed"
TEST_VCF = DATA / "veff_test.vcf"   # SNVs, indels, MNV, multi-allelic, symbolic, no ALT, other contig ...
ENV = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONWARNINGS="ignore")


@pytest.fixture(autouse=True)
def one_thread_like_the_ranks(monkeypatch):
    """The single-process reference runs with the threads torchrun gives each rank (OMP_NUM_THREADS=1): a GEMM on
    1 or 2 threads can differ in the last bits, and the written values in their last digit - byte identity holds
    for the same threads per process (README, "Sharded runs")."""
    monkeypatch.setenv("GENALM_THREADS", "1")


def cli(*args: str) -> None:
    """genalm-kipoi in this process (the single-process reference runs; torchrun's ranks are fresh processes)."""
    from kipoi_genalm.cli import main

    assert main(list(args)) == 0


def torchrun(*args: str, nproc: int = 2, check: bool = True, **popen) -> subprocess.CompletedProcess | subprocess.Popen:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
               "-m", "kipoi_genalm.cli", *args]
    if popen:
        return subprocess.Popen(command, env=ENV, **popen)
    result = subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=180)
    if check:
        assert result.returncode == 0, result.stderr[-4000:]
    return result


def dense_vcf(path: Path, step: int = 97, around: int = 900) -> Path:
    """Real chr20 variants near the first promoters: SNVs, a deletion, an insertion and a multi-allelic record every
    few positions (REF from the FASTA), sorted - the kinds a real VCF holds, close enough to share windows."""
    tss = [int(line.split("\t")[1]) for line in BED.read_text().splitlines()[:6]]
    lines = ["##fileformat=VCFv4.2", "##contig=<ID=chr20,length=63025520>",
             "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO"]
    with Genome(FASTA) as genome:
        positions = sorted({p for t in tss for p in range(t - around, t + around // 3, step)})
        for n, pos in enumerate(positions):
            ref = genome.fetch("chr20", pos - 1, pos + 3).upper()
            other = next(b for b in "ACGT" if b != ref[0])
            third = next(b for b in "ACGT" if b not in (ref[0], other))
            kind = n % 4
            if kind == 0:
                record = (ref[0], other)
            elif kind == 1:
                record = (ref[:3], ref[0])
            elif kind == 2:
                record = (ref[0], ref[0] + "GA")
            else:
                record = (ref[0], f"{other},{third}")
            lines.append(f"chr20\t{pos}\tv{n}\t{record[0]}\t{record[1]}\t.\tPASS\t.")
    path.write_text("\n".join(lines) + "\n")
    return path


def gunzip(path: Path) -> bytes:
    return gzip.decompress(path.read_bytes())


def single_vcf(tmp_path: Path, vcf: Path, *extra: str, model: str = "GENA-LM/promoter") -> Path:
    out = tmp_path / "single.vcf.gz"
    cli("score-variants", model, "--vcf", str(vcf), "--fasta", str(FASTA), "-o", str(out), "--no-progress", *extra)
    return out


def assert_same(single: Path, sharded: Path) -> None:
    assert gunzip(single) == gunzip(sharded)          # the text ...
    assert single.read_bytes() == sharded.read_bytes()  # ... and the BGZF bytes


# ---- torchrun: byte-identical results --------------------------------------------------------------------------
def test_torchrun_score_variants_equals_single_process_and_is_tabix_indexed(tmp_path):
    import pysam

    vcf = dense_vcf(tmp_path / "dense.vcf")
    # the kinds of the hand-made VCF (symbolic, '*', no ALT, other contig, MNV ...) follow the dense records
    body = [line for line in TEST_VCF.read_text().splitlines() if not line.startswith("#")]
    vcf.write_text(vcf.read_text() + "\n".join(line for line in body if line.startswith("chr20\t5")) + "\n")
    extra = ("--chunk-size", "7", "--model-batch-size", "5")
    single = single_vcf(tmp_path, vcf, *extra)
    sharded = tmp_path / "sharded.vcf.gz"
    result = torchrun("score-variants", "GENA-LM/promoter", "--vcf", str(vcf), "--fasta", str(FASTA), "-o",
                      str(sharded), "--shard-records", "9", *extra)
    manifest = json.loads((tmp_path / "sharded.vcf.gz.shards" / "manifest.json").read_text())
    assert len(manifest["shards"]) >= 4 and manifest["sorted"]
    assert "tabix index" in result.stdout and "score variants" in result.stderr   # the cross-rank bar
    assert_same(single, sharded)
    # readable by pysam (htslib), random access through the .tbi
    with pysam.VariantFile(str(sharded)) as reader:
        records = list(reader.fetch("chr20", 123000, 123300))
    assert records and all(123000 < r.pos <= 123300 for r in records)
    assert Path(f"{sharded}.tbi").is_file()
    provenance = json.loads(Path(f"{sharded}.provenance.json").read_text())
    single_provenance = json.loads(Path(f"{single}.provenance.json").read_text())
    assert provenance["summary"]["scored"] == single_provenance["summary"]["scored"] > 100
    assert provenance["summary"]["skipped"] == single_provenance["summary"]["skipped"]


def test_torchrun_region_mode_equals_single_process(tmp_path):
    """Region mode: windows of BED regions shared by many variants, predicted once; the table merged too."""
    vcf = dense_vcf(tmp_path / "dense.vcf", step=61)
    single = single_vcf(tmp_path, vcf, "--regions", str(BED), "--table", str(tmp_path / "single.tsv.gz"),
                        "--chunk-size", "5")
    sharded = tmp_path / "sharded.vcf.gz"
    torchrun("score-variants", "GENA-LM/promoter", "--vcf", str(vcf), "--fasta", str(FASTA), "-o", str(sharded),
             "--regions", str(BED), "--table", str(tmp_path / "sharded.tsv.gz"), "--shard-records", "10",
             "--chunk-size", "5",
             "--no-progress")
    assert_same(single, sharded)
    assert (tmp_path / "single.tsv.gz").read_bytes() == (tmp_path / "sharded.tsv.gz").read_bytes()
    manifest = json.loads((tmp_path / "sharded.vcf.gz.shards" / "manifest.json").read_text())
    shards = manifest["shards"]
    # no cut inside a window: consecutive shards are further apart than any region's window
    assert len(shards) >= 3 and all(b["first_pos"] - a["last_pos"] > manifest["settings"]["window_span"]
                                    and b["first"] % 5 == 0 for a, b in zip(shards, shards[1:]))


def test_torchrun_scan_equals_single_process_and_writes_bigwig(tmp_path):
    region = "chr20:361,001-372,000"   # not a multiple of the shard unit: a short last shard
    cli("scan", "GENA-LM/promoter", "--fasta", str(FASTA), "--region", region, "--step", "20", "--strand", "-",
        "-o", str(tmp_path / "single.bedGraph"), "--no-progress")
    torchrun("scan", "GENA-LM/promoter", "--fasta", str(FASTA), "--region", region, "--step", "20", "--strand",
             "-", "-o", str(tmp_path / "sharded.bedGraph"), "--shard-bp", "5000", "--bigwig",
             str(tmp_path / "sharded.bw"), "--no-progress")
    assert (tmp_path / "single.bedGraph").read_bytes() == (tmp_path / "sharded.bedGraph").read_bytes()
    assert len(json.loads((tmp_path / "sharded.bedGraph.shards" / "manifest.json").read_text())["shards"]) == 3
    import pyBigWig

    with pyBigWig.open(str(tmp_path / "sharded.bw")) as bw:
        lines = [line.split("\t") for line in (tmp_path / "single.bedGraph").read_text().splitlines()[1:]]
        entries = bw.intervals("chr20", 361000, 372000)
        assert len(entries) == len(lines)
        assert all(e[0] == int(l[1]) and e[1] == int(l[2]) and abs(e[2] - float(l[3])) < 1e-6
                   for e, l in zip(entries, lines))


def test_scan_jobs_of_a_per_nucleotide_model_in_bf16_merge_to_the_single_run(tmp_path):
    """Splice (one value per base, runs merged) read on '-', bf16: two --shard jobs, then merge - with the bigWig,
    on a machine where the jobs' FASTA path is gone (the manifest holds the contig length)."""
    import shutil

    from kipoi_genalm.cli import main

    fasta = tmp_path / "jobs_only" / FASTA.name
    fasta.parent.mkdir()
    shutil.copy(FASTA, fasta)
    common = ["--region", "chr20:400,001-540,000", "--strand", "-", "--precision", "bf16",
              "--output-label", "donor", "--no-progress"]
    assert main(["scan", "GENA-LM/splice", "--fasta", str(FASTA), *common, "-o",
                 str(tmp_path / "single.bedGraph")]) == 0
    out = tmp_path / "jobs.bedGraph"
    for job in ("0/2", "1/2"):
        assert main(["scan", "GENA-LM/splice", "--fasta", str(fasta), *common, "-o", str(out), "--shard", job,
                     "--shard-bp", "64000", "--bigwig", str(tmp_path / "jobs.bw")]) == 0
    shutil.rmtree(fasta.parent)
    assert not out.exists() and main(["merge", str(out)]) == 0
    assert len(json.loads((tmp_path / "jobs.bedGraph.shards" / "manifest.json").read_text())["shards"]) == 3
    assert (tmp_path / "single.bedGraph").read_bytes() == out.read_bytes()
    import pyBigWig

    with pyBigWig.open(str(tmp_path / "jobs.bw")) as bw:
        assert bw.chroms() == {"chr20": 2_000_000}
        assert bw.intervals("chr20", 400_000, 540_000)[0][0] == 400_000


# ---- workflow-engine jobs: the Snakefile's commands --------------------------------------------------------------
def snakefile_commands(values: dict[str, str]) -> tuple[str, str]:
    """The shell commands of examples/snakemake/Snakefile's shard and merge rules, with config values filled in."""
    text = (ROOT / "examples" / "snakemake" / "Snakefile").read_text()
    commands = {}
    for rule, shell in re.findall(r'rule (\w+):(?:(?!\nrule ).)*?shell:\s*\n\s*"([^"]+)"', text, flags=re.S):
        commands[rule] = shell
    assert set(commands) >= {"score_shard", "merge"}, commands

    def fill(shell: str) -> str:   # Snakemake fills {NAME} from the Snakefile's globals; {wildcards.job} stays
        return re.sub(r"\{([A-Z_]+)\}", lambda m: values[m[1].lower()], shell)
    return fill(commands["score_shard"]), fill(commands["merge"])


# the MLM takes any length: centred windows of 300 bp
MLM_OPTIONS = "--rc-average --seq-length 300 --scores pll_ref,llr --chunk-size 4"


def test_snakemake_example_jobs_then_merge_equal_single_process_for_splice_and_mlm(tmp_path):
    vcf = dense_vcf(tmp_path / "dense.vcf", step=173, around=700)
    from kipoi_genalm.cli import main

    for model, jobs in (("GENA-LM/splice", 2), ("GENA-LM/mlm", 2)):
        out = tmp_path / f"{model.split('/')[1]}.vcf.gz"
        values = {"model": model, "vcf": str(vcf), "fasta": str(FASTA), "output": str(out), "jobs": str(jobs),
                  "shard_records": "8", "options": MLM_OPTIONS if model.endswith("mlm") else "--chunk-size 4"}
        shard, merge = snakefile_commands(values)
        for job in range(jobs):   # the cluster jobs, one after another here
            argv = shlex.split(shard.replace("{wildcards.job}", str(job)))
            assert argv[0] == "genalm-kipoi" and main(argv[1:]) == 0
        assert not out.exists()
        assert main(shlex.split(merge)[1:]) == 0
        single = tmp_path / f"{model.split('/')[1]}.single.vcf.gz"
        assert main(["score-variants", model, "--vcf", str(vcf), "--fasta", str(FASTA), "-o", str(single),
                     "--no-progress", *(MLM_OPTIONS if model.endswith("mlm") else "--chunk-size 4").split()]) == 0
        assert_same(single, out)


# ---- interruption, resume, refusal -------------------------------------------------------------------------------
def _children(pid: int) -> list[int]:
    import psutil

    return [child.pid for child in psutil.Process(pid).children()]


def test_sigkill_of_a_rank_then_resume_equals_an_uninterrupted_run(tmp_path):
    vcf = dense_vcf(tmp_path / "dense.vcf", step=53)
    single = single_vcf(tmp_path, vcf, "--chunk-size", "3")
    sharded = tmp_path / "sharded.vcf.gz"
    work = tmp_path / "sharded.vcf.gz.shards"
    args = ("score-variants", "GENA-LM/promoter", "--vcf", str(vcf), "--fasta", str(FASTA), "-o", str(sharded),
            "--shard-records", "6", "--chunk-size", "3", "--no-progress")
    process = torchrun(*args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 90
        while not list(work.glob("shard-*.done.json")) and time.time() < deadline and process.poll() is None:
            time.sleep(0.05)
        ranks = _children(process.pid)
        assert ranks, "torchrun started no ranks"
        os.kill(ranks[-1], signal.SIGKILL)
        process.communicate(timeout=90)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode != 0 and not sharded.exists()
    done = {p.name: p.stat().st_mtime_ns for p in work.glob("shard-*.done.json")}
    total = len(json.loads((work / "manifest.json").read_text())["shards"])
    assert 1 <= len(done) < total   # killed mid-run

    torchrun(*args, "--resume")
    assert_same(single, sharded)
    for name, mtime in done.items():   # finished shards were kept, not redone
        assert (work / name).stat().st_mtime_ns == mtime
    assert not list(work.glob("*.input.vcf")) and not list(work.glob(".*.tmp"))


def test_resume_with_a_changed_input_or_setting_is_refused(tmp_path):
    from kipoi_genalm.cli import main

    vcf = tmp_path / "in.vcf"
    vcf.write_text(TEST_VCF.read_text())
    out = tmp_path / "out.vcf.gz"
    args = ["score-variants", "GENA-LM/promoter", "--vcf", str(vcf), "--fasta", str(FASTA), "-o", str(out),
            "--no-progress", "--chunk-size", "2", "--shard-records", "4", "--shard", "0/2"]
    assert main(args) == 0
    vcf.write_text(TEST_VCF.read_text().replace("DP=10", "DP=11"))   # one changed byte
    with pytest.raises(ValueError, match=r"cannot resume.*inputs\.vcf\.sha256"):
        from kipoi_genalm.distributed import score_variants_sharded

        score_variants_sharded("GENA-LM/promoter", {"fasta_file": str(FASTA)}, vcf, out, job=(1, 2), resume=True,
                               shard_records=4, chunk_size=2, progress=False)
    vcf.write_text(TEST_VCF.read_text())
    assert main(args[:-4] + ["--shard-records", "4", "--resume", "--scores", "diff"]) == 2   # a changed setting
    # the error is one line naming the manifest and the change
    assert main(["merge", str(out)]) == 2                      # job 1 of 2 never ran: merge refuses
    assert main(args[:-2] + ["--shard", "1/2", "--resume"]) == 0
    assert main(["merge", str(out)]) == 0
    text = gunzip(out).decode()
    assert text.count("\nchr2") == 22 and "KV:kipoi:GENA-LM/promoter:DIFF" in text


def test_resume_refusal_message_names_what_changed(tmp_path, capsys):
    from kipoi_genalm.cli import main

    out = tmp_path / "out.vcf"
    base = ["score-variants", "GENA-LM/promoter", "--vcf", str(TEST_VCF), "--fasta", str(FASTA), "-o", str(out),
            "--no-progress", "--shard-records", "30"]
    assert main(base + ["--resume"]) == 0
    capsys.readouterr()
    assert main(base + ["--resume", "--scores", "diff"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "manifest.json: cannot resume" in error
    assert 'settings.scores (null then, "diff" now)' in error


def test_resume_after_the_planner_changed_says_so(tmp_path, capsys):
    """Same inputs and settings, another shard plan (a run planned by an older version): the refusal says that the
    plan changed and which versions planned, not just 'the plan: N then, M now'."""
    from kipoi_genalm.cli import main

    out = tmp_path / "out.vcf"
    base = ["score-variants", "GENA-LM/promoter", "--vcf", str(TEST_VCF), "--fasta", str(FASTA), "-o", str(out),
            "--no-progress", "--shard-records", "30"]
    assert main(base + ["--resume"]) == 0
    manifest_path = tmp_path / "out.vcf.shards" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    assert manifest["planner_version"] == 2
    manifest["shards"][0]["records"] += 1                # as an older planner would have cut it
    del manifest["planner_version"]                      # manifests before version 2 did not record it
    manifest_path.write_text(json.dumps(manifest))
    capsys.readouterr()
    assert main(base + ["--resume"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "cannot resume: the inputs and settings are the same" in error
    assert "the shards were planned differently (shards (the plan: 1 then and now, cut elsewhere)" in error
    assert "planned by a planner older than version 2, this is version 2)" in error


def test_a_bad_record_is_named_by_its_line_in_the_input_vcf(tmp_path, capsys):
    from kipoi_genalm.cli import main

    vcf = tmp_path / "bad.vcf"
    vcf.write_text(TEST_VCF.read_text().replace("\tGAA\tAG\t", "\tGAA\tAXG\t"))
    line = next(n for n, text in enumerate(vcf.read_text().splitlines(), 1) if "AXG" in text)
    base = ["score-variants", "GENA-LM/promoter", "--vcf", str(vcf), "--fasta", str(FASTA), "--no-progress"]
    assert main(base + ["-o", str(tmp_path / "single.vcf")]) == 2
    single = capsys.readouterr().err.strip()
    assert main(base + ["-o", str(tmp_path / "sharded.vcf"), "--shard", "1/2", "--chunk-size", "2",
                        "--shard-records", "2"]) == 2
    sharded = capsys.readouterr().err.strip()
    assert sharded == single and f"{vcf}:{line}:" in sharded and "\n" not in sharded


def test_an_official_model_from_the_hub_cache_shards_like_a_single_run(tmp_path, monkeypatch):
    """GENA-LM/bert-large-t2t/promoters_2000 (official format, tiny random weights, offline hub cache) as two
    --shard jobs + merge, in bf16: the single run's bytes (RC averaging is not offered for TSS-anchored models; the
    MLM test above uses it)."""
    from hub_cache import put_in_hub_cache, write_official_checkpoint

    from kipoi_genalm.cli import main

    folder = write_official_checkpoint(tmp_path / "made", "sequence_classification", seed=1, num_labels=2,
                                       hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                       intermediate_size=64)
    put_in_hub_cache(tmp_path / "hub", "AIRI-Institute/gena-lm-bert-large-t2t", "promoters_2000_run_1", folder)
    for key, value in {"HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "hub"),
                       "HF_HOME": str(tmp_path / "hf_home")}.items():
        monkeypatch.setenv(key, value)
    vcf = dense_vcf(tmp_path / "dense.vcf", step=211, around=600)
    name = "GENA-LM/bert-large-t2t/promoters_2000"
    base = ["score-variants", name, "--vcf", str(vcf), "--fasta", str(FASTA), "--no-progress", "--precision", "bf16",
            "--chunk-size", "3", "--scores", "diff,logit"]
    assert main(base + ["-o", str(tmp_path / "single.vcf.gz")]) == 0
    out = tmp_path / "jobs.vcf.gz"
    for job in ("0/2", "1/2"):
        assert main(base + ["-o", str(out), "--shard", job, "--shard-records", "6"]) == 0
    assert main(["merge", str(out)]) == 0
    manifest = json.loads((tmp_path / "jobs.vcf.gz.shards" / "manifest.json").read_text())
    assert len(manifest["shards"]) >= 2 and manifest["settings"]["precision"] == "bf16"
    assert_same(tmp_path / "single.vcf.gz", out)


def test_the_plan_cuts_only_at_chunk_starts_between_windows(tmp_path, caplog):
    """Cuts fall where a single run starts a chunk, never between records that could share a window: not inside a
    position (centred mode), not within window_span bp (region mode); contigs out of blocks make it unsorted."""
    from kipoi_genalm.distributed import plan_variant_shards

    positions = [100, 100, 100, 200, 300, 5000, 5000, 5100, 9000, 9050]   # records 0..9
    vcf = tmp_path / "plan.vcf"
    vcf.write_text("##fileformat=VCFv4.2\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n" + "".join(
        f"chr20\t{pos}\t.\tA\tG\t.\t.\t.\n" for pos in positions))
    starts = lambda shards: [s.first for s in shards]   # noqa: E731
    centred, ordered = plan_variant_shards(vcf, None, chunk_size=2, shard_records=1)
    assert ordered and starts(centred) == [0, 4, 8]   # chunk starts 2 and 6 repeat a position: no cut
    assert sum(s.records for s in centred) == len(positions)
    region, _ = plan_variant_shards(vcf, 1000, chunk_size=1, shard_records=1)
    assert starts(region) == [0, 5, 8]                         # gaps > 1000 bp: before 5000 and before 9000
    assert starts(plan_variant_shards(vcf, 1000, chunk_size=3, shard_records=1)[0]) == [0]   # 5, 8 not chunk starts
    vcf.write_text(vcf.read_text() + "chr21\t1\t.\tA\tG\t.\t.\t.\nchr20\t9100\t.\tA\tG\t.\t.\t.\n")
    assert plan_variant_shards(vcf, None, chunk_size=1, shard_records=100)[1] is False
    # unsorted: a record may share a window with any earlier one, so no cut is safe - one shard, and a warning
    with caplog.at_level("WARNING"):
        (shard,), ordered = plan_variant_shards(vcf, None, chunk_size=1, shard_records=1)
    assert f"{vcf}: the records are not sorted by contig and position, so they are scored as one shard" in caplog.text
    assert not ordered and (shard.first, shard.records) == (0, len(positions) + 2)
    assert (shard.chrom, shard.first_pos, shard.last_chrom, shard.last_pos) == ("chr20", 100, "chr20", 9100)


def test_a_vcf_without_records_gives_the_single_runs_header_only_output(tmp_path):
    from kipoi_genalm.cli import main

    vcf = tmp_path / "empty.vcf"
    vcf.write_text("".join(line for line in TEST_VCF.read_text().splitlines(keepends=True) if line.startswith("#")))
    base = ["score-variants", "GENA-LM/promoter", "--vcf", str(vcf), "--fasta", str(FASTA), "--no-progress"]
    assert main(base + ["-o", str(tmp_path / "single.vcf.gz")]) == 0
    assert main(base + ["-o", str(tmp_path / "sharded.vcf.gz"), "--resume"]) == 0
    assert_same(tmp_path / "single.vcf.gz", tmp_path / "sharded.vcf.gz")
    assert b"#CHROM" in gunzip(tmp_path / "sharded.vcf.gz")


def test_a_bigwig_without_contig_lengths_or_fasta_is_one_clear_error(tmp_path):
    from kipoi_genalm.distributed import bedgraph_to_bigwig

    track = tmp_path / "t.bedGraph"
    track.write_text('track type=bedGraph name="x"\nchr20\t0\t10\t0.5\n')
    with pytest.raises(ValueError, match=rf"^{track}: contig lengths of chr20 unknown: give the FASTA$"):
        bedgraph_to_bigwig(track, tmp_path / "t.bw", contig_lengths={"chr21": 100})
    assert bedgraph_to_bigwig(track, tmp_path / "t.bw", contig_lengths={"chr20": 100}) == 1

"""Interruptions clean up (input faults, kind 12): SIGTERM (what SLURM, docker and `timeout` send) unwinds like
Ctrl-C and leaves no hidden temporary file; temporaries of killed (SIGKILL) writers are swept on the next write."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from genalm_models.io_utils import host_tag, sweep_stale_temporaries, write_text_atomic

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_temporaries_of_killed_writers_are_swept_and_live_ones_kept(tmp_path):
    out = tmp_path / "out.tsv"
    dead, alive, here = _dead_pid(), os.getppid(), host_tag()
    elsewhere = "ffff" if here != "ffff" else "0000"
    stale = [tmp_path / f".out.tsv.{dead}.{here}abcd.tmp", tmp_path / f".out.tsv.{dead}.{here}cdef.partial"]
    live = tmp_path / f".out.tsv.{alive}.{here}abcd.partial"
    other_host = tmp_path / f".out.tsv.{dead}.{elsewhere}abcd.tmp"   # its PID means nothing on this machine
    other = tmp_path / f".other.tsv.{dead}.{here}abcd.tmp"
    for path in stale + [live, other_host, other]:
        path.write_text("half")
    write_text_atomic(out, "done\n")
    assert out.read_text() == "done\n"
    assert not any(p.exists() for p in stale) and live.exists() and other.exists() and other_host.exists()
    assert sweep_stale_temporaries(tmp_path / "other.tsv") == [other]


def test_sigterm_during_predict_leaves_no_partial_output(tmp_path, chr20_fasta, promoters_bed):
    """`genalm-kipoi predict` of the bundled 2 kb promoter model, terminated while it writes: exit status 143, no
    output and no hidden temporary file."""
    bed = tmp_path / "many.bed"
    bed.write_text(promoters_bed.read_text() * 20)
    out = tmp_path / "out.tsv"
    genalm = str(BIN / "genalm-kipoi") if (BIN / "genalm-kipoi").exists() else "genalm-kipoi"
    env = dict(os.environ, HOME=str(tmp_path), OMP_NUM_THREADS="1")
    process = subprocess.Popen([genalm, "predict", "GENA-LM/promoter", "--intervals", str(bed), "--fasta",
                                str(chr20_fasta), "-o", str(out), "--batch-size", "8"], env=env, cwd=tmp_path,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not list(tmp_path.glob(".out.tsv.*")):
        time.sleep(0.05)
    assert list(tmp_path.glob(".out.tsv.*")), "the partial output never appeared"
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 143, stderr[-2000:]
    assert not out.exists() and not list(tmp_path.glob(".out.tsv.*"))

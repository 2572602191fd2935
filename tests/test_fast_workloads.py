"""Real workloads (issue 17): CPU threads on a shared machine, and the fast zero-shot MLM estimator.

- genalm_models/cpu_threads.py: the thread count comes from the affinity mask, a user's setting is honoured, and the
  count drops to the CPUs other processes leave free (simulated load: /proc/stat readings replaced);
- Predictor.masked_log_probs equals masking the tokens by hand and reading log-softmax;
- the masked-marginal estimator (plugin/veff_mlm.py) equals its definition computed directly on a real chr20 SNV
  and indel, gives 0 for ALT == REF, and its Spearman correlation with the pseudo-likelihood is computed.
"""
from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from genalm_models import cpu_threads
from genalm_models.cpu_threads import ThreadPolicy, available_cpus, user_thread_setting

ROOT = Path(__file__).resolve().parents[1]
TEST_VCF = Path(__file__).resolve().parent / "data" / "veff_test.vcf"


# ---- threads ----------------------------------------------------------------------------------------------------
@pytest.fixture
def auto_threads(monkeypatch):
    """No user setting in the environment; torch's thread count restored afterwards."""
    before = torch.get_num_threads()
    monkeypatch.delenv("GENALM_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(cpu_threads, "_last_set", None)
    yield
    torch.set_num_threads(before)


def test_available_cpus_follow_the_affinity_mask():
    code = "import os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}); " \
           "from genalm_models.cpu_threads import available_cpus; print(available_cpus())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.stdout.strip() == "1", out.stderr
    assert 1 <= available_cpus() <= len(os.sched_getaffinity(0))


def test_user_settings_are_honoured(auto_threads, monkeypatch):
    cpus = available_cpus()
    torch.set_num_threads(cpus)
    assert user_thread_setting(cpus) is None
    monkeypatch.setenv("GENALM_THREADS", "3")
    assert user_thread_setting(cpus) == (3, "GENALM_THREADS")
    policy = ThreadPolicy()
    assert policy.fixed and policy.threads == 3
    assert policy.before_batch() == 3 and torch.get_num_threads() == 3
    monkeypatch.setenv("GENALM_THREADS", "many")
    with pytest.raises(ValueError, match="GENALM_THREADS='many'"):
        ThreadPolicy()
    monkeypatch.setenv("GENALM_THREADS", "auto")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)
    assert user_thread_setting(cpus) == (1, "OMP_NUM_THREADS")
    monkeypatch.delenv("OMP_NUM_THREADS")
    # a caller's own torch.set_num_threads, different from the CPU count and from what the policy last set
    monkeypatch.setattr(cpu_threads, "_last_set", None)
    torch.set_num_threads(cpus + 1)
    assert user_thread_setting(cpus, None) == (cpus + 1, "torch.set_num_threads")
    assert user_thread_setting(cpus, cpus + 1) is None  # ... but not the policy's own earlier setting


def test_torchs_own_default_is_not_taken_for_a_users_choice(auto_threads, monkeypatch):
    """A 4-CPU container on a 32-core host: torch starts with 32 threads (the host's physical cores), which is not a
    user's choice, so the policy still runs (and would use 4); a count that is no default is the user's."""
    assert os.cpu_count() in cpu_threads.torch_default_threads()
    monkeypatch.setattr(cpu_threads, "available_cpus", lambda: 4)
    monkeypatch.setattr(cpu_threads, "_cpu_ids", lambda: None)
    monkeypatch.setattr(cpu_threads, "torch_default_threads", lambda: {32, 64})
    monkeypatch.setattr(cpu_threads.torch, "get_num_threads", lambda: 32)
    assert cpu_threads.user_thread_setting() is None
    monkeypatch.setattr(cpu_threads.torch, "get_num_threads", lambda: 7)
    assert cpu_threads.user_thread_setting() == (7, "torch.set_num_threads")


def test_threads_drop_to_the_cpus_other_processes_leave_free(auto_threads, monkeypatch, caplog):
    """A competing job that takes about one of two CPUs: 2 threads -> 1; once it stops: back to 2."""
    monkeypatch.setattr(cpu_threads, "available_cpus", lambda: 2)
    clock = {"t": 100.0, "busy": 0.0, "own": 0.0}
    monkeypatch.setattr(cpu_threads.time, "monotonic", lambda: clock["t"])
    monkeypatch.setattr(cpu_threads, "_busy_seconds", lambda cpus: clock["busy"])
    monkeypatch.setattr(cpu_threads, "_own_seconds", lambda: clock["own"])
    torch.set_num_threads(2)
    with caplog.at_level(logging.INFO, logger="genalm_models.cpu_threads"):
        policy = ThreadPolicy(window=1.0)
        assert policy.threads == 2 and not policy.fixed
        # 2 s: the CPUs were busy 3.9 s, of which ours 1.9 s -> others took 1.0 CPU
        clock.update(t=102.0, busy=3.9, own=1.9)
        assert policy.before_batch() == 1 and torch.get_num_threads() == 1
        assert "other processes used 1.0 of the 2 CPUs" in caplog.text
        # within the window: not re-measured
        clock.update(t=102.5, busy=3.9, own=1.9)
        assert policy.before_batch() == 1
        # the competitor stopped: only our own time
        clock.update(t=104.0, busy=5.9, own=3.9)
        assert policy.before_batch() == 2 and torch.get_num_threads() == 2
    assert policy.threads_for(0.2) == 2 and policy.threads_for(0.3) == 1 and policy.threads_for(5.0) == 1


def test_fixed_setting_ignores_load(auto_threads, monkeypatch):
    monkeypatch.setenv("GENALM_THREADS", "2")
    monkeypatch.setattr(cpu_threads, "_busy_seconds", lambda cpus: 1e6)
    policy = ThreadPolicy(window=0.0)
    assert policy.before_batch() == 2


def test_predictor_sets_the_threads_where_it_starts(auto_threads, monkeypatch, caplog):
    from genalm_models.modeling_gena import build_model
    from genalm_models.config import GenaConfig
    from genalm_models.predict import Predictor

    class Tokenizer:  # only what Predictor.__init__ and run() read
        pad_id, cls_id, sep_id = 0, 1, 2

    cfg = GenaConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=32, max_position_embeddings=32, num_labels=2)
    monkeypatch.setenv("GENALM_THREADS", "1")
    torch.set_num_threads(2)
    with caplog.at_level(logging.INFO, logger="genalm_models.cpu_threads"):
        predictor = Predictor(build_model(cfg, "sequence_classification"), Tokenizer(), device="cpu")
    assert predictor.threads.source == "GENALM_THREADS"
    assert "predict: 1 CPU thread (GENALM_THREADS: 1 of" in caplog.text
    seen = []
    model_forward = predictor.model.forward
    monkeypatch.setattr(predictor.model, "forward",
                        lambda *a, **k: seen.append(torch.get_num_threads()) or model_forward(*a, **k))
    predictor.run([[5, 6, 7], [8, 9]])
    # the policy's count while the model runs, the caller's again afterwards (a training loop keeps its own)
    assert seen == [1] and torch.get_num_threads() == 2


# ---- masked log-probabilities --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def mlm_predictor(tiny_zoo):
    from kipoi_genalm.veff import load_scoring_model

    return load_scoring_model(tiny_zoo["models"]["mlm"]).mlm


def direct_masked_log_probs(predictor, ids, positions, targets=None):
    """Mask `positions` together by hand, one plain forward pass, log-softmax at those positions."""
    tok = predictor.tokenizer
    masked = list(ids)
    for p in positions:
        masked[p] = tok.mask_id
    full = torch.tensor([[tok.cls_id, *masked, tok.sep_id]])
    with torch.no_grad():
        logits = predictor.model(full, torch.ones_like(full)).logits[0]
    log_probs = torch.log_softmax(logits.float(), -1)
    targets = [ids[p] for p in positions] if targets is None else targets
    return np.array([log_probs[p + 1, t].item() for p, t in zip(positions, targets)])


def test_masked_log_probs_equal_a_direct_computation(mlm_predictor, chr20_genome):
    seqs = [chr20_genome.fetch("20", 361_450, 361_750), chr20_genome.fetch("20", 361_500, 361_700)]
    encoded = mlm_predictor.encode(seqs, with_offsets=False)
    ids = [e.ids for e in encoded]
    positions = [[3, 4, 9], [0], [3, 4, 9], []]
    targets = [None, None, [7, 8, 9], None]
    inputs = [ids[0], ids[1], ids[0], ids[1]]
    got = mlm_predictor.masked_log_probs(inputs, positions,
                                         [t if t is not None else [inputs[i][p] for p in positions[i]]
                                          for i, t in enumerate(targets)])
    for i in range(3):
        expected = direct_masked_log_probs(mlm_predictor, inputs[i], positions[i], targets[i])
        np.testing.assert_allclose(got[i], expected, atol=1e-5)
    assert got[3].shape == (0,)
    with pytest.raises(ValueError, match="sequence 0: token position 999"):
        mlm_predictor.masked_log_probs([ids[0]], [[999]])
    with pytest.raises(ValueError, match="given twice"):
        mlm_predictor.masked_log_probs([ids[0]], [[2, 2]])


# ---- masked marginal ---------------------------------------------------------------------------------------------
def test_differing_tokens_of_real_alleles(mlm_predictor, chr20_genome):
    from kipoi_genalm.veff_mlm import differing_tokens

    ref = chr20_genome.fetch("20", 361_449, 361_749)
    v = 150
    for alt_bases, ref_len in (("A" if ref[v] != "A" else "C", 1), (ref[v] + "TTTG", 1), (ref[v], 5)):
        alt = (ref[:v] + alt_bases + ref[v + ref_len:])[: len(ref)]
        if len(alt) < len(ref):
            alt += chr20_genome.fetch("20", 361_749, 361_749 + len(ref) - len(alt))
        r, a = mlm_predictor.encode([ref, alt], with_offsets=True)
        ref_run, alt_run = differing_tokens(r.offsets, r.ids, v, ref_len, a.offsets, a.ids, v, len(alt_bases))
        assert ref_run or alt_run
        # the runs cover the variant's bases, and the tokens just outside them are the same in both alleles
        if ref_run:
            assert r.offsets[ref_run[0], 0] <= v < r.offsets[ref_run[-1], 1]
        before_r, before_a = ref_run[0] - 1 if ref_run else None, alt_run[0] - 1 if alt_run else None
        if before_r is not None and before_a is not None and before_r >= 0:
            assert r.ids[before_r] == a.ids[before_a]
            assert tuple(r.offsets[before_r]) == tuple(a.offsets[before_a])
        after_r = (ref_run[-1] + 1) if ref_run else None
        after_a = (alt_run[-1] + 1) if alt_run else None
        if after_r is not None and after_a is not None and after_r < len(r.ids):
            assert r.ids[after_r] == a.ids[after_a]
            assert r.offsets[after_r, 0] - (v + ref_len) == a.offsets[after_a, 0] - (v + len(alt_bases))


def test_masked_marginal_equals_its_definition_and_is_compared_with_pll(tiny_zoo, chr20_fasta, chr20_genome,
                                                                        mlm_predictor, tmp_path):
    from scipy.stats import spearmanr

    from kipoi_genalm.veff import score_variants
    from kipoi_genalm.veff_mlm import differing_tokens

    model = tiny_zoo["models"]["mlm"]
    common = dict(scores=["pll_ref", "pll_alt", "llr"], progress=False, return_predictions=True)
    mm = score_variants(model, {"fasta_file": str(chr20_fasta)}, TEST_VCF, tmp_path / "mm.vcf",
                        mlm_estimator="masked-marginal", **common)
    pll = score_variants(model, {"fasta_file": str(chr20_fasta)}, TEST_VCF, tmp_path / "pll.vcf", llr_flank=16,
                         **common)
    mm_text, pll_text = (tmp_path / "mm.vcf").read_text(), (tmp_path / "pll.vcf").read_text()
    assert "mlm_estimator=masked-marginal" in mm_text and "llr_flank" not in mm_text   # no PLL stretch there
    assert "llr_flank=16" in pll_text
    with pytest.raises(ValueError, match="applies to masked-LM models only; GENA-LM/promoter is a sequence model"):
        score_variants("GENA-LM/promoter", {"fasta_file": str(chr20_fasta)}, TEST_VCF, tmp_path / "seq.vcf",
                       mlm_estimator="masked-marginal", progress=False)
    assert not (tmp_path / "seq.vcf").exists()
    with pytest.raises(ValueError, match="mlm_estimator must be one of pll, masked-marginal, got 'fast'"):
        score_variants(model, {"fasta_file": str(chr20_fasta)}, TEST_VCF, tmp_path / "x.vcf", mlm_estimator="fast",
                       progress=False)
    assert not (tmp_path / "x.vcf").exists()
    llr = mm.predictions["llr"]["masked_marginal"]
    assert llr["chr20:500500:T:T"] == 0.0

    # the SNV at 361600 (G>A), its 300 bp centred window: the definition computed by hand
    s = 361_599
    ref = chr20_genome.fetch("20", s - 150, s + 150)
    alt = ref[:150] + "A" + ref[151:]
    r, a = mlm_predictor.encode([ref, alt], with_offsets=True)
    ref_run, alt_run = differing_tokens(r.offsets, r.ids, 150, 1, a.offsets, a.ids, 150, 1)
    expected_ref = direct_masked_log_probs(mlm_predictor, r.ids, ref_run).sum()
    expected_alt = direct_masked_log_probs(mlm_predictor, a.ids, alt_run).sum()
    assert mm.predictions["pll_ref"]["masked_marginal"]["chr20:361600:G:A"] == pytest.approx(expected_ref, abs=1e-4)
    assert llr["chr20:361600:G:A"] == pytest.approx(expected_alt - expected_ref, abs=1e-4)

    both = pll.predictions["llr"]["pseudo_log_likelihood"].to_frame("pll").join(llr.to_frame("mm"), how="inner")
    both = both[np.isfinite(both).all(axis=1)]
    assert len(both) >= 8
    rho = spearmanr(both["pll"], both["mm"]).statistic
    print(f"Spearman(pll llr, masked-marginal llr) on {len(both)} test alleles (tiny random model): {rho:.2f}")
    assert np.isfinite(rho)

"""The fast inference copy (genalm_models/inference.py) against the straightforward modules of modeling_gena.py.

fp32: the fused path must equal the plain one to float rounding (1e-5) for every head, pre-/post-LN, padding of
either side and RMT. bf16: within the stated tolerances (relative error of the final hidden states <= 3e-2 for
random tiny models; |delta prob| <= 0.02 for the trained bundled promoter models: tests/test_bundled_zoo.py).
"""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from genalm_models.config import GenaConfig, RMTConfig
from genalm_models.inference import FusedSelfAttention, onednn_usable, optimize_for_inference
from genalm_models.modeling_gena import HEADS, build_model, set_attention_implementation
from genalm_models.rmt import RMT

ROOT = Path(__file__).resolve().parents[1]


def tiny(pre_layer_norm=True, head="sequence_classification", act="gelu", seed=0):
    torch.manual_seed(seed)
    cfg = GenaConfig(vocab_size=300, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=128, max_position_embeddings=128, pre_layer_norm=pre_layer_norm,
                     hidden_act=act, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, num_labels=2)
    model = build_model(cfg, head).eval()
    # a model whose attention is far from uniform, so the fused attention is really exercised
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "query" in name or "key" in name:
                p.mul_(8.0)
    return model


def batch(pad_left=False):
    torch.manual_seed(1)
    ids = torch.randint(5, 300, (3, 41))
    mask = torch.ones_like(ids)
    if pad_left:
        mask[1, :15] = 0
    else:
        mask[1, 30:] = 0
        mask[2, 7:] = 0
    return ids, mask


def compare(reference, fast, ids, mask):
    with torch.inference_mode():
        ref, out = reference(ids, mask), fast(ids, mask)
    keep = mask.bool()
    hidden = (out.hidden_states.float() - ref.hidden_states)[keep].abs().max().item()
    logits = 0.0 if ref.logits is None else (out.logits.float() - ref.logits).abs().max().item()
    relative = ((out.hidden_states.float() - ref.hidden_states)[keep].norm() / ref.hidden_states[keep].norm()).item()
    return hidden, logits, relative


@pytest.mark.parametrize("head", sorted(HEADS))
@pytest.mark.parametrize("pre_layer_norm", [True, False])
@pytest.mark.parametrize("use_onednn", [False, None])
def test_fp32_fast_path_equals_plain_modules(head, pre_layer_norm, use_onednn):
    model = tiny(pre_layer_norm, head)
    fast = optimize_for_inference(model, "fp32", use_onednn=use_onednn)
    for pad_left in (False, True):
        ids, mask = batch(pad_left)
        hidden, logits, _ = compare(model, fast, ids, mask)
        assert hidden < 1e-5 and logits < 1e-5, (hidden, logits)


@pytest.mark.parametrize("act", ["gelu", "gelu_new", "relu"])
def test_fused_activations(act):
    model = tiny(act=act, head="token_classification")
    hidden, logits, _ = compare(model, optimize_for_inference(model, "fp32"), *batch())
    assert hidden < 1e-5 and logits < 1e-5


def test_blocked_attention_equals_sdpa_and_eager_with_small_blocks(monkeypatch):
    model = tiny(head="embedding")
    eager = set_attention_implementation(tiny(head="embedding"), "eager")
    monkeypatch.setattr(FusedSelfAttention, "SCORE_BLOCK_BYTES", 1)  # one head per block
    fast = optimize_for_inference(model, "fp32")
    assert all(m.attention == "blocked" for m in fast.modules() if isinstance(m, FusedSelfAttention))
    for reference in (model, eager):
        hidden, _, _ = compare(reference, fast, *batch())
        assert hidden < 1e-5


def test_bf16_fast_path_within_tolerance_and_really_bf16():
    model = tiny(head="sequence_classification")
    fast = optimize_for_inference(model, "bf16")
    assert all(p.dtype == torch.bfloat16 for p in fast.parameters())
    hidden, logits, relative = compare(model, fast, *batch())
    assert relative < 3e-2 and logits < 5e-2, (relative, logits)
    assert hidden > 0  # it did run in lower precision


def test_onednn_bf16_softmax_equals_torch_softmax():
    """The oneDNN softmax of the bf16 blocked attention against torch's softmax on the same bf16 scores; on a CPU
    without native bf16 (no skip: the suite fails on skips), the fast path must not use oneDNN at all."""
    model = tiny(head="embedding")
    ids, mask = batch(pad_left=True)
    fast = optimize_for_inference(model, "bf16")
    attention = [m for m in fast.modules() if isinstance(m, FusedSelfAttention)]
    if not onednn_usable(torch.device("cpu"), torch.bfloat16):
        assert attention and not any(m.onednn_softmax or m.qkv.packed for m in attention)
        return
    assert attention and all(m.onednn_softmax for m in attention)
    with torch.inference_mode():
        onednn = fast(ids, mask).hidden_states.float()
        for m in attention:
            m.onednn_softmax = False
        aten = fast(ids, mask).hidden_states.float()
    keep = mask.bool()
    relative = (onednn - aten)[keep].norm() / aten[keep].norm()
    assert relative < 1e-2, relative


def test_keep_freed_memory_respects_the_users_malloc_settings():
    """Applied on glibc Linux; left alone where the user set glibc's thresholds (the memory benchmarks do)."""
    code = "from genalm_models.inference import keep_freed_memory; print(keep_freed_memory())"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    default = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT)
    assert default.stdout.strip() == str(sys.platform.startswith("linux")), default.stderr
    env["MALLOC_MMAP_THRESHOLD_"] = "65536"
    user = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT)
    assert user.stdout.strip() == "False", user.stderr


def test_original_model_is_untouched_and_still_trainable():
    model = tiny(head="token_classification")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optimize_for_inference(model, "bf16")
    after = model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.dtype == torch.float32 and p.requires_grad for p in model.parameters())


def test_rmt_model_through_the_fast_path():
    model = tiny(head="sequence_classification")
    rmt = RMT(model, RMTConfig(num_mem_tokens=3, max_n_segments=8)).eval()
    fast = optimize_for_inference(rmt, "fp32")
    torch.manual_seed(2)
    ids = torch.randint(5, 300, (2, 300))  # 300 tokens: 3 segments of a 128-position model
    mask = torch.ones_like(ids)
    mask[1, 200:] = 0
    with torch.inference_mode():
        ref, out = rmt(ids, mask), fast(ids, mask)
    assert (out.logits - ref.logits).abs().max() < 1e-5


def test_onednn_detection_is_cpu_only():
    assert not onednn_usable(torch.device("meta"), torch.float32)


@pytest.mark.parametrize("precision, tolerance", [("fp32", 1e-5), ("bf16", 0.02)])
def test_predictor_fast_vs_plain_on_real_chr20_with_the_bundled_promoter_model(precision, tolerance, chr20_genome,
                                                                                promoters_bed):
    """The trained 2 kb model on real chr20 windows (TSS-centred and shifted): fused vs plain modules."""
    from genalm_models.checkpoint import load_model
    from genalm_models.genome import read_bed
    from genalm_models.predict import Predictor
    from genalm_models.tokenizer import GenaTokenizer

    folder = ROOT / "plugin" / "zoo" / "GENA-LM" / "promoter"
    if not (folder / "model.yaml").is_file():
        pytest.skip("bundled promoter model not exported")
    model, _ = load_model(folder)
    tokenizer = GenaTokenizer.from_pretrained(folder)
    seqs = []
    for interval in list(read_bed(promoters_bed))[:12]:
        for shift in (0, 700):
            start = max(0, interval.start + shift - 1000)
            seqs.append(chr20_genome.fetch(interval.chrom, start, start + 2000))
    fast = Predictor(model, tokenizer, device="cpu", precision=precision, batch_size=8)
    plain = Predictor(model, tokenizer, device="cpu", precision=precision, batch_size=8, optimize=False)
    a, b = np.stack(fast.predict(seqs)), np.stack(plain.predict(seqs))
    assert np.abs(a - b).max() <= tolerance

"""Fast inference copies of a GENA-LM model: what `Predictor` runs, never what training updates.

`optimize_for_inference(model, precision)` returns a new model (the original is left untouched) with
- weights stored in the inference dtype (bf16: no per-call casting as under autocast, half the memory traffic);
- Q, K and V fused into one (H -> 3H) projection: one large GEMM instead of three small ones;
- on CPUs with oneDNN, every encoder GEMM on weights packed once into oneDNN's blocked layout, with the bias and
  the GELU of the FFN fused into the GEMM (the residual additions are done in place on the GEMM output);
- on CPU, attention computed block by block in cache instead of through torch's CPU flash kernel (see
  FusedSelfAttention).
`keep_freed_memory()` (called by `Predictor` on CPU, and by the entry points through
`process_settings.apply_process_settings`) stops glibc from handing large freed blocks back to the system between
forward passes; see there. Nothing here changes the process on import.
The heads (pooler, classifier, MLM decoder) and the embeddings are only cast. The encoder computes the same
function as `modeling_gena.py`; tests/test_inference.py holds the two paths together (fp32: 1e-5; bf16: the
tolerance stated there).
"""
from __future__ import annotations

import copy
import ctypes
import logging
import math
import os
import sys

import torch
import torch.nn.functional as F
from torch import nn

from .modeling_gena import ACTIVATIONS, GenaIntermediate, GenaOutputProjection, GenaSelfAttention, GenaSelfOutput

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}

# activation name -> (oneDNN post-op, its algorithm)
_ONEDNN_ACTIVATIONS = {"gelu": ("gelu", "none"), "gelu_new": ("gelu", "tanh"), "relu": ("relu", "")}


def onednn_usable(device: torch.device, dtype: torch.dtype) -> bool:
    """oneDNN packed linears: CPU only, and for bf16 only where the CPU has native bf16 support."""
    if device.type != "cpu" or not (torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled):
        return False
    if not hasattr(torch.ops.mkldnn, "_linear_pointwise"):
        return False
    if dtype == torch.bfloat16:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return dtype == torch.float32


# glibc mallopt() parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_KEEP_FREED_BYTES = 1 << 30
_kept_freed_memory: bool | None = None   # decided once per process

log = logging.getLogger(__name__)


def keep_freed_memory(caller: str = "Predictor") -> bool:
    """Let this process reuse freed activation buffers instead of faulting fresh pages in on every forward pass.

    By default glibc serves blocks above a (moving) threshold with mmap and trims the heap top once over 2x that
    threshold, so the multi-MB activations of a forward pass are returned to the system when freed and their
    pages faulted in again (and zeroed by the kernel) on the next allocation: measured here as up to 70,000 page
    faults and ~5% of a bert-base bf16 forward pass (`bench/bench_inference.py`). Raising both thresholds to 1 GiB
    keeps up to 1 GiB of freed memory in the process for reuse. In inference the peak RSS stays what it was; in
    training the heap fragments between forward and backward (1.4-1.6x the peak, `bench/bench_training.py`), so
    there it is opt-in (`train.keep_freed_memory`). Process-wide and glibc-only; left alone with
    GENALM_KEEP_FREED_MEMORY=0, where the user set either MALLOC_*_THRESHOLD_ variable (the memory benchmarks do)
    or where there is no glibc. Returns whether the setting is in force. Decided once per process (later calls
    return the first answer) and logged once (DEBUG, naming `caller`).
    """
    global _kept_freed_memory
    if _kept_freed_memory is None:
        _kept_freed_memory, why = _set_malloc_thresholds()
        log.debug("glibc malloc keeps freed memory (mmap/trim thresholds %d MiB): %s (%s; asked by %s)",
                  _KEEP_FREED_BYTES >> 20, "on" if _kept_freed_memory else "off", why, caller)
    return _kept_freed_memory


def release_freed_memory() -> bool:
    """Hand the freed memory this process keeps (`keep_freed_memory`, and glibc's own free lists) back to the system:
    glibc's malloc_trim(0). For long runs that call the model chunk after chunk (score-variants, scan): between
    chunks, so that what one chunk freed is not kept for the rest of the run (with batches run longest first,
    `predict.Predictor.batches`; `bench/bench_scale_out.py --parts growth` measures a 2 kb promoter model over
    6,000 VCF records, README "Genome-scale runs"). Costs the page faults of the next chunk's first batch.
    Returns whether memory was released (False without glibc)."""
    try:
        trim = ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):  # musl or another libc
        return False
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return bool(trim(0))


def _set_malloc_thresholds() -> tuple[bool, str]:
    if not sys.platform.startswith("linux"):
        return False, "not Linux"
    if os.environ.get("GENALM_KEEP_FREED_MEMORY", "1") == "0":
        return False, "GENALM_KEEP_FREED_MEMORY=0"
    if any(name in os.environ for name in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")):
        return False, "the user set MALLOC_*_THRESHOLD_"
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # musl or another libc
        return False, "no glibc"
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    applied = bool(mallopt(_M_MMAP_THRESHOLD, _KEEP_FREED_BYTES)) and bool(mallopt(_M_TRIM_THRESHOLD,
                                                                                    _KEEP_FREED_BYTES))
    return applied, "mallopt" if applied else "mallopt refused"


class FastLinear(nn.Module):
    """y = act(x W^T + b) [+ residual] with W packed for oneDNN, or a plain F.linear where oneDNN is not used.

    `activation` (None, "gelu", "gelu_new", "relu") is fused into the oneDNN GEMM as a post-op; `add_residual` adds
    the residual in place on the GEMM output. The weights are plain attributes, not parameters or buffers: they never
    enter a state_dict and are never trained.
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, activation: str | None = None,
                 add_residual: bool = False, packed: bool = False, rows_hint: int = 4096):
        super().__init__()
        self.activation = activation
        self.add_residual = add_residual
        self.packed = packed
        # the inference copy owns these tensors already (optimize_for_inference deep-copies): no further copy
        self.bias = None if bias is None else bias.detach()
        self.out_features = weight.shape[0]
        if packed:
            self.weight = torch.ops.mkldnn._reorder_linear_weight(weight.detach().contiguous(), rows_hint)
        else:
            self.weight = weight.detach()

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        if not self.packed:
            y = F.linear(x, self.weight, self.bias)
            if self.activation is not None:
                y = ACTIVATIONS[self.activation](y)
            return y + residual if self.add_residual else y
        shape = x.shape
        x2 = x.reshape(-1, shape[-1])
        if self.activation is not None:
            attr, algorithm = _ONEDNN_ACTIVATIONS[self.activation]
            y = torch.ops.mkldnn._linear_pointwise(x2, self.weight, self.bias, attr, [], algorithm)
        else:
            y = torch.ops.mkldnn._linear_pointwise(x2, self.weight, self.bias, "none", [], "")
        if self.add_residual:
            # in place on the fresh output: measured faster here than oneDNN's fused "add" post-op
            y.add_(residual.reshape(-1, self.out_features))
        return y.reshape(*shape[:-1], self.out_features)


class FusedSelfAttention(nn.Module):
    """GenaSelfAttention with one QKV projection (the 1/sqrt(head_dim) scale folded into the Q rows).

    attention="sdpa": torch's fused kernels (the GPU choice). attention="blocked" (the CPU choice): per sequence,
    a few heads at a time, scores = Q K^T over that sequence's real keys only, softmax, then P V. The score block
    stays in cache (torch's CPU flash kernel reaches only ~150 GFLOP/s in bf16 on a 2-core AVX-512 machine; this
    ~400), and padded keys are dropped rather than masked: they would get exactly zero weight either way. With
    oneDNN packed weights in bf16, the softmax runs through oneDNN too (`onednn_softmax`).
    """

    SCORE_BLOCK_BYTES = 2 << 20  # heads per block: as many as keep one block of scores within ~2 MiB

    def __init__(self, source: GenaSelfAttention, packed: bool, attention: str):
        super().__init__()
        self.num_heads, self.head_dim = source.num_heads, source.head_dim
        self.attention = attention
        # bf16 softmax through oneDNN's kernel (with the copies into and out of its tensor type) measured ~2x faster
        # than torch's own here; in fp32 the two are even, and the copies are not worth it
        self.onednn_softmax = packed and source.query.weight.dtype == torch.bfloat16
        scale = 1.0 / math.sqrt(self.head_dim)
        weight = torch.cat([source.query.weight * scale, source.key.weight, source.value.weight])
        bias = torch.cat([source.query.bias * scale, source.key.bias, source.value.bias])
        self.qkv = FastLinear(weight, bias, packed=packed)

    def forward(self, h: torch.Tensor, attn_mask: torch.Tensor | None) -> torch.Tensor:
        batch, seq_len, hidden = h.shape
        # (B, T, 3, heads, head_dim) -> (3, B, heads, T, head_dim): q, k, v
        qkv = self.qkv(h).view(batch, seq_len, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        if self.attention == "blocked":
            # only K is copied to head-major: the GEMMs read Q and V in place (rows 3H apart) at the same speed,
            # but K^T strided that way costs ~25% more time in Q K^T than the copy
            k = k.contiguous()
        if self.attention == "sdpa":
            ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, scale=1.0)
            return ctx.transpose(1, 2).reshape(batch, seq_len, hidden)
        return self._blocked(q, k, v, attn_mask).view(batch, seq_len, hidden)

    def _blocked(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, attn_mask: torch.Tensor | None
                 ) -> torch.Tensor:
        batch, heads, seq_len, head_dim = q.shape
        # P V is written straight into token-major (B, T, heads, d) order: no transposing copy of the context after
        ctx = torch.empty(batch, seq_len, heads, head_dim, dtype=q.dtype, device=q.device)
        per_block = max(1, min(heads, self.SCORE_BLOCK_BYTES // (q.element_size() * seq_len * seq_len)))
        keep = None if attn_mask is None else attn_mask[:, 0, 0, :] == 0  # additive mask: 0 keeps a key
        # one score buffer, reused by every block: fresh multi-MB allocations would cost page faults each time
        buffer = torch.empty(per_block * seq_len * seq_len, dtype=q.dtype, device=q.device)
        for b in range(batch):
            kb, vb = k[b], v[b]
            if keep is not None and not bool(keep[b].all()):
                real = keep[b].nonzero().squeeze(1)
                kb, vb = kb.index_select(1, real), vb.index_select(1, real)
            kt = kb.transpose(1, 2)
            for start in range(0, heads, per_block):
                qb = q[b, start: start + per_block]
                scores = buffer[: qb.shape[0] * seq_len * kt.shape[2]].view(qb.shape[0], seq_len, kt.shape[2])
                torch.bmm(qb, kt[start: start + per_block], out=scores)
                if self.onednn_softmax:
                    probs = torch._softmax(scores.to_mkldnn(), -1, False).to_dense()
                else:
                    probs = torch._softmax(scores, -1, False, out=scores)
                torch.bmm(probs, vb[start: start + per_block],
                          out=ctx[b, :, start: start + per_block].transpose(0, 1))
        return ctx


class FusedResidualOutput(nn.Module):
    """`residual + dense(x)` (added in place on the GEMM output), then the post-LN LayerNorm where the layer has one.
    Replaces GenaSelfOutput and GenaOutputProjection (dropout is off at inference)."""

    def __init__(self, source: GenaSelfOutput | GenaOutputProjection, packed: bool):
        super().__init__()
        self.dense = FastLinear(source.dense.weight, source.dense.bias, add_residual=True, packed=packed)
        self.LayerNorm = getattr(source, "LayerNorm", None)

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        h = self.dense(x, residual)
        return self.LayerNorm(h) if self.LayerNorm is not None else h


class FusedIntermediate(nn.Module):
    """act(dense(h)) with the activation fused into the GEMM."""

    def __init__(self, source: GenaIntermediate, activation: str, packed: bool):
        super().__init__()
        self.dense = FastLinear(source.dense.weight, source.dense.bias, activation=activation, packed=packed)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.dense(h)


def optimize_for_inference(model: nn.Module, precision: str = "bf16", device: torch.device | str | None = None,
                           use_onednn: bool | None = None) -> nn.Module:
    """A copy of `model` (any head, RMT-wrapped or not) for fast inference in `precision` ("fp32" or "bf16").

    use_onednn: None picks oneDNN packed GEMMs where usable (CPU; bf16 needs native CPU support).
    The copy is in eval mode and must not be trained (its fused weights do not follow the original's).
    """
    if precision not in DTYPES:
        raise ValueError(f"precision must be one of {sorted(DTYPES)}, got {precision!r}")
    dtype = DTYPES[precision]
    device = torch.device(device) if device is not None else next(model.parameters()).device
    packed = onednn_usable(device, dtype) if use_onednn is None else use_onednn
    fast = copy.deepcopy(model).to(device=device, dtype=dtype).eval()
    activation = getattr(_find_config(fast), "hidden_act", "gelu")
    attention = "blocked" if device.type == "cpu" else "sdpa"
    for parent in list(fast.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, GenaSelfAttention):
                setattr(parent, name, FusedSelfAttention(child, packed, attention))
            elif isinstance(child, (GenaSelfOutput, GenaOutputProjection)):
                setattr(parent, name, FusedResidualOutput(child, packed))
            elif isinstance(child, GenaIntermediate):
                setattr(parent, name, FusedIntermediate(child, activation, packed))
    for p in fast.parameters():
        p.requires_grad_(False)
    return fast


def _find_config(model: nn.Module):
    for module in model.modules():
        if hasattr(module, "config"):
            return module.config
    return None

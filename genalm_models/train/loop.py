"""The training loop: MLM pretraining, RMT pretraining and fine-tuning, one process or many (torchrun).

Read it top to bottom: set-up, model, data, optimizer, resume, then a plain loop of
    for step: for micro-batch: forward, backward;  clip, optimizer step;  log, evaluate, checkpoint.
Distributed runs use torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR...), NCCL on GPU and gloo
on CPU; data is sharded by the deterministic global-batch sampler, losses and metrics are reduced across ranks, and
only rank 0 writes.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import resource
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel as DDP

from ..checkpoint import load_model, resolve_model_folder
from ..config import GenaConfig, RMTConfig
from ..inference import keep_freed_memory
from ..modeling_gena import build_model
from ..predict import Predictor, forward_content, unwrap
from ..pretrain.masking import MaskingConfig
from ..pretrain.packing import PackedSamples
from ..rmt import RMT
from ..tokenizer import GenaTokenizer
from .config import RunConfig, RunConfigError
from .data import GlobalBatchSampler, MLMDataset, SampleRef, TaskDataset, collate
from .state import latest_checkpoint, load_trainer_state, rng_state, save_checkpoint


# ---------------------------------------------------------------------------------------------------------------
# set-up
# ---------------------------------------------------------------------------------------------------------------
def setup_distributed(device_pref: str) -> tuple[int, int, torch.device]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    use_cuda = device_pref == "cuda" or (device_pref == "auto" and torch.cuda.is_available())
    if device_pref == "cuda" and not torch.cuda.is_available():
        raise RunConfigError("train.device is cuda but no GPU is visible")
    if use_cuda:
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return rank, world, device


def learning_rate(step: int, cfg: RunConfig) -> float:
    """Linear warm-up, then linear decay to 0 / cosine decay to 10% / constant."""
    o, total = cfg.optim, cfg.train.steps
    if step < o.warmup_steps:
        return o.lr * (step + 1) / o.warmup_steps
    if o.schedule == "constant":
        return o.lr
    progress = (step - o.warmup_steps) / max(1, total - o.warmup_steps)
    if o.schedule == "linear":
        return o.lr * max(0.0, 1.0 - progress)
    return o.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def disable_dropout(model: torch.nn.Module) -> None:
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
        if hasattr(module, "dropout_p"):
            module.dropout_p = 0.0


class TrainingDiverged(ValueError):
    """A non-finite training loss: the run stops before the step is applied."""


def build_task(cfg: RunConfig):
    if cfg.data.task == "mlm":
        return None
    from ..tasks import make_task
    return make_task(cfg.data.task, cfg.data.args, seed=cfg.train.seed)


# Parameters a head may start without when it is initialised from another head's checkpoint (official names).
FRESH_HEAD_PARAMETERS = {"sequence_classification": ("classifier.", "bert.pooler."),
                         "token_classification": ("classifier.",)}


def build_model_and_tokenizer(cfg: RunConfig, task, log) -> tuple[torch.nn.Module, GenaTokenizer]:
    m = cfg.model
    init_from = resolve_model_folder(m.init_from) if m.init_from else None
    tokenizer = GenaTokenizer.from_pretrained(m.tokenizer or init_from)
    head_fields = {}
    if task is not None:
        head_fields = dict(num_labels=len(task.labels), problem_type=task.problem_type,
                           id2label=dict(enumerate(task.labels)))
    if init_from:
        # fine-tuning from a pretrained backbone: the new head may be missing from it and its MLM head unused (the
        # load report saying so is logged by load_model as a warning); anything else missing is an error
        new_head = FRESH_HEAD_PARAMETERS.get(m.head, ())
        model, _ = load_model(init_from, head=m.head, num_labels=head_fields.get("num_labels"),
                              allow_missing=new_head, allow_unexpected=("cls.",) if new_head else ())
        if head_fields:
            inner = unwrap(model)
            inner.config = inner.config.replace(**head_fields)
    else:
        config = GenaConfig.from_dict({**m.config, "vocab_size": tokenizer.vocab_size,
                                       "pad_token_id": tokenizer.pad_id, **head_fields}, source="model.config")
        torch.manual_seed(cfg.train.seed)
        model = build_model(config, m.head)
    if m.rmt is not None and not isinstance(model, RMT):
        torch.manual_seed(cfg.train.seed + 1)
        model = RMT(model, RMTConfig(**m.rmt), cls_id=tokenizer.cls_id, sep_id=tokenizer.sep_id,
                    pad_id=tokenizer.pad_id)
    elif m.rmt is not None:
        # started from an RMT checkpoint (e.g. the RMT-pretrained backbone): its memory tokens are kept, the run's
        # own RMT settings (readout/loss, truncated backpropagation, segment limit) replace the checkpoint's
        rmt = RMTConfig(**{"segment_padding": model.rmt.segment_padding, **m.rmt})
        if rmt.num_mem_tokens != model.num_mem_tokens:
            raise RunConfigError(f"model.rmt.num_mem_tokens={rmt.num_mem_tokens}, but {m.init_from} has "
                                 f"{model.num_mem_tokens} memory tokens")
        rmt.validate(model.input_size)
        model.rmt = rmt
    elif isinstance(model, RMT):
        # a plain model (model.rmt: null) started from an RMT checkpoint: its memory-token embedding rows go
        model = plain_from_rmt(model)
    if m.smooth_positions:
        smooth_positions(model, float(m.smooth_positions))
    if unwrap(model).config.vocab_size != tokenizer.vocab_size:
        raise RunConfigError(f"the model's vocabulary ({unwrap(model).config.vocab_size}) does not match the "
                             f"tokenizer's ({tokenizer.vocab_size}): take the tokenizer from the checkpoint folder")
    if not cfg.train.dropout:
        disable_dropout(model)
    return model, tokenizer


def smooth_positions(model: torch.nn.Module, sigma: float) -> None:
    """`model.smooth_positions` (config.py): Gaussian-filter the content rows of the position table along the
    positions (reflected at the ends), then rescale each row to the table's mean row norm."""
    if sigma <= 0:
        raise RunConfigError(f"model.smooth_positions must be > 0 (positions), got {sigma}")
    table = unwrap(model).bert.embeddings.position_embeddings.weight
    first = model.num_mem_tokens + 2 if isinstance(model, RMT) else 1
    with torch.no_grad():
        rows = table[first:].float()
        radius = int(math.ceil(3 * sigma))
        offsets = torch.arange(-radius, radius + 1, dtype=torch.float32)
        kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
        kernel = (kernel / kernel.sum()).view(1, 1, -1).repeat(rows.shape[1], 1, 1)
        padded = F.pad(rows.t().unsqueeze(0), (radius, radius), mode="reflect")  # (1, H, L + 2r)
        smooth = F.conv1d(padded, kernel, groups=rows.shape[1])[0].t()           # (L, H)
        target = rows.norm(dim=1).mean()
        smooth = smooth / smooth.norm(dim=1, keepdim=True).clamp_min(1e-12) * target
        table[first:] = smooth.to(table.dtype)


def plain_from_rmt(model: RMT) -> torch.nn.Module:
    """The head model inside an RMT wrapper, with the word embeddings cut back to the vocabulary (the memory
    tokens' rows dropped), for a plain run initialised from an RMT checkpoint (e.g. the bundled GENA-LM/mlm)."""
    inner = model.model
    old = inner.word_embeddings
    new = torch.nn.Embedding(model.vocab_size, old.embedding_dim, padding_idx=old.padding_idx)
    with torch.no_grad():
        new.weight.copy_(old.weight[: model.vocab_size])
    inner.bert.embeddings.word_embeddings = new
    predictions = getattr(getattr(inner, "cls", None), "predictions", None)
    if predictions is not None:  # an MLM head: its decoder loses the memory rows too
        decoder = torch.nn.Linear(old.embedding_dim, model.vocab_size)
        with torch.no_grad():
            decoder.weight.copy_(predictions.decoder.weight[: model.vocab_size])
            decoder.bias.copy_(predictions.decoder.bias[: model.vocab_size])
        predictions.decoder = decoder
        predictions.bias = decoder.bias
        inner.tie_weights()
    return inner


def segment_budget(cfg: RunConfig, model: torch.nn.Module):
    """RMT curriculum: the token budget of a step (None: the full packed sample)."""
    curriculum = cfg.data.segment_curriculum
    if not curriculum or not isinstance(model, RMT):
        return None
    seg = model.segment_size

    def at(step: int) -> int:
        n = [n for start, n in curriculum if start <= step][-1]
        if cfg.data.random_segments_probability > 0:
            rng = np.random.default_rng([cfg.train.seed, step, 7])
            if rng.random() < cfg.data.random_segments_probability:
                n = int(rng.integers(1, n + 1))
        return n * seg

    return at


# ---------------------------------------------------------------------------------------------------------------
# evaluation
# ---------------------------------------------------------------------------------------------------------------
def evaluate_task(model, tokenizer, task, examples, cfg: RunConfig, device, rank: int, world: int) -> dict:
    """Metrics of `task` on `examples`, through the shared predict path; examples sharded over ranks."""
    if cfg.train.max_eval_examples:
        examples = examples[: cfg.train.max_eval_examples]
    mine = list(range(rank, len(examples), world))
    predictor = Predictor(unwrap_ddp(model), tokenizer, device=device,
                          precision="bf16" if cfg.train.precision == "bf16" else "fp32",
                          batch_size=cfg.train.eval_batch_size, keep_freed_memory=cfg.train.keep_freed_memory)
    level = "token" if task.head == "token_classification" else "nucleotide"
    preds = predictor.predict([examples[i].seq for i in mine], level=level)
    if world > 1:
        gathered = [None] * world
        dist.all_gather_object(gathered, list(zip(mine, preds)))
        pairs = sorted(p for part in gathered for p in part)
        preds = [p for _, p in pairs]
    return task.metrics(examples, preds)


def evaluate_mlm(model, valid: MLMDataset, tokenizer, cfg: RunConfig, device, rank: int, world: int) -> dict:
    """Masked-token loss and accuracy on held-out packed samples (masking fixed: epoch 0)."""
    n = len(valid) if not cfg.train.max_eval_examples else min(len(valid), cfg.train.max_eval_examples)
    totals = torch.zeros(3, dtype=torch.float64, device=device)  # loss sum, correct, count
    bs = cfg.train.eval_batch_size
    with torch.no_grad(), autocast(cfg, device):
        for first in range(rank * bs, n, world * bs):
            items = [valid[SampleRef(0, i)] for i in range(first, min(first + bs, n))]
            batch = {k: v.to(device) for k, v in collate(items, tokenizer.pad_id).items()}
            out = forward_content(model, batch["ids"], batch["mask"], tokenizer.cls_id, tokenizer.sep_id,
                                  tokenizer.pad_id, labels=batch["labels"])
            target = batch["labels"][batch["labels"] != -100]
            totals += torch.tensor([out.loss.item() * len(target), (out.logits.argmax(-1) == target).sum().item(),
                                    len(target)], dtype=torch.float64, device=device)
    if world > 1:
        dist.all_reduce(totals)
    loss_sum, correct, count = totals.tolist()
    return {"mlm_loss": loss_sum / max(count, 1), "mlm_accuracy": correct / max(count, 1)}


def peak_rss_gb() -> float:
    """This process's peak resident memory so far, GB (summed over ranks in the metrics)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # KB on Linux


def unwrap_ddp(model):
    return model.module if isinstance(model, DDP) else model


def autocast(cfg: RunConfig, device: torch.device):
    if cfg.train.precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if cfg.train.precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


# ---------------------------------------------------------------------------------------------------------------
# the run
# ---------------------------------------------------------------------------------------------------------------
def train(cfg: RunConfig, resume: bool = False) -> dict:
    rank, world, device = setup_distributed(cfg.train.device)
    if device.type == "cpu" and cfg.train.keep_freed_memory:
        keep_freed_memory()
    run_dir = Path(cfg.run_dir)
    t_cfg = cfg.train

    def log(msg: str) -> None:
        if rank == 0:
            print(msg, flush=True)

    # ---- run folder: a new run refuses to overwrite; --resume needs the same config --------------------------
    saved_cfg = run_dir / "config.yaml"
    checkpoint = latest_checkpoint(run_dir) if resume else None
    if rank == 0:
        if resume and saved_cfg.is_file():
            if RunConfig.load(saved_cfg).to_dict() != cfg.to_dict():
                raise RunConfigError(f"{saved_cfg} differs from the config given to --resume; resume with the "
                                     "saved config (or start a new run_dir)")
        elif not resume and (run_dir / "checkpoints").exists():
            raise RunConfigError(f"{run_dir} already holds checkpoints: pass --resume to continue it, or choose a "
                                 "new run_dir")
        run_dir.mkdir(parents=True, exist_ok=True)
        cfg.save(saved_cfg)
    if world > 1:
        dist.barrier()

    # ---- model, data --------------------------------------------------------------------------------------------
    task = build_task(cfg)
    model, tokenizer = build_model_and_tokenizer(cfg, task, log)
    if checkpoint is not None:
        model, _ = load_model(checkpoint, head=cfg.model.head, strict=True)
        if not t_cfg.dropout:
            disable_dropout(model)
    model.to(device)
    n_params = sum(p.numel() for p in model.parameters())
    log(f"model: {n_params / 1e6:.2f}M parameters, head {cfg.model.head}"
        f"{', RMT' if isinstance(model, RMT) else ''}; {world} process(es) on {device}")

    if task is None:
        train_set = MLMDataset(PackedSamples.open(cfg.data.packed), tokenizer,
                               MaskingConfig(mlm_probability=cfg.data.mlm_probability,
                                             short_sample_probability=cfg.data.short_sample_probability),
                               seed=t_cfg.seed)
        valid_set = (MLMDataset(PackedSamples.open(cfg.data.valid_packed), tokenizer,
                                train_set.masking, seed=t_cfg.seed + 1) if cfg.data.valid_packed else None)
        splits = None
    else:
        splits = task.build()
        train_set = TaskDataset(splits["train"], tokenizer, token_level=task.head == "token_classification",
                                seed=t_cfg.seed)
        if cfg.data.pos_weight is not None:
            if task.head != "token_classification" or len(cfg.data.pos_weight) != len(task.labels):
                raise RunConfigError(f"data.pos_weight needs a token task and one weight per label {task.labels}")
            unwrap(model).pos_weight = torch.tensor(cfg.data.pos_weight, dtype=torch.float32, device=device)
        log(f"task {task.name}: " + ", ".join(f"{k} {len(v)}" for k, v in splits.items()))
        if getattr(task, "report", None):  # what the task kept, left out and counted while building the splits
            log(f"task {task.name} report: " + ", ".join(f"{k} {v:g}" for k, v in task.report.items()))

    # ---- optimizer, precision, resume ------------------------------------------------------------------------
    frozen = [n for n, p in model.named_parameters() if any(part in n for part in cfg.model.freeze)]
    for name, param in model.named_parameters():
        param.requires_grad_(name not in frozen)
    if cfg.model.freeze:
        if not frozen:
            raise RunConfigError(f"model.freeze {cfg.model.freeze} matches no parameter of the model")
        log(f"frozen (not trained): {', '.join(frozen)}")
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and p.requires_grad]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2 and p.requires_grad]  # biases, LayerNorms
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.optim.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}],
                                  lr=cfg.optim.lr, betas=tuple(cfg.optim.betas), eps=cfg.optim.eps,
                                  foreach=device.type == "cuda")
    scaler = torch.amp.GradScaler(device.type) if t_cfg.precision == "fp16" else None
    start_step = 0
    if checkpoint is not None:
        meta = load_trainer_state(checkpoint, optimizer, scaler, rank, world)  # RNGs included
        start_step = meta["step"] + 1
        log(f"resumed from {checkpoint} (step {meta['step']})")
        if rank == 0:
            trim_metrics(run_dir / "metrics.jsonl", meta["step"])
    else:
        torch.manual_seed(t_cfg.seed + rank)  # dropout streams: distinct per rank, fixed per seed
        if rank == 0 and (run_dir / "metrics.jsonl").exists():
            (run_dir / "metrics.jsonl").unlink()

    train_model = DDP(model, device_ids=[device.index] if device.type == "cuda" else None) if world > 1 else model
    if t_cfg.compile:
        train_model = torch.compile(train_model)

    sampler = GlobalBatchSampler(len(train_set), t_cfg.micro_batch_size, world, rank, t_cfg.grad_accum,
                                 t_cfg.seed, start_step, t_cfg.steps, max_tokens_at=segment_budget(cfg, model))
    loader = torch.utils.data.DataLoader(
        train_set, batch_sampler=sampler, collate_fn=partial(collate, pad_id=tokenizer.pad_id),
        num_workers=cfg.data.num_workers, pin_memory=device.type == "cuda",
        # workers draw their seeds from this generator, not from the global RNG that dropout uses
        generator=torch.Generator().manual_seed(t_cfg.seed), persistent_workers=False)
    batches = iter(loader)

    writer = open_tensorboard(run_dir) if rank == 0 else None
    progress = None
    if rank == 0 and os.environ.get("GENALM_PROGRESS", "1") != "0":
        from tqdm.auto import tqdm
        progress = tqdm(total=t_cfg.steps, initial=start_step, desc="train", unit="step", dynamic_ncols=True)

    # ---- the loop ------------------------------------------------------------------------------------------------
    last_metrics: dict = {}
    window = {"loss": 0.0, "tokens": 0, "wait": 0.0, "time": time.perf_counter(), "steps": 0}
    model.train()
    for step in range(start_step, t_cfg.steps):
        lr = learning_rate(step, cfg)
        for group in optimizer.param_groups:
            group["lr"] = lr
        step_loss = torch.zeros((), device=device)
        for accum_step in range(t_cfg.grad_accum):
            t0 = time.perf_counter()
            batch = next(batches)
            window["wait"] += time.perf_counter() - t0
            batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
            sync = accum_step == t_cfg.grad_accum - 1
            with (contextlib.nullcontext() if sync or world == 1 else train_model.no_sync()), autocast(cfg, device):
                out = forward_content(train_model, batch["ids"], batch["mask"], tokenizer.cls_id, tokenizer.sep_id,
                                      tokenizer.pad_id, labels=batch["labels"],
                                      labels_mask=batch.get("labels_mask"))
                loss = out.loss / t_cfg.grad_accum
            (scaler.scale(loss) if scaler else loss).backward()
            step_loss += loss.detach()
            window["tokens"] += int(batch["mask"].sum())
        loss_value = step_loss.item()
        if not math.isfinite(loss_value) and not scaler:  # (fp16: the loss scaler skips such steps itself)
            raise TrainingDiverged(f"step {step + 1}: the training loss is {loss_value} (lr {lr:.3g}); the run "
                                   "stopped before this step changed the weights: lower optim.lr, check the data, or "
                                   "use train.precision fp32, then --resume from the last checkpoint")
        if scaler:
            scaler.unscale_(optimizer)
        if cfg.optim.clip_grad_norm:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.clip_grad_norm)
        if scaler:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        window["loss"] += loss_value
        window["steps"] += 1
        if progress:
            progress.update(1)

        last = step == t_cfg.steps - 1
        if (step + 1) % t_cfg.log_every == 0 or last:
            stats = torch.tensor([window["loss"], window["tokens"], window["wait"], peak_rss_gb()],
                                 dtype=torch.float64, device=device)
            if world > 1:
                dist.all_reduce(stats)
            elapsed = time.perf_counter() - window["time"]
            record = {"step": step + 1, "lr": lr, "train_loss": stats[0].item() / world / window["steps"],
                      "tokens_per_s": stats[1].item() / elapsed,
                      "data_wait_fraction": stats[2].item() / world / elapsed,
                      "peak_rss_gb": round(stats[3].item(), 3)}
            last_metrics.update(record)
            write_metrics(run_dir, record, writer, rank)
            if progress:
                progress.set_postfix(loss=f"{record['train_loss']:.4f}", tok_s=f"{record['tokens_per_s']:.0f}")
            window = {"loss": 0.0, "tokens": 0, "wait": 0.0, "time": time.perf_counter(), "steps": 0}
        if (step + 1) % t_cfg.eval_every == 0 or last:
            model.eval()
            if task is not None:
                metrics = evaluate_task(model, tokenizer, task, splits["valid"], cfg, device, rank, world)
            elif valid_set is not None:
                metrics = evaluate_mlm(model, valid_set, tokenizer, cfg, device, rank, world)
            else:
                metrics = {}
            model.train()
            if metrics:
                record = {"step": step + 1, **{f"valid_{k}": v for k, v in metrics.items()}}
                last_metrics.update(record)
                write_metrics(run_dir, record, writer, rank)
                log(f"step {step + 1}: " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
        if (step + 1) % t_cfg.save_every == 0 or last:
            rng_states = [rng_state()]
            if world > 1:
                rng_states = [None] * world
                dist.all_gather_object(rng_states, rng_state())
            if rank == 0:
                save_checkpoint(run_dir, step, model, tokenizer, optimizer, scaler, rng_states,
                                extra={"train_loss": last_metrics.get("train_loss")},
                                keep=t_cfg.keep_checkpoints)
            if world > 1:
                dist.barrier()
    if progress:
        progress.close()
    if writer:
        writer.close()
    return last_metrics


def write_metrics(run_dir: Path, record: dict, writer, rank: int) -> None:
    if rank != 0:
        return
    with open(run_dir / "metrics.jsonl", "a") as f:
        f.write(json.dumps(record) + "\n")
    if writer:
        for key, value in record.items():
            if key != "step":
                writer.add_scalar(key, value, record["step"])


def trim_metrics(path: Path, step: int) -> None:
    """After a resume, drop log lines written after the checkpoint (they will be written again)."""
    if not path.is_file():
        return
    from ..io_utils import write_text_atomic
    from .curves import read_metrics
    kept = [row for row in read_metrics(path) if row["step"] <= step + 1]  # a torn last line is dropped
    write_text_atomic(path, "".join(json.dumps(row) + "\n" for row in kept))


def open_tensorboard(run_dir: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except Exception:  # tensorboard not installed: the JSONL log is enough
        return None
    return SummaryWriter(str(run_dir / "tensorboard"))

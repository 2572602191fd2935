"""Training checkpoints: written atomically, restored exactly, no pickle.

A checkpoint is a folder `checkpoints/step_000123/` holding
- the model folder (config.json + model.safetensors with official names + tokenizer files): usable on its own,
- `trainer.safetensors`: optimizer moments and every RNG state, as tensors,
- `trainer.json`: step, loss-scaler scalars, the optimizer's hyper-parameters (the learning rate is a pure
  function of the step, so there is no scheduler state).
It is written under a temporary name and renamed into place, then `checkpoints/latest` (a one-line text file) is
replaced atomically; a run killed at any moment leaves the previous checkpoint intact and `latest` pointing to a
complete one. Resuming restores model, optimizer, scaler and the RNGs of every rank.
"""
from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save as safetensors_bytes

from ..checkpoint import read_safetensors, save_model
from ..io_utils import atomic_write, move_into_place, write_text_atomic
from ..tokenizer import GenaTokenizer

LATEST = "latest"


def rng_state() -> dict[str, torch.Tensor]:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()
    np_state = np.random.get_state()
    state["numpy_keys"] = torch.from_numpy(np_state[1].astype(np.int64))
    state["numpy_meta"] = torch.tensor([np_state[2], np_state[3], np_state[4]], dtype=torch.float64)
    state["python"] = torch.tensor(random.getstate()[1], dtype=torch.int64)
    return state


def set_rng_state(state: dict[str, torch.Tensor]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])
    meta = state["numpy_meta"].tolist()
    np.random.set_state(("MT19937", state["numpy_keys"].numpy().astype(np.uint32), int(meta[0]), int(meta[1]),
                         meta[2]))
    random.setstate((3, tuple(int(x) for x in state["python"].tolist()), None))


def _flatten_optimizer(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    sd = optimizer.state_dict()
    tensors, scalars = {}, {}
    for pid, pstate in sd["state"].items():
        for key, value in pstate.items():
            if torch.is_tensor(value):
                tensors[f"optim.{pid}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{pid}.{key}"] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        if name.startswith("optim."):
            _, pid, key = name.split(".", 2)
            state.setdefault(int(pid), {})[key] = value
    for name, value in meta["scalars"].items():
        pid, key = name.split(".", 1)
        state.setdefault(int(pid), {})[key] = value
    return {"state": state, "param_groups": meta["param_groups"]}


def save_checkpoint(run_dir: Path, step: int, model: torch.nn.Module, tokenizer: GenaTokenizer,
                    optimizer: torch.optim.Optimizer, scaler, rng_states: list[dict[str, torch.Tensor]],
                    extra: dict[str, Any], keep: int) -> Path:
    """Rank 0 only. `rng_states`: one per rank (gathered), restored to the same rank on resume."""
    ckpt_root = run_dir / "checkpoints"
    ckpt_root.mkdir(parents=True, exist_ok=True)
    final = ckpt_root / f"step_{step:07d}"
    tmp = ckpt_root / f".tmp_step_{step:07d}"
    if tmp.exists():
        shutil.rmtree(tmp)
    save_model(model, tmp)
    tokenizer.save(tmp)
    tensors, meta = _flatten_optimizer(optimizer)
    for rank, state in enumerate(rng_states):
        for key, value in state.items():
            tensors[f"rng.{rank}.{key}"] = value.contiguous()
    with atomic_write(tmp / "trainer.safetensors", "wb") as f:
        f.write(safetensors_bytes(tensors))
    meta.update(step=step, scaler=scaler.state_dict() if scaler else None,
                world_size=len(rng_states), **extra)
    write_text_atomic(tmp / "trainer.json", json.dumps(meta, indent=1, default=float) + "\n")
    move_into_place(tmp, final)  # an old folder of that step is swapped out, never mixed with the new one
    write_text_atomic(ckpt_root / LATEST, final.name + "\n")
    # prune old checkpoints (never the one just written)
    done = sorted(p for p in ckpt_root.glob("step_*") if p.is_dir())
    for old in done[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(run_dir: Path) -> Path | None:
    pointer = run_dir / "checkpoints" / LATEST
    if not pointer.is_file():
        return None
    path = run_dir / "checkpoints" / pointer.read_text().strip()
    if not (path / "trainer.json").is_file():
        raise FileNotFoundError(f"{pointer} names {path}, which is incomplete or missing")
    return path


def load_trainer_state(path: Path, optimizer: torch.optim.Optimizer, scaler, rank: int,
                       world_size: int) -> dict[str, Any]:
    try:
        meta = json.loads((path / "trainer.json").read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path / 'trainer.json'}: line {err.lineno}: not valid JSON ({err.msg}): the checkpoint is "
                         "damaged; delete that checkpoint folder and resume from an earlier one") from None
    if meta["world_size"] != world_size:
        raise ValueError(f"{path} was written by a run with {meta['world_size']} processes; resume it with the same "
                         f"number (now {world_size}) so that every rank gets its own random state back")
    tensors = read_safetensors(path / "trainer.safetensors")
    optimizer.load_state_dict(_unflatten_optimizer(tensors, meta))
    if scaler is not None and meta.get("scaler"):
        scaler.load_state_dict(meta["scaler"])
    prefix = f"rng.{rank}."
    set_rng_state({k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)})
    return meta

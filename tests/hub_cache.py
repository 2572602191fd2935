"""Official-format GENA-LM checkpoints with random weights, laid out in a Hugging Face cache as the hub lays it out.

    write_official_checkpoint(folder, head, **config)   config.json with the official keys (auto_map and all),
                                                        pytorch_model.bin (a plain dict of tensors, official names,
                                                        tied copies and position_ids included), the t2t tokenizer
    put_in_hub_cache(cache, repo_id, revision, folder)  blobs/<sha256>, snapshots/<commit>/<file> -> ../../blobs/..,
                                                        refs/<revision>: what `snapshot_download` leaves behind

Used by the tests (no network: HF_HUB_OFFLINE=1 and HF_HUB_CACHE pointing at the cache) and by
bench/bench_official.py (official sizes, random weights).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
OFFICIAL_TOKENIZER = ROOT.parent / "shared" / "data" / "gena_lm_official" / "tokenizer_t2t"
ARCHITECTURES = {"mlm": "BertForMaskedLM", "sequence_classification": "BertForSequenceClassification",
                 "token_classification": "BertForTokenClassification"}


def official_config(head: str, **changes) -> dict:
    """config.json as the official hub repositories carry it (bert-base-t2t keys; `changes` override)."""
    data = {
        "architectures": [ARCHITECTURES[head]],
        "auto_map": {"AutoConfig": "configuration_bert.BertConfig", "AutoModel": "modeling_bert.BertModel",
                     "AutoModelForMaskedLM": "modeling_bert.BertForMaskedLM"},
        "attention_probs_dropout_prob": 0.1, "gradient_checkpointing": False, "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1, "hidden_size": 768, "initializer_range": 0.02, "intermediate_size": 3072,
        "layer_norm_eps": 1e-12, "max_position_embeddings": 512, "model_type": "bert", "num_attention_heads": 12,
        "num_hidden_layers": 12, "pad_token_id": 3, "pre_layer_norm": True, "position_embedding_type": "absolute",
        "transformers_version": "4.22.1", "type_vocab_size": 2, "use_cache": True, "vocab_size": 32000,
    }
    data.update(changes)
    return data


def write_official_checkpoint(folder: Path, head: str, drop: tuple[str, ...] = (), seed: int = 0,
                              **config_changes) -> Path:
    """A random official-format checkpoint folder; `drop`: parameter names left out (an incomplete file)."""
    from genalm_models.config import GenaConfig
    from genalm_models.modeling_gena import build_model

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    data = official_config(head, **config_changes)
    torch.manual_seed(seed)
    model = build_model(GenaConfig.from_dict(dict(data)), head)
    with torch.no_grad():  # LayerNorms away from (1, 0) so that a mix-up of norms shows
        for name, param in model.named_parameters():
            if "ln" in name.lower() or "layernorm" in name.lower():
                param.add_(torch.randn_like(param) * 0.1)
    state = {k: v.clone() for k, v in model.state_dict().items() if k not in drop}
    state["bert.embeddings.position_ids"] = torch.arange(data["max_position_embeddings"])[None]
    (folder / "config.json").write_text(json.dumps(data, indent=2))
    torch.save(state, folder / "pytorch_model.bin")
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copyfile(OFFICIAL_TOKENIZER / name, folder / name)
    return folder


def put_in_hub_cache(cache: Path, repo_id: str, revision: str, folder: Path, files: list[str] | None = None,
                     commit: str | None = None) -> Path:
    """Lay `folder`'s files out as `snapshot_download` would have for `repo_id` at branch `revision`.

    LFS files (weights) are stored under their sha256, small files under their git blob sha1, as on the hub.
    Returns the snapshot folder.
    """
    repo = Path(cache) / ("models--" + repo_id.replace("/", "--"))
    names = files or sorted(p.name for p in Path(folder).iterdir() if p.is_file())
    digest = hashlib.sha1(repr((repo_id, revision, names)).encode())
    for name in names:
        digest.update((Path(folder) / name).read_bytes())
    commit = commit or digest.hexdigest()
    snapshot = repo / "snapshots" / commit
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    snapshot.mkdir(parents=True, exist_ok=True)
    for name in names:
        content = (Path(folder) / name).read_bytes()
        if name.endswith((".bin", ".safetensors")):
            blob = hashlib.sha256(content).hexdigest()
        else:
            blob = hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()
        (repo / "blobs" / blob).write_bytes(content)
        link = snapshot / name
        if link.is_symlink() or link.exists():
            link.unlink()
        os.symlink(os.path.join("..", "..", "blobs", blob), link)
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / revision).write_text(commit)
    return snapshot

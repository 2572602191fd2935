"""Official GENA-LM checkpoints from the Hugging Face hub: fetched once into the Hugging Face cache, then offline.

The published GENA-LM models live in the hub repositories of `AIRI-Institute` (`gena-lm-bert-base-t2t`, ...); the
fine-tuned heads are *branches* of those repositories (`promoters_300_run_1`, `spliceai_run_1`, ...; see the
official repository's README_previous_generation.md). `fetch` brings one revision into the standard Hugging Face
cache with `huggingface_hub.snapshot_download` (the hub's own cache layout, ETag / sha256 checks and locking), and
afterwards finds it there without the network:

    HF_HUB_CACHE/models--AIRI-Institute--gena-lm-bert-base-t2t/
        refs/promoters_300_run_1              the commit the branch pointed to when it was fetched
        snapshots/<commit>/config.json        links into blobs/
        snapshots/<commit>/pytorch_model.bin
        blobs/<sha256 of each LFS file>

Only the files a model needs are fetched (config, weights, tokenizer). `HF_HUB_OFFLINE=1` (read at call time) or
`offline=True` never touches the network; a revision that is not in the cache is then one `HubError` that names
the repository and revision and says how to fetch it. No code from the hub is ever run (`auto_map` in the
official config.json is ignored; our own modeling code reads the weights).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

# What a GENA-LM model folder needs; the official repositories also carry modeling_bert.py (remote code: never
# fetched, never run), README.md and .gitattributes.
MODEL_FILES = ("config.json", "model.safetensors", "pytorch_model.bin", "tokenizer.json", "tokenizer_config.json",
               "special_tokens_map.json")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
_TRUE = ("1", "true", "yes", "on")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class HubError(OSError):
    """A hub revision that cannot be had (offline and not cached, no such repository or branch, network down)."""


@dataclass(frozen=True)
class HubRevision:
    """A fetched revision: where its files are and which commit the branch resolved to."""

    repo_id: str
    revision: str           # what was asked for: a branch, tag or commit
    commit: str             # the commit it resolved to (the snapshot folder's name)
    folder: Path            # HF_HUB_CACHE/models--.../snapshots/<commit>
    tokenizer_folder: Path  # the same folder, or `main`'s snapshot when the branch carries no tokenizer files

    def provenance(self) -> dict[str, str]:
        return {"repo_id": self.repo_id, "revision": self.revision, "commit": self.commit,
                "snapshot": str(self.folder)}


def offline_mode(offline: bool | None = None) -> bool:
    """True when the caller asked for it or HF_HUB_OFFLINE is set (read now, not at import time)."""
    if offline is not None:
        return offline
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE


def cache_dir(explicit: str | os.PathLike | None = None) -> Path:
    """The Hugging Face hub cache in force: `explicit`, else HF_HUB_CACHE, else HF_HOME/hub, else the default."""
    if explicit:
        return Path(explicit)
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]) / "hub"
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "huggingface" / "hub"


def fetch_command(repo_id: str, revision: str) -> str:
    return f"hf download {repo_id} --revision {revision}"


def _snapshot(repo_id: str, revision: str, patterns: list[str], cache: Path, offline: bool) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (EntryNotFoundError, HfHubHTTPError, LocalEntryNotFoundError,
                                        RepositoryNotFoundError, RevisionNotFoundError)

    where = f"{repo_id} at revision {revision!r}"
    try:
        return Path(snapshot_download(repo_id, revision=revision, cache_dir=str(cache), local_files_only=offline,
                                      allow_patterns=patterns))
    except RevisionNotFoundError:
        raise HubError(f"{where}: the repository has no such branch, tag or commit") from None
    except RepositoryNotFoundError:
        raise HubError(f"{where}: no such repository on the Hugging Face hub (or it is private)") from None
    except (LocalEntryNotFoundError, EntryNotFoundError) as err:
        if offline:
            raise HubError(f"{where} is not in the Hugging Face cache {cache} and the hub is not to be contacted "
                           f"(HF_HUB_OFFLINE): fetch it once where the network is reachable, with "
                           f"`genalm-kipoi download ...` or `{fetch_command(repo_id, revision)}`, and copy the "
                           "cache folder here (HF_HUB_CACHE or HF_HOME say where it is)") from None
        raise HubError(f"{where}: could not be fetched ({err.__class__.__name__}: "
                       f"{str(err).splitlines()[0] if str(err) else 'network unreachable?'}); "
                       "set HF_HUB_OFFLINE=1 to use only the cache") from None
    except (HfHubHTTPError, OSError) as err:
        raise HubError(f"{where}: could not be fetched from the hub ({err.__class__.__name__}: "
                       f"{str(err).splitlines()[0] if str(err) else ''})") from None


def fetch(repo_id: str, revision: str = "main", cache: str | os.PathLike | None = None,
          offline: bool | None = None) -> HubRevision:
    """The files of one revision of a GENA-LM hub repository, from the cache or (once) from the hub.

    revision: a branch (fine-tuned heads are branches: `promoters_2000_run_1`), tag or commit. Returns the
    snapshot folder and the commit the revision resolved to. Raises `HubError` (one line, naming repository and
    revision) when it cannot be had, or when the snapshot lacks a config.json or weights.
    """
    offline = offline_mode(offline)
    cache = cache_dir(cache)
    folder = _snapshot(repo_id, revision, list(MODEL_FILES), cache, offline)
    where = f"{repo_id} at revision {revision!r} ({folder})"
    if not (folder / "config.json").is_file():
        raise HubError(f"{where}: no config.json in the snapshot")
    if not any((folder / name).is_file() for name in ("model.safetensors", "pytorch_model.bin")):
        raise HubError(f"{where}: no weights in the snapshot (model.safetensors or pytorch_model.bin); the cache "
                       "may hold an interrupted download: fetch it again")
    tokenizer_folder = folder
    if not (folder / "tokenizer.json").is_file():
        # A fine-tuned branch may carry only config and weights; the tokenizer is the backbone's (`main`).
        tokenizer_folder = _snapshot(repo_id, "main", list(TOKENIZER_FILES), cache, offline)
        if not (tokenizer_folder / "tokenizer.json").is_file():
            raise HubError(f"{where}: no tokenizer.json in the snapshot nor on the repository's main branch")
    return HubRevision(repo_id=repo_id, revision=revision, commit=folder.name, folder=folder,
                       tokenizer_folder=tokenizer_folder)


def file_sha256(path: str | os.PathLike) -> str | None:
    """The sha256 the hub recorded for a cached LFS file (its blob is named by it), without reading the file.

    Returns None for a file that is not a hub blob named by a sha256 (then the caller hashes it itself).
    """
    target = Path(os.path.realpath(path))
    if target.parent.name == "blobs" and _SHA256.match(target.name):
        return target.name
    return None


__all__ = ["HubError", "HubRevision", "fetch", "offline_mode", "cache_dir", "file_sha256", "fetch_command",
           "MODEL_FILES"]

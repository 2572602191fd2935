"""The corpus on disk: numbered JSONL shards (plain or gzip), each written atomically, and `manifest.json`, written
last (a folder without one is an unfinished build, and the readers refuse it). The readers check every line and
name the file and line of what is wrong.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import re
import zlib
from pathlib import Path
from typing import IO, Any, Iterator, Optional

from genalm_models.io_utils import atomic_write

from .corpus_config import CorpusError, PathLike

FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
_SHARD_NAME = re.compile(r"shard_[0-9]{5,}\.jsonl(\.gz)?")
# The temporary files atomic_write leaves only when a process is killed mid-write.
_LEFTOVER_TEMPORARY = re.compile(r"\.(shard_[0-9]{5,}\.jsonl(\.gz)?|manifest\.json)\..+\.tmp")


def _shard_name(index: int, output_format: str) -> str:
    return f"shard_{index:05d}.{output_format}"


class ShardWriter:
    """Writes documents into numbered shards of `documents_per_shard`; each shard appears atomically."""

    def __init__(self, folder: Path, documents_per_shard: int, output_format: str):
        self.folder = folder
        self.documents_per_shard = documents_per_shard
        self.output_format = output_format
        self.shards: list[dict[str, Any]] = []  # the finished ones
        self._context = None  # the atomic_write context of the open shard
        self._file: Optional[IO[bytes]] = None  # its temporary file
        self._stream: Optional[IO[bytes]] = None  # what documents are written to: the file or a gzip layer on it
        self._current: dict[str, Any] = {}

    def write(self, document: dict[str, Any], bp: int) -> None:
        if self._stream is None:
            self._open()
        self._stream.write(json.dumps(document, separators=(",", ":")).encode("ascii"))
        self._stream.write(b"\n")
        self._current["documents"] += 1
        self._current["sentences"] += len(document["sentences"])
        self._current["bp"] += bp
        if self._current["documents"] == self.documents_per_shard:
            self._commit()

    def _open(self) -> None:
        name = _shard_name(len(self.shards), self.output_format)
        self._context = atomic_write(self.folder / name, "wb")
        self._file = self._context.__enter__()
        if self.output_format == "jsonl.gz":
            # No file name and a zero time stamp in the gzip header, so equal content gives equal bytes.
            self._stream = gzip.GzipFile(filename="", mode="wb", fileobj=self._file, compresslevel=1, mtime=0)
        else:
            self._stream = self._file
        self._current = {"file": name, "documents": 0, "sentences": 0, "bp": 0}

    def _commit(self) -> None:
        if self._stream is not self._file:
            self._stream.close()  # writes the gzip trailer; atomic_write closes and renames the file
        context = self._context
        self._context = self._file = self._stream = None
        context.__exit__(None, None, None)
        self.shards.append(self._current)

    def close(self) -> list[dict[str, Any]]:
        if self._stream is not None:
            self._commit()
        return self.shards

    def abort(self, error: BaseException) -> None:
        """Drop the open shard (atomic_write deletes its temporary file) and the shards already finished."""
        if self._context is not None:
            if self._stream is not self._file:
                with contextlib.suppress(Exception):  # the gzip layer: it must not write later, at collection
                    self._stream.close()
            context = self._context
            self._context = self._file = self._stream = None
            context.__exit__(type(error), error, error.__traceback__)
        for shard in self.shards:
            with contextlib.suppress(FileNotFoundError):
                (self.folder / shard["file"]).unlink()
        self.shards = []


def prepare_output_dir(folder: Path, overwrite: bool) -> None:
    if folder.exists() and not folder.is_dir():
        raise CorpusError(f"output_dir {folder} exists and is not a folder")
    folder.mkdir(parents=True, exist_ok=True)
    entries = sorted(entry.name for entry in folder.iterdir())
    if not entries:
        return
    if not overwrite:
        shown = ", ".join(entries[:5]) + (" ..." if len(entries) > 5 else "")
        raise CorpusError(
            f"output_dir {folder} is not empty ({shown}); choose an empty folder or pass overwrite=True"
        )
    # The manifest goes first: should the rebuild fail, no manifest is left pointing at a mix of shards.
    with contextlib.suppress(FileNotFoundError):
        (folder / MANIFEST_NAME).unlink()
    for name in entries:
        if _SHARD_NAME.fullmatch(name) or _LEFTOVER_TEMPORARY.fullmatch(name):
            (folder / name).unlink()




def write_manifest(folder: PathLike, manifest: dict[str, Any]) -> None:
    """Write `manifest.json` (atomically): the last file of a build."""
    with atomic_write(Path(folder) / MANIFEST_NAME) as handle:
        json.dump(manifest, handle, indent=1)
        handle.write("\n")


def read_corpus_manifest(corpus_dir: PathLike) -> dict[str, Any]:
    """The manifest of a finished corpus; CorpusError when it is missing or unreadable."""
    path = Path(corpus_dir) / MANIFEST_NAME
    if not Path(corpus_dir).is_dir():
        raise CorpusError(f"corpus folder not found: {corpus_dir}")
    if not path.is_file():
        raise CorpusError(f"{path} not found: {corpus_dir} is not a finished corpus (did build_corpus fail?)")
    try:
        with open(path, encoding="utf-8") as handle:
            manifest = json.load(handle)
    except json.JSONDecodeError as exc:
        raise CorpusError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg})") from None
    except UnicodeDecodeError as exc:
        raise CorpusError(f"{path}: not UTF-8 text ({exc.reason})") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("shards"), list):
        raise CorpusError(f"{path}: not a corpus manifest (no 'shards' list)")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise CorpusError(
            f"{path}: corpus format version {manifest.get('format_version')!r}, this code reads {FORMAT_VERSION}"
        )
    for number, shard in enumerate(manifest["shards"]):
        if (
            not isinstance(shard, dict)
            or not isinstance(shard.get("file"), str)
            or not _SHARD_NAME.fullmatch(shard["file"])
            or not isinstance(shard.get("documents"), int)
            or isinstance(shard["documents"], bool)
        ):
            raise CorpusError(f"{path}: shard entry {number} is malformed: {shard!r}")
    return manifest


def corpus_shard_paths(corpus_dir: PathLike) -> list[Path]:
    """The shard files of a finished corpus, in order (e.g. to split them between data-loader workers)."""
    manifest = read_corpus_manifest(corpus_dir)
    return [Path(corpus_dir) / shard["file"] for shard in manifest["shards"]]


_DOCUMENT_FIELDS = {"contig": str, "strand": str, "start": int, "end": int, "pass": int, "sentences": list}


def iter_shard_documents(shard_path: PathLike, expected_documents: Optional[int] = None) -> Iterator[dict]:
    """Stream the documents of one shard, checking each; a bad line raises CorpusError naming file:line."""
    path = Path(shard_path)
    if not path.is_file():
        raise CorpusError(f"corpus shard not found: {path}")
    line_number = 0
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rb") as handle:
        try:
            for line_number, raw_line in enumerate(handle, start=1):
                yield _parse_document(raw_line, path, line_number)
        except (OSError, EOFError, zlib.error) as exc:
            raise CorpusError(f"{path}:{line_number + 1}: cannot decompress ({exc})") from exc
    if expected_documents is not None and line_number != expected_documents:
        raise CorpusError(
            f"{path}: {line_number} documents, but the manifest says {expected_documents} (truncated or replaced?)"
        )


def _parse_document(raw_line: bytes, path: Path, line_number: int) -> dict:
    where = f"{path}:{line_number}"
    try:
        document = json.loads(raw_line)
    except json.JSONDecodeError as exc:
        raise CorpusError(f"{where}: invalid JSON ({exc.msg}, column {exc.colno})") from None
    except UnicodeDecodeError as exc:
        raise CorpusError(f"{where}: not UTF-8 text ({exc.reason})") from None
    if not isinstance(document, dict):
        raise CorpusError(f"{where}: expected a JSON object, found {type(document).__name__}")
    for key, kind in _DOCUMENT_FIELDS.items():
        if key not in document:
            raise CorpusError(f"{where}: document has no {key!r}")
        value = document[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise CorpusError(f"{where}: {key!r} should be {kind.__name__}, found {value!r:.60}")
    if document["strand"] not in ("+", "-"):
        raise CorpusError(f"{where}: strand {document['strand']!r} is not '+' or '-'")
    if "haplotype" not in document or not (document["haplotype"] is None or isinstance(document["haplotype"], str)):
        raise CorpusError(f"{where}: 'haplotype' should be null or a string")
    sentences = document["sentences"]
    if not sentences:
        raise CorpusError(f"{where}: document has no sentences")
    for index, sentence in enumerate(sentences):
        if not isinstance(sentence, str) or not sentence:
            raise CorpusError(f"{where}: sentence {index} is not a non-empty string")
    return document


def iter_corpus_documents(corpus_dir: PathLike) -> Iterator[dict]:
    """Stream every document of a finished corpus, shard by shard, in the order they were written.

    Each is a dict as in the module docstring. A missing manifest or shard, a corrupt line, or a shard whose
    document count differs from the manifest raises CorpusError naming the file (and line).
    """
    manifest = read_corpus_manifest(corpus_dir)
    for shard in manifest["shards"]:
        yield from iter_shard_documents(Path(corpus_dir) / shard["file"], shard["documents"])


def iter_corpus_sentences(corpus_dir: PathLike) -> Iterator[str]:
    """Stream every sentence of a finished corpus (both strands, all passes), e.g. for tokenizer training."""
    for document in iter_corpus_documents(corpus_dir):
        yield from document["sentences"]

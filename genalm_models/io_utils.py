"""Small file helpers shared by the whole package (no torch, no kipoi).

Outputs are written atomically: the content goes to a temporary file in the destination folder and is
moved over the destination with `os.replace` only once it is complete, so a crash or an error never
leaves a half-written file behind under the final name (readers see either the old file or the new
one), and the temporary file is removed on error. This module is the package's one atomic writer:
`atomic_write` (an open handle, plain or BGZF), `write_text_atomic` (a string or lines), `atomic_path` (a
temporary name for writers that need one: pyfaidx, pysam, h5py, symlinks, folders) and `move_into_place` (a
finished file or folder moved over the old one).
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import os
import re
import secrets
import shutil
import socket
from pathlib import Path
from typing import IO, Iterable, Iterator, Union

PathLike = Union[str, "os.PathLike[str]"]


def temporary_beside(destination: PathLike, suffix: str = "tmp") -> Path:
    """A fresh name `.NAME.PID.HHHHXXXX.<suffix>` (suffix `tmp` or `partial`; HHHH: this host's tag, XXXX random) in
    the destination's folder, for a writer whose output outlives one `with` block (publish it with
    `move_into_place`). Same folder: os.replace is only atomic within one file system; `sweep_stale_temporaries`
    recognises the name when a killed writer leaves it behind (and is run here first)."""
    destination = Path(destination)
    folder = destination.parent if str(destination.parent) else Path(".")
    sweep_stale_temporaries(destination)
    return folder / f".{destination.name}.{os.getpid()}.{host_tag()}{secrets.token_hex(2)}.{suffix}"


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            os.unlink(path)


def _fsync_file(path: Path) -> None:
    if path.is_symlink() or not path.is_file():
        return
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def move_into_place(built: PathLike, destination: PathLike) -> None:
    """Move a finished file, link or folder `built` (made beside `destination`) to `destination` in one step.

    A file or link replaces the old one atomically (`os.replace`). A folder replaces an old folder by two renames:
    the old one is moved aside, the new one moved in, then the old one removed, so a reader sees the old or the
    new folder, never a mix of both. Raises OSError naming the paths.
    """
    built, destination = Path(built), Path(destination)
    if built.is_dir() and not built.is_symlink() and destination.is_dir() and not destination.is_symlink():
        old = destination.parent / f".{destination.name}.old-{os.getpid()}-{secrets.token_hex(3)}"
        os.replace(destination, old)
        os.replace(built, destination)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(built, destination)


@contextlib.contextmanager
def atomic_path(path: PathLike, suffix: str = "tmp") -> Iterator[Path]:
    """A temporary path next to `path` for a writer that needs a file name (pyfaidx, pysam, h5py, a symlink, a
    folder); when the `with` block succeeds, what was written there is fsynced and moved over `path`
    (`move_into_place`). If the block raises, or writes nothing, the temporary file or folder is removed, `path`
    is left untouched, and the exception propagates (OSError "nothing was written" for the latter).
    """
    destination = Path(path)
    temporary = temporary_beside(destination, suffix)
    try:
        yield temporary
        if not (temporary.exists() or temporary.is_symlink()):
            raise OSError(f"{destination}: nothing was written to its temporary file {temporary}")
        _fsync_file(temporary)
        move_into_place(temporary, destination)
    except BaseException:
        _remove(temporary)
        raise


@contextlib.contextmanager
def atomic_write(path: PathLike, mode: str = "w", encoding: str | None = "utf-8", bgzf: bool = False
                 ) -> Iterator[IO]:
    """Open a temporary file next to `path` for writing; on success it replaces `path` atomically.

    `mode` is "w" (text) or "wb" (binary). `bgzf=True` (mode "wb" only) compresses what is written as BGZF
    through htslib (`pysam.BGZFile`): blocked gzip that gzip, bgzip, tabix, pysam and pyfaidx read, with the
    end-of-file block. If the `with` block raises, the temporary file is deleted, `path` is left untouched and
    the exception propagates. An OSError without a file name (e.g. "No space left on device") is re-raised
    naming `path`.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write supports mode 'w' or 'wb', not {mode!r}")
    if bgzf and mode != "wb":
        raise ValueError("atomic_write: BGZF output is binary; use mode 'wb'")
    destination = Path(path)
    try:
        with atomic_path(destination) as temporary:
            if bgzf:
                import pysam  # imported here: only BGZF outputs need htslib

                handle = pysam.BGZFile(str(temporary), "wb")
            else:
                # os.open with 0o666 lets the umask decide the permissions, exactly as a plain open() would
                # (tempfile.mkstemp would leave the final file readable by its owner only).
                descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
                if mode == "wb":
                    handle = os.fdopen(descriptor, "wb")
                else:
                    handle = os.fdopen(descriptor, "w", encoding=encoding, newline="")
            with handle:
                yield handle
    except OSError as err:
        if err.filename is None and str(destination) not in str(err):  # e.g. "No space left on device"
            raise OSError(err.errno, f"{destination}: {err.strerror or err}") from None
        raise


def check_output_path(path: PathLike, inputs: Iterable[PathLike | None] = (), what: str = "-o") -> Path:
    """Refuse, before any work, an output that cannot be written or would overwrite an input.

    Checks that `path` is not a folder, that its folder exists and is writable (a temporary file is created and
    removed there), and that it is none of `inputs`. Raises ValueError naming the path. Returns it as a Path.
    """
    destination = Path(path)
    folder = destination.parent if str(destination.parent) else Path(".")
    if destination.is_dir():
        raise ValueError(f"{what} {destination}: is a folder; give a file name")
    if not folder.is_dir():
        raise ValueError(f"{what} {destination}: the folder {folder} does not exist")
    for source in inputs:
        if source is not None and Path(source).exists() and destination.exists() \
                and os.path.samefile(source, destination):
            raise ValueError(f"{what} {destination}: is the input file {source}; write the output elsewhere")
    probe = folder / f".{destination.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        os.unlink(probe)
    except OSError as err:
        raise ValueError(f"{what} {destination}: cannot write in {folder} ({err.strerror})") from None
    return destination


def write_text_atomic(path: PathLike, content: Union[str, Iterable[str]], encoding: str = "utf-8") -> None:
    """Write `content` to `path` atomically.

    `content` is either one string, written as is, or an iterable of lines; each line gets a "\\n"
    unless it already ends with one. An iterable is consumed lazily, so large outputs can stream; if it
    raises midway the destination is left as it was.
    """
    with atomic_write(path, "w", encoding=encoding) as handle:
        if isinstance(content, str):
            handle.write(content)
            return
        for line in content:
            handle.write(line if line.endswith("\n") else line + "\n")


_TEMPORARY = re.compile(r"^\.(?P<name>.+)\.(?P<pid>[0-9]+)\.(?P<host>[0-9a-f]{4})[0-9a-f]{4}\.(tmp|partial)$")


def host_tag() -> str:
    """4 hex digits naming this machine in temporary names: a PID only means something on the machine that made it,
    and jobs on several nodes share output folders (sharded runs), so only this host's temporaries are swept."""
    return hashlib.sha1(socket.gethostname().encode()).hexdigest()[:4]


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def sweep_stale_temporaries(destination: PathLike) -> list[Path]:
    """Remove the hidden temporary files (`.NAME.PID.XXXXXXXX.tmp` / `.partial`) that writers of `destination`
    left behind when they were killed (SIGKILL, power loss); files of processes still alive, and files another host
    made (its PIDs mean nothing here), are left alone. Returns what was removed."""
    destination = Path(destination)
    folder = destination.parent if str(destination.parent) else Path(".")
    removed = []
    try:
        candidates = list(folder.glob(f".{glob.escape(destination.name)}.*"))
    except OSError:
        return removed
    for path in candidates:
        match = _TEMPORARY.match(path.name)
        if match and match["name"] == destination.name and match["host"] == host_tag() \
                and int(match["pid"]) != os.getpid() and not _process_alive(int(match["pid"])):
            with contextlib.suppress(OSError):
                path.unlink()
                removed.append(path)
    return removed


def exit_cleanly_on_sigterm() -> None:
    """Make SIGTERM (what SLURM, docker, `timeout` and torchrun send) unwind like Ctrl-C: `finally` blocks run, so
    temporary files are removed and nothing half-written is left. Called once by the command-line entry points
    (never on import); does nothing off the main thread or when another handler is installed."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, None):
        return

    def _terminate(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _terminate)

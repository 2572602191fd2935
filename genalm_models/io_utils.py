"""Small file helpers shared by the whole package (no torch, no kipoi).

Outputs are written atomically: the content goes to a temporary file in the destination folder and is
moved over the destination with `os.replace` only once it is complete, so a crash or an error never
leaves a half-written file behind under the final name (readers see either the old file or the new
one), and the temporary file is removed on error.
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import secrets
from pathlib import Path
from typing import IO, Iterable, Iterator, Union

PathLike = Union[str, "os.PathLike[str]"]


@contextlib.contextmanager
def atomic_write(path: PathLike, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """Open a temporary file next to `path` for writing; on success it replaces `path` atomically.

    `mode` is "w" (text) or "wb" (binary). If the `with` block raises, the temporary file is deleted,
    `path` is left untouched and the exception propagates.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write supports mode 'w' or 'wb', not {mode!r}")
    destination = Path(path)
    folder = destination.parent if str(destination.parent) else Path(".")
    sweep_stale_temporaries(destination)
    # Same folder as the destination: os.replace is only atomic within one file system.
    temporary = folder / f".{destination.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    # os.open with 0o666 lets the umask decide the permissions, exactly as a plain open() would
    # (tempfile.mkstemp would leave the final file readable by its owner only).
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        if mode == "wb":
            handle = os.fdopen(descriptor, "wb")
        else:
            handle = os.fdopen(descriptor, "w", encoding=encoding, newline="")
        with handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, destination)
    except OSError as err:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        if err.filename is None:  # e.g. "No space left on device" from a write: say which output
            raise OSError(err.errno, f"{destination}: {err.strerror or err}") from None
        raise
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
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


_TEMPORARY = re.compile(r"^\.(?P<name>.+)\.(?P<pid>[0-9]+)\.[0-9a-f]{8}\.(tmp|partial)$")


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
    left behind when they were killed (SIGKILL, power loss); files of processes still alive are left alone.
    Returns what was removed."""
    destination = Path(destination)
    folder = destination.parent if str(destination.parent) else Path(".")
    removed = []
    try:
        candidates = list(folder.glob(f".{glob.escape(destination.name)}.*"))
    except OSError:
        return removed
    for path in candidates:
        match = _TEMPORARY.match(path.name)
        if match and match["name"] == destination.name and int(match["pid"]) != os.getpid() \
                and not _process_alive(int(match["pid"])):
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

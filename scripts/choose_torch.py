"""How `scripts/install.sh` installs torch into the environment of the interpreter that runs this script.

Prints one line for the shell: nothing when a torch that setup.py accepts (>=2.2,<3) is already installed (kept as it
is: a GPU machine's own build, or whatever torch the user chose), else the arguments of `pip install`:

    torch==2.13.0                                    an NVIDIA GPU is present (the registry's default CUDA build),
                                                     or the configured index already serves the CPU build (+cpu,
                                                     e.g. an offline mirror or a local wheel folder)
    torch==2.13.0 --extra-index-url <CPU index>      no GPU: the CPU build from PyTorch's CPU wheel index (the
                                                     default build pulls several GB of CUDA libraries a CPU
                                                     machine never uses); an unreachable extra index only costs
                                                     pip a warning, the configured index still answers

The reason goes to stderr. Environment: GENALM_GPU=1/0 overrides the GPU detection, GENALM_TORCH_CPU_INDEX the
CPU index. Standard library only (it runs before anything is installed).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

TORCH = "torch==2.13.0"
CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def installed_torch(python: str = sys.executable) -> str | None:
    """The version of the torch that `python` imports, or None."""
    code = "import torch, sys; sys.stdout.write(torch.__version__)"
    result = subprocess.run([python, "-c", code], capture_output=True, text=True)
    if result.returncode != 0:
        return None
    return result.stdout.strip() or None


def has_nvidia_gpu(environ: dict | None = None) -> bool:
    environ = os.environ if environ is None else environ
    forced = environ.get("GENALM_GPU", "").strip().lower()
    if forced in ("1", "true", "yes"):
        return True
    if forced in ("0", "false", "no"):
        return False
    gpus = Path("/proc/driver/nvidia/gpus")
    if gpus.is_dir() and any(gpus.iterdir()):
        return True
    if shutil.which("nvidia-smi"):
        try:
            result = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.SubprocessError):
            return False
        return result.returncode == 0 and "GPU" in result.stdout
    return False


def configured_torch(python: str = sys.executable, requirement: str = TORCH, extra_args: list[str] | None = None,
                     timeout: float = 600) -> str | None:
    """The torch version pip would install from the configured indexes (pip.conf, PIP_* variables), or None when
    pip cannot tell (no answer, pip older than 22.2). A dry run: nothing is installed; pip reads the wheel's
    metadata (a local wheel's zip directory, or the registry's separate metadata file), not the whole wheel."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        command = [python, "-m", "pip", "install", "--dry-run", "--no-deps", "--ignore-installed", "--quiet",
                   "--report", str(report), requirement, *(extra_args or [])]
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        except (OSError, subprocess.SubprocessError):
            return None
        if result.returncode != 0 or not report.is_file():
            return None
        try:
            install = json.loads(report.read_text())["install"]
            return install[0]["metadata"]["version"] if install else None
        except (ValueError, KeyError, IndexError, TypeError):
            return None


def supported(version: str) -> bool:
    """Within setup.py's torch>=2.2,<3 (anything else would make pip replace it with the newest default build)."""
    try:
        major, minor = (int(part) for part in version.split("+")[0].split(".")[:2])
    except ValueError:
        return False
    return major == 2 and minor >= 2


def decide(installed: str | None, gpu: bool, configured: str | None,
           cpu_index: str = CPU_INDEX) -> tuple[list[str], str]:
    """(pip install arguments, reason); no arguments: keep the installed torch."""
    if installed and supported(installed):
        return [], f"torch {installed} is installed: kept"
    if installed:
        reason = f"torch {installed} is installed but this package needs >=2.2,<3; "
        args, why = decide(None, gpu, configured, cpu_index)
        return args, reason + why
    if gpu:
        return [TORCH], "an NVIDIA GPU is present: the default (CUDA) build"
    if configured and "+cpu" in configured:
        return [TORCH], f"no GPU; the configured index serves the CPU build ({configured})"
    return [TORCH, "--extra-index-url", cpu_index], f"no GPU: the CPU build from {cpu_index}"


def main() -> int:
    installed = installed_torch()
    keep = installed is not None and supported(installed)
    gpu = False if keep else has_nvidia_gpu()
    configured = None if keep or gpu else configured_torch()
    args, reason = decide(installed, gpu, configured, os.environ.get("GENALM_TORCH_CPU_INDEX") or CPU_INDEX)
    print(f"torch: {reason}", file=sys.stderr)
    print(" ".join(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())

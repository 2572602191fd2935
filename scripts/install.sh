#!/usr/bin/env bash
# Set up everything on a fresh Debian/Ubuntu machine with Python >= 3.10: system tools, a Python environment,
# torch, this package, and the Kipoi registration of the bundled GENA-LM models. Safe to run again.
#
# The Python environment: the active virtual environment ($VIRTUAL_ENV) or conda environment ($CONDA_PREFIX) when
# there is one; otherwise the project's own `.venv` beside this script's folder, made with `${PYTHON:-python3} -m
# venv` (Debian/Ubuntu's system Python refuses `pip install` outside an environment, PEP 668; the venv module comes
# with apt's python3-venv, installed here when missing). `. scripts/activate` then puts that environment's commands
# (`kipoi`, `genalm-kipoi`) on PATH; scripts/test.sh uses the same environment.
# torch: an installed torch is kept (GPU machines carry their own build); otherwise torch==2.13.0, the CPU build on
# a machine without an NVIDIA GPU (scripts/choose_torch.py says which and why).
#
#   bash scripts/install.sh             set up (idempotent)
#   bash scripts/install.sh --dry-run   print the environment and the commands, change nothing
set -euo pipefail
cd "$(dirname "$0")/.."

DRY_RUN=0
case "${1:-}" in
  --dry-run) DRY_RUN=1 ;;
  "") ;;
  *) echo "usage: bash scripts/install.sh [--dry-run]" >&2; exit 2 ;;
esac
say() { echo "install.sh: $*" >&2; }
run() { if [ "$DRY_RUN" = 1 ]; then echo "+ $*"; else "$@"; fi; }
as_root() {
  if [ "$(id -u)" = 0 ]; then run "$@"
  elif command -v sudo >/dev/null; then run sudo "$@"
  else say "need root for: $* (no sudo here); run it as root, then run this script again"; exit 1
  fi
}
apt_install() {
  as_root apt-get update -qq
  if [ "$DRY_RUN" = 1 ]; then as_root apt-get install -y -qq "$@"
  else as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
  fi
}
python_ok() { "$1" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; }

# pybedtools drives the `bedtools` program; `bgzip`/`tabix` (Debian: tabix) compress and index FASTA/VCF files.
if ! command -v bedtools >/dev/null || ! command -v bgzip >/dev/null; then
  apt_install bedtools tabix
fi

# ---- the Python environment ---------------------------------------------------------------------------------------
VENV=.venv
if [ -n "${VIRTUAL_ENV:-}" ]; then
  PREFIX=$VIRTUAL_ENV; why="the active virtual environment"
elif [ -n "${CONDA_PREFIX:-}" ]; then
  PREFIX=$CONDA_PREFIX; why="the active conda environment"
else
  PREFIX=$PWD/$VENV; why="the project's own: no virtual or conda environment is active"
fi
PY=$PREFIX/bin/python
if [ "$PREFIX" = "$PWD/$VENV" ] && ! { [ -x "$PY" ] && "$PY" -m pip --version >/dev/null 2>&1; }; then
  BASE=${PYTHON:-python3}
  if ! command -v "$BASE" >/dev/null; then
    say "no $BASE: install Python >= 3.10 (apt-get install python3) or set PYTHON=/path/to/python3"; exit 1
  fi
  if ! python_ok "$BASE"; then
    say "$BASE is Python $("$BASE" -c 'import platform; print(platform.python_version())'); this package needs" \
        ">= 3.10: set PYTHON=/path/to/python3.10+ (or activate an environment that has it)"; exit 1
  fi
  # Debian/Ubuntu ship `venv` without `ensurepip` until python3-venv (python3.X-venv) is installed.
  if ! "$BASE" -c 'import venv, ensurepip' 2>/dev/null; then
    version=$("$BASE" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    say "$BASE has no venv/ensurepip module: installing python3-venv with apt"
    apt_install python3-venv || true
    if [ "$DRY_RUN" = 0 ] && ! "$BASE" -c 'import venv, ensurepip' 2>/dev/null; then
      apt_install "python$version-venv"
    fi
  fi
  # A Python that already has torch (a GPU image's own CUDA build, say) lends it to the venv instead of a second
  # download of several GB: --system-site-packages (on a fresh machine the system Python has no torch: a plain venv).
  shared=()
  if "$BASE" -c 'import torch' 2>/dev/null; then
    shared=(--system-site-packages)
    say "$BASE has torch $("$BASE" -c 'import torch; print(torch.__version__)'): the venv sees its packages"
  fi
  say "creating $VENV with $BASE"
  run "$BASE" -m venv --clear ${shared[@]+"${shared[@]}"} "$VENV"  # --clear: a half-made .venv (a failed try) is remade
fi
say "environment: $PREFIX ($why)"
if [ "$DRY_RUN" = 0 ] && ! python_ok "$PY"; then
  say "$PY is missing or older than Python 3.10"; exit 1
fi

# ---- torch, this package, the registration -----------------------------------------------------------------------
if [ "$DRY_RUN" = 1 ] && [ ! -x "$PY" ]; then
  echo "+ $PY -m pip install -q \$($PY scripts/choose_torch.py)"
else
  torch_args=$("$PY" scripts/choose_torch.py)
  # shellcheck disable=SC2086  # the arguments are words
  [ -z "$torch_args" ] || run "$PY" -m pip install -q $torch_args
fi
run "$PY" -m pip install -q -e ".[test]"
# Make `kipoi predict GENA-LM/...` find the bundled models (idempotent; `genalm-kipoi unregister` undoes it).
run "$PREFIX/bin/genalm-kipoi" register --force  # --force: take over a registration made by another checkout
if [ "$DRY_RUN" = 0 ] && [ -z "${VIRTUAL_ENV:-}" ] && [ -z "${CONDA_PREFIX:-}" ]; then
  say "done; put its commands on PATH with:  . scripts/activate"
fi

#!/usr/bin/env bash
# Set up everything on a fresh Debian/Ubuntu machine with Python >= 3.10: system tools, torch, this package,
# and the Kipoi registration of the bundled GENA-LM models. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
# pybedtools drives the `bedtools` program; `bgzip`/`tabix` (Debian: tabix) compress and index FASTA/VCF files.
if ! command -v bedtools >/dev/null || ! command -v bgzip >/dev/null; then
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bedtools tabix >/dev/null
fi
PY=${PYTHON:-python3}
# A CPU machine gets exactly torch 2.13.0 (any other spec would pull GBs of CUDA packages); a GPU machine keeps the
# torch it carries (setup.py accepts a range).
if ! "$PY" -c "import torch" 2>/dev/null; then
  "$PY" -m pip install -q torch==2.13.0
fi
"$PY" -m pip install -q -e ".[test]"
# Make `kipoi predict GENA-LM/...` find the bundled models (idempotent; `genalm-kipoi unregister` undoes it).
genalm-kipoi register --force  # --force: take over a registration made by another checkout of this package

#!/usr/bin/env bash
# The test command: set up (idempotent) and run the whole test suite in the environment install.sh installed into.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
. scripts/activate
exec python -m pytest -q tests "$@"

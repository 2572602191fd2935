#!/usr/bin/env bash
# The README's two set-up commands, as a newcomer types them, on a clean clone in a bare environment:
#   a `git clone` of this repository's HEAD into a temporary folder (with ../shared beside it when this checkout has
#   one), run under `env -i PATH=/usr/bin:/bin HOME=<empty folder>`, so `python3` is the system's (Debian's
#   /usr/bin/python3 is "externally managed", PEP 668) and no virtual/conda environment, no ~/.kipoi, no pip cache
#   and no user site-packages come from the caller.
# Carried over from the caller, because they are how this machine reaches its package index and not project state:
# the PIP_* and *_proxy variables and the user's pip configuration files (copied into the new HOME).
#
#   bash scripts/fresh_setup_check.sh                 both commands (the second runs the whole test suite)
#   bash scripts/fresh_setup_check.sh --first-only    only the first command (install + the README's prediction)
#   options: --keep (keep the temporary folder), --pip-cache DIR (share a pip cache: faster, same packages)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
first_only=0 keep=0 pip_cache=
while [ $# -gt 0 ]; do
  case "$1" in
    --first-only) first_only=1 ;;
    --keep) keep=1 ;;
    --pip-cache) pip_cache=$(mkdir -p "$2" && cd "$2" && pwd); shift ;;
    *) echo "usage: bash scripts/fresh_setup_check.sh [--first-only] [--keep] [--pip-cache DIR]" >&2; exit 2 ;;
  esac
  shift
done
say() { echo "fresh_setup_check: $*" >&2; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/genalm-fresh.XXXXXX")
if [ "$keep" = 1 ]; then trap 'say "kept $tmp"' EXIT; else trap 'rm -rf "$tmp"' EXIT; fi
git clone -q "$repo" "$tmp/repo"
say "clean clone of $(git -C "$repo" rev-parse --short HEAD) in $tmp/repo"
[ -d "$repo/../shared" ] && ln -s "$(cd "$repo/../shared" && pwd)" "$tmp/shared"
home=$tmp/home
mkdir -p "$home"
for conf in .config/pip/pip.conf .pip/pip.conf; do
  if [ -f "$HOME/$conf" ]; then mkdir -p "$(dirname "$home/$conf")"; cp "$HOME/$conf" "$home/$conf"; fi
done
carried=()
while IFS= read -r name; do
  carried+=("$name=${!name}")
done < <(compgen -e | grep -E '^(PIP_[A-Z_]+|https?_proxy|HTTPS?_PROXY|no_proxy|NO_PROXY)$' || true)
[ -z "$pip_cache" ] || carried+=("PIP_CACHE_DIR=$pip_cache")

# The README's commands: the first two ```bash blocks of its "## Set-up" section.
mapfile -t commands < <(awk '
  /^## / { in_setup = ($0 ~ /^## Set-up/) }
  in_setup && /^```bash/ { block = ""; grab = 1; next }
  in_setup && grab && /^```/ { gsub(/\n/, " ", block); print block; grab = 0; next }
  in_setup && grab { sub(/\\$/, ""); block = block $0 "\n" }
' "$tmp/repo/README.md")
if [ "${#commands[@]}" -lt 2 ]; then say "README.md: no two \`\`\`bash blocks in the Set-up section"; exit 1; fi

path=/usr/bin:/bin
if ! env -i PATH=$path sh -c 'command -v python3' >/dev/null; then  # no system Python: the caller's python3
  python=$(python3 -c 'import sys; print(sys.executable)' 2>/dev/null || true)
  [ -z "$python" ] || path=$path:$(dirname "$python")
fi
fresh() {  # run one command line in the clone, in the bare environment
  env -i PATH="$path" HOME="$home" LANG=C.UTF-8 "${carried[@]}" bash -c "cd '$tmp/repo' && $1"
}
say "python3 here: $(env -i PATH="$path" sh -c 'command -v python3' || echo none)"
for i in 0 1; do
  [ "$i" = 1 ] && [ "$first_only" = 1 ] && break
  say "command $((i + 1)): ${commands[$i]}"
  start=$SECONDS
  fresh "${commands[$i]}"
  say "command $((i + 1)) passed in $((SECONDS - start)) s"
  if [ "$i" = 0 ]; then  # the prediction it writes: one row per interval of the example BED
    output=$(grep -oE -- '-o [^ ]+' <<<"${commands[0]}" | tail -1 | cut -d' ' -f2)
    bed=$(grep -oE '"intervals_file": *"[^"]+"' <<<"${commands[0]}" | sed -E 's/.*"([^"]+)"$/\1/')
    if [ -n "$output" ] && [ -n "$bed" ]; then
      rows=$(($(wc -l < "$tmp/repo/$output") - 1))
      intervals=$(grep -cvE '^(#|track|browser|$)' "$tmp/repo/$bed")
      [ "$rows" = "$intervals" ] || { say "$output has $rows rows for $intervals intervals"; exit 1; }
      say "$output: $rows rows, one per interval of $bed"
      head -3 "$tmp/repo/$output" >&2
    fi
  fi
done
say "ok"

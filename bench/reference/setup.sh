#!/usr/bin/env bash
# Installs the benchmark references (never done by npm install): a Python venv with PyTorch (CPU
# wheel), transformers, PEFT and numpy, from the configured package mirror (no retries: fail
# fast when it is unreachable). Reuses an existing interpreter that already has them.
#   bash bench/reference/setup.sh            -> prints the python to use
# Env: TUNEKIT_BENCH_PYTHON (use this interpreter), TUNEKIT_BENCH_VENV (default bench/reference/.venv)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
has_refs() { "$1" -c 'import torch, transformers, peft, numpy' >/dev/null 2>&1; }
for py in "${TUNEKIT_BENCH_PYTHON:-}" "${TUNEKIT_BENCH_VENV:-$here/.venv}/bin/python" "$root/.venv/bin/python"; do
  if [ -n "$py" ] && [ -x "$py" ] && has_refs "$py"; then echo "$py"; exit 0; fi
done
venv="${TUNEKIT_BENCH_VENV:-$here/.venv}"
python3 -m venv "$venv" >&2
"$venv/bin/pip" install --retries 0 "torch==2.13.0+cpu" transformers peft numpy >&2
has_refs "$venv/bin/python"
echo "$venv/bin/python"

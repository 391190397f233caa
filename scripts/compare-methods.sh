#!/usr/bin/env bash
# Trains every method on the main job's task (SpamAssassin spam/ham, built-in GPT-2 base) and
# prints one table: held-out accuracy and F1, trainable parameters, step time, peak memory.
# Usage: scripts/compare-methods.sh [method ...]   (default: all; each run ~3-8 min on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d dist ] || npm run build
methods=("$@")
[ ${#methods[@]} -gt 0 ] || methods=(head full lora qlora adalora prompt-tuning p-tuning prefix-tuning)
for m in "${methods[@]}"; do
  cfg="examples/spam-$m.yaml"
  [ -f "$cfg" ] || { echo "no $cfg" >&2; continue; }
  echo "== $m ($(cut -d' ' -f1-3 /proc/loadavg))" >&2
  node dist/cli/main.js train "$cfg" --output "runs/compare/$m" >&2
done
node scripts/method-table.mjs runs/compare

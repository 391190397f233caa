#!/usr/bin/env bash
# Trains every method on the main job's task (SpamAssassin spam/ham, built-in GPT-2 base) and
# prints one table: held-out accuracy and F1 (mean and range over the seeds), trainable parameters,
# step time, peak memory.
# Usage: [SEEDS="42 7 1234"] scripts/compare-methods.sh [method ...]
#   (default: all methods, seed 42; each run ~2-8 min on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d dist ] || npm run build
methods=("$@")
[ ${#methods[@]} -gt 0 ] || methods=(head full lora qlora adalora prompt-tuning p-tuning prefix-tuning)
read -r -a seeds <<< "${SEEDS:-42}"
for m in "${methods[@]}"; do
  cfg="examples/spam-$m.yaml"
  [ -f "$cfg" ] || { echo "no $cfg" >&2; continue; }
  for s in "${seeds[@]}"; do
    echo "== $m seed $s ($(cut -d' ' -f1-3 /proc/loadavg))" >&2
    node dist/cli/main.js train "$cfg" --seed "$s" --output "runs/compare/$m/seed-$s" >&2
  done
done
node scripts/method-table.mjs runs/compare

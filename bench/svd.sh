#!/usr/bin/env bash
# SVD: tunekit's one-sided Jacobi beside numpy/LAPACK on the same machine, same run.
# OpenBLAS runs with OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE unset (these machines set them).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
[ -d dist ] || npm run build
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
ours=$(node bench/svd.mjs)
ref=$(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$PY" bench/svd_reference.py)
node -e '
const o = JSON.parse(process.argv[1]), r = JSON.parse(process.argv[2]);
console.log("| shape | dtype | tunekit (s) | numpy/LAPACK (s) | ratio |\n|---|---|---|---|---|");
o.forEach((x, i) => console.log(`| ${x.m}x${x.n} | ${x.dtype} | ${x.seconds} | ${r[i].seconds} | ${(r[i].seconds / x.seconds).toFixed(2)}x |`));
' "$ours" "$ref"

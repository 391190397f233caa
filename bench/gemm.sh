#!/usr/bin/env bash
# GEMM benchmark: our CPU GEMM against OpenBLAS (numpy) on the same machine, interleaved.
#
#   bench/gemm.sh [rounds] [shape-filter]   (default 3 rounds; best of the rounds is reported)
#   THREADS=1 bench/gemm.sh                 both sides on one thread
#   CLOCK=cpu THREADS=1 bench/gemm.sh       ... timed by process CPU time, not wall time: on a
#                                           machine shared with other jobs this is the fair
#                                           single-thread comparison (not meaningful for >1 thread:
#                                           OpenBLAS's idle threads spin and would be charged)
#
# Builds the native bench into $BUILD (default /tmp/build-gemm), then for every shape runs ours
# and OpenBLAS alternately, each in its own process, so that a burst of load from elsewhere hits
# both sides alike; the table keeps each side's best round. OpenBLAS runs with
# OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset (these machines set them, which halves OpenBLAS).
# Python: $PYTHON (default /tmp/venv-gemm/bin/python, a venv with numpy from pip).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
BUILD="${BUILD:-/tmp/build-gemm}"
PYTHON="${PYTHON:-/tmp/venv-gemm/bin/python}"
ROUNDS="${1:-3}"
FILTER="${2:-}"
if [[ "${CLOCK:-wall}" == cpu ]]; then
  export TUNEKIT_BENCH_CLOCK=cpu
fi
if [[ -n "${THREADS:-}" ]]; then
  export TUNEKIT_BENCH_THREADS="$THREADS" OPENBLAS_NUM_THREADS="$THREADS"
fi

cmake -S "$root" -B "$BUILD" -DTUNEKIT_TESTS=ON -DTUNEKIT_CUDA=OFF > /dev/null
cmake --build "$BUILD" -j2 --target tunekit_native_bench > /dev/null
BIN="$BUILD/tunekit_native_bench"

# M K N ta tb : square sizes, then GPT-2 (d=768, T*B=512) training shapes:
#   forward  Y[512,N] = X[512,K] W[K,N]           (Conv1D weights [in,out])
#   backward dX = dY W^T (tB=1), dW = X^T dY (tA=1)
#   LM head  logits = X wte^T (tB=1), vocab 50257
#   LoRA r=8 h = X A^T (A [8,768]), y += h B^T (B [768,8]), dA = dH^T X
SHAPES=(
  "256 256 256 0 0" "512 512 512 0 0" "1024 1024 1024 0 0" "2048 2048 2048 0 0"
  "512 768 2304 0 0" "512 3072 768 0 0" "512 768 3072 0 0" "512 768 50257 0 1"
  "512 2304 768 0 1" "768 512 2304 1 0"
  "512 768 3072 0 1" "512 3072 768 0 1" "768 512 3072 1 0" "3072 512 768 1 0"
  "512 50257 768 0 0" "768 512 50257 1 0"
  "512 768 8 0 1" "512 8 768 0 1" "8 512 768 1 0"
)

best() { awk -v a="$1" -v b="$2" 'BEGIN { print (b > a ? b : a) }'; }
printf "%6s %6s %6s %3s %3s %10s %10s %7s\n" M K N tA tB ours openblas ratio
for shape in "${SHAPES[@]}"; do
  [[ -n "$FILTER" && "$shape" != *"$FILTER"* ]] && continue
  o=0; r=0
  for ((i = 0; i < ROUNDS; i++)); do
    v=$("$BIN" gemm $shape | awk '{print $2}'); o=$(best "$o" "$v")
    v=$(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$PYTHON" "$here/gemm_reference.py" $shape | awk '{print $2}')
    r=$(best "$r" "$v")
  done
  read -r M K N ta tb <<< "$shape"
  printf "%6s %6s %6s %3s %3s %10.1f %10.1f %7.2f\n" "$M" "$K" "$N" "$ta" "$tb" "$o" "$r" \
    "$(awk -v a="$o" -v b="$r" 'BEGIN { print a / b }')"
done
echo "(GFLOP/s per ${CLOCK:-wall}-clock second, threads: ${THREADS:-all}, best of $ROUNDS interleaved rounds; OpenBLAS run with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset)"

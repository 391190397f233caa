#!/usr/bin/env bash
# The GPU check of the CUDA backend (docs/cuda.md). No Node needed.
#   1. configure + build with CUDA and the Node-free runners (cmake -DTUNEKIT_TESTS=ON)
#   2. tunekit_gpu_check: every CUDA op against its CPU kernel, then CUDA timings
#   3. bench/gpu_torch_reference.py: PyTorch on the same GPU
#   4. a markdown section (for bench/RESULTS.md) with both tables side by side and the issue's
#      targets, written to $OUT/gpu-check.md when $OUT is set, and printed.
#   5. with --train (and node, node_modules, dist/ present): whole training steps, 5 LoRA steps of
#      the GPT-2-shaped built-in model on cuda vs cpu (scripts/gpu-train-check.mjs, after
#      `npm run build:cuda`); its table is appended to gpu-check.md.
# Exit status: that of tunekit_gpu_check (0 all checks pass, 1 a check failed, 2 no device), or 1
# when the training check ran and failed.
# Budget: well under 8 minutes on an H200 (the build is most of it).
set -u
cd "$(dirname "$0")/.."
TRAIN=0
ARGS=()
for a in "$@"; do
  if [ "$a" = "--train" ]; then TRAIN=1; else ARGS+=("$a"); fi
done
BUILD=${BUILD_DIR:-/tmp/tunekit-build-gpu}
JOBS=${JOBS:-$(nproc 2>/dev/null || echo 4)}
LOGDIR=${OUT:-$BUILD}
mkdir -p "$LOGDIR"

echo "== build ($BUILD, -j$JOBS)"
t0=$(date +%s)
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DTUNEKIT_TESTS=ON -DTUNEKIT_CUDA=ON >"$LOGDIR/gpu-check-configure.log" 2>&1 \
  || { tail -30 "$LOGDIR/gpu-check-configure.log"; exit 1; }
cmake --build "$BUILD" --target tunekit_gpu_check -j"$JOBS" >"$LOGDIR/gpu-check-build.log" 2>&1 \
  || { grep -E "error" "$LOGDIR/gpu-check-build.log" | head -40; tail -20 "$LOGDIR/gpu-check-build.log"; exit 1; }
echo "   built in $(( $(date +%s) - t0 )) s"

echo "== tunekit_gpu_check"
timeout 300 "$BUILD/tunekit_gpu_check" ${ARGS[@]+"${ARGS[@]}"} | tee "$LOGDIR/gpu-check.txt"
rc=${PIPESTATUS[0]}
if [ "$rc" = 2 ]; then exit 2; fi

echo "== PyTorch reference"
timeout 150 python3 bench/gpu_torch_reference.py | tee "$LOGDIR/gpu-torch.txt" || true

python3 - "$LOGDIR/gpu-check.txt" "$LOGDIR/gpu-torch.txt" "$rc" <<'EOF' | tee "$LOGDIR/gpu-check.md"
import sys
ours_path, torch_path, rc = sys.argv[1], sys.argv[2], sys.argv[3]

def read(path, tag):
    out = {}
    try:
        for line in open(path):
            p = line.split()
            if len(p) >= 6 and p[0] == tag:
                out[p[1]] = (float(p[2]), float(p[4]), p[5])
    except OSError:
        pass
    return out

ours, ref = read(ours_path, "BENCH"), read(torch_path, "TORCH")
device = next((l.strip() for l in open(ours_path) if l.startswith("device 0:")), "device: ?")
tver = next((l.strip() for l in open(torch_path) if l.startswith("torch ")), "torch: not run") if ref else "torch: not run"
checks = next((l.strip() for l in open(ours_path) if l.startswith("checks:")), "checks: not run")
fails = [l.strip() for l in open(ours_path) if l.strip().startswith("FAIL")]

# (our key, torch key, what the ratio means, target)
pairs = [
    ("gemm_bf16_4096_nn", "gemm_bf16_4096", "speed vs torch.matmul bf16 4096^3", ">= 0.70x"),
    ("gemm_bf16_4096_nt", "gemm_bf16_4096_nt", "speed vs torch.matmul bf16 4096^3 (B^T)", ">= 0.70x"),
    ("nf4_gemv_4096", "gemv_bf16_4096", "NF4 GEMV batch 1 speed vs bf16 torch.matmul", ">= 3x"),
    ("nf4_gemv_8192", "gemv_bf16_8192", "NF4 GEMV batch 1 speed vs bf16 torch.matmul", ">= 3x"),
    ("nf4_gemm_4096tok_4096", "gemm_bf16_4096tok_4096", "NF4 dequant-GEMM 4096 tok: speed vs bf16", ">= 0.80x (within 1.25x time)"),
    ("nf4_gemm_4096tok_8192", "gemm_bf16_4096tok_8192", "NF4 dequant-GEMM 4096 tok: speed vs bf16", ">= 0.80x (within 1.25x time)"),
    ("gemm_bf16_m1_4096", "gemv_bf16_4096", "our bf16 GEMM at batch 1 vs torch", "(info)"),
    ("attention_fwd_b4h16t1024d64", "attention_fwd_f32", "flash fwd f32 vs SDPA f32", "(info)"),
    ("attention_fwd_b4h16t1024d64", "attention_fwd_bf16", "flash fwd f32 vs SDPA bf16", "(info)"),
    ("attention_bwd_b4h16t1024d64", "attention_bwd_f32", "flash bwd f32 vs SDPA f32", "(info)"),
    ("layer_norm_4096x4096", "layer_norm_4096x4096", "layer_norm f32", "(info)"),
    ("softmax_4096x4096", "softmax_4096x4096", "softmax f32", "(info)"),
    ("gelu_tanh_16M", "gelu_tanh_16M", "gelu_tanh f32", "(info)"),
    ("cross_entropy_4096x32000", "cross_entropy_4096x32000", "cross-entropy fwd", "(info)"),
    ("adamw_64M", "adamw_64M", "AdamW vs torch fused", "(info)"),
]
print("## CUDA backend on the GPU (scripts/gpu-check.sh)\n")
print(f"{device}; {tver}.  Correctness: {checks} (tunekit_gpu_check exit {rc}).\n")
if fails:
    print("Failed checks:\n")
    for f in fails[:40]:
        print(f"    {f}")
    print()
print("| op | tunekit ms | tunekit | torch ms | torch | ratio (speed, torch time / ours) | target | met |")
print("|---|---:|---:|---:|---:|---:|---|---|")
for ok, tk, what, target in pairs:
    o, t = ours.get(ok), ref.get(tk)
    if not o:
        continue
    ratio = t[0] / o[0] if t and o[0] > 0 else None
    met = ""
    if ratio is not None and target.startswith(">="):
        need = float(target.split()[1].rstrip("x"))
        met = "yes" if ratio >= need else "NO"
    ts = f"{t[0]:.4f} | {t[1]:.1f} {t[2]}" if t else "- | -"
    rs = f"{ratio:.2f}x" if ratio is not None else "-"
    print(f"| {what} (`{ok}`) | {o[0]:.4f} | {o[1]:.1f} {o[2]} | {ts} | {rs} | {target} | {met} |")
print()
EOF
if [ "$TRAIN" = 1 ]; then
  echo "== whole training steps (Node: scripts/gpu-train-check.mjs)"
  if ! command -v node >/dev/null || [ ! -d node_modules ] || [ ! -f dist/index.js ]; then
    echo "   skipped: needs node, node_modules and dist/ (npx tsc -p tsconfig.build.json)"
  elif ! timeout 400 npm run build:cuda >"$LOGDIR/gpu-train-build.log" 2>&1; then
    echo "   addon build failed:"; tail -20 "$LOGDIR/gpu-train-build.log"; rc=1
  else
    timeout 300 node scripts/gpu-train-check.mjs | tee "$LOGDIR/gpu-train.txt"
    trc=${PIPESTATUS[0]}
    { echo; echo "### 5 LoRA steps on cuda vs cpu (scripts/gpu-train-check.mjs)"; echo; grep -E "^(\||model|tokens|RESULT|FAIL)" "$LOGDIR/gpu-train.txt"; } >>"$LOGDIR/gpu-check.md"
    if [ "$trc" != 0 ] && [ "$rc" = 0 ]; then rc=1; fi
  fi
fi
exit "$rc"

#!/usr/bin/env python3
"""PyTorch reference timings on the same GPU as tunekit_gpu_check (scripts/gpu-check.sh).

Prints one `TORCH <key> <ms> <value> <unit>` line per measurement, with keys matching the
`BENCH` lines of native/tests/gpu_check.cpp where the two are compared:

  gemm_bf16_4096          torch.matmul bf16 4096^3 (f32 accumulation inside cuBLAS)
  gemv_bf16_4096/8192     torch.matmul bf16, batch 1: [1,n] x [n,n]^T (the NF4 GEMV's baseline)
  attention_fwd/bwd       F.scaled_dot_product_attention f32 and bf16, causal, B4 H16 T1024 D64
  layer_norm, softmax, gelu_tanh, cross_entropy, adamw (fused)

Timing: CUDA events, 3 warm-up runs, mean of N. Exits 3 when torch or a GPU is missing.
"""
import sys


def main() -> int:
    try:
        import torch
        import torch.nn.functional as F
    except Exception as e:  # noqa: BLE001
        print(f"torch not available: {e}")
        return 3
    if not torch.cuda.is_available():
        print("torch: no CUDA device")
        return 3
    dev = torch.device("cuda:0")
    torch.backends.cuda.matmul.allow_tf32 = False
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name(0)}")

    def timed(fn, iters=20):
        for _ in range(3):
            fn()
        torch.cuda.synchronize()
        a = torch.cuda.Event(enable_timing=True)
        b = torch.cuda.Event(enable_timing=True)
        a.record()
        for _ in range(iters):
            fn()
        b.record()
        b.synchronize()
        return a.elapsed_time(b) / iters

    def line(key, ms, value, unit):
        print(f"TORCH {key:<26} {ms:10.4f} ms {value:10.1f} {unit}", flush=True)

    with torch.no_grad():
        n = 4096
        a = torch.randn(n, n, device=dev, dtype=torch.bfloat16)
        b = torch.randn(n, n, device=dev, dtype=torch.bfloat16)
        ms = timed(lambda: torch.matmul(a, b))
        line("gemm_bf16_4096", ms, 2 * n**3 / (ms * 1e-3) / 1e9, "GFLOP/s")
        ms = timed(lambda: torch.matmul(a, b.t()))
        line("gemm_bf16_4096_nt", ms, 2 * n**3 / (ms * 1e-3) / 1e9, "GFLOP/s")
        del a, b
        for n in (4096, 8192):
            x = torch.randn(1, n, device=dev, dtype=torch.bfloat16)
            w = torch.randn(n, n, device=dev, dtype=torch.bfloat16)
            ms = timed(lambda: torch.matmul(x, w.t()), 50)
            line(f"gemv_bf16_{n}", ms, (2 * n * n + 4 * n) / (ms * 1e-3) / 1e9, "GB/s")
            xt = torch.randn(4096, n, device=dev, dtype=torch.bfloat16)
            ms = timed(lambda: torch.matmul(xt, w.t()), 10)
            line(f"gemm_bf16_4096tok_{n}", ms, 2 * 4096 * n * n / (ms * 1e-3) / 1e9, "GFLOP/s")
            del x, w, xt

        B, H, T, D = 4, 16, 1024, 64
        flops = 4 * B * H * T * T * D / 2
        for dt, tag in ((torch.float32, "f32"), (torch.bfloat16, "bf16")):
            q = torch.randn(B, H, T, D, device=dev, dtype=dt)
            k = torch.randn(B, H, T, D, device=dev, dtype=dt)
            v = torch.randn(B, H, T, D, device=dev, dtype=dt)
            ms = timed(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True), 10)
            line(f"attention_fwd_{tag}", ms, flops / (ms * 1e-3) / 1e9, "GFLOP/s")
            with torch.enable_grad():
                qg, kg, vg = (t.clone().requires_grad_(True) for t in (q, k, v))
                o = F.scaled_dot_product_attention(qg, kg, vg, is_causal=True)
                g = torch.randn_like(o)
                ms = timed(lambda: torch.autograd.grad(o, (qg, kg, vg), g, retain_graph=True), 5)
            line(f"attention_bwd_{tag}", ms, 2.5 * flops / (ms * 1e-3) / 1e9, "GFLOP/s")

        rows = cols = 4096
        x = torch.randn(rows, cols, device=dev)
        w = torch.randn(cols, device=dev)
        bb = torch.randn(cols, device=dev)
        ms = timed(lambda: F.layer_norm(x, (cols,), w, bb, 1e-5))
        line("layer_norm_4096x4096", ms, 2 * rows * cols * 4 / (ms * 1e-3) / 1e9, "GB/s")
        ms = timed(lambda: torch.softmax(x, -1))
        line("softmax_4096x4096", ms, 2 * rows * cols * 4 / (ms * 1e-3) / 1e9, "GB/s")
        ms = timed(lambda: F.gelu(x, approximate="tanh"))
        line("gelu_tanh_16M", ms, 2 * rows * cols * 4 / (ms * 1e-3) / 1e9, "GB/s")
        del x
        logits = torch.randn(4096, 32000, device=dev)
        labels = torch.full((4096,), 17, device=dev, dtype=torch.long)
        ms = timed(lambda: F.cross_entropy(logits, labels, reduction="none"), 10)
        line("cross_entropy_4096x32000", ms, 4096 * 32000 * 4 / (ms * 1e-3) / 1e9, "GB/s")
        del logits

    n = 64 << 20
    p = torch.nn.Parameter(torch.randn(n, device=dev))
    p.grad = torch.randn(n, device=dev)
    opt = torch.optim.AdamW([p], lr=1e-3, fused=True)
    ms = timed(opt.step)
    line("adamw_64M", ms, 7 * n * 4 / (ms * 1e-3) / 1e9, "GB/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

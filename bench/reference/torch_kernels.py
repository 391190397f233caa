"""PyTorch timings of the kernels in bench/kernels.bench.ts (same names, shapes, median ms).

Not named kernels.py: transformers imports a package called `kernels` when present, and the
script directory comes first on sys.path for bench/reference/peft_step.py."""
import argparse, json, time

import torch

p = argparse.ArgumentParser()
p.add_argument("--threads", type=int, default=2)
p.add_argument("--time", type=float, default=400)
p.add_argument("--only", default="")
a = p.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(0)
F = torch.nn.functional
B, T, C, H, D, V = 4, 128, 768, 12, 64, 50257
M = B * T
x = torch.randn(M, C)
w = torch.randn(C, 4 * C) * 0.02
logits_w = torch.randn(V, C) * 0.02
q, k, v = (torch.randn(B, H, T, D) for _ in range(3))
lnw, lnb = torch.randn(C), torch.randn(C)
scores = torch.randn(B * H * T, T)
hidden = torch.randn(M, 4 * C)
logits = torch.randn(M, V)
labels = torch.arange(M) * 7919 % V
prm = torch.nn.Parameter(torch.randn(C, 4 * C))
prm.grad = torch.randn(C, 4 * C)
opt = torch.optim.AdamW([prm], lr=1e-4, weight_decay=0.01)


def fwd_bwd(fn, *ins):
    ins = [t.detach().requires_grad_() for t in ins]
    fn(*ins).sum().backward()


cases = [
    ("gemm 512x768x3072", lambda: x @ w),
    ("gemm 512x768x50257 tB (LM head)", lambda: x @ logits_w.t()),
    ("attention fwd B4 H12 T128 D64", lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True)),
    ("attention fwd+bwd", lambda: fwd_bwd(lambda a, b, c: F.scaled_dot_product_attention(a, b, c, is_causal=True), q, k, v)),
    ("layerNorm fwd 512x768", lambda: F.layer_norm(x, (C,), lnw, lnb, 1e-5)),
    ("layerNorm fwd+bwd", lambda: fwd_bwd(lambda a: F.layer_norm(a, (C,), lnw, lnb, 1e-5), x)),
    ("softmax 6144x128", lambda: torch.softmax(scores, -1)),
    ("gelu fwd+bwd 512x3072", lambda: fwd_bwd(lambda a: F.gelu(a, approximate="tanh"), hidden)),
    ("cross-entropy fwd 512x50257", lambda: F.cross_entropy(logits, labels)),
    ("cross-entropy fwd+bwd", lambda: fwd_bwd(lambda a: F.cross_entropy(a, labels), logits)),
    ("AdamW step 2.36M params", lambda: opt.step()),
]
for name, fn in cases:
    if a.only and a.only not in name:
        continue
    for _ in range(2):
        fn()
    samples, t_end = [], time.perf_counter() + a.time / 1000
    while len(samples) < 5 or time.perf_counter() < t_end:
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    samples.sort()
    print(json.dumps(dict(impl="torch", name=name, ms=samples[len(samples) // 2])), flush=True)

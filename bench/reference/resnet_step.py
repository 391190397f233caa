"""One ResNet training step timed in PyTorch + transformers (+ PEFT for --mode lora), mirroring
bench/resnet_step.mjs: random-init ResNetForImageClassification, random images and labels,
forward + cross-entropy + backward + clip 1.0 + AdamW + zero grad, train mode. One JSON line.

    .venv/bin/python bench/reference/resnet_step.py --model resnet18 --batch 16 --size 112 --steps 5 --warmup 2 [--mode lora]
"""
import argparse
import json
import resource
import time

import torch
from transformers import ResNetConfig, ResNetForImageClassification

MODELS = {
    "resnet18": dict(num_channels=3, embedding_size=64, hidden_sizes=[64, 128, 256, 512], depths=[2, 2, 2, 2], layer_type="basic", num_labels=10),
    "digits": dict(num_channels=1, embedding_size=32, hidden_sizes=[32, 64], depths=[1, 1], layer_type="basic", num_labels=5),
}
p = argparse.ArgumentParser()
p.add_argument("--model", default="resnet18")
p.add_argument("--batch", type=int, default=16)
p.add_argument("--size", type=int, default=112)
p.add_argument("--steps", type=int, default=5)
p.add_argument("--warmup", type=int, default=2)
p.add_argument("--mode", default="full")
p.add_argument("--threads", type=int, default=2)
a = p.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(0)
spec = MODELS[a.model]
size = 28 if a.model == "digits" else a.size
model = ResNetForImageClassification(ResNetConfig(**spec))
if a.mode == "lora":
    from peft import LoraConfig, get_peft_model
    model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules=["convolution"], modules_to_save=["classifier"]))
model.train()
params = [q for q in model.parameters() if q.requires_grad]
opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=0.01)
pixels = torch.randn(a.batch, spec["num_channels"], size, size)
labels = torch.arange(a.batch) % spec["num_labels"]
times = []
for s in range(a.warmup + a.steps):
    t0 = time.perf_counter()
    loss = torch.nn.functional.cross_entropy(model(pixel_values=pixels).logits, labels)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()
    opt.zero_grad()
    if s >= a.warmup:
        times.append(time.perf_counter() - t0)
times.sort()
med = times[len(times) // 2]
print(json.dumps({"side": "pytorch", "model": a.model, "mode": a.mode, "batch": a.batch, "size": size, "threads": a.threads, "step_seconds": med,
                  "images_per_second": a.batch / med, "trainable": sum(q.numel() for q in params),
                  "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024), "torch": torch.__version__}))

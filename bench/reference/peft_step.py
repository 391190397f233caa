"""Reference for bench/train_step.ts: transformers + PEFT GPT-2 training steps on CPU.

Random-init GPT2Config() sizes (no download), LoRA r=8 alpha=16 on c_attn (or full fine-tuning),
AdamW, grad-norm clipping at 1.0, random token ids, labels = input ids (shifted inside the model).
attn_pdrop=0 because tunekit's fused attention has no attention-probability dropout; residual
and embedding dropout 0.1 on both sides. Prints one JSON line.

  python bench/reference/peft_step.py --mode lora --batch 4 --seq 128 --steps 5 --warmup 2
"""
import argparse, json, resource, time

import torch

p = argparse.ArgumentParser()
p.add_argument("--mode", default="lora", choices=["lora", "full"])
p.add_argument("--batch", type=int, default=4)
p.add_argument("--seq", type=int, default=128)
p.add_argument("--steps", type=int, default=5)
p.add_argument("--warmup", type=int, default=2)
p.add_argument("--model", default="small", choices=["tiny", "mini", "small", "medium"])
p.add_argument("--threads", type=int, default=2)
p.add_argument("--seed", type=int, default=0)
p.add_argument("--dtype", default="f32", choices=["f32", "bf16"])
p.add_argument("--lr", type=float, default=0.0)
p.add_argument("--fixed-batch", action="store_true")
a = p.parse_args()

SIZES = {
    "tiny": dict(n_embd=128, n_layer=2, n_head=2),
    "mini": dict(n_embd=384, n_layer=6, n_head=6),
    "small": dict(n_embd=768, n_layer=12, n_head=12),
    "medium": dict(n_embd=1024, n_layer=24, n_head=16),
}
torch.set_num_threads(a.threads)
torch.manual_seed(a.seed)
from transformers import GPT2Config, GPT2LMHeadModel  # noqa: E402

cfg = GPT2Config(**SIZES[a.model], attn_pdrop=0.0)
model = GPT2LMHeadModel(cfg)
if a.mode == "lora":
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules=["c_attn"], fan_in_fan_out=True))
model.train()
params = [q for q in model.parameters() if q.requires_grad]
lr = a.lr or (2e-4 if a.mode == "lora" else 5e-5)
opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
V = cfg.vocab_size
g = torch.Generator().manual_seed(a.seed)
mask = torch.ones(a.batch, a.seq, dtype=torch.long)
autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.dtype == "bf16")


fixed = torch.randint(0, V, (a.batch, a.seq), generator=g)


def step():
    ids = fixed if a.fixed_batch else torch.randint(0, V, (a.batch, a.seq), generator=g)
    with autocast:
        out = model(input_ids=ids, attention_mask=mask, labels=ids)
    loss = out.loss
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()
    opt.zero_grad(set_to_none=True)
    return loss.item()


times, cpu, losses = [], [], []
for i in range(a.warmup + a.steps):
    t0, c0 = time.perf_counter(), time.process_time()
    losses.append(step())
    dt, dc = time.perf_counter() - t0, time.process_time() - c0
    if i >= a.warmup:
        times.append(dt)
        cpu.append(dc)
s = sorted(times)
med = s[len(s) // 2]
print(json.dumps(dict(
    impl="transformers+peft", mode=a.mode, model=a.model, batch=a.batch, seq=a.seq, threads=a.threads, dtype=a.dtype,
    stepSeconds=times, medianStep=med, tokensPerSec=a.batch * a.seq / med, meanTokensPerSec=a.batch * a.seq * len(times) / sum(times),
    cpuSecondsPerStep=sum(cpu) / len(cpu),
    peakRssMB=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, trainable=sum(q.numel() for q in params), losses=losses,
    versions=dict(torch=torch.__version__, transformers=__import__("transformers").__version__, peft=__import__("peft").__version__),
)))

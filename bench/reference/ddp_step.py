"""Reference for bench/data_parallel.ts: PyTorch DDP (Gloo, CPU) + transformers + PEFT, the same
workloads with the same per-rank batch, one thread per rank, started by torchrun:

  torchrun --nproc_per_node 2 bench/reference/ddp_step.py --model mainjob --steps 6 --warmup 2
  torchrun --nproc_per_node 1 ...                                  one rank (DDP over one process)

  mainjob  GPT2ForSequenceClassification from models/tunekit-gpt2-small, LoRA r8 alpha16 dropout
           0.05 on wte, c_attn, c_proj, c_fc, 16 x 128 random tokens per rank, a label per sequence
  small    GPT-2 124M (GPT2Config(), random init), causal LM, LoRA r8 on c_attn, 4 x 128 per rank

DDP wraps the PEFT model (bucket_cap_mb 25, gradients all-reduced during backward); AdamW,
clipping at 1.0. Rank 0 prints one JSON line: global tokens/s from the median step.
"""
import argparse
import json
import os
import time

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP

p = argparse.ArgumentParser()
p.add_argument("--model", default="mainjob", choices=["mainjob", "small"])
p.add_argument("--steps", type=int, default=6)
p.add_argument("--warmup", type=int, default=2)
p.add_argument("--threads", type=int, default=1)
p.add_argument("--seq", type=int, default=128)
a = p.parse_args()
torch.set_num_threads(a.threads)
dist.init_process_group("gloo")
rank, ranks = dist.get_rank(), dist.get_world_size()
torch.manual_seed(0)

from peft import LoraConfig, get_peft_model  # noqa: E402
from transformers import GPT2Config, GPT2ForSequenceClassification, GPT2LMHeadModel  # noqa: E402

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
if a.model == "mainjob":
    B = 16
    model = GPT2ForSequenceClassification.from_pretrained(os.path.join(root, "models", "tunekit-gpt2-small"), num_labels=2, dtype=torch.float32)
    model.config.pad_token_id = model.config.eos_token_id
    cfg = LoraConfig(task_type="SEQ_CLS", r=8, lora_alpha=16, lora_dropout=0.05, target_modules=["wte", "c_attn", "c_proj", "c_fc"], fan_in_fan_out=True)
else:
    B = 4
    model = GPT2LMHeadModel(GPT2Config(n_embd=768, n_layer=12, n_head=12, attn_pdrop=0.0))
    cfg = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules=["c_attn"], fan_in_fan_out=True)
model = get_peft_model(model, cfg)
model.train()
ddp = DDP(model)
params = [q for q in ddp.parameters() if q.requires_grad]
opt = torch.optim.AdamW(params, lr=2e-3 if a.model == "mainjob" else 2e-4, weight_decay=0.01 if a.model == "mainjob" else 0.0)
V = model.config.vocab_size
g = torch.Generator().manual_seed(1000 + rank)
mask = torch.ones(B, a.seq, dtype=torch.long)

times = []
for i in range(a.warmup + a.steps):
    ids = torch.randint(0, V, (B, a.seq), generator=g)
    t0 = time.perf_counter()
    if a.model == "mainjob":
        out = ddp(input_ids=ids, attention_mask=mask, labels=ids[:, 0] % 2)
    else:
        out = ddp(input_ids=ids, attention_mask=mask, labels=ids)
    out.loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()
    opt.zero_grad(set_to_none=True)
    dt = time.perf_counter() - t0
    if i >= a.warmup:
        times.append(dt)
med = sorted(times)[len(times) // 2]
if rank == 0:
    print(json.dumps(dict(
        impl="pytorch-ddp-gloo", model=a.model, ranks=ranks, threadsPerRank=a.threads, tokensPerStep=B * a.seq * ranks,
        medianStepSeconds=med, tokensPerSecond=B * a.seq * ranks / med, stepSeconds=times,
        trainable=sum(q.numel() for q in params), versions=dict(torch=torch.__version__, transformers=__import__("transformers").__version__, peft=__import__("peft").__version__),
    )))
dist.destroy_process_group()

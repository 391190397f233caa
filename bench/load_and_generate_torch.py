"""The reference for bench/load_and_generate.mjs: transformers on PyTorch CPU, same checkpoint."""
import json, sys, time
import torch
from transformers import GPT2LMHeadModel

torch.set_num_threads(2)
t0 = time.perf_counter()
model = GPT2LMHeadModel.from_pretrained(sys.argv[1]).eval()
load_s = time.perf_counter() - t0
ids = torch.tensor([[(i * 97) % 50257 for i in range(16)]])
with torch.no_grad():
    model.generate(ids, max_new_tokens=4, do_sample=False, pad_token_id=0)
    t1 = time.perf_counter()
    out = model.generate(ids, max_new_tokens=64, min_new_tokens=64, do_sample=False, pad_token_id=0)
    gen_s = time.perf_counter() - t1
print(json.dumps({"load_seconds": round(load_s, 3), "gen_tokens_per_s": round((out.shape[1] - 16) / gen_s, 1)}))

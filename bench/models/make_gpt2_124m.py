"""Writes a randomly initialised GPT-2 small (124M, transformers' default GPT2Config) with
transformers' save_pretrained, for the load-time benchmark. Usage: make_gpt2_124m.py <out_dir>"""
import sys
import torch
from transformers import GPT2Config, GPT2LMHeadModel

torch.manual_seed(0)
model = GPT2LMHeadModel(GPT2Config())
model.save_pretrained(sys.argv[1], safe_serialization=True)
print(sys.argv[1], sum(p.numel() for p in model.parameters()), "parameters")

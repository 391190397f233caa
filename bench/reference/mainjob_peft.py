"""The main job in transformers + PEFT: the reference side of `tunekit bench --suite mainjob`.

Reads what bench/mainjob_export.ts wrote (train.jsonl, eval.jsonl, job.json: the same split,
model folder and settings as `npx tunekit train`) and runs the identical job by hand, as a
transformers + PEFT user would write it: GPT2ForSequenceClassification from the same folder,
LoRA (r 8, alpha 16, dropout 0.05 on wte, c_attn, c_proj, c_fc; the score head trained whole),
AdamW (lr 2e-3, weight decay 0.01), linear schedule with 6% warm-up, gradient clipping at 1.0,
batches of 16 padded to their longest example, one epoch, then held-out accuracy and macro F1
(as tunekit reports them). Prints one JSON line.

    python bench/reference/mainjob_peft.py --data bench/.out/mainjob --threads 2 --seed 42
"""

import argparse
import json
import math
import os
import time

import torch
from peft import LoraConfig, get_peft_model
from transformers import GPT2ForSequenceClassification, PreTrainedTokenizerFast, get_linear_schedule_with_warmup

from truncation import cut_ids  # bench/reference/truncation.py (the script's own folder is on sys.path)


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def batches(examples, size, order):
    for i in range(0, len(order), size):
        yield [examples[j] for j in order[i : i + size]]


def collate(batch, pad_id):
    T = max(len(ids) for ids, _ in batch)
    input_ids = torch.full((len(batch), T), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), T), dtype=torch.long)
    for i, (ids, _) in enumerate(batch):
        input_ids[i, : len(ids)] = torch.tensor(ids)
        mask[i, : len(ids)] = 1
    labels = torch.tensor([label for _, label in batch])
    return input_ids, mask, labels


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="bench/.out/mainjob")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=42)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    job = json.load(open(os.path.join(args.data, "job.json")))
    t_wall = time.perf_counter()

    tok = PreTrainedTokenizerFast(tokenizer_file=os.path.join(job["model"], "tokenizer.json"))
    train = read_jsonl(os.path.join(args.data, "train.jsonl"))
    evals = read_jsonl(os.path.join(args.data, "eval.jsonl"))
    names = sorted({r["label"] for r in train})  # tunekit's label map: sorted names (ham 0, spam 1)
    lid = {n: i for i, n in enumerate(names)}
    truncation = job.get("truncation", "keep_start")
    enc = lambda recs: [(cut_ids(tok(r["text"])["input_ids"], job["max_length"], truncation), lid[r["label"]]) for r in recs]
    train_ex, eval_ex = enc(train), enc(evals)

    model = GPT2ForSequenceClassification.from_pretrained(job["model"], num_labels=len(names), dtype=torch.float32)
    pad_id = model.config.pad_token_id if model.config.pad_token_id is not None else model.config.eos_token_id
    model.config.pad_token_id = pad_id
    cfg = LoraConfig(task_type="SEQ_CLS", r=job["r"], lora_alpha=job["lora_alpha"], lora_dropout=job["lora_dropout"],
                     target_modules=job["target_modules"], fan_in_fan_out=True)
    model = get_peft_model(model, cfg)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=job["lr"], weight_decay=job["weight_decay"])
    steps = math.ceil(len(train_ex) / job["batch_size"]) * int(job["epochs"])
    sched = get_linear_schedule_with_warmup(opt, math.ceil(job["warmup_ratio"] * steps), steps)

    model.train()
    g = torch.Generator().manual_seed(args.seed)
    order = torch.randperm(len(train_ex), generator=g).tolist()
    tokens = 0
    t0 = time.perf_counter()
    for batch in batches(train_ex, job["batch_size"], order):
        ids, mask, labels = collate(batch, pad_id)
        out = model(input_ids=ids, attention_mask=mask, labels=labels)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(params, job["max_grad_norm"])
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        tokens += int(mask.sum())
    train_s = time.perf_counter() - t0

    model.eval()
    preds, golds = [], []
    with torch.no_grad():
        for batch in batches(eval_ex, job["batch_size"], list(range(len(eval_ex)))):
            ids, mask, labels = collate(batch, pad_id)
            preds += model(input_ids=ids, attention_mask=mask).logits.argmax(-1).tolist()
            golds += labels.tolist()
    correct = sum(p == y for p, y in zip(preds, golds))
    # macro F1 over the classes, as tunekit's evaluation reports it
    f1s = []
    for c in range(len(names)):
        tp = sum(p == c and y == c for p, y in zip(preds, golds))
        fp = sum(p == c and y != c for p, y in zip(preds, golds))
        fn = sum(p != c and y == c for p, y in zip(preds, golds))
        f1s.append(2 * tp / max(1, 2 * tp + fp + fn))
    f1 = sum(f1s) / len(f1s)
    print(json.dumps({
        "impl": "transformers+peft", "torch": torch.__version__, "threads": args.threads, "seed": args.seed,
        "steps": steps, "train_seconds": train_s, "tokens_per_second": tokens / train_s,
        "wall_seconds": time.perf_counter() - t_wall, "accuracy": correct / len(eval_ex), "f1": f1, "eval": len(eval_ex),
    }))


if __name__ == "__main__":
    main()

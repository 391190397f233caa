"""Classic baselines on the main job's split: TF-IDF (word 1-2 grams) + logistic regression and
multinomial naive Bayes (scikit-learn), on the whole e-mail and on exactly the tokens the main
job reads (the base's tokenizer, cut as dataset.truncation says), so the fine-tuned model is
judged against a linear model on the same input.

Usage (the split is the one `tunekit bench --suite mainjob` exports):
  npx tsc -p bench/tsconfig.json && node bench/.out/mainjob_export.js --out bench/.out/mainjob
  .venv/bin/python bench/reference/spam_baselines.py --data bench/.out/mainjob
"""
import argparse
import json
import os

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.naive_bayes import MultinomialNB
from transformers import PreTrainedTokenizerFast

from truncation import cut_ids


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="bench/.out/mainjob")
    args = ap.parse_args()
    job = json.load(open(os.path.join(args.data, "job.json")))
    tok = PreTrainedTokenizerFast(tokenizer_file=os.path.join(job["model"], "tokenizer.json"))
    train = read_jsonl(os.path.join(args.data, "train.jsonl"))
    evals = read_jsonl(os.path.join(args.data, "eval.jsonl"))
    ytr = [r["label"] for r in train]
    yev = np.array([r["label"] for r in evals])
    ids_tr = [tok(r["text"])["input_ids"] for r in train]
    ids_ev = [tok(r["text"])["input_ids"] for r in evals]
    inputs = [
        ("whole e-mail", None, "keep_start"),
        ("first 128 tokens", 128, "keep_start"),
        (f"the main job's input ({job['max_length']} tokens, {job.get('truncation', 'keep_start')})", job["max_length"], job.get("truncation", "keep_start")),
    ]
    print(f"train {len(train)}, held out {len(evals)}; tokenizer {job['model']}")
    print("| input | TF-IDF + logistic regression | (F1 macro) | multinomial naive Bayes | (F1 macro) |")
    print("|---|---|---|---|---|")
    for name, n, trunc in inputs:
        xtr = [r["text"] if n is None else tok.decode(cut_ids(i, n, trunc)) for r, i in zip(train, ids_tr)]
        xev = [r["text"] if n is None else tok.decode(cut_ids(i, n, trunc)) for r, i in zip(evals, ids_ev)]
        vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2)
        a, b = vec.fit_transform(xtr), vec.transform(xev)
        lr = LogisticRegression(C=10, max_iter=2000).fit(a, ytr).predict(b)
        nb = MultinomialNB(alpha=0.01).fit(a, ytr).predict(b)
        print(f"| {name} | {(lr == yev).mean() * 100:.2f}% | {f1_score(yev, lr, average='macro') * 100:.2f}% | {(nb == yev).mean() * 100:.2f}% | {f1_score(yev, nb, average='macro') * 100:.2f}% |")


if __name__ == "__main__":
    main()

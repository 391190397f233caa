"""tunekit's `dataset.truncation` on token ids, for the Python references that must read exactly
the tokens the main job reads (the GPT-2 tokenizer adds no special tokens, so all of `n` is text):
keep_start keeps the first n, keep_end the last n, keep_start_and_end the first n - n // 4 and the
last n // 4 (lib/data/examples.ts, boundedBody)."""


def cut_ids(ids, n, truncation="keep_start"):
    if n is None or len(ids) <= n:
        return ids
    if truncation == "keep_end":
        return ids[-n:]
    if truncation == "keep_start_and_end":
        tail = n // 4
        return ids[: n - tail] + (ids[-tail:] if tail else [])
    return ids[:n]

/**
 * A deterministic byte-level BPE trainer (GPT-2 style). @huggingface/tokenizers cannot train,
 * so this is ours. The output is a standard tokenizer.json (ByteLevel pre-tokenizer with the
 * GPT-2 regex, ByteLevel post-processor and decoder, BPE model with vocab and merges) that
 * @huggingface/tokenizers, Python `tokenizers` and transformers load and tokenize identically.
 *
 * Algorithm: count pre-token "words" (regex pieces, as byte-level symbol sequences) once;
 * count adjacent symbol pairs weighted by word frequency, and keep for every pair the words it
 * occurs in; then repeatedly take the most frequent pair from a max-heap (stale entries are
 * skipped lazily), rewrite only the words that contain it, and update pair counts by the
 * difference between each rewritten word's old and new pairs. Ties go to the pair of smaller
 * ids (earlier symbols), so the result depends only on the input.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { TunekitError, describe } from '../errors.js';

/** GPT-2's pre-tokenization regex (contractions, letters, digits, other, whitespace). */
export const GPT2_PATTERN = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

/**
 * GPT-2's map from bytes to printable characters: printable Latin-1 bytes map to themselves,
 * the others to U+0100 upwards in byte order (so space becomes 'Ġ', newline 'Ċ').
 */
export const BYTE_TO_CHAR: readonly string[] = (() => {
  const out: string[] = new Array(256);
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    out[b] = String.fromCharCode(printable ? b : 256 + extra++);
  }
  return out;
})();

/** Options of {@link trainByteLevelBpe}. */
export interface BpeTrainOptions {
  /** Final vocabulary size, special tokens and the 256 byte symbols included. */
  vocabSize: number;
  /** Pairs seen fewer times are never merged. Default 2. */
  minFrequency?: number;
  /** Special tokens, given ids 0.. in order (e.g. ['<|endoftext|>']). */
  specialTokens?: string[];
}

/** The trained tokenizer. */
export interface TrainedBpe {
  /** token -> id (specials, then the 256 byte symbols, then merges in order). */
  vocab: Map<string, number>;
  /** Merges in rank order, each [left, right]. */
  merges: Array<[string, string]>;
  specialTokens: string[];
  /** The tokenizer.json object. */
  tokenizerJson: Record<string, unknown>;
}

/** A binary max-heap of (count, pair key), ties to the smaller key. */
class PairHeap {
  private counts: number[] = [];
  private keys: number[] = [];

  get size(): number { return this.counts.length; }

  private above(i: number, j: number): boolean {
    return this.counts[i] > this.counts[j] || (this.counts[i] === this.counts[j] && this.keys[i] < this.keys[j]);
  }

  private swap(i: number, j: number): void {
    const c = this.counts[i]; this.counts[i] = this.counts[j]; this.counts[j] = c;
    const k = this.keys[i]; this.keys[i] = this.keys[j]; this.keys[j] = k;
  }

  push(count: number, key: number): void {
    this.counts.push(count);
    this.keys.push(key);
    let i = this.counts.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.above(i, p)) break;
      this.swap(i, p);
      i = p;
    }
  }

  pop(): [number, number] {
    const top: [number, number] = [this.counts[0], this.keys[0]];
    const lastC = this.counts.pop()!, lastK = this.keys.pop()!;
    if (this.counts.length > 0) {
      this.counts[0] = lastC; this.keys[0] = lastK;
      let i = 0;
      const n = this.counts.length;
      for (;;) {
        const l = 2 * i + 1, r = l + 1;
        let m = i;
        if (l < n && this.above(l, m)) m = l;
        if (r < n && this.above(r, m)) m = r;
        if (m === i) break;
        this.swap(i, m);
        i = m;
      }
    }
    return top;
  }
}

function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Pre-token word -> frequency, words as byte-level strings. */
function countWords(texts: Iterable<string>, specialTokens: string[]): Map<string, number> {
  const counts = new Map<string, number>();
  const splitter = specialTokens.length ? new RegExp(specialTokens.map(escapeRegex).join('|'), 'g') : null;
  const encoder = new TextEncoder();
  const add = (piece: string) => {
    let word = '';
    // ASCII pieces (most of them) map char by char; others go through UTF-8.
    let ascii = true;
    for (let i = 0; i < piece.length; i++) if (piece.charCodeAt(i) > 127) { ascii = false; break; }
    if (ascii) {
      for (let i = 0; i < piece.length; i++) word += BYTE_TO_CHAR[piece.charCodeAt(i)];
    } else {
      for (const b of encoder.encode(piece)) word += BYTE_TO_CHAR[b];
    }
    counts.set(word, (counts.get(word) ?? 0) + 1);
  };
  let n = 0;
  for (const text of texts) {
    if (typeof text !== 'string') {
      throw new TunekitError('ERR_VALUE', `trainByteLevelBpe: expected texts to be strings but text ${n} is ${describe(text)}`);
    }
    n++;
    const sections = splitter ? text.split(splitter) : [text];
    for (const section of sections) {
      for (const m of section.matchAll(GPT2_PATTERN)) add(m[0]);
    }
  }
  return counts;
}

/**
 * Trains a GPT-2-style byte-level BPE tokenizer.
 *
 * @example
 * const bpe = trainByteLevelBpe(lines, { vocabSize: 4096, specialTokens: ['<|endoftext|>'] });
 * saveTrainedBpe('out/tok', bpe, { eosToken: '<|endoftext|>' });  // tokenizer.json + tokenizer_config.json
 */
export function trainByteLevelBpe(texts: Iterable<string>, options: BpeTrainOptions): TrainedBpe {
  const specialTokens = options.specialTokens ?? [];
  const minFrequency = options.minFrequency ?? 2;
  const vocabSize = options.vocabSize;
  if (!Number.isInteger(vocabSize) || vocabSize < 256 + specialTokens.length) {
    throw new TunekitError('ERR_VALUE', `trainByteLevelBpe: vocabSize must be an integer >= 256 + ${specialTokens.length} special tokens but received ${describe(vocabSize)}`);
  }
  if (new Set(specialTokens).size !== specialTokens.length || specialTokens.some((t) => typeof t !== 'string' || !t)) {
    throw new TunekitError('ERR_VALUE', `trainByteLevelBpe: specialTokens must be distinct non-empty strings but received ${describe(specialTokens)}`);
  }
  if (vocabSize > 1 << 21) throw new TunekitError('ERR_VALUE', `trainByteLevelBpe: vocabSize above ${1 << 21} is not supported (received ${vocabSize})`);

  // Symbols: id -> string. Specials first, then the 256 bytes in byte order.
  const symbols: string[] = [...specialTokens];
  const symbolId = new Map<string, number>();
  specialTokens.forEach((t, i) => symbolId.set(t, i));
  for (const c of BYTE_TO_CHAR) {
    if (!symbolId.has(c)) { symbolId.set(c, symbols.length); symbols.push(c); }
  }

  const wordCounts = countWords(texts, specialTokens);
  const words: number[][] = [];
  const freqs: number[] = [];
  for (const [w, f] of wordCounts) {
    words.push(Array.from(w, (c) => symbolId.get(c)!));
    freqs.push(f);
  }
  wordCounts.clear();

  const SHIFT = 2 ** 21;
  const pairCount = new Map<number, number>();
  const pairWords = new Map<number, number[]>();
  for (let w = 0; w < words.length; w++) {
    const s = words[w], f = freqs[w];
    for (let i = 0; i + 1 < s.length; i++) {
      const key = s[i] * SHIFT + s[i + 1];
      pairCount.set(key, (pairCount.get(key) ?? 0) + f);
      let list = pairWords.get(key);
      if (!list) pairWords.set(key, (list = []));
      if (list[list.length - 1] !== w) list.push(w);
    }
  }
  const heap = new PairHeap();
  for (const [key, c] of pairCount) heap.push(c, key);

  const merges: Array<[string, string]> = [];
  const seenAt = new Int32Array(words.length).fill(-1);
  const changed = new Set<number>();
  while (symbols.length < vocabSize && heap.size > 0) {
    const [count, key] = heap.pop();
    const current = pairCount.get(key) ?? 0;
    if (current !== count) continue; // stale entry; the current count was pushed when it changed
    if (count < minFrequency || count <= 0) break;
    const a = Math.floor(key / SHIFT), b = key % SHIFT;
    const merged = symbols.length;
    symbols.push(symbols[a] + symbols[b]);
    merges.push([symbols[a], symbols[b]]);
    changed.clear();
    const step = merges.length;
    for (const w of pairWords.get(key) ?? []) {
      if (seenAt[w] === step) continue;
      seenAt[w] = step;
      const s = words[w];
      let found = false;
      for (let i = 0; i + 1 < s.length; i++) if (s[i] === a && s[i + 1] === b) { found = true; break; }
      if (!found) continue; // the pair left this word in an earlier merge
      const f = freqs[w];
      for (let i = 0; i + 1 < s.length; i++) {
        const k = s[i] * SHIFT + s[i + 1];
        pairCount.set(k, pairCount.get(k)! - f);
        changed.add(k);
      }
      const next: number[] = [];
      for (let i = 0; i < s.length; i++) {
        if (i + 1 < s.length && s[i] === a && s[i + 1] === b) { next.push(merged); i++; }
        else next.push(s[i]);
      }
      words[w] = next;
      for (let i = 0; i + 1 < next.length; i++) {
        const k = next[i] * SHIFT + next[i + 1];
        pairCount.set(k, (pairCount.get(k) ?? 0) + f);
        changed.add(k);
        if (next[i] === merged || next[i + 1] === merged) {
          let list = pairWords.get(k);
          if (!list) pairWords.set(k, (list = []));
          if (list[list.length - 1] !== w) list.push(w);
        }
      }
    }
    pairWords.delete(key);
    for (const k of changed) {
      const c = pairCount.get(k)!;
      if (c <= 0) pairCount.delete(k);
      else if (k !== key) heap.push(c, k);
    }
    pairCount.delete(key);
  }

  const vocab = new Map<string, number>();
  symbols.forEach((s, i) => vocab.set(s, i));
  return { vocab, merges, specialTokens, tokenizerJson: tokenizerJsonOf(vocab, merges, specialTokens) };
}

function tokenizerJsonOf(vocab: Map<string, number>, merges: Array<[string, string]>, specialTokens: string[]): Record<string, unknown> {
  const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true };
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: specialTokens.map((content, id) => ({
      id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true,
    })),
    normalizer: null,
    pre_tokenizer: byteLevel,
    post_processor: { ...byteLevel, trim_offsets: false },
    decoder: byteLevel,
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab: Object.fromEntries(vocab),
      // Byte-level symbols never contain a space, so the "a b" string form is unambiguous and
      // every reader (old and new) accepts it.
      merges: merges.map(([a, b]) => `${a} ${b}`),
    },
  };
}

/** Options of {@link saveTrainedBpe}. */
export interface SaveBpeOptions {
  bosToken?: string;
  eosToken?: string;
  padToken?: string;
  unkToken?: string;
  modelMaxLength?: number;
  chatTemplate?: string;
}

/**
 * Writes tokenizer.json and tokenizer_config.json for a trained tokenizer into `dir`, so that
 * `await Tokenizer.fromFolder(dir)` and transformers' `AutoTokenizer.from_pretrained(dir)` load it.
 *
 * @example
 * saveTrainedBpe('models/tiny', bpe, { eosToken: '<|endoftext|>', bosToken: '<|endoftext|>', modelMaxLength: 512 });
 */
export function saveTrainedBpe(dir: string, trained: TrainedBpe, options: SaveBpeOptions = {}): void {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(trained.tokenizerJson, null, 2) + '\n');
  const config: Record<string, unknown> = { tokenizer_class: 'PreTrainedTokenizerFast' };
  if (options.bosToken) config.bos_token = options.bosToken;
  if (options.eosToken) config.eos_token = options.eosToken;
  if (options.padToken) config.pad_token = options.padToken;
  if (options.unkToken) config.unk_token = options.unkToken;
  if (options.modelMaxLength) config.model_max_length = options.modelMaxLength;
  if (options.chatTemplate) config.chat_template = options.chatTemplate;
  config.clean_up_tokenization_spaces = false;
  fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify(config, null, 2) + '\n');
}

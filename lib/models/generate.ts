/**
 * Text generation with the KV cache: a batch of prompts is left-padded (with its attention
 * mask), the prompt runs once, then one token per step reuses the cached keys/values. Greedy when
 * temperature is 0, otherwise seeded sampling with repetition penalty, top-k and top-p applied in
 * transformers' order. The model runs under noGrad, each step inside a tidy scope: only the cache
 * survives a step, so memory stays flat.
 *
 * Each forward runs inside `inferenceMode` (dropout off) instead of switching the model to eval
 * mode: the model's own mode is never touched, so overlapping generate() calls, or a fit() that
 * runs between a generation's steps, see the mode they set (a generation that flipped the model
 * to eval and restored "what it saw" once left a training model in eval mode).
 */
import { TunekitError, describe } from '../errors.js';
import { tensor } from '../tensor/creation.js';
import { tidy, keep } from '../tensor/scope.js';
import { noGrad } from '../autograd/tape.js';
import { inferenceMode } from '../nn/module.js';
import * as F from '../autograd/ops.js';
import { Rng } from '../data/rng.js';
import type { TokenizerLike } from '../data/types.js';
import { yieldToEventLoop } from '../event_loop.js';
import { maxSequenceLength, type LayerKV, type PretrainedModel } from './common.js';

export type { TokenizerLike };

/** One generated token, as streamed to `onToken`. */
export interface TokenEvent {
  /** which prompt of the batch */
  sequence: number;
  token: number;
  /** 0-based index of the token among the new ones */
  step: number;
  /** the text this token adds (when `tokenizer` was given) */
  text?: string;
}

export interface GenerateOptions {
  /** decodes the new tokens into `texts` and each streamed token's `text` (ids only without it) */
  tokenizer?: TokenizerLike | null;
  /** new tokens per sequence at most (20) */
  maxNewTokens?: number;
  /** 0 (the default) for greedy decoding; > 0 samples from softmax(logits / temperature) */
  temperature?: number;
  /** sample among the k most likely tokens only (0 = off) */
  topK?: number;
  /** sample among the smallest set of tokens whose probability reaches p (1 = off) */
  topP?: number;
  /** transformers' repetition penalty (1 = off): seen tokens' positive logits / p, negative * p */
  repetitionPenalty?: number;
  /** token-id sequences that end a sequence (kept in the output) */
  stopSequences?: number[][];
  /** end-of-sequence id(s) (kept in the output); defaults to config eos_token_id, null for none */
  eosTokenId?: number | number[] | null;
  /** id used for left padding and for finished rows; defaults to pad, then eos, then 0 */
  padTokenId?: number;
  /** sampling seed (a fixed default, so runs repeat unless a seed is given) */
  seed?: number;
  /** called for every new token as soon as it is chosen */
  onToken?: (e: TokenEvent) => void;
}

export interface GenerateResult {
  /** new tokens of each prompt (prompt excluded) */
  sequences: number[][];
  /** why each sequence stopped */
  finishReasons: ('eos' | 'stop' | 'length')[];
  /** decoded new tokens (when `tokenizer` was given) */
  texts?: string[];
}

/**
 * Generates continuations of a batch of prompts with a causal LM. Settings and the tokenizer
 * (for `texts` and the streamed `text` of each token) go in one options object.
 * @example
 * const { model } = await loadPretrained('models/tiny-gpt2');
 * const tok = await Tokenizer.fromFolder('models/tiny-gpt2');
 * const out = await generate(model, [tok.encode('Hello').ids], { tokenizer: tok, maxNewTokens: 20, temperature: 0.8, topP: 0.9, seed: 1 });
 * console.log(out.texts![0]);
 * @example const { sequences } = await generate(model, [[5, 17, 33]], { maxNewTokens: 8 });
 */
export async function generate(model: PretrainedModel, inputIds: number[][], opts: GenerateOptions = {}): Promise<GenerateResult> {
  const tokenizer = opts.tokenizer ?? null;
  const s = checkOptions(model, inputIds, opts);
  const B = inputIds.length;
  const L = Math.max(...inputIds.map((p) => p.length));
  const V = model.config.vocabSize;
  const rng = new Rng(opts.seed ?? 0);

  const seqs = inputIds.map((p) => [...p]); // prompt + generated, for the repetition penalty
  const out: number[][] = inputIds.map(() => []);
  const reasons: ('eos' | 'stop' | 'length')[] = inputIds.map(() => 'length');
  const done = new Array<boolean>(B).fill(false);
  const texts = tokenizer ? inputIds.map(() => '') : null;
  const mask: number[][] = inputIds.map((p) => [...new Array<number>(L - p.length).fill(0), ...new Array<number>(p.length).fill(1)]);
  let stepIds: number[][] = inputIds.map((p) => [...new Array<number>(L - p.length).fill(s.pad), ...p]);
  const cache: LayerKV[] = [];
  try {
    for (let step = 0; step < s.maxNewTokens; step++) {
      const T = stepIds[0]!.length;
      // last-position logits of every row, copied out of the scope
      const rows = noGrad(() => inferenceMode(() => tidy(() => {
        // the step's ids and mask where the model's weights are (a GPU's memory when it was moved there)
        const ids = tensor(Int32Array.from(stepIds.flat()), [B, T], 'i32', model.device);
        const m = tensor(Int32Array.from(mask.flat()), [B, mask[0]!.length], 'i32', model.device);
        const { logits } = model.forward({ inputIds: ids, attentionMask: m, cache });
        for (const kv of cache) { keep(kv.k); keep(kv.v); }
        // gather the last rows natively first: a typed-array view pins its storage until GC, so
        // only [B, V] is read from JS, never the whole [B, T, V]
        const last = Int32Array.from({ length: B }, (_, r) => (r + 1) * T - 1);
        const picked = F.gatherRows(F.reshape(logits, [B * T, V]), tensor(last, [B], 'i32', logits.device));
        const data = picked.toTypedArray() as Float32Array;
        const res: Float32Array[] = [];
        for (let r = 0; r < B; r++) res.push(data.slice(r * V, (r + 1) * V));
        return res;
      })));
      const next: number[] = [];
      for (let r = 0; r < B; r++) {
        if (done[r]) {
          next.push(s.pad);
          continue;
        }
        const tok = chooseToken(rows[r]!, seqs[r]!, s, rng);
        next.push(tok);
        seqs[r]!.push(tok);
        out[r]!.push(tok);
        let text: string | undefined;
        if (tokenizer && texts) {
          const full = tokenizer.decode(out[r]!);
          text = full.startsWith(texts[r]!) ? full.slice(texts[r]!.length) : full;
          texts[r] = full;
        }
        opts.onToken?.({ sequence: r, token: tok, step, ...(text !== undefined ? { text } : {}) });
        if (s.eos.has(tok)) {
          done[r] = true;
          reasons[r] = 'eos';
        } else if (s.stops.some((st) => endsWith(out[r]!, st))) {
          done[r] = true;
          reasons[r] = 'stop';
        }
      }
      if (done.every(Boolean)) break;
      stepIds = next.map((t) => [t]);
      for (const m of mask) m.push(1);
      await yieldToEventLoop(); // timers and I/O run between any two tokens
    }
  } finally {
    for (const kv of cache) { kv.k.dispose(); kv.v.dispose(); }
  }
  const result: GenerateResult = { sequences: out, finishReasons: reasons };
  if (tokenizer) result.texts = out.map((o) => tokenizer.decode(o));
  return result;
}

/** Decoding settings of one sequence, as checkOptions resolves them (tunekit serve builds one per request). */
export interface Settings {
  maxNewTokens: number;
  temperature: number;
  topK: number;
  topP: number;
  penalty: number;
  eos: Set<number>;
  stops: number[][];
  pad: number;
}

function checkOptions(model: PretrainedModel, inputIds: number[][], o: GenerateOptions): Settings {
  if (model.task !== 'causal_lm') {
    throw new TunekitError('ERR_VALUE', `generate: expected a model with task 'causal_lm' but received '${model.task}'`);
  }
  const V = model.config.vocabSize;
  if (inputIds !== null && typeof inputIds === 'object' && !Array.isArray(inputIds) && typeof (inputIds as { decode?: unknown }).decode === 'function') {
    // generate(model, tokenizer, inputIds) was the call of earlier versions: say where the tokenizer goes now
    throw new TunekitError('ERR_VALUE', `generate: expected inputIds (number[][]) as the second argument but received a tokenizer; pass it in the options: generate(model, inputIds, { tokenizer })`);
  }
  if (o === null || typeof o !== 'object' || Array.isArray(o)) {
    throw new TunekitError('ERR_VALUE', `generate: expected the options as an object but received ${describe(o)}`);
  }
  if (o.tokenizer != null && typeof o.tokenizer.decode !== 'function') {
    throw new TunekitError('ERR_VALUE', `generate: expected options.tokenizer to have a decode(ids) method but received ${describe(o.tokenizer)}`);
  }
  if (!Array.isArray(inputIds) || inputIds.length === 0 || inputIds.some((p) => !Array.isArray(p) || p.length === 0)) {
    throw new TunekitError('ERR_VALUE', `generate: expected inputIds as a non-empty array of non-empty number arrays but received ${describe(inputIds)}`);
  }
  for (const p of inputIds) {
    for (const id of p) {
      if (!Number.isInteger(id) || id < 0 || id >= V) throw new TunekitError('ERR_VALUE', `generate: token ids must be integers in [0, ${V}) but received ${describe(id)}`);
    }
  }
  const num = (name: string, v: number | undefined, dflt: number, ok: (x: number) => boolean, want: string): number => {
    if (v === undefined) return dflt;
    if (typeof v !== 'number' || !ok(v)) throw new TunekitError('ERR_VALUE', `generate: expected ${name} ${want} but received ${describe(v)}`);
    return v;
  };
  const maxNewTokens = num('maxNewTokens', o.maxNewTokens, 20, (x) => Number.isInteger(x) && x >= 1, 'to be an integer >= 1');
  const temperature = num('temperature', o.temperature, 0, (x) => x >= 0 && Number.isFinite(x), 'to be >= 0');
  const topK = num('topK', o.topK, 0, (x) => Number.isInteger(x) && x >= 0, 'to be an integer >= 0');
  const topP = num('topP', o.topP, 1, (x) => x > 0 && x <= 1, 'in (0, 1]');
  const penalty = num('repetitionPenalty', o.repetitionPenalty, 1, (x) => x > 0 && Number.isFinite(x), 'to be > 0');
  const eosOpt = o.eosTokenId === undefined ? model.config.eosTokenId : o.eosTokenId;
  const eos = new Set<number>(eosOpt === null || eosOpt === undefined ? [] : Array.isArray(eosOpt) ? eosOpt : [eosOpt]);
  const stops = o.stopSequences ?? [];
  if (!Array.isArray(stops) || stops.some((st) => !Array.isArray(st) || st.length === 0 || st.some((t) => !Number.isInteger(t)))) {
    throw new TunekitError('ERR_VALUE', `generate: expected stopSequences as non-empty arrays of token ids but received ${describe(stops)}`);
  }
  const pad = o.padTokenId ?? model.config.padTokenId ?? model.config.eosTokenId ?? 0;
  const L = Math.max(...inputIds.map((p) => p.length));
  // the last new token is returned, never fed back: the longest forward sees L + maxNewTokens - 1 tokens
  const limit = maxSequenceLength(model);
  if (L + maxNewTokens - 1 > limit) {
    throw new TunekitError('ERR_VALUE', `generate: ${L} prompt tokens + ${maxNewTokens} new ones need ${L + maxNewTokens - 1} positions, over the ${limit} positions this ${model.config.modelType} model accepts (maxSequenceLength); lower maxNewTokens to at most ${Math.max(0, limit - L + 1)}`);
  }
  return { maxNewTokens, temperature, topK, topP, penalty, eos, stops, pad };
}

function endsWith(seq: number[], tail: number[]): boolean {
  if (tail.length > seq.length) return false;
  for (let i = 1; i <= tail.length; i++) if (seq[seq.length - i] !== tail[tail.length - i]) return false;
  return true;
}

/** Index of the largest value (the first on ties, as torch.argmax). */
function argmax(x: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i]! > x[best]!) best = i;
  return best;
}

/**
 * Picks the next token from one row of logits: repetition penalty, then greedy argmax or
 * temperature, top-k and top-p filtering and a seeded draw (transformers' processor order).
 * Exported for tunekit serve, so a served request picks tokens exactly as generate() does.
 */
export function chooseToken(logits: Float32Array, seen: number[], s: Settings, rng: Rng): number {
  const x = Float64Array.from(logits);
  if (s.penalty !== 1) {
    for (const t of new Set(seen)) x[t] = x[t]! < 0 ? x[t]! * s.penalty : x[t]! / s.penalty;
  }
  if (s.temperature === 0) return argmax(x);
  for (let i = 0; i < x.length; i++) x[i] = x[i]! / s.temperature;
  const order = Array.from(x.keys()).sort((i, j) => x[j]! - x[i]! || i - j); // descending
  let keep = order.length;
  if (s.topK > 0) keep = Math.min(keep, s.topK);
  const mx = x[order[0]!]!;
  let z = 0;
  for (let i = 0; i < keep; i++) z += Math.exp(x[order[i]!]! - mx);
  if (s.topP < 1) {
    // smallest prefix whose probability reaches top_p (at least one token)
    let c = 0;
    for (let i = 0; i < keep; i++) {
      c += Math.exp(x[order[i]!]! - mx) / z;
      if (c >= s.topP) {
        keep = i + 1;
        break;
      }
    }
    z = 0;
    for (let i = 0; i < keep; i++) z += Math.exp(x[order[i]!]! - mx);
  }
  let u = rng.nextFloat() * z;
  for (let i = 0; i < keep; i++) {
    u -= Math.exp(x[order[i]!]! - mx);
    if (u < 0) return order[i]!;
  }
  return order[keep - 1]!;
}

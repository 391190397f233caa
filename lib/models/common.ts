/**
 * What every model shares: the forward inputs and outputs, the KV cache, the key-padding and
 * position helpers, and the heads' pooling.
 */
import { Tensor } from '../tensor/tensor.js';
import { tensor } from '../tensor/creation.js';
import { TunekitError } from '../errors.js';
import { Module } from '../nn/module.js';
import * as F from '../autograd/ops.js';

export type Task = 'causal_lm' | 'seq_cls' | 'token_cls' | 'base';

/** Per-layer cached keys and values [B, Hkv, Tpast, D]. */
export interface LayerKV {
  k: Tensor<'f32'>;
  v: Tensor<'f32'>;
}

/** Per-layer key/value prefixes [B, Hkv, P, D] injected before the real tokens (prefix tuning). */
export type PrefixKV = LayerKV[];

export interface ModelInputs {
  /** token ids [B, T] */
  inputIds?: Tensor<'i32'>;
  /** 1 for real tokens, 0 for padding, [B, Tpast + T] (covers cached tokens too) */
  attentionMask?: Tensor<'i32'> | null;
  /** embeddings instead of ids [B, T, C] (prompt tuning prepends virtual tokens here) */
  inputsEmbeds?: Tensor<'f32'>;
  /** BERT segment ids [B, T] */
  tokenTypeIds?: Tensor<'i32'>;
  /** cached keys/values from earlier calls (generation); updated in place with this call's */
  cache?: LayerKV[] | null;
  /** per-layer prefixes (prefix tuning), prepended to every layer's keys/values */
  prefix?: PrefixKV | null;
}

export interface ModelOutput {
  /** [B, T, V] for causal LM, [B, labels] for sequence classification, [B, T, labels] for tokens */
  logits: Tensor<'f32'>;
  /** final hidden states [B, T, C] */
  hidden: Tensor<'f32'>;
}

/** What the trainer and the PEFT methods need to know of any model. */
export interface PretrainedModel extends Module {
  readonly config: ModelConfig;
  readonly task: Task;
  forward(inputs: ModelInputs): ModelOutput;
  /** the token embedding table [V, C] (prompt tuning reads it) */
  tokenEmbeddings(): Tensor;
  /** embeds token ids [B, T] -> [B, T, C] with the token table only */
  embedTokens(ids: Tensor<'i32'>): Tensor<'f32'>;
}

export interface ModelConfig {
  modelType: string;
  vocabSize: number;
  hiddenSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  maxPositions: number;
  numLabels: number;
  padTokenId: number | null;
  bosTokenId: number | null;
  eosTokenId: number | null;
  tieWordEmbeddings: boolean;
  /** the config.json as read (saved back with our changes merged in) */
  raw: Record<string, unknown>;
}

/** Positions of each token: cumulative count of real tokens - 1 (0 for padding), offset by the cache. */
export function positionIds(B: number, T: number, mask: Tensor<'i32'> | null | undefined, past: number): Tensor<'i32'> {
  const out = new Int32Array(B * T);
  if (!mask) {
    for (let b = 0; b < B; b++) for (let t = 0; t < T; t++) out[b * T + t] = past + t;
  } else {
    const m = mask.toTypedArray() as Int32Array;
    const Tm = mask.shape[1]!;
    if (Tm !== past + T) throw new TunekitError('ERR_SHAPE', `attention mask has ${Tm} columns but ${past} cached + ${T} new tokens`);
    for (let b = 0; b < B; b++) {
      let c = 0;
      for (let t = 0; t < Tm; t++) {
        c += m[b * Tm + t]!;
        if (t >= past) out[b * T + t - past] = Math.max(0, c - 1);
      }
    }
  }
  return tensor(out, [B, T]) as Tensor<'i32'>;
}

/** Index (into the flattened [B*T] rows) of each sequence's last real token. */
export function lastTokenRows(B: number, T: number, mask: Tensor<'i32'> | null | undefined): Tensor<'i32'> {
  const out = new Int32Array(B);
  const m = mask ? (mask.toTypedArray() as Int32Array) : null;
  const Tm = mask ? mask.shape[1]! : T;
  for (let b = 0; b < B; b++) {
    let last = T - 1;
    if (m) {
      last = -1;
      for (let t = 0; t < T; t++) if (m[b * Tm + (Tm - T) + t]) last = t;
      if (last < 0) last = 0;
    }
    out[b] = b * T + last;
  }
  return tensor(out, [B]) as Tensor<'i32'>;
}

/** [B, T, H*D] -> [B, H, T, D] */
export function splitHeads(x: Tensor, H: number): Tensor<'f32'> {
  const [B, T, C] = x.shape as [number, number, number];
  return F.permute(F.reshape(x, [B, T, H, C / H]), [0, 2, 1, 3]) as Tensor<'f32'>;
}

/** [B, H, T, D] -> [B, T, H*D] */
export function mergeHeads(x: Tensor): Tensor<'f32'> {
  const [B, H, T, D] = x.shape as [number, number, number, number];
  return F.reshape(F.permute(x, [0, 2, 1, 3]), [B, T, H * D]) as Tensor<'f32'>;
}

/**
 * Joins prefix, cached and new keys/values along time, updates the cache and returns the
 * keys/values to attend over plus the number of tokens before the new ones.
 */
export function extendKV(layer: number, k: Tensor<'f32'>, v: Tensor<'f32'>, inputs: ModelInputs): { k: Tensor<'f32'>; v: Tensor<'f32'> } {
  let K = k, V = v;
  const cache = inputs.cache;
  if (cache) {
    const past = cache[layer];
    if (past) {
      K = F.concat([past.k, k], 2) as Tensor<'f32'>;
      V = F.concat([past.v, v], 2) as Tensor<'f32'>;
      past.k.dispose();
      past.v.dispose();
    }
    cache[layer] = { k: K, v: V };
  }
  const pre = inputs.prefix?.[layer];
  if (pre) {
    K = F.concat([pre.k, K], 2) as Tensor<'f32'>;
    V = F.concat([pre.v, V], 2) as Tensor<'f32'>;
  }
  return { k: K, v: V };
}

/** Tokens already in the cache (layer 0). */
export function cachedLength(inputs: ModelInputs): number {
  return inputs.cache?.[0]?.k.shape[2] ?? 0;
}

/** Key mask over [prefix | cache | new] tokens, i32 [B, P + Tpast + T], or null if none is needed. */
export function keyMask(B: number, total: number, inputs: ModelInputs): Tensor<'i32'> | null {
  const P = inputs.prefix?.[0]?.k.shape[2] ?? 0;
  if (!inputs.attentionMask) return null;
  const m = inputs.attentionMask;
  if (m.shape[0] !== B || m.shape[1]! + P !== total) {
    throw new TunekitError('ERR_SHAPE', `attention mask is [${m.shape}] but ${B} sequences of ${total - P} tokens (with cache) are attended`);
  }
  if (P === 0) return m;
  const src = m.toTypedArray() as Int32Array;
  const out = new Int32Array(B * total);
  const Tm = m.shape[1]!;
  for (let b = 0; b < B; b++) {
    for (let p = 0; p < P; p++) out[b * total + p] = 1;
    for (let t = 0; t < Tm; t++) out[b * total + P + t] = src[b * Tm + t]!;
  }
  return tensor(out, [B, total]) as Tensor<'i32'>;
}

/** Reads a config field under any of its names. */
export function field<T>(raw: Record<string, unknown>, names: string[], fallback?: T): T {
  for (const n of names) if (raw[n] !== undefined && raw[n] !== null) return raw[n] as T;
  if (fallback !== undefined) return fallback;
  throw new TunekitError('ERR_CONFIG', `config.json is missing '${names[0]}'${names.length > 1 ? ` (or ${names.slice(1).join(', ')})` : ''}`);
}

export function numLabelsOf(raw: Record<string, unknown>): number {
  if (typeof raw.num_labels === 'number') return raw.num_labels;
  if (raw.id2label && typeof raw.id2label === 'object') return Object.keys(raw.id2label).length;
  return 2;
}

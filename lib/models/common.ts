/**
 * What every model shares: the forward inputs and outputs, the KV cache, the key-padding and
 * position helpers, and the heads' pooling.
 */
import { Tensor } from '../tensor/tensor.js';
import type { Device } from '../tensor/device.js';
import { tensor } from '../tensor/creation.js';
import { totalmem } from 'node:os';
import { TunekitError, describe } from '../errors.js';
import { Module } from '../nn/module.js';
import * as F from '../autograd/ops.js';
import * as K from '../tensor/kernels.js';

export type Task = 'causal_lm' | 'seq_cls' | 'token_cls' | 'image_cls' | 'base';

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
  /** images [B, C, H, W], preprocessed as the model's preprocessor_config.json says (image models) */
  pixelValues?: Tensor<'f32'>;
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
  /** final hidden states [B, T, C] (a model that skips padding may leave its rows zero) */
  hidden: Tensor<'f32'>;
}

/**
 * An output whose `hidden` is computed on its first read (then kept): for heads that do not need
 * every row's final hidden state (sequence classification). Read it in the forward's scope.
 */
export function withLazyHidden(logits: Tensor<'f32'>, hidden: () => Tensor<'f32'>): ModelOutput {
  let h: Tensor<'f32'> | null = null;
  const out = { logits } as ModelOutput;
  Object.defineProperty(out, 'hidden', { get: () => (h ??= hidden()), enumerable: true });
  return out;
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
  /** size of the learned position table (GPT-2, BERT) or the trained context (Llama family) */
  maxPositions: number;
  /** the longest sequence (prefix + cached + new tokens) the model accepts: see maxSequenceLength */
  maxSequenceLength: number;
  numLabels: number;
  padTokenId: number | null;
  bosTokenId: number | null;
  eosTokenId: number | null;
  tieWordEmbeddings: boolean;
  /** the config.json as read (saved back with our changes merged in) */
  raw: Record<string, unknown>;
}

/**
 * Positions of each token: cumulative count of real tokens - 1 (0 for padding), offset by the
 * cache, plus `offset` (prefix tuning's virtual tokens), as i32 [B, T] on `device` (the model's:
 * the mask may be elsewhere or absent).
 */
export function positionIds(B: number, T: number, mask: Tensor<'i32'> | null | undefined, past: number, device: Device = 'cpu', offset = 0): Tensor<'i32'> {
  const out = new Int32Array(B * T);
  if (!mask) {
    for (let b = 0; b < B; b++) for (let t = 0; t < T; t++) out[b * T + t] = offset + past + t;
  } else {
    const m = mask.toTypedArray() as Int32Array;
    const Tm = mask.shape[1]!;
    if (Tm !== past + T) throw new TunekitError('ERR_SHAPE', `attention mask has ${Tm} columns but ${past} cached + ${T} new tokens`);
    for (let b = 0; b < B; b++) {
      let c = 0;
      for (let t = 0; t < Tm; t++) {
        c += m[b * Tm + t]!;
        if (t >= past) out[b * T + t - past] = offset + Math.max(0, c - 1);
      }
    }
  }
  return tensor(out, [B, T], 'i32', device);
}

/**
 * Index (into the flattened [B*T] rows) of the token each sequence is classified from: the last
 * real token (attention mask 1) that is not the config's pad_token_id. With input ids and a pad id
 * this is transformers' rule (GPT2ForSequenceClassification / GenericForSequenceClassification:
 * the rightmost token != pad_token_id, index 0 when there is none), so a sequence that ends in an
 * EOS equal to the pad id is classified from the token before it, as transformers does; the mask
 * keeps padding written with another id out. Without ids (prompt tuning's embeddings) or a pad
 * id, the last real token by the mask.
 * The rows are i32 [B] on `device` (the hidden states').
 * @example lastTokenRows(2, 4, mask, ids, 0, hidden.device) // rows of [B] sequences into [B*T]
 */
export function lastTokenRows(B: number, T: number, mask: Tensor<'i32'> | null | undefined, ids?: Tensor<'i32'> | null, padTokenId?: number | null, device: Device = 'cpu'): Tensor<'i32'> {
  return tensor(lastTokenIndices(B, T, mask, ids, padTokenId), [B], 'i32', device);
}

/** lastTokenRows on the host: the [B] row indices as an Int32Array. */
export function lastTokenIndices(B: number, T: number, mask: Tensor<'i32'> | null | undefined, ids?: Tensor<'i32'> | null, padTokenId?: number | null): Int32Array {
  const out = new Int32Array(B);
  const m = mask ? (mask.toTypedArray() as Int32Array) : null;
  const Tm = mask ? mask.shape[1]! : T;
  const x = ids && padTokenId !== null && padTokenId !== undefined ? (ids.toTypedArray() as Int32Array) : null;
  for (let b = 0; b < B; b++) {
    let last = -1;
    for (let t = 0; t < T; t++) {
      if (m && !m[b * Tm + (Tm - T) + t]) continue;
      if (x && x[b * T + t] === padTokenId) continue;
      last = t;
    }
    out[b] = b * T + Math.max(0, last);
  }
  return out;
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

/**
 * A batch as packed rows: the real rows (attention mask 1) of the flattened [B*T], in order, and
 * where each sequence starts among them. A model whose device has the token-major attention
 * kernel runs its layers on these N rows only (the main job's batches are about a sixth padding),
 * then scatters the final hidden states back to [B, T, C]. Every real token's result is the
 * padded computation's: a sequence's rows attend to its own rows, and the masked keys (its
 * padding) are the rows left out.
 */
export interface PackedBatch {
  /** i32 [N]: the rows of [B*T] that are real, in order; null when all are (no padding) */
  rows: Tensor<'i32'> | null;
  /** i32 [B + 1]: sequence b is packed rows offsets[b] .. offsets[b + 1] */
  offsets: Tensor<'i32'>;
  /** the rows on the host [N] (all B*T of them when `rows` is null) and the offsets [B + 1] */
  hostRows: Int32Array;
  hostOffsets: Int32Array;
}

/**
 * The packing of this batch, or null where it does not apply: a KV cache or a prefix (their keys
 * are not rows of this batch), a mask of another shape, or a device without the packed attention
 * kernel (there the model pads, as transformers does).
 */
export function packBatch(inputs: ModelInputs, B: number, T: number, device: Device): PackedBatch | null {
  const m = inputs.attentionMask;
  if (inputs.cache || inputs.prefix || (m && (m.shape[0] !== B || m.shape[1] !== T)) || !K.supports('attentionRows', device)) return null;
  const mask = m ? (m.toTypedArray() as Int32Array) : null;
  let N = B * T;
  if (mask) {
    N = 0;
    for (let i = 0; i < B * T; i++) if (mask[i] !== 0) N++;
  }
  const rows = new Int32Array(N), offsets = new Int32Array(B + 1);
  let n = 0;
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) if (!mask || mask[b * T + t] !== 0) rows[n++] = b * T + t;
    offsets[b + 1] = n;
  }
  return {
    rows: N === B * T ? null : tensor(rows, [N], 'i32', device), offsets: tensor(offsets, [B + 1], 'i32', device),
    hostRows: rows, hostOffsets: offsets,
  };
}

/** Picks the packed rows of a [B, T] i32 tensor (ids, positions) -> [N]. */
export function packI32(x: Tensor<'i32'>, pack: PackedBatch): Tensor<'i32'> {
  const src = x.toTypedArray() as Int32Array;
  const out = Int32Array.from(pack.hostRows, (r) => src[r]!);
  return tensor(out, [out.length], 'i32', x.device);
}

/**
 * The packed index of each sequence's last row, when `rows` (indices into [B*T], one per
 * sequence) are exactly those last rows; null otherwise (an empty sequence, or a row before the
 * end: the classification token of a sequence that ends in pad ids).
 */
export function lastPackedRows(pack: PackedBatch, rows: Int32Array): Int32Array | null {
  const out = new Int32Array(pack.hostOffsets.length - 1);
  for (let b = 0; b < out.length; b++) {
    const end = pack.hostOffsets[b + 1]!;
    if (end === pack.hostOffsets[b] || pack.hostRows[end - 1] !== rows[b]) return null;
    out[b] = end - 1;
  }
  return out;
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
  return tensor(out, [B, total], 'i32', m.device);
}

/**
 * Upper bounds of config.json sizes, checked before anything is allocated (a config with
 * `n_layer: 1e9` once ran the heap out after two minutes). Each is far above every released
 * model (largest vocabularies ~262k, widest hidden sizes ~25k, deepest stacks ~130 layers,
 * longest contexts ~10M) and far below what would overflow the index arithmetic.
 */
export const CONFIG_LIMITS = {
  vocab: 1 << 22,
  width: 1 << 17,
  layers: 1024,
  heads: 1 << 12,
  positions: 1 << 24,
  types: 1 << 16,
  labels: 1 << 20,
} as const;

export type SizeKind = keyof typeof CONFIG_LIMITS;

/**
 * Most parameters a model may have (a sanity bound: 2^37 is 137 billion); the f32 weights must
 * also fit in this machine's memory. Checked from the config before anything is allocated.
 */
export const MAX_MODEL_PARAMETERS = 2 ** 37;

/**
 * Checks that a parsed config.json is a JSON object (not an array, a string or null).
 * @example const raw = configObject(JSON.parse(text), 'models/x/config.json');
 */
export function configObject(value: unknown, where = 'config.json'): Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    const what = Array.isArray(value) ? 'an array' : value === null ? 'null' : `a ${typeof value}`;
    throw new TunekitError('ERR_CONFIG', `${where}: expected a JSON object with model_type and the architecture's sizes but received ${what}`);
  }
  return value as Record<string, unknown>;
}

/** The value of the first of `names` that is present and not null, with the name it was found under. */
function lookup(raw: Record<string, unknown>, names: readonly string[]): { name: string; value: unknown } | undefined {
  for (const n of names) if (raw[n] !== undefined && raw[n] !== null) return { name: n, value: raw[n] };
  return undefined;
}

/**
 * A size field: an integer in [min (1), CONFIG_LIMITS[kind]], read under any of its names, or
 * `fallback` (transformers' default) when absent. Anything else is an ERR_CONFIG naming the
 * field, the accepted range and the value.
 * @example const layers = sizeField(raw, ['n_layer', 'num_hidden_layers'], 'layers', 12);
 */
export function sizeField(raw: Record<string, unknown>, names: readonly string[], kind: SizeKind, fallback?: number, min = 1): number {
  const hit = lookup(raw, names);
  const max = CONFIG_LIMITS[kind];
  if (!hit) {
    if (fallback !== undefined) return fallback;
    throw new TunekitError('ERR_CONFIG', `config.json is missing '${names[0]}'${names.length > 1 ? ` (or ${names.slice(1).join(', ')})` : ''}`);
  }
  const v = hit.value;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new TunekitError('ERR_CONFIG', `config.json: expected ${hit.name} to be an integer in [${min}, ${max}] but received ${describe(v)}`);
  }
  return v;
}

/**
 * A real-valued field (an epsilon, a dropout probability, a rope theta): a finite number in the
 * given range, or `fallback` when absent.
 * @example const eps = numberField(raw, ['layer_norm_epsilon'], 1e-5, { min: 0 });
 */
export function numberField(raw: Record<string, unknown>, names: readonly string[], fallback: number, range: { min?: number; max?: number; minExclusive?: boolean; maxExclusive?: boolean } = {}): number {
  const hit = lookup(raw, names);
  if (!hit) return fallback;
  const v = hit.value;
  const { min = -Infinity, max = Infinity, minExclusive = false, maxExclusive = false } = range;
  const ok = typeof v === 'number' && Number.isFinite(v) && (minExclusive ? v > min : v >= min) && (maxExclusive ? v < max : v <= max);
  if (!ok) {
    const lo = min === -Infinity ? '(-inf' : `${minExclusive ? '(' : '['}${min}`;
    const hi = max === Infinity ? 'inf)' : `${max}${maxExclusive ? ')' : ']'}`;
    throw new TunekitError('ERR_CONFIG', `config.json: expected ${hit.name} to be a number in ${lo}, ${hi} but received ${describe(v)}`);
  }
  return v as number;
}

/** A dropout probability in [0, 1) (1 would divide by zero in inverted dropout). */
export function dropoutField(raw: Record<string, unknown>, names: readonly string[], fallback: number): number {
  return numberField(raw, names, fallback, { min: 0, max: 1, maxExclusive: true });
}

/** A boolean field, or `fallback` when absent. */
export function boolField(raw: Record<string, unknown>, names: readonly string[], fallback: boolean): boolean {
  const hit = lookup(raw, names);
  if (!hit) return fallback;
  if (typeof hit.value !== 'boolean') throw new TunekitError('ERR_CONFIG', `config.json: expected ${hit.name} to be true or false but received ${describe(hit.value)}`);
  return hit.value;
}

/**
 * A special-token id (`pad_token_id`, `bos_token_id`, `eos_token_id`): an integer, a list of
 * integers (eos of Llama 3: the first is used), or absent/null. An id outside [0, vocab) (some
 * configs carry pad_token_id -1) names no token: it is kept in `raw` and read as null, since
 * tunekit would otherwise feed it to an embedding lookup.
 * @example const eos = tokenIdField(raw, 'eos_token_id', vocab, 2);
 */
export function tokenIdField(raw: Record<string, unknown>, name: string, vocabSize: number, fallback: number | null = null): number | null {
  const v = raw[name] === undefined ? fallback : raw[name];
  if (v === null || v === undefined) return null;
  const ids = Array.isArray(v) ? v : [v];
  if (ids.some((id) => typeof id !== 'number' || !Number.isInteger(id))) {
    throw new TunekitError('ERR_CONFIG', `config.json: expected ${name} to be an integer token id (or a list of them, or null) but received ${describe(v)}`);
  }
  const first = ids[0] as number | undefined;
  return first !== undefined && first >= 0 && first < vocabSize ? first : null;
}

/**
 * Labels of a classification head: `num_labels`, else the size of `id2label`, else 2 (as
 * transformers). An integer in [1, CONFIG_LIMITS.labels].
 */
export function numLabelsOf(raw: Record<string, unknown>): number {
  if (raw.num_labels !== undefined && raw.num_labels !== null) return sizeField(raw, ['num_labels'], 'labels');
  const id2label = raw.id2label;
  if (id2label !== undefined && id2label !== null) {
    if (typeof id2label !== 'object' || Array.isArray(id2label)) {
      throw new TunekitError('ERR_CONFIG', `config.json: expected id2label to be an object {"0": "name", ...} but received ${describe(id2label)}`);
    }
    const n = Object.keys(id2label).length;
    if (n < 1 || n > CONFIG_LIMITS.labels) throw new TunekitError('ERR_CONFIG', `config.json: expected id2label to name between 1 and ${CONFIG_LIMITS.labels} labels but it names ${n}`);
    return n;
  }
  return 2;
}

/**
 * Refuses a field tunekit does not implement when it holds anything but its neutral value
 * (`accepted`), naming the field and the value.
 * @example refuseUnless(raw, 'add_cross_attention', [false, undefined, null], 'cross-attention needs an encoder');
 */
export function refuseUnless(raw: Record<string, unknown>, name: string, accepted: readonly unknown[], why: string): void {
  if (!accepted.includes(raw[name])) {
    throw new TunekitError('ERR_CONFIG', `config.json: ${name} ${describe(raw[name])} is not supported: ${why}`);
  }
}

/** Our parameter name -> shape, in the order the model registers them (see Architecture.parameterShapes). */
export type ParameterShapes = [name: string, shape: number[]][];

/**
 * Checks the parameter count a config implies against MAX_MODEL_PARAMETERS and this machine's
 * memory (f32 master weights, 4 bytes each) before anything is allocated; ERR_LIMIT otherwise.
 * Returns the count.
 */
export function checkParameterBudget(modelType: string, shapes: ParameterShapes): number {
  let count = 0;
  for (const [, s] of shapes) count += s.reduce((a, b) => a * b, 1);
  const bytes = count * 4;
  const mem = totalmem();
  if (count > MAX_MODEL_PARAMETERS || bytes > mem) {
    const gb = (n: number) => `${(n / 2 ** 30).toFixed(1)} GiB`;
    throw new TunekitError('ERR_LIMIT', `config.json describes a ${modelType} model of ${count.toExponential(3)} parameters (${gb(bytes)} of f32 weights): over ${count > MAX_MODEL_PARAMETERS ? `the limit of ${MAX_MODEL_PARAMETERS.toExponential(3)} parameters` : `this machine's ${gb(mem)} of memory`}; check its sizes (vocab_size, hidden size, layers, intermediate size, positions)`);
  }
  return count;
}

/**
 * The longest sequence a model accepts: prefix (virtual tokens) + cached + new tokens. GPT-2 and
 * BERT look positions up in a learned table of n_positions / max_position_embeddings rows; the
 * Llama family was trained to max_position_embeddings (Mistral: at most its sliding window,
 * which tunekit does not implement beyond its length). A training run should refuse a
 * `max_length` above it.
 * @example if (maxLength > maxSequenceLength(model)) throw ...
 */
export function maxSequenceLength(model: { config: ModelConfig } | ModelConfig): number {
  const config = 'config' in model ? model.config : model;
  return config.maxSequenceLength;
}

/** Refuses a forward over more positions than the model's table (ERR_VALUE naming the limit). */
export function checkSequenceLength(config: ModelConfig, prefix: number, cached: number, fresh: number, limitName: string): void {
  const total = prefix + cached + fresh;
  if (total > config.maxSequenceLength) {
    const parts = [prefix ? `${prefix} prefix` : '', cached ? `${cached} cached` : '', `${fresh} new`].filter(Boolean).join(' + ');
    throw new TunekitError('ERR_VALUE', `${config.modelType}: ${total} positions (${parts} tokens) exceed ${limitName} ${config.maxSequenceLength}, the longest sequence this model accepts; shorten the input (e.g. dataset.max_length)`);
  }
}

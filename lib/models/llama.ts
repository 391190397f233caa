/**
 * The Llama family (transformers' LlamaForCausalLM / LlamaForSequenceClassification /
 * LlamaForTokenClassification, and Qwen2 and Mistral, which share the math): RMSNorm, rotary
 * position embedding (default, linear and llama3 frequencies, computed as transformers'
 * ROPE_INIT_FUNCTIONS do), grouped-query attention, SiLU-gated MLP, tied or untied LM head.
 *
 * Qwen2 differs only in its q/k/v biases (o_proj has none). Mistral's sliding window is not
 * implemented: a sequence longer than the window is refused rather than computed differently.
 * Attention-probability dropout is not applied (the fused kernel has none; it is 0 in every
 * released checkpoint).
 */
import { Module, ModuleList } from '../nn/module.js';
import { Linear, Embedding, RMSNorm, Dropout, type LinearLike } from '../nn/layers.js';
import { Tensor } from '../tensor/tensor.js';
import { tensor } from '../tensor/creation.js';
import { TunekitError } from '../errors.js';
import * as F from '../autograd/ops.js';
import { registerArchitecture } from './registry.js';
import {
  type ModelConfig, type ModelInputs, type ModelOutput, type PretrainedModel, type Task,
  positionIds, lastTokenRows, splitHeads, mergeHeads, extendKV, cachedLength, keyMask, field, numLabelsOf,
} from './common.js';

export type RopeType = 'default' | 'linear' | 'llama3';

export interface RopeConfig {
  type: RopeType;
  theta: number;
  /** rotated channels per head (head_dim * partial_rotary_factor) */
  dim: number;
  /** linear / llama3 scaling factor */
  factor: number;
  lowFreqFactor: number;
  highFreqFactor: number;
  originalMaxPositions: number;
}

export interface LlamaConfig extends ModelConfig {
  intermediateSize: number;
  rmsNormEps: number;
  rope: RopeConfig;
  /** biases on q/k/v projections */
  qkvBias: boolean;
  /** bias on o_proj */
  oBias: boolean;
  mlpBias: boolean;
  /** Mistral's sliding window (sequences longer than it are refused), null when none */
  slidingWindow: number | null;
  /** dropout before a classification head */
  classifierDropout: number;
}

const SUPPORTED_ROPE = ['default', 'linear', 'llama3'];

/**
 * Parses a Llama/Qwen2/Mistral config.json. Reads the rotary settings from transformers 5's
 * `rope_parameters` (which holds `rope_theta`) or transformers 4's top-level `rope_theta` plus
 * `rope_scaling` (`type` or `rope_type`).
 * @example const cfg = parseLlamaConfig(JSON.parse(readFileSync('config.json', 'utf8')));
 */
export function parseLlamaConfig(raw: Record<string, unknown>): LlamaConfig {
  const modelType = (raw.model_type as string | undefined) ?? 'llama';
  const hidden = field<number>(raw, ['hidden_size']);
  const heads = field<number>(raw, ['num_attention_heads']);
  const kvHeads = field<number>(raw, ['num_key_value_heads'], heads);
  const headDim = field<number>(raw, ['head_dim'], hidden / heads);
  if (!Number.isInteger(headDim) || headDim <= 0) {
    throw new TunekitError('ERR_CONFIG', `config.json: hidden_size ${hidden} is not divisible by num_attention_heads ${heads} and no head_dim is given`);
  }
  if (heads % kvHeads !== 0) {
    throw new TunekitError('ERR_CONFIG', `config.json: num_attention_heads ${heads} must be a multiple of num_key_value_heads ${kvHeads}`);
  }
  const act = field<string>(raw, ['hidden_act'], 'silu');
  if (act !== 'silu' && act !== 'swish') {
    throw new TunekitError('ERR_CONFIG', `config.json: hidden_act '${act}' is not supported for ${modelType} (expected 'silu')`);
  }
  if (modelType === 'qwen2' && raw.use_sliding_window === true) {
    throw new TunekitError('ERR_CONFIG', 'config.json: Qwen2 with use_sliding_window=true is not supported');
  }
  const maxPositions = field<number>(raw, ['max_position_embeddings'], 2048);
  const attentionBias = field<boolean>(raw, ['attention_bias'], false);
  const cls = raw.classifier_dropout ?? raw.hidden_dropout;
  return {
    modelType,
    vocabSize: field(raw, ['vocab_size']),
    hiddenSize: hidden,
    numLayers: field(raw, ['num_hidden_layers']),
    numHeads: heads,
    numKvHeads: kvHeads,
    headDim,
    maxPositions,
    numLabels: numLabelsOf(raw),
    padTokenId: (raw.pad_token_id as number | undefined) ?? null,
    bosTokenId: (raw.bos_token_id as number | undefined) ?? null,
    eosTokenId: (Array.isArray(raw.eos_token_id) ? (raw.eos_token_id[0] as number) : (raw.eos_token_id as number | undefined)) ?? null,
    tieWordEmbeddings: (raw.tie_word_embeddings as boolean | undefined) ?? false,
    intermediateSize: field(raw, ['intermediate_size']),
    rmsNormEps: field(raw, ['rms_norm_eps'], 1e-6),
    rope: parseRope(raw, headDim, maxPositions),
    qkvBias: modelType === 'qwen2' ? true : attentionBias,
    oBias: modelType === 'qwen2' ? false : attentionBias,
    mlpBias: field(raw, ['mlp_bias'], false),
    slidingWindow: modelType === 'mistral' ? ((raw.sliding_window as number | null | undefined) ?? null) : null,
    classifierDropout: typeof cls === 'number' ? cls : 0.1,
    raw,
  };
}

function parseRope(raw: Record<string, unknown>, headDim: number, maxPositions: number): RopeConfig {
  const asObj = (v: unknown) => (v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : {});
  // transformers 5 writes rope_parameters (theta inside); 4.x wrote rope_theta + rope_scaling.
  const rp = { ...asObj(raw.rope_scaling), ...asObj(raw.rope_parameters) };
  if (Object.values(rp).some((v) => v && typeof v === 'object')) {
    throw new TunekitError('ERR_CONFIG', 'config.json: per-layer-type rope_parameters are not supported for Llama-family models');
  }
  const type = String(rp.rope_type ?? rp.type ?? 'default');
  if (!SUPPORTED_ROPE.includes(type)) {
    throw new TunekitError('ERR_CONFIG', `config.json: rope type '${type}' is not supported (supported: ${SUPPORTED_ROPE.map((t) => `'${t}'`).join(', ')})`);
  }
  const theta = Number(rp.rope_theta ?? raw.rope_theta ?? 10000);
  const partial = Number(rp.partial_rotary_factor ?? raw.partial_rotary_factor ?? 1);
  const need = (k: string): number => {
    if (typeof rp[k] !== 'number') throw new TunekitError('ERR_CONFIG', `config.json: rope type '${type}' needs '${k}' in rope_parameters/rope_scaling`);
    return rp[k] as number;
  };
  const cfg: RopeConfig = {
    type: type as RopeType, theta, dim: Math.trunc(headDim * partial), factor: 1, lowFreqFactor: 1, highFreqFactor: 4,
    originalMaxPositions: maxPositions,
  };
  if (type === 'linear') cfg.factor = need('factor');
  if (type === 'llama3') {
    cfg.factor = need('factor');
    cfg.lowFreqFactor = need('low_freq_factor');
    cfg.highFreqFactor = need('high_freq_factor');
    cfg.originalMaxPositions = Number(rp.original_max_position_embeddings ?? raw.original_max_position_embeddings ?? maxPositions);
  }
  return cfg;
}

/**
 * Inverse frequencies [dim/2] of the rotary embedding, computed step by step in float32 as
 * transformers' ROPE_INIT_FUNCTIONS do (default, linear, llama3), so the tables agree bit for bit
 * or within an ulp.
 * @example ropeInvFreq({ type: 'default', theta: 10000, dim: 64, factor: 1, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 2048 })
 */
export function ropeInvFreq(rope: RopeConfig): Float32Array {
  const f = Math.fround;
  const n = Math.floor(rope.dim / 2);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const e = f((2 * i) / rope.dim);
    let inv = f(1 / f(Math.pow(rope.theta, e)));
    if (rope.type === 'linear') inv = f(inv / rope.factor);
    if (rope.type === 'llama3') {
      const { factor, lowFreqFactor: lo, highFreqFactor: hi, originalMaxPositions: old } = rope;
      const lowWavelen = old / lo;
      const highWavelen = old / hi;
      const wavelen = f((2 * Math.PI) / inv);
      const scaled = wavelen > lowWavelen ? f(inv / factor) : inv;
      if (!(wavelen < highWavelen) && !(wavelen > lowWavelen)) {
        const smooth = f(f(f(old / wavelen) - lo) / (hi - lo));
        inv = f(f(f(f(1 - smooth) * scaled) / factor) + f(smooth * scaled));
      } else {
        inv = scaled;
      }
    }
    out[i] = inv;
  }
  return out;
}

class LlamaAttention extends Module {
  q_proj: LinearLike;
  k_proj: LinearLike;
  v_proj: LinearLike;
  o_proj: LinearLike;
  constructor(readonly cfg: LlamaConfig, readonly layer: number) {
    super();
    const C = cfg.hiddenSize, D = cfg.headDim;
    this.q_proj = this.module('q_proj', new Linear(C, cfg.numHeads * D, { bias: cfg.qkvBias }));
    this.k_proj = this.module('k_proj', new Linear(C, cfg.numKvHeads * D, { bias: cfg.qkvBias }));
    this.v_proj = this.module('v_proj', new Linear(C, cfg.numKvHeads * D, { bias: cfg.qkvBias }));
    this.o_proj = this.module('o_proj', new Linear(cfg.numHeads * D, C, { bias: cfg.oBias }));
  }
  forward(x: Tensor, inputs: ModelInputs, pos: Tensor<'i32'>, invFreq: Tensor<'f32'>): Tensor {
    const B = x.shape[0]!;
    const { numHeads: Hq, numKvHeads: Hkv, rope } = this.cfg;
    const q = F.rope(splitHeads(this.q_proj.forward(x), Hq), pos, invFreq, rope.dim);
    const kNew = F.rope(splitHeads(this.k_proj.forward(x), Hkv), pos, invFreq, rope.dim);
    const vNew = splitHeads(this.v_proj.forward(x), Hkv).contiguous();
    const { k, v } = extendKV(this.layer, kNew, vNew, inputs);
    const win = this.cfg.slidingWindow;
    if (win !== null && k.shape[2]! > win) {
      throw new TunekitError('ERR_UNSUPPORTED', `${this.cfg.modelType}: ${k.shape[2]} attended tokens exceed sliding_window ${win}, which tunekit does not implement`);
    }
    const mask = keyMask(B, k.shape[2]!, inputs);
    const a = F.attention(q, k, v, { causal: true, keyMask: mask });
    return this.o_proj.forward(mergeHeads(a));
  }
}

class LlamaMLP extends Module {
  gate_proj: LinearLike;
  up_proj: LinearLike;
  down_proj: LinearLike;
  constructor(cfg: LlamaConfig) {
    super();
    const C = cfg.hiddenSize, I = cfg.intermediateSize, bias = cfg.mlpBias;
    this.gate_proj = this.module('gate_proj', new Linear(C, I, { bias }));
    this.up_proj = this.module('up_proj', new Linear(C, I, { bias }));
    this.down_proj = this.module('down_proj', new Linear(I, C, { bias }));
  }
  forward(x: Tensor): Tensor {
    return this.down_proj.forward(F.mul(F.silu(this.gate_proj.forward(x)), this.up_proj.forward(x)));
  }
}

class LlamaDecoderLayer extends Module {
  self_attn: LlamaAttention;
  mlp: LlamaMLP;
  input_layernorm: RMSNorm;
  post_attention_layernorm: RMSNorm;
  constructor(cfg: LlamaConfig, layer: number) {
    super();
    this.self_attn = this.module('self_attn', new LlamaAttention(cfg, layer));
    this.mlp = this.module('mlp', new LlamaMLP(cfg));
    this.input_layernorm = this.module('input_layernorm', new RMSNorm(cfg.hiddenSize, cfg.rmsNormEps));
    this.post_attention_layernorm = this.module('post_attention_layernorm', new RMSNorm(cfg.hiddenSize, cfg.rmsNormEps));
  }
  forward(x: Tensor, inputs: ModelInputs, pos: Tensor<'i32'>, invFreq: Tensor<'f32'>): Tensor {
    const h = F.add(x, this.self_attn.forward(this.input_layernorm.forward(x), inputs, pos, invFreq));
    return F.add(h, this.mlp.forward(this.post_attention_layernorm.forward(h)));
  }
}

/** The Llama trunk (transformers' LlamaModel, saved under the `model.` prefix). */
export class LlamaModel extends Module {
  embed_tokens: Embedding;
  layers: LlamaDecoderLayer[] = [];
  norm: RMSNorm;
  /** rotary inverse frequencies [rope.dim / 2] (a non-persistent buffer, as in transformers) */
  readonly invFreq: Tensor<'f32'>;
  constructor(readonly cfg: LlamaConfig) {
    super();
    this.embed_tokens = this.module('embed_tokens', new Embedding(cfg.vocabSize, cfg.hiddenSize));
    const list = this.module('layers', new ModuleList());
    for (let i = 0; i < cfg.numLayers; i++) this.layers.push(list.add(new LlamaDecoderLayer(cfg, i)));
    this.norm = this.module('norm', new RMSNorm(cfg.hiddenSize, cfg.rmsNormEps));
    this.invFreq = this.buffer('rotary_emb.inv_freq', tensor(ropeInvFreq(cfg.rope), [Math.floor(cfg.rope.dim / 2)]) as Tensor<'f32'>);
  }
  forward(inputs: ModelInputs): Tensor<'f32'> {
    const emb = inputs.inputsEmbeds ?? this.embed_tokens.forward(inputs.inputIds!);
    const [B, T] = emb.shape as [number, number, number];
    const pos = positionIds(B, T, inputs.attentionMask, cachedLength(inputs));
    // prefix tuning: the real tokens' positions start after the virtual ones (as with PEFT)
    const P = inputs.prefix?.[0]?.k.shape[2] ?? 0;
    if (P > 0) {
      const d = pos.data() as Int32Array; // in-place edit of the positions tensor
      for (let i = 0; i < d.length; i++) d[i] = d[i]! + P;
    }
    let x: Tensor = emb;
    for (const layer of this.layers) x = layer.forward(x, inputs, pos, this.invFreq);
    return this.norm.forward(x);
  }
}

const CLASS_PREFIX: Record<string, string> = { llama: 'Llama', qwen2: 'Qwen2', mistral: 'Mistral' };

/**
 * A Llama-family model with a task head: `lm_head` [V, C] (or tied to embed_tokens), `score`
 * [labels, C] without bias on the last real token, or a token classifier `score` with bias.
 * @example
 * const { model } = loadPretrained('models/tiny-llama', { task: 'causal_lm' });
 * const { logits } = model.forward({ inputIds: ids });
 */
export class Llama extends Module implements PretrainedModel {
  model: LlamaModel;
  lm_head: LinearLike | null = null;
  score: LinearLike | null = null;
  dropout: Dropout | null = null;
  constructor(readonly config: LlamaConfig, readonly task: Task) {
    super();
    this.model = this.module('model', new LlamaModel(config));
    const C = config.hiddenSize;
    if (task === 'causal_lm' && !config.tieWordEmbeddings) this.lm_head = this.module('lm_head', new Linear(C, config.vocabSize, { bias: false }));
    if (task === 'seq_cls') this.score = this.module('score', new Linear(C, config.numLabels, { bias: false }));
    if (task === 'token_cls') {
      this.dropout = this.module('dropout', new Dropout(config.classifierDropout));
      this.score = this.module('score', new Linear(C, config.numLabels, { bias: (config.raw.token_classification_bias as boolean | undefined) ?? true }));
    }
  }
  tokenEmbeddings(): Tensor {
    return this.model.embed_tokens.weight;
  }
  embedTokens(ids: Tensor<'i32'>): Tensor<'f32'> {
    return this.model.embed_tokens.forward(ids);
  }
  forward(inputs: ModelInputs): ModelOutput {
    const hidden = this.model.forward(inputs);
    const [B, T, C] = hidden.shape as [number, number, number];
    if (this.task === 'seq_cls') {
      const rows = lastTokenRows(B, T, inputs.attentionMask);
      const pooled = F.gatherRows(F.reshape(hidden, [B * T, C]), rows);
      return { logits: this.score!.forward(pooled), hidden };
    }
    if (this.task === 'token_cls') return { logits: this.score!.forward(this.dropout!.forward(hidden)), hidden };
    if (this.task === 'base') return { logits: hidden, hidden };
    if (this.lm_head) return { logits: this.lm_head.forward(hidden), hidden };
    return { logits: F.matmul(hidden, this.model.embed_tokens.weight, { transB: true }), hidden };
  }
}

for (const modelType of ['llama', 'qwen2', 'mistral']) {
  const prefix = CLASS_PREFIX[modelType]!;
  registerArchitecture(modelType, {
    parseConfig: (raw) => parseLlamaConfig({ ...raw, model_type: raw.model_type ?? modelType }),
    build: (config, task) => new Llama(config as LlamaConfig, task),
    mapKey(key, task) {
      if (key.endsWith('rotary_emb.inv_freq')) return null; // non-persistent buffer in old files
      if (key.startsWith('lm_head.')) return task === 'causal_lm' ? key : null;
      if (key.startsWith('score.')) return task === 'seq_cls' || task === 'token_cls' ? key : null;
      return key.startsWith('model.') ? key : `model.${key}`; // a bare LlamaModel saves without the prefix
    },
    saveKey: (name) => name,
    className: (task) => `${prefix}${task === 'seq_cls' ? 'ForSequenceClassification' : task === 'token_cls' ? 'ForTokenClassification' : task === 'base' ? 'Model' : 'ForCausalLM'}`,
  });
}

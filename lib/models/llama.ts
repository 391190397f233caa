/**
 * The Llama family (transformers' LlamaForCausalLM / LlamaForSequenceClassification /
 * LlamaForTokenClassification, and Qwen2 and Mistral, which share the math): RMSNorm, rotary
 * position embedding (default, linear and llama3 frequencies, computed as transformers'
 * ROPE_INIT_FUNCTIONS do), grouped-query attention, gated MLP, tied or untied LM head.
 *
 * config.json fields, as transformers 5 reads them (configuration_llama.py / _qwen2 / _mistral,
 * modeling_*.py, modeling_rope_utils.py): sizes (vocab_size, hidden_size, intermediate_size,
 * num_hidden_layers, num_attention_heads, num_key_value_heads, head_dim) are integers within
 * CONFIG_LIMITS; hidden_act is any ACT2FN name lib/nn/activation.ts computes (the gate's
 * activation); rms_norm_eps; tie_word_embeddings; rope_parameters (transformers 5) or rope_scaling
 * + rope_theta (4.x; rope_scaling wins over rope_parameters, as convert_rope_params_to_dict
 * does); Llama's attention_bias (q/k/v/o) and mlp_bias; classifier_dropout / hidden_dropout and
 * token_classification_bias for token classification. Qwen2 always has q/k/v biases (o_proj and
 * the MLP none) and Mistral none at all, whatever attention_bias / mlp_bias say: those classes do
 * not read them. pretraining_tp is not read by transformers 5 either.
 * Refused: rope types other than default / linear / llama3 (dynamic, yarn, longrope, ...), a
 * partial_rotary_factor other than 1 (transformers' Llama ignores it for the default rope and
 * fails for the scaled ones), an odd rotary dimension, Qwen2 sliding-window layers
 * (use_sliding_window, layer_types other than full_attention). Mistral's sliding window (default
 * 4096) is not implemented: sequences longer than it are refused rather than computed differently.
 * Not applied: attention_dropout (0 in released checkpoints; the fused attention kernel has no
 * probability dropout), a training-only difference: eval-mode logits are unaffected.
 */
import { Module, ModuleList } from '../nn/module.js';
import { Linear, Embedding, RMSNorm, Dropout, type LinearLike } from '../nn/layers.js';
import { activate, parseActivation, type ActivationName } from '../nn/activation.js';
import { Tensor } from '../tensor/tensor.js';
import { tensor } from '../tensor/creation.js';
import { TunekitError, describe } from '../errors.js';
import * as F from '../autograd/ops.js';
import { registerArchitecture } from './registry.js';
import {
  type ModelConfig, type ModelInputs, type ModelOutput, type PretrainedModel, type Task, type ParameterShapes,
  positionIds, lastTokenRows, splitHeads, mergeHeads, extendKV, cachedLength, keyMask, numLabelsOf,
  configObject, sizeField, numberField, dropoutField, boolField, tokenIdField, checkParameterBudget, CONFIG_LIMITS,
} from './common.js';

export type RopeType = 'default' | 'linear' | 'llama3';

export interface RopeConfig {
  type: RopeType;
  theta: number;
  /** rotated channels per head (head_dim) */
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
  /** the gate's activation (hidden_act) */
  activation: ActivationName;
  /** biases on q/k/v projections */
  qkvBias: boolean;
  /** bias on o_proj */
  oBias: boolean;
  mlpBias: boolean;
  /** Mistral's sliding window (sequences longer than it are refused), null when none */
  slidingWindow: number | null;
  /** dropout before a token-classification head */
  classifierDropout: number;
  /** bias of the token-classification head (token_classification_bias) */
  tokenClassificationBias: boolean;
}

const SUPPORTED_ROPE = ['default', 'linear', 'llama3'];

/**
 * Parses a Llama/Qwen2/Mistral config.json; every field that changes the numbers is checked
 * (see the file header). Reads the rotary settings from transformers 5's `rope_parameters`
 * (which holds `rope_theta`) or transformers 4's top-level `rope_theta` plus `rope_scaling`
 * (`type` or `rope_type`).
 * @example const cfg = parseLlamaConfig(JSON.parse(readFileSync('config.json', 'utf8')));
 */
export function parseLlamaConfig(rawIn: Record<string, unknown>): LlamaConfig {
  const raw = configObject(rawIn);
  const modelType = raw.model_type === undefined ? 'llama' : raw.model_type;
  if (modelType !== 'llama' && modelType !== 'qwen2' && modelType !== 'mistral') {
    throw new TunekitError('ERR_CONFIG', `config.json: parseLlamaConfig reads model_type 'llama', 'qwen2' or 'mistral' but received ${describe(modelType)}`);
  }
  const vocab = sizeField(raw, ['vocab_size'], 'vocab', modelType === 'qwen2' ? 151936 : 32000);
  const hidden = sizeField(raw, ['hidden_size'], 'width', 4096);
  const heads = sizeField(raw, ['num_attention_heads'], 'heads', 32);
  const kvHeads = sizeField(raw, ['num_key_value_heads'], 'heads', modelType === 'mistral' ? 8 : modelType === 'qwen2' ? 32 : heads);
  const headDim = sizeField(raw, ['head_dim'], 'heads', Math.floor(hidden / heads));
  if (raw.head_dim === undefined || raw.head_dim === null) {
    if (hidden % heads !== 0) throw new TunekitError('ERR_CONFIG', `config.json: hidden_size ${hidden} is not divisible by num_attention_heads ${heads} and no head_dim is given`);
  }
  if (heads % kvHeads !== 0) {
    throw new TunekitError('ERR_CONFIG', `config.json: num_attention_heads ${heads} must be a multiple of num_key_value_heads ${kvHeads}`);
  }
  const activation = parseActivation('hidden_act', raw.hidden_act === undefined ? 'silu' : raw.hidden_act);
  if (modelType === 'qwen2') {
    if (raw.use_sliding_window === true) {
      throw new TunekitError('ERR_CONFIG', 'config.json: Qwen2 with use_sliding_window=true is not supported (sliding-window attention is not implemented)');
    }
    const types = raw.layer_types;
    if (types !== undefined && types !== null && (!Array.isArray(types) || types.some((t) => t !== 'full_attention'))) {
      throw new TunekitError('ERR_CONFIG', `config.json: Qwen2 layer_types ${describe(types)} is not supported (only 'full_attention' layers; sliding_window attention is not implemented)`);
    }
  }
  dropoutField(raw, ['attention_dropout'], 0); // checked; not applied (see the header)
  const maxPositions = sizeField(raw, ['max_position_embeddings'], 'positions', modelType === 'mistral' ? 4096 * 32 : modelType === 'qwen2' ? 32768 : 2048);
  // Mistral's window defaults to 4096 when the key is absent; an explicit null means none
  const slidingWindow = modelType !== 'mistral' ? null
    : raw.sliding_window === undefined ? 4096 : raw.sliding_window === null ? null : sizeField(raw, ['sliding_window'], 'positions');
  const attentionBias = boolField(raw, ['attention_bias'], false);
  const mlpBias = boolField(raw, ['mlp_bias'], false);
  return {
    modelType,
    vocabSize: vocab,
    hiddenSize: hidden,
    numLayers: sizeField(raw, ['num_hidden_layers'], 'layers', 32),
    numHeads: heads,
    numKvHeads: kvHeads,
    headDim,
    maxPositions,
    maxSequenceLength: slidingWindow === null ? maxPositions : Math.min(maxPositions, slidingWindow),
    numLabels: numLabelsOf(raw),
    padTokenId: tokenIdField(raw, 'pad_token_id', vocab, null),
    bosTokenId: tokenIdField(raw, 'bos_token_id', vocab, modelType === 'qwen2' ? null : 1),
    eosTokenId: tokenIdField(raw, 'eos_token_id', vocab, modelType === 'qwen2' ? null : 2),
    tieWordEmbeddings: boolField(raw, ['tie_word_embeddings'], false),
    intermediateSize: sizeField(raw, ['intermediate_size'], 'width', modelType === 'mistral' ? 14336 : modelType === 'qwen2' ? 22016 : 11008),
    rmsNormEps: numberField(raw, ['rms_norm_eps'], 1e-6, { min: 0 }),
    rope: parseRope(raw, headDim, maxPositions),
    activation,
    qkvBias: modelType === 'qwen2' ? true : modelType === 'mistral' ? false : attentionBias,
    oBias: modelType === 'llama' ? attentionBias : false,
    mlpBias: modelType === 'llama' ? mlpBias : false,
    slidingWindow,
    classifierDropout: dropoutField(raw, ['classifier_dropout', 'hidden_dropout'], 0.1),
    tokenClassificationBias: boolField(raw, ['token_classification_bias'], true),
    raw,
  };
}

function parseRope(raw: Record<string, unknown>, headDim: number, maxPositions: number): RopeConfig {
  const asObj = (name: string): Record<string, unknown> | null => {
    const v = raw[name];
    if (v === undefined || v === null) return null;
    if (typeof v !== 'object' || Array.isArray(v)) throw new TunekitError('ERR_CONFIG', `config.json: expected ${name} to be an object but received ${describe(v)}`);
    return v as Record<string, unknown>;
  };
  // transformers 5 writes rope_parameters (theta inside); 4.x wrote rope_theta + rope_scaling.
  // As convert_rope_params_to_dict: a non-empty rope_scaling replaces rope_parameters.
  const scaling = asObj('rope_scaling');
  const rp: Record<string, unknown> = { ...(scaling && Object.keys(scaling).length ? scaling : (asObj('rope_parameters') ?? {})) };
  if (Object.values(rp).some((v) => v && typeof v === 'object')) {
    throw new TunekitError('ERR_CONFIG', 'config.json: per-layer-type rope_parameters are not supported for Llama-family models');
  }
  const type = rp.rope_type ?? rp.type ?? 'default';
  if (typeof type !== 'string' || !SUPPORTED_ROPE.includes(type)) {
    throw new TunekitError('ERR_CONFIG', `config.json: rope type ${typeof type === 'string' ? `'${type}'` : describe(type)} is not supported (supported: ${SUPPORTED_ROPE.map((t) => `'${t}'`).join(', ')})`);
  }
  const num = (where: Record<string, unknown>, key: string, fallback: number | undefined, label: string, ok: (x: number) => boolean, want: string): number => {
    const v = where[key] ?? fallback;
    if (typeof v !== 'number' || !Number.isFinite(v) || !ok(v)) {
      throw new TunekitError('ERR_CONFIG', `config.json: ${v === undefined ? `rope type '${type}' needs '${key}' in ${label}` : `expected ${key} in ${label} to be ${want} but received ${describe(v)}`}`);
    }
    return v;
  };
  const theta = num(rp, 'rope_theta', num(raw, 'rope_theta', 10000, 'config.json', (x) => x > 0, 'a number > 0'), 'rope_parameters', (x) => x > 0, 'a number > 0');
  const partial = rp.partial_rotary_factor ?? raw.partial_rotary_factor;
  if (partial !== undefined && partial !== null && partial !== 1) {
    throw new TunekitError('ERR_CONFIG', `config.json: partial_rotary_factor ${describe(partial)} is not supported for Llama-family models (transformers' Llama rotates the whole head_dim: it ignores the factor for the default rope and fails for scaled ones)`);
  }
  if (headDim % 2 !== 0) {
    throw new TunekitError('ERR_CONFIG', `config.json: head_dim ${headDim} is odd; rotary position embedding needs an even rotary dimension`);
  }
  const cfg: RopeConfig = {
    type: type as RopeType, theta, dim: headDim, factor: 1, lowFreqFactor: 1, highFreqFactor: 4,
    originalMaxPositions: maxPositions,
  };
  const where = scaling && Object.keys(scaling).length ? 'rope_scaling' : 'rope_parameters';
  if (type === 'linear' || type === 'llama3') cfg.factor = num(rp, 'factor', undefined, where, (x) => x > 0, 'a number > 0');
  if (type === 'llama3') {
    cfg.lowFreqFactor = num(rp, 'low_freq_factor', undefined, where, (x) => x > 0, 'a number > 0');
    cfg.highFreqFactor = num(rp, 'high_freq_factor', undefined, where, (x) => x > cfg.lowFreqFactor, `a number > low_freq_factor ${cfg.lowFreqFactor}`);
    // a top-level original_max_position_embeddings has priority (standardize_rope_params)
    const top = raw.original_max_position_embeddings;
    const orig = top !== undefined && top !== null ? top : (rp.original_max_position_embeddings ?? maxPositions);
    if (typeof orig !== 'number' || !Number.isInteger(orig) || orig < 1 || orig > CONFIG_LIMITS.positions) {
      throw new TunekitError('ERR_CONFIG', `config.json: expected original_max_position_embeddings to be an integer in [1, ${CONFIG_LIMITS.positions}] but received ${describe(orig)}`);
    }
    cfg.originalMaxPositions = orig;
  }
  return cfg;
}

/**
 * Every parameter a Llama-family model of this config and task has, name -> shape (no allocation).
 * @example llamaParameterShapes(cfg, 'causal_lm')[0] // ['model.embed_tokens.weight', [V, C]]
 */
export function llamaParameterShapes(cfg: LlamaConfig, task: Task): ParameterShapes {
  const C = cfg.hiddenSize, I = cfg.intermediateSize, D = cfg.headDim, L = cfg.numLabels;
  const q = cfg.numHeads * D, kv = cfg.numKvHeads * D;
  const out: ParameterShapes = [['model.embed_tokens.weight', [cfg.vocabSize, C]]];
  const lin = (name: string, o: number, i: number, bias: boolean) => {
    out.push([`${name}.weight`, [o, i]]);
    if (bias) out.push([`${name}.bias`, [o]]);
  };
  for (let l = 0; l < cfg.numLayers; l++) {
    const p = `model.layers.${l}`;
    lin(`${p}.self_attn.q_proj`, q, C, cfg.qkvBias);
    lin(`${p}.self_attn.k_proj`, kv, C, cfg.qkvBias);
    lin(`${p}.self_attn.v_proj`, kv, C, cfg.qkvBias);
    lin(`${p}.self_attn.o_proj`, C, q, cfg.oBias);
    lin(`${p}.mlp.gate_proj`, I, C, cfg.mlpBias);
    lin(`${p}.mlp.up_proj`, I, C, cfg.mlpBias);
    lin(`${p}.mlp.down_proj`, C, I, cfg.mlpBias);
    out.push([`${p}.input_layernorm.weight`, [C]], [`${p}.post_attention_layernorm.weight`, [C]]);
  }
  out.push(['model.norm.weight', [C]]);
  if (task === 'causal_lm' && !cfg.tieWordEmbeddings) lin('lm_head', cfg.vocabSize, C, false);
  if (task === 'seq_cls') lin('score', L, C, false);
  if (task === 'token_cls') lin('score', L, C, cfg.tokenClassificationBias);
  return out;
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
  constructor(readonly cfg: LlamaConfig) {
    super();
    const C = cfg.hiddenSize, I = cfg.intermediateSize, bias = cfg.mlpBias;
    this.gate_proj = this.module('gate_proj', new Linear(C, I, { bias }));
    this.up_proj = this.module('up_proj', new Linear(C, I, { bias }));
    this.down_proj = this.module('down_proj', new Linear(I, C, { bias }));
  }
  forward(x: Tensor): Tensor {
    return this.down_proj.forward(F.mul(activate(this.gate_proj.forward(x), this.cfg.activation), this.up_proj.forward(x)));
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
    // prefix tuning: the real tokens' positions start after the virtual ones (as with PEFT)
    const P = inputs.prefix?.[0]?.k.shape[2] ?? 0;
    const pos = positionIds(B, T, inputs.attentionMask, cachedLength(inputs), emb.device, P);
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
 * const { model } = loadPretrainedSync('models/tiny-llama', { task: 'causal_lm' });
 * const { logits } = model.forward({ inputIds: ids });
 */
export class Llama extends Module implements PretrainedModel {
  model: LlamaModel;
  lm_head: LinearLike | null = null;
  score: LinearLike | null = null;
  dropout: Dropout | null = null;
  constructor(readonly config: LlamaConfig, readonly task: Task) {
    super();
    checkParameterBudget(config.modelType, llamaParameterShapes(config, task)); // before allocating anything
    this.model = this.module('model', new LlamaModel(config));
    const C = config.hiddenSize;
    if (task === 'causal_lm' && !config.tieWordEmbeddings) this.lm_head = this.module('lm_head', new Linear(C, config.vocabSize, { bias: false }));
    if (task === 'seq_cls') this.score = this.module('score', new Linear(C, config.numLabels, { bias: false }));
    if (task === 'token_cls') {
      this.dropout = this.module('dropout', new Dropout(config.classifierDropout));
      this.score = this.module('score', new Linear(C, config.numLabels, { bias: config.tokenClassificationBias }));
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
      const rows = lastTokenRows(B, T, inputs.attentionMask, inputs.inputsEmbeds ? null : inputs.inputIds, this.config.padTokenId, hidden.device);
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
    parameterShapes: (config, task) => llamaParameterShapes(config as LlamaConfig, task),
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

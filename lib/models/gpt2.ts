/**
 * GPT-2 (transformers' GPT2LMHeadModel / GPT2ForSequenceClassification / GPT2ForTokenClassification).
 * Conv1D weights are kept in the checkpoint's [in, out] layout; the LM head is tied to wte unless
 * `tie_word_embeddings` is false (then `lm_head.weight` [V, C] is loaded, used and saved).
 *
 * config.json fields, as transformers 5 reads them (configuration_gpt2.py, modeling_gpt2.py):
 * sizes (vocab_size, n_positions, n_embd, n_layer, n_head, n_inner) are integers within
 * CONFIG_LIMITS; activation_function is any ACT2FN name lib/nn/activation.ts computes;
 * layer_norm_epsilon; scale_attn_weights (false: no 1/sqrt(D)); scale_attn_by_inverse_layer_idx
 * (scores also divided by layer + 1); reorder_and_upcast_attn only reorders and upcasts to f32 a
 * product tunekit already computes in f32, so it changes nothing here; resid_pdrop, embd_pdrop and
 * (token classification) classifier_dropout / hidden_dropout are applied in training.
 * Refused: add_cross_attention true (an encoder-decoder layer tunekit does not build).
 * Not applied: attn_pdrop (attention-probability dropout; the fused attention kernel has none), a
 * training-only difference: eval-mode logits are unaffected.
 * Where the device has the packed attention kernel (the CPU) and there is no KV cache or prefix,
 * the layers run on the batch's real rows only (common.ts packBatch): the same result for every
 * real token, no work on padding; `hidden` is then zero at the padding. Sequence classification
 * also runs its last layer's queries, MLP and norms on the classified rows alone (forwardPooled).
 */
import { Module, ModuleList } from '../nn/module.js';
import { Linear, Embedding, LayerNorm, Dropout, type LinearLike } from '../nn/layers.js';
import { activate, parseActivation, type ActivationName } from '../nn/activation.js';
import { Tensor } from '../tensor/tensor.js';
import { tensor } from '../tensor/creation.js';
import { TunekitError } from '../errors.js';
import * as F from '../autograd/ops.js';
import { registerArchitecture } from './registry.js';
import {
  type ModelConfig, type ModelInputs, type ModelOutput, type PretrainedModel, type Task, type ParameterShapes,
  positionIds, lastTokenIndices, splitHeads, mergeHeads, extendKV, cachedLength, keyMask, numLabelsOf, packBatch, packI32, lastPackedRows, withLazyHidden, type PackedBatch,
  configObject, sizeField, numberField, dropoutField, boolField, tokenIdField, refuseUnless, checkParameterBudget, checkSequenceLength,
} from './common.js';

export interface GPT2Config extends ModelConfig {
  /** MLP width (n_inner, default 4 * n_embd) */
  innerSize: number;
  layerNormEps: number;
  residDropout: number;
  embdDropout: number;
  /** dropout before the token-classification head */
  classifierDropout: number;
  activation: ActivationName;
  /** scores * 1/sqrt(head_dim) (scale_attn_weights) */
  scaleAttnWeights: boolean;
  /** scores additionally / (layer + 1) (scale_attn_by_inverse_layer_idx) */
  scaleAttnByInverseLayerIdx: boolean;
}

/**
 * Parses a GPT-2 config.json; every field that changes the numbers is checked (see the file header).
 * @example const cfg = parseGPT2Config({ model_type: 'gpt2', vocab_size: 97, n_embd: 48, n_layer: 2, n_head: 3 });
 */
export function parseGPT2Config(rawIn: Record<string, unknown>): GPT2Config {
  const raw = configObject(rawIn);
  const vocab = sizeField(raw, ['vocab_size'], 'vocab', 50257);
  const hidden = sizeField(raw, ['n_embd', 'hidden_size'], 'width', 768);
  const heads = sizeField(raw, ['n_head', 'num_attention_heads'], 'heads', 12);
  if (hidden % heads !== 0) throw new TunekitError('ERR_CONFIG', `config.json: n_embd ${hidden} is not divisible by n_head ${heads}`);
  const positions = sizeField(raw, ['n_positions', 'max_position_embeddings'], 'positions', 1024);
  refuseUnless(raw, 'add_cross_attention', [undefined, null, false], 'GPT-2 cross-attention layers (encoder-decoder use) are not built by tunekit');
  boolField(raw, ['reorder_and_upcast_attn'], false); // checked; a no-op in f32 (see the header)
  dropoutField(raw, ['attn_pdrop'], 0.1); // checked; not applied (see the header)
  return {
    modelType: 'gpt2',
    vocabSize: vocab,
    hiddenSize: hidden,
    numLayers: sizeField(raw, ['n_layer', 'num_hidden_layers'], 'layers', 12),
    numHeads: heads,
    numKvHeads: heads,
    headDim: hidden / heads,
    maxPositions: positions,
    maxSequenceLength: positions,
    numLabels: numLabelsOf(raw),
    padTokenId: tokenIdField(raw, 'pad_token_id', vocab, null),
    bosTokenId: tokenIdField(raw, 'bos_token_id', vocab, 50256),
    eosTokenId: tokenIdField(raw, 'eos_token_id', vocab, 50256),
    tieWordEmbeddings: boolField(raw, ['tie_word_embeddings'], true),
    innerSize: sizeField(raw, ['n_inner'], 'width', 4 * hidden),
    layerNormEps: numberField(raw, ['layer_norm_epsilon'], 1e-5, { min: 0 }),
    residDropout: dropoutField(raw, ['resid_pdrop'], 0.1),
    embdDropout: dropoutField(raw, ['embd_pdrop'], 0.1),
    classifierDropout: dropoutField(raw, ['classifier_dropout', 'hidden_dropout'], 0.1),
    activation: parseActivation('activation_function', raw.activation_function === undefined ? 'gelu_new' : raw.activation_function),
    scaleAttnWeights: boolField(raw, ['scale_attn_weights'], true),
    scaleAttnByInverseLayerIdx: boolField(raw, ['scale_attn_by_inverse_layer_idx'], false),
    raw,
  };
}

/**
 * Every parameter a GPT-2 of this config and task has, name -> shape (no allocation).
 * @example gpt2ParameterShapes(cfg, 'causal_lm').length // 4 + 12 * n_layer (+1 untied head)
 */
export function gpt2ParameterShapes(cfg: GPT2Config, task: Task): ParameterShapes {
  const C = cfg.hiddenSize, I = cfg.innerSize, L = cfg.numLabels;
  const out: ParameterShapes = [['transformer.wte.weight', [cfg.vocabSize, C]], ['transformer.wpe.weight', [cfg.maxPositions, C]]];
  for (let i = 0; i < cfg.numLayers; i++) {
    const h = `transformer.h.${i}`;
    out.push(
      [`${h}.ln_1.weight`, [C]], [`${h}.ln_1.bias`, [C]],
      [`${h}.attn.c_attn.weight`, [C, 3 * C]], [`${h}.attn.c_attn.bias`, [3 * C]],
      [`${h}.attn.c_proj.weight`, [C, C]], [`${h}.attn.c_proj.bias`, [C]],
      [`${h}.ln_2.weight`, [C]], [`${h}.ln_2.bias`, [C]],
      [`${h}.mlp.c_fc.weight`, [C, I]], [`${h}.mlp.c_fc.bias`, [I]],
      [`${h}.mlp.c_proj.weight`, [I, C]], [`${h}.mlp.c_proj.bias`, [C]],
    );
  }
  out.push(['transformer.ln_f.weight', [C]], ['transformer.ln_f.bias', [C]]);
  if (task === 'seq_cls') out.push(['score.weight', [L, C]]);
  else if (task === 'token_cls') out.push(['classifier.weight', [L, C]], ['classifier.bias', [L]]);
  else if (!cfg.tieWordEmbeddings) out.push(['lm_head.weight', [cfg.vocabSize, C]]);
  return out;
}

class GPT2Attention extends Module {
  c_attn: LinearLike;
  c_proj: LinearLike;
  resid_dropout: Dropout;
  constructor(readonly cfg: GPT2Config, readonly layer: number) {
    super();
    const C = cfg.hiddenSize;
    this.c_attn = this.module('c_attn', new Linear(C, 3 * C, { layout: 'in_out' }));
    this.c_proj = this.module('c_proj', new Linear(C, C, { layout: 'in_out' }));
    this.resid_dropout = this.module('resid_dropout', new Dropout(cfg.residDropout));
  }
  /** transformers' GPT2Attention.scaling: 1/sqrt(D) unless scale_attn_weights is false, / (layer + 1) with scale_attn_by_inverse_layer_idx */
  get scaling(): number {
    let s = this.cfg.scaleAttnWeights ? this.cfg.headDim ** -0.5 : 1;
    if (this.cfg.scaleAttnByInverseLayerIdx) s /= this.layer + 1;
    return s;
  }
  /** x [N, C] packed rows -> the attention output of each sequence's last row [S, C] */
  forwardLastRows(x: Tensor, pack: PackedBatch): Tensor {
    const a = F.packedQkvAttention(this.c_attn.forward(x), this.cfg.numHeads, pack.offsets, { causal: true, scale: this.scaling, lastQueryOnly: true });
    return this.resid_dropout.forward(this.c_proj.forward(a));
  }
  /** x [B, T, C], or the packed rows [N, C] of `pack` */
  forward(x: Tensor, inputs: ModelInputs, pack: PackedBatch | null): Tensor {
    const H = this.cfg.numHeads;
    const scale = this.scaling;
    const qkv = this.c_attn.forward(x); // [B, T, 3C] or [N, 3C]
    if (pack) return this.resid_dropout.forward(this.c_proj.forward(F.packedQkvAttention(qkv, H, pack.offsets, { causal: true, scale })));
    const [B, T, C] = x.shape as [number, number, number];
    if (!inputs.cache && !inputs.prefix) {
      // no KV cache or prefix to join: attend straight from the packed projection (fewer copies)
      const a = F.qkvAttention(qkv, H, { causal: true, keyMask: keyMask(B, T, inputs), scale });
      return this.resid_dropout.forward(this.c_proj.forward(a));
    }
    const q = splitHeads(F.slice(qkv, 2, 0, C), H);
    const kNew = splitHeads(F.slice(qkv, 2, C, 2 * C), H);
    const vNew = splitHeads(F.slice(qkv, 2, 2 * C, 3 * C), H);
    const { k, v } = extendKV(this.layer, kNew.contiguous(), vNew.contiguous(), inputs);
    const mask = keyMask(B, k.shape[2]!, inputs);
    const a = F.attention(q, k, v, { causal: true, keyMask: mask, scale });
    return this.resid_dropout.forward(this.c_proj.forward(mergeHeads(a)));
  }
}

class GPT2MLP extends Module {
  c_fc: LinearLike;
  c_proj: LinearLike;
  dropout: Dropout;
  constructor(readonly cfg: GPT2Config) {
    super();
    const C = cfg.hiddenSize;
    const inner = cfg.innerSize;
    this.c_fc = this.module('c_fc', new Linear(C, inner, { layout: 'in_out' }));
    this.c_proj = this.module('c_proj', new Linear(inner, C, { layout: 'in_out' }));
    this.dropout = this.module('dropout', new Dropout(cfg.residDropout));
  }
  forward(x: Tensor): Tensor {
    const h = activate(this.c_fc.forward(x), this.cfg.activation);
    return this.dropout.forward(this.c_proj.forward(h));
  }
}

class GPT2Block extends Module {
  ln_1: LayerNorm;
  attn: GPT2Attention;
  ln_2: LayerNorm;
  mlp: GPT2MLP;
  constructor(cfg: GPT2Config, layer: number) {
    super();
    this.ln_1 = this.module('ln_1', new LayerNorm(cfg.hiddenSize, cfg.layerNormEps));
    this.attn = this.module('attn', new GPT2Attention(cfg, layer));
    this.ln_2 = this.module('ln_2', new LayerNorm(cfg.hiddenSize, cfg.layerNormEps));
    this.mlp = this.module('mlp', new GPT2MLP(cfg));
  }
  forward(x: Tensor, inputs: ModelInputs, pack: PackedBatch | null): Tensor {
    const h = F.add(x, this.attn.forward(this.ln_1.forward(x), inputs, pack));
    return F.add(h, this.mlp.forward(this.ln_2.forward(h)));
  }
  /** The block's output at packed rows `last` [S] (each its sequence's last row) only: [S, C]. */
  forwardLastRows(x: Tensor, pack: PackedBatch, last: Tensor<'i32'>): Tensor {
    const h = F.add(F.gatherRows(x, last), this.attn.forwardLastRows(this.ln_1.forward(x), pack));
    return F.add(h, this.mlp.forward(this.ln_2.forward(h)));
  }
}

/** The GPT-2 trunk (transformers' GPT2Model, saved under the `transformer.` prefix). */
export class GPT2Model extends Module {
  wte: Embedding;
  wpe: Embedding;
  drop: Dropout;
  h: GPT2Block[] = [];
  ln_f: LayerNorm;
  constructor(readonly cfg: GPT2Config) {
    super();
    this.wte = this.module('wte', new Embedding(cfg.vocabSize, cfg.hiddenSize));
    this.wpe = this.module('wpe', new Embedding(cfg.maxPositions, cfg.hiddenSize, { std: 0.01 }));
    this.drop = this.module('drop', new Dropout(cfg.embdDropout));
    const hList = this.module('h', new ModuleList());
    for (let i = 0; i < cfg.numLayers; i++) this.h.push(hList.add(new GPT2Block(cfg, i)));
    this.ln_f = this.module('ln_f', new LayerNorm(cfg.hiddenSize, cfg.layerNormEps));
  }
  forward(inputs: ModelInputs): Tensor<'f32'> {
    const t = this.start(inputs);
    let x = t.x;
    for (const block of this.h) x = block.forward(x, inputs, t.pack);
    const hidden = this.finish(x, t);
    if (t.pack) { t.pack.rows?.dispose(); t.pack.offsets.dispose(); }
    return hidden;
  }

  /**
   * Sequence classification: the final hidden state of row rows[b] (an index into the flattened
   * [B*T]) of each sequence, pooled [B, C], and all final hidden states [B, T, C] on demand. When
   * the batch is packed and each row is its sequence's last real token (the classification
   * token, unless it was a trailing pad id) the last layer runs only what that token needs: keys
   * and values of every row, but attention, projection, MLP and norms of the B classified rows
   * alone (exact: with causal attention no other row of the last layer reaches them). `hidden()`
   * then runs the last layer on every row (once: callers keep it); call it in the forward's scope.
   */
  forwardPooled(inputs: ModelInputs, rows: Int32Array): { pooled: Tensor<'f32'>; hidden: () => Tensor<'f32'> } {
    const t = this.start(inputs);
    const last = t.pack ? lastPackedRows(t.pack, rows) : null;
    const C = this.cfg.hiddenSize;
    if (!t.pack || !last) {
      let x = t.x;
      for (const block of this.h) x = block.forward(x, inputs, t.pack);
      const hidden = this.finish(x, t);
      if (t.pack) { t.pack.rows?.dispose(); t.pack.offsets.dispose(); }
      const idx = tensor(rows, [rows.length], 'i32', hidden.device);
      return { pooled: F.gatherRows(F.reshape(hidden, [t.B * t.T, C]), idx), hidden: () => hidden };
    }
    const pack = t.pack;
    let x = t.x;
    for (const block of this.h.slice(0, -1)) x = block.forward(x, inputs, pack);
    const top = this.h[this.h.length - 1]!;
    const pooled = this.ln_f.forward(top.forwardLastRows(x, pack, tensor(last, [last.length], 'i32', x.device)));
    const below = x;
    return { pooled, hidden: () => this.finish(top.forward(below, inputs, pack), t) };
  }

  /** Embeddings + positions (+ dropout) of the batch: [B, T, C], or its packed rows [N, C]. */
  private start(inputs: ModelInputs): { x: Tensor; pack: PackedBatch | null; B: number; T: number } {
    const past = cachedLength(inputs);
    const P = inputs.prefix?.[0]?.k.shape[2] ?? 0;
    const T = inputs.inputsEmbeds ? inputs.inputsEmbeds.shape[1]! : inputs.inputIds!.shape[1]!;
    // positions index wpe [n_positions, C]: refuse before the lookup fails with an index error
    checkSequenceLength(this.cfg, P, past, T, 'n_positions');
    const B = inputs.inputsEmbeds ? inputs.inputsEmbeds.shape[0]! : inputs.inputIds!.shape[0]!;
    const device = inputs.inputsEmbeds?.device ?? inputs.inputIds!.device;
    // prefix tuning: the real tokens' positions start after the virtual ones (as with PEFT)
    const pos = positionIds(B, T, inputs.attentionMask, past, device, P);
    // where the device has the packed attention kernel the layers run on the real rows only
    const pack = packBatch(inputs, B, T, device);
    if (!pack?.rows) {
      const emb = inputs.inputsEmbeds ?? this.wte.forward(inputs.inputIds!);
      const x = this.drop.forward(F.add(emb, this.wpe.forward(pos))); // [B, T, C]
      return { x: pack ? F.reshape(x, [B * T, this.cfg.hiddenSize]) : x, pack, B, T };
    }
    const C = this.cfg.hiddenSize;
    const emb = inputs.inputsEmbeds ? F.gatherRows(F.reshape(inputs.inputsEmbeds, [B * T, C]), pack.rows) : this.wte.forward(packI32(inputs.inputIds!, pack));
    return { x: this.drop.forward(F.add(emb, this.wpe.forward(packI32(pos, pack)))), pack, B, T }; // [N, C]
  }

  /** ln_f, and the packed rows back to [B, T, C] (zero at padding). */
  private finish(x: Tensor, t: { pack: PackedBatch | null; B: number; T: number }): Tensor<'f32'> {
    const h = this.ln_f.forward(x);
    if (!t.pack) return h;
    const C = this.cfg.hiddenSize;
    return F.reshape(t.pack.rows ? F.scatterRows(h, t.pack.rows, t.B * t.T) : h, [t.B, t.T, C]) as Tensor<'f32'>;
  }
}

/**
 * GPT-2 with a task head: the LM head (tied to wte, or `lm_head` [V, C] when
 * tie_word_embeddings is false), `score` [labels, C] (no bias) on the last real token, or a
 * token classifier after dropout.
 * @example const { model } = loadPretrainedSync('models/tunekit-gpt2-small'); model.forward({ inputIds }).logits // [B, T, V]
 */
export class GPT2 extends Module implements PretrainedModel {
  transformer: GPT2Model;
  lm_head: LinearLike | null = null;
  score: LinearLike | null = null;
  dropout: Dropout | null = null;
  classifier: LinearLike | null = null;
  constructor(readonly config: GPT2Config, readonly task: Task) {
    super();
    checkParameterBudget('gpt2', gpt2ParameterShapes(config, task)); // before allocating anything
    this.transformer = this.module('transformer', new GPT2Model(config));
    if (task === 'seq_cls') this.score = this.module('score', new Linear(config.hiddenSize, config.numLabels, { bias: false }));
    if (task === 'token_cls') {
      this.dropout = this.module('dropout', new Dropout(config.classifierDropout));
      this.classifier = this.module('classifier', new Linear(config.hiddenSize, config.numLabels));
    }
    if (task !== 'seq_cls' && task !== 'token_cls' && !config.tieWordEmbeddings) {
      this.lm_head = this.module('lm_head', new Linear(config.hiddenSize, config.vocabSize, { bias: false }));
    }
  }
  tokenEmbeddings(): Tensor {
    return this.transformer.wte.weight;
  }
  embedTokens(ids: Tensor<'i32'>): Tensor<'f32'> {
    return this.transformer.wte.forward(ids);
  }
  forward(inputs: ModelInputs): ModelOutput {
    if (this.task === 'seq_cls') {
      const lead = inputs.inputsEmbeds ?? inputs.inputIds!;
      const [B, T] = lead.shape as [number, number];
      const rows = lastTokenIndices(B, T, inputs.attentionMask, inputs.inputsEmbeds ? null : inputs.inputIds, this.config.padTokenId);
      const { pooled, hidden } = this.transformer.forwardPooled(inputs, rows);
      // `hidden` on first read: the classification alone does not need the last layer's other rows
      return withLazyHidden(this.score!.forward(pooled), hidden);
    }
    const hidden = this.transformer.forward(inputs);
    if (this.task === 'token_cls') return { logits: this.classifier!.forward(this.dropout!.forward(hidden)), hidden };
    if (this.lm_head) return { logits: this.lm_head.forward(hidden), hidden };
    // tied head: logits = h wte^T
    return { logits: F.matmul(hidden, this.transformer.wte.weight, { transB: true }), hidden };
  }
}

registerArchitecture('gpt2', {
  parseConfig: parseGPT2Config,
  build: (config, task) => new GPT2(config as GPT2Config, task),
  parameterShapes: (config, task) => gpt2ParameterShapes(config as GPT2Config, task),
  mapKey(key, task) {
    if (/\.attn\.(bias|masked_bias)$/.test(key)) return null; // causal-mask buffers of old files
    // the LM head: a parameter when untied; a tied model has none, so the key is listed as unused
    if (key === 'lm_head.weight') return task === 'seq_cls' || task === 'token_cls' ? null : key;
    if (key.startsWith('score.') || key.startsWith('classifier.')) return task === 'seq_cls' || task === 'token_cls' ? key : null;
    return key.startsWith('transformer.') ? key : `transformer.${key}`;
  },
  saveKey: (name) => name,
  className: (task) => (task === 'seq_cls' ? 'GPT2ForSequenceClassification' : task === 'token_cls' ? 'GPT2ForTokenClassification' : 'GPT2LMHeadModel'),
});

/**
 * GPT-2 (transformers' GPT2LMHeadModel / GPT2ForSequenceClassification / GPT2ForTokenClassification).
 * Conv1D weights are kept in the checkpoint's [in, out] layout; the LM head is tied to wte;
 * activation gelu_new (tanh approximation); LayerNorm eps from config (1e-5).
 * Attention-probability dropout (attn_pdrop) is not applied: the fused attention kernel has none.
 */
import { Module, ModuleList } from '../nn/module.js';
import { Linear, Embedding, LayerNorm, Dropout, type LinearLike } from '../nn/layers.js';
import { Tensor } from '../tensor/tensor.js';
import * as F from '../autograd/ops.js';
import { registerArchitecture } from './registry.js';
import {
  type ModelConfig, type ModelInputs, type ModelOutput, type PretrainedModel, type Task,
  positionIds, lastTokenRows, splitHeads, mergeHeads, extendKV, cachedLength, keyMask, field, numLabelsOf,
} from './common.js';

export interface GPT2Config extends ModelConfig {
  layerNormEps: number;
  residDropout: number;
  embdDropout: number;
  activation: 'tanh' | 'erf';
}

export function parseGPT2Config(raw: Record<string, unknown>): GPT2Config {
  const hidden = field<number>(raw, ['n_embd', 'hidden_size']);
  const heads = field<number>(raw, ['n_head', 'num_attention_heads']);
  const act = field<string>(raw, ['activation_function'], 'gelu_new');
  return {
    modelType: 'gpt2',
    vocabSize: field(raw, ['vocab_size']),
    hiddenSize: hidden,
    numLayers: field(raw, ['n_layer', 'num_hidden_layers']),
    numHeads: heads,
    numKvHeads: heads,
    headDim: hidden / heads,
    maxPositions: field(raw, ['n_positions', 'max_position_embeddings'], 1024),
    numLabels: numLabelsOf(raw),
    padTokenId: (raw.pad_token_id as number | undefined) ?? null,
    bosTokenId: (raw.bos_token_id as number) ?? null,
    eosTokenId: (raw.eos_token_id as number) ?? null,
    tieWordEmbeddings: (raw.tie_word_embeddings as boolean) ?? true,
    layerNormEps: field(raw, ['layer_norm_epsilon'], 1e-5),
    residDropout: field(raw, ['resid_pdrop'], 0.1),
    embdDropout: field(raw, ['embd_pdrop'], 0.1),
    activation: act === 'gelu' ? 'erf' : 'tanh',
    raw,
  };
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
  forward(x: Tensor, inputs: ModelInputs): Tensor {
    const [B, T, C] = x.shape as [number, number, number];
    const H = this.cfg.numHeads;
    const qkv = this.c_attn.forward(x); // [B, T, 3C]
    if (!inputs.cache && !inputs.prefix) {
      // no KV cache or prefix to join: attend straight from the packed projection (fewer copies)
      const a = F.qkvAttention(qkv, H, { causal: true, keyMask: keyMask(B, T, inputs) });
      return this.resid_dropout.forward(this.c_proj.forward(a));
    }
    const q = splitHeads(F.slice(qkv, 2, 0, C), H);
    const kNew = splitHeads(F.slice(qkv, 2, C, 2 * C), H);
    const vNew = splitHeads(F.slice(qkv, 2, 2 * C, 3 * C), H);
    const { k, v } = extendKV(this.layer, kNew.contiguous(), vNew.contiguous(), inputs);
    const mask = keyMask(B, k.shape[2]!, inputs);
    const a = F.attention(q, k, v, { causal: true, keyMask: mask });
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
    const inner = (cfg.raw.n_inner as number | null) ?? 4 * C;
    this.c_fc = this.module('c_fc', new Linear(C, inner, { layout: 'in_out' }));
    this.c_proj = this.module('c_proj', new Linear(inner, C, { layout: 'in_out' }));
    this.dropout = this.module('dropout', new Dropout(cfg.residDropout));
  }
  forward(x: Tensor): Tensor {
    const h = F.gelu(this.c_fc.forward(x), this.cfg.activation);
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
  forward(x: Tensor, inputs: ModelInputs): Tensor {
    const h = F.add(x, this.attn.forward(this.ln_1.forward(x), inputs));
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
    const emb = inputs.inputsEmbeds ?? this.wte.forward(inputs.inputIds!);
    const [B, T] = emb.shape as [number, number, number];
    const past = cachedLength(inputs);
    const pos = positionIds(B, T, inputs.attentionMask, past);
    // prefix tuning: the real tokens' positions start after the virtual ones (as with PEFT)
    const P = inputs.prefix?.[0]?.k.shape[2] ?? 0;
    if (P > 0) {
      const d = pos.data() as Int32Array; // in-place edit of the positions tensor
      for (let i = 0; i < d.length; i++) d[i] = d[i]! + P;
    }
    let x: Tensor = this.drop.forward(F.add(emb, this.wpe.forward(pos)));
    for (const block of this.h) x = block.forward(x, inputs);
    return this.ln_f.forward(x);
  }
}

/** GPT-2 with a task head: tied LM head, `score` [labels, C] (no bias) or a token classifier. */
export class GPT2 extends Module implements PretrainedModel {
  transformer: GPT2Model;
  score: LinearLike | null = null;
  classifier: LinearLike | null = null;
  constructor(readonly config: GPT2Config, readonly task: Task) {
    super();
    this.transformer = this.module('transformer', new GPT2Model(config));
    if (task === 'seq_cls') this.score = this.module('score', new Linear(config.hiddenSize, config.numLabels, { bias: false }));
    if (task === 'token_cls') this.classifier = this.module('classifier', new Linear(config.hiddenSize, config.numLabels));
  }
  tokenEmbeddings(): Tensor {
    return this.transformer.wte.weight;
  }
  embedTokens(ids: Tensor<'i32'>): Tensor<'f32'> {
    return this.transformer.wte.forward(ids);
  }
  forward(inputs: ModelInputs): ModelOutput {
    const hidden = this.transformer.forward(inputs);
    const [B, T, C] = hidden.shape as [number, number, number];
    if (this.task === 'seq_cls') {
      const rows = lastTokenRows(B, T, inputs.attentionMask);
      const pooled = F.gatherRows(F.reshape(hidden, [B * T, C]), rows);
      return { logits: this.score!.forward(pooled), hidden };
    }
    if (this.task === 'token_cls') return { logits: this.classifier!.forward(hidden), hidden };
    // tied head: logits = h wte^T
    return { logits: F.matmul(hidden, this.transformer.wte.weight, { transB: true }), hidden };
  }
}

registerArchitecture('gpt2', {
  parseConfig: parseGPT2Config,
  build: (config, task) => new GPT2(config as GPT2Config, task),
  mapKey(key, task) {
    if (/\.attn\.(bias|masked_bias)$/.test(key)) return null; // causal-mask buffers of old files
    if (key === 'lm_head.weight') return null; // tied to wte
    if (key.startsWith('score.') || key.startsWith('classifier.')) return task === 'seq_cls' || task === 'token_cls' ? key : null;
    return key.startsWith('transformer.') ? key : `transformer.${key}`;
  },
  saveKey: (name) => name,
  className: (task) => (task === 'seq_cls' ? 'GPT2ForSequenceClassification' : task === 'token_cls' ? 'GPT2ForTokenClassification' : 'GPT2LMHeadModel'),
});

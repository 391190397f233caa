/**
 * BERT (transformers' BertModel / BertForSequenceClassification / BertForTokenClassification).
 * Embeddings word + absolute position + token type, post-LayerNorm encoder layers with
 * bidirectional attention under the padding mask, the intermediate activation, and the pooler
 * (dense + tanh on [CLS]) for sequence classification. nn.Linear weights are [out, in].
 * The masked-LM head (`cls.*`) is not built: its keys are ignored when loading.
 *
 * config.json fields, as transformers 5 reads them (configuration_bert.py, modeling_bert.py):
 * sizes (vocab_size, hidden_size, num_hidden_layers, num_attention_heads, intermediate_size,
 * max_position_embeddings, type_vocab_size) are integers within CONFIG_LIMITS; hidden_act is any
 * ACT2FN name lib/nn/activation.ts computes; layer_norm_eps; is_decoder (true: causal attention,
 * as BertAttention(is_causal=config.is_decoder)); hidden_dropout_prob and classifier_dropout are
 * applied in training.
 * Refused: position_embedding_type other than 'absolute' (transformers 5 no longer reads it and
 * would run a relative-position checkpoint with absolute positions, silently computing something
 * else than the model was trained with) and add_cross_attention true (an encoder-decoder layer).
 * Not applied: attention_probs_dropout_prob (the fused attention kernel has no probability
 * dropout), a training-only difference: eval-mode logits are unaffected.
 */
import { Module, ModuleList } from '../nn/module.js';
import { Linear, Embedding, LayerNorm, Dropout, type LinearLike } from '../nn/layers.js';
import { activate, parseActivation, type ActivationName } from '../nn/activation.js';
import { Tensor } from '../tensor/tensor.js';
import { tensor, zeros } from '../tensor/creation.js';
import { TunekitError } from '../errors.js';
import * as F from '../autograd/ops.js';
import { registerArchitecture } from './registry.js';
import {
  type ModelConfig, type ModelInputs, type ModelOutput, type PretrainedModel, type Task, type ParameterShapes,
  splitHeads, mergeHeads, extendKV, keyMask, numLabelsOf,
  configObject, sizeField, numberField, dropoutField, boolField, tokenIdField, refuseUnless, checkParameterBudget, checkSequenceLength,
} from './common.js';

/** The intermediate activation: a transformers ACT2FN name (see lib/nn/activation.ts). */
export type BertActivation = ActivationName;

export interface BertConfig extends ModelConfig {
  intermediateSize: number;
  typeVocabSize: number;
  layerNormEps: number;
  hiddenDropout: number;
  classifierDropout: number;
  activation: BertActivation;
  /** causal self-attention (is_decoder) */
  isDecoder: boolean;
}

/**
 * Parses a BERT config.json; every field that changes the numbers is checked (see the file header).
 * @example const cfg = parseBertConfig({ model_type: 'bert', vocab_size: 30522, hidden_size: 768, num_hidden_layers: 12, num_attention_heads: 12, intermediate_size: 3072 });
 */
export function parseBertConfig(rawIn: Record<string, unknown>): BertConfig {
  const raw = configObject(rawIn);
  const vocab = sizeField(raw, ['vocab_size'], 'vocab', 30522);
  const hidden = sizeField(raw, ['hidden_size'], 'width', 768);
  const heads = sizeField(raw, ['num_attention_heads'], 'heads', 12);
  if (hidden % heads !== 0) throw new TunekitError('ERR_CONFIG', `config.json: hidden_size ${hidden} is not divisible by num_attention_heads ${heads}`);
  const pet = raw.position_embedding_type;
  if (pet !== undefined && pet !== null && pet !== 'absolute') {
    throw new TunekitError('ERR_CONFIG', `config.json: position_embedding_type '${String(pet)}' is not supported (only 'absolute'; transformers 5 ignores the field and would compute absolute positions for a checkpoint trained otherwise)`);
  }
  refuseUnless(raw, 'add_cross_attention', [undefined, null, false], 'BERT cross-attention layers (encoder-decoder use) are not built by tunekit');
  dropoutField(raw, ['attention_probs_dropout_prob'], 0.1); // checked; not applied (see the header)
  const hiddenDropout = dropoutField(raw, ['hidden_dropout_prob'], 0.1);
  const positions = sizeField(raw, ['max_position_embeddings'], 'positions', 512);
  return {
    modelType: 'bert',
    vocabSize: vocab,
    hiddenSize: hidden,
    numLayers: sizeField(raw, ['num_hidden_layers'], 'layers', 12),
    numHeads: heads,
    numKvHeads: heads,
    headDim: hidden / heads,
    maxPositions: positions,
    maxSequenceLength: positions,
    numLabels: numLabelsOf(raw),
    padTokenId: tokenIdField(raw, 'pad_token_id', vocab, 0),
    bosTokenId: tokenIdField(raw, 'bos_token_id', vocab, null),
    eosTokenId: tokenIdField(raw, 'eos_token_id', vocab, null),
    tieWordEmbeddings: boolField(raw, ['tie_word_embeddings'], true),
    intermediateSize: sizeField(raw, ['intermediate_size'], 'width', 3072),
    typeVocabSize: sizeField(raw, ['type_vocab_size'], 'types', 2),
    layerNormEps: numberField(raw, ['layer_norm_eps'], 1e-12, { min: 0 }),
    hiddenDropout,
    classifierDropout: dropoutField(raw, ['classifier_dropout'], hiddenDropout),
    activation: parseActivation('hidden_act', raw.hidden_act === undefined ? 'gelu' : raw.hidden_act),
    isDecoder: boolField(raw, ['is_decoder'], false),
    raw,
  };
}

/**
 * Every parameter a BERT of this config and task has, name -> shape (no allocation).
 * @example bertParameterShapes(cfg, 'seq_cls').at(-1) // ['classifier.bias', [numLabels]]
 */
export function bertParameterShapes(cfg: BertConfig, task: Task): ParameterShapes {
  const C = cfg.hiddenSize, I = cfg.intermediateSize, L = cfg.numLabels;
  const out: ParameterShapes = [
    ['bert.embeddings.word_embeddings.weight', [cfg.vocabSize, C]],
    ['bert.embeddings.position_embeddings.weight', [cfg.maxPositions, C]],
    ['bert.embeddings.token_type_embeddings.weight', [cfg.typeVocabSize, C]],
    ['bert.embeddings.LayerNorm.weight', [C]], ['bert.embeddings.LayerNorm.bias', [C]],
  ];
  for (let i = 0; i < cfg.numLayers; i++) {
    const l = `bert.encoder.layer.${i}`;
    out.push(
      [`${l}.attention.self.query.weight`, [C, C]], [`${l}.attention.self.query.bias`, [C]],
      [`${l}.attention.self.key.weight`, [C, C]], [`${l}.attention.self.key.bias`, [C]],
      [`${l}.attention.self.value.weight`, [C, C]], [`${l}.attention.self.value.bias`, [C]],
      [`${l}.attention.output.dense.weight`, [C, C]], [`${l}.attention.output.dense.bias`, [C]],
      [`${l}.attention.output.LayerNorm.weight`, [C]], [`${l}.attention.output.LayerNorm.bias`, [C]],
      [`${l}.intermediate.dense.weight`, [I, C]], [`${l}.intermediate.dense.bias`, [I]],
      [`${l}.output.dense.weight`, [C, I]], [`${l}.output.dense.bias`, [C]],
      [`${l}.output.LayerNorm.weight`, [C]], [`${l}.output.LayerNorm.bias`, [C]],
    );
  }
  if (task !== 'token_cls') out.push(['bert.pooler.dense.weight', [C, C]], ['bert.pooler.dense.bias', [C]]);
  if (task === 'seq_cls' || task === 'token_cls') out.push(['classifier.weight', [L, C]], ['classifier.bias', [L]]);
  return out;
}

class BertEmbeddings extends Module {
  word_embeddings: Embedding;
  position_embeddings: Embedding;
  token_type_embeddings: Embedding;
  LayerNorm: LayerNorm;
  dropout: Dropout;
  constructor(readonly cfg: BertConfig) {
    super();
    this.word_embeddings = this.module('word_embeddings', new Embedding(cfg.vocabSize, cfg.hiddenSize));
    this.position_embeddings = this.module('position_embeddings', new Embedding(cfg.maxPositions, cfg.hiddenSize));
    this.token_type_embeddings = this.module('token_type_embeddings', new Embedding(cfg.typeVocabSize, cfg.hiddenSize));
    this.LayerNorm = this.module('LayerNorm', new LayerNorm(cfg.hiddenSize, cfg.layerNormEps));
    this.dropout = this.module('dropout', new Dropout(cfg.hiddenDropout));
  }
  forward(inputs: ModelInputs): Tensor {
    const T = inputs.inputsEmbeds ? inputs.inputsEmbeds.shape[1]! : inputs.inputIds!.shape[1]!;
    // prefix tuning: transformers' BertModel starts positions after the past key/values PEFT
    // passes (past_key_values_length), so the real tokens sit at P..P+T-1
    const P = inputs.prefix?.[0]?.k.shape[2] ?? 0;
    // positions index position_embeddings [max_position_embeddings, C]: refuse before the lookup fails
    checkSequenceLength(this.cfg, P, 0, T, 'max_position_embeddings');
    const emb = inputs.inputsEmbeds ?? this.word_embeddings.forward(inputs.inputIds!);
    const B = emb.shape[0]!;
    // absolute positions P..P+T-1 for every row (transformers' default, whatever the padding)
    const pos = new Int32Array(B * T);
    for (let b = 0; b < B; b++) for (let t = 0; t < T; t++) pos[b * T + t] = P + t;
    const types = inputs.tokenTypeIds ?? (zeros([B, T], 'i32', emb.device) as Tensor<'i32'>);
    if (types.shape[0] !== B || types.shape[1] !== T) {
      throw new TunekitError('ERR_SHAPE', `BERT: token_type_ids are [${types.shape}] but the input is [${B}, ${T}]`);
    }
    let x = F.add(emb, this.position_embeddings.forward(tensor(pos, [B, T], 'i32', emb.device)));
    x = F.add(x, this.token_type_embeddings.forward(types));
    return this.dropout.forward(this.LayerNorm.forward(x));
  }
}

class BertSelfAttention extends Module {
  query: LinearLike;
  key: LinearLike;
  value: LinearLike;
  constructor(readonly cfg: BertConfig, readonly layer: number) {
    super();
    const C = cfg.hiddenSize;
    this.query = this.module('query', new Linear(C, C));
    this.key = this.module('key', new Linear(C, C));
    this.value = this.module('value', new Linear(C, C));
  }
  forward(x: Tensor, inputs: ModelInputs): Tensor {
    const B = x.shape[0]!;
    const H = this.cfg.numHeads;
    const q = splitHeads(this.query.forward(x), H);
    const kNew = splitHeads(this.key.forward(x), H).contiguous();
    const vNew = splitHeads(this.value.forward(x), H).contiguous();
    // prefixes (prefix tuning) are joined here; BERT has no KV cache
    const { k, v } = extendKV(this.layer, kNew, vNew, { ...inputs, cache: null });
    const mask = keyMask(B, k.shape[2]!, inputs);
    return mergeHeads(F.attention(q, k, v, { causal: this.cfg.isDecoder, keyMask: mask }));
  }
}

/** dense + dropout + LayerNorm(residual + x), used after attention and after the MLP. */
class BertOutput extends Module {
  dense: LinearLike;
  LayerNorm: LayerNorm;
  dropout: Dropout;
  constructor(cfg: BertConfig, inFeatures: number) {
    super();
    this.dense = this.module('dense', new Linear(inFeatures, cfg.hiddenSize));
    this.LayerNorm = this.module('LayerNorm', new LayerNorm(cfg.hiddenSize, cfg.layerNormEps));
    this.dropout = this.module('dropout', new Dropout(cfg.hiddenDropout));
  }
  forward(x: Tensor, residual: Tensor): Tensor {
    return this.LayerNorm.forward(F.add(this.dropout.forward(this.dense.forward(x)), residual));
  }
}

class BertAttention extends Module {
  self: BertSelfAttention;
  output: BertOutput;
  constructor(cfg: BertConfig, layer: number) {
    super();
    this.self = this.module('self', new BertSelfAttention(cfg, layer));
    this.output = this.module('output', new BertOutput(cfg, cfg.hiddenSize));
  }
  forward(x: Tensor, inputs: ModelInputs): Tensor {
    return this.output.forward(this.self.forward(x, inputs), x);
  }
}

class BertIntermediate extends Module {
  dense: LinearLike;
  constructor(readonly cfg: BertConfig) {
    super();
    this.dense = this.module('dense', new Linear(cfg.hiddenSize, cfg.intermediateSize));
  }
  forward(x: Tensor): Tensor {
    return activate(this.dense.forward(x), this.cfg.activation);
  }
}

class BertLayer extends Module {
  attention: BertAttention;
  intermediate: BertIntermediate;
  output: BertOutput;
  constructor(cfg: BertConfig, layer: number) {
    super();
    this.attention = this.module('attention', new BertAttention(cfg, layer));
    this.intermediate = this.module('intermediate', new BertIntermediate(cfg));
    this.output = this.module('output', new BertOutput(cfg, cfg.intermediateSize));
  }
  forward(x: Tensor, inputs: ModelInputs): Tensor {
    const a = this.attention.forward(x, inputs);
    return this.output.forward(this.intermediate.forward(a), a);
  }
}

class BertEncoder extends Module {
  layer: BertLayer[] = [];
  constructor(cfg: BertConfig) {
    super();
    const list = this.module('layer', new ModuleList());
    for (let i = 0; i < cfg.numLayers; i++) this.layer.push(list.add(new BertLayer(cfg, i)));
  }
  forward(x: Tensor, inputs: ModelInputs): Tensor {
    for (const l of this.layer) x = l.forward(x, inputs);
    return x;
  }
}

class BertPooler extends Module {
  dense: LinearLike;
  constructor(cfg: BertConfig) {
    super();
    this.dense = this.module('dense', new Linear(cfg.hiddenSize, cfg.hiddenSize));
  }
  /** tanh(dense(hidden[:, 0])) */
  forward(hidden: Tensor): Tensor<'f32'> {
    const [B, T, C] = hidden.shape as [number, number, number];
    const rows = new Int32Array(B);
    for (let b = 0; b < B; b++) rows[b] = b * T;
    const cls = F.gatherRows(F.reshape(hidden, [B * T, C]), tensor(rows, [B], 'i32', hidden.device));
    return F.tanh(this.dense.forward(cls));
  }
}

/** The BERT trunk (transformers' BertModel, saved under the `bert.` prefix). */
export class BertModel extends Module {
  embeddings: BertEmbeddings;
  encoder: BertEncoder;
  pooler: BertPooler | null;
  constructor(readonly cfg: BertConfig, addPoolingLayer = true) {
    super();
    this.embeddings = this.module('embeddings', new BertEmbeddings(cfg));
    this.encoder = this.module('encoder', new BertEncoder(cfg));
    this.pooler = addPoolingLayer ? this.module('pooler', new BertPooler(cfg)) : null;
  }
  /** last hidden states [B, T, C] */
  forward(inputs: ModelInputs): Tensor<'f32'> {
    if (inputs.cache) throw new TunekitError('ERR_VALUE', 'BERT is an encoder: it has no KV cache (pass cache: null)');
    return this.encoder.forward(this.embeddings.forward(inputs), inputs) as Tensor<'f32'>;
  }
}

/**
 * BERT with a task head: `classifier` on the pooled [CLS] output (seq_cls) or on every token
 * (token_cls); task 'base' returns the hidden states as logits.
 * @example
 * const { model } = loadPretrainedSync('models/tiny-bert', { task: 'seq_cls', numLabels: 2 });
 * const { logits } = model.forward({ inputIds: ids, attentionMask: mask }); // [B, 2]
 */
export class Bert extends Module implements PretrainedModel {
  bert: BertModel;
  dropout: Dropout | null = null;
  classifier: LinearLike | null = null;
  constructor(readonly config: BertConfig, readonly task: Task) {
    super();
    if (task === 'causal_lm') {
      throw new TunekitError('ERR_VALUE', "BERT has no causal LM head: use task 'seq_cls', 'token_cls' or 'base'");
    }
    checkParameterBudget('bert', bertParameterShapes(config, task)); // before allocating anything
    // transformers builds BertForTokenClassification without the pooler
    this.bert = this.module('bert', new BertModel(config, task !== 'token_cls'));
    if (task === 'seq_cls' || task === 'token_cls') {
      this.dropout = this.module('dropout', new Dropout(config.classifierDropout));
      this.classifier = this.module('classifier', new Linear(config.hiddenSize, config.numLabels));
    }
  }
  tokenEmbeddings(): Tensor {
    return this.bert.embeddings.word_embeddings.weight;
  }
  embedTokens(ids: Tensor<'i32'>): Tensor<'f32'> {
    return this.bert.embeddings.word_embeddings.forward(ids);
  }
  forward(inputs: ModelInputs): ModelOutput {
    const hidden = this.bert.forward(inputs);
    if (this.task === 'seq_cls') {
      const pooled = this.bert.pooler!.forward(hidden);
      return { logits: this.classifier!.forward(this.dropout!.forward(pooled)), hidden };
    }
    if (this.task === 'token_cls') return { logits: this.classifier!.forward(this.dropout!.forward(hidden)), hidden };
    return { logits: hidden, hidden };
  }
}

registerArchitecture('bert', {
  parseConfig: parseBertConfig,
  build: (config, task) => new Bert(config as BertConfig, task),
  parameterShapes: (config, task) => bertParameterShapes(config as BertConfig, task),
  mapKey(key, task) {
    if (key.endsWith('position_ids')) return null; // buffer in old files
    if (key.startsWith('cls.')) return null; // masked-LM / next-sentence heads: not built
    if (key.startsWith('classifier.')) return task === 'seq_cls' || task === 'token_cls' ? key : null;
    let k = key.startsWith('bert.') ? key : `bert.${key}`; // a bare BertModel saves without the prefix
    if (task === 'token_cls' && k.startsWith('bert.pooler.')) return null;
    // TF-era names
    k = k.replace(/\.LayerNorm\.gamma$/, '.LayerNorm.weight').replace(/\.LayerNorm\.beta$/, '.LayerNorm.bias');
    return k;
  },
  saveKey: (name) => name,
  className: (task) => (task === 'seq_cls' ? 'BertForSequenceClassification' : task === 'token_cls' ? 'BertForTokenClassification' : 'BertModel'),
});

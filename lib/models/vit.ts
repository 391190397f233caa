/**
 * ViT (transformers' ViTModel / ViTForImageClassification, Dosovitskiy et al. 2021).
 * Patches: a conv with kernel = stride = patch_size, flattened to [N, P, C]; a learned [CLS]
 * token prepended and learned position embeddings added; pre-LayerNorm encoder layers
 * (attention q/k/v/o projections, MLP fc1-activation-fc2, residuals); a final LayerNorm; the
 * classifier reads the [CLS] token. Module names are transformers 5's (`vit.layers.N.attention.q_proj`); files
 * carry the 4.x keys (`vit.encoder.layer.N.attention.attention.query`, ...), which transformers
 * 5.18 still writes and renames on load (conversion_mapping.py "ViTModel"): both are read, the
 * 4.x keys are written.
 *
 * config.json fields (configuration_vit.py): hidden_size, num_hidden_layers, num_attention_heads,
 * intermediate_size, hidden_act, layer_norm_eps (1e-12), image_size, patch_size, num_channels,
 * qkv_bias, hidden_dropout_prob (applied in training), num_labels / id2label.
 * Refused: head_dim other than hidden_size / num_attention_heads.
 * Not applied: attention_probs_dropout_prob (the fused attention kernel has no probability
 * dropout; training only, eval logits unaffected); encoder_stride (masked image modelling's
 * decoder, not built); pooler_output_size / pooler_act (ViTModel's pooler is not built: task
 * 'base' returns the final hidden states; its keys are ignored on load).
 * Images must be exactly image_size (interpolate_pos_encoding is not built).
 */
import { Module, ModuleList } from '../nn/module.js';
import { Linear, LayerNorm, Dropout, type LinearLike } from '../nn/layers.js';
import { Conv2d } from '../nn/conv.js';
import { activate, parseActivation, type ActivationName } from '../nn/activation.js';
import { Tensor } from '../tensor/tensor.js';
import { zeros } from '../tensor/creation.js';
import { uniformParam } from '../nn/init.js';
import { nextSeed } from '../nn/random.js';
import { TunekitError } from '../errors.js';
import * as F from '../autograd/ops.js';
import { registerArchitecture } from './registry.js';
import {
  type ModelConfig, type ModelInputs, type ModelOutput, type PretrainedModel, type Task, type ParameterShapes,
  configObject, sizeField, numberField, dropoutField, boolField, numLabelsOf, checkParameterBudget, splitHeads, mergeHeads,
} from './common.js';
import { checkImageTask, pixelsOf, noTokenEmbeddings, sizePairField, imageModelConfig } from './vision_common.js';

export interface ViTConfig extends ModelConfig {
  intermediateSize: number;
  activation: ActivationName;
  layerNormEps: number;
  imageSize: [number, number];
  patchSize: [number, number];
  numChannels: number;
  qkvBias: boolean;
  hiddenDropout: number;
  /** patches per image (image_size / patch_size, floored, per axis) */
  numPatches: number;
}

/**
 * Parses a ViT config.json; every field that changes the numbers is checked (file header).
 * @example parseViTConfig({ model_type: 'vit', hidden_size: 32, num_hidden_layers: 2, num_attention_heads: 4, intermediate_size: 64, image_size: 28, patch_size: 7 })
 */
export function parseViTConfig(rawIn: Record<string, unknown>): ViTConfig {
  const raw = configObject(rawIn);
  const hidden = sizeField(raw, ['hidden_size'], 'width', 768);
  const heads = sizeField(raw, ['num_attention_heads'], 'heads', 12);
  if (hidden % heads !== 0) throw new TunekitError('ERR_CONFIG', `config.json: hidden_size ${hidden} is not divisible by num_attention_heads ${heads}`);
  if (raw.head_dim !== undefined && raw.head_dim !== null && raw.head_dim !== hidden / heads) {
    throw new TunekitError('ERR_CONFIG', `config.json: head_dim ${JSON.stringify(raw.head_dim)} is not supported: tunekit's ViT uses hidden_size / num_attention_heads = ${hidden / heads}`);
  }
  const imageSize = sizePairField(raw, 'image_size', 224);
  const patchSize = sizePairField(raw, 'patch_size', 16);
  if (patchSize[0] > imageSize[0] || patchSize[1] > imageSize[1]) {
    throw new TunekitError('ERR_CONFIG', `config.json: patch_size ${JSON.stringify(raw.patch_size)} is larger than image_size ${JSON.stringify(raw.image_size)}`);
  }
  const numPatches = Math.floor(imageSize[0] / patchSize[0]) * Math.floor(imageSize[1] / patchSize[1]);
  dropoutField(raw, ['attention_probs_dropout_prob'], 0); // checked; not applied (see the header)
  const layers = sizeField(raw, ['num_hidden_layers'], 'layers', 12);
  return {
    ...imageModelConfig('vit', hidden, layers, numLabelsOf(raw), raw),
    numHeads: heads,
    numKvHeads: heads,
    headDim: hidden / heads,
    maxPositions: numPatches + 1,
    maxSequenceLength: numPatches + 1,
    intermediateSize: sizeField(raw, ['intermediate_size'], 'width', 3072),
    activation: parseActivation('hidden_act', raw.hidden_act === undefined ? 'gelu' : raw.hidden_act),
    layerNormEps: numberField(raw, ['layer_norm_eps'], 1e-12, { min: 0 }),
    imageSize,
    patchSize,
    numChannels: sizeField(raw, ['num_channels'], 'width', 3),
    qkvBias: boolField(raw, ['qkv_bias'], true),
    hiddenDropout: dropoutField(raw, ['hidden_dropout_prob'], 0),
    numPatches,
  };
}

/**
 * Every parameter a ViT of this config and task has, name -> shape (no allocation).
 * @example vitParameterShapes(cfg, 'image_cls').at(-1) // ['classifier.bias', [numLabels]]
 */
export function vitParameterShapes(cfg: ViTConfig, task: Task): ParameterShapes {
  const C = cfg.hiddenSize, I = cfg.intermediateSize;
  const out: ParameterShapes = [
    ['vit.embeddings.cls_token', [1, 1, C]],
    ['vit.embeddings.position_embeddings', [1, cfg.numPatches + 1, C]],
    ['vit.embeddings.patch_embeddings.projection.weight', [C, cfg.numChannels, cfg.patchSize[0], cfg.patchSize[1]]],
    ['vit.embeddings.patch_embeddings.projection.bias', [C]],
  ];
  for (let i = 0; i < cfg.numLayers; i++) {
    const l = `vit.layers.${i}`;
    for (const p of ['q_proj', 'k_proj', 'v_proj']) {
      out.push([`${l}.attention.${p}.weight`, [C, C]]);
      if (cfg.qkvBias) out.push([`${l}.attention.${p}.bias`, [C]]);
    }
    out.push(
      [`${l}.attention.o_proj.weight`, [C, C]], [`${l}.attention.o_proj.bias`, [C]],
      [`${l}.layernorm_before.weight`, [C]], [`${l}.layernorm_before.bias`, [C]],
      [`${l}.layernorm_after.weight`, [C]], [`${l}.layernorm_after.bias`, [C]],
      [`${l}.mlp.fc1.weight`, [I, C]], [`${l}.mlp.fc1.bias`, [I]],
      [`${l}.mlp.fc2.weight`, [C, I]], [`${l}.mlp.fc2.bias`, [C]],
    );
  }
  out.push(['vit.layernorm.weight', [C]], ['vit.layernorm.bias', [C]]);
  if (task === 'image_cls') out.push(['classifier.weight', [cfg.numLabels, C]], ['classifier.bias', [cfg.numLabels]]);
  return out;
}

class ViTPatchEmbeddings extends Module {
  projection: Conv2d;
  constructor(cfg: ViTConfig) {
    super();
    this.projection = this.module('projection', new Conv2d(cfg.numChannels, cfg.hiddenSize, cfg.patchSize, { stride: cfg.patchSize }));
  }
  /** [N, C_in, H, W] -> [N, P, C] */
  forward(x: Tensor): Tensor<'f32'> {
    const y = this.projection.forward(x); // [N, C, gh, gw]
    const [N, C, gh, gw] = y.shape as [number, number, number, number];
    return F.contiguous(F.transpose(F.reshape(y, [N, C, gh * gw]), 1, 2)) as Tensor<'f32'>;
  }
}

class ViTEmbeddings extends Module {
  cls_token: Tensor;
  position_embeddings: Tensor;
  patch_embeddings: ViTPatchEmbeddings;
  dropout: Dropout;
  constructor(readonly cfg: ViTConfig) {
    super();
    // transformers draws both from N(0, 1) then truncates with initializer_range; U(-a, a) with
    // the same std 0.02 serves as a fresh start (checkpoints overwrite them)
    const half = 0.02 * Math.sqrt(3);
    this.cls_token = this.param('cls_token', uniformParam([1, 1, cfg.hiddenSize], nextSeed(), -half, half));
    this.position_embeddings = this.param('position_embeddings', uniformParam([1, cfg.numPatches + 1, cfg.hiddenSize], nextSeed(), -half, half));
    this.patch_embeddings = this.module('patch_embeddings', new ViTPatchEmbeddings(cfg));
    this.dropout = this.module('dropout', new Dropout(cfg.hiddenDropout));
  }
  forward(x: Tensor): Tensor {
    const patches = this.patch_embeddings.forward(x);
    const N = patches.shape[0]!;
    // [CLS] for every image: broadcasting add onto zeros, so its gradient sums over the batch
    const cls = F.add(zeros([N, 1, this.cfg.hiddenSize], 'f32', patches.device), this.cls_token);
    const tokens = F.add(F.concat([cls, patches], 1), this.position_embeddings);
    return this.dropout.forward(tokens);
  }
}

class ViTAttention extends Module {
  q_proj: LinearLike;
  k_proj: LinearLike;
  v_proj: LinearLike;
  o_proj: LinearLike;
  constructor(readonly cfg: ViTConfig) {
    super();
    const C = cfg.hiddenSize;
    this.q_proj = this.module('q_proj', new Linear(C, C, { bias: cfg.qkvBias }));
    this.k_proj = this.module('k_proj', new Linear(C, C, { bias: cfg.qkvBias }));
    this.v_proj = this.module('v_proj', new Linear(C, C, { bias: cfg.qkvBias }));
    this.o_proj = this.module('o_proj', new Linear(C, C));
  }
  forward(x: Tensor): Tensor<'f32'> {
    const H = this.cfg.numHeads;
    const q = splitHeads(this.q_proj.forward(x), H).contiguous();
    const k = splitHeads(this.k_proj.forward(x), H).contiguous();
    const v = splitHeads(this.v_proj.forward(x), H).contiguous();
    return this.o_proj.forward(mergeHeads(F.attention(q, k, v, { causal: false })));
  }
}

class ViTMLP extends Module {
  fc1: LinearLike;
  fc2: LinearLike;
  constructor(readonly cfg: ViTConfig) {
    super();
    this.fc1 = this.module('fc1', new Linear(cfg.hiddenSize, cfg.intermediateSize));
    this.fc2 = this.module('fc2', new Linear(cfg.intermediateSize, cfg.hiddenSize));
  }
  forward(x: Tensor): Tensor<'f32'> {
    return this.fc2.forward(activate(this.fc1.forward(x), this.cfg.activation));
  }
}

class ViTLayer extends Module {
  attention: ViTAttention;
  layernorm_before: LayerNorm;
  layernorm_after: LayerNorm;
  mlp: ViTMLP;
  dropout: Dropout;
  constructor(cfg: ViTConfig) {
    super();
    this.attention = this.module('attention', new ViTAttention(cfg));
    this.layernorm_before = this.module('layernorm_before', new LayerNorm(cfg.hiddenSize, cfg.layerNormEps));
    this.layernorm_after = this.module('layernorm_after', new LayerNorm(cfg.hiddenSize, cfg.layerNormEps));
    this.mlp = this.module('mlp', new ViTMLP(cfg));
    this.dropout = this.module('dropout', new Dropout(cfg.hiddenDropout));
  }
  forward(x: Tensor): Tensor {
    const a = F.add(this.dropout.forward(this.attention.forward(this.layernorm_before.forward(x))), x);
    return F.add(this.dropout.forward(this.mlp.forward(this.layernorm_after.forward(a))), a);
  }
}

/** The ViT trunk (transformers' ViTModel without its pooler, saved under the `vit.` prefix). */
export class ViTModel extends Module {
  embeddings: ViTEmbeddings;
  layers: ViTLayer[] = [];
  layernorm: LayerNorm;
  constructor(readonly cfg: ViTConfig) {
    super();
    this.embeddings = this.module('embeddings', new ViTEmbeddings(cfg));
    const list = this.module('layers', new ModuleList());
    for (let i = 0; i < cfg.numLayers; i++) this.layers.push(list.add(new ViTLayer(cfg)));
    this.layernorm = this.module('layernorm', new LayerNorm(cfg.hiddenSize, cfg.layerNormEps));
  }
  /** final hidden states [N, 1 + P, C] */
  forward(pixels: Tensor): Tensor<'f32'> {
    let x = this.embeddings.forward(pixels);
    for (const l of this.layers) x = l.forward(x);
    return this.layernorm.forward(x);
  }
}

/**
 * ViT with an image-classification head on [CLS] (task 'image_cls'), or the trunk alone ('base':
 * the hidden states are the logits).
 * @example const { logits } = vit.forward({ pixelValues }); // [N, numLabels]
 */
export class ViT extends Module implements PretrainedModel {
  vit: ViTModel;
  classifier: LinearLike | null = null;
  constructor(readonly config: ViTConfig, readonly task: Task) {
    super();
    checkImageTask('vit', task);
    checkParameterBudget('vit', vitParameterShapes(config, task));
    this.vit = this.module('vit', new ViTModel(config));
    if (task === 'image_cls') this.classifier = this.module('classifier', new Linear(config.hiddenSize, config.numLabels));
  }
  tokenEmbeddings(): Tensor {
    return noTokenEmbeddings('vit');
  }
  embedTokens(): Tensor<'f32'> {
    return noTokenEmbeddings('vit');
  }
  forward(inputs: ModelInputs): ModelOutput {
    const x = pixelsOf(inputs, 'vit', this.config.numChannels, this.config.imageSize);
    const hidden = this.vit.forward(x);
    if (!this.classifier) return { logits: hidden, hidden };
    const [N, , C] = hidden.shape as [number, number, number];
    const cls = F.reshape(F.slice(hidden, 1, 0, 1), [N, C]);
    return { logits: this.classifier.forward(cls), hidden };
  }
}

/** transformers 4.x ViT key names -> 5.x (transformers' conversion_mapping.py, "ViTModel"). */
export function vitKeyFrom4x(key: string): string {
  return key
    .replace(/encoder\.layer\./, 'layers.')
    .replace('attention.attention.query', 'attention.q_proj')
    .replace('attention.attention.key', 'attention.k_proj')
    .replace('attention.attention.value', 'attention.v_proj')
    .replace('attention.output.dense', 'attention.o_proj')
    .replace('intermediate.dense', 'mlp.fc1')
    .replace('output.dense', 'mlp.fc2');
}

/**
 * Our (transformers 5 module) names -> the keys transformers 5.18 writes: save_pretrained
 * reverts its load-time renaming, so files keep the 4.x names (`vit.encoder.layer.N.attention.attention.query`).
 */
export function vitKeyTo4x(name: string): string {
  return name
    .replace(/^vit\.layers\./, 'vit.encoder.layer.')
    .replace('attention.q_proj', 'attention.attention.query')
    .replace('attention.k_proj', 'attention.attention.key')
    .replace('attention.v_proj', 'attention.attention.value')
    .replace('attention.o_proj', 'attention.output.dense')
    .replace('mlp.fc1', 'intermediate.dense')
    .replace('mlp.fc2', 'output.dense');
}

registerArchitecture('vit', {
  parseConfig: parseViTConfig,
  build: (config, task) => new ViT(config as ViTConfig, task),
  parameterShapes: (config, task) => vitParameterShapes(config as ViTConfig, task),
  mapKey(key, task) {
    if (key.startsWith('classifier.')) return task === 'image_cls' ? key : null;
    let k = key.startsWith('vit.') ? key : `vit.${key}`;
    if (k.startsWith('vit.pooler.') || k === 'vit.embeddings.mask_token') return null; // not built (see the header)
    k = vitKeyFrom4x(k);
    return k;
  },
  saveKey: (name) => vitKeyTo4x(name),
  className: (task) => (task === 'image_cls' ? 'ViTForImageClassification' : 'ViTModel'),
});

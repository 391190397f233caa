/**
 * ResNet (transformers' ResNetModel / ResNetForImageClassification, He et al. 2016), NCHW.
 * Stem: conv 7x7 stride 2 + BatchNorm + activation, max pool 3x3 stride 2; stages of basic
 * (two 3x3 convolutions) or bottleneck (1x1 reduce by 4, 3x3, 1x1) residual layers, a 1x1
 * convolution + BatchNorm shortcut where the shape changes; global average pool; the classifier
 * `classifier.1` (transformers' Sequential(Flatten, Linear)). Convolutions have no bias and pad
 * kernel // 2. The model is a trunk plus a replaceable head (timm's habit): task 'base' returns
 * the pooled features [N, C] as logits.
 *
 * config.json fields, as transformers 5 reads them (configuration_resnet.py): num_channels,
 * embedding_size, hidden_sizes and depths (lists of equal length), layer_type ('basic' |
 * 'bottleneck'), hidden_act (an ACT2FN name), downsample_in_first_stage, downsample_in_bottleneck,
 * num_labels / id2label. out_features / out_indices only select backbone outputs (not built; no
 * effect on the classifier). BatchNorm: eps 1e-5, momentum 0.1 (transformers' nn.BatchNorm2d).
 */
import { Module, ModuleList } from '../nn/module.js';
import { Linear, type LinearLike } from '../nn/layers.js';
import { Conv2d, BatchNorm2d, MaxPool2d, AdaptiveAvgPool2d } from '../nn/conv.js';
import { activate, parseActivation, type ActivationName } from '../nn/activation.js';
import { Tensor } from '../tensor/tensor.js';
import { TunekitError, describe } from '../errors.js';
import * as F from '../autograd/ops.js';
import { registerArchitecture } from './registry.js';
import { type ModelConfig, type ModelInputs, type ModelOutput, type PretrainedModel, type Task, type ParameterShapes, CONFIG_LIMITS, configObject, sizeField, boolField, numLabelsOf, checkParameterBudget } from './common.js';
import { checkImageTask, pixelsOf, noTokenEmbeddings, intListField, imageModelConfig } from './vision_common.js';

export interface ResNetConfig extends ModelConfig {
  numChannels: number;
  embeddingSize: number;
  hiddenSizes: number[];
  depths: number[];
  layerType: 'basic' | 'bottleneck';
  activation: ActivationName;
  downsampleInFirstStage: boolean;
  downsampleInBottleneck: boolean;
}

/**
 * Parses a ResNet config.json; every field that changes the numbers is checked (file header).
 * @example parseResNetConfig({ model_type: 'resnet', hidden_sizes: [8, 16], depths: [1, 1], layer_type: 'basic' })
 */
export function parseResNetConfig(rawIn: Record<string, unknown>): ResNetConfig {
  const raw = configObject(rawIn);
  const hiddenSizes = intListField(raw, 'hidden_sizes', [256, 512, 1024, 2048], CONFIG_LIMITS.width);
  const depths = intListField(raw, 'depths', [3, 4, 6, 3], CONFIG_LIMITS.layers);
  if (hiddenSizes.length !== depths.length) {
    throw new TunekitError('ERR_CONFIG', `config.json: hidden_sizes (${hiddenSizes.length} stages) and depths (${depths.length} stages) must have the same length`);
  }
  const layerType = raw.layer_type ?? 'bottleneck';
  if (layerType !== 'basic' && layerType !== 'bottleneck') {
    throw new TunekitError('ERR_CONFIG', `config.json: expected layer_type to be "basic" or "bottleneck" but received ${describe(layerType)}`);
  }
  if (layerType === 'bottleneck' && hiddenSizes.some((h) => Math.floor(h / 4) < 1)) {
    throw new TunekitError('ERR_CONFIG', `config.json: bottleneck layers reduce hidden_sizes by 4; ${JSON.stringify(hiddenSizes)} has a stage under 4 channels`);
  }
  const numLayers = depths.reduce((a, b) => a + b, 0);
  if (numLayers > CONFIG_LIMITS.layers) throw new TunekitError('ERR_CONFIG', `config.json: depths add up to ${numLayers} layers, over the limit ${CONFIG_LIMITS.layers}`);
  return {
    ...imageModelConfig('resnet', hiddenSizes.at(-1)!, numLayers, numLabelsOf(raw), raw),
    numChannels: sizeField(raw, ['num_channels'], 'width', 3),
    embeddingSize: sizeField(raw, ['embedding_size'], 'width', 64),
    hiddenSizes,
    depths,
    layerType,
    activation: parseActivation('hidden_act', raw.hidden_act === undefined ? 'relu' : raw.hidden_act),
    downsampleInFirstStage: boolField(raw, ['downsample_in_first_stage'], false),
    downsampleInBottleneck: boolField(raw, ['downsample_in_bottleneck'], false),
  };
}

/** One residual layer's description: channels, stride, and whether it has a projection shortcut. */
interface LayerPlan {
  inC: number;
  outC: number;
  stride: number;
}

function stagePlans(cfg: ResNetConfig): LayerPlan[][] {
  const ins = [cfg.embeddingSize, ...cfg.hiddenSizes.slice(0, -1)];
  return cfg.hiddenSizes.map((outC, s) => {
    const stride = s === 0 ? (cfg.downsampleInFirstStage ? 2 : 1) : 2;
    return Array.from({ length: cfg.depths[s]! }, (_, l) => (l === 0 ? { inC: ins[s]!, outC, stride } : { inC: outC, outC, stride: 1 }));
  });
}

/** The conv layers (in, out, kernel) of one residual layer's main path, in order. */
function convLayersOf(cfg: ResNetConfig, p: LayerPlan): { inC: number; outC: number; k: number; stride: number; act: boolean }[] {
  if (cfg.layerType === 'basic') return [{ inC: p.inC, outC: p.outC, k: 3, stride: p.stride, act: true }, { inC: p.outC, outC: p.outC, k: 3, stride: 1, act: false }];
  const r = Math.floor(p.outC / 4);
  const inB = cfg.downsampleInBottleneck;
  return [
    { inC: p.inC, outC: r, k: 1, stride: inB ? p.stride : 1, act: true },
    { inC: r, outC: r, k: 3, stride: inB ? 1 : p.stride, act: true },
    { inC: r, outC: p.outC, k: 1, stride: 1, act: false },
  ];
}

/**
 * Every parameter a ResNet of this config and task has, name -> shape (no allocation).
 * @example resnetParameterShapes(cfg, 'image_cls').at(-1) // ['classifier.1.bias', [numLabels]]
 */
export function resnetParameterShapes(cfg: ResNetConfig, task: Task): ParameterShapes {
  const out: ParameterShapes = [];
  const convNorm = (prefix: string, inC: number, outC: number, k: number) => {
    out.push([`${prefix}.convolution.weight`, [outC, inC, k, k]], [`${prefix}.normalization.weight`, [outC]], [`${prefix}.normalization.bias`, [outC]]);
  };
  convNorm('resnet.embedder.embedder', cfg.numChannels, cfg.embeddingSize, 7);
  stagePlans(cfg).forEach((layers, s) => layers.forEach((p, l) => {
    const base = `resnet.encoder.stages.${s}.layers.${l}`;
    if (p.inC !== p.outC || p.stride !== 1) convNorm(`${base}.shortcut`, p.inC, p.outC, 1);
    convLayersOf(cfg, p).forEach((c, k) => convNorm(`${base}.layer.${k}`, c.inC, c.outC, c.k));
  }));
  if (task === 'image_cls') out.push(['classifier.1.weight', [cfg.numLabels, cfg.hiddenSizes.at(-1)!]], ['classifier.1.bias', [cfg.numLabels]]);
  return out;
}

/** conv (no bias, padding k // 2) + BatchNorm + optional activation: transformers' ResNetConvLayer. */
export class ResNetConvLayer extends Module {
  convolution: Conv2d;
  normalization: BatchNorm2d;
  constructor(inC: number, outC: number, kernel: number, stride: number, readonly activation: ActivationName | null) {
    super();
    this.convolution = this.module('convolution', new Conv2d(inC, outC, kernel, { stride, padding: Math.floor(kernel / 2), bias: false }));
    this.normalization = this.module('normalization', new BatchNorm2d(outC));
  }
  forward(x: Tensor): Tensor<'f32'> {
    const y = this.normalization.forward(this.convolution.forward(x));
    return this.activation ? activate(y, this.activation) : y;
  }
}

/** 1x1 conv (stride) + BatchNorm, projecting the residual when the shape changes. */
class ResNetShortCut extends Module {
  convolution: Conv2d;
  normalization: BatchNorm2d;
  constructor(inC: number, outC: number, stride: number) {
    super();
    this.convolution = this.module('convolution', new Conv2d(inC, outC, 1, { stride, bias: false }));
    this.normalization = this.module('normalization', new BatchNorm2d(outC));
  }
  forward(x: Tensor): Tensor<'f32'> {
    return this.normalization.forward(this.convolution.forward(x));
  }
}

class ResNetResidualLayer extends Module {
  shortcut: ResNetShortCut | null;
  layer: ResNetConvLayer[] = [];
  constructor(readonly cfg: ResNetConfig, p: LayerPlan) {
    super();
    this.shortcut = p.inC !== p.outC || p.stride !== 1 ? this.module('shortcut', new ResNetShortCut(p.inC, p.outC, p.stride)) : null;
    const list = this.module('layer', new ModuleList());
    // transformers builds these ResNetConvLayers with their default activation, relu, whatever
    // hidden_act is (hidden_act applies to the stem and after each residual sum)
    for (const c of convLayersOf(cfg, p)) this.layer.push(list.add(new ResNetConvLayer(c.inC, c.outC, c.k, c.stride, c.act ? 'relu' : null)));
  }
  forward(x: Tensor): Tensor<'f32'> {
    let h: Tensor = x;
    for (const l of this.layer) h = l.forward(h);
    const residual = this.shortcut ? this.shortcut.forward(x) : x;
    return activate(F.add(h, residual), this.cfg.activation);
  }
}

class ResNetStage extends Module {
  layers: ResNetResidualLayer[] = [];
  constructor(cfg: ResNetConfig, plans: LayerPlan[]) {
    super();
    const list = this.module('layers', new ModuleList());
    for (const p of plans) this.layers.push(list.add(new ResNetResidualLayer(cfg, p)));
  }
  forward(x: Tensor): Tensor {
    for (const l of this.layers) x = l.forward(x);
    return x;
  }
}

class ResNetEncoder extends Module {
  stages: ResNetStage[] = [];
  constructor(cfg: ResNetConfig) {
    super();
    const list = this.module('stages', new ModuleList());
    for (const plans of stagePlans(cfg)) this.stages.push(list.add(new ResNetStage(cfg, plans)));
  }
  forward(x: Tensor): Tensor {
    for (const s of this.stages) x = s.forward(x);
    return x;
  }
}

class ResNetEmbeddings extends Module {
  embedder: ResNetConvLayer;
  pooler: MaxPool2d;
  constructor(cfg: ResNetConfig) {
    super();
    this.embedder = this.module('embedder', new ResNetConvLayer(cfg.numChannels, cfg.embeddingSize, 7, 2, cfg.activation));
    this.pooler = this.module('pooler', new MaxPool2d(3, 2, 1));
  }
  forward(x: Tensor): Tensor<'f32'> {
    return this.pooler.forward(this.embedder.forward(x));
  }
}

/** The ResNet trunk (transformers' ResNetModel, saved under the `resnet.` prefix). */
export class ResNetModel extends Module {
  embedder: ResNetEmbeddings;
  encoder: ResNetEncoder;
  pooler: AdaptiveAvgPool2d;
  constructor(readonly cfg: ResNetConfig) {
    super();
    this.embedder = this.module('embedder', new ResNetEmbeddings(cfg));
    this.encoder = this.module('encoder', new ResNetEncoder(cfg));
    this.pooler = this.module('pooler', new AdaptiveAvgPool2d([1, 1]));
  }
  /** last feature map [N, C, h, w] and the pooled features [N, C] */
  forward(pixels: Tensor): { hidden: Tensor<'f32'>; pooled: Tensor<'f32'> } {
    const hidden = this.encoder.forward(this.embedder.forward(pixels)) as Tensor<'f32'>;
    const p = this.pooler.forward(hidden);
    return { hidden, pooled: F.reshape(p, [p.shape[0]!, p.shape[1]!]) };
  }
}

/** Wraps a Linear so that it is saved as `classifier.1` (transformers' Sequential(Flatten, Linear)). */
class ResNetClassifier extends Module {
  constructor(readonly head: LinearLike) {
    super();
    this.module('1', head);
  }
  /** the Linear (or its LoRA wrapper) in slot 1 */
  get linear(): LinearLike {
    return this.children().find(([n]) => n === '1')![1] as LinearLike;
  }
  forward(x: Tensor): Tensor<'f32'> {
    return this.linear.forward(x);
  }
}

/**
 * ResNet with an image-classification head (task 'image_cls'), or the trunk alone ('base': the
 * pooled features are the logits).
 * @example
 * const { model } = loadPretrainedSync('builtin:tunekit-resnet-digits', { task: 'image_cls', numLabels: 5 });
 * const { logits } = model.forward({ pixelValues }); // [N, 5]
 */
export class ResNet extends Module implements PretrainedModel {
  resnet: ResNetModel;
  classifier: ResNetClassifier | null = null;
  constructor(readonly config: ResNetConfig, readonly task: Task) {
    super();
    checkImageTask('resnet', task);
    checkParameterBudget('resnet', resnetParameterShapes(config, task)); // before allocating anything
    this.resnet = this.module('resnet', new ResNetModel(config));
    if (task === 'image_cls') this.classifier = this.module('classifier', new ResNetClassifier(new Linear(config.hiddenSizes.at(-1)!, config.numLabels)));
  }
  tokenEmbeddings(): Tensor {
    return noTokenEmbeddings('resnet');
  }
  embedTokens(): Tensor<'f32'> {
    return noTokenEmbeddings('resnet');
  }
  forward(inputs: ModelInputs): ModelOutput {
    const x = pixelsOf(inputs, 'resnet', this.config.numChannels);
    const { hidden, pooled } = this.resnet.forward(x);
    return { logits: this.classifier ? this.classifier.forward(pooled) : pooled, hidden };
  }
}

registerArchitecture('resnet', {
  parseConfig: parseResNetConfig,
  build: (config, task) => new ResNet(config as ResNetConfig, task),
  parameterShapes: (config, task) => resnetParameterShapes(config as ResNetConfig, task),
  mapKey(key, task) {
    if (key.startsWith('classifier.')) return task === 'image_cls' ? key : null;
    return key.startsWith('resnet.') ? key : `resnet.${key}`; // a bare ResNetModel saves without the prefix
  },
  saveKey: (name) => name,
  className: (task) => (task === 'image_cls' ? 'ResNetForImageClassification' : 'ResNetModel'),
  savesBuffers: true,
});

/**
 * Image layers, NCHW (PyTorch's nn.Conv2d, nn.BatchNorm2d, nn.MaxPool2d, nn.AvgPool2d,
 * nn.AdaptiveAvgPool2d), with PyTorch's parameter and buffer names so state dicts map 1:1 onto
 * transformers' checkpoints.
 */
import { Module } from './module.js';
import { Tensor } from '../tensor/tensor.js';
import { zeros, ones } from '../tensor/creation.js';
import { uniformParam } from './init.js';
import { nextSeed } from './random.js';
import { TunekitError, describe } from '../errors.js';
import * as V from '../autograd/vision_ops.js';

function pairOf(v: V.Pair, what: string): [number, number] {
  const p = typeof v === 'number' ? [v, v] : v;
  if (p.length !== 2 || !p.every((d) => Number.isInteger(d) && d >= 0)) throw new TunekitError('ERR_VALUE', `Expected ${what} to be a non-negative integer or a pair but received ${describe(v)}`);
  return [p[0]!, p[1]!];
}

export interface Conv2dConfig {
  stride?: V.Pair;
  padding?: V.Pair;
  dilation?: V.Pair;
  groups?: number;
  bias?: boolean;
  seed?: number;
}

/**
 * 2-D convolution, weight [out, in / groups, kh, kw] initialised as PyTorch's (kaiming_uniform
 * with a = sqrt(5): U(-1/sqrt(fan_in), 1/sqrt(fan_in)), the bias likewise).
 * @example const conv = new Conv2d(3, 16, 3, { padding: 1 }); conv.forward(images) // [N, 16, H, W]
 */
export class Conv2d extends Module {
  weight: Tensor;
  bias: Tensor | null;
  readonly inChannels: number;
  readonly outChannels: number;
  readonly kernelSize: [number, number];
  readonly stride: [number, number];
  readonly padding: [number, number];
  readonly dilation: [number, number];
  readonly groups: number;

  constructor(inChannels: number, outChannels: number, kernelSize: V.Pair, opts: Conv2dConfig = {}) {
    super();
    this.inChannels = inChannels;
    this.outChannels = outChannels;
    this.kernelSize = pairOf(kernelSize, 'Conv2d kernelSize');
    this.stride = pairOf(opts.stride ?? 1, 'Conv2d stride');
    this.padding = pairOf(opts.padding ?? 0, 'Conv2d padding');
    this.dilation = pairOf(opts.dilation ?? 1, 'Conv2d dilation');
    this.groups = opts.groups ?? 1;
    if (!Number.isInteger(this.groups) || this.groups < 1 || inChannels % this.groups || outChannels % this.groups) {
      throw new TunekitError('ERR_VALUE', `Conv2d: groups ${describe(opts.groups)} must be a positive integer dividing in_channels ${inChannels} and out_channels ${outChannels}`);
    }
    const [kh, kw] = this.kernelSize;
    const fanIn = (inChannels / this.groups) * kh * kw;
    const bound = 1 / Math.sqrt(fanIn);
    this.weight = this.param('weight', uniformParam([outChannels, inChannels / this.groups, kh, kw], opts.seed ?? nextSeed(), -bound, bound));
    this.bias = this.param('bias', opts.bias === false ? null : uniformParam([outChannels], nextSeed(), -bound, bound));
  }

  /** The options of F.conv2d this layer applies. */
  get convOptions(): V.Conv2dOptions {
    return { stride: this.stride, padding: this.padding, dilation: this.dilation, groups: this.groups };
  }

  forward(x: Tensor): Tensor<'f32'> {
    return V.conv2d(x, this.weight, this.bias, this.convOptions);
  }
}

/**
 * Batch normalization over channels with running statistics (buffers running_mean, running_var,
 * num_batches_tracked, as PyTorch saves them). Training mode normalises with the batch statistics
 * and updates the running ones; eval mode uses the running ones. A layer whose weight and bias
 * are both frozen (LoRA or head-only training of a pretrained trunk) also uses its running
 * statistics in training mode, as timm's FrozenBatchNorm2d: the trunk a frozen-base method trains
 * over stays the saved one, so an adapter folder alone reproduces the trained model.
 * @example const bn = new BatchNorm2d(16); bn.forward(x)
 */
export class BatchNorm2d extends Module {
  weight: Tensor;
  bias: Tensor;
  readonly runningMean: Tensor<'f32'>;
  readonly runningVar: Tensor<'f32'>;
  readonly numBatchesTracked: Tensor<'i64'>;

  constructor(readonly numFeatures: number, readonly eps = 1e-5, readonly momentum = 0.1) {
    super();
    this.weight = this.param('weight', ones([numFeatures]));
    this.bias = this.param('bias', zeros([numFeatures]));
    this.runningMean = this.buffer('running_mean', zeros([numFeatures]));
    this.runningVar = this.buffer('running_var', ones([numFeatures]));
    this.numBatchesTracked = this.buffer('num_batches_tracked', zeros([], 'i64'));
  }

  /** Whether this forward uses batch statistics (training, and not a frozen layer). */
  get usesBatchStatistics(): boolean {
    return this.training && (this.weight.requiresGrad || this.bias.requiresGrad);
  }

  forward(x: Tensor): Tensor<'f32'> {
    const train = this.usesBatchStatistics;
    const y = V.batchNorm2d(x, this.weight, this.bias, this.runningMean, this.runningVar, { training: train, momentum: this.momentum, eps: this.eps });
    if (train) {
      const t = this.numBatchesTracked;
      if (t.device === 'cpu') {
        const n = t.data() as BigInt64Array; // in place through the host view
        n[0] = n[0]! + 1n;
      } else {
        // a device's memory has no host view: read the count back and write it again
        const n = t.toTypedArray() as BigInt64Array;
        n[0] = n[0]! + 1n;
        t.copyFrom(n);
      }
    }
    return y;
  }
}

/** Max pooling. @example new MaxPool2d(3, 2, 1) // ResNet's stem */
export class MaxPool2d extends Module {
  constructor(readonly kernelSize: V.Pair, readonly stride?: V.Pair, readonly padding: V.Pair = 0) {
    super();
  }
  forward(x: Tensor): Tensor<'f32'> {
    return V.maxPool2d(x, { kernelSize: this.kernelSize, stride: this.stride, padding: this.padding });
  }
}

/** Average pooling (count_include_pad true, as PyTorch's default). */
export class AvgPool2d extends Module {
  constructor(readonly kernelSize: V.Pair, readonly stride?: V.Pair, readonly padding: V.Pair = 0, readonly countIncludePad = true) {
    super();
  }
  forward(x: Tensor): Tensor<'f32'> {
    return V.avgPool2d(x, { kernelSize: this.kernelSize, stride: this.stride, padding: this.padding, countIncludePad: this.countIncludePad });
  }
}

/** Adaptive average pooling to a fixed output size ([1, 1]: global average pooling). */
export class AdaptiveAvgPool2d extends Module {
  constructor(readonly outputSize: V.Pair) {
    super();
  }
  forward(x: Tensor): Tensor<'f32'> {
    return V.adaptiveAvgPool2d(x, this.outputSize);
  }
}

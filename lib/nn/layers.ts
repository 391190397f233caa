/**
 * Basic layers. Weights are f32 master copies; frozen ones get no gradient computed.
 */
import { Module } from './module.js';
import { Tensor } from '../tensor/tensor.js';
import { zeros, ones } from '../tensor/creation.js';
import { uniformParam } from './init.js';
import * as F from '../autograd/ops.js';
import { nextSeed } from './random.js';

/**
 * Dense layer y = x W^T + b. `layout: 'in_out'` stores W as [in, out] (GPT-2's Conv1D), the
 * checkpoint's own layout, so no transposed copy is kept.
 * @example const fc = new Linear(768, 3072); const y = fc.forward(x);
 */
export class Linear extends Module {
  weight: Tensor;
  bias: Tensor | null;
  readonly inFeatures: number;
  readonly outFeatures: number;
  readonly layout: 'out_in' | 'in_out';

  constructor(inFeatures: number, outFeatures: number, opts: { bias?: boolean; layout?: 'out_in' | 'in_out'; seed?: number } = {}) {
    super();
    this.inFeatures = inFeatures;
    this.outFeatures = outFeatures;
    this.layout = opts.layout ?? 'out_in';
    const bound = 1 / Math.sqrt(inFeatures); // PyTorch's kaiming_uniform(a=sqrt(5)) bound
    const shape = this.layout === 'out_in' ? [outFeatures, inFeatures] : [inFeatures, outFeatures];
    this.weight = this.param('weight', uniformParam(shape, opts.seed ?? nextSeed(), -bound, bound));
    this.bias = this.param('bias', opts.bias === false ? null : zeros([outFeatures]));
  }

  forward(x: Tensor): Tensor<'f32'> {
    return F.linear(x, this.weight, this.bias, this.layout === 'in_out');
  }
}

/** Lookup table [num, dim]. @example new Embedding(50257, 768).forward(ids) */
export class Embedding extends Module {
  weight: Tensor;
  constructor(num: number, dim: number, opts: { std?: number; seed?: number } = {}) {
    super();
    const half = (opts.std ?? 0.02) * Math.sqrt(3); // U(-a, a) has std a / sqrt(3)
    this.weight = this.param('weight', uniformParam([num, dim], opts.seed ?? nextSeed(), -half, half));
  }
  forward(ids: Tensor<'i32'>): Tensor<'f32'> {
    return F.embedding(this.weight, ids);
  }
}

/** LayerNorm over the last dimension. */
export class LayerNorm extends Module {
  weight: Tensor;
  bias: Tensor;
  constructor(dim: number, readonly eps = 1e-5) {
    super();
    this.weight = this.param('weight', ones([dim]));
    this.bias = this.param('bias', zeros([dim]));
  }
  forward(x: Tensor): Tensor<'f32'> {
    return F.layerNorm(x, this.weight, this.bias, this.eps);
  }
}

/** RMSNorm over the last dimension (Llama). */
export class RMSNorm extends Module {
  weight: Tensor;
  constructor(dim: number, readonly eps = 1e-6) {
    super();
    this.weight = this.param('weight', ones([dim]));
  }
  forward(x: Tensor): Tensor<'f32'> {
    return F.rmsNorm(x, this.weight, this.eps);
  }
}

/** Inverted dropout, active only in training mode. */
export class Dropout extends Module {
  constructor(readonly p: number) {
    super();
  }
  forward(x: Tensor): Tensor {
    // no seed is drawn in eval mode, so evaluation never shifts training's dropout masks
    if (!this.training || this.p === 0) return x;
    return F.dropout(x, this.p, nextSeed(), true);
  }
}

/** Anything that maps [..., in] -> [..., out] like a Linear (PEFT layers wrap a Linear this way). */
export interface LinearLike extends Module {
  forward(x: Tensor): Tensor<'f32'>;
}

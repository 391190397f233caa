/**
 * LoraConv2d wraps a frozen Conv2d (`base_layer`) with named low-rank adapters, as PEFT's
 * lora.Conv2d (peft/tuners/lora/layer.py, _ConvNd):
 *   y = base(x) + scale * B(A(dropout(x)))
 * A is a convolution with the layer's kernel, stride and padding, weight [r, in, kh, kw], no bias;
 * B a 1x1 convolution, weight [out, r, 1, 1], no bias. Init: A kaiming-uniform (U(+-1/sqrt(in kh kw))),
 * B = 0; 'gaussian': A ~ N(0, 1/r). Merge: W[o, c, p, q] += scale * sum_r B[o, r] A[r, c, p, q].
 * Saved as `<path>.lora_A.weight` / `<path>.lora_B.weight`, PEFT's keys.
 * Refused (PEFT builds A without them): grouped convolutions (PEFT cannot merge them) and dilation.
 */
import { Module } from '../../nn/module.js';
import { Conv2d } from '../../nn/conv.js';
import { Tensor } from '../../tensor/tensor.js';
import { zeros, rand, randn } from '../../tensor/creation.js';
import * as F from '../../autograd/ops.js';
import * as K from '../../tensor/kernels.js';
import { nextSeed } from '../../nn/random.js';
import { noGrad, needsGrad } from '../../autograd/tape.js';
import { TunekitError } from '../../errors.js';
import { LoraAdaptedModule, type LoraAdapter } from './adapted.js';
import { loraScale } from './config.js';

/** A holder so adapter tensors get PEFT's dotted names: lora_A.<adapter>.weight */
class ParamHolder extends Module {
  constructor(t: Tensor) {
    super();
    this.param('weight', t);
  }
}

class AdapterDict extends Module {
  set(name: string, t: Tensor): void {
    this.module(name, new ParamHolder(t));
  }
}

export class LoraConv2d extends LoraAdaptedModule {
  readonly base_layer: Conv2d;
  private readonly lora_A: AdapterDict;
  private readonly lora_B: AdapterDict;

  constructor(base: Conv2d, path = 'a Conv2d') {
    super();
    if (base.groups !== 1) throw new TunekitError('ERR_CONFIG', `LoRA on ${path}: a grouped convolution (groups ${base.groups}) is not supported (PEFT cannot merge such adapters)`);
    if (base.dilation[0] !== 1 || base.dilation[1] !== 1) throw new TunekitError('ERR_CONFIG', `LoRA on ${path}: a dilated convolution is not supported (PEFT's lora_A takes the kernel, stride and padding but not the dilation)`);
    this.base_layer = this.module('base_layer', base);
    this.lora_A = this.module('lora_A', new AdapterDict());
    this.lora_B = this.module('lora_B', new AdapterDict());
  }

  /** Adds adapter `name` with PEFT's initialisation. */
  addAdapter(name: string, opts: { r: number; alpha: number; dropout: number; rslora: boolean; init: boolean | 'gaussian' | 'pissa' }): LoraAdapter {
    if (this.adapters.has(name)) throw new TunekitError('ERR_VALUE', `adapter '${name}' already exists on this layer`);
    const { r } = opts;
    const b = this.base_layer;
    const [kh, kw] = b.kernelSize;
    const shapeA = [r, b.inChannels, kh, kw], shapeB = [b.outChannels, r, 1, 1];
    const bound = 1 / Math.sqrt(b.inChannels * kh * kw); // kaiming_uniform(a=sqrt(5)) of A's fan-in
    let A: Tensor, B: Tensor;
    if (opts.init === true) {
      A = rand(shapeA, { seed: nextSeed(), low: -bound, high: bound });
      B = zeros(shapeB);
    } else if (opts.init === 'gaussian') {
      A = randn(shapeA, { seed: nextSeed(), std: 1 / r });
      B = zeros(shapeB);
    } else if (opts.init === false) {
      // random B too: a non-identity adapter (tests of merge and round trips)
      A = rand(shapeA, { seed: nextSeed(), low: -bound, high: bound });
      B = rand(shapeB, { seed: nextSeed(), low: -bound, high: bound });
    } else {
      throw new TunekitError('ERR_CONFIG', `init_lora_weights '${String(opts.init)}' is not supported on convolutions`);
    }
    this.lora_A.set(name, A);
    this.lora_B.set(name, B);
    return this.registerAdapter(name, { r, alpha: opts.alpha, scale: loraScale(opts.alpha, r, opts.rslora), dropout: opts.dropout, A, B });
  }

  forward(x: Tensor): Tensor<'f32'> {
    const live = this.forwardAdapter();
    if (!live) return this.base_layer.forward(x);
    // a seed is drawn only when dropout really runs (evaluation never shifts training's masks)
    const { ad, p } = live;
    const b = this.base_layer;
    if (p === 0 && !needsGrad(b.weight) && !(b.bias && needsGrad(b.bias))) {
      // frozen base, no dropout: the fused op (one im2col for W and A, one col2im backward)
      return F.loraConv2d(x, b.weight, b.bias, ad.A, ad.B, ad.scale, { stride: b.stride, padding: b.padding });
    }
    const base = b.forward(x);
    const xd = p > 0 ? F.dropout(x, p, nextSeed(), true) : x;
    const low = F.conv2d(xd, ad.A, null, { stride: b.stride, padding: b.padding });
    return F.add(base, F.scale(F.conv2d(low, ad.B, null), ad.scale));
  }

  /** W [out, in, kh, kw] += sign * scale * B [out, r] A [r, in kh kw]. */
  protected applyDelta(ad: LoraAdapter, sign: 1 | -1): void {
    noGrad(() => {
      const W = this.base_layer.weight as Tensor<'f32'>;
      const [out, inC, kh, kw] = W.shape as [number, number, number, number];
      const w2 = W.viewAs([out, inC * kh * kw], [inC * kh * kw, 1], W.offset) as Tensor<'f32'>;
      const b2 = ad.B.viewAs([out, ad.r], [ad.r, 1], ad.B.offset);
      const a2 = ad.A.viewAs([ad.r, inC * kh * kw], [inC * kh * kw, 1], ad.A.offset);
      K.gemm(b2, a2, { into: w2, beta: 1, alpha: sign * ad.scale });
      w2.dispose(); b2.dispose(); a2.dispose();
    });
  }
}

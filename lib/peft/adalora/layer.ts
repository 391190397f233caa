/**
 * AdaLoraLinear: a LoraLinear whose adapters are in SVD form (PEFT's SVDLinear):
 *
 *   y = base(x) + (dropout(x) (A * E)^T) B^T * alpha / (init_r + 1e-5)
 *
 * with A [r, in] (right singular vectors), E [r, 1] (singular values), B [out, r] (left singular
 * vectors). The product runs through the fused LoRA op with A' = E * A (a differentiable mul), so
 * W + B diag(E) A is never formed and W gets no gradient. Pruning a rank sets its E_i to 0; the
 * scale keeps init_r (PEFT's `ranknum`) whatever the number of ranks left.
 *
 * @example
 * const layer = new AdaLoraLinear(linear);
 * layer.addSvdAdapter('default', { r: 12, alpha: 8, dropout: 0 });
 * const y = layer.forward(x);
 */
import { Module } from '../../nn/module.js';
import type { Linear } from '../../nn/layers.js';
import type { Tensor } from '../../tensor/tensor.js';
import { zeros, ones, randn } from '../../tensor/creation.js';
import * as F from '../../autograd/ops.js';
import * as K from '../../tensor/kernels.js';
import { nextSeed } from '../../nn/random.js';
import { noGrad } from '../../autograd/tape.js';
import { TunekitError } from '../../errors.js';
import { LoraLinear, type LoraAdapter } from '../lora/layer.js';
import { adaloraScale } from './config.js';

/** The singular values of each adapter, registered as `lora_E.<adapter>` (PEFT's ParameterDict). */
class ParamDict extends Module {
  set(name: string, t: Tensor): void {
    this.param(name, t);
  }
}

export interface SvdAdapter {
  /** the LoRA part: A [r, in], B [out, r], scale = alpha / (init_r + 1e-5) */
  lora: LoraAdapter;
  /** singular values [r, 1] */
  E: Tensor;
  /** PEFT's ranknum: init_r, also after pruning */
  ranknum: number;
}

export class AdaLoraLinear extends LoraLinear {
  /** adapters in SVD form, by name (their A and B are also in `adapters`) */
  readonly svd: Map<string, SvdAdapter>;
  private readonly lora_E: ParamDict;

  constructor(base: Linear) {
    super(base);
    this.svd = new Map();
    this.lora_E = this.module('lora_E', new ParamDict());
  }

  /**
   * Adds adapter `name` of rank r with PEFT's AdaLoRA initialisation (A, B ~ N(0, 0.02), E = 0);
   * `init: 'lora'` uses LoRA's instead (A kaiming-uniform, B = 0) with E = 1: the same zero update
   * at the start, but B gets a gradient from the first step, where PEFT's A and B get none until
   * E has moved; `init: false` leaves E random as well (a non-identity adapter, for tests).
   */
  addSvdAdapter(name: string, opts: { r: number; alpha: number; dropout: number; init?: boolean | 'lora' }): SvdAdapter {
    const { r } = opts;
    const loraInit = opts.init === 'lora';
    const lora = super.addAdapter(name, { r, alpha: opts.alpha, dropout: opts.dropout, rslora: false, init: loraInit });
    if (!loraInit) noGrad(() => {
      for (const t of [lora.A, lora.B]) {
        const v = randn(t.shape, { seed: nextSeed(), std: 0.02 });
        t.copyFrom(v.data());
        v.dispose();
      }
    });
    lora.scale = adaloraScale(opts.alpha, r);
    const E = opts.init === false ? randn([r, 1], { seed: nextSeed(), std: 0.5 }) : loraInit ? ones([r, 1]) : zeros([r, 1]);
    this.lora_E.set(name, E);
    const ad: SvdAdapter = { lora, E, ranknum: r };
    this.svd.set(name, ad);
    return ad;
  }

  /** The SVD records hold E beside lora_E (and A, B: the LoRA records): they follow Module.to(). */
  protected override onMoved(swap: (t: Tensor) => Tensor): void {
    super.onMoved(swap);
    for (const ad of this.svd.values()) ad.E = swap(ad.E);
  }

  override forward(x: Tensor): Tensor<'f32'> {
    const name = this.active;
    const ad = name && !this.disabled && !this.merged.has(name) ? this.svd.get(name) : undefined;
    if (!ad) return super.forward(x);
    const { lora } = ad;
    return F.loraLinear(x, this.base_layer.weight, this.base_layer.bias, F.mul(lora.A, ad.E), lora.B, {
      scale: lora.scale,
      dropout: this.training ? lora.dropout : 0,
      seed: nextSeed(),
      wInOut: this.base_layer.layout === 'in_out',
    });
  }

  /** scale * B diag(E) A, [out, in], without gradient (merging, compact export). */
  deltaWeight(name: string): Tensor<'f32'> {
    const ad = this.svd.get(name);
    if (!ad) throw new TunekitError('ERR_VALUE', `no AdaLoRA adapter '${name}' on this layer`);
    return noGrad(() => {
      const ae = K.binary('mul', ad.lora.A, ad.E);
      const d = K.gemm(ad.lora.B, ae, { alpha: ad.lora.scale });
      ae.dispose();
      return d;
    });
  }

  private addSvdDelta(name: string, sign: 1 | -1): void {
    noGrad(() => {
      const ad = this.svd.get(name)!;
      const W = this.base_layer.weight as Tensor<'f32'>;
      const ae = K.binary('mul', ad.lora.A, ad.E);
      if (this.base_layer.layout === 'out_in') K.gemm(ad.lora.B, ae, { into: W, beta: 1, alpha: sign * ad.lora.scale });
      else K.gemm(ae, ad.lora.B, { transA: true, transB: true, into: W, beta: 1, alpha: sign * ad.lora.scale });
      ae.dispose();
    });
  }

  override merge(name = this.active!): void {
    if (!this.svd.has(name)) return super.merge(name);
    if (this.merged.has(name)) return;
    this.addSvdDelta(name, 1);
    this.merged.add(name);
  }

  override unmerge(name = this.active!): void {
    if (!this.svd.has(name)) return super.unmerge(name);
    if (!this.merged.has(name)) return;
    this.addSvdDelta(name, -1);
    this.merged.delete(name);
  }
}

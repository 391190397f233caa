/**
 * LoraLinear wraps a frozen Linear (`base_layer`) with named low-rank adapters:
 *   y = base(x) + scale * (dropout(x) A^T) B^T,   A [r, in], B [out, r]
 * computed by the fused native op, so W + BA is never formed and W gets no gradient.
 */
import { Module } from '../../nn/module.js';
import { Linear } from '../../nn/layers.js';
import { Tensor } from '../../tensor/tensor.js';
import { zeros, rand, randn, tensor } from '../../tensor/creation.js';
import * as F from '../../autograd/ops.js';
import * as K from '../../tensor/kernels.js';
import { nextSeed } from '../../nn/random.js';
import { noGrad } from '../../autograd/tape.js';
import { TunekitError } from '../../errors.js';
import { svdF64 } from '../../tensor/linalg.js';
import { NF4Linear } from '../../quant/nf4_linear.js';
import { loraNf4Linear } from '../../autograd/nf4_ops.js';
import { LoraAdaptedModule, type LoraAdapter } from './adapted.js';
import { loraScale } from './config.js';

export type { LoraAdapter } from './adapted.js';

/** A holder so adapter tensors get PEFT's dotted names: lora_A.<adapter>.weight */
class ParamHolder extends Module {
  constructor(t: Tensor) {
    super();
    this.param('weight', t);
  }
  get weight(): Tensor {
    return this.namedParameters()[0]![1];
  }
}

class AdapterDict extends Module {
  set(name: string, t: Tensor): void {
    this.module(name, new ParamHolder(t));
  }
}

export class LoraLinear extends LoraAdaptedModule {
  /** a dense Linear, or an NF4Linear (QLoRA: the adapter trains over a frozen 4-bit base) */
  readonly base_layer: Linear | NF4Linear;
  private readonly lora_A: AdapterDict;
  private readonly lora_B: AdapterDict;

  constructor(base: Linear | NF4Linear) {
    super();
    this.base_layer = this.module('base_layer', base);
    this.lora_A = this.module('lora_A', new AdapterDict());
    this.lora_B = this.module('lora_B', new AdapterDict());
  }

  get inFeatures(): number {
    return this.base_layer.inFeatures;
  }
  get outFeatures(): number {
    return this.base_layer.outFeatures;
  }

  /** Adds adapter `name` with PEFT's initialisation. */
  addAdapter(name: string, opts: { r: number; alpha: number; dropout: number; rslora: boolean; init: boolean | 'gaussian' | 'pissa' }): LoraAdapter {
    if (this.adapters.has(name)) throw new TunekitError('ERR_VALUE', `adapter '${name}' already exists on this layer`);
    const { r } = opts;
    let A: Tensor, B: Tensor;
    if (opts.init === 'gaussian') {
      A = randn([r, this.inFeatures], { seed: nextSeed(), std: 1 / r });
      B = zeros([this.outFeatures, r]);
    } else if (opts.init === false) {
      // random B too: a non-identity adapter, used to test merge and save/load round trips
      const bound = 1 / Math.sqrt(this.inFeatures);
      A = rand([r, this.inFeatures], { seed: nextSeed(), low: -bound, high: bound });
      B = rand([this.outFeatures, r], { seed: nextSeed(), low: -bound, high: bound });
    } else if (opts.init === true) {
      const bound = 1 / Math.sqrt(this.inFeatures); // kaiming_uniform(a=sqrt(5))
      A = rand([r, this.inFeatures], { seed: nextSeed(), low: -bound, high: bound });
      B = zeros([this.outFeatures, r]);
    } else if (opts.init === 'pissa' && this.base_layer instanceof NF4Linear) {
      throw new TunekitError('ERR_CONFIG', 'init_lora_weights pissa needs a dense base weight, but this layer is NF4 (QLoRA)');
    } else if (opts.init === 'pissa') {
      // PiSSA (PEFT's pissa_init): A, B from W's top-r singular triplets, divided by the scale;
      // the base weight becomes the residual W - scale * B A below (the output is unchanged).
      ({ A, B } = pissaFactors(this.base_layer as Linear, r, loraScale(opts.alpha, r, opts.rslora)));
    } else {
      throw new TunekitError('ERR_CONFIG', `init_lora_weights '${String(opts.init)}' is not supported here`);
    }
    this.lora_A.set(name, A);
    this.lora_B.set(name, B);
    const ad = this.registerAdapter(name, { r, alpha: opts.alpha, scale: loraScale(opts.alpha, r, opts.rslora), dropout: opts.dropout, A, B });
    if (opts.init === 'pissa') this.addDelta(name, -1);
    return ad;
  }

  forward(x: Tensor): Tensor<'f32'> {
    const live = this.forwardAdapter();
    if (!live) return this.base_layer.forward(x);
    // a seed is drawn only when dropout really runs, so evaluation never shifts the training
    // run's dropout masks (results do not depend on how often one evaluates)
    const { ad, p } = live;
    const seed = p > 0 ? nextSeed() : 0;
    if (this.base_layer instanceof NF4Linear) {
      // QLoRA: fused NF4 dequant-GEMM for the base plus the f32 adapter path, in one op
      return loraNf4Linear(x, this.base_layer.qweight, this.base_layer.bias, ad.A, ad.B, {
        scale: ad.scale,
        dropout: p,
        seed,
      });
    }
    return F.loraLinear(x, this.base_layer.weight, this.base_layer.bias, ad.A, ad.B, {
      scale: ad.scale,
      dropout: p,
      seed,
      wInOut: this.base_layer.layout === 'in_out',
    });
  }

  /** W += sign * scale * (B A) in W's own layout. */
  protected applyDelta(ad: LoraAdapter, sign: 1 | -1): void {
    if (this.base_layer instanceof NF4Linear) {
      throw new TunekitError('ERR_STATE', 'cannot merge an adapter into an NF4 (4-bit) base in place: use mergeQlora (lib/peft/qlora/merge.ts) or `tunekit merge --nf4`, which write a dense merged model');
    }
    noGrad(() => {
      const W = this.base_layer.weight as Tensor<'f32'>;
      if (this.base_layer.layout === 'out_in') K.gemm(ad.B, ad.A, { into: W, beta: 1, alpha: sign * ad.scale }); // [out,r][r,in]
      else K.gemm(ad.A, ad.B, { transA: true, transB: true, into: W, beta: 1, alpha: sign * ad.scale }); // [in,r][r,out]
    });
  }

}

/**
 * PiSSA factors of a Linear: with W [out, in] = U S V^T (top r), B = U sqrt(S / scale) and
 * A = sqrt(S / scale) V^T, so scale * B A is W's best rank-r part.
 */
function pissaFactors(base: Linear, r: number, scale: number): { A: Tensor; B: Tensor } {
  const inF = base.inFeatures, outF = base.outFeatures;
  if (r > Math.min(inF, outF)) throw new TunekitError('ERR_CONFIG', `PiSSA: r (${r}) exceeds the rank of a [${outF}, ${inF}] weight`);
  const wc = base.weight.contiguousRaw();
  const w = Float64Array.from(wc.toTypedArray() as Float32Array); // a copy: the weight may be on a device
  wc.dispose();
  const inOut = base.layout === 'in_out';
  // the stored matrix is W [out, in], or W^T [in, out] for Conv1D: W^T = U S Vt means W = Vt^T S U^T
  const { u, s, vt } = inOut ? svdF64(w, inF, outF, r) : svdF64(w, outF, inF, r);
  const A = new Float32Array(r * inF), B = new Float32Array(outF * r);
  for (let i = 0; i < r; i++) {
    const root = Math.sqrt(s[i]! / scale);
    for (let j = 0; j < inF; j++) A[i * inF + j] = root * (inOut ? u[j * r + i]! : vt[i * inF + j]!);
    for (let o = 0; o < outF; o++) B[o * r + i] = root * (inOut ? vt[i * outF + o]! : u[o * r + i]!);
  }
  return { A: tensor(A, [r, inF]), B: tensor(B, [outF, r]) };
}

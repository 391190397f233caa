/**
 * LoRA on an embedding table (PEFT's lora.Embedding): the rows looked up get a low-rank delta,
 *   out = W[ids] + scale * (A^T[ids]) B^T,   A [r, num] (lora_embedding_A), B [dim, r] (lora_embedding_B)
 * PEFT's initialisation: A = 0, B ~ N(0, 1) (the reverse of the linear case). No dropout (PEFT
 * applies none on this path). The tied LM head of GPT-2 keeps using the base table, as in PEFT.
 */
import { Module } from '../../nn/module.js';
import { Embedding } from '../../nn/layers.js';
import { Tensor } from '../../tensor/tensor.js';
import { zeros, randn, rand } from '../../tensor/creation.js';
import * as F from '../../autograd/ops.js';
import * as K from '../../tensor/kernels.js';
import { nextSeed } from '../../nn/random.js';
import { noGrad } from '../../autograd/tape.js';
import { TunekitError } from '../../errors.js';
import { LoraAdaptedModule, type LoraAdapter } from './adapted.js';
import { loraScale } from './config.js';

class ParamSet extends Module {
  set(name: string, t: Tensor): void {
    this.param(name, t);
  }
}

export class LoraEmbedding extends LoraAdaptedModule {
  readonly base_layer: Embedding;
  private readonly lora_embedding_A: ParamSet;
  private readonly lora_embedding_B: ParamSet;

  constructor(base: Embedding) {
    super();
    this.base_layer = this.module('base_layer', base);
    this.lora_embedding_A = this.module('lora_embedding_A', new ParamSet());
    this.lora_embedding_B = this.module('lora_embedding_B', new ParamSet());
    this.training = base.training;
  }

  /** The base table (models read it for tied heads and prompt initialisation). */
  get weight(): Tensor {
    return this.base_layer.weight;
  }

  addAdapter(name: string, opts: { r: number; alpha: number; dropout: number; rslora: boolean; init: boolean | 'gaussian' | 'pissa' }): LoraAdapter {
    if (this.adapters.has(name)) throw new TunekitError('ERR_VALUE', `adapter '${name}' already exists on this layer`);
    if (opts.init === 'pissa') throw new TunekitError('ERR_CONFIG', 'init_lora_weights "pissa" is not defined for embedding layers');
    const [num, dim] = this.base_layer.weight.shape as [number, number];
    const r = opts.r;
    const A = opts.init === false ? rand([r, num], { seed: nextSeed(), low: -0.5, high: 0.5 }) : zeros([r, num]);
    const B = randn([dim, r], { seed: nextSeed() });
    this.lora_embedding_A.set(name, A);
    this.lora_embedding_B.set(name, B);
    return this.registerAdapter(name, { r, alpha: opts.alpha, scale: loraScale(opts.alpha, r, opts.rslora), dropout: 0, A, B });
  }

  forward(ids: Tensor<'i32'>): Tensor<'f32'> {
    const base = this.base_layer.forward(ids);
    const live = this.forwardAdapter(); // embeddings have no lora_dropout (PEFT applies none there)
    if (!live) return base;
    const { ad } = live;
    const flat = F.reshape(ids, [ids.numel]) as Tensor<'i32'>;
    const picked = F.gatherRows(F.transpose(ad.A), flat); // [N, r]
    const delta = F.matmul(picked, ad.B, { transB: true }); // [N, dim]
    return F.add(base, F.reshape(F.scale(delta, ad.scale), base.shape));
  }

  /** W [num, dim] += sign * scale * A^T B^T */
  protected applyDelta(ad: LoraAdapter, sign: 1 | -1): void {
    noGrad(() => K.gemm(ad.A, ad.B, { transA: true, transB: true, into: this.base_layer.weight as Tensor<'f32'>, beta: 1, alpha: sign * ad.scale }));
  }
}

/**
 * AdamW (decoupled weight decay, PyTorch semantics) over named parameters, with global
 * gradient-norm clipping. State (m, v, step) is f32 native memory, saved in checkpoints.
 */
import * as K from '../tensor/kernels.js';
import { Tensor } from '../tensor/tensor.js';
import { zeros } from '../tensor/creation.js';
import { keep } from '../tensor/scope.js';
import { TunekitError } from '../errors.js';
import type { RawTensor } from '../io/safetensors.js';
import { rawFromTensor, f32FromRaw } from '../models/weights.js';

export interface AdamWOptions {
  lr: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
  /** parameters that get no weight decay (default: 1-D tensors: biases and norm weights, as HF Trainer) */
  noDecay?: (name: string, t: Tensor) => boolean;
}

export class AdamW {
  readonly params: [string, Tensor][];
  private readonly m = new Map<string, Tensor<'f32'>>();
  private readonly v = new Map<string, Tensor<'f32'>>();
  stepCount = 0;
  readonly opts: Required<AdamWOptions>;

  /** @example const opt = new AdamW(model.trainableParameters(), { lr: 2e-4, weightDecay: 0.01 }); */
  constructor(params: [string, Tensor][], opts: AdamWOptions) {
    if (params.length === 0) throw new TunekitError('ERR_VALUE', 'AdamW: no trainable parameters (is everything frozen?)');
    this.params = params;
    this.opts = { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, noDecay: (_n, t) => t.ndim < 2, ...opts };
    for (const [name, p] of params) {
      if (p.dtype !== 'f32') throw new TunekitError('ERR_DTYPE', `AdamW: parameter '${name}' is ${p.dtype}; master weights must be f32`);
      // state on the parameter's device
      this.m.set(name, keep(zeros(p.shape, 'f32', p.device)));
      this.v.set(name, keep(zeros(p.shape, 'f32', p.device)));
    }
  }

  /** One update with learning rate lr; parameters without a gradient are skipped. */
  step(lr = this.opts.lr): void {
    this.stepCount++;
    const { beta1, beta2, eps, weightDecay, noDecay } = this.opts;
    for (const [name, p] of this.params) {
      const g = p.grad;
      if (!g) continue;
      const m = this.m.get(name)!, v = this.v.get(name)!;
      K.run('adamw', { param: p, grad: g, m, v, n: p.numel, lr, beta1, beta2, eps, weightDecay: noDecay(name, p) ? 0 : weightDecay, step: this.stepCount });
      p.storage.markWritten(); // in place: caches keyed on the version (bf16 weight copies) refresh
    }
  }

  /** Clears every gradient. */
  zeroGrad(): void {
    for (const [, p] of this.params) {
      if (p.grad) {
        p.grad.dispose();
        p.grad = null;
      }
    }
  }

  /** m and v as raw tensors named `<param>.exp_avg` / `.exp_avg_sq`. */
  stateTensors(): RawTensor[] {
    const out: RawTensor[] = [];
    for (const [name] of this.params) {
      out.push(rawFromTensor(`${name}.exp_avg`, this.m.get(name)!));
      out.push(rawFromTensor(`${name}.exp_avg_sq`, this.v.get(name)!));
    }
    return out;
  }

  loadStateTensors(tensors: Map<string, RawTensor>, stepCount: number): void {
    for (const [name, p] of this.params) {
      for (const [suffix, map] of [['exp_avg', this.m], ['exp_avg_sq', this.v]] as const) {
        const raw = tensors.get(`${name}.${suffix}`);
        if (!raw) throw new TunekitError('ERR_FORMAT', `optimizer state lacks '${name}.${suffix}'`);
        if (raw.shape.join() !== p.shape.join()) throw new TunekitError('ERR_SHAPE', `optimizer state '${name}.${suffix}' is [${raw.shape}] but the parameter is [${p.shape}]`);
        const t = f32FromRaw(raw);
        map.get(name)!.assign(t);
        t.dispose();
      }
    }
    this.stepCount = stepCount;
  }

  dispose(): void {
    for (const t of [...this.m.values(), ...this.v.values()]) t.dispose();
  }
}

/** Global L2 norm of all gradients (double-precision sum of squares). */
export function gradNorm(params: [string, Tensor][]): number {
  let ss = 0;
  for (const [, p] of params) if (p.grad) ss += K.sumSquares(p.grad);
  return Math.sqrt(ss);
}

/** Whether any gradient holds NaN or infinity. */
export function gradsFinite(params: [string, Tensor][]): boolean {
  for (const [, p] of params) if (p.grad && K.countNonFinite(p.grad) > 0) return false;
  return true;
}

/**
 * Scales gradients so that their global norm is at most maxNorm (torch.nn.utils.clip_grad_norm_).
 * Returns the norm before clipping.
 */
export function clipGradNorm(params: [string, Tensor][], maxNorm: number): number {
  const norm = gradNorm(params);
  if (maxNorm > 0 && norm > maxNorm) {
    const s = maxNorm / (norm + 1e-6);
    for (const [, p] of params) if (p.grad) K.unaryInPlace('mul_scalar', p.grad, s);
  }
  return norm;
}

/**
 * Small building blocks of the prompt encoders, named like PEFT's torch modules so that paths
 * read the same (`mlp_head.0.weight`, `transform.2.bias`, `embedding.weight`).
 */
import { Module } from '../../nn/module.js';
import { Linear } from '../../nn/layers.js';
import { Tensor } from '../../tensor/tensor.js';
import { rand, randn, zeros } from '../../tensor/creation.js';
import * as F from '../../autograd/ops.js';
import { nextSeed } from '../../nn/random.js';

/** A [rows, dim] table of virtual-token parameters (torch.nn.Embedding's N(0, 1) init, or zeros). */
export class PromptTable extends Module {
  weight: Tensor;
  constructor(rows: number, dim: number, opts: { init?: 'normal' | 'zero'; seed?: number; values?: Tensor } = {}) {
    super();
    const w = opts.values ?? (opts.init === 'zero' ? zeros([rows, dim]) : randn([rows, dim], { seed: opts.seed ?? nextSeed(), std: 1 }));
    this.weight = this.param('weight', w);
  }
}

/**
 * Linear layers joined by an activation, registered under torch.nn.Sequential's indices
 * (activations take the odd indices): sizes [a, b, c] -> Linear(a, b) act Linear(b, c).
 * @example new Sequential([768, 768, 768], 'relu').forward(x)
 */
export class Sequential extends Module {
  readonly layers: Linear[] = [];
  constructor(sizes: number[], readonly activation: 'relu' | 'tanh') {
    super();
    for (let i = 0; i + 1 < sizes.length; i++) {
      const lin = new Linear(sizes[i]!, sizes[i + 1]!);
      // PyTorch's nn.Linear bias init: U(-1/sqrt(in), 1/sqrt(in)) (our Linear starts biases at 0)
      const bound = 1 / Math.sqrt(sizes[i]!);
      lin.setParam('bias', rand([sizes[i + 1]!], { seed: nextSeed(), low: -bound, high: bound }));
      this.layers.push(this.module(String(2 * i), lin));
    }
  }
  forward(x: Tensor): Tensor<'f32'> {
    let h: Tensor = x;
    this.layers.forEach((lin, i) => {
      h = lin.forward(h);
      if (i + 1 < this.layers.length) h = this.activation === 'relu' ? F.relu(h) : F.tanh(h);
    });
    return h as Tensor<'f32'>;
  }
}

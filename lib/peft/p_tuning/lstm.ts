/**
 * A differentiable LSTM (PyTorch's torch.nn.LSTM semantics, batch_first) over the native kernel
 * native/cpu/lstm.cpp: `lstmLayer` is one direction of one layer; the `LSTM` module stacks
 * bidirectional layers with PyTorch's parameter names (weight_ih_l0, weight_hh_l0, bias_ih_l0,
 * bias_hh_l0 and the `_reverse` twins), as P-tuning's `lstm_head` does.
 */
import { run, commonDevice } from '../../tensor/kernels.js';
import { Tensor } from '../../tensor/tensor.js';
import { rand } from '../../tensor/creation.js';
import { record } from '../../autograd/tape.js';
import * as F from '../../autograd/ops.js';
import { Module } from '../../nn/module.js';
import { nextSeed } from '../../nn/random.js';
import { TunekitError } from '../../errors.js';

/**
 * One direction of one LSTM layer: x [B, T, in] -> h [B, T, H], h0 = c0 = 0, gates i, f, g, o.
 * `reverse` walks the sequence backwards (output still in input order).
 * @example const y = lstmLayer(x, wIh, wHh, bIh, bHh, false); // x [1, 20, 768], wIh [4H, 768]
 */
export function lstmLayer(x: Tensor, wIh: Tensor, wHh: Tensor, bIh: Tensor | null, bHh: Tensor | null, reverse: boolean): Tensor<'f32'> {
  if (x.ndim !== 3) throw new TunekitError('ERR_SHAPE', `lstm: expected x [B, T, in] but received [${x.shape}]`);
  const [B, T, inF] = x.shape as [number, number, number];
  const H = wHh.shape[1]!;
  if (wIh.ndim !== 2 || wIh.shape[0] !== 4 * H || wIh.shape[1] !== inF || wHh.shape[0] !== 4 * H) {
    throw new TunekitError('ERR_SHAPE', `lstm: weight_ih [${wIh.shape}] and weight_hh [${wHh.shape}] do not fit x [${x.shape}] (expected [4H, ${inF}] and [4H, H])`);
  }
  for (const b of [bIh, bHh]) if (b && b.numel !== 4 * H) throw new TunekitError('ERR_SHAPE', `lstm: bias must have ${4 * H} elements but has ${b.numel}`);
  const device = commonDevice('lstm', [x, wIh, wHh, bIh, bHh], ['its input', 'weight_ih', 'weight_hh', 'bias_ih', 'bias_hh']);
  const xc = x.contiguousRaw(), wihc = wIh.contiguousRaw(), whhc = wHh.contiguousRaw();
  const bi = bIh ? bIh.contiguousRaw() : null, bh = bHh ? bHh.contiguousRaw() : null;
  const y = Tensor.empty([B, T, H], 'f32', false, device);
  const gates = Tensor.empty([B, T, 4 * H], 'f32', false, device), cell = Tensor.empty([B, T, H], 'f32', false, device);
  run('lstmForward', { x: xc, wih: wihc, whh: whhc, bih: bi, bhh: bh, y, gates, cell, B, T, inF, hidden: H, reverse });
  bi?.dispose(); bh?.dispose();
  record('lstm', [x, wIh, wHh, bIh, bHh], y, { xc, wihc, whhc, gates, cell, B, T, inF, H, reverse });
  if (!y.gradFn) { xc.dispose(); wihc.dispose(); whhc.dispose(); gates.dispose(); cell.dispose(); }
  return y;
}

/**
 * Stacked LSTM, batch_first, optionally bidirectional (outputs of both directions concatenated,
 * [B, T, 2H]); dropout between layers in training, as torch.nn.LSTM. Weights are initialised
 * U(-1/sqrt(H), 1/sqrt(H)) like PyTorch.
 * @example const lstm = new LSTM(768, 768, { numLayers: 2, bidirectional: true }); const y = lstm.forward(x);
 */
export class LSTM extends Module {
  readonly numLayers: number;
  readonly bidirectional: boolean;
  readonly dropout: number;
  constructor(readonly inputSize: number, readonly hiddenSize: number, opts: { numLayers?: number; bidirectional?: boolean; dropout?: number } = {}) {
    super();
    this.numLayers = opts.numLayers ?? 1;
    this.bidirectional = opts.bidirectional ?? false;
    this.dropout = opts.dropout ?? 0;
    if (!Number.isInteger(this.numLayers) || this.numLayers < 1) throw new TunekitError('ERR_CONFIG', `LSTM numLayers: expected an integer >= 1 but received ${this.numLayers}`);
    const k = 1 / Math.sqrt(hiddenSize);
    const u = (shape: number[]) => rand(shape, { seed: nextSeed(), low: -k, high: k });
    for (let l = 0; l < this.numLayers; l++) {
      const inF = l === 0 ? inputSize : hiddenSize * (this.bidirectional ? 2 : 1);
      for (const sfx of this.bidirectional ? ['', '_reverse'] : ['']) {
        this.param(`weight_ih_l${l}${sfx}`, u([4 * hiddenSize, inF]));
        this.param(`weight_hh_l${l}${sfx}`, u([4 * hiddenSize, hiddenSize]));
        this.param(`bias_ih_l${l}${sfx}`, u([4 * hiddenSize]));
        this.param(`bias_hh_l${l}${sfx}`, u([4 * hiddenSize]));
      }
    }
  }

  private p(name: string): Tensor {
    const t = this.namedParameters().find(([n]) => n === name);
    if (!t) throw new TunekitError('ERR_STATE', `LSTM has no parameter ${name}`);
    return t[1];
  }

  /** x [B, T, in] -> [B, T, H] (or [B, T, 2H] bidirectional). */
  forward(x: Tensor): Tensor<'f32'> {
    let h: Tensor = x;
    for (let l = 0; l < this.numLayers; l++) {
      if (l > 0 && this.dropout > 0 && this.training) h = F.dropout(h, this.dropout, nextSeed(), true);
      const fwd = lstmLayer(h, this.p(`weight_ih_l${l}`), this.p(`weight_hh_l${l}`), this.p(`bias_ih_l${l}`), this.p(`bias_hh_l${l}`), false);
      if (!this.bidirectional) {
        h = fwd;
        continue;
      }
      const bwd = lstmLayer(h, this.p(`weight_ih_l${l}_reverse`), this.p(`weight_hh_l${l}_reverse`), this.p(`bias_ih_l${l}_reverse`), this.p(`bias_hh_l${l}_reverse`), true);
      h = F.concat([fwd, bwd], 2);
    }
    return h as Tensor<'f32'>;
  }
}

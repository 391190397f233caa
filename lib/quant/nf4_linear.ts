/**
 * NF4Linear: a frozen linear layer whose weight is stored 4-bit (bitsandbytes' Linear4bit):
 *   y = x dequant(W)^T + b,  W [out, in] NF4 (double-quantized absmax by default)
 * computed by the fused native dequant-GEMM (the weight is never expanded in memory). Gradients
 * flow to x only (and to the bias if someone makes it trainable); W never gets one.
 *
 * GPT-2's Conv1D stores W as [in, out]. As transformers does when it loads GPT-2 in 4-bit (the
 * Conv1D weight is transposed before quantization and the layer becomes a Linear4bit), the
 * quantized weight is always [out, in]; `sourceLayout` remembers the original layout so a merge
 * can write a dense checkpoint in the model's own format again. Checkpoint keys are unchanged
 * (`<path>.weight`, plus bitsandbytes' `.absmax`, `.quant_map`, ... companions).
 *
 * @example
 * const q = NF4Linear.fromLinear(linear);       // quantizes linear.weight
 * const y = q.forward(x);
 */
import { Module } from '../nn/module.js';
import { Linear, type LinearLike } from '../nn/layers.js';
import { Tensor } from '../tensor/tensor.js';
import { noGrad } from '../autograd/tape.js';
import { NF4Tensor, type AbsmaxState, type QuantizeOptions } from '../tensor/nf4.js';
import { nf4Linear } from '../autograd/nf4_ops.js';

export class NF4Linear extends Module implements LinearLike {
  readonly qweight: NF4Tensor;
  bias: Tensor | null;
  readonly inFeatures: number;
  readonly outFeatures: number;
  /** the quantized weight is always [out, in] (bitsandbytes' Linear4bit) */
  readonly layout = 'out_in' as const;
  /** the layout of the dense weight this layer replaced ('in_out' for GPT-2's Conv1D) */
  readonly sourceLayout: 'out_in' | 'in_out';

  constructor(qweight: NF4Tensor, bias: Tensor | null, sourceLayout: 'out_in' | 'in_out' = 'out_in') {
    super();
    this.qweight = qweight;
    this.outFeatures = qweight.shape[0];
    this.inFeatures = qweight.shape[1];
    this.sourceLayout = sourceLayout;
    // the packed codes are state (a buffer, never trained); the bias stays an f32 parameter, frozen
    this.buffer('weight', qweight.packed);
    this.bias = this.param('bias', bias, false);
  }

  /** The packed u8 codes [(out*in+1)/2, 1] (bitsandbytes' `weight`). */
  get weight(): Tensor {
    return this.qweight.packed;
  }

  /** Quantizes a dense Linear (its weight is not disposed; its bias tensor is shared). */
  static fromLinear(lin: Linear, opts: QuantizeOptions = {}): NF4Linear {
    const q = noGrad(() => {
      if (lin.layout === 'out_in') return NF4Tensor.quantize(lin.weight, opts);
      const wt = lin.weight.viewAs([lin.outFeatures, lin.inFeatures], [1, lin.outFeatures], lin.weight.offset); // W^T view
      const c = wt.contiguousRaw();
      wt.dispose();
      try {
        return NF4Tensor.quantize(c, opts);
      } finally {
        c.dispose();
      }
    });
    return new NF4Linear(q, lin.bias, lin.layout);
  }

  forward(x: Tensor): Tensor<'f32'> {
    return nf4Linear(x, this.qweight, this.bias);
  }

  /** Module.to() moved the codes (the `weight` buffer); the absmax state follows them. */
  protected override onMoved(swap: (t: Tensor) => Tensor): void {
    const q = this.qweight;
    const st = q.absmaxState;
    const moved: AbsmaxState = st.kind === 'f32'
      ? { kind: 'f32', absmax: swap(st.absmax) as Tensor<'f32'> }
      : { kind: 'double', q: swap(st.q) as Tensor<'u8'>, nestedAbsmax: swap(st.nestedAbsmax) as Tensor<'f32'>, offset: st.offset };
    (this as { qweight: NF4Tensor }).qweight = new NF4Tensor(swap(q.packed) as Tensor<'u8'>, moved, q.shape, q.blocksize, q.quantType, q.dtype);
  }

  /** The dense weight f32 in `layout` ([out, in] by default, or the source layout with 'source'). */
  dequantize(layout: 'out_in' | 'in_out' | 'source' = 'out_in'): Tensor<'f32'> {
    const w = this.qweight.dequantize();
    const want = layout === 'source' ? this.sourceLayout : layout;
    if (want === 'out_in') return w;
    const t = w.viewAs([this.inFeatures, this.outFeatures], [1, this.inFeatures], 0);
    const c = t.contiguousRaw() as Tensor<'f32'>;
    t.dispose();
    w.dispose();
    return c;
  }

  /** Bytes of the quantized weight (codes + absmax state); the bias is not counted. */
  weightBytes(): number {
    return this.qweight.bytes();
  }

  override dispose(): void {
    this.qweight.dispose();
    this.bias?.dispose();
  }

  /** A dense Linear with the dequantized weight (in the source layout) and this bias. */
  toLinear(): Linear {
    const lin = new Linear(this.inFeatures, this.outFeatures, { bias: this.bias !== null, layout: this.sourceLayout, seed: 0 });
    const w = this.dequantize('source');
    lin.setParam('weight', w);
    if (this.bias) lin.setParam('bias', this.bias.clone());
    return lin;
  }
}

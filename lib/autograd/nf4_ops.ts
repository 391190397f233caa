/**
 * Differentiable ops over NF4 weights. The weight stays 4-bit: the native GEMMs dequantize it
 * inside their packing step. Gradients flow to the input (and to a LoRA adapter and a trainable
 * bias); an NF4 weight never gets one. The gradient rules (lib/autograd/rules.ts entries
 * `nf4Linear` and `loraNf4Linear`) call the backward functions below.
 */
import { Tensor, numelOf, contiguousStrides } from '../tensor/tensor.js';
import type { Device } from '../tensor/device.js';
import * as K from '../tensor/kernels.js';
import { record, needsGrad, type Node } from './tape.js';
import { TunekitError } from '../errors.js';
import { NF4Tensor } from '../tensor/nf4.js';

type F32 = Tensor<'f32'>;

function checkInput(x: Tensor, w: NF4Tensor, what: string): void {
  K.expectDtype(x, 'f32', `${what} input`);
  if (w.isDisposed) throw new TunekitError('ERR_STATE', `${what}: the NF4 weight was disposed`);
  if (x.ndim < 1 || x.shape[x.ndim - 1] !== w.shape[1]) {
    throw new TunekitError('ERR_SHAPE', `${what}: expected input [..., ${w.shape[1]}] for an NF4 weight [${w.shape}] but received [${x.shape}]`);
  }
}

/** y [M, N] (+)= x [M, K] dequant(W)^T via the fused GEMM of the tensors' device. */
function gemmInto(xc: Tensor, M: number, w: NF4Tensor, y: F32, beta: number): void {
  w.withAbsmax((absmax) =>
    K.run('nf4Gemm', { x: xc, M, packed: w.packed, absmax, N: w.shape[0], K: w.shape[1], blocksize: w.blocksize, quantType: w.quantType, y, beta }));
}

/** dx [M, K] (+)= dy [M, N] dequant(W). */
function gemmDxInto(gc: Tensor, M: number, w: NF4Tensor, dx: F32, beta: number): void {
  w.withAbsmax((absmax) =>
    K.run('nf4GemmDx', { dy: gc, M, packed: w.packed, absmax, N: w.shape[0], K: w.shape[1], blocksize: w.blocksize, quantType: w.quantType, dx, beta }));
}

/** A new [M, N] tensor holding bias in every row, or zeros-free empty when there is no bias. */
function initOutput(bias: Tensor | null, M: number, N: number, device: Device): { y: F32; beta: number } {
  if (!bias) return { y: Tensor.empty([M, N], 'f32', false, device), beta: 0 };
  K.expectDtype(bias, 'f32', 'nf4Linear bias');
  if (bias.numel !== N) throw new TunekitError('ERR_SHAPE', `nf4Linear: bias must have ${N} elements but has ${bias.numel}`);
  return { y: K.broadcastRows(bias as F32, M), beta: 1 };
}

/**
 * y = x dequant(W)^T + bias, W an NF4 weight [out, in]. Differentiable in x (and bias), never in W.
 * @example const y = nf4Linear(x, layer.qweight, layer.bias);
 */
export function nf4Linear(x: Tensor, w: NF4Tensor, bias: Tensor | null): F32 {
  checkInput(x, w, 'nf4Linear');
  const [N] = w.shape;
  const lead = x.shape.slice(0, -1);
  const M = numelOf(lead);
  const xc = x.contiguousRaw();
  const { y, beta } = initOutput(bias, M, N, x.device);
  gemmInto(xc, M, w, y, beta);
  xc.dispose();
  const out = y.viewAs([...lead, N], contiguousStrides([...lead, N]), 0) as F32;
  y.dispose();
  record('nf4Linear', [x, bias], out, { w, M });
  return out;
}

/** Gradient rule of nf4Linear: [dx, dbias]. */
export function nf4LinearBackward(g: F32, node: Node<any>): (F32 | null)[] {
  const [x, bias] = node.inputs as [Tensor, Tensor | null];
  const { w, M } = node.saved as { w: NF4Tensor; M: number };
  const [N, Kf] = w.shape;
  const gc = g.contiguousRaw();
  let dx: F32 | null = null;
  if (needsGrad(x)) {
    const d = Tensor.empty([M, Kf], 'f32', false, g.device);
    gemmDxInto(gc, M, w, d, 0);
    dx = d.viewAs(x.shape, contiguousStrides(x.shape), 0) as F32;
    d.dispose();
  }
  let db: F32 | null = null;
  if (bias && needsGrad(bias)) {
    const g2 = gc.viewAs([M, N], [N, 1], gc.offset);
    db = K.reduce('sum', g2, 0);
    g2.dispose();
  }
  gc.dispose();
  return [dx, db];
}

/**
 * QLoRA's layer in one op: y = x dequant(W)^T + bias + scale * (dropout(x) A^T) B^T, with
 * A [r, in], B [out, r] in f32. Gradients: x, A, B (and a trainable bias); never W.
 */
export function loraNf4Linear(x: Tensor, w: NF4Tensor, bias: Tensor | null, a: Tensor, b: Tensor, opts: { scale: number; dropout?: number; seed?: number }): F32 {
  checkInput(x, w, 'loraNf4Linear');
  K.expectDtype(a, 'f32', 'loraNf4Linear A');
  K.expectDtype(b, 'f32', 'loraNf4Linear B');
  const [N, Kf] = w.shape;
  const r = a.shape[0]!;
  if (a.ndim !== 2 || b.ndim !== 2 || a.shape[1] !== Kf || b.shape[0] !== N || b.shape[1] !== r) {
    throw new TunekitError('ERR_SHAPE', `loraNf4Linear: W [${w.shape}], A [${a.shape}], B [${b.shape}] do not fit (in ${Kf}, out ${N}, r ${r})`);
  }
  const lead = x.shape.slice(0, -1);
  const M = numelOf(lead);
  const xc = x.contiguousRaw();
  const x2 = xc.viewAs([M, Kf], [Kf, 1], xc.offset);
  xc.dispose();
  const p = opts.dropout ?? 0;
  let xd: Tensor = x2;
  let mask: Tensor<'u8'> | null = null;
  if (p > 0 && needsGrad(a)) {
    // dropout on the adapter path only (PEFT's lora_dropout)
    const d = Tensor.empty([M, Kf], 'f32', false, x.device);
    mask = Tensor.empty([M, Kf], 'u8', false, x.device);
    K.run('dropout', { x: x2, y: d, mask, n: M * Kf, p, seed: opts.seed ?? 0 });
    xd = d;
  }
  const { y, beta } = initOutput(bias, M, N, x.device);
  gemmInto(x2, M, w, y, beta);
  const xa = K.gemm(xd, a, { transB: true }); // [M, r]
  K.gemm(xa, b, { transB: true, alpha: opts.scale, beta: 1, into: y }); // y += s xa B^T
  const out = y.viewAs([...lead, N], contiguousStrides([...lead, N]), 0) as F32;
  y.dispose();
  record('loraNf4Linear', [x, bias, a, b], out, { w, xd, xa, mask, p, scale: opts.scale, M, K: Kf, N, r });
  if (!out.gradFn) {
    x2.dispose();
    if (xd !== x2) xd.dispose();
    xa.dispose();
    mask?.dispose();
  } else if (xd !== x2) {
    x2.dispose(); // backward needs only the dropped input
  }
  return out;
}

/** Gradient rule of loraNf4Linear: [dx, dbias, dA, dB]. */
export function loraNf4LinearBackward(g: F32, node: Node<any>): (F32 | null)[] {
  const [x, bias, a, b] = node.inputs as [Tensor, Tensor | null, Tensor, Tensor];
  const s = node.saved as { w: NF4Tensor; xd: Tensor; xa: F32; mask: Tensor<'u8'> | null; p: number; scale: number; M: number; K: number; N: number; r: number };
  const gc = g.contiguousRaw();
  const g2 = gc.viewAs([s.M, s.N], [s.N, 1], gc.offset);
  gc.dispose();
  const wantX = needsGrad(x), wantA = needsGrad(a), wantB = needsGrad(b);
  // gB = g B [M, r]: shared by dA and the adapter path's input gradient
  const gB = wantX || wantA ? K.gemm(g2, b) : null;
  const dA = wantA ? K.gemm(gB!, s.xd, { transA: true, alpha: s.scale }) : null; // s (gB)^T xd [r, K]
  const dB = wantB ? K.gemm(g2, s.xa, { transA: true, alpha: s.scale }) : null; // s g^T xa [N, r]
  let dx: F32 | null = null;
  if (wantX) {
    const d = Tensor.empty([s.M, s.K], 'f32', false, g.device);
    gemmDxInto(g2, s.M, s.w, d, 0);
    if (s.mask) {
      const dxd = K.gemm(gB!, a, { alpha: s.scale }); // [M, K]
      const back = Tensor.empty([s.M, s.K], 'f32', false, g.device);
      K.run('dropoutBackward', { dy: dxd, mask: s.mask, dx: back, n: s.M * s.K, p: s.p });
      K.run('binary', { op: 'add', a: d, b: back, out: d, outShape: [s.M * s.K], aStrides: [1], bStrides: [1] });
      back.dispose();
      dxd.dispose();
    } else {
      K.gemm(gB!, a, { alpha: s.scale, beta: 1, into: d });
    }
    dx = d.viewAs(x.shape, contiguousStrides(x.shape), 0) as F32;
    d.dispose();
  }
  let db: F32 | null = null;
  if (bias && needsGrad(bias)) db = K.reduce('sum', g2, 0);
  gB?.dispose();
  g2.dispose();
  s.xd.dispose();
  s.xa.dispose();
  s.mask?.dispose();
  return [dx, db, dA, dB];
}

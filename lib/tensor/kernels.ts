/**
 * Typed wrappers over the kernel table (lib/tensor/kernel_table.ts, re-exported here): they
 * check shapes and dtypes, allocate outputs on their inputs' device and run the op there.
 * Autograd rules, layers, optimizers, allocators and models call these or `run(op, args)`,
 * never the binding. Nothing here is recorded for autograd (see lib/autograd).
 */
import type { BinaryOp, UnaryOp, ReduceOp, OpName } from '../native.js';
import { TunekitError } from '../errors.js';
import { Tensor, contiguousStrides, numelOf, type Shape } from './tensor.js';
import type { DType } from './dtype.js';
import type { Device } from './device.js';
import { keep } from './scope.js';
import { run } from './kernel_table.js';

export { run, kernelFor, supports, supportedOps, type KernelArgs } from './kernel_table.js';
export type { BinaryOp, UnaryOp, ReduceOp, OpName };

/** The one device of a set of tensors (nulls skipped); ERR_DEVICE naming the first two that differ. */
export function commonDevice(what: string, tensors: readonly (Tensor | null | undefined)[], names?: readonly string[]): Device {
  // a plain loop: this runs before every op (no closure per call)
  let device: Device | null = null;
  let at = -1;
  for (let i = 0; i < tensors.length; i++) {
    const t = tensors[i];
    if (!t) continue;
    const d = t.storage.device;
    if (device === null) {
      device = d;
      at = i;
    } else if (d !== device) {
      const n = (j: number) => names?.[j] ?? `input ${j}`;
      throw new TunekitError('ERR_DEVICE', `${what}: ${n(at)} is on ${device} but ${n(i)} is on ${d} (the tensors of one op must be on one device: move one with .to())`);
    }
  }
  return device ?? 'cpu';
}

export function expectDtype(t: Tensor, dtype: DType, what: string): void {
  if (t.dtype !== dtype) throw new TunekitError('ERR_DTYPE', `Expected ${what} to be ${dtype} but received ${t.dtype}`);
}

export function sameShape(a: Shape, b: Shape): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** A contiguous f32 version (a view when already contiguous). Caller disposes it. */
export function contig(t: Tensor): Tensor {
  return t.contiguousRaw();
}

/** Broadcast shape of a and b (numpy rules), or an ERR_SHAPE naming both. */
export function broadcastShapes(a: Shape, b: Shape): number[] {
  const n = Math.max(a.length, b.length);
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const da = a[a.length - n + i] ?? 1;
    const db = b[b.length - n + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) {
      throw new TunekitError('ERR_SHAPE', `Cannot broadcast shapes [${a}] and [${b}] (dimension ${i}: ${da} vs ${db})`);
    }
    out[i] = da === 1 ? db : da;
  }
  return out;
}

/** Strides of t over outShape (0 where t is broadcast). */
function broadcastStrides(t: Tensor, outShape: Shape): number[] {
  const n = outShape.length;
  const s = new Array<number>(n).fill(0);
  for (let i = 0; i < t.ndim; i++) {
    const oi = n - t.ndim + i;
    s[oi] = t.shape[i] === 1 && outShape[oi] !== 1 ? 0 : t.strides[i]!;
  }
  return s;
}

/** out = a op b with broadcasting (f32). */
export function binary(op: BinaryOp, a: Tensor, b: Tensor): Tensor<'f32'> {
  expectDtype(a, 'f32', `${op} left operand`);
  expectDtype(b, 'f32', `${op} right operand`);
  const device = commonDevice(op, [a, b], ['its left operand', 'its right operand']);
  const shape = broadcastShapes(a.shape, b.shape);
  const out = Tensor.empty(shape, 'f32', false, device);
  run('binary', { op, a, b, out, outShape: shape, aStrides: broadcastStrides(a, shape), bStrides: broadcastStrides(b, shape) });
  return out;
}

export function unary(op: UnaryOp, x: Tensor, param = 0): Tensor<'f32'> {
  expectDtype(x, 'f32', `${op} input`);
  const xc = contig(x);
  const out = Tensor.empty(x.shape, 'f32', false, x.device);
  run('unary', { op, x: xc, out, n: x.numel, param });
  xc.dispose();
  return out;
}

/** x = f(x) in place on a contiguous f32 tensor (gradient clipping's scaling). */
export function unaryInPlace(op: UnaryOp, x: Tensor, param = 0): void {
  expectDtype(x, 'f32', `${op} input`);
  if (!x.isContiguous) throw new TunekitError('ERR_VALUE', `${op} in place needs a contiguous tensor`);
  run('unary', { op, x, out: x, n: x.numel, param });
  x.storage.markWritten();
}

export function unaryBackward(op: UnaryOp, x: Tensor, y: Tensor, dy: Tensor, param = 0): Tensor<'f32'> {
  const xc = contig(x), yc = contig(y), gc = contig(dy);
  const dx = Tensor.empty(x.shape, 'f32', false, x.device);
  run('unaryBackward', { op, x: xc, y: yc, dy: gc, dx, n: x.numel, param });
  xc.dispose(); yc.dispose(); gc.dispose();
  return dx;
}

/** Reduces dimension `dim` (kept as size 1 when keepDim). */
export function reduce(op: ReduceOp, x: Tensor, dim: number, keepDim = false): Tensor<'f32'> {
  expectDtype(x, 'f32', `${op} input`);
  const d = x.normDim(dim);
  const outer = numelOf(x.shape.slice(0, d)), n = x.shape[d]!, inner = numelOf(x.shape.slice(d + 1));
  const outShape = keepDim ? x.shape.map((s, i) => (i === d ? 1 : s)) : x.shape.filter((_, i) => i !== d);
  const xc = contig(x);
  const out = Tensor.empty(outShape, 'f32', false, x.device);
  run('reduce', { op, x: xc, out, outer, n, inner });
  xc.dispose();
  return out;
}

/** Sum of all elements as a [] tensor. */
export function sumAll(x: Tensor, mean = false): Tensor<'f32'> {
  const xc = contig(x);
  const out = Tensor.empty([], 'f32', false, x.device);
  run('reduce', { op: mean ? 'mean' : 'sum', x: xc, out, outer: 1, n: x.numel, inner: 1 });
  xc.dispose();
  return out;
}

/** Index of the max along the last dim of f32 x [..., C] -> i32 [...]. */
export function argmax(x: Tensor): Tensor<'i32'> {
  expectDtype(x, 'f32', 'argmax input');
  const cols = x.shape[x.ndim - 1]!;
  const rows = x.numel / cols;
  const xc = contig(x);
  const out = Tensor.empty(x.shape.slice(0, -1), 'i32', false, x.device);
  run('argmax', { x: xc, out, rows, cols });
  xc.dispose();
  return out;
}

/** Sum of the squares of an f32 tensor's elements, in double precision (a global gradient norm's part). */
export function sumSquares(x: Tensor): number {
  expectDtype(x, 'f32', 'sumSquares input');
  const xc = contig(x);
  try {
    return run('sumSquares', { x: xc, n: x.numel });
  } finally {
    xc.dispose();
  }
}

/** Number of NaN or infinite elements of an f32 tensor. */
export function countNonFinite(x: Tensor): number {
  expectDtype(x, 'f32', 'countNonFinite input');
  const xc = contig(x);
  try {
    return run('countNonFinite', { x: xc, n: x.numel });
  } finally {
    xc.dispose();
  }
}

/** Sums g down to `shape` (the inverse of broadcasting), for gradients of broadcast ops. */
export function sumToShape(g: Tensor<'f32'>, shape: Shape): Tensor<'f32'> {
  if (sameShape(g.shape, shape)) return g.contiguousRaw() as Tensor<'f32'>;
  let cur: Tensor<'f32'> = g;
  let owned = false;
  const lead = g.ndim - shape.length;
  for (let i = 0; i < lead; i++) {
    const next = reduce('sum', cur, 0);
    if (owned) cur.dispose();
    cur = next;
    owned = true;
  }
  for (let i = 0; i < shape.length; i++) {
    if (shape[i] === 1 && cur.shape[i] !== 1) {
      const next = reduce('sum', cur, i, true);
      if (owned) cur.dispose();
      cur = next;
      owned = true;
    }
  }
  return owned ? cur : (cur.contiguousRaw() as Tensor<'f32'>);
}

/**
 * C = alpha op(A) op(B) (+ beta C when `into` is given). A, B are 2-D (or 3-D batched with the
 * same batch); dtype f32, or bf16 inputs with an f32 result. `roundA` (CPU): A is f32 and B bf16,
 * A rounded to bf16 as the GEMM packs it, bit for bit a castRaw('bf16') of A first.
 */
export function gemm(a: Tensor, b: Tensor, opts: { transA?: boolean; transB?: boolean; alpha?: number; beta?: number; into?: Tensor<'f32'>; roundA?: boolean } = {}): Tensor<'f32'> {
  const transA = opts.transA ?? false, transB = opts.transB ?? false;
  const roundA = opts.roundA ?? false;
  if (roundA ? a.dtype !== 'f32' || b.dtype !== 'bf16' : a.dtype !== b.dtype || (a.dtype !== 'f32' && a.dtype !== 'bf16')) {
    throw new TunekitError('ERR_DTYPE', `matmul: expected ${roundA ? 'an f32 and a bf16 operand (roundA)' : 'two f32 or two bf16 operands'} but received ${a.dtype} and ${b.dtype}`);
  }
  const batched = a.ndim === 3;
  if (!(a.ndim === 2 || a.ndim === 3) || b.ndim !== a.ndim) {
    throw new TunekitError('ERR_SHAPE', `gemm: expected 2-D or batched 3-D operands but received [${a.shape}] and [${b.shape}]`);
  }
  const batch = batched ? a.shape[0]! : 1;
  if (batched && b.shape[0] !== batch) throw new TunekitError('ERR_SHAPE', `gemm: batch sizes differ: [${a.shape}] vs [${b.shape}]`);
  const ar = a.shape[a.ndim - 2]!, ac = a.shape[a.ndim - 1]!, br = b.shape[b.ndim - 2]!, bc = b.shape[b.ndim - 1]!;
  const M = transA ? ac : ar, K = transA ? ar : ac;
  const Kb = transB ? bc : br, N = transB ? br : bc;
  if (K !== Kb) {
    throw new TunekitError('ERR_SHAPE', `matmul: inner dimensions differ: [${a.shape}]${transA ? '^T' : ''} x [${b.shape}]${transB ? '^T' : ''} (${K} vs ${Kb})`);
  }
  const outShape = batched ? [batch, M, N] : [M, N];
  const device = commonDevice('matmul', [a, b, opts.into], ['its left operand', 'its right operand', 'its output']);
  const out = opts.into ?? Tensor.empty(outShape, 'f32', false, device);
  if (opts.into && !sameShape(opts.into.shape, outShape)) {
    throw new TunekitError('ERR_SHAPE', `gemm: output is [${opts.into.shape}] but the product is [${outShape}]`);
  }
  const ac_ = contig(a), bc_ = contig(b);
  const args = { a: ac_, b: bc_, c: out, transA, transB, M, N, K, alpha: opts.alpha ?? 1, beta: opts.into ? (opts.beta ?? 0) : 0, batch, dtype: b.dtype as 'f32' | 'bf16' }; // checked above
  run('gemm', roundA ? { ...args, roundA } : args);
  ac_.dispose();
  bc_.dispose();
  if (opts.into) out.storage.markWritten(); // an in-place write (LoRA merge: W += s B A)
  return out;
}

/** Copies rows of `bias` [n] into every row of a new [rows, n] tensor. */
export function broadcastRows(bias: Tensor<'f32'>, rows: number): Tensor<'f32'> {
  const n = bias.numel;
  const out = Tensor.empty([rows, n], 'f32', false, bias.device);
  const bc = contig(bias);
  run('copyRows', { src: bc, dst: out, rows, rowBytes: n * 4, srcStride: 0, dstStride: n * 4 });
  bc.dispose();
  return out;
}

/** Concatenates tensors of one dtype along dim (a new contiguous tensor). */
export function concat(parts: Tensor[], dim: number): Tensor {
  if (parts.length === 0) throw new TunekitError('ERR_VALUE', 'concat: expected at least one tensor');
  const first = parts[0]!;
  const d = first.normDim(dim);
  for (const p of parts) {
    if (p.dtype !== first.dtype) throw new TunekitError('ERR_DTYPE', `concat: dtypes differ (${first.dtype} vs ${p.dtype})`);
    if (p.ndim !== first.ndim || p.shape.some((s, i) => i !== d && s !== first.shape[i])) {
      throw new TunekitError('ERR_SHAPE', `concat along ${d}: shapes [${first.shape}] and [${p.shape}] differ off that dimension`);
    }
  }
  const total = parts.reduce((s, p) => s + p.shape[d]!, 0);
  const outShape = first.shape.map((s, i) => (i === d ? total : s));
  const device = commonDevice('concat', parts, parts.map((_, i) => `part ${i}`));
  const out = Tensor.empty(outShape, first.dtype, false, device);
  const es = out.numel === 0 ? 0 : out.storage.bytes / out.numel;
  const outer = numelOf(first.shape.slice(0, d)), inner = numelOf(first.shape.slice(d + 1));
  let at = 0;
  for (const p of parts) {
    const pc = contig(p);
    const rowBytes = p.shape[d]! * inner * es;
    const dst = out.viewAs([out.numel - at * inner], [1], at * inner);
    run('copyRows', { src: pc, dst, rows: outer, rowBytes, srcStride: rowBytes, dstStride: total * inner * es });
    dst.dispose();
    at += p.shape[d]!;
    pc.dispose();
  }
  return out;
}

export { contiguousStrides };

// ---------------------------------------------------------------- bf16 compute (opt-in)

let computeDtype: 'f32' | 'bf16' = process.env.TUNEKIT_COMPUTE_DTYPE === 'bf16' ? 'bf16' : 'f32';
/** A weight's bf16 copy and the weight's storage version it was made from. */
let bf16Weights = new WeakMap<Tensor, { version: number; copy: Tensor<'bf16'> }>();

/**
 * 'bf16' (PyTorch's autocast to bf16, for the matrix products): every product with a weight runs
 * on the bf16 GEMM (AVX512_BF16 `vdpbf16ps` where present) with f32 accumulation and output: the
 * forward x W, the input gradient dy W^T and, for a trained weight, its gradient x^T dy. The
 * activation and the gradient are rounded to bf16 per call (on the CPU while the GEMM packs
 * them); the weight's bf16 copy is made once per version and cached. Weights, their gradients and
 * the optimizer state stay f32, as do every other op (attention, norms, losses) and the fused
 * LoRA kernel's rank-r adapter path. A weight is a leaf tensor (a parameter, trained or frozen,
 * or a constant), not an activation with a gradient history. Also set by TUNEKIT_COMPUTE_DTYPE=bf16
 * and by a config's training.dtype.
 * The cached copy is keyed by the weight's storage version, which every in-place write bumps
 * (loading, merging an adapter, assign/copyFrom/fill_, the optimizer): a stale copy is remade, so
 * a trained weight is copied once per optimizer step.
 */
export function setComputeDtype(d: 'f32' | 'bf16'): void {
  if (d !== 'f32' && d !== 'bf16') throw new TunekitError('ERR_VALUE', `compute dtype must be 'f32' or 'bf16', got ${JSON.stringify(d)}`);
  computeDtype = d;
  if (d === 'f32') clearBf16WeightCache();
}
export function getComputeDtype(): 'f32' | 'bf16' {
  return computeDtype;
}
export function clearBf16WeightCache(): void {
  bf16Weights = new WeakMap();
}

/**
 * Whether bf16 compute multiplies a by `w` in bf16: the mode is on, both are f32, and w is a weight
 * (a leaf). One row (decoding a token) streams the bf16 weight through a GEMV on the CPU: half the
 * bytes of the f32 one.
 */
export function bf16Product(a: Tensor, w: Tensor): boolean {
  return computeDtype === 'bf16' && a.dtype === 'f32' && w.dtype === 'f32' && w.gradFn === null;
}

/**
 * The bf16 copy of an f32 weight that bf16 compute multiplies by: made once per weight version
 * and held (outside any tidy scope) for as long as the weight lives. Not the caller's to dispose.
 */
export function weightBf16Copy(w: Tensor): Tensor<'bf16'> {
  let cached = bf16Weights.get(w);
  if (!cached || cached.version !== w.version) {
    cached?.copy.dispose();
    cached = { version: w.version, copy: keep(w.castRaw('bf16')) };
    bf16Weights.set(w, cached);
  }
  return cached.copy;
}

/**
 * op(a) op(w) on the bf16 GEMM for an f32 activation a and an f32 weight w (bf16 compute's
 * forward and input-gradient products): w's cached bf16 copy, a rounded to bf16.
 */
export function gemmBf16Weight(a: Tensor, w: Tensor, opts: { transA?: boolean; transB?: boolean; beta?: number; into?: Tensor<'f32'> } = {}): Tensor<'f32'> {
  return gemmRoundedA(a, weightBf16Copy(w), opts);
}

/**
 * A weight's gradient under bf16 compute: op(a) op(b) of two f32 operands (an activation and an
 * output gradient) on the bf16 GEMM, both rounded to bf16 (b by a cast), f32 accumulation and
 * output.
 */
export function gemmBf16Grad(a: Tensor, b: Tensor, opts: { transA?: boolean; transB?: boolean } = {}): Tensor<'f32'> {
  const bb = b.castRaw('bf16');
  const out = gemmRoundedA(a, bb, opts);
  bb.dispose();
  return out;
}

/** op(a) op(wb) for an f32 a and a bf16 wb: a rounded while the CPU GEMM packs it (no cast pass, no bf16 buffer), cast elsewhere. */
function gemmRoundedA(a: Tensor, wb: Tensor<'bf16'>, opts: { transA?: boolean; transB?: boolean; beta?: number; into?: Tensor<'f32'> }): Tensor<'f32'> {
  if (a.device === 'cpu') return gemm(a, wb, { ...opts, roundA: true });
  const ab = a.castRaw('bf16');
  const out = gemm(ab, wb, opts);
  ab.dispose();
  return out;
}

/**
 * Differentiable ops: each runs its kernel (lib/tensor/kernels.ts or a native call) and records
 * itself on the tape with what its gradient rule (rules.ts, one table) needs.
 * Shapes in comments: B batch, T tokens, C channels, H heads, D head size.
 */
import { TunekitError, describe } from '../errors.js';
import { Tensor, numelOf, contiguousStrides, type Shape } from '../tensor/tensor.js';
import * as K from '../tensor/kernels.js';
import type { DType } from '../tensor/dtype.js';
import type { Device } from '../tensor/device.js';
import { full, tensor } from '../tensor/creation.js';
import { record, needsGrad } from './tape.js';

type T = Tensor;
type F32 = Tensor<'f32'>;

function expectF32(ts: readonly T[], what: readonly string[]): void {
  ts.forEach((t, i) => K.expectDtype(t, 'f32', what[i]!));
}

/** A number as a 0-d f32 tensor on `device` (the other operand's), a tensor as is. */
function asTensor(x: T | number, device: Device): T {
  return typeof x === 'number' ? full([], x, 'f32', device) : x;
}

// ---------------------------------------------------------------- element-wise

function binaryOp(op: 'add' | 'sub' | 'mul' | 'div', a: T | number, b: T | number): F32 {
  if (typeof a === 'number' && typeof b === 'number') throw new TunekitError('ERR_VALUE', `${op}: expected at least one tensor`);
  const device = typeof a === 'number' ? (b as T).device : a.device;
  const ta = asTensor(a, device);
  const tb = asTensor(b, device);
  const out = K.binary(op, ta, tb);
  record(op, [ta, tb], out, null);
  return out;
}

/** a + b with broadcasting. @example add(x, bias) */
export const add = (a: T | number, b: T | number): F32 => binaryOp('add', a, b);
/** a - b with broadcasting. */
export const sub = (a: T | number, b: T | number): F32 => binaryOp('sub', a, b);
/** a * b with broadcasting. */
export const mul = (a: T | number, b: T | number): F32 => binaryOp('mul', a, b);
/** a / b with broadcasting. */
export const div = (a: T | number, b: T | number): F32 => binaryOp('div', a, b);
// The native kernel, not (a + b + |a - b|) / 2: that form rounds at the scale of the larger operand,
// so maximum(1e-4, -100) came out 9.92e-5 and clamp(1e-5, 0, 1e6) came out 0.
function extremum(op: 'maximum' | 'minimum', a: T, b: T): F32 {
  const out = K.binary(op, a, b);
  record(op, [a, b], out, null);
  return out;
}
/** element-wise maximum with broadcasting; the gradient goes to the larger operand (ties split evenly, as torch). */
export const maximum = (a: T, b: T): F32 => extremum('maximum', a, b);
/** element-wise minimum with broadcasting; the gradient goes to the smaller operand (ties split evenly). */
export const minimum = (a: T, b: T): F32 => extremum('minimum', a, b);
/** clamp to [lo, hi]. */
export const clamp = (x: T, lo: number, hi: number): F32 => minimum(maximum(x, full([], lo, 'f32', x.device)), full([], hi, 'f32', x.device));

function unaryOp(op: K.UnaryOp, x: T, param = 0): F32 {
  const out = K.unary(op, x, param);
  record(op, [x], out, { param });
  return out;
}

export const neg = (x: T): F32 => unaryOp('neg', x);
export const exp = (x: T): F32 => unaryOp('exp', x);
export const log = (x: T): F32 => unaryOp('log', x);
export const sqrt = (x: T): F32 => unaryOp('sqrt', x);
export const rsqrt = (x: T): F32 => unaryOp('rsqrt', x);
export const abs = (x: T): F32 => unaryOp('abs', x);
export const tanh = (x: T): F32 => unaryOp('tanh', x);
export const sigmoid = (x: T): F32 => unaryOp('sigmoid', x);
export const relu = (x: T): F32 => unaryOp('relu', x);
export const silu = (x: T): F32 => unaryOp('silu', x);
export const square = (x: T): F32 => unaryOp('square', x);
/** GELU; 'tanh' is GPT-2's gelu_new, 'erf' BERT's exact gelu. */
export const gelu = (x: T, approximate: 'tanh' | 'erf' = 'tanh'): F32 => unaryOp(approximate === 'tanh' ? 'gelu_tanh' : 'gelu_erf', x);
/** x * s for a number s. */
export const scale = (x: T, s: number): F32 => unaryOp('mul_scalar', x, s);
/** x + s for a number s. */
export const addScalar = (x: T, s: number): F32 => unaryOp('add_scalar', x, s);
/** x ** p for a number p. */
export const pow = (x: T, p: number): F32 => unaryOp('pow_scalar', x, p);

/** log(sigmoid(x)) computed stably as -softplus(-x) = min(x, 0) - log1p(exp(-|x|)). */
export function logSigmoid(x: T): F32 {
  // composed from recorded ops so the gradient follows automatically
  const negAbs = neg(abs(x));
  const l = log(addScalar(exp(negAbs), 1));
  const minx = neg(relu(neg(x)));
  return sub(minx, l);
}

// ---------------------------------------------------------------- reductions

/** Sum over `dim` (all elements when dim is undefined). */
export function sum(x: T, dim?: number, keepDim = false): F32 {
  const out = dim === undefined ? K.sumAll(x) : K.reduce('sum', x, dim, keepDim);
  record('sum', [x], out, { dim: dim === undefined ? null : x.normDim(dim), keepDim, mean: false });
  return out;
}

/** Mean over `dim` (all elements when dim is undefined). */
export function mean(x: T, dim?: number, keepDim = false): F32 {
  const out = dim === undefined ? K.sumAll(x, true) : K.reduce('mean', x, dim, keepDim);
  record('sum', [x], out, { dim: dim === undefined ? null : x.normDim(dim), keepDim, mean: true });
  return out;
}

/** Max over dim (not differentiable: used for metrics). */
export function max(x: T, dim: number, keepDim = false): F32 {
  return K.reduce('max', x, dim, keepDim);
}

/** Index of the max along the last dim, i32. */
export function argmax(x: T): Tensor<'i32'> {
  return K.argmax(x);
}

// ---------------------------------------------------------------- layout

/** Same data, new shape (a view when contiguous). One dimension may be -1. */
export function reshape<D extends DType>(x: Tensor<D>, shape: readonly number[]): Tensor<D> {
  const sh = [...shape];
  const neg1 = sh.indexOf(-1);
  if (neg1 >= 0) {
    const rest = numelOf(sh.filter((_, i) => i !== neg1));
    sh[neg1] = rest === 0 ? 0 : x.numel / rest;
  }
  if (numelOf(sh) !== x.numel || sh.some((d) => !Number.isInteger(d) || d < 0)) {
    throw new TunekitError('ERR_SHAPE', `reshape: cannot view [${x.shape}] (${x.numel} elements) as [${shape}]`);
  }
  const src = x.isContiguous ? x : x.contiguousRaw();
  const out = src.viewAs(sh, contiguousStrides(sh), src.offset);
  if (src !== x) src.dispose();
  record('reshape', [x], out, { shape: [...x.shape] });
  return out;
}

/** Reorders dimensions (a view). @example permute(x, [0, 2, 1, 3]) */
export function permute<D extends DType>(x: Tensor<D>, dims: readonly number[]): Tensor<D> {
  if (dims.length !== x.ndim || new Set(dims.map((d) => x.normDim(d))).size !== x.ndim) {
    throw new TunekitError('ERR_SHAPE', `permute: expected a permutation of ${x.ndim} dims but received [${dims}]`);
  }
  const d = dims.map((v) => x.normDim(v));
  const out = x.viewAs(d.map((i) => x.shape[i]!), d.map((i) => x.strides[i]!), x.offset);
  record('permute', [x], out, { dims: d });
  return out;
}

/** Swaps two dimensions (a view). */
export function transpose<D extends DType>(x: Tensor<D>, d0 = -2, d1 = -1): Tensor<D> {
  const dims = x.shape.map((_, i) => i);
  const a = x.normDim(d0), b = x.normDim(d1);
  dims[a] = b;
  dims[b] = a;
  return permute(x, dims);
}

/** x[..., start:end, ...] along dim (a view). */
export function slice<D extends DType>(x: Tensor<D>, dim: number, start: number, end?: number): Tensor<D> {
  const d = x.normDim(dim);
  const n = x.shape[d]!;
  const s = start < 0 ? start + n : start;
  const e = end === undefined ? n : end < 0 ? end + n : Math.min(end, n);
  if (!(s >= 0 && s <= e && e <= n)) {
    throw new TunekitError('ERR_INDEX', `slice: [${start}, ${end}) is out of range for dimension ${d} of size ${n}`);
  }
  const shape = x.shape.map((v, i) => (i === d ? e - s : v));
  const out = x.viewAs(shape, x.strides, x.offset + s * x.strides[d]!);
  record('slice', [x], out, { dim: d, start: s, shape: [...x.shape] });
  return out;
}

/** A contiguous copy (or view when already contiguous). */
export function contiguous<D extends DType>(x: Tensor<D>): Tensor<D> {
  const out = x.contiguousRaw();
  record('identity', [x], out, null);
  return out;
}

/** Joins tensors along dim. */
export function concat(parts: T[], dim: number): T {
  const out = K.concat(parts, dim);
  const d = parts[0]!.normDim(dim);
  record('concat', parts, out, { dim: d, sizes: parts.map((p) => p.shape[d]!) });
  return out;
}

/** Converts to dtype (f32 <-> bf16/f16; the gradient is cast back to f32). */
export function cast<D extends DType>(x: T, dtype: D): Tensor<D> {
  const out = x.castRaw(dtype);
  record('cast', [x], out, null);
  return out;
}

// ---------------------------------------------------------------- linear algebra

/**
 * Matrix product. a [..., M, K] x b [K, N] (b shared) or a [Bt, M, K] x b [Bt, K, N] (batched);
 * transA/transB use op(x) = x^T on the last two dims.
 */
export function matmul(a: T, b: T, opts: { transA?: boolean; transB?: boolean } = {}): F32 {
  const transA = opts.transA ?? false, transB = opts.transB ?? false;
  // a [..., K] times a shared 2-D b: the product with a weight (b a leaf) runs in bf16 under bf16
  // compute, and so does its backward
  const sharedB = b.ndim === 2 && a.ndim >= 2 && !transA;
  const bf16 = sharedB && K.bf16Product(a, b);
  let out: F32;
  if (sharedB) {
    const lead = a.shape.slice(0, -1);
    const a2 = a.ndim === 2 ? a : a.contiguousRaw().viewAs([numelOf(lead), a.shape[a.ndim - 1]!], contiguousStrides([numelOf(lead), a.shape[a.ndim - 1]!]), 0);
    const a2c = a2.isContiguous ? a2 : a2.contiguousRaw();
    const o2 = bf16 ? K.gemmBf16Weight(a2c, b, { transB }) : K.gemm(a2c, b, { transB });
    if (a2c !== a2) a2c.dispose();
    out = o2.viewAs([...lead, o2.shape[1]!], contiguousStrides([...lead, o2.shape[1]!]), 0) as F32;
    if (a2 !== a) a2.dispose();
    o2.dispose();
  } else if (a.ndim === b.ndim && a.ndim >= 3) {
    const batchShape = a.shape.slice(0, -2);
    if (!K.sameShape(batchShape, b.shape.slice(0, -2))) {
      throw new TunekitError('ERR_SHAPE', `matmul: batch dimensions differ: [${a.shape}] vs [${b.shape}]`);
    }
    const nb = numelOf(batchShape);
    const a3 = a.contiguousRaw(), b3 = b.contiguousRaw();
    const av = a3.viewAs([nb, a.shape[a.ndim - 2]!, a.shape[a.ndim - 1]!], contiguousStrides([nb, a.shape[a.ndim - 2]!, a.shape[a.ndim - 1]!]), a3.offset);
    const bv = b3.viewAs([nb, b.shape[b.ndim - 2]!, b.shape[b.ndim - 1]!], contiguousStrides([nb, b.shape[b.ndim - 2]!, b.shape[b.ndim - 1]!]), b3.offset);
    const o3 = K.gemm(av, bv, { transA, transB });
    out = o3.viewAs([...batchShape, o3.shape[1]!, o3.shape[2]!], contiguousStrides([...batchShape, o3.shape[1]!, o3.shape[2]!]), 0) as F32;
    for (const t of [a3, b3, av, bv, o3]) t.dispose();
  } else if (a.ndim === 2 && b.ndim === 2) {
    out = K.gemm(a, b, { transA, transB });
  } else {
    throw new TunekitError('ERR_SHAPE', `matmul: unsupported operand shapes [${a.shape}] and [${b.shape}]`);
  }
  record('matmul', [a, b], out, { transA, transB, bf16 });
  return out;
}

/**
 * y = x W^T + b for W [out, in] (nn.Linear), or y = x W + b for W [in, out] (GPT-2 Conv1D,
 * `wInOut`). x [..., in] -> y [..., out]. No gradient is computed for a frozen W.
 */
export function linear(x: T, w: T, bias: T | null, wInOut = false): F32 {
  return linearIn(x, w, bias, wInOut, K.bf16Product(x, w));
}

/** linear() with its products' precision given: bf16 (bf16 compute, forward and backward) or f32. */
function linearIn(x: T, w: T, bias: T | null, wInOut: boolean, bf16: boolean): F32 {
  const inF = wInOut ? w.shape[0]! : w.shape[1]!;
  const outF = wInOut ? w.shape[1]! : w.shape[0]!;
  if (w.ndim !== 2 || x.shape[x.ndim - 1] !== inF) {
    throw new TunekitError('ERR_SHAPE', `linear: input [${x.shape}] does not match weight [${w.shape}]${wInOut ? ' (in, out layout)' : ' (out, in layout)'}`);
  }
  if (bias && bias.numel !== outF) throw new TunekitError('ERR_SHAPE', `linear: bias has ${bias.numel} elements, expected ${outF}`);
  const lead = x.shape.slice(0, -1);
  const M = numelOf(lead);
  const xc = x.contiguousRaw();
  const x2 = xc.viewAs([M, inF], [inF, 1], xc.offset);
  const y2 = bias ? K.broadcastRows(bias as F32, M) : Tensor.empty([M, outF], 'f32', false, w.device);
  const product = { transB: !wInOut, into: y2, beta: bias ? 1 : 0 };
  if (bf16) K.gemmBf16Weight(x2, w, product);
  else K.gemm(x2, w, product);
  const out = y2.viewAs([...lead, outF], contiguousStrides([...lead, outF]), 0) as F32;
  xc.dispose(); x2.dispose(); y2.dispose();
  record('linear', [x, w, bias], out, { wInOut, bf16 });
  return out;
}

/**
 * Fused linear + LoRA: y = x W^T + b + scale * (dropout(x) A^T) B^T, never forming W + BA and
 * never computing a gradient for W. A [r, in], B [out, r].
 */
export function loraLinear(x: T, w: T, bias: T | null, a: T, b: T, opts: { scale: number; dropout?: number; seed?: number; wInOut?: boolean }): F32 {
  const wInOut = opts.wInOut ?? false;
  const inF = wInOut ? w.shape[0]! : w.shape[1]!;
  const outF = wInOut ? w.shape[1]! : w.shape[0]!;
  const r = a.shape[0]!;
  expectF32([x, w, a, b], ['loraLinear input', 'loraLinear weight', 'loraLinear A', 'loraLinear B']);
  if (x.shape[x.ndim - 1] !== inF || a.shape[1] !== inF || b.shape[0] !== outF || b.shape[1] !== r) {
    throw new TunekitError('ERR_SHAPE', `loraLinear: x [${x.shape}], W [${w.shape}], A [${a.shape}], B [${b.shape}] do not fit (in ${inF}, out ${outF}, r ${r})`);
  }
  const p = opts.dropout ?? 0;
  const dev = K.commonDevice('loraLinear', [x, w, bias, a, b], ['its input', 'its weight', 'its bias', 'lora_A', 'lora_B']);
  // bf16 compute with a frozen base: the base products go through the bf16 GEMM, the rank-r
  // adapter path stays f32. On the CPU the fused kernel takes the weight's bf16 copy (the adapter
  // added in the GEMM's epilogue); elsewhere the layer is composed of ops, with the dropout mask
  // the fused kernel would draw (same seed and p)
  const bf16Base = K.bf16Product(x, w) && !needsGrad(w);
  if (bf16Base && dev !== 'cpu') {
    const base = linearIn(x, w, bias, wInOut, true);
    const xd = p > 0 && needsGrad(a) ? dropout(x, p, opts.seed ?? 0) : x;
    return add(base, scale(linearIn(linearIn(xd, a, null, false, false), b, null, false, false), opts.scale));
  }
  const lead = x.shape.slice(0, -1);
  const M = numelOf(lead);
  const xc = x.contiguousRaw();
  // dropout on the adapter path only (PEFT's lora_dropout), fused into the kernel: the dropped
  // input is never stored, only its kept flags (u8), which the backward reads
  const dropP = p > 0 && needsGrad(a) ? p : 0;
  const mask = dropP > 0 ? Tensor.empty(xc.shape, 'u8', false, dev) : null;
  const y = Tensor.empty([...lead, outF], 'f32', false, dev);
  const xa = Tensor.empty([M, r], 'f32', false, dev);
  // the bf16 copy is the cache's (never disposed here)
  const wc = bf16Base ? K.weightBf16Copy(w) : w.contiguousRaw();
  const ac = a.contiguousRaw(), bc = b.contiguousRaw();
  const bb = bias ? bias.contiguousRaw() : null;
  const wDtype = bf16Base ? { wDtype: 'bf16' as const } : {};
  K.run('loraLinearForward', { x: xc, w: wc, bias: bb, a: ac, b: bc, y, xa, mask, M, inF, outF, r, scale: opts.scale, wInOut, p: dropP, seed: opts.seed ?? 0, ...wDtype });
  if (!bf16Base) wc.dispose();
  ac.dispose(); bc.dispose(); bb?.dispose();
  record('loraLinear', [x, w, bias, a, b], y, { xc, xa, mask, p: dropP, scale: opts.scale, wInOut, M, inF, outF, r, bf16Base });
  if (!y.gradFn) {
    xc.dispose(); xa.dispose(); mask?.dispose();
  }
  return y;
}

// ---------------------------------------------------------------- neural-network ops

/** Softmax over the last dim (log-softmax when log). */
export function softmax(x: T, log = false): F32 {
  K.expectDtype(x, 'f32', 'softmax input');
  const cols = x.shape[x.ndim - 1]!;
  const xc = x.contiguousRaw();
  const y = Tensor.empty(x.shape, 'f32', false, x.device);
  K.run('softmax', { x: xc, y, rows: x.numel / cols, cols, log });
  xc.dispose();
  record('softmax', [x], y, { log });
  return y;
}

export const logSoftmax = (x: T): F32 => softmax(x, true);

/** LayerNorm over the last dim. x [..., C], w, b [C]. */
export function layerNorm(x: T, w: T, b: T, eps: number): F32 {
  expectF32([x, w, b], ['layerNorm input', 'layerNorm weight', 'layerNorm bias']);
  const C = x.shape[x.ndim - 1]!;
  if (w.numel !== C || b.numel !== C) throw new TunekitError('ERR_SHAPE', `layerNorm: weight/bias must have ${C} elements, got ${w.numel}/${b.numel}`);
  const rows = x.numel / C;
  const dev = K.commonDevice('layerNorm', [x, w, b], ['its input', 'its weight', 'its bias']);
  const xc = x.contiguousRaw(), wc = w.contiguousRaw(), bc = b.contiguousRaw();
  const y = Tensor.empty(x.shape, 'f32', false, dev);
  const meanT = Tensor.empty([rows], 'f32', false, dev), rstd = Tensor.empty([rows], 'f32', false, dev);
  K.run('layerNorm', { x: xc, w: wc, b: bc, y, mean: meanT, rstd, rows, cols: C, eps });
  wc.dispose(); bc.dispose();
  record('layerNorm', [x, w, b], y, { xc, mean: meanT, rstd, rows, C });
  if (!y.gradFn) { xc.dispose(); meanT.dispose(); rstd.dispose(); }
  return y;
}

/** RMSNorm over the last dim (Llama). x [..., C], w [C]. */
export function rmsNorm(x: T, w: T, eps: number): F32 {
  expectF32([x, w], ['rmsNorm input', 'rmsNorm weight']);
  const C = x.shape[x.ndim - 1]!;
  if (w.numel !== C) throw new TunekitError('ERR_SHAPE', `rmsNorm: weight must have ${C} elements, got ${w.numel}`);
  const rows = x.numel / C;
  const dev = K.commonDevice('rmsNorm', [x, w], ['its input', 'its weight']);
  const xc = x.contiguousRaw(), wc = w.contiguousRaw();
  const y = Tensor.empty(x.shape, 'f32', false, dev);
  const rstd = Tensor.empty([rows], 'f32', false, dev);
  K.run('rmsNorm', { x: xc, w: wc, y, rstd, rows, cols: C, eps });
  wc.dispose();
  record('rmsNorm', [x, w], y, { xc, rstd, rows, C });
  if (!y.gradFn) { xc.dispose(); rstd.dispose(); }
  return y;
}

/** Rows of `table` [N, C] picked by i32 ids [...] -> [..., C] (embedding lookup). */
export function embedding(table: T, ids: Tensor<'i32'>): F32 {
  K.expectDtype(ids, 'i32', 'embedding ids');
  K.expectDtype(table, 'f32', 'embedding table');
  if (table.ndim !== 2) throw new TunekitError('ERR_SHAPE', `embedding: expected a table [N, C] but received [${table.shape}]`);
  const [N, C] = table.shape as [number, number];
  const dev = K.commonDevice('embedding', [table, ids], ['its table', 'its ids']);
  const ic = ids.contiguousRaw(), tc = table.contiguousRaw();
  const out = Tensor.empty([...ids.shape, C], 'f32', false, dev);
  K.run('gatherRows', { table: tc, idx: ic, out, n: ids.numel, rowSize: C, numRows: N });
  tc.dispose();
  record('embedding', [table], out, { ids: ic, N, C });
  if (!out.gradFn) ic.dispose();
  return out;
}

/** Inverted dropout with probability p; identity when p = 0 or not training. */
export function dropout(x: T, p: number, seed: number, training = true): T {
  if (!training || p === 0) return x;
  if (!(p >= 0 && p < 1)) throw new TunekitError('ERR_VALUE', `dropout: expected p in [0, 1) but received ${describe(p)}`);
  const xc = x.contiguousRaw();
  const y = Tensor.empty(x.shape, 'f32', false, x.device);
  const mask = Tensor.empty(x.shape, 'u8', false, x.device);
  K.run('dropout', { x: xc, y, mask, n: x.numel, p, seed });
  xc.dispose();
  record('dropout', [x], y, { mask, p });
  if (!y.gradFn) mask.dispose();
  return y;
}

/**
 * Mean cross-entropy over rows whose label is not ignoreIndex. logits [N, C] f32, labels i32 [N].
 * Returns a scalar; an all-ignored batch gives 0.
 */
export function crossEntropy(logits: T, labels: Tensor<'i32'>, ignoreIndex = -100): F32 {
  K.expectDtype(labels, 'i32', 'cross-entropy labels');
  K.expectDtype(logits, 'f32', 'cross-entropy logits');
  const C = logits.shape[logits.ndim - 1]!;
  const N = logits.numel / C;
  if (labels.numel !== N) throw new TunekitError('ERR_SHAPE', `crossEntropy: ${N} rows of logits but ${labels.numel} labels`);
  const dev = K.commonDevice('crossEntropy', [logits, labels], ['its logits', 'its labels']);
  const lc = logits.contiguousRaw(), yc = labels.contiguousRaw();
  const rowLoss = Tensor.empty([N], 'f32', false, dev), lse = Tensor.empty([N], 'f32', false, dev);
  const count = K.run('crossEntropy', { logits: lc, labels: yc, loss: rowLoss, lse, rows: N, classes: C, ignoreIndex });
  const total = K.sumAll(rowLoss);
  const out = K.unary('mul_scalar', total, count > 0 ? 1 / count : 0);
  total.dispose(); rowLoss.dispose();
  record('crossEntropy', [logits], out, { lc, yc, lse, N, C, count, ignoreIndex });
  if (!out.gradFn) { lc.dispose(); yc.dispose(); lse.dispose(); }
  return out;
}

/**
 * Scaled dot-product attention. q [B, Hq, Tq, D], k/v [B, Hkv, Tk, D]; keyMask i32 [B, Tk]
 * (1 = attend); causal offsets queries to the end of the keys (KV cache, prefixes).
 */
export function attention(q: T, k: T, v: T, opts: { causal: boolean; keyMask?: Tensor<'i32'> | null; scale?: number }): F32 {
  const [B, Hq, Tq, D] = q.shape as [number, number, number, number];
  const Hkv = k.shape[1]!, Tk = k.shape[2]!;
  if (q.ndim !== 4 || k.ndim !== 4 || v.ndim !== 4 || k.shape[0] !== B || k.shape[3] !== D || !K.sameShape(k.shape, v.shape)) {
    throw new TunekitError('ERR_SHAPE', `attention: q [${q.shape}], k [${k.shape}], v [${v.shape}] do not fit [B, H, T, D]`);
  }
  expectF32([q, k, v], ['attention q', 'attention k', 'attention v']);
  if (opts.keyMask) {
    K.expectDtype(opts.keyMask, 'i32', 'attention keyMask');
    if (!K.sameShape(opts.keyMask.shape, [B, Tk])) {
      throw new TunekitError('ERR_SHAPE', `attention: expected keyMask [B, Tk] = [${B},${Tk}] but received [${opts.keyMask.shape}]`);
    }
  }
  const scale = opts.scale ?? 1 / Math.sqrt(D);
  const dev = K.commonDevice('attention', [q, k, v, opts.keyMask], ['q', 'k', 'v', 'keyMask']);
  const qc = q.contiguousRaw(), kc = k.contiguousRaw(), vc = v.contiguousRaw();
  const mask = opts.keyMask ? opts.keyMask.contiguousRaw() : null;
  const out = Tensor.empty([B, Hq, Tq, D], 'f32', false, dev);
  const lse = Tensor.empty([B, Hq, Tq], 'f32', false, dev);
  K.run('attention', { q: qc, k: kc, v: vc, out, lse, keyMask: mask, B, Hq, Hkv, Tq, Tk, D, scale, causal: opts.causal });
  record('attention', [q, k, v], out, { qc, kc, vc, mask, lse, B, Hq, Hkv, Tq, Tk, D, scale, causal: opts.causal });
  if (!out.gradFn) { qc.dispose(); kc.dispose(); vc.dispose(); mask?.dispose(); lse.dispose(); }
  return out;
}

/** Rotary position embedding (rotate-half layout) on x [B, H, T, D]; positions i32 [B, T]. */
export function rope(x: T, positions: Tensor<'i32'>, invFreq: Tensor<'f32'>, rotDim?: number): F32 {
  const [B, H, Tn, D] = x.shape as [number, number, number, number];
  const rd = rotDim ?? D;
  K.expectDtype(x, 'f32', 'rope input');
  K.expectDtype(positions, 'i32', 'rope positions');
  K.expectDtype(invFreq, 'f32', 'rope invFreq');
  if (x.ndim !== 4 || !K.sameShape(positions.shape, [B, Tn]) || invFreq.numel < rd / 2) {
    throw new TunekitError('ERR_SHAPE', `rope: expected x [B, H, T, D], positions [B, T] and invFreq of at least rotDim / 2 = ${rd / 2} values but received x [${x.shape}], positions [${positions.shape}], invFreq [${invFreq.shape}]`);
  }
  const dev = K.commonDevice('rope', [x, positions, invFreq], ['its input', 'its positions', 'its invFreq']);
  const xc = x.contiguousRaw(), pc = positions.contiguousRaw(), fc = invFreq.contiguousRaw();
  const out = Tensor.empty(x.shape, 'f32', false, dev);
  K.run('rope', { x: xc, out, positions: pc, invFreq: fc, B, H, T: Tn, D, rotDim: rd, inverse: false });
  xc.dispose(); pc.dispose(); fc.dispose();
  record('rope', [x], out, { positions, invFreq, B, H, T: Tn, D, rd });
  return out;
}

/** Rows of x [R, C] picked by i32 idx [n] -> [n, C] (e.g. the last token of each sequence). */
export function gatherRows(x: T, idx: Tensor<'i32'>): F32 {
  K.expectDtype(x, 'f32', 'gatherRows input');
  K.expectDtype(idx, 'i32', 'gatherRows indices');
  const C = x.shape[x.ndim - 1]!;
  const R = x.numel / C;
  const dev = K.commonDevice('gatherRows', [x, idx], ['its input', 'its indices']);
  const xc = x.contiguousRaw(), ic = idx.contiguousRaw();
  const out = Tensor.empty([idx.numel, C], 'f32', false, dev);
  K.run('gatherRows', { table: xc, idx: ic, out, n: idx.numel, rowSize: C, numRows: R });
  xc.dispose();
  record('gatherRows', [x], out, { idx: ic, R, C, shape: [...x.shape] });
  if (!out.gradFn) ic.dispose();
  return out;
}

export type { Shape };

/** The three [B, H, T, D] parts (q, k, v) of a packed [3, B, H, T, D] tensor, as views. */
export function packedParts(packed: Tensor, shape: readonly [number, number, number, number]): [Tensor, Tensor, Tensor] {
  const n = numelOf(shape), st = contiguousStrides(shape);
  return [0, 1, 2].map((i) => packed.viewAs(shape, st, packed.offset + i * n)) as [Tensor, Tensor, Tensor];
}

/**
 * Self-attention straight from a packed projection: qkv [B, T, 3C] (q | k | v, each H heads of
 * D = C / H) -> out [B, T, C] with the heads merged. Same result as slicing, splitting heads,
 * attention() and merging heads. Where the backend has the token-major kernel (the CPU) it reads
 * qkv and writes out in place, B sequences of T rows (no layout copies); elsewhere it runs the
 * head-major kernel between two layout copies each way.
 */
export function qkvAttention(qkv: T, H: number, opts: { causal: boolean; keyMask?: Tensor<'i32'> | null; scale?: number }): F32 {
  const [B, Tn, C3] = qkv.shape as [number, number, number];
  const C = C3 / 3, D = C / H;
  if (qkv.ndim !== 3 || !Number.isInteger(C) || !Number.isInteger(D)) {
    throw new TunekitError('ERR_SHAPE', `qkvAttention: expected qkv [B, T, 3C] with C divisible by ${H} heads but received [${qkv.shape}]`);
  }
  K.expectDtype(qkv, 'f32', 'qkvAttention input');
  if (opts.keyMask) {
    K.expectDtype(opts.keyMask, 'i32', 'attention keyMask');
    if (!K.sameShape(opts.keyMask.shape, [B, Tn])) {
      throw new TunekitError('ERR_SHAPE', `attention: expected keyMask [B, Tk] = [${B},${Tn}] but received [${opts.keyMask.shape}]`);
    }
  }
  const scale = opts.scale ?? 1 / Math.sqrt(D);
  const dev = K.commonDevice('qkvAttention', [qkv, opts.keyMask], ['qkv', 'keyMask']);
  if (K.supports('attentionRows', dev)) {
    const offsets = new Int32Array(B + 1);
    for (let b = 0; b <= B; b++) offsets[b] = b * Tn;
    return attentionRowsOp(qkv, H, tensor(offsets, [B + 1], 'i32', dev), opts.keyMask ?? null, scale, opts.causal);
  }
  const xc = qkv.contiguousRaw();
  const n = B * H * Tn * D;
  // [B, T, 3, H, D] -> packed [3, B, H, T, D]
  const packed = Tensor.empty([3, B, H, Tn, D], 'f32', false, qkv.device);
  K.run('copyStrided', { src: xc, dst: packed, elemSize: 4, shape: [3, B, H, Tn, D], strides: [C, Tn * C3, D, C3, 1] });
  xc.dispose();
  const mask = opts.keyMask ? opts.keyMask.contiguousRaw() : null;
  const o4 = Tensor.empty([B, H, Tn, D], 'f32', false, dev);
  const lse = Tensor.empty([B, H, Tn], 'f32', false, dev);
  const [q, k, v] = packedParts(packed, [B, H, Tn, D]);
  K.run('attention', { q, k, v, out: o4, lse, keyMask: mask, B, Hq: H, Hkv: H, Tq: Tn, Tk: Tn, D, scale, causal: opts.causal });
  q.dispose(); k.dispose(); v.dispose();
  // [B, H, T, D] -> [B, T, H, D]
  const out = Tensor.empty([B, Tn, C], 'f32', false, qkv.device);
  K.run('copyStrided', { src: o4, dst: out, elemSize: 4, shape: [B, Tn, H, D], strides: [H * Tn * D, D, Tn * D, 1] });
  record('qkvAttention', [qkv], out, { packed, o4, lse, mask, B, H, T: Tn, D, scale, causal: opts.causal });
  if (!out.gradFn) { packed.dispose(); o4.dispose(); lse.dispose(); mask?.dispose(); }
  return out;
}

/**
 * Self-attention over variable-length sequences packed row after row, without padding: qkv
 * [N, 3C] (a packed projection as in qkvAttention) -> out [N, C]; sequence i is rows offsets[i]
 * .. offsets[i + 1] of i32 offsets [S + 1] (0 = offsets[0] <= ... <= offsets[S] = N) and attends
 * only to its own rows (causally: row j of a sequence sees its rows <= j). keyMask i32 [N]
 * (1 = may be attended to) or none. lastQueryOnly: only each sequence's last row queries, out
 * [S, C] (sequence classification's last layer; every sequence needs a row). The kernel is the CPU's (`supports('attentionRows', device)`):
 * models pack their batches only where it exists.
 * @example packedQkvAttention(qkv, 4, tensor([0, 3, 5], [3], 'i32'), { causal: true }) // two sequences of 3 and 2 rows
 */
export function packedQkvAttention(qkv: T, H: number, offsets: Tensor<'i32'>, opts: { causal: boolean; keyMask?: Tensor<'i32'> | null; scale?: number; lastQueryOnly?: boolean }): F32 {
  const [N, C3] = qkv.shape as [number, number];
  const C = C3 / 3, D = C / H;
  if (qkv.ndim !== 2 || !Number.isInteger(C) || !Number.isInteger(D)) {
    throw new TunekitError('ERR_SHAPE', `packedQkvAttention: expected qkv [N, 3C] with C divisible by ${H} heads but received [${qkv.shape}]`);
  }
  K.expectDtype(qkv, 'f32', 'packedQkvAttention input');
  K.expectDtype(offsets, 'i32', 'packedQkvAttention offsets');
  if (offsets.ndim !== 1 || offsets.numel < 1) {
    throw new TunekitError('ERR_SHAPE', `packedQkvAttention: expected offsets [S + 1] but received [${offsets.shape}]`);
  }
  if (opts.keyMask) {
    K.expectDtype(opts.keyMask, 'i32', 'packedQkvAttention keyMask');
    if (!K.sameShape(opts.keyMask.shape, [N])) {
      throw new TunekitError('ERR_SHAPE', `packedQkvAttention: expected keyMask [N] = [${N}] but received [${opts.keyMask.shape}]`);
    }
  }
  const dev = K.commonDevice('packedQkvAttention', [qkv, offsets, opts.keyMask], ['qkv', 'offsets', 'keyMask']);
  if (!K.supports('attentionRows', dev)) {
    throw new TunekitError('ERR_DEVICE', `packedQkvAttention: the ${dev} backend has no kernel for packed sequences (attentionRows); pad the batch and use qkvAttention there`);
  }
  return attentionRowsOp(qkv, H, offsets.contiguousRaw() as Tensor<'i32'>, opts.keyMask ?? null, opts.scale ?? 1 / Math.sqrt(D), opts.causal, opts.lastQueryOnly ?? false);
}

/**
 * The token-major kernel on qkv [..., 3C] seen as rows; out [..., C], or [S, C] with lastQueryOnly
 * (each sequence's last row alone queries). Takes ownership of `offsets`.
 */
function attentionRowsOp(qkv: T, H: number, offsets: Tensor<'i32'>, keyMask: Tensor<'i32'> | null, scale: number, causal: boolean, lastQueryOnly = false): F32 {
  const C3 = qkv.shape[qkv.ndim - 1]!, C = C3 / 3, D = C / H;
  const N = qkv.numel / C3, S = offsets.numel - 1;
  const qc = qkv.contiguousRaw();
  const mask = keyMask ? keyMask.contiguousRaw() : null;
  const out = Tensor.empty(lastQueryOnly ? [S, C] : [...qkv.shape.slice(0, -1), C], 'f32', false, qkv.device);
  const lse = Tensor.empty([H, lastQueryOnly ? S : N], 'f32', false, qkv.device);
  K.run('attentionRows', { qkv: qc, offsets, keyMask: mask, out, lse, N, S, H, D, scale, causal, lastQueryOnly });
  record('attentionRows', [qkv], out, { qkv: qc, offsets, mask, lse, N, S, H, D, scale, causal, lastQueryOnly });
  if (!out.gradFn) { qc.dispose(); offsets.dispose(); mask?.dispose(); lse.dispose(); }
  return out;
}

/**
 * The inverse of gatherRows: x [n, C] written to rows idx [n] of a zero [R, C] (idx distinct, in
 * [0, R)); the gradient gathers those rows back. Unpacks a packed batch into its padded layout.
 * @example scatterRows(packed, rows, B * T) // [B*T, C], zero at the padding
 */
export function scatterRows(x: T, idx: Tensor<'i32'>, R: number): F32 {
  K.expectDtype(x, 'f32', 'scatterRows input');
  K.expectDtype(idx, 'i32', 'scatterRows indices');
  const C = x.shape[x.ndim - 1]!;
  if (x.numel / C !== idx.numel) throw new TunekitError('ERR_SHAPE', `scatterRows: ${x.numel / C} rows but ${idx.numel} indices`);
  const dev = K.commonDevice('scatterRows', [x, idx], ['its input', 'its indices']);
  const xc = x.contiguousRaw(), ic = idx.contiguousRaw();
  const out = full([R, C], 0, 'f32', dev);
  K.run('scatterAddRows', { src: xc, idx: ic, dst: out, n: idx.numel, rowSize: C, numRows: R });
  xc.dispose();
  record('scatterRows', [x], out, { idx: ic, C, shape: [...x.shape] });
  if (!out.gradFn) ic.dispose();
  return out;
}

// image ops (convolution, batch norm, pooling): lib/autograd/vision_ops.ts
export { conv2d, loraConv2d, batchNorm2d, maxPool2d, avgPool2d, adaptiveAvgPool2d, withReferenceVisionKernels, type Conv2dOptions, type BatchNormOptions, type Pool2dOptions, type Pair } from './vision_ops.js';

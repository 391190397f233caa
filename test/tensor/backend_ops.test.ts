/**
 * Every op of the kernel table on every available backend, as ggml's test-backend-ops: one case
 * per op of supportedOps('cpu') (an op without a case fails the first test, so a new op must add
 * one), run at awkward sizes (odd, prime, 1, tails that are no multiple of the vector width).
 *
 * - cpu column: each case's outputs against a plain reference: the C++ *Reference kernels where
 *   they exist (`reference: true`: conv, pooling, batch norm, batched LoRA), otherwise a small TS
 *   reference written here; backward ops against a finite-difference directional derivative of
 *   their forward op (L = sum(dy * f(x)), dL/dx . v ~ (L(x + e v) - L(x - e v)) / 2e) or, for
 *   linear ops, the adjoint identity <f(x), dy> = <x, f^T(dy)>.
 * - cuda column: the same case on cuda:0 against the cpu column's outputs, where the addon has the
 *   CUDA backend and a usable device; an op the CUDA backend lacks is skipped (as ggml's "not
 *   supported"). Without a usable GPU the column is skipped with CUDA's reason in its name.
 */
import { describe, it, expect } from 'vitest';
import '../../lib/index.js';
import { native, type OpName } from '../../lib/native.js';
import { Tensor } from '../../lib/tensor/tensor.js';
import { tensor, onDevice } from '../../lib/tensor/creation.js';
import { tidy } from '../../lib/tensor/scope.js';
import { run, supportedOps, supports } from '../../lib/tensor/kernels.js';
import { cudaStatus, type Device } from '../../lib/tensor/device.js';
import { codebook, dynamicMap } from '../../lib/tensor/nf4.js';
import type { DType } from '../../lib/tensor/dtype.js';

// ------------------------------------------------------------------ helpers

type Arr = Float64Array;
/** A case's outputs, read back to the host (numbers as f64). */
type Out = Record<string, Arr | number>;

interface Case {
  /** ops the case runs (default: the op it is filed under) */
  uses?: OpName[];
  /** runs the op on `dev` (inputs made on the host from fixed seeds, then moved) */
  run(dev: Device): Out;
  /** the cpu column's outputs against the reference (throws through expect) */
  check(out: Out): void;
  /** relative tolerance of another backend against the cpu column (default 1e-4) */
  tol?: number;
}

/** Uniform values in [lo, hi) from a seed (an LCG: the same on every run and machine). */
function rnd(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  let s = (seed * 2654435761) >>> 0 || 1;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = lo + ((s >>> 8) / 16777216) * (hi - lo);
  }
  return out;
}
const ints = (n: number, seed: number, hi: number) => Int32Array.from(rnd(n, seed, 0, hi), (v) => Math.min(hi - 1, Math.floor(v)));

/** A tensor of `data` on `dev`. */
function T(data: ArrayLike<number> | ArrayBufferView, shape: number[], dev: Device, dtype: DType = 'f32'): Tensor {
  const typed = data instanceof Float64Array && dtype !== 'f64' ? Float32Array.from(data) : ArrayBuffer.isView(data) ? data : dtype === 'i32' ? Int32Array.from(data as ArrayLike<number>) : dtype === 'u8' ? Uint8Array.from(data as ArrayLike<number>) : Float32Array.from(data as ArrayLike<number>);
  return onDevice(tensor(typed as Float32Array, shape, dtype), dev);
}
/** A zero-filled tensor on `dev`. */
const Z = (shape: number[], dev: Device, dtype: DType = 'f32') => Tensor.empty(shape, dtype, true, dev);
/** A tensor's elements on the host, as f64. */
const H = (t: Tensor): Arr => Float64Array.from(t.toTypedArray() as unknown as ArrayLike<number>);

function close(actual: ArrayLike<number>, expected: ArrayLike<number>, what: string, rtol = 1e-5, atol = 1e-6): void {
  expect(actual.length, `${what}: length`).toBe(expected.length);
  let worst = 0, at = -1;
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i]!, e = expected[i]!;
    if (a === e || (Number.isNaN(e) && Number.isNaN(a))) continue; // equal infinities too (their difference is NaN)
    const err = Math.abs(a - e) - (atol + rtol * Math.abs(e));
    if (!(err <= worst)) { worst = Number.isNaN(err) ? Infinity : err; at = i; }
  }
  if (at >= 0) expect.fail(`${what}: element ${at} is ${actual[at]} but the reference is ${expected[at]} (|diff| ${Math.abs(actual[at]! - expected[at]!)})`);
}

const dot = (a: ArrayLike<number>, b: ArrayLike<number>) => { let s = 0; for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!; return s; };
const sum = (a: ArrayLike<number>) => { let s = 0; for (let i = 0; i < a.length; i++) s += a[i]!; return s; };

/**
 * Directional derivative check of a backward kernel: f maps named f32 inputs to one output (run
 * on the CPU); grads are the backward's gradients for dy. For each input in `wrt`:
 * <grad, v> ~ (L(x + e v) - L(x - e v)) / 2e, L = <dy, f(x)>.
 */
function directional(f: (inp: Record<string, Float32Array>) => Arr, inputs: Record<string, Float32Array>, dy: ArrayLike<number>, grads: Record<string, ArrayLike<number>>, what: string, eps = 1e-2, rtol = 2e-2): void {
  for (const [name, g] of Object.entries(grads)) {
    const v = rnd(inputs[name]!.length, 97 + name.length);
    const shifted = (sgn: number) => {
      const x = Float32Array.from(inputs[name]!, (xv, i) => xv + sgn * eps * v[i]!);
      return dot(dy, f({ ...inputs, [name]: x }));
    };
    const numeric = (shifted(1) - shifted(-1)) / (2 * eps);
    const analytic = dot(g, v);
    const scale = Math.max(1, Math.abs(numeric), Math.abs(analytic));
    expect(Math.abs(analytic - numeric) / scale, `${what}: d/d${name} analytic ${analytic} vs numeric ${numeric}`).toBeLessThan(rtol);
  }
}

// TS references (shapes in comments) -----------------------------------------------------------

/** C [M, N] = A [M, K] B [K, N] (row-major). */
function matmul(a: ArrayLike<number>, b: ArrayLike<number>, M: number, K: number, N: number): Arr {
  const c = new Float64Array(M * N);
  for (let i = 0; i < M; i++) for (let k = 0; k < K; k++) { const av = a[i * K + k]!; for (let j = 0; j < N; j++) c[i * N + j] += av * b[k * N + j]!; }
  return c;
}
/** X^T of X [R, C]. */
function transpose(x: ArrayLike<number>, R: number, C: number): Arr {
  const t = new Float64Array(R * C);
  for (let i = 0; i < R; i++) for (let j = 0; j < C; j++) t[j * R + i] = x[i * C + j]!;
  return t;
}
const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));
function erf(x: number): number {
  // Abramowitz-Stegun 7.1.26 (|error| < 1.5e-7)
  const s = Math.sign(x), a = Math.abs(x), t = 1 / (1 + 0.3275911 * a);
  return s * (1 - ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * Math.exp(-a * a));
}
const UNARY_REF: Record<string, (x: number, p: number) => number> = {
  neg: (x) => -x, exp: Math.exp, log: Math.log, sqrt: Math.sqrt, rsqrt: (x) => 1 / Math.sqrt(x), abs: Math.abs, tanh: Math.tanh,
  sigmoid, relu: (x) => Math.max(0, x), gelu_tanh: (x) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3))),
  gelu_erf: (x) => 0.5 * x * (1 + erf(x / Math.SQRT2)), silu: (x) => x * sigmoid(x), square: (x) => x * x,
  mul_scalar: (x, p) => x * p, add_scalar: (x, p) => x + p, pow_scalar: (x, p) => x ** p,
};
/** Round-to-nearest-even f32 -> bf16 -> f32. */
function bf16(x: number): number {
  const f = new Float32Array([x]), u = new Uint32Array(f.buffer);
  u[0] = ((u[0]! + 0x7fff + ((u[0]! >>> 16) & 1)) >>> 16) << 16;
  return f[0]!;
}
function softmaxRows(x: ArrayLike<number>, rows: number, cols: number, log: boolean): Arr {
  const y = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    let m = -Infinity;
    for (let c = 0; c < cols; c++) m = Math.max(m, x[r * cols + c]!);
    let s = 0;
    for (let c = 0; c < cols; c++) s += Math.exp(x[r * cols + c]! - m);
    for (let c = 0; c < cols; c++) y[r * cols + c] = log ? x[r * cols + c]! - m - Math.log(s) : Math.exp(x[r * cols + c]! - m) / s;
  }
  return y;
}
/** One direction of one LSTM layer (PyTorch's gates i, f, g, o): y, activated gates, cell. */
function lstmRef(x: ArrayLike<number>, wih: ArrayLike<number>, whh: ArrayLike<number>, bih: ArrayLike<number>, bhh: ArrayLike<number>, B: number, Tn: number, I: number, Hd: number, reverse: boolean) {
  const y = new Float64Array(B * Tn * Hd), gates = new Float64Array(B * Tn * 4 * Hd), cell = new Float64Array(B * Tn * Hd);
  for (let b = 0; b < B; b++) {
    const h = new Float64Array(Hd), c = new Float64Array(Hd);
    for (let s = 0; s < Tn; s++) {
      const t = reverse ? Tn - 1 - s : s;
      const g = new Float64Array(4 * Hd);
      for (let j = 0; j < 4 * Hd; j++) {
        let v = bih[j]! + bhh[j]!;
        for (let k = 0; k < I; k++) v += x[(b * Tn + t) * I + k]! * wih[j * I + k]!;
        for (let k = 0; k < Hd; k++) v += h[k]! * whh[j * Hd + k]!;
        g[j] = j >= 2 * Hd && j < 3 * Hd ? Math.tanh(v) : sigmoid(v);
      }
      for (let k = 0; k < Hd; k++) {
        c[k] = g[Hd + k]! * c[k]! + g[k]! * g[2 * Hd + k]!;
        h[k] = g[3 * Hd + k]! * Math.tanh(c[k]!);
        y[(b * Tn + t) * Hd + k] = h[k]!;
        cell[(b * Tn + t) * Hd + k] = c[k]!;
      }
      gates.set(g, (b * Tn + t) * 4 * Hd);
    }
  }
  return { y, gates, cell };
}
/** Naive attention: q [B, Hq, Tq, D], k/v [B, Hkv, Tk, D]; causal as lib/native.ts says; keyMask [B, Tk] or null. */
function attentionRef(q: ArrayLike<number>, k: ArrayLike<number>, v: ArrayLike<number>, mask: ArrayLike<number> | null, B: number, Hq: number, Hkv: number, Tq: number, Tk: number, D: number, scale: number, causal: boolean) {
  const out = new Float64Array(B * Hq * Tq * D), lse = new Float64Array(B * Hq * Tq);
  for (let b = 0; b < B; b++) for (let h = 0; h < Hq; h++) for (let i = 0; i < Tq; i++) {
    const kh = Math.floor(h / (Hq / Hkv));
    const s: number[] = [];
    for (let j = 0; j < Tk; j++) {
      const ok = (!causal || j <= Tk - Tq + i) && (!mask || mask[b * Tk + j] === 1);
      let d = 0;
      for (let e = 0; e < D; e++) d += q[((b * Hq + h) * Tq + i) * D + e]! * k[((b * Hkv + kh) * Tk + j) * D + e]!;
      s.push(ok ? d * scale : -Infinity);
    }
    const m = Math.max(...s);
    const w = s.map((x) => Math.exp(x - m)), z = sum(w);
    lse[(b * Hq + h) * Tq + i] = m + Math.log(z);
    for (let e = 0; e < D; e++) {
      let o = 0;
      for (let j = 0; j < Tk; j++) o += (w[j]! / z) * v[((b * Hkv + kh) * Tk + j) * D + e]!;
      out[((b * Hq + h) * Tq + i) * D + e] = o;
    }
  }
  return { out, lse };
}

// ------------------------------------------------------------------ the cases, one per op

const F32 = (x: Arr | number) => x as Arr;

// sizes: odd, prime, 1, and tails past multiples of 8/16 (AVX2/AVX-512 widths)
const N1 = 37, ROWS = 5, COLS = 19;

const conv = { N: 2, C: 3, H: 7, W: 6, O: 4, KH: 3, KW: 2, strideH: 2, strideW: 1, padH: 1, padW: 1, dilationH: 1, dilationW: 2, groups: 1 };
const convOut = { Ho: 4, Wo: 6 }; // floor((7 + 2 - 3) / 2) + 1, (6 + 2 - 3) / 1 + 1
const pool = { N: 2, C: 3, H: 7, W: 5, KH: 3, KW: 2, strideH: 2, strideW: 2, padH: 1, padW: 1, dilationH: 1, dilationW: 1 };
const poolOut = { Ho: 4, Wo: 3 };

/** conv2dForward on the CPU (fast or reference kernel) from host arrays. */
function convF(inp: Record<string, Float32Array>, reference = false, dims = conv): Arr {
  return tidy(() => {
    const y = Z([dims.N, dims.O, Math.floor((dims.H + 2 * dims.padH - dims.dilationH * (dims.KH - 1) - 1) / dims.strideH) + 1, Math.floor((dims.W + 2 * dims.padW - dims.dilationW * (dims.KW - 1) - 1) / dims.strideW) + 1], 'cpu');
    run('conv2dForward', { x: T(inp.x!, [inp.x!.length], 'cpu'), w: T(inp.w!, [inp.w!.length], 'cpu'), bias: inp.bias ? T(inp.bias, [inp.bias.length], 'cpu') : null, y, ...dims, reference });
    return H(y);
  });
}

const lstmDims = { B: 2, T: 3, inF: 5, hidden: 3 };
function lstmF(inp: Record<string, Float32Array>, reverse: boolean) {
  return tidy(() => {
    const { B, T: Tn, inF, hidden } = lstmDims;
    const y = Z([B, Tn, hidden], 'cpu'), gates = Z([B, Tn, 4 * hidden], 'cpu'), cell = Z([B, Tn, hidden], 'cpu');
    run('lstmForward', { x: T(inp.x!, [inp.x!.length], 'cpu'), wih: T(inp.wih!, [inp.wih!.length], 'cpu'), whh: T(inp.whh!, [inp.whh!.length], 'cpu'), bih: T(inp.bih!, [4 * hidden], 'cpu'), bhh: T(inp.bhh!, [4 * hidden], 'cpu'), y, gates, cell, ...lstmDims, reverse });
    return { y: H(y), gates: H(gates), cell: H(cell) };
  });
}
const lstmIn = () => ({ x: rnd(2 * 3 * 5, 1), wih: rnd(12 * 5, 2, -0.5, 0.5), whh: rnd(12 * 3, 3, -0.5, 0.5), bih: rnd(12, 4, -0.2, 0.2), bhh: rnd(12, 5, -0.2, 0.2) });

const att = { B: 2, Hq: 4, Hkv: 2, Tq: 3, Tk: 5, D: 7, scale: 1 / Math.sqrt(7), causal: true };
const attIn = () => ({ q: rnd(2 * 4 * 3 * 7, 11), k: rnd(2 * 2 * 5 * 7, 12), v: rnd(2 * 2 * 5 * 7, 13) });
const attMask = [1, 1, 1, 1, 1, 1, 0, 1, 1, 1]; // batch 1 masks key 1
// token-major attention: two sequences (5 and 3 rows) of qkv [8, 3 * 2 * 7], a key masked in the first
const rowsAtt = { N: 8, S: 2, H: 2, D: 7, scale: 1 / Math.sqrt(7), causal: true };
const rowsOffsets = [0, 5, 8];
const rowsMask = [1, 0, 1, 1, 1, 1, 1, 1];
const rowsIn = () => rnd(8 * 3 * 14, 61);
/** attentionRows on the CPU: out [N or S, C], lse [H, N or S] */
function rowsF(qkv: Float32Array, lastQueryOnly: boolean) {
  return tidy(() => {
    const nq = lastQueryOnly ? rowsAtt.S : rowsAtt.N;
    const out = Z([nq, 14], 'cpu'), lse = Z([2, nq], 'cpu');
    run('attentionRows', { qkv: T(qkv, [8, 42], 'cpu'), offsets: T(rowsOffsets, [3], 'cpu', 'i32'), keyMask: T(rowsMask, [8], 'cpu', 'i32'), out, lse, ...rowsAtt, lastQueryOnly });
    return { out: H(out), lse: H(lse) };
  });
}
/** The naive head-major reference per sequence, laid out as attentionRows lays out its outputs. */
function rowsRef(qkv: Float32Array, lastQueryOnly: boolean) {
  const { H: Hn, D, S } = rowsAtt, C = Hn * D, nq = lastQueryOnly ? S : rowsAtt.N;
  const out = new Float64Array(nq * C), lse = new Float64Array(Hn * nq);
  for (let sq = 0; sq < S; sq++) {
    const r0 = rowsOffsets[sq]!, T = rowsOffsets[sq + 1]! - r0, Tq = lastQueryOnly ? 1 : T, q0 = T - Tq, qb = lastQueryOnly ? sq : r0;
    const pick = (part: number, rows: number, from: number) => Float32Array.from({ length: Hn * rows * D }, (_, i) => {
      const h = Math.floor(i / (rows * D)), t = Math.floor(i / D) % rows, d = i % D;
      return qkv[(r0 + from + t) * 3 * C + part * C + h * D + d]!;
    });
    const ref = attentionRef(pick(0, Tq, q0), pick(1, T, 0), pick(2, T, 0), rowsMask.slice(r0, r0 + T), 1, Hn, Hn, Tq, T, D, rowsAtt.scale, true);
    for (let h = 0; h < Hn; h++) {
      for (let t = 0; t < Tq; t++) {
        lse[h * nq + qb + t] = ref.lse[h * Tq + t]!;
        for (let d = 0; d < D; d++) out[(qb + t) * C + h * D + d] = ref.out[(h * Tq + t) * D + d]!;
      }
    }
  }
  return { out, lse };
}

function attF(inp: Record<string, Float32Array>) {
  return tidy(() => {
    const out = Z([att.B, att.Hq, att.Tq, att.D], 'cpu'), lse = Z([att.B, att.Hq, att.Tq], 'cpu');
    run('attention', { q: T(inp.q!, [inp.q!.length], 'cpu'), k: T(inp.k!, [inp.k!.length], 'cpu'), v: T(inp.v!, [inp.v!.length], 'cpu'), out, lse, keyMask: T(attMask, [2, 5], 'cpu', 'i32'), ...att });
    return { out: H(out), lse: H(lse) };
  });
}

const lora = { M: 5, inF: 19, outF: 7, r: 3, scale: 1.5 };
const loraIn = () => ({ x: rnd(5 * 19, 21), w: rnd(7 * 19, 22), bias: rnd(7, 23), a: rnd(3 * 19, 24), b: rnd(7 * 3, 25) });
function loraF(inp: Record<string, Float32Array>, p: number, wInOut = false) {
  return tidy(() => {
    const { M, inF, outF, r } = lora;
    const y = Z([M, outF], 'cpu'), xa = Z([M, r], 'cpu'), mask = Z([M, inF], 'cpu', 'u8');
    run('loraLinearForward', { x: T(inp.x!, [M * inF], 'cpu'), w: T(inp.w!, [outF * inF], 'cpu'), bias: T(inp.bias!, [outF], 'cpu'), a: T(inp.a!, [r * inF], 'cpu'), b: T(inp.b!, [outF * r], 'cpu'), y, xa, mask: p > 0 ? mask : null, ...lora, wInOut, p, seed: 5 });
    return { y: H(y), xa: H(xa), mask: H(mask) };
  });
}

const nf4Case = (quantType: 'nf4' | 'fp4') => ({ n: 200, blocksize: 64, quantType });
function nf4Quant(dev: Device, w: Float32Array, n: number, blocksize: number, quantType: 'nf4' | 'fp4') {
  const packed = Z([(n + 1) >> 1], dev, 'u8'), absmax = Z([Math.ceil(n / blocksize)], dev);
  run('nf4Quantize', { w: T(w, [n], dev), n, blocksize, quantType, packed, absmax });
  return { packed, absmax };
}

const CASES: Record<OpName, Case> = {
  // ---------------------------------------------------------------- element-wise
  binary: {
    run: (dev) => tidy(() => {
      // a [3, 1, 17] op b [4, 17] -> [3, 4, 17] (broadcast both ways); b > 0 for div
      const a = T(rnd(51, 1), [51], dev), b = T(rnd(68, 2, 0.5, 2), [68], dev);
      const out: Out = {};
      for (const op of ['add', 'sub', 'mul', 'div', 'maximum', 'minimum'] as const) {
        const o = Z([3, 4, 17], dev);
        run('binary', { op, a, b, out: o, outShape: [3, 4, 17], aStrides: [17, 0, 1], bStrides: [0, 17, 1] });
        out[op] = H(o);
      }
      return out;
    }),
    check: (out) => {
      const a = rnd(51, 1), b = rnd(68, 2, 0.5, 2);
      const f = { add: (x: number, y: number) => x + y, sub: (x: number, y: number) => x - y, mul: (x: number, y: number) => x * y, div: (x: number, y: number) => x / y, maximum: Math.max, minimum: Math.min };
      for (const [op, fn] of Object.entries(f)) {
        const want = new Float64Array(3 * 4 * 17);
        for (let i = 0; i < 3; i++) for (let j = 0; j < 4; j++) for (let k = 0; k < 17; k++) want[(i * 4 + j) * 17 + k] = Math.fround(fn(a[i * 17 + k]!, b[j * 17 + k]!));
        close(F32(out[op]!), want, `binary ${op}`, 1e-6);
      }
    },
  },
  unary: {
    run: (dev) => tidy(() => {
      const out: Out = {};
      for (const op of Object.keys(UNARY_REF) as (keyof typeof UNARY_REF)[]) {
        const pos = ['log', 'sqrt', 'rsqrt', 'pow_scalar'].includes(op);
        const x = T(rnd(N1, 3, pos ? 0.1 : -3, 3), [N1], dev), y = Z([N1], dev);
        run('unary', { op: op as never, x, out: y, n: N1, param: 1.7 });
        out[op] = H(y);
      }
      return out;
    }),
    check: (out) => {
      for (const [op, f] of Object.entries(UNARY_REF)) {
        const pos = ['log', 'sqrt', 'rsqrt', 'pow_scalar'].includes(op);
        close(F32(out[op]!), Array.from(rnd(N1, 3, pos ? 0.1 : -3, 3), (x) => f(x, 1.7)), `unary ${op}`, 2e-6, 2e-6);
      }
    },
  },
  unaryBackward: {
    run: (dev) => tidy(() => {
      const out: Out = {};
      for (const op of Object.keys(UNARY_REF)) {
        const pos = ['log', 'sqrt', 'rsqrt', 'pow_scalar'].includes(op);
        const xv = rnd(N1, 4, pos ? 0.5 : -2, 2);
        const x = T(xv, [N1], dev), y = T(Array.from(xv, (v) => UNARY_REF[op]!(v, 1.7)), [N1], dev), dy = T(rnd(N1, 5), [N1], dev), dx = Z([N1], dev);
        run('unaryBackward', { op: op as never, x, y, dy, dx, n: N1, param: 1.7 });
        out[op] = H(dx);
      }
      return out;
    }),
    check: (out) => {
      for (const op of Object.keys(UNARY_REF)) {
        if (op === 'relu' || op === 'abs') continue; // kinks: checked exactly below
        const pos = ['log', 'sqrt', 'rsqrt', 'pow_scalar'].includes(op);
        const f = (inp: Record<string, Float32Array>) => tidy(() => {
          const y = Z([N1], 'cpu');
          run('unary', { op: op as never, x: T(inp.x!, [N1], 'cpu'), out: y, n: N1, param: 1.7 });
          return H(y);
        });
        directional(f, { x: rnd(N1, 4, pos ? 0.5 : -2, 2) }, rnd(N1, 5), { x: F32(out[op]!) }, `unaryBackward ${op}`, 1e-3);
      }
      const x = rnd(N1, 4, -2, 2), dy = rnd(N1, 5);
      close(F32(out.relu!), Array.from(x, (v, i) => (v > 0 ? dy[i]! : 0)), 'unaryBackward relu');
      close(F32(out.abs!), Array.from(x, (v, i) => Math.sign(v) * dy[i]!), 'unaryBackward abs');
    },
  },
  reduce: {
    run: (dev) => tidy(() => {
      const out: Out = {};
      const x = T(rnd(3 * 17 * 5, 6), [255], dev);
      for (const op of ['sum', 'mean', 'max', 'min'] as const) {
        const o = Z([15], dev);
        run('reduce', { op, x, out: o, outer: 3, n: 17, inner: 5 });
        out[op] = H(o);
      }
      return out;
    }),
    check: (out) => {
      const x = rnd(255, 6);
      for (const op of ['sum', 'mean', 'max', 'min']) {
        const want = new Float64Array(15);
        for (let o = 0; o < 3; o++) for (let i = 0; i < 5; i++) {
          const col = Array.from({ length: 17 }, (_, j) => x[(o * 17 + j) * 5 + i]!);
          want[o * 5 + i] = op === 'sum' ? sum(col) : op === 'mean' ? sum(col) / 17 : op === 'max' ? Math.max(...col) : Math.min(...col);
        }
        close(F32(out[op]!), want, `reduce ${op}`, 1e-5);
      }
    },
  },
  argmax: {
    run: (dev) => tidy(() => {
      const out = Z([ROWS], dev, 'i32');
      run('argmax', { x: T(rnd(ROWS * COLS, 7), [ROWS * COLS], dev), out, rows: ROWS, cols: COLS });
      return { idx: H(out) };
    }),
    check: (out) => {
      const x = rnd(ROWS * COLS, 7);
      close(F32(out.idx!), Array.from({ length: ROWS }, (_, r) => { const row = Array.from(x.subarray(r * COLS, (r + 1) * COLS)); return row.indexOf(Math.max(...row)); }), 'argmax');
    },
  },
  sumSquares: {
    run: (dev) => tidy(() => ({ s: run('sumSquares', { x: T(rnd(1031, 8), [1031], dev), n: 1031 }) })),
    check: (out) => close([out.s as number], [sum(Array.from(rnd(1031, 8), (v) => v * v))], 'sumSquares', 1e-9),
  },
  countNonFinite: {
    run: (dev) => tidy(() => {
      const v = rnd(67, 9);
      v[0] = NaN; v[33] = Infinity; v[66] = -Infinity;
      return { n: run('countNonFinite', { x: T(v, [67], dev), n: 67 }), none: run('countNonFinite', { x: T(rnd(1, 1), [1], dev), n: 1 }) };
    }),
    check: (out) => { expect(out.n).toBe(3); expect(out.none).toBe(0); },
  },

  // ---------------------------------------------------------------- data movement
  fill: {
    run: (dev) => tidy(() => {
      const f = Z([N1], dev), i = Z([N1], dev, 'i32'), u = Z([N1], dev, 'u8');
      run('fill', { dst: f, dtype: 'f32', n: N1, value: -2.5 });
      run('fill', { dst: i, dtype: 'i32', n: N1 - 1, value: 7 }); // the last element stays 0
      run('fill', { dst: u, dtype: 'u8', n: N1, value: 200 });
      return { f: H(f), i: H(i), u: H(u) };
    }),
    check: (out) => {
      close(F32(out.f!), new Array(N1).fill(-2.5), 'fill f32');
      close(F32(out.i!), [...new Array(N1 - 1).fill(7), 0], 'fill i32');
      close(F32(out.u!), new Array(N1).fill(200), 'fill u8');
    },
  },
  cast: {
    run: (dev) => tidy(() => {
      const x = T(rnd(N1, 10, -100, 100), [N1], dev);
      const b = Z([N1], dev, 'bf16'), back = Z([N1], dev), d = Z([N1], dev, 'f64'), i = Z([N1], dev, 'i32');
      run('cast', { src: x, srcDtype: 'f32', dst: b, dstDtype: 'bf16', n: N1 });
      run('cast', { src: b, srcDtype: 'bf16', dst: back, dstDtype: 'f32', n: N1 });
      run('cast', { src: x, srcDtype: 'f32', dst: d, dstDtype: 'f64', n: N1 });
      const iv = T(ints(N1, 11, 1000), [N1], dev, 'i32');
      const fi = Z([N1], dev);
      run('cast', { src: iv, srcDtype: 'i32', dst: fi, dstDtype: 'f32', n: N1 });
      void i;
      return { bf16: H(back), f64: H(d), fromI32: H(fi) };
    }),
    check: (out) => {
      const x = rnd(N1, 10, -100, 100);
      close(F32(out.bf16!), Array.from(x, bf16), 'cast f32 -> bf16 -> f32 (round to nearest even)', 0, 0);
      close(F32(out.f64!), Array.from(x), 'cast f32 -> f64', 0, 0);
      close(F32(out.fromI32!), Array.from(ints(N1, 11, 1000)), 'cast i32 -> f32', 0, 0);
    },
  },
  copyBytes: {
    run: (dev) => tidy(() => {
      const src = T(rnd(N1, 12), [N1], dev), dst = Z([N1], dev);
      run('copyBytes', { src: src.viewAs([N1 - 3], [1], 3), dst, bytes: (N1 - 3) * 4 });
      return { y: H(dst) };
    }),
    check: (out) => close(F32(out.y!), [...Array.from(rnd(N1, 12).subarray(3)), 0, 0, 0], 'copyBytes from an offset'),
  },
  copyRows: {
    run: (dev) => tidy(() => {
      // 3 rows of 5 f32 from a source of row stride 7 into a destination of row stride 11
      const src = T(rnd(21, 13), [21], dev), dst = Z([33], dev);
      run('copyRows', { src, dst, rows: 3, rowBytes: 20, srcStride: 28, dstStride: 44 });
      return { y: H(dst) };
    }),
    check: (out) => {
      const s = rnd(21, 13), want = new Float64Array(33);
      for (let r = 0; r < 3; r++) for (let c = 0; c < 5; c++) want[r * 11 + c] = s[r * 7 + c]!;
      close(F32(out.y!), want, 'copyRows');
    },
  },
  copyStrided: {
    run: (dev) => tidy(() => {
      // the transpose of [3, 5, 7] to [7, 5, 3] (element strides 1, 7, 35)
      const dst = Z([105], dev);
      run('copyStrided', { src: T(rnd(105, 14), [105], dev), dst, elemSize: 4, shape: [7, 5, 3], strides: [1, 7, 35] });
      return { y: H(dst) };
    }),
    check: (out) => {
      const s = rnd(105, 14), want = new Float64Array(105);
      for (let i = 0; i < 7; i++) for (let j = 0; j < 5; j++) for (let k = 0; k < 3; k++) want[(i * 5 + j) * 3 + k] = s[k * 35 + j * 7 + i]!;
      close(F32(out.y!), want, 'copyStrided');
    },
  },
  randomNormal: {
    run: (dev) => tidy(() => {
      const a = Z([4099], dev), b = Z([4099], dev), c = Z([4099], dev);
      run('randomNormal', { dst: a, n: 4099, seed: 3, mean: 1, std: 2 });
      run('randomNormal', { dst: b, n: 4099, seed: 3, mean: 1, std: 2 });
      run('randomNormal', { dst: c, n: 4099, seed: 4, mean: 1, std: 2 });
      return { a: H(a), b: H(b), c: H(c) };
    }),
    check: (out) => {
      const a = F32(out.a!), m = sum(a) / a.length, sd = Math.sqrt(sum(Array.from(a, (v) => (v - m) ** 2)) / a.length);
      expect(Math.abs(m - 1)).toBeLessThan(0.12);
      expect(Math.abs(sd - 2)).toBeLessThan(0.12);
      close(a, F32(out.b!), 'randomNormal: same seed, same values', 0, 0);
      expect(a.filter((v, i) => v === F32(out.c!)[i]).length).toBeLessThan(5);
    },
    tol: 1e-5,
  },
  randomUniform: {
    run: (dev) => tidy(() => {
      const a = Z([4099], dev), b = Z([4099], dev);
      run('randomUniform', { dst: a, n: 4099, seed: 5, low: -3, high: 5 });
      run('randomUniform', { dst: b, n: 4099, seed: 5, low: -3, high: 5 });
      return { a: H(a), b: H(b) };
    }),
    check: (out) => {
      const a = F32(out.a!);
      expect(a.every((v) => v >= -3 && v < 5)).toBe(true);
      expect(Math.abs(sum(a) / a.length - 1)).toBeLessThan(0.15);
      close(a, F32(out.b!), 'randomUniform: same seed, same values', 0, 0);
    },
  },
  arange: {
    run: (dev) => tidy(() => {
      const f = Z([N1], dev), i = Z([N1], dev, 'i32');
      run('arange', { dst: f, dtype: 'f32', n: N1, start: -2, step: 0.5 });
      run('arange', { dst: i, dtype: 'i32', n: N1, start: 3, step: 2 });
      return { f: H(f), i: H(i) };
    }),
    check: (out) => {
      close(F32(out.f!), Array.from({ length: N1 }, (_, k) => -2 + 0.5 * k), 'arange f32');
      close(F32(out.i!), Array.from({ length: N1 }, (_, k) => 3 + 2 * k), 'arange i32');
    },
  },

  // ---------------------------------------------------------------- GEMM
  gemm: {
    run: (dev) => tidy(() => {
      const out: Out = {};
      const [M, K, N] = [7, 19, 13];
      for (const [tA, tB] of [[false, false], [true, false], [false, true], [true, true]] as const) {
        const c = T(rnd(2 * M * N, 15), [2 * M * N], dev);
        run('gemm', { a: T(rnd(2 * M * K, 16), [2 * M * K], dev), b: T(rnd(2 * K * N, 17), [2 * K * N], dev), c, transA: tA, transB: tB, M, N, K, alpha: 0.5, beta: 2, batch: 2, dtype: 'f32' });
        out[`${tA}${tB}`] = H(c);
      }
      const ab = Z([M * K], dev, 'bf16'), bb = Z([K * N], dev, 'bf16'), cb = Z([M * N], dev);
      run('cast', { src: T(rnd(M * K, 16), [M * K], dev), srcDtype: 'f32', dst: ab, dstDtype: 'bf16', n: M * K });
      run('cast', { src: T(rnd(K * N, 17), [K * N], dev), srcDtype: 'f32', dst: bb, dstDtype: 'bf16', n: K * N });
      run('gemm', { a: ab, b: bb, c: cb, transA: false, transB: false, M, N, K, alpha: 1, beta: 0, batch: 1, dtype: 'bf16' });
      out.bf16 = H(cb);
      const one = Z([1], dev);
      run('gemm', { a: T([3], [1], dev), b: T([-2], [1], dev), c: one, transA: false, transB: false, M: 1, N: 1, K: 1, alpha: 1, beta: 0, batch: 1, dtype: 'f32' });
      out.one = H(one);
      return out;
    }),
    check: (out) => {
      const [M, K, N] = [7, 19, 13];
      const A = rnd(2 * M * K, 16), B = rnd(2 * K * N, 17), C = rnd(2 * M * N, 15);
      for (const [tA, tB] of [[false, false], [true, false], [false, true], [true, true]] as const) {
        const want = new Float64Array(2 * M * N);
        for (let b = 0; b < 2; b++) {
          // op(A) is [M, K]: stored [K, M] when transposed
          const a = A.subarray(b * M * K, (b + 1) * M * K), bm = B.subarray(b * K * N, (b + 1) * K * N);
          const p = matmul(tA ? transpose(a, K, M) : a, tB ? transpose(bm, N, K) : bm, M, K, N);
          for (let i = 0; i < M * N; i++) want[b * M * N + i] = 0.5 * p[i]! + 2 * C[b * M * N + i]!;
        }
        close(F32(out[`${tA}${tB}`]!), want, `gemm transA ${tA} transB ${tB}`, 1e-5, 1e-5);
      }
      close(F32(out.bf16!), matmul(Array.from(rnd(M * K, 16), bf16), Array.from(rnd(K * N, 17), bf16), M, K, N), 'gemm bf16', 1e-5, 1e-5);
      close(F32(out.one!), [-6], 'gemm 1x1x1');
    },
  },

  // ---------------------------------------------------------------- softmax, norms
  softmax: {
    run: (dev) => tidy(() => {
      const out: Out = {};
      for (const log of [false, true]) {
        const y = Z([ROWS * COLS], dev);
        run('softmax', { x: T(rnd(ROWS * COLS, 18, -5, 5), [ROWS * COLS], dev), y, rows: ROWS, cols: COLS, log });
        out[String(log)] = H(y);
      }
      return out;
    }),
    check: (out) => {
      for (const log of [false, true]) close(F32(out[String(log)]!), softmaxRows(rnd(ROWS * COLS, 18, -5, 5), ROWS, COLS, log), `softmax log=${log}`, 1e-5, 1e-6);
    },
  },
  softmaxBackward: {
    run: (dev) => tidy(() => {
      const out: Out = {};
      for (const log of [false, true]) {
        const y = T(softmaxRows(rnd(ROWS * COLS, 19, -3, 3), ROWS, COLS, log), [ROWS * COLS], dev), dx = Z([ROWS * COLS], dev);
        run('softmaxBackward', { y, dy: T(rnd(ROWS * COLS, 20), [ROWS * COLS], dev), dx, rows: ROWS, cols: COLS, log });
        out[String(log)] = H(dx);
      }
      return out;
    }),
    check: (out) => {
      for (const log of [false, true]) {
        const f = (inp: Record<string, Float32Array>) => tidy(() => {
          const y = Z([ROWS * COLS], 'cpu');
          run('softmax', { x: T(inp.x!, [ROWS * COLS], 'cpu'), y, rows: ROWS, cols: COLS, log });
          return H(y);
        });
        directional(f, { x: rnd(ROWS * COLS, 19, -3, 3) }, rnd(ROWS * COLS, 20), { x: F32(out[String(log)]!) }, `softmaxBackward log=${log}`, 1e-2);
      }
    },
  },
  layerNorm: {
    run: (dev) => tidy(() => {
      const y = Z([ROWS * COLS], dev), mean = Z([ROWS], dev), rstd = Z([ROWS], dev);
      run('layerNorm', { x: T(rnd(ROWS * COLS, 21, -2, 3), [ROWS * COLS], dev), w: T(rnd(COLS, 22), [COLS], dev), b: T(rnd(COLS, 23), [COLS], dev), y, mean, rstd, rows: ROWS, cols: COLS, eps: 1e-5 });
      return { y: H(y), mean: H(mean), rstd: H(rstd) };
    }),
    check: (out) => {
      const x = rnd(ROWS * COLS, 21, -2, 3), w = rnd(COLS, 22), b = rnd(COLS, 23);
      const y = new Float64Array(ROWS * COLS), mean = new Float64Array(ROWS), rstd = new Float64Array(ROWS);
      for (let r = 0; r < ROWS; r++) {
        const row = x.subarray(r * COLS, (r + 1) * COLS), m = sum(row) / COLS, v = sum(Array.from(row, (e) => (e - m) ** 2)) / COLS;
        mean[r] = m; rstd[r] = 1 / Math.sqrt(v + 1e-5);
        for (let c = 0; c < COLS; c++) y[r * COLS + c] = (row[c]! - m) * rstd[r]! * w[c]! + b[c]!;
      }
      close(F32(out.y!), y, 'layerNorm y', 1e-5, 1e-5);
      close(F32(out.mean!), mean, 'layerNorm mean', 1e-5, 1e-6);
      close(F32(out.rstd!), rstd, 'layerNorm rstd', 1e-5);
    },
  },
  layerNormBackward: {
    uses: ['layerNorm', 'layerNormBackward'],
    run: (dev) => tidy(() => {
      const x = T(rnd(ROWS * COLS, 24, -2, 2), [ROWS * COLS], dev), w = T(rnd(COLS, 25), [COLS], dev);
      const y = Z([ROWS * COLS], dev), mean = Z([ROWS], dev), rstd = Z([ROWS], dev);
      run('layerNorm', { x, w, b: T(rnd(COLS, 26), [COLS], dev), y, mean, rstd, rows: ROWS, cols: COLS, eps: 1e-5 });
      const dx = Z([ROWS * COLS], dev), dw = Z([COLS], dev), db = Z([COLS], dev);
      run('layerNormBackward', { x, w, mean, rstd, dy: T(rnd(ROWS * COLS, 27), [ROWS * COLS], dev), dx, dw, db, rows: ROWS, cols: COLS, needWeightGrad: true });
      return { dx: H(dx), dw: H(dw), db: H(db) };
    }),
    check: (out) => {
      const f = (inp: Record<string, Float32Array>) => tidy(() => {
        const y = Z([ROWS * COLS], 'cpu');
        run('layerNorm', { x: T(inp.x!, [ROWS * COLS], 'cpu'), w: T(inp.w!, [COLS], 'cpu'), b: T(inp.b!, [COLS], 'cpu'), y, mean: Z([ROWS], 'cpu'), rstd: Z([ROWS], 'cpu'), rows: ROWS, cols: COLS, eps: 1e-5 });
        return H(y);
      });
      directional(f, { x: rnd(ROWS * COLS, 24, -2, 2), w: rnd(COLS, 25), b: rnd(COLS, 26) }, rnd(ROWS * COLS, 27), { x: F32(out.dx!), w: F32(out.dw!), b: F32(out.db!) }, 'layerNormBackward');
    },
  },
  rmsNorm: {
    run: (dev) => tidy(() => {
      const y = Z([ROWS * COLS], dev), rstd = Z([ROWS], dev);
      run('rmsNorm', { x: T(rnd(ROWS * COLS, 28), [ROWS * COLS], dev), w: T(rnd(COLS, 29), [COLS], dev), y, rstd, rows: ROWS, cols: COLS, eps: 1e-6 });
      return { y: H(y), rstd: H(rstd) };
    }),
    check: (out) => {
      const x = rnd(ROWS * COLS, 28), w = rnd(COLS, 29), y = new Float64Array(ROWS * COLS), rs = new Float64Array(ROWS);
      for (let r = 0; r < ROWS; r++) {
        rs[r] = 1 / Math.sqrt(sum(Array.from(x.subarray(r * COLS, (r + 1) * COLS), (e) => e * e)) / COLS + 1e-6);
        for (let c = 0; c < COLS; c++) y[r * COLS + c] = x[r * COLS + c]! * rs[r]! * w[c]!;
      }
      close(F32(out.y!), y, 'rmsNorm y', 1e-5, 1e-6);
      close(F32(out.rstd!), rs, 'rmsNorm rstd', 1e-5);
    },
  },
  rmsNormBackward: {
    uses: ['rmsNorm', 'rmsNormBackward'],
    run: (dev) => tidy(() => {
      const x = T(rnd(ROWS * COLS, 30), [ROWS * COLS], dev), w = T(rnd(COLS, 31), [COLS], dev), y = Z([ROWS * COLS], dev), rstd = Z([ROWS], dev);
      run('rmsNorm', { x, w, y, rstd, rows: ROWS, cols: COLS, eps: 1e-6 });
      const dx = Z([ROWS * COLS], dev), dw = Z([COLS], dev);
      run('rmsNormBackward', { x, w, rstd, dy: T(rnd(ROWS * COLS, 32), [ROWS * COLS], dev), dx, dw, rows: ROWS, cols: COLS, needWeightGrad: true });
      return { dx: H(dx), dw: H(dw) };
    }),
    check: (out) => {
      const f = (inp: Record<string, Float32Array>) => tidy(() => {
        const y = Z([ROWS * COLS], 'cpu');
        run('rmsNorm', { x: T(inp.x!, [ROWS * COLS], 'cpu'), w: T(inp.w!, [COLS], 'cpu'), y, rstd: Z([ROWS], 'cpu'), rows: ROWS, cols: COLS, eps: 1e-6 });
        return H(y);
      });
      directional(f, { x: rnd(ROWS * COLS, 30), w: rnd(COLS, 31) }, rnd(ROWS * COLS, 32), { x: F32(out.dx!), w: F32(out.dw!) }, 'rmsNormBackward');
    },
  },

  // ---------------------------------------------------------------- embedding rows
  gatherRows: {
    run: (dev) => tidy(() => {
      const out = Z([6 * COLS], dev);
      run('gatherRows', { table: T(rnd(11 * COLS, 33), [11 * COLS], dev), idx: T([10, 0, 3, 3, 7, 1], [6], dev, 'i32'), out, n: 6, rowSize: COLS, numRows: 11 });
      let bad = '';
      try {
        run('gatherRows', { table: T(rnd(11 * COLS, 33), [11 * COLS], dev), idx: T([2, 11], [2], dev, 'i32'), out: Z([2 * COLS], dev), n: 2, rowSize: COLS, numRows: 11 });
      } catch (e) {
        bad = (e as { code: string }).code;
      }
      return { y: H(out), bad: bad === 'ERR_INDEX' ? 1 : 0 };
    }),
    check: (out) => {
      const t = rnd(11 * COLS, 33);
      close(F32(out.y!), [10, 0, 3, 3, 7, 1].flatMap((r) => Array.from(t.subarray(r * COLS, (r + 1) * COLS))), 'gatherRows');
      expect(out.bad, 'an id out of range is ERR_INDEX').toBe(1);
    },
  },
  scatterAddRows: {
    run: (dev) => tidy(() => {
      const dst = T(rnd(11 * COLS, 34), [11 * COLS], dev);
      run('scatterAddRows', { src: T(rnd(6 * COLS, 35), [6 * COLS], dev), idx: T([10, 0, 3, 3, 7, 1], [6], dev, 'i32'), dst, n: 6, rowSize: COLS, numRows: 11 });
      return { y: H(dst) };
    }),
    check: (out) => {
      const want = Float64Array.from(rnd(11 * COLS, 34)), s = rnd(6 * COLS, 35);
      [10, 0, 3, 3, 7, 1].forEach((r, i) => { for (let c = 0; c < COLS; c++) want[r * COLS + c] += s[i * COLS + c]!; });
      close(F32(out.y!), want, 'scatterAddRows (repeated ids accumulate)', 1e-6);
    },
  },

  // ---------------------------------------------------------------- dropout
  dropout: {
    run: (dev) => tidy(() => {
      const y = Z([4099], dev), mask = Z([4099], dev, 'u8');
      run('dropout', { x: T(rnd(4099, 36), [4099], dev), y, mask, n: 4099, p: 0.3, seed: 77 });
      return { y: H(y), mask: H(mask) };
    }),
    check: (out) => {
      const x = rnd(4099, 36), mask = F32(out.mask!);
      expect(mask.every((m) => m === 0 || m === 1)).toBe(true);
      expect(Math.abs(1 - sum(mask) / 4099 - 0.3)).toBeLessThan(0.03);
      close(F32(out.y!), Array.from(x, (v, i) => (mask[i] ? v / 0.7 : 0)), 'dropout y = x mask / (1 - p)', 1e-6);
    },
    tol: 0, // the mask is a function of (seed, i) on every backend
  },
  dropoutBackward: {
    run: (dev) => tidy(() => {
      const mask = T(Uint8Array.from(rnd(N1, 37, 0, 2), (v) => (v >= 1 ? 1 : 0)), [N1], dev, 'u8');
      const dx = Z([N1], dev), acc = T(rnd(N1, 38), [N1], dev);
      run('dropoutBackward', { dy: T(rnd(N1, 39), [N1], dev), mask, dx, n: N1, p: 0.25 });
      run('dropoutBackward', { dy: T(rnd(N1, 39), [N1], dev), mask, dx: acc, n: N1, p: 0.25, accumulate: true });
      return { dx: H(dx), acc: H(acc) };
    }),
    check: (out) => {
      const m = Array.from(rnd(N1, 37, 0, 2), (v) => (v >= 1 ? 1 : 0)), dy = rnd(N1, 39), a = rnd(N1, 38);
      close(F32(out.dx!), m.map((k, i) => (k * dy[i]!) / 0.75), 'dropoutBackward');
      close(F32(out.acc!), m.map((k, i) => a[i]! + (k * dy[i]!) / 0.75), 'dropoutBackward accumulate', 1e-6);
    },
  },

  // ---------------------------------------------------------------- cross-entropy
  crossEntropy: {
    run: (dev) => tidy(() => {
      const loss = Z([ROWS], dev), lse = Z([ROWS], dev);
      const counted = run('crossEntropy', { logits: T(rnd(ROWS * COLS, 40, -4, 4), [ROWS * COLS], dev), labels: T([3, -100, 0, 18, 7], [ROWS], dev, 'i32'), loss, lse, rows: ROWS, classes: COLS, ignoreIndex: -100 });
      return { loss: H(loss), lse: H(lse), counted };
    }),
    check: (out) => {
      const x = rnd(ROWS * COLS, 40, -4, 4), labels = [3, -100, 0, 18, 7];
      const lse = Array.from({ length: ROWS }, (_, r) => { const row = Array.from(x.subarray(r * COLS, (r + 1) * COLS)); const m = Math.max(...row); return m + Math.log(sum(row.map((v) => Math.exp(v - m)))); });
      close(F32(out.loss!), labels.map((l, r) => (l === -100 ? 0 : lse[r]! - x[r * COLS + l]!)), 'crossEntropy loss', 1e-5, 1e-6);
      close(F32(out.lse!).filter((_, r) => labels[r] !== -100), lse.filter((_, r) => labels[r] !== -100), 'crossEntropy lse', 1e-6);
      expect(out.counted).toBe(4);
    },
  },
  crossEntropyBackward: {
    uses: ['crossEntropy', 'crossEntropyBackward'],
    run: (dev) => tidy(() => {
      const logits = T(rnd(ROWS * COLS, 41, -3, 3), [ROWS * COLS], dev), labels = T([3, -100, 0, 18, 7], [ROWS], dev, 'i32');
      const lse = Z([ROWS], dev), dl = Z([ROWS * COLS], dev);
      run('crossEntropy', { logits, labels, loss: Z([ROWS], dev), lse, rows: ROWS, classes: COLS, ignoreIndex: -100 });
      run('crossEntropyBackward', { logits, labels, lse, dloss: T(rnd(ROWS, 42), [ROWS], dev), dlogits: dl, rows: ROWS, classes: COLS, ignoreIndex: -100 });
      return { dl: H(dl) };
    }),
    check: (out) => {
      const f = (inp: Record<string, Float32Array>) => tidy(() => {
        const loss = Z([ROWS], 'cpu');
        run('crossEntropy', { logits: T(inp.x!, [ROWS * COLS], 'cpu'), labels: T([3, -100, 0, 18, 7], [ROWS], 'cpu', 'i32'), loss, lse: Z([ROWS], 'cpu'), rows: ROWS, classes: COLS, ignoreIndex: -100 });
        return H(loss);
      });
      directional(f, { x: rnd(ROWS * COLS, 41, -3, 3) }, rnd(ROWS, 42), { x: F32(out.dl!) }, 'crossEntropyBackward');
      expect(F32(out.dl!).subarray(COLS, 2 * COLS).every((v) => v === 0), 'an ignored row has no gradient').toBe(true);
    },
  },

  // ---------------------------------------------------------------- AdamW
  adamw: {
    run: (dev) => tidy(() => {
      const param = T(rnd(N1, 43), [N1], dev), m = T(rnd(N1, 44, -0.1, 0.1), [N1], dev), v = T(rnd(N1, 45, 0, 0.1), [N1], dev);
      run('adamw', { param, grad: T(rnd(N1, 46), [N1], dev), m, v, n: N1, lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.1, step: 3 });
      return { p: H(param), m: H(m), v: H(v) };
    }),
    check: (out) => {
      // torch.optim.AdamW: p *= 1 - lr wd; m, v moments; p -= lr / bc1 * m / (sqrt(v) / sqrt(bc2) + eps)
      const p = rnd(N1, 43), m0 = rnd(N1, 44, -0.1, 0.1), v0 = rnd(N1, 45, 0, 0.1), g = rnd(N1, 46);
      const bc1 = 1 - 0.9 ** 3, bc2 = 1 - 0.999 ** 3;
      const m = Array.from(m0, (mv, i) => 0.9 * mv + 0.1 * g[i]!), v = Array.from(v0, (vv, i) => 0.999 * vv + 0.001 * g[i]! ** 2);
      close(F32(out.m!), m, 'adamw m', 1e-5, 1e-7);
      close(F32(out.v!), v, 'adamw v', 1e-5, 1e-8);
      close(F32(out.p!), Array.from(p, (pv, i) => pv * (1 - 1e-3) - (1e-2 / bc1) * m[i]! / (Math.sqrt(v[i]!) / Math.sqrt(bc2) + 1e-8)), 'adamw param', 1e-5, 1e-6);
    },
  },

  // ---------------------------------------------------------------- RoPE
  rope: {
    run: (dev) => tidy(() => {
      // x [B 2, H 3, T 5, D 10], rotDim 6 (dims 6..9 pass through); forward, then the inverse on it
      const n = 2 * 3 * 5 * 10, pos = T([0, 1, 2, 3, 4, 7, 3, 0, 9, 1], [2, 5], dev, 'i32'), inv = T([1, 0.1, 0.01], [3], dev);
      const y = Z([n], dev), back = Z([n], dev);
      run('rope', { x: T(rnd(n, 47), [n], dev), out: y, positions: pos, invFreq: inv, B: 2, H: 3, T: 5, D: 10, rotDim: 6, inverse: false });
      run('rope', { x: y, out: back, positions: pos, invFreq: inv, B: 2, H: 3, T: 5, D: 10, rotDim: 6, inverse: true });
      return { y: H(y), back: H(back) };
    }),
    check: (out) => {
      const x = rnd(300, 47), pos = [0, 1, 2, 3, 4, 7, 3, 0, 9, 1], inv = [1, 0.1, 0.01], want = Float64Array.from(x);
      for (let b = 0; b < 2; b++) for (let h = 0; h < 3; h++) for (let t = 0; t < 5; t++) {
        const o = ((b * 3 + h) * 5 + t) * 10;
        for (let i = 0; i < 3; i++) {
          const a = pos[b * 5 + t]! * inv[i]!, x1 = x[o + i]!, x2 = x[o + i + 3]!;
          want[o + i] = x1 * Math.cos(a) - x2 * Math.sin(a);
          want[o + i + 3] = x2 * Math.cos(a) + x1 * Math.sin(a);
        }
      }
      close(F32(out.y!), want, 'rope', 1e-5, 1e-6);
      close(F32(out.back!), x, 'rope inverse (the backward) undoes it', 1e-5, 1e-6);
    },
  },

  // ---------------------------------------------------------------- attention
  attention: {
    run: (dev) => tidy(() => {
      const inp = attIn();
      const out = Z([att.B, att.Hq, att.Tq, att.D], dev), lse = Z([att.B, att.Hq, att.Tq], dev);
      run('attention', { q: T(inp.q, [inp.q.length], dev), k: T(inp.k, [inp.k.length], dev), v: T(inp.v, [inp.v.length], dev), out, lse, keyMask: T(attMask, [2, 5], dev, 'i32'), ...att });
      return { out: H(out), lse: H(lse) };
    }),
    check: (out) => {
      const inp = attIn(), ref = attentionRef(inp.q, inp.k, inp.v, attMask, att.B, att.Hq, att.Hkv, att.Tq, att.Tk, att.D, att.scale, att.causal);
      close(F32(out.out!), ref.out, 'attention out', 1e-5, 1e-6);
      close(F32(out.lse!), ref.lse, 'attention lse', 1e-5, 1e-6);
    },
  },
  attentionBackward: {
    uses: ['attention', 'attentionBackward'],
    run: (dev) => tidy(() => {
      const inp = attIn(), n = att.B * att.Hq * att.Tq * att.D;
      const q = T(inp.q, [inp.q.length], dev), k = T(inp.k, [inp.k.length], dev), v = T(inp.v, [inp.v.length], dev), keyMask = T(attMask, [2, 5], dev, 'i32');
      const out = Z([n], dev), lse = Z([n / att.D], dev);
      run('attention', { q, k, v, out, lse, keyMask, ...att });
      const dq = Z([inp.q.length], dev), dk = Z([inp.k.length], dev), dv = Z([inp.v.length], dev);
      run('attentionBackward', { q, k, v, out, lse, dout: T(rnd(n, 48), [n], dev), dq, dk, dv, keyMask, ...att });
      return { dq: H(dq), dk: H(dk), dv: H(dv) };
    }),
    check: (out) => {
      const n = att.B * att.Hq * att.Tq * att.D;
      directional((inp) => attF(inp).out, attIn(), rnd(n, 48), { q: F32(out.dq!), k: F32(out.dk!), v: F32(out.dv!) }, 'attentionBackward');
    },
  },

  attentionRows: {
    run: (dev) => tidy(() => {
      const res: Out = {};
      for (const last of [false, true]) {
        const nq = last ? rowsAtt.S : rowsAtt.N;
        const out = Z([nq, 14], dev), lse = Z([2, nq], dev);
        run('attentionRows', { qkv: T(rowsIn(), [8, 42], dev), offsets: T(rowsOffsets, [3], dev, 'i32'), keyMask: T(rowsMask, [8], dev, 'i32'), out, lse, ...rowsAtt, lastQueryOnly: last });
        Object.assign(res, { [`out${last}`]: H(out), [`lse${last}`]: H(lse) });
      }
      return res;
    }),
    check: (out) => {
      for (const last of [false, true]) {
        const ref = rowsRef(rowsIn(), last);
        close(F32(out[`out${last}`]!), ref.out, `attentionRows out (lastQueryOnly ${last})`, 1e-5, 1e-6);
        close(F32(out[`lse${last}`]!), ref.lse, `attentionRows lse (lastQueryOnly ${last})`, 1e-5, 1e-6);
      }
    },
  },
  attentionRowsBackward: {
    uses: ['attentionRows', 'attentionRowsBackward'],
    run: (dev) => tidy(() => {
      const res: Out = {};
      for (const last of [false, true]) {
        const nq = last ? rowsAtt.S : rowsAtt.N;
        const qkv = T(rowsIn(), [8, 42], dev), offsets = T(rowsOffsets, [3], dev, 'i32'), keyMask = T(rowsMask, [8], dev, 'i32');
        const out = Z([nq, 14], dev), lse = Z([2, nq], dev), dqkv = Z([8, 42], dev);
        run('attentionRows', { qkv, offsets, keyMask, out, lse, ...rowsAtt, lastQueryOnly: last });
        run('attentionRowsBackward', { qkv, offsets, keyMask, out, lse, dout: T(rnd(nq * 14, 62), [nq, 14], dev), dqkv, ...rowsAtt, lastQueryOnly: last });
        res[`dqkv${last}`] = H(dqkv);
      }
      return res;
    }),
    check: (out) => {
      for (const last of [false, true]) {
        const nq = last ? rowsAtt.S : rowsAtt.N;
        directional((inp) => rowsF(inp.qkv!, last).out, { qkv: rowsIn() }, rnd(nq * 14, 62), { qkv: F32(out[`dqkv${last}`]!) }, `attentionRowsBackward (lastQueryOnly ${last})`);
      }
    },
  },

  // ---------------------------------------------------------------- LoRA
  loraLinearForward: {
    run: (dev) => tidy(() => {
      const inp = loraIn(), { M, inF, outF, r } = lora, out: Out = {};
      for (const [p, wInOut] of [[0, false], [0, true], [0.25, false]] as const) {
        const y = Z([M, outF], dev), xa = Z([M, r], dev), mask = Z([M, inF], dev, 'u8');
        run('loraLinearForward', { x: T(inp.x, [M * inF], dev), w: T(inp.w, [outF * inF], dev), bias: T(inp.bias, [outF], dev), a: T(inp.a, [r * inF], dev), b: T(inp.b, [outF * r], dev), y, xa, mask: p > 0 ? mask : null, ...lora, wInOut, p, seed: 5 });
        Object.assign(out, { [`y${p}${wInOut}`]: H(y), [`xa${p}${wInOut}`]: H(xa), [`mask${p}`]: H(mask) });
      }
      return out;
    }),
    check: (out) => {
      const { x, w, bias, a, b } = loraIn(), { M, inF, outF, r, scale } = lora;
      for (const [p, wInOut] of [[0, false], [0, true], [0.25, false]] as const) {
        const mask = F32(out[`mask${p}`]!);
        const xd = p > 0 ? Array.from(x, (v, i) => (mask[i] ? v / (1 - p) : 0)) : Array.from(x);
        const base = matmul(x, wInOut ? w : transpose(w, outF, inF), M, inF, outF); // wInOut: w read as [in, out]
        const xa = matmul(xd, transpose(a, r, inF), M, inF, r);
        const up = matmul(xa, transpose(b, outF, r), M, r, outF);
        close(F32(out[`xa${p}${wInOut}`]!), xa, `loraLinearForward xa p=${p}`, 1e-5, 1e-5);
        close(F32(out[`y${p}${wInOut}`]!), Array.from(base, (v, i) => v + bias[i % outF]! + scale * up[i]!), `loraLinearForward y p=${p} wInOut=${wInOut}`, 1e-5, 1e-5);
      }
      expect(sum(F32(out['mask0.25']!))).toBeGreaterThan(M * inF * 0.5);
    },
    tol: 1e-4,
  },
  loraLinearBackward: {
    uses: ['loraLinearForward', 'loraLinearBackward'],
    run: (dev) => tidy(() => {
      const inp = loraIn(), { M, inF, outF, r } = lora, out: Out = {};
      for (const p of [0, 0.25]) {
        const x = T(inp.x, [M * inF], dev), w = T(inp.w, [outF * inF], dev), a = T(inp.a, [r * inF], dev), b = T(inp.b, [outF * r], dev);
        const y = Z([M, outF], dev), xa = Z([M, r], dev), mask = p > 0 ? Z([M, inF], dev, 'u8') : null;
        run('loraLinearForward', { x, w, bias: T(inp.bias, [outF], dev), a, b, y, xa, mask, ...lora, wInOut: false, p, seed: 5 });
        const dx = Z([M * inF], dev), da = Z([r * inF], dev), db = Z([outF * r], dev);
        run('loraLinearBackward', { dy: T(rnd(M * outF, 49), [M * outF], dev), x, mask, w, a, b, xa, dx, da, db, ...lora, wInOut: false, p });
        Object.assign(out, { [`dx${p}`]: H(dx), [`da${p}`]: H(da), [`db${p}`]: H(db) });
      }
      return out;
    }),
    check: (out) => {
      for (const p of [0, 0.25]) {
        directional((inp) => loraF(inp, p).y, loraIn(), rnd(lora.M * lora.outF, 49), { x: F32(out[`dx${p}`]!), a: F32(out[`da${p}`]!), b: F32(out[`db${p}`]!) }, `loraLinearBackward p=${p}`);
      }
    },
  },
  loraBatchedLinear: {
    run: (dev) => tidy(() => {
      // 7 rows, 3 adapter slots of ranks 2, 0, 3 (R = 5); rows with slot -1 get no adapter
      const M = 7, inF = 11, outF = 5, R = 5, out: Out = {};
      for (const reference of dev === 'cpu' ? [false, true] : [false]) {
        const y = Z([M, outF], dev);
        run('loraBatchedLinear', {
          x: T(rnd(M * inF, 50), [M * inF], dev), w: T(rnd(outF * inF, 51), [outF * inF], dev), bias: T(rnd(outF, 52), [outF], dev), rowSlot: T([0, -1, 2, 2, 1, 0, -1], [M], dev, 'i32'),
          aPack: T(rnd(R * inF, 53), [R * inF], dev), btPack: T(rnd(R * outF, 54), [R * outF], dev), rOff: T([0, 2, 2, 5], [4], dev, 'i32'), scales: T([0.5, 2, 1.5], [3], dev), y,
          M, inF, outF, slots: 3, R, wInOut: false, reference,
        });
        out[String(reference)] = H(y);
      }
      return out;
    }),
    check: (out) => close(F32(out.false!), F32(out.true!), 'loraBatchedLinear vs its reference kernel', 1e-5, 1e-5),
  },

  // ---------------------------------------------------------------- NF4 / FP4
  nf4Quantize: {
    uses: ['nf4Quantize', 'nf4Dequantize'],
    run: (dev) => tidy(() => {
      const out: Out = {};
      for (const qt of ['nf4', 'fp4'] as const) {
        const { n, blocksize } = nf4Case(qt);
        const { packed, absmax } = nf4Quant(dev, rnd(n, 55, -2, 2), n, blocksize, qt);
        const deq = Z([n], dev);
        run('nf4Dequantize', { packed, absmax, n, blocksize, quantType: qt, out: deq });
        Object.assign(out, { [`absmax${qt}`]: H(absmax), [`deq${qt}`]: H(deq) });
      }
      return out;
    }),
    check: (out) => {
      for (const qt of ['nf4', 'fp4'] as const) {
        const { n, blocksize } = nf4Case(qt), w = rnd(n, 55, -2, 2), cb = Array.from(codebook(qt));
        const absmax = Array.from({ length: Math.ceil(n / blocksize) }, (_, k) => Math.max(...Array.from(w.subarray(k * blocksize, (k + 1) * blocksize), Math.abs)));
        close(F32(out[`absmax${qt}`]!), absmax, `${qt} absmax`, 0, 0);
        // each value dequantizes to the code nearest to w / absmax, times absmax
        const deq = Array.from(w, (v, i) => { const am = absmax[Math.floor(i / blocksize)]!, x = v / am; let best = 0; cb.forEach((c, k) => { if (Math.abs(c - x) < Math.abs(cb[best]! - x)) best = k; }); return Math.fround(cb[best]! * am); });
        close(F32(out[`deq${qt}`]!), deq, `${qt} quantize + dequantize`, 1e-6);
      }
    },
    tol: 0,
  },
  nf4Dequantize: {
    run: (dev) => tidy(() => {
      // packed codes 0..15 cycling over an odd count, two blocks of 32
      const n = 63, codes = Array.from({ length: n }, (_, i) => (i * 7) % 16), packed = new Uint8Array(32);
      codes.forEach((c, i) => { packed[i >> 1]! |= i % 2 === 0 ? c << 4 : c; });
      const out = Z([n], dev);
      run('nf4Dequantize', { packed: T(packed, [32], dev, 'u8'), absmax: T([0.5, 3], [2], dev), n, blocksize: 32, quantType: 'nf4', out });
      return { y: H(out) };
    }),
    check: (out) => {
      const cb = codebook('nf4');
      close(F32(out.y!), Array.from({ length: 63 }, (_, i) => Math.fround(cb[(i * 7) % 16]! * (i < 32 ? 0.5 : 3))), 'nf4Dequantize', 1e-7);
    },
  },
  nf4DoubleQuantize: {
    uses: ['nf4DoubleQuantize', 'nf4DoubleDequantize'],
    run: (dev) => tidy(() => {
      const nb = 300, q = Z([nb], dev, 'u8'), nested = Z([2], dev), back = Z([nb], dev);
      const offset = run('nf4DoubleQuantize', { absmax: T(rnd(nb, 56, 0.01, 3), [nb], dev), nblocks: nb, q, nested });
      run('nf4DoubleDequantize', { q, nested, offset, nblocks: nb, absmax: back });
      return { offset, back: H(back), nested: H(nested) };
    }),
    check: (out) => {
      const a = rnd(300, 56, 0.01, 3);
      close([out.offset as number], [sum(a) / 300], 'nf4DoubleQuantize offset (the mean)', 1e-5);
      // every absmax comes back within the 8-bit dynamic map's resolution of its nested scale
      const nested = F32(out.nested!), back = F32(out.back!);
      a.forEach((v, i) => expect(Math.abs(back[i]! - v), `absmax ${i}`).toBeLessThanOrEqual(0.02 * nested[Math.floor(i / 256)]! + 1e-6));
    },
    tol: 1e-5,
  },
  nf4DoubleDequantize: {
    run: (dev) => tidy(() => {
      const nb = 259, absmax = Z([nb], dev);
      run('nf4DoubleDequantize', { q: T(Uint8Array.from({ length: nb }, (_, i) => (i * 37) % 256), [nb], dev, 'u8'), nested: T([0.75, 2], [2], dev), offset: 0.3, nblocks: nb, absmax });
      return { y: H(absmax) };
    }),
    check: (out) => {
      const dm = dynamicMap();
      close(F32(out.y!), Array.from({ length: 259 }, (_, i) => Math.fround(dm[(i * 37) % 256]! * (i < 256 ? 0.75 : 2) + 0.3)), 'nf4DoubleDequantize', 1e-6);
    },
  },
  nf4Gemm: {
    uses: ['nf4Quantize', 'nf4Dequantize', 'nf4Gemm'],
    run: (dev) => tidy(() => {
      const [M, N, K, bs] = [3, 7, 64, 32];
      const { packed, absmax } = nf4Quant(dev, rnd(N * K, 57), N * K, bs, 'nf4');
      const deq = Z([N * K], dev), y = T(rnd(M * N, 58), [M * N], dev);
      run('nf4Dequantize', { packed, absmax, n: N * K, blocksize: bs, quantType: 'nf4', out: deq });
      run('nf4Gemm', { x: T(rnd(M * K, 59), [M * K], dev), M, packed, absmax, N, K, blocksize: bs, quantType: 'nf4', y, beta: 1 });
      return { y: H(y), deq: H(deq) };
    }),
    check: (out) => {
      const [M, N, K] = [3, 7, 64], y0 = rnd(M * N, 58);
      const p = matmul(rnd(M * K, 59), transpose(F32(out.deq!), N, K), M, K, N);
      close(F32(out.y!), Array.from(p, (v, i) => v + y0[i]!), 'nf4Gemm = x dequant(W)^T + y', 1e-5, 1e-5);
    },
  },
  nf4GemmDx: {
    uses: ['nf4Quantize', 'nf4Dequantize', 'nf4GemmDx'],
    run: (dev) => tidy(() => {
      const [M, N, K, bs] = [3, 7, 64, 32];
      const { packed, absmax } = nf4Quant(dev, rnd(N * K, 60), N * K, bs, 'nf4');
      const deq = Z([N * K], dev), dx = Z([M * K], dev);
      run('nf4Dequantize', { packed, absmax, n: N * K, blocksize: bs, quantType: 'nf4', out: deq });
      run('nf4GemmDx', { dy: T(rnd(M * N, 61), [M * N], dev), M, packed, absmax, N, K, blocksize: bs, quantType: 'nf4', dx, beta: 0 });
      return { dx: H(dx), deq: H(deq) };
    }),
    check: (out) => close(F32(out.dx!), matmul(rnd(3 * 7, 61), F32(out.deq!), 3, 7, 64), 'nf4GemmDx = dy dequant(W)', 1e-5, 1e-5),
  },

  // ---------------------------------------------------------------- vision (NCHW)
  conv2dForward: {
    run: (dev) => tidy(() => {
      const out: Out = {};
      for (const [name, dims] of [['conv', conv], ['grouped', { ...conv, C: 4, O: 6, groups: 2, dilationW: 1 }]] as const) {
        const Ho = Math.floor((dims.H + 2 * dims.padH - dims.dilationH * (dims.KH - 1) - 1) / dims.strideH) + 1, Wo = Math.floor((dims.W + 2 * dims.padW - dims.dilationW * (dims.KW - 1) - 1) / dims.strideW) + 1;
        const nx = dims.N * dims.C * dims.H * dims.W, nw = dims.O * (dims.C / dims.groups) * dims.KH * dims.KW;
        const y = Z([dims.N * dims.O * Ho * Wo], dev);
        run('conv2dForward', { x: T(rnd(nx, 62), [nx], dev), w: T(rnd(nw, 63), [nw], dev), bias: T(rnd(dims.O, 64), [dims.O], dev), y, ...dims });
        out[name] = H(y);
      }
      return out;
    }),
    check: (out) => {
      close(F32(out.conv!), convF({ x: rnd(2 * 3 * 7 * 6, 62), w: rnd(4 * 3 * 3 * 2, 63), bias: rnd(4, 64) }, true), 'conv2dForward vs the reference kernel', 1e-5, 1e-5);
      const g = { ...conv, C: 4, O: 6, groups: 2, dilationW: 1 };
      close(F32(out.grouped!), convF({ x: rnd(2 * 4 * 7 * 6, 62), w: rnd(6 * 2 * 3 * 2, 63), bias: rnd(6, 64) }, true, g), 'grouped conv2dForward vs the reference kernel', 1e-5, 1e-5);
    },
  },
  conv2dBackward: {
    run: (dev) => tidy(() => {
      const nx = 2 * 3 * 7 * 6, nw = 4 * 3 * 3 * 2, ny = 2 * 4 * convOut.Ho * convOut.Wo;
      const dx = Z([nx], dev), dw = Z([nw], dev), db = Z([4], dev);
      run('conv2dBackward', { x: T(rnd(nx, 65), [nx], dev), w: T(rnd(nw, 66), [nw], dev), dy: T(rnd(ny, 67), [ny], dev), dx, dw, db, ...conv });
      const out: Out = { dx: H(dx), dw: H(dw), db: H(db) };
      if (dev === 'cpu') {
        const rx = Z([nx], dev), rw = Z([nw], dev), rb = Z([4], dev);
        run('conv2dBackward', { x: T(rnd(nx, 65), [nx], dev), w: T(rnd(nw, 66), [nw], dev), dy: T(rnd(ny, 67), [ny], dev), dx: rx, dw: rw, db: rb, ...conv, reference: true });
        Object.assign(out, { rdx: H(rx), rdw: H(rw), rdb: H(rb) });
      }
      return out;
    }),
    check: (out) => {
      for (const k of ['dx', 'dw', 'db']) close(F32(out[k]!), F32(out[`r${k}`]!), `conv2dBackward ${k} vs the reference kernel`, 1e-5, 1e-5);
      directional((inp) => convF(inp), { x: rnd(2 * 3 * 7 * 6, 65), w: rnd(4 * 3 * 3 * 2, 66), bias: new Float32Array(4) }, rnd(2 * 4 * convOut.Ho * convOut.Wo, 67), { x: F32(out.dx!), w: F32(out.dw!), bias: F32(out.db!) }, 'conv2dBackward');
    },
  },
  maxPool2d: {
    run: (dev) => tidy(() => {
      const nx = 2 * 3 * 7 * 5, ny = 2 * 3 * poolOut.Ho * poolOut.Wo, out: Out = {};
      for (const reference of dev === 'cpu' ? [false, true] : [false]) {
        const y = Z([ny], dev), idx = Z([ny], dev, 'i32');
        run('maxPool2d', { x: T(rnd(nx, 68), [nx], dev), y, idx, ...pool, reference });
        Object.assign(out, { [`y${reference}`]: H(y), [`idx${reference}`]: H(idx) });
      }
      return out;
    }),
    check: (out) => {
      close(F32(out.yfalse!), F32(out.ytrue!), 'maxPool2d vs the reference kernel', 0, 0);
      close(F32(out.idxfalse!), F32(out.idxtrue!), 'maxPool2d indices vs the reference kernel', 0, 0);
    },
    tol: 0,
  },
  maxPool2dBackward: {
    uses: ['maxPool2d', 'maxPool2dBackward'],
    run: (dev) => tidy(() => {
      const nx = 2 * 3 * 7 * 5, ny = 2 * 3 * poolOut.Ho * poolOut.Wo;
      const y = Z([ny], dev), idx = Z([ny], dev, 'i32'), dx = Z([nx], dev);
      run('maxPool2d', { x: T(rnd(nx, 69), [nx], dev), y, idx, ...pool });
      run('maxPool2dBackward', { dy: T(rnd(ny, 70), [ny], dev), idx, dx, ...pool });
      return { dx: H(dx), idx: H(idx) };
    }),
    check: (out) => {
      // each output's gradient lands on its argmax (ih * W + iw within its image plane)
      const dy = rnd(2 * 3 * 12, 70), idx = F32(out.idx!), want = new Float64Array(2 * 3 * 35);
      for (let p = 0; p < 6; p++) for (let o = 0; o < 12; o++) want[p * 35 + idx[p * 12 + o]!] += dy[p * 12 + o]!;
      close(F32(out.dx!), want, 'maxPool2dBackward', 1e-6);
    },
  },
  avgPool2d: {
    run: (dev) => tidy(() => {
      const nx = 2 * 3 * 7 * 5, ny = 2 * 3 * poolOut.Ho * poolOut.Wo, out: Out = {};
      for (const cip of [true, false]) for (const reference of dev === 'cpu' ? [false, true] : [false]) {
        const y = Z([ny], dev);
        run('avgPool2d', { x: T(rnd(nx, 71), [nx], dev), y, ...pool, countIncludePad: cip, reference });
        out[`${cip}${reference}`] = H(y);
      }
      return out;
    }),
    check: (out) => { for (const cip of [true, false]) close(F32(out[`${cip}false`]!), F32(out[`${cip}true`]!), `avgPool2d countIncludePad=${cip} vs the reference kernel`, 1e-6); },
  },
  avgPool2dBackward: {
    uses: ['avgPool2d', 'avgPool2dBackward'],
    run: (dev) => tidy(() => {
      const nx = 2 * 3 * 7 * 5, ny = 2 * 3 * poolOut.Ho * poolOut.Wo, out: Out = {};
      for (const cip of [true, false]) {
        const y = Z([ny], dev), dx = Z([nx], dev);
        run('avgPool2d', { x: T(rnd(nx, 72), [nx], dev), y, ...pool, countIncludePad: cip });
        run('avgPool2dBackward', { dy: T(rnd(ny, 73), [ny], dev), dx, ...pool, countIncludePad: cip });
        Object.assign(out, { [`y${cip}`]: H(y), [`dx${cip}`]: H(dx) });
      }
      return out;
    }),
    check: (out) => {
      // a linear op: <avgPool(x), dy> = <x, avgPool^T(dy)>
      for (const cip of [true, false]) close([dot(F32(out[`y${cip}`]!), rnd(72, 73))], [dot(rnd(210, 72), F32(out[`dx${cip}`]!))], `avgPool2dBackward countIncludePad=${cip} (adjoint)`, 1e-5);
    },
  },
  adaptiveAvgPool2d: {
    run: (dev) => tidy(() => {
      const out: Out = {};
      for (const reference of dev === 'cpu' ? [false, true] : [false]) {
        const y = Z([5 * 3 * 4], dev);
        run('adaptiveAvgPool2d', { x: T(rnd(5 * 7 * 9, 74), [315], dev), y, NC: 5, H: 7, W: 9, Ho: 3, Wo: 4, reference });
        out[String(reference)] = H(y);
      }
      return out;
    }),
    check: (out) => close(F32(out.false!), F32(out.true!), 'adaptiveAvgPool2d vs the reference kernel', 1e-6),
  },
  adaptiveAvgPool2dBackward: {
    uses: ['adaptiveAvgPool2d', 'adaptiveAvgPool2dBackward'],
    run: (dev) => tidy(() => {
      const y = Z([60], dev), dx = Z([315], dev);
      run('adaptiveAvgPool2d', { x: T(rnd(315, 75), [315], dev), y, NC: 5, H: 7, W: 9, Ho: 3, Wo: 4 });
      run('adaptiveAvgPool2dBackward', { dy: T(rnd(60, 76), [60], dev), dx, NC: 5, H: 7, W: 9, Ho: 3, Wo: 4 });
      return { y: H(y), dx: H(dx) };
    }),
    check: (out) => close([dot(F32(out.y!), rnd(60, 76))], [dot(rnd(315, 75), F32(out.dx!))], 'adaptiveAvgPool2dBackward (adjoint)', 1e-5),
  },
  batchNormTrain: {
    run: (dev) => tidy(() => {
      const [N, C, HW] = [3, 5, 7], n = N * C * HW, out: Out = {};
      for (const reference of dev === 'cpu' ? [false, true] : [false]) {
        const y = Z([n], dev), mean = Z([C], dev), rstd = Z([C], dev), rm = T(rnd(C, 77), [C], dev), rv = T(rnd(C, 78, 0.5, 2), [C], dev);
        run('batchNormTrain', { x: T(rnd(n, 79, -1, 3), [n], dev), w: T(rnd(C, 80), [C], dev), b: T(rnd(C, 81), [C], dev), y, mean, rstd, runningMean: rm, runningVar: rv, N, C, HW, eps: 1e-5, momentum: 0.1, reference });
        Object.assign(out, { [`y${reference}`]: H(y), [`rm${reference}`]: H(rm), [`rv${reference}`]: H(rv) });
      }
      return out;
    }),
    check: (out) => { for (const k of ['y', 'rm', 'rv']) close(F32(out[`${k}false`]!), F32(out[`${k}true`]!), `batchNormTrain ${k} vs the reference kernel`, 1e-5, 1e-6); },
  },
  batchNormEval: {
    run: (dev) => tidy(() => {
      const [N, C, HW] = [2, 3, 5], n = N * C * HW, y = Z([n], dev);
      run('batchNormEval', { x: T(rnd(n, 82), [n], dev), w: T(rnd(C, 83), [C], dev), b: null, runningMean: T(rnd(C, 84), [C], dev), runningVar: T(rnd(C, 85, 0.5, 2), [C], dev), y, mean: Z([C], dev), rstd: Z([C], dev), N, C, HW, eps: 1e-5 });
      return { y: H(y) };
    }),
    check: (out) => {
      const x = rnd(30, 82), w = rnd(3, 83), rm = rnd(3, 84), rv = rnd(3, 85, 0.5, 2);
      close(F32(out.y!), Array.from(x, (v, i) => { const c = Math.floor(i / 5) % 3; return ((v - rm[c]!) / Math.sqrt(rv[c]! + 1e-5)) * w[c]!; }), 'batchNormEval', 1e-5, 1e-6);
    },
  },
  batchNormBackward: {
    uses: ['batchNormTrain', 'batchNormBackward'],
    run: (dev) => tidy(() => {
      const [N, C, HW] = [3, 5, 7], n = N * C * HW, out: Out = {};
      const x = T(rnd(n, 86), [n], dev), w = T(rnd(C, 87), [C], dev), mean = Z([C], dev), rstd = Z([C], dev);
      run('batchNormTrain', { x, w, b: null, y: Z([n], dev), mean, rstd, runningMean: null, runningVar: null, N, C, HW, eps: 1e-5, momentum: 0.1 });
      for (const reference of dev === 'cpu' ? [false, true] : [false]) {
        const dx = Z([n], dev), dw = Z([C], dev), db = Z([C], dev);
        run('batchNormBackward', { x, w, mean, rstd, dy: T(rnd(n, 88), [n], dev), dx, dw, db, N, C, HW, train: true, reference });
        Object.assign(out, { [`dx${reference}`]: H(dx), [`dw${reference}`]: H(dw), [`db${reference}`]: H(db) });
      }
      return out;
    }),
    check: (out) => {
      for (const k of ['dx', 'dw', 'db']) close(F32(out[`${k}false`]!), F32(out[`${k}true`]!), `batchNormBackward ${k} vs the reference kernel`, 1e-4, 1e-5);
      const f = (inp: Record<string, Float32Array>) => tidy(() => {
        const y = Z([105], 'cpu');
        run('batchNormTrain', { x: T(inp.x!, [105], 'cpu'), w: T(inp.w!, [5], 'cpu'), b: T(inp.b!, [5], 'cpu'), y, mean: Z([5], 'cpu'), rstd: Z([5], 'cpu'), runningMean: null, runningVar: null, N: 3, C: 5, HW: 7, eps: 1e-5, momentum: 0.1 });
        return H(y);
      });
      directional(f, { x: rnd(105, 86), w: rnd(5, 87), b: new Float32Array(5) }, rnd(105, 88), { x: F32(out.dxfalse!), w: F32(out.dwfalse!), b: F32(out.dbfalse!) }, 'batchNormBackward');
    },
  },
  loraConv2dForward: {
    run: (dev) => tidy(() => {
      const d = { ...conv, dilationW: 1 }, r = 2, K = d.C * d.KH * d.KW, ny = 2 * 4 * 4 * 7; // Ho 4, Wo 7
      const y = Z([ny], dev), low = Z([2 * r * 4 * 7], dev);
      run('loraConv2dForward', { x: T(rnd(2 * 3 * 7 * 6, 89), [252], dev), w: T(rnd(4 * K, 90), [4 * K], dev), bias: T(rnd(4, 91), [4], dev), a: T(rnd(r * K, 92), [r * K], dev), b: T(rnd(4 * r, 93), [4 * r], dev), y, low, ...d, r, scale: 0.75 });
      return { y: H(y), low: H(low) };
    }),
    check: (out) => {
      // conv(x, W) + bias + scale * conv(conv(x, A), B) through the reference convolution
      const d = { ...conv, dilationW: 1 }, x = rnd(252, 89);
      const base = convF({ x, w: rnd(72, 90), bias: rnd(4, 91) }, true, d);
      const low = convF({ x, w: rnd(2 * 18, 92) }, true, { ...d, O: 2 });
      const up = convF({ x: Float32Array.from(low), w: rnd(8, 93) }, true, { ...d, N: 2, C: 2, H: 4, W: 7, O: 4, KH: 1, KW: 1, strideH: 1, strideW: 1, padH: 0, padW: 0, dilationH: 1, dilationW: 1 });
      close(F32(out.low!), low, 'loraConv2dForward low', 1e-5, 1e-5);
      close(F32(out.y!), Array.from(base, (v, i) => v + 0.75 * up[i]!), 'loraConv2dForward y', 1e-5, 1e-5);
    },
  },
  loraConv2dBackward: {
    uses: ['loraConv2dForward', 'loraConv2dBackward'],
    run: (dev) => tidy(() => {
      const d = { ...conv, dilationW: 1 }, r = 2, K = 18, ny = 2 * 4 * 4 * 7;
      const x = T(rnd(252, 94), [252], dev), w = T(rnd(4 * K, 95), [4 * K], dev), a = T(rnd(r * K, 96), [r * K], dev), b = T(rnd(4 * r, 97), [4 * r], dev);
      const low = Z([2 * r * 28], dev);
      run('loraConv2dForward', { x, w, bias: null, a, b, y: Z([ny], dev), low, ...d, r, scale: 0.75 });
      const dx = Z([252], dev), da = Z([r * K], dev), db = Z([4 * r], dev);
      run('loraConv2dBackward', { x, w, a, b, low, dy: T(rnd(ny, 98), [ny], dev), dx, da, db, ...d, r, scale: 0.75 });
      return { dx: H(dx), da: H(da), db: H(db) };
    }),
    check: (out) => {
      const d = { ...conv, dilationW: 1 };
      const f = (inp: Record<string, Float32Array>) => tidy(() => {
        const y = Z([224], 'cpu');
        run('loraConv2dForward', { x: T(inp.x!, [252], 'cpu'), w: T(inp.w!, [72], 'cpu'), bias: null, a: T(inp.a!, [36], 'cpu'), b: T(inp.b!, [8], 'cpu'), y, low: Z([112], 'cpu'), ...d, r: 2, scale: 0.75 });
        return H(y);
      });
      directional(f, { x: rnd(252, 94), w: rnd(72, 95), a: rnd(36, 96), b: rnd(8, 97) }, rnd(224, 98), { x: F32(out.dx!), a: F32(out.da!), b: F32(out.db!) }, 'loraConv2dBackward');
    },
  },

  // ---------------------------------------------------------------- SVD (CPU by design), LSTM, AdaLoRA
  svd: {
    run: (dev) => tidy(() => {
      const [m, n] = [7, 5], u = Z([m * n], dev, 'f64'), s = Z([n], dev, 'f64'), vt = Z([n * n], dev, 'f64');
      run('svd', { a: T(Float64Array.from(rnd(m * n, 99)), [m * n], dev, 'f64'), m, n, u, s, vt, dtype: 'f64' });
      const s1 = Z([1], dev);
      run('svd', { a: T(Float32Array.from(rnd(m * n, 99)), [m * n], dev), m, n, u: null, s: s1, vt: null, dtype: 'f32', k: 1 });
      return { u: H(u), s: H(s), vt: H(vt), top: H(s1) };
    }),
    check: (out) => {
      const [m, n] = [7, 5], u = F32(out.u!), s = F32(out.s!), vt = F32(out.vt!);
      const us = Array.from(u, (v, i) => v * s[i % n]!);
      close(matmul(us, vt, m, n, n), rnd(m * n, 99), 'svd: u diag(s) vt = a', 1e-9, 1e-6);
      for (let i = 1; i < n; i++) expect(s[i]!).toBeLessThanOrEqual(s[i - 1]!);
      close(matmul(transpose(u, m, n), u, n, m, n), Array.from({ length: n * n }, (_, i) => (i % (n + 1) === 0 ? 1 : 0)), 'svd: u^T u = I', 0, 1e-9);
      close(F32(out.top!), [s[0]!], 'svd k = 1 (f32): the largest value', 1e-5);
    },
  },
  lstmForward: {
    run: (dev) => tidy(() => {
      const inp = lstmIn(), { B, T: Tn, hidden } = lstmDims, out: Out = {};
      for (const reverse of [false, true]) {
        const y = Z([B * Tn * hidden], dev), gates = Z([B * Tn * 4 * hidden], dev), cell = Z([B * Tn * hidden], dev);
        run('lstmForward', { x: T(inp.x, [inp.x.length], dev), wih: T(inp.wih, [inp.wih.length], dev), whh: T(inp.whh, [inp.whh.length], dev), bih: T(inp.bih, [12], dev), bhh: null, y, gates, cell, ...lstmDims, reverse });
        Object.assign(out, { [`y${reverse}`]: H(y), [`g${reverse}`]: H(gates), [`c${reverse}`]: H(cell) });
      }
      return out;
    }),
    check: (out) => {
      const inp = lstmIn();
      for (const reverse of [false, true]) {
        const ref = lstmRef(inp.x, inp.wih, inp.whh, inp.bih, new Float32Array(12), 2, 3, 5, 3, reverse);
        close(F32(out[`y${reverse}`]!), ref.y, `lstmForward y reverse=${reverse}`, 1e-5, 1e-6);
        close(F32(out[`g${reverse}`]!), ref.gates, `lstmForward gates reverse=${reverse}`, 1e-5, 1e-6);
        close(F32(out[`c${reverse}`]!), ref.cell, `lstmForward cell reverse=${reverse}`, 1e-5, 1e-6);
      }
    },
  },
  lstmBackward: {
    uses: ['lstmForward', 'lstmBackward'],
    run: (dev) => tidy(() => {
      const inp = lstmIn(), { B, T: Tn, inF, hidden } = lstmDims, out: Out = {};
      for (const reverse of [false, true]) {
        const x = T(inp.x, [inp.x.length], dev), wih = T(inp.wih, [inp.wih.length], dev), whh = T(inp.whh, [inp.whh.length], dev);
        const y = Z([B * Tn * hidden], dev), gates = Z([B * Tn * 4 * hidden], dev), cell = Z([B * Tn * hidden], dev);
        run('lstmForward', { x, wih, whh, bih: T(inp.bih, [12], dev), bhh: T(inp.bhh, [12], dev), y, gates, cell, ...lstmDims, reverse });
        const dx = Z([B * Tn * inF], dev), dwih = Z([inp.wih.length], dev), dwhh = Z([inp.whh.length], dev), db = Z([12], dev);
        run('lstmBackward', { dy: T(rnd(B * Tn * hidden, 100), [B * Tn * hidden], dev), x, wih, whh, y, gates, cell, dx, dwih, dwhh, db, ...lstmDims, reverse });
        Object.assign(out, { [`dx${reverse}`]: H(dx), [`dwih${reverse}`]: H(dwih), [`dwhh${reverse}`]: H(dwhh), [`db${reverse}`]: H(db) });
      }
      return out;
    }),
    check: (out) => {
      for (const reverse of [false, true]) {
        directional((inp) => lstmF(inp, reverse).y, lstmIn(), rnd(18, 100),
          { x: F32(out[`dx${reverse}`]!), wih: F32(out[`dwih${reverse}`]!), whh: F32(out[`dwhh${reverse}`]!), bih: F32(out[`db${reverse}`]!), bhh: F32(out[`db${reverse}`]!) }, `lstmBackward reverse=${reverse}`);
      }
    },
  },
  adaloraUpdateScores: {
    run: (dev) => tidy(() => {
      const [r, inF, outF] = [3, 7, 5], na = r * inF, nb = outF * r, ns = 2 * (na + r + nb);
      const state = T(rnd(ns, 101, 0, 1), [ns], dev), scores = Z([r], dev);
      run('adaloraUpdateScores', { a: T(rnd(na, 102), [na], dev), ga: T(rnd(na, 103), [na], dev), e: T(rnd(r, 104), [r], dev), ge: null, b: T(rnd(nb, 105), [nb], dev), gb: T(rnd(nb, 106), [nb], dev), state, scores, r, inF, outF, beta1: 0.85, beta2: 0.9, update: true });
      return { state: H(state), scores: H(scores) };
    }),
    check: (out) => {
      const [r, inF, outF] = [3, 7, 5], na = r * inF, nb = outF * r, s0 = rnd(2 * (na + r + nb), 101, 0, 1), want = Float64Array.from(s0);
      const parts: [number, Float32Array, Float32Array | null][] = [[0, rnd(na, 102), rnd(na, 103)], [2 * na, rnd(r, 104), null], [2 * na + 2 * r, rnd(nb, 105), rnd(nb, 106)]];
      for (const [off, w, g] of parts) {
        for (let i = 0; i < w.length; i++) {
          const I = g ? Math.abs(w[i]! * g[i]!) : 0;
          const ibar = 0.85 * s0[off + i]! + 0.15 * I;
          want[off + i] = ibar;
          want[off + w.length + i] = 0.9 * s0[off + w.length + i]! + 0.1 * Math.abs(I - ibar);
        }
      }
      close(F32(out.state!), want, 'adaloraUpdateScores state', 1e-5, 1e-7);
      const sc = (i: number) => want[i]! * want[i + (i < 2 * na ? na : i < 2 * na + 2 * r ? r : nb)]!;
      const scores = Array.from({ length: r }, (_, i) => {
        let a = 0, b = 0;
        for (let j = 0; j < inF; j++) a += sc(i * inF + j);
        for (let j = 0; j < outF; j++) b += sc(2 * na + 2 * r + j * r + i);
        return sc(2 * na + i) + a / inF + b / outF;
      });
      close(F32(out.scores!), scores, 'adaloraUpdateScores scores', 1e-5, 1e-7);
    },
  },
  adaloraKthSmallest: {
    run: (dev) => tidy(() => {
      const v = T(rnd(29, 107), [29], dev);
      return { k1: run('adaloraKthSmallest', { values: v, n: 29, k: 1 }), k13: run('adaloraKthSmallest', { values: v, n: 29, k: 13 }), k29: run('adaloraKthSmallest', { values: v, n: 29, k: 29 }) };
    }),
    check: (out) => {
      const sorted = Array.from(rnd(29, 107)).sort((a, b) => a - b);
      close([out.k1 as number, out.k13 as number, out.k29 as number], [sorted[0]!, sorted[12]!, sorted[28]!], 'adaloraKthSmallest', 0, 0);
    },
  },
  adaloraCostThreshold: {
    run: (dev) => tidy(() => {
      const scores = T(rnd(11, 108), [11], dev), costs = T(Array.from({ length: 11 }, (_, i) => 1 + (i % 3)), [11], dev);
      return { t: run('adaloraCostThreshold', { scores, costs, n: 11, budget: 9 }), all: run('adaloraCostThreshold', { scores, costs, n: 11, budget: 1e9 }) };
    }),
    check: (out) => {
      const s = rnd(11, 108), c = Array.from({ length: 11 }, (_, i) => 1 + (i % 3)), order = [...s.keys()].sort((a, b) => s[b]! - s[a]!);
      let used = 0, t = -Infinity;
      for (const i of order) { if (used + c[i]! > 9) { t = s[i]!; break; } used += c[i]!; }
      expect(out.t).toBe(t);
      expect(out.all).toBe(-Infinity);
    },
  },
  adaloraMask: {
    run: (dev) => tidy(() => {
      const e = T(rnd(13, 109), [13], dev), keep = Z([13], dev, 'u8');
      const kept = run('adaloraMask', { e, scores: T(rnd(13, 110), [13], dev), r: 13, threshold: 0.1, keep });
      return { kept, e: H(e), keep: H(keep) };
    }),
    check: (out) => {
      const e = rnd(13, 109), s = rnd(13, 110);
      close(F32(out.e!), Array.from(e, (v, i) => (s[i]! <= 0.1 ? 0 : v)), 'adaloraMask E');
      close(F32(out.keep!), Array.from(s, (v) => (v <= 0.1 ? 0 : 1)), 'adaloraMask keep');
      expect(out.kept).toBe(Array.from(s).filter((v) => v > 0.1).length);
    },
  },
  adaloraApplyPattern: {
    run: (dev) => tidy(() => {
      const e = T(rnd(13, 111), [13], dev);
      run('adaloraApplyPattern', { e, keep: T(Uint8Array.from({ length: 13 }, (_, i) => (i % 3 === 0 ? 0 : 1)), [13], dev, 'u8'), r: 13 });
      return { e: H(e) };
    }),
    check: (out) => close(F32(out.e!), Array.from(rnd(13, 111), (v, i) => (i % 3 === 0 ? 0 : v)), 'adaloraApplyPattern'),
  },
};

// ------------------------------------------------------------------ the table

const cpuOuts = new Map<OpName, Out>();
const cpuOut = (op: OpName): Out => {
  let o = cpuOuts.get(op);
  if (!o) cpuOuts.set(op, (o = CASES[op].run('cpu')));
  return o;
};

describe('backend ops: every op of the kernel table', () => {
  it('every cpu op has a case here (a new op must add one)', () => {
    const ops = supportedOps('cpu');
    expect(ops.length).toBeGreaterThan(60);
    expect(ops.filter((op) => !(op in CASES))).toEqual([]);
    expect(Object.keys(CASES).filter((op) => !ops.includes(op as OpName))).toEqual([]);
  });

  describe('cpu', () => {
    for (const op of Object.keys(CASES) as OpName[]) {
      it(op, () => CASES[op].check(cpuOut(op)));
    }
  });

  const cuda = cudaStatus();
  const cudaUsable = !!native.cuda && cuda.devices > 0;
  const why = !native.cuda ? 'this build has no CUDA backend' : cuda.reason;
  describe.skipIf(!cudaUsable)(`cuda${cudaUsable ? '' : ` (skipped: ${why})`}`, () => {
    for (const op of Object.keys(CASES) as OpName[]) {
      const c = CASES[op];
      const lacking = cudaUsable ? (c.uses ?? [op]).filter((u) => !supports(u, 'cuda')) : [];
      it.skipIf(lacking.length > 0)(`${op}${lacking.length ? ` (not supported: ${lacking.join(', ')})` : ''}`, () => {
        const got = c.run('cuda:0'), want = cpuOut(op), tol = c.tol ?? 1e-4;
        // every output the device run gives (the CPU run adds the reference kernels' outputs)
        expect(Object.keys(got).length, `${op}: outputs on cuda:0`).toBeGreaterThan(0);
        for (const [k, g] of Object.entries(got)) {
          const v = want[k]!;
          close(typeof g === 'number' ? [g] : g, typeof v === 'number' ? [v] : v, `${op} ${k} on cuda:0 vs cpu`, tol, tol);
        }
      });
    }
  });
});

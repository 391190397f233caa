/**
 * Gradients of composed expressions against central finite differences.
 *
 * Each expression is written twice: with tunekit ops (f32, analytic gradients from the tape) and
 * as a plain float64 JS forward over the same f32-rounded inputs. Checked for every expression:
 *   1. the f32 loss equals the float64 loss (the forward is right);
 *   2. every gradient coordinate equals the float64 central difference (h = 1e-5);
 *   3. a sample of coordinates equals central differences of tunekit's own f32 forward (h = 1e-2),
 *      which does not depend on the JS model at all (coarser: see FD32_TOL).
 * Tolerances in test/tolerances.ts.
 */
import { describe, it, expect, afterAll } from 'vitest';
import { Tensor, tensor, ops as F, noGrad, tidy, randn } from '../../lib/index.js';
import { FD64_TOL, FD64_STEP, FD32_TOL, FD32_STEP } from '../tolerances.js';
import { expectClose, printReports } from './helpers.js';

type Arr = Float64Array;

interface Param { name: string; shape: number[]; value: Float64Array }

/** Seeded f32 values (via tunekit's generator), returned as float64 holding exactly those f32s. */
function param(name: string, shape: number[], seed: number, std = 1, mean = 0): Param {
  const t = randn(shape, { seed, std, mean });
  const value = Float64Array.from(t.toArray());
  t.dispose();
  return { name, shape, value };
}

interface Expr {
  name: string;
  params: Param[];
  /** float64 reference of the scalar loss */
  f64: (p: Arr[]) => number;
  /** tunekit forward of the scalar loss from leaf tensors (same order as params) */
  tk: (p: Tensor[]) => Tensor;
}

function tunekitLossAndGrads(e: Expr): { loss: number; grads: number[][] } {
  return tidy(() => {
    const leaves = e.params.map((p) => {
      const t = tensor(new Float32Array(p.value), p.shape);
      t.requiresGrad = true;
      return t;
    });
    const loss = e.tk(leaves);
    const value = loss.item();
    loss.backward();
    return { loss: value, grads: leaves.map((l) => l.grad!.toArray()) };
  });
}

function tunekitLossAt(e: Expr, values: Float64Array[]): number {
  return tidy(() => noGrad(() => e.tk(values.map((v, i) => tensor(new Float32Array(v), e.params[i]!.shape))).item()));
}

function checkExpr(e: Expr, fd32Samples = 6): void {
  const { loss, grads } = tunekitLossAndGrads(e);
  const vals = e.params.map((p) => p.value);
  const ref = e.f64(vals);
  expectClose([loss], [ref], { rtol: 1e-5, atol: 1e-6 }, `${e.name}: loss`);
  e.params.forEach((p, k) => {
    // 2. every coordinate against float64 central differences of the JS forward
    const fd = new Float64Array(p.value.length);
    for (let i = 0; i < p.value.length; i++) {
      const x0 = p.value[i]!;
      p.value[i] = x0 + FD64_STEP;
      const up = e.f64(vals);
      p.value[i] = x0 - FD64_STEP;
      const down = e.f64(vals);
      p.value[i] = x0;
      fd[i] = (up - down) / (2 * FD64_STEP);
    }
    const scale = Math.max(...Array.from(fd, Math.abs));
    expect(scale, `${e.name}: d/d${p.name} is not identically 0`).toBeGreaterThan(0);
    expectClose(grads[k]!, fd, FD64_TOL, `${e.name}: d/d${p.name} vs float64 FD`);
    // 3. a few coordinates against f32 central differences of tunekit's own forward
    const got: number[] = [], want: number[] = [];
    for (let s = 0; s < Math.min(fd32Samples, p.value.length); s++) {
      const i = Math.floor(((s + 0.5) / fd32Samples) * p.value.length);
      const x0 = p.value[i]!;
      p.value[i] = x0 + FD32_STEP;
      const up = tunekitLossAt(e, vals);
      p.value[i] = x0 - FD32_STEP;
      const down = tunekitLossAt(e, vals);
      p.value[i] = x0;
      got.push(grads[k]![i]!);
      want.push((up - down) / (2 * FD32_STEP));
    }
    expectClose(got, want, FD32_TOL, `${e.name}: d/d${p.name} vs f32 FD of tunekit`);
  });
}

// ---------------------------------------------------------------- float64 building blocks

/** x [M, K] (W [N, K] or, wInOut, [K, N]) + b [N] -> [M, N] */
function linear64(x: Arr, M: number, K: number, w: Arr, N: number, b: Arr | null, wInOut = false): Arr {
  const y = new Float64Array(M * N);
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      let s = b ? b[n]! : 0;
      for (let k = 0; k < K; k++) s += x[m * K + k]! * (wInOut ? w[k * N + n]! : w[n * K + k]!);
      y[m * N + n] = s;
    }
  }
  return y;
}

const geluTanh = (x: number) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));

function layerNorm64(x: Arr, rows: number, C: number, w: Arr, b: Arr, eps: number): Arr {
  const y = new Float64Array(rows * C);
  for (let r = 0; r < rows; r++) {
    let mu = 0;
    for (let c = 0; c < C; c++) mu += x[r * C + c]!;
    mu /= C;
    let v = 0;
    for (let c = 0; c < C; c++) v += (x[r * C + c]! - mu) ** 2;
    v /= C;
    const rstd = 1 / Math.sqrt(v + eps);
    for (let c = 0; c < C; c++) y[r * C + c] = (x[r * C + c]! - mu) * rstd * w[c]! + b[c]!;
  }
  return y;
}

function crossEntropy64(logits: Arr, N: number, C: number, labels: number[]): number {
  let total = 0, count = 0;
  for (let r = 0; r < N; r++) {
    if (labels[r] === -100) continue;
    let m = -Infinity;
    for (let c = 0; c < C; c++) m = Math.max(m, logits[r * C + c]!);
    let s = 0;
    for (let c = 0; c < C; c++) s += Math.exp(logits[r * C + c]! - m);
    total += m + Math.log(s) - logits[r * C + labels[r]!]!;
    count++;
  }
  return count ? total / count : 0;
}

const lossWeightsOf = (n: number, k: number): Float64Array => Float64Array.from({ length: n }, (_, i) => (((37 * i + 11 * k) % 41) - 20.5) / 16);

// ---------------------------------------------------------------- the expressions

/** 2-layer MLP: linear -> gelu(tanh) -> layerNorm -> linear -> cross-entropy (one ignored row). */
function mlpExpr(): Expr {
  const M = 5, In = 7, H = 9, Cls = 4;
  const labels = [2, 0, -100, 3, 1];
  return {
    name: 'MLP gelu + layerNorm + crossEntropy',
    params: [
      param('x', [M, In], 1), param('W1', [H, In], 2, 0.5), param('b1', [H], 3, 0.1),
      param('lnW', [H], 4, 0.2, 1), param('lnB', [H], 5, 0.2),
      param('W2', [Cls, H], 6, 0.5), param('b2', [Cls], 7, 0.1),
    ],
    f64: ([x, W1, b1, lnW, lnB, W2, b2]) => {
      const h = linear64(x!, M, In, W1!, H, b1!).map(geluTanh);
      const n = layerNorm64(h, M, H, lnW!, lnB!, 1e-5);
      return crossEntropy64(linear64(n, M, H, W2!, Cls, b2!), M, Cls, labels);
    },
    tk: ([x, W1, b1, lnW, lnB, W2, b2]) => {
      const h = F.gelu(F.linear(x!, W1!, b1!), 'tanh');
      const n = F.layerNorm(h, lnW!, lnB!, 1e-5);
      return F.crossEntropy(F.linear(n, W2!, b2!), tensor(new Int32Array(labels), [M], 'i32'));
    },
  };
}

/**
 * Self-attention block with rope: q/k/v projections ([in, out] Conv1D layout for v), heads split
 * by reshape + permute, rope on q and k (left-padded positions), grouped-query causal attention
 * (Hq = 2, Hkv = 1) with a key mask, heads merged back, loss = sum(out * w).
 */
function attentionExpr(): Expr {
  const B = 2, T = 5, C = 8, Hq = 2, Hkv = 1, D = 4;
  const pos = [0, 1, 2, 3, 4, 0, 0, 1, 2, 3];
  const mask = [1, 1, 1, 1, 1, 0, 1, 1, 1, 1];
  const invFreq = Float32Array.from([1, 0.01]); // rope over all D = 4 dims: D / 2 frequencies
  const w = lossWeightsOf(B * T * Hq * D, 3);
  const rope64 = (x: Arr, H: number): Arr => {
    // x [B, T, H, D] (projection layout); angle = f32(pos * invFreq) as transformers and tunekit compute it
    const y = new Float64Array(x.length);
    const half = D / 2;
    for (let b = 0; b < B; b++) for (let t = 0; t < T; t++) for (let h = 0; h < H; h++) {
      const o = ((b * T + t) * H + h) * D;
      for (let i = 0; i < half; i++) {
        const ang = Math.fround(pos[b * T + t]! * invFreq[i]!);
        const c = Math.cos(ang), s = Math.sin(ang);
        y[o + i] = x[o + i]! * c - x[o + i + half]! * s;
        y[o + i + half] = x[o + i + half]! * c + x[o + i]! * s;
      }
    }
    return y;
  };
  return {
    name: 'attention + rope (GQA, causal, key mask)',
    params: [param('x', [B, T, C], 11), param('Wq', [Hq * D, C], 12, 0.4), param('Wk', [Hkv * D, C], 13, 0.4), param('Wv', [C, Hkv * D], 14, 0.4)],
    f64: ([x, Wq, Wk, Wv]) => {
      const q = rope64(linear64(x!, B * T, C, Wq!, Hq * D, null), Hq);
      const k = rope64(linear64(x!, B * T, C, Wk!, Hkv * D, null), Hkv);
      const v = linear64(x!, B * T, C, Wv!, Hkv * D, null, true);
      let loss = 0;
      const scale = 1 / Math.sqrt(D);
      for (let b = 0; b < B; b++) for (let h = 0; h < Hq; h++) for (let i = 0; i < T; i++) {
        const hk = Math.floor(h / (Hq / Hkv));
        const sc: number[] = [];
        for (let j = 0; j <= i; j++) {
          if (!mask[b * T + j]) continue;
          let s = 0;
          for (let d = 0; d < D; d++) s += q[((b * T + i) * Hq + h) * D + d]! * k[((b * T + j) * Hkv + hk) * D + d]!;
          sc.push(s * scale);
        }
        if (sc.length === 0) continue; // fully masked query: output 0
        const m = Math.max(...sc);
        const e = sc.map((s) => Math.exp(s - m));
        const z = e.reduce((a, c) => a + c, 0);
        for (let d = 0; d < D; d++) {
          let o = 0, n = 0;
          for (let j = 0; j <= i; j++) {
            if (!mask[b * T + j]) continue;
            o += (e[n++]! / z) * v[((b * T + j) * Hkv + hk) * D + d]!;
          }
          loss += o * w[((b * T + i) * Hq + h) * D + d]!; // out merged as [B, T, Hq * D]
        }
      }
      return loss;
    },
    tk: ([x, Wq, Wk, Wv]) => {
      const pt = tensor(new Int32Array(pos), [B, T], 'i32'), mt = tensor(new Int32Array(mask), [B, T], 'i32');
      const inv = tensor(invFreq, [D / 2], 'f32');
      const heads = (y: Tensor, H: number) => F.permute(F.reshape(y, [B, T, H, D]), [0, 2, 1, 3]);
      const q = F.rope(heads(F.linear(x!, Wq!, null), Hq), pt, inv);
      const k = F.rope(heads(F.linear(x!, Wk!, null), Hkv), pt, inv);
      const v = heads(F.linear(x!, Wv!, null, true), Hkv);
      const a = F.attention(q, k, v, { causal: true, keyMask: mt });
      const merged = F.reshape(F.transpose(a, 1, 2), [B, T, Hq * D]);
      return F.sum(F.mul(merged, tensor(Float32Array.from(w), [B, T, Hq * D])));
    },
  };
}

/**
 * A broadcast chain: a [7,1,5], b [3,1], c [5] ->
 *   y = exp(tanh(a * b) - c) / (1 + b^2)             [7,3,5]
 *   m = maximum(y, sigmoid(c)) - sqrt(a^2 + 1)        [7,3,5]
 *   loss = sum(mean(m, 1) * w[5]) + 0.5 sum(logSigmoid(c)) + sum(slice(concat([a, 2a], 1), 1, 1, 2))
 */
function broadcastExpr(): Expr {
  const A0 = 7, B0 = 3, C0 = 5;
  const w = lossWeightsOf(C0, 5);
  const sig = (x: number) => 1 / (1 + Math.exp(-x));
  return {
    name: 'broadcast chain',
    params: [param('a', [A0, 1, C0], 21), param('b', [B0, 1], 22), param('c', [C0], 23)],
    f64: ([a, b, c]) => {
      let loss = 0;
      for (let i = 0; i < A0; i++) for (let k = 0; k < C0; k++) {
        let s = 0;
        for (let j = 0; j < B0; j++) {
          const y = Math.exp(Math.tanh(a![i * C0 + k]! * b![j]!) - c![k]!) / (1 + b![j]! ** 2);
          s += Math.max(y, sig(c![k]!)) - Math.sqrt(a![i * C0 + k]! ** 2 + 1);
        }
        loss += (s / B0) * w[k]!;
      }
      for (let k = 0; k < C0; k++) loss += 0.5 * Math.log(sig(c![k]!));
      for (let i = 0; i < A0; i++) for (let k = 0; k < C0; k++) loss += 2 * a![i * C0 + k]!; // the 2a half of the concat
      return loss;
    },
    tk: ([a, b, c]) => {
      const y = F.div(F.exp(F.sub(F.tanh(F.mul(a!, b!)), c!)), F.addScalar(F.square(b!), 1));
      const m = F.sub(F.maximum(y, F.sigmoid(c!)), F.sqrt(F.addScalar(F.square(a!), 1)));
      const main = F.sum(F.mul(F.mean(m, 1), tensor(Float32Array.from(w), [C0])));
      const extra = F.scale(F.sum(F.logSigmoid(c!)), 0.5);
      const cat = F.slice(F.concat([a!, F.scale(a!, 2)], 1), 1, 1, 2);
      return F.add(F.add(main, extra), F.sum(cat));
    },
  };
}

/** Linear with LoRA on the [in, out] layout through rmsNorm and silu, loss = mean(softmax(.) * w). */
function loraExpr(): Expr {
  const M = 3, In = 6, Out = 5, r = 2;
  const w = lossWeightsOf(M * Out, 9);
  return {
    name: 'rmsNorm -> loraLinear -> silu -> softmax',
    params: [param('x', [M, In], 31), param('g', [In], 32, 0.2, 1), param('A', [r, In], 33, 0.5), param('B', [Out, r], 34, 0.5)],
    f64: ([x, g, A, Bm]) => {
      const n = new Float64Array(M * In);
      for (let m = 0; m < M; m++) {
        let ms = 0;
        for (let i = 0; i < In; i++) ms += x![m * In + i]! ** 2;
        const rstd = 1 / Math.sqrt(ms / In + 1e-6);
        for (let i = 0; i < In; i++) n[m * In + i] = x![m * In + i]! * rstd * g![i]!;
      }
      const W = Float64Array.from({ length: In * Out }, (_, i) => Math.fround(Math.sin(i) * 0.3)); // frozen [in, out]
      const base = linear64(n, M, In, W, Out, null, true);
      const xa = linear64(n, M, In, A!, r, null);
      const up = linear64(xa, M, r, Bm!, Out, null);
      let loss = 0;
      for (let m = 0; m < M; m++) {
        const row = Array.from({ length: Out }, (_, o) => { const z = base[m * Out + o]! + 1.5 * up[m * Out + o]!; return z / (1 + Math.exp(-z)); });
        const mx = Math.max(...row);
        const e = row.map((z) => Math.exp(z - mx));
        const s = e.reduce((a2, b2) => a2 + b2, 0);
        e.forEach((v, o) => (loss += (v / s) * w[m * Out + o]!));
      }
      return loss / (M * Out);
    },
    tk: ([x, g, A, Bm]) => {
      const W = tensor(Float32Array.from({ length: In * Out }, (_, i) => Math.sin(i) * 0.3), [In, Out]);
      const y = F.loraLinear(F.rmsNorm(x!, g!, 1e-6), W, null, A!, Bm!, { scale: 1.5, wInOut: true });
      return F.mean(F.mul(F.softmax(F.silu(y)), tensor(Float32Array.from(w), [M, Out])));
    },
  };
}

describe('gradients vs finite differences', () => {
  afterAll(() => printReports('finite differences: error per gradient'));
  it('2-layer MLP with gelu, layerNorm and cross-entropy', () => checkExpr(mlpExpr()));
  it('attention + rope (GQA, causal, key mask, left-padded positions)', () => checkExpr(attentionExpr()));
  it('broadcast chain (exp, tanh, div, maximum, sqrt, mean, logSigmoid, concat, slice)', () => checkExpr(broadcastExpr()));
  it('rmsNorm -> loraLinear ([in, out], frozen W) -> silu -> softmax -> mean', () => checkExpr(loraExpr()));
});

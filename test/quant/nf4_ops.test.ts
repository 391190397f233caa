/**
 * The NF4 ops: the fused dequant-GEMM forward and input gradient against dequantize-then-dense
 * (float64 reference), finite differences of the input gradient, the fused QLoRA op against its
 * composition, and the rule that an NF4 weight never gets a gradient.
 */
import { describe, it, expect } from 'vitest';
import '../../lib/index.js';
import { randn, rand } from '../../lib/tensor/creation.js';
import type { Tensor } from '../../lib/tensor/tensor.js';
import { backward } from '../../lib/autograd/tape.js';
import * as F from '../../lib/autograd/ops.js';
import { Linear } from '../../lib/nn/layers.js';
import { NF4Tensor } from '../../lib/tensor/nf4.js';
import { NF4Linear } from '../../lib/quant/nf4_linear.js';
import { nf4Linear, loraNf4Linear } from '../../lib/autograd/nf4_ops.js';
import { FD32_TOL, FD32_STEP } from '../tolerances.js';

const arr = (t: Tensor) => Float64Array.from(t.contiguousRaw().data() as Float32Array);

/** y [M, N] = x [M, K] W^T + b in float64. */
function denseRef(x: Float64Array, w: Float64Array, b: Float64Array | null, M: number, N: number, K: number): Float64Array {
  const y = new Float64Array(M * N);
  for (let m = 0; m < M; m++) for (let n = 0; n < N; n++) {
    let s = b ? b[n]! : 0;
    for (let k = 0; k < K; k++) s += x[m * K + k]! * w[n * K + k]!;
    y[m * N + n] = s;
  }
  return y;
}

function maxRelErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let e = 0, s = 0;
  for (let i = 0; i < a.length; i++) { e = Math.max(e, Math.abs(a[i]! - b[i]!)); s = Math.max(s, Math.abs(b[i]!)); }
  return e / (s || 1);
}

describe('nf4Linear', () => {
  // M covers the GEMV path (<= 4 rows) and the GEMM path; K, N awkward; blocksizes 64 and 128
  for (const [M, N, K, bs] of [[3, 37, 96, 64], [2 * 9, 70, 130, 64], [33, 24, 256, 128]] as const) {
    it(`forward and dX match dequantize-then-dense (M ${M}, N ${N}, K ${K}, blocksize ${bs})`, () => {
      const w = randn([N, K], { seed: 11, std: 0.05 });
      const q = NF4Tensor.quantize(w, { blocksize: bs });
      const wd = arr(q.dequantize());
      const bias = randn([N], { seed: 12 });
      const x = randn([M, K], { seed: 13 });
      x.requiresGrad = true;
      const y = nf4Linear(x, q, bias);
      expect(maxRelErr(arr(y), denseRef(arr(x), wd, arr(bias), M, N, K))).toBeLessThan(2e-6);
      const g = randn([M, N], { seed: 14 });
      backward(y, g);
      // dX = g dequant(W) = g [M,N] W [N,K]: the dense reference with W^T
      const wt = new Float64Array(K * N);
      for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) wt[k * N + n] = wd[n * K + k]!;
      expect(maxRelErr(arr(x.grad!), denseRef(arr(g), wt, null, M, K, N))).toBeLessThan(2e-6);
      q.dispose();
    });
  }

  it('dX matches finite differences of sum(c * y)', () => {
    const [M, N, K] = [4, 20, 64];
    const q = NF4Tensor.quantize(randn([N, K], { seed: 21, std: 0.1 }));
    const x = randn([M, K], { seed: 22 });
    x.requiresGrad = true;
    const c = randn([M, N], { seed: 23 });
    backward(F.sum(F.mul(nf4Linear(x, q, null), c)));
    const gx = arr(x.grad!);
    const xs = arr(x);
    const loss = (xv: Float64Array) => {
      const t = randn([M, K], { seed: 1 });
      (t.data() as Float32Array).set(Float32Array.from(xv));
      const v = F.sum(F.mul(nf4Linear(t, q, null), c)).item();
      return v;
    };
    for (const i of [0, 5, 63, 64, 130, 255]) {
      const p = Float64Array.from(xs), m = Float64Array.from(xs);
      p[i]! += FD32_STEP; m[i]! -= FD32_STEP;
      const fd = (loss(p) - loss(m)) / (2 * FD32_STEP);
      expect(Math.abs(fd - gx[i]!)).toBeLessThan(FD32_TOL.atol + FD32_TOL.rtol * Math.abs(gx[i]!));
    }
    q.dispose();
  });

  it('NF4Linear: the weight never gets a gradient, the input does; GPT-2 Conv1D layout is transposed first', () => {
    const lin = new Linear(48, 80, { layout: 'in_out', seed: 5 });
    const dense = arr(lin.weight); // [in, out]
    const q = NF4Linear.fromLinear(lin);
    expect(q.qweight.shape).toEqual([80, 48]);
    expect(q.sourceLayout).toBe('in_out');
    expect(q.namedParameters().filter(([, p]) => p.requiresGrad)).toEqual([]);
    const x = randn([2, 3, 48], { seed: 6 });
    x.requiresGrad = true;
    const y = q.forward(x);
    expect(y.shape).toEqual([2, 3, 80]);
    backward(F.sum(y));
    expect(x.grad).not.toBeNull();
    expect(q.weight.grad ?? null).toBeNull();
    expect(q.qweight.packed.requiresGrad).toBe(false);
    // dequantize('source') gives back the [in, out] layout close to the dense weight
    const back = arr(q.dequantize('source'));
    let se = 0, sr = 0;
    for (let i = 0; i < dense.length; i++) { se += (dense[i]! - back[i]!) ** 2; sr += dense[i]! ** 2; }
    expect(Math.sqrt(se / sr)).toBeLessThan(0.12);
    const lin2 = q.toLinear();
    expect(lin2.layout).toBe('in_out');
    expect(Array.from(arr(lin2.weight))).toEqual(Array.from(back));
  });
});

describe('loraNf4Linear (QLoRA layer)', () => {
  for (const dropout of [0, 0.3]) {
    it(`matches nf4Linear + the composed adapter path, forward and gradients (dropout ${dropout})`, () => {
      const [M, N, K, r, s] = [6, 40, 64, 4, 2.5];
      const q = NF4Tensor.quantize(randn([N, K], { seed: 31, std: 0.05 }));
      const bias = randn([N], { seed: 32 });
      const mk = () => {
        const x = randn([2, 3, K], { seed: 33 }), A = rand([r, K], { seed: 34, low: -0.2, high: 0.2 }), B = rand([N, r], { seed: 35, low: -0.2, high: 0.2 });
        x.requiresGrad = A.requiresGrad = B.requiresGrad = true;
        return { x, A, B };
      };
      const g = randn([2, 3, N], { seed: 36 });
      const a = mk();
      const y1 = loraNf4Linear(a.x, q, bias, a.A, a.B, { scale: s, dropout, seed: 77 });
      backward(y1, g);
      const b = mk();
      const xd = dropout > 0 ? F.dropout(b.x, dropout, 77, true) : b.x;
      const y2 = F.add(nf4Linear(b.x, q, bias), F.mul(F.matmul(F.matmul(xd, b.A, { transB: true }), b.B, { transB: true }), s));
      backward(y2, g);
      expect(maxRelErr(arr(y1), arr(y2))).toBeLessThan(1e-5);
      expect(maxRelErr(arr(a.x.grad!), arr(b.x.grad!))).toBeLessThan(1e-5);
      expect(maxRelErr(arr(a.A.grad!), arr(b.A.grad!))).toBeLessThan(1e-5);
      expect(maxRelErr(arr(a.B.grad!), arr(b.B.grad!))).toBeLessThan(1e-5);
      q.dispose();
      void M;
    });
  }
});

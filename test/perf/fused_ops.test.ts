// Fused ops added for speed must match the unfused compositions they replace.
import { describe, it, expect } from 'vitest';
import { ops as F, backward, randn, tensor, tidy, type Tensor } from '../../lib/index.js';
import { splitHeads, mergeHeads } from '../../lib/models/common.js';

function grads(fn: (x: Tensor) => Tensor, x0: Tensor, w: Tensor): { y: Float32Array; g: Float32Array } {
  return tidy(() => {
    const x = x0.contiguousRaw();
    x.requiresGrad = true;
    const y = fn(x);
    backward(F.sum(F.mul(y, w)));
    const r = { y: y.toTypedArray() as Float32Array, g: x.grad!.toTypedArray() as Float32Array };
    x.grad!.dispose();
    x.grad = null;
    return r;
  });
}

describe('qkvAttention', () => {
  for (const masked of [false, true]) {
    it(`matches slice + splitHeads + attention + mergeHeads${masked ? ' (key mask)' : ''}`, () => {
      const B = 2, T = 7, H = 3, D = 4, C = H * D;
      const qkv = randn([B, T, 3 * C], { seed: 5 });
      const w = randn([B, T, C], { seed: 6 });
      const mask = masked ? tensor(new Int32Array([1, 1, 1, 1, 1, 0, 0, 0, 1, 1, 1, 1, 1, 1]), [B, T]) as Tensor<'i32'> : null;
      const fused = grads((x) => F.qkvAttention(x, H, { causal: true, keyMask: mask }), qkv, w);
      const ref = grads((x) => {
        const q = splitHeads(F.slice(x, 2, 0, C), H), k = splitHeads(F.slice(x, 2, C, 2 * C), H), v = splitHeads(F.slice(x, 2, 2 * C, 3 * C), H);
        return mergeHeads(F.attention(q, F.contiguous(k), F.contiguous(v), { causal: true, keyMask: mask }));
      }, qkv, w);
      expect(fused.y.length).toBe(B * T * C);
      for (let i = 0; i < fused.y.length; i++) expect(fused.y[i]).toBeCloseTo(ref.y[i]!, 6);
      for (let i = 0; i < fused.g.length; i++) expect(fused.g[i]).toBeCloseTo(ref.g[i]!, 6);
    });
  }
});

describe('bf16 compute for frozen weights', () => {
  it('linear and its input gradient run through bf16 only when asked, close to f32', async () => {
    const K = await import('../../lib/tensor/kernels.js');
    const x0 = randn([16, 64], { seed: 1 });
    const w = randn([64, 32], { seed: 2, std: 0.1 }); // frozen: requiresGrad false
    const gw = randn([16, 32], { seed: 3 });
    const run = () => grads((x) => F.linear(x, w, null, true), x0, gw);
    const f32 = run();
    K.setComputeDtype('bf16');
    let b16: { y: Float32Array; g: Float32Array };
    try {
      b16 = run();
    } finally {
      K.setComputeDtype('f32');
    }
    const again = run();
    let maxDiff = 0, maxAbs = 0;
    for (let i = 0; i < f32.y.length; i++) {
      maxDiff = Math.max(maxDiff, Math.abs(f32.y[i]! - b16.y[i]!));
      maxAbs = Math.max(maxAbs, Math.abs(f32.y[i]!));
      expect(again.y[i]).toBe(f32.y[i]); // back to exact f32
    }
    expect(maxDiff).toBeGreaterThan(0); // bf16 really was used
    expect(maxDiff).toBeLessThan(0.02 * maxAbs);
    for (let i = 0; i < f32.g.length; i++) expect(Math.abs(f32.g[i]! - b16.g[i]!)).toBeLessThan(0.05);
  });
});

describe('loraLinear in bf16 compute mode', () => {
  it('composes base (bf16) + adapter (f32) close to the fused f32 kernel, gradients for A and B included', async () => {
    const K = await import('../../lib/tensor/kernels.js');
    const x = randn([2, 5, 32], { seed: 1 });
    const w = randn([32, 48], { seed: 2, std: 0.1 }); // Conv1D layout [in, out], frozen
    const bias = randn([48], { seed: 3 });
    const gy = randn([2, 5, 48], { seed: 6 });
    const run = () => tidy(() => {
      const a = randn([4, 32], { seed: 4, std: 0.1 }), b = randn([48, 4], { seed: 5, std: 0.1 });
      a.requiresGrad = true; b.requiresGrad = true;
      const y = F.loraLinear(x, w, bias, a, b, { scale: 2, wInOut: true });
      backward(F.sum(F.mul(y, gy)));
      return [y, a.grad!, b.grad!].map((t) => t.toTypedArray() as Float32Array);
    });
    const ref = run();
    K.setComputeDtype('bf16');
    let got: Float32Array[];
    try { got = run(); } finally { K.setComputeDtype('f32'); }
    ref.forEach((r, k) => {
      const m = Math.max(...r.map(Math.abs));
      for (let i = 0; i < r.length; i++) expect(Math.abs(r[i]! - got[k]![i]!)).toBeLessThan(0.02 * m);
    });
  });
});

describe('loraLinear fused with a bf16 base weight (CPU)', () => {
  // y = round(x) W_bf16 + bias + s (dropout(x) A^T) B^T in one kernel, the adapter added in the
  // bf16 GEMM's epilogue: the same numbers as the layer composed of ops (bf16 linear for the
  // base, the adapter's products in f32 from the f32 compute mode, the same dropout mask), up to
  // f32 summation order
  for (const [p, wInOut] of [[0, true], [0.1, true], [0.2, false]] as const) {
    it(`equals the composed layer, output and every gradient (p ${p}, ${wInOut ? 'Conv1D' : 'nn.Linear'} layout)`, async () => {
      const K = await import('../../lib/tensor/kernels.js');
      const x0 = randn([3, 7, 64], { seed: 11 });
      const w = wInOut ? randn([64, 96], { seed: 12, std: 0.1 }) : randn([96, 64], { seed: 12, std: 0.1 });
      const bias = randn([96], { seed: 13 });
      const gy = randn([3, 7, 96], { seed: 14 });
      const run = (fused: boolean) => tidy(() => {
        const x = x0.contiguousRaw();
        const a = randn([8, 64], { seed: 15, std: 0.1 }), b = randn([96, 8], { seed: 16, std: 0.1 });
        x.requiresGrad = true; a.requiresGrad = true; b.requiresGrad = true;
        let y: Tensor;
        if (fused) {
          y = F.loraLinear(x, w, bias, a, b, { scale: 2, dropout: p, seed: 5, wInOut });
        } else {
          const base = F.linear(x, w, bias, wInOut); // bf16: a frozen weight
          K.setComputeDtype('f32'); // the adapter's products (trained weights) in f32, forward and backward
          y = F.add(base, F.scale(F.linear(F.linear(p > 0 ? F.dropout(x, p, 5) : x, a, null), b, null), 2));
          K.setComputeDtype('bf16');
        }
        backward(F.sum(F.mul(y, gy)));
        return [y, x.grad!, a.grad!, b.grad!].map((t) => t.toTypedArray() as Float32Array);
      });
      const f32 = run(true);
      K.setComputeDtype('bf16');
      let fused: Float32Array[], composed: Float32Array[];
      try { fused = run(true); composed = run(false); } finally { K.setComputeDtype('f32'); }
      ['y', 'dx', 'dA', 'dB'].forEach((name, k) => {
        const ref = composed[k]!, got = fused[k]!;
        const m = Math.max(...ref.map(Math.abs));
        let worst = 0;
        for (let i = 0; i < ref.length; i++) worst = Math.max(worst, Math.abs(ref[i]! - got[i]!));
        expect(worst, name).toBeLessThan(2e-6 * m);
      });
      // bf16 really ran: the output moved from the f32 layer's by more than summation order
      let moved = 0;
      for (let i = 0; i < f32[0]!.length; i++) moved = Math.max(moved, Math.abs(f32[0]![i]! - fused[0]![i]!));
      expect(moved).toBeGreaterThan(1e-4);
    });
  }

  it('the kernel refuses a base weight dtype other than f32 and bf16 by name', async () => {
    const K = await import('../../lib/tensor/kernels.js');
    const { Tensor } = await import('../../lib/tensor/tensor.js');
    const M = 2, inF = 3, outF = 4, r = 1;
    const t = (n: number, dtype: 'f32' | 'u8' = 'f32') => Tensor.empty([n], dtype, true, 'cpu');
    const args = { x: t(M * inF), w: t(outF * inF), bias: null, a: t(r * inF), b: t(outF * r), y: t(M * outF), xa: t(M * r), mask: null,
      M, inF, outF, r, scale: 1, wInOut: false, p: 0, seed: 0 };
    expect(() => K.run('loraLinearForward', { ...args, wDtype: 'f16' as 'bf16' })).toThrow(/ERR_DTYPE|wDtype must be f32 or bf16, got f16/);
    expect(() => K.run('loraLinearForward', { ...args, wDtype: 'bf16' })).not.toThrow();
  });

  it('an input that needs no gradient gets none, and A, B keep their gradient bits (f32 and bf16)', async () => {
    const K = await import('../../lib/tensor/kernels.js');
    const x0 = randn([2, 9, 32], { seed: 21 });
    const w = randn([32, 40], { seed: 22, std: 0.1 });
    const gy = randn([2, 9, 40], { seed: 23 });
    const run = (xGrad: boolean) => tidy(() => {
      const x = x0.contiguousRaw();
      x.requiresGrad = xGrad;
      const a = randn([4, 32], { seed: 24, std: 0.1 }), b = randn([40, 4], { seed: 25, std: 0.1 });
      a.requiresGrad = true; b.requiresGrad = true;
      backward(F.sum(F.mul(F.loraLinear(x, w, null, a, b, { scale: 2, dropout: 0.1, seed: 3, wInOut: true }), gy)));
      return { xGrad: x.grad !== null, g: [a.grad!, b.grad!].map((t) => Array.from(t.toTypedArray() as Float32Array)) };
    });
    for (const dt of ['f32', 'bf16'] as const) {
      K.setComputeDtype(dt);
      try {
        const withX = run(true), withoutX = run(false);
        expect(withX.xGrad).toBe(true);
        expect(withoutX.xGrad).toBe(false);
        expect(withoutX.g).toEqual(withX.g);
      } finally { K.setComputeDtype('f32'); }
    }
  });
});

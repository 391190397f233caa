import { describe, it, expect } from 'vitest';
import { tensor, zeros, ones, full, arange, randn, rand, tidy, keep, Tensor, TunekitError, ops } from '../../lib/index.js';
import { native } from '../../lib/native.js';

describe('Tensor basics', () => {
  it('creates tensors from nested arrays and typed arrays with the right dtype and shape', () => {
    const x = tensor([[1, 2, 3], [4, 5, 6]]);
    expect(x.dtype).toBe('f32');
    expect(x.shape).toEqual([2, 3]);
    expect(Array.from(x.data())).toEqual([1, 2, 3, 4, 5, 6]);
    const ids = tensor(new Int32Array([5, 7, 9]));
    expect(ids.dtype).toBe('i32');
    expect(ids.toArray()).toEqual([5, 7, 9]);
    const b = tensor([1.5, -2.25, 3.0e38], [3], 'bf16');
    expect(b.toArray()).toEqual([1.5, -2.25, 3.00405527047391e38]);
    const h = tensor([0.5, -65504, 1e-7], [3], 'f16');
    expect(h.toArray()[0]).toBe(0.5);
    expect(h.toArray()[1]).toBe(-65504);
    expect(h.toArray()[2]).toBeCloseTo(1.1920928955078125e-7, 12);
  });

  it('fills, ranges and seeded random values (same seed, same values)', () => {
    expect(zeros([2, 2]).toArray()).toEqual([0, 0, 0, 0]);
    expect(ones([3], 'i32').toArray()).toEqual([1, 1, 1]);
    expect(full([2], 7.5).toArray()).toEqual([7.5, 7.5]);
    expect(arange(0, 5).toArray()).toEqual([0, 1, 2, 3, 4]);
    expect(arange(1, 2, 0.25).toArray()).toEqual([1, 1.25, 1.5, 1.75]);
    const a = randn([1001], { seed: 3 }).toArray();
    const b = randn([1001], { seed: 3 }).toArray();
    expect(a).toEqual(b);
    const m = a.reduce((s, v) => s + v, 0) / a.length;
    const v = a.reduce((s, x) => s + (x - m) ** 2, 0) / a.length;
    expect(Math.abs(m)).toBeLessThan(0.1);
    expect(Math.abs(v - 1)).toBeLessThan(0.15);
    const u = rand([1000], { seed: 1, low: -2, high: 2 }).toArray();
    expect(Math.min(...u)).toBeGreaterThanOrEqual(-2);
    expect(Math.max(...u)).toBeLessThan(2);
  });

  it('data() is a zero-copy view of contiguous tensors', () => {
    const x = zeros([4]);
    x.data()[2] = 9;
    expect(x.toArray()).toEqual([0, 0, 9, 0]);
  });

  it('views: reshape, transpose, slice and contiguous copies', () => {
    const x = arange(0, 24).reshape([2, 3, 4]);
    expect(x.transpose(0, 2).shape).toEqual([4, 3, 2]);
    const t = x.transpose(1, 2);
    expect(t.isContiguous).toBe(false);
    expect(t.toNested()).toEqual([
      [[0, 4, 8], [1, 5, 9], [2, 6, 10], [3, 7, 11]],
      [[12, 16, 20], [13, 17, 21], [14, 18, 22], [15, 19, 23]],
    ]);
    const s = x.slice(2, 1, 3);
    expect(s.shape).toEqual([2, 3, 2]);
    expect(s.toArray()).toEqual([1, 2, 5, 6, 9, 10, 13, 14, 17, 18, 21, 22]);
    expect(x.reshape([-1, 4]).shape).toEqual([6, 4]);
    expect(() => x.reshape([5, 5])).toThrow(/cannot view \[2,3,4\]/);
    expect(() => x.slice(1, 2, 9).shape).not.toThrow();
    expect(() => x.slice(1, 4, 5)).toThrow(TunekitError);
  });

  it('casts between dtypes', () => {
    const x = tensor([1.7, -2.2, 3]);
    expect(x.to('i32').toArray()).toEqual([1, -2, 3]);
    expect(x.to('bf16').to('f32').toArray()[0]).toBeCloseTo(1.703125, 6);
  });

  it('toString is readable', () => {
    expect(tensor([1, 2.5]).toString()).toBe('Tensor(f32, [2]) [1, 2.500]');
    expect(arange(0, 100).toString()).toContain('..., 97, 98, 99');
  });

  it('dispose frees memory, and use after dispose is an ERR_DISPOSED error', () => {
    const before = native.memoryStats().liveBytes;
    const x = zeros([1024]);
    expect(native.memoryStats().liveBytes - before).toBe(4096);
    const v = x.reshape([32, 32]);
    x.dispose();
    expect(native.memoryStats().liveBytes - before).toBe(4096); // the view still holds the storage
    v.dispose();
    expect(native.memoryStats().liveBytes - before).toBe(0);
    expect(() => x.toArray()).toThrow(expect.objectContaining({ code: 'ERR_DISPOSED' }));
  });

  it('tidy disposes intermediates and keeps returned and kept tensors', () => {
    const before = native.memoryStats().liveBytes;
    let kept!: Tensor;
    const y = tidy(() => {
      const a = ones([256]);
      const b = a.reshape([16, 16]).transpose().contiguous();
      kept = keep(zeros([8]));
      return b.reshape([256]);
    });
    expect(y.isDisposed).toBe(false);
    expect(kept.isDisposed).toBe(false);
    y.dispose();
    kept.dispose();
    expect(native.memoryStats().liveBytes - before).toBe(0);
  });

  it('bad input gives clear errors', () => {
    expect(() => tensor([1, 2, 3], [2, 2])).toThrow(/shape \[2,2\] holds 4 elements but the data has 3/);
    expect(() => zeros([2, -1])).toThrow(/non-negative integers/);
    expect(() => randn([2], { seed: -1 })).toThrow(/seed/);
    expect(() => ops.matmul(zeros([2, 3]), zeros([4, 5]))).toThrow(expect.objectContaining({ code: 'ERR_SHAPE' }));
    expect(() => ops.matmul(zeros([2, 3]), zeros([3, 5], 'i32'))).toThrow(expect.objectContaining({ code: 'ERR_DTYPE' }));
  });
});

describe('matmul', () => {
  const ref = (a: number[], b: number[], M: number, K: number, N: number) => {
    const c = new Array(M * N).fill(0);
    for (let i = 0; i < M; i++) for (let j = 0; j < N; j++) for (let k = 0; k < K; k++) c[i * N + j] += a[i * K + k]! * b[k * N + j]!;
    return c;
  };
  it.each([[1, 1, 1], [7, 33, 5], [33, 7, 129], [65, 129, 17]])('2-D %i x %i x %i matches the reference', (M, K, N) => {
    const a = randn([M, K], { seed: 1 }), b = randn([K, N], { seed: 2 });
    const c = a.matmul(b).toArray();
    const r = ref(a.toArray(), b.toArray(), M, K, N);
    c.forEach((v, i) => expect(v).toBeCloseTo(r[i]!, 3));
  });
  it('batched and with a shared right operand', () => {
    const a = randn([2, 3, 4, 5], { seed: 1 }), b = randn([5, 6], { seed: 2 });
    const c = a.matmul(b);
    expect(c.shape).toEqual([2, 3, 4, 6]);
    const r = ref(a.toArray(), b.toArray(), 24, 5, 6);
    c.toArray().forEach((v, i) => expect(v).toBeCloseTo(r[i]!, 3));
    const bb = randn([2, 3, 5, 6], { seed: 4 });
    const cb = a.matmul(bb).toArray();
    const A = a.toArray(), B = bb.toArray();
    for (let k = 0; k < 6; k++) {
      const r2 = ref(A.slice(k * 20, k * 20 + 20), B.slice(k * 30, k * 30 + 30), 4, 5, 6);
      r2.forEach((v, i) => expect(cb[k * 24 + i]).toBeCloseTo(v, 3));
    }
  });
});

/** The autograd tape: accumulation, noGrad, frozen weights, shared subexpressions, memory. */
import { describe, it, expect } from 'vitest';
import { Tensor, tensor, ops as F, backward, noGrad, isGradEnabled, tidy, randn } from '../../lib/index.js';
import { native } from '../../lib/native.js';

const leaf = (shape: number[], seed: number): Tensor<'f32'> => {
  const t = randn(shape, { seed });
  t.requiresGrad = true;
  return t;
};

/** Counts native GEMM calls made while fn runs. */
function countGemms(fn: () => void): number {
  // the CPU backend's GEMM kernel, as the kernel table looks it up on every call
  const n = native.cpu as unknown as { gemm: (...args: unknown[]) => unknown };
  const orig = n.gemm;
  let calls = 0;
  n.gemm = (...args: unknown[]) => { calls++; return orig.apply(native.cpu, args); };
  try {
    fn();
  } finally {
    n.gemm = orig;
  }
  return calls;
}

describe('autograd tape', () => {
  it('accumulates .grad across two backward calls (and a fresh graph each time)', () => {
    tidy(() => {
      const x = leaf([7, 5], 1), w = leaf([5, 3], 2);
      const lossOf = () => F.sum(F.square(F.matmul(x, w)));
      lossOf().backward();
      const g1x = x.grad!.toArray(), g1w = w.grad!.toArray();
      lossOf().backward();
      x.grad!.toArray().forEach((v, i) => expect(v).toBeCloseTo(2 * g1x[i]!, 5));
      w.grad!.toArray().forEach((v, i) => expect(v).toBeCloseTo(2 * g1w[i]!, 5));
    });
  });

  it('backward consumes the graph: a second backward through the same output is refused', () => {
    tidy(() => {
      const x = leaf([3], 1);
      const loss = F.sum(F.exp(x));
      loss.backward();
      expect(loss.gradFn).toBeNull();
      expect(() => loss.backward()).toThrow(expect.objectContaining({ code: 'ERR_VALUE' }));
    });
  });

  it('noGrad records nothing and restores recording afterwards (even after a throw)', () => {
    tidy(() => {
      const x = leaf([4, 3], 1), w = leaf([3, 2], 2);
      const y = noGrad(() => {
        expect(isGradEnabled()).toBe(false);
        return F.relu(F.add(F.matmul(x, w), 1));
      });
      expect(y.gradFn).toBeNull();
      expect(() => F.sum(y).backward()).toThrow(expect.objectContaining({ code: 'ERR_VALUE' }));
      expect(() => noGrad(() => { throw new Error('boom'); })).toThrow('boom');
      expect(isGradEnabled()).toBe(true);
      expect(F.matmul(x, w).gradFn).not.toBeNull();
    });
  });

  it('a frozen weight gets no gradient and no weight-gradient GEMM is run', () => {
    tidy(() => {
      const x = leaf([6, 5], 1), b = leaf([4], 3);
      const wTrain = leaf([4, 5], 2);
      const wFrozen = randn([4, 5], { seed: 2 }); // same values, requiresGrad false
      let yT!: Tensor, yF!: Tensor;
      const gemmsTrainable = countGemms(() => { yT = F.linear(x, wTrain, b); F.sum(F.square(yT)).backward(); });
      const gxTrain = x.grad!.toArray();
      x.grad!.dispose();
      x.grad = null;
      const gemmsFrozen = countGemms(() => { yF = F.linear(x, wFrozen, b); F.sum(F.square(yF)).backward(); });
      expect(wFrozen.grad).toBeNull();
      expect(gemmsTrainable).toBe(3); // forward, dx, dW
      expect(gemmsFrozen).toBe(2); // forward, dx: no dW product
      x.grad!.toArray().forEach((v, i) => expect(v).toBeCloseTo(gxTrain[i]!, 5));
      // with the input frozen too only the bias trains: no GEMM at all in backward
      const xf = randn([6, 5], { seed: 1 });
      const g = countGemms(() => F.sum(F.linear(xf, wFrozen, b)).backward());
      expect(g).toBe(1);
      expect(xf.grad).toBeNull();
      expect(b.grad!.toArray().every((v) => Number.isFinite(v))).toBe(true);
    });
  });

  it('loraLinear never computes a gradient for its base weight', () => {
    tidy(() => {
      const x = leaf([3, 6], 1), W = leaf([5, 6], 2), A = leaf([2, 6], 3), B = leaf([5, 2], 4);
      F.sum(F.loraLinear(x, W, null, A, B, { scale: 2 })).backward();
      expect(W.grad).toBeNull();
      expect(A.grad).not.toBeNull();
      expect(B.grad).not.toBeNull();
      expect(x.grad).not.toBeNull();
    });
  });

  it('a shared subexpression (x used twice, and a diamond) accumulates every path', () => {
    tidy(() => {
      const x = leaf([5], 1);
      // L = sum(x * x + 3x) -> dL/dx = 2x + 3
      F.sum(F.add(F.mul(x, x), F.scale(x, 3))).backward();
      const xv = x.toArray();
      x.grad!.toArray().forEach((g, i) => expect(g).toBeCloseTo(2 * xv[i]! + 3, 5));
      // diamond: h = exp(x); L = sum(h * h) + sum(h) -> dL/dx = (2h + 1) h
      const y = leaf([5], 2);
      const h = F.exp(y);
      F.add(F.sum(F.mul(h, h)), F.sum(h)).backward();
      const hv = y.toArray().map(Math.exp);
      y.grad!.toArray().forEach((g, i) => expect(g).toBeCloseTo((2 * hv[i]! + 1) * hv[i]!, 4));
      // a broadcast operand reused across shapes: L = sum(a[3,1] * b[4] + a) -> dL/da = sum(b) + 4
      const a = leaf([3, 1], 3), b = leaf([4], 4);
      F.sum(F.add(F.mul(a, b), a)).backward();
      const sb = b.toArray().reduce((s, v) => s + v, 0);
      a.grad!.toArray().forEach((g) => expect(g).toBeCloseTo(sb + 4, 5));
    });
  });

  it('gradients flow through views (slice, transpose, reshape) into one leaf', () => {
    tidy(() => {
      const x = leaf([4, 6], 1);
      const l = F.add(F.sum(F.slice(x, 1, 0, 3)), F.sum(F.scale(F.reshape(F.transpose(x), [24]), 2)));
      l.backward();
      const g = x.grad!.toNested() as number[][];
      for (const row of g) expect(row).toEqual([3, 3, 3, 2, 2, 2]);
    });
  });

  it('tidy + backward leaves no native memory behind once results and grads are disposed', () => {
    const params = [leaf([9, 7], 1), leaf([9], 2), leaf([9], 3), leaf([9], 4), leaf([4, 9], 5)];
    const x = randn([5, 7], { seed: 6 });
    const labels = tensor(new Int32Array([1, 0, -100, 3, 2]), [5], 'i32');
    const step = () => tidy(() => {
      const [W1, lnW, lnB, b1, W2] = params as [Tensor, Tensor, Tensor, Tensor, Tensor];
      const h = F.layerNorm(F.gelu(F.linear(x, W1, b1)), lnW, lnB, 1e-5);
      const q = F.reshape(h, [1, 1, 5, 9]);
      const a = F.attention(q, q, q, { causal: true });
      const loss = F.crossEntropy(F.linear(F.reshape(F.dropout(a, 0.1, 3), [5, 9]), W2, null), labels);
      loss.backward();
      return loss.item();
    });
    step(); // warm-up: anything cached on first use is allocated now
    for (const p of params) { p.grad?.dispose(); p.grad = null; }
    const before = native.memoryStats().liveBytes;
    step();
    step();
    expect(params.every((p) => p.grad !== null)).toBe(true);
    expect(native.memoryStats().liveBytes).toBeGreaterThan(before); // the grads are alive
    for (const p of params) { p.grad!.dispose(); p.grad = null; }
    expect(native.memoryStats().liveBytes).toBe(before);
    // a graph that is built but never backwarded is freed by tidy as well (saved tensors included)
    tidy(() => { F.layerNorm(F.linear(x, params[0]!, params[3]!), params[1]!, params[2]!, 1e-5); });
    expect(native.memoryStats().liveBytes).toBe(before);
    for (const t of [...params, x, labels]) t.dispose();
  });

  it('backward with gradOutput: a non-scalar root takes the upstream gradient as given', () => {
    tidy(() => {
      const x = leaf([2, 3], 1);
      const y = F.scale(x, 3);
      const g = randn([2, 3], { seed: 9 });
      backward(y, g);
      x.grad!.toArray().forEach((v, i) => expect(v).toBeCloseTo(3 * g.toArray()[i]!, 6));
      expect(g.isDisposed).toBe(false); // the caller's gradOutput is not consumed
    });
  });
});

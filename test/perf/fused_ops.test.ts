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

// gemm's roundA (an f32 A rounded to bf16 while the CPU GEMM packs it, against a bf16 B: what
// bf16 compute mode runs for an activation times a frozen weight's bf16 copy) must be bit for bit
// the cast-then-bf16-GEMM it replaced, for every layout, including the awkward sizes of the
// microtile edges and an odd K (a half-filled bf16 pair).
import { describe, it, expect } from 'vitest';
import { ops as F, randn, tidy } from '../../lib/index.js';
import { gemm, setComputeDtype } from '../../lib/tensor/kernels.js';
import { TunekitError } from '../../lib/errors.js';
import type { Tensor } from '../../lib/tensor/tensor.js';

/** The f32 bits of a result, so that equality is bit equality (NaN payloads and -0 included). */
function bits(t: { toTypedArray(): unknown }): Uint32Array {
  const f = t.toTypedArray() as Float32Array;
  return new Uint32Array(f.buffer, f.byteOffset, f.length);
}

describe('gemm roundA (f32 A rounded while packed, bf16 B)', () => {
  for (const [M, K, N] of [[1, 1, 1], [15, 33, 31], [37, 129, 70], [170, 801, 45]] as const) {
    for (const transA of [false, true]) {
      for (const transB of [false, true]) {
        it(`equals castRaw('bf16') then the bf16 GEMM: ${M}x${K}x${N}${transA ? ' tA' : ''}${transB ? ' tB' : ''}`, () => {
          tidy(() => {
            const a = randn(transA ? [K, M] : [M, K], { seed: M + K });
            const b = randn(transB ? [N, K] : [K, N], { seed: N }).castRaw('bf16');
            const got = gemm(a, b, { transA, transB, roundA: true });
            const want = gemm(a.castRaw('bf16'), b, { transA, transB });
            expect(got.shape).toEqual([M, N]);
            expect(bits(got)).toEqual(bits(want));
          });
        });
      }
    }
  }

  it('accumulates into `into` with beta as the bf16 GEMM does', () => {
    tidy(() => {
      const a = randn([20, 50], { seed: 1 }), b = randn([30, 50], { seed: 2 }).castRaw('bf16');
      const c1 = randn([20, 30], { seed: 3 }), c2 = c1.contiguousRaw().clone();
      gemm(a, b, { transB: true, roundA: true, into: c1, beta: 1 });
      gemm(a.castRaw('bf16'), b, { transB: true, into: c2, beta: 1 });
      expect(bits(c1)).toEqual(bits(c2));
    });
  });

  it('refuses operands of other dtypes (ERR_DTYPE naming both)', () => {
    tidy(() => {
      const a = randn([4, 8], { seed: 1 });
      const run = (x: Tensor<'f32'> | Tensor<'bf16'>, y: Tensor<'f32'> | Tensor<'bf16'>) => {
        try {
          gemm(x as Tensor<'f32'>, y as Tensor<'bf16'>, { roundA: true });
        } catch (e) {
          return e;
        }
        return null;
      };
      for (const [x, y, names] of [[a.castRaw('bf16'), randn([8, 3], { seed: 2 }).castRaw('bf16'), 'bf16 and bf16'], [a, randn([8, 3], { seed: 3 }), 'f32 and f32']] as const) {
        const e = run(x, y);
        expect(e).toBeInstanceOf(TunekitError);
        expect((e as TunekitError).code).toBe('ERR_DTYPE');
        expect((e as Error).message).toContain(`an f32 and a bf16 operand (roundA) but received ${names}`);
      }
    });
  });

  it('a frozen linear layer in bf16 compute mode gives the cast-then-GEMM result, forward and input gradient', () => {
    tidy(() => {
      const x = randn([9, 2, 67], { seed: 4 }), w = randn([67, 45], { seed: 5, std: 0.1 }), dy = randn([18, 45], { seed: 6 });
      setComputeDtype('bf16');
      let y: Float32Array, dx: Float32Array;
      try {
        const xg = x.contiguousRaw();
        xg.requiresGrad = true;
        const out = F.linear(xg, w, null, true); // w [in, out]: frozen (no gradient)
        F.sum(F.mul(F.reshape(out, [18, 45]), dy)).backward();
        y = out.toTypedArray() as Float32Array;
        dx = xg.grad!.toTypedArray() as Float32Array;
      } finally {
        setComputeDtype('f32');
      }
      const wb = w.castRaw('bf16');
      const wantY = gemm(F.reshape(x, [18, 67]).castRaw('bf16'), wb);
      const wantDx = gemm(dy.castRaw('bf16'), wb, { transB: true });
      expect(new Uint32Array(y.buffer, y.byteOffset, y.length)).toEqual(bits(wantY));
      expect(new Uint32Array(dx.buffer, dx.byteOffset, dx.length)).toEqual(bits(wantDx));
    });
  });
});

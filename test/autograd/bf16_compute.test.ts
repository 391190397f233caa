/**
 * bf16 compute (setComputeDtype('bf16'), a config's training.dtype): every product with a weight,
 * trained or frozen, runs on the bf16 GEMM as PyTorch's autocast does: the forward x W, the input
 * gradient dy W^T and a trained weight's gradient x^T dy, each from operands rounded to bf16 with
 * f32 accumulation. Checked against f32 products of the rounded operands (the same numbers up to
 * summation order), for nn.Linear and GPT-2 Conv1D layouts and the tied LM head's matmul.
 */
import { describe, it, expect, afterEach } from 'vitest';
import { ops as F, backward, randn, tidy, setComputeDtype, getComputeDtype, runTraining, loadConfig, TunekitError, type Tensor } from '../../lib/index.js';
import { gemm } from '../../lib/tensor/kernels.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

afterEach(() => setComputeDtype('f32'));

/** x rounded to bf16 (nearest even) and widened back: what the bf16 GEMM multiplies. */
const rounded = (x: Tensor): Tensor => {
  const b = x.castRaw('bf16');
  const r = b.castRaw('f32');
  b.dispose();
  return r;
};

/** max |got - want| / max |want| */
function rel(got: Tensor, want: Tensor): number {
  const g = got.toTypedArray() as Float32Array, w = want.toTypedArray() as Float32Array;
  let d = 0, m = 0;
  for (let i = 0; i < w.length; i++) {
    d = Math.max(d, Math.abs(g[i]! - w[i]!));
    m = Math.max(m, Math.abs(w[i]!));
  }
  return d / m;
}

describe('bf16 compute for trained weights', () => {
  for (const wInOut of [false, true]) {
    it(`linear (${wInOut ? 'Conv1D [in, out]' : 'nn.Linear [out, in]'}): y, dx, dW and db from bf16-rounded operands`, () => tidy(() => {
      const x = randn([6, 5, 48], { seed: 1 }), dy = randn([6, 5, 40], { seed: 2 });
      const w = wInOut ? randn([48, 40], { seed: 3, std: 0.2 }) : randn([40, 48], { seed: 3, std: 0.2 });
      const bias = randn([40], { seed: 4 });
      const run = () => {
        const xi = x.contiguousRaw();
        xi.requiresGrad = true; w.requiresGrad = true; bias.requiresGrad = true;
        const y = F.linear(xi, w, bias, wInOut);
        backward(F.sum(F.mul(y, dy)));
        const out = { y, dx: xi.grad!, dw: w.grad!, db: bias.grad! };
        w.grad = null; bias.grad = null;
        return out;
      };
      const f32 = run();
      setComputeDtype('bf16');
      const b16 = run();
      setComputeDtype('f32');
      // the same products in f32 from the rounded operands
      const x2 = rounded(F.reshape(x, [30, 48])), dy2 = rounded(F.reshape(dy, [30, 40])), wr = rounded(w);
      const yRef = F.add(F.reshape(gemm(x2, wr, { transB: !wInOut }), [6, 5, 40]), bias);
      const dxRef = F.reshape(gemm(dy2, wr, { transB: wInOut }), [6, 5, 48]);
      const dwRef = wInOut ? gemm(x2, dy2, { transA: true }) : gemm(dy2, x2, { transA: true });
      expect(rel(b16.y, yRef)).toBeLessThan(1e-5);
      expect(rel(b16.dx, dxRef)).toBeLessThan(1e-5);
      expect(rel(b16.dw, dwRef)).toBeLessThan(1e-5);
      expect(Array.from(b16.db.toTypedArray())).toEqual(Array.from(f32.db.toTypedArray())); // a sum, no product: f32
      // and bf16 really ran: each moved from the f32 result by bf16's rounding
      for (const k of ['y', 'dx', 'dw'] as const) {
        expect(rel(b16[k], f32[k]), k).toBeGreaterThan(1e-4);
        expect(rel(b16[k], f32[k]), k).toBeLessThan(3e-2);
      }
    }));
  }

  it('the tied LM head (matmul with a trained [V, C] weight, transB): logits, dh and the weight gradient', () => tidy(() => {
    const h = randn([4, 7, 32], { seed: 5 }), wte = randn([50, 32], { seed: 6, std: 0.3 }), g = randn([4, 7, 50], { seed: 7 });
    const hi = h.contiguousRaw();
    hi.requiresGrad = true; wte.requiresGrad = true;
    setComputeDtype('bf16');
    const logits = F.matmul(hi, wte, { transB: true });
    backward(F.sum(F.mul(logits, g)));
    setComputeDtype('f32');
    const h2 = rounded(F.reshape(h, [28, 32])), g2 = rounded(F.reshape(g, [28, 50])), wr = rounded(wte);
    expect(rel(logits, F.reshape(gemm(h2, wr, { transB: true }), [4, 7, 50]))).toBeLessThan(1e-5);
    expect(rel(hi.grad!, F.reshape(gemm(g2, wr), [4, 7, 32]))).toBeLessThan(1e-5);
    expect(rel(wte.grad!, gemm(g2, h2, { transA: true }))).toBeLessThan(1e-5);
  }));

  it('an activation as the right operand (one with a gradient history) is not a weight: its product stays f32', () => tidy(() => {
    const a = randn([8, 16], { seed: 8 }), p = randn([16, 12], { seed: 9 });
    p.requiresGrad = true;
    const act = F.mul(p, p); // computed: has a gradFn
    const f32 = F.matmul(a, act).toTypedArray();
    setComputeDtype('bf16');
    const b16 = F.matmul(a, act).toTypedArray();
    expect(Array.from(b16)).toEqual(Array.from(f32));
  }));

  it('a one-row product (decoding a token, the bf16 GEMV) is the f32 product of the rounded operands, both layouts', () => tidy(() => {
    for (const wInOut of [true, false]) {
      const w = wInOut ? randn([300, 70], { seed: 10, std: 0.2 }) : randn([70, 300], { seed: 10, std: 0.2 });
      const x = randn([1, 300], { seed: 11 });
      setComputeDtype('bf16');
      const b16 = F.linear(x, w, null, wInOut);
      setComputeDtype('f32');
      const want = gemm(rounded(x), rounded(w), { transB: !wInOut });
      expect(rel(b16, want)).toBeLessThan(1e-6);
      expect(rel(b16, F.linear(x, w, null, wInOut))).toBeGreaterThan(1e-4);
    }
  }));

  it('setComputeDtype refuses anything but f32 and bf16', () => {
    expect(() => setComputeDtype('f16' as 'bf16')).toThrow(TunekitError);
    expect(getComputeDtype()).toBe('f32');
  });

  it("runTraining sets training.dtype for the run and gives the caller's setting back, also when the run fails", async () => {
    const out = mkdtempSync(join(tmpdir(), 'tunekit-dtype-'));
    try {
      const config = loadConfig({ model: 'builtin:no-such-model', task: 'seq_cls', dataset: { path: join(out, 'missing.jsonl') }, training: { dtype: 'bf16' }, output_dir: join(out, 'run') });
      await expect(runTraining(config, { log: () => undefined })).rejects.toThrow(TunekitError);
      expect(getComputeDtype()).toBe('f32');
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });
});

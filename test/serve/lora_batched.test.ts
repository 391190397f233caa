/**
 * The per-row LoRA kernel through its TypeScript wrapper: against the plain double-precision
 * reference and against the single-adapter fused op (F.loraLinear, what `tunekit generate` runs)
 * on each row alone, at awkward sizes (interleaved slots, ranks 1..7 differing per slot, a rank-0
 * slot, rows without an adapter, both weight layouts); bad slot tables are typed errors.
 */
import { describe, it, expect } from 'vitest';
import { randn, tensor } from '../../lib/tensor/creation.js';
import type { Tensor } from '../../lib/tensor/tensor.js';
import { loraBatchedLinear, packLoraSlots, disposeLoraSlotPack, type LoraSlotAdapter } from '../../lib/tensor/lora_batched.js';
import * as F from '../../lib/autograd/ops.js';
import { noGrad } from '../../lib/autograd/tape.js';

// relative error with a floor of 1e-2 on |b|: outputs are O(1), so an output near 0 is judged by
// an absolute error of ~1e-5 (f32 sums in another order differ by a few 1e-7 absolute)
function maxRelErr(a: Float32Array, b: Float32Array): number {
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!) / (1e-2 + Math.abs(b[i]!)));
  return worst;
}

describe('loraBatchedLinear', () => {
  for (const wInOut of [false, true]) {
    it(`matches the reference and each row alone (${wInOut ? 'Conv1D [in, out]' : 'Linear [out, in]'} weight)`, () => {
      const inF = 37, outF = 53;
      const ranks = [4, 1, 7, 0, 3];
      let seed = wInOut ? 50 : 10;
      const slots: (LoraSlotAdapter | null)[] = ranks.map((r, a) => (r === 0 ? null : { A: randn([r, inF], { seed: seed++, std: 0.3 }), B: randn([outF, r], { seed: seed++, std: 0.3 }), scale: 8 / r + a }));
      const pack = packLoraSlots(slots, inF, outF);
      const rowSlot = Int32Array.of(0, 2, -1, 1, 0, 3, 2, -1, 4, 4, 4, 1, 0);
      const M = rowSlot.length;
      const x = randn([M, inF], { seed: seed++ });
      const w = randn(wInOut ? [inF, outF] : [outF, inF], { seed: seed++, std: 0.2 });
      const bias = randn([outF], { seed: seed++ });
      const slotsT = tensor(rowSlot, [M], 'i32') as Tensor<'i32'>;
      const fast = loraBatchedLinear(x, w, bias, pack, slotsT, { wInOut }).toTypedArray() as Float32Array;
      const ref = loraBatchedLinear(x, w, bias, pack, slotsT, { wInOut, reference: true }).toTypedArray() as Float32Array;
      expect(maxRelErr(fast, ref)).toBeLessThan(1e-3);
      const xs = x.toTypedArray() as Float32Array;
      for (let i = 0; i < M; i++) {
        const a = rowSlot[i]!;
        const xi = tensor(xs.slice(i * inF, (i + 1) * inF), [1, inF]);
        const s = a >= 0 ? slots[a] : null;
        const alone = noGrad(() => (s ? F.loraLinear(xi, w, bias, s.A, s.B, { scale: s.scale, wInOut }) : F.linear(xi, w, bias, wInOut))).toTypedArray() as Float32Array;
        expect(maxRelErr(fast.subarray(i * outF, (i + 1) * outF), alone), `row ${i} (slot ${a})`).toBeLessThan(1e-3);
      }
      // a wrong adapter would be caught: slot 0 and slot 2 give different rows
      expect(maxRelErr(fast.subarray(0, outF), fast.subarray(outF, 2 * outF))).toBeGreaterThan(1e-2);
      disposeLoraSlotPack(pack);
    });
  }

  it('refuses bad slot tables and shapes with typed errors', () => {
    const pack = packLoraSlots([{ A: randn([2, 4], { seed: 1 }), B: randn([3, 2], { seed: 2 }), scale: 1 }], 4, 3);
    const x = randn([2, 4], { seed: 3 });
    const w = randn([3, 4], { seed: 4 });
    expect(() => loraBatchedLinear(x, w, null, pack, tensor(Int32Array.of(0, 1), [2], 'i32') as Tensor<'i32'>)).toThrow(expect.objectContaining({ code: 'ERR_INDEX' }));
    expect(() => loraBatchedLinear(x, w, null, pack, tensor(Int32Array.of(0), [1], 'i32') as Tensor<'i32'>)).toThrow(expect.objectContaining({ code: 'ERR_SHAPE' }));
    expect(() => packLoraSlots([{ A: randn([2, 5], { seed: 1 }), B: randn([3, 2], { seed: 2 }), scale: 1 }], 4, 3)).toThrow(expect.objectContaining({ code: 'ERR_SHAPE' }));
    disposeLoraSlotPack(pack);
  });
});

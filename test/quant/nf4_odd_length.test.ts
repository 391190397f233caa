/**
 * The pad nibble of an odd-length 4-bit weight. bitsandbytes' quantize_4bit fills the low nibble
 * past the last element as if the last block held one more 0.0: its CPU path
 * (backends/default/ops.py) pads the scaled values with 0 before bucketize, its CUDA kernel
 * (kQuantizeBlockwise) loads 0.0 past n. So NF4 pads with code 7 (the code of 0.0) and FP4 with
 * code 0, and a file we write is byte-identical to theirs.
 */
import { describe, it, expect } from 'vitest';
import '../../lib/index.js';
import { tensor } from '../../lib/tensor/creation.js';
import { NF4Tensor } from '../../lib/tensor/nf4.js';

function packedOf(values: number[], quantType: 'nf4' | 'fp4', blocksize = 64): number[] {
  const w = tensor(Float32Array.from(values), [1, values.length]);
  const q = NF4Tensor.quantize(w, { blocksize, quantType, doubleQuant: false });
  const out = Array.from(q.packed.data() as Uint8Array);
  q.dispose();
  w.dispose();
  return out;
}

describe('odd element counts pad the last nibble as bitsandbytes does', () => {
  it('NF4: the pad nibble is code 7 (0.0), not 0', () => {
    // absmax 1: 1.0 -> code 15, -1.0 -> 0, 0.5 -> 12 (below the midpoint 0.5017 of 0.4407 and 0.5626)
    const p = packedOf([1, -1, 0.5], 'nf4');
    expect(p.length).toBe(2);
    expect(p[0]).toBe(0xf0);
    expect(p[1]! & 0x0f).toBe(7);
    expect(p[1]! >> 4).toBe(12);
  });

  it('NF4 with a partial last block of one element, blocksize 32', () => {
    // 32 values in block 0, then [0.3] alone in block 1: 0.3 / 0.3 = 1.0 -> code 15, pad 7
    const p = packedOf([...Array.from({ length: 32 }, (_, i) => (i - 16) / 16), 0.3], 'nf4', 32);
    expect(p.length).toBe(17);
    expect(p[16]).toBe((15 << 4) | 7);
  });

  it('NF4 all-zero last block: 0x77 through to the pad', () => {
    expect(packedOf([0, 0, 0], 'nf4')).toEqual([0x77, 0x77]);
  });

  it('FP4 pads with code 0 (the FP4 code of 0.0)', () => {
    const p = packedOf([1, -1, 1], 'fp4');
    expect(p[1]! & 0x0f).toBe(0);
  });
});

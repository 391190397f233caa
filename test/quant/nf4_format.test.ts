/**
 * NF4 / FP4 storage against the fixture computed by scripts/fixtures/make_nf4_fixtures.py (numpy
 * implementation of bitsandbytes' rules): codes, packing, absmax, double quantization and
 * dequantization are bit-exact; byte accounting; quant-state JSON bytes as Python writes them.
 */
import { describe, it, expect } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import '../../lib/index.js';
import { tensor, randn } from '../../lib/tensor/creation.js';
import { NF4Tensor, codebook, dynamicMap, doubleQuantize, relativeError } from '../../lib/tensor/nf4.js';
import { pyFloat, quantStateBytes } from '../../lib/quant/checkpoint.js';

const FIX = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'nf4');
interface Case {
  name: string; n: number; blocksize: number; quant_type: 'nf4' | 'fp4';
  w: string; packed: string; absmax: string; dequant: string;
  double?: { q: string; nested_absmax: string; offset: number; absmax_back: string };
}
const fixture = JSON.parse(fs.readFileSync(path.join(FIX, 'cases.json'), 'utf8')) as { nf4_codebook: number[]; fp4_codebook: number[]; dynamic_map: string; cases: Case[] };
const bytes = (b64: string) => new Uint8Array(Buffer.from(b64, 'base64'));
const f32 = (b64: string) => { const b = bytes(b64); return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4); };
const u8of = (t: { data(): unknown }) => new Uint8Array((t.data() as Uint8Array).slice());
const f32of = (t: { data(): unknown }) => Float32Array.from(t.data() as Float32Array);

describe('NF4 storage is bit-exact with the bitsandbytes rules (fixture)', () => {
  it('codebooks and the dynamic map match', () => {
    expect(Array.from(codebook('nf4'))).toEqual(Array.from(Float32Array.from(fixture.nf4_codebook)));
    expect(Array.from(codebook('fp4'))).toEqual(Array.from(Float32Array.from(fixture.fp4_codebook)));
    expect(Array.from(dynamicMap())).toEqual(Array.from(f32(fixture.dynamic_map)));
  });

  for (const c of fixture.cases) {
    it(`${c.name}: packed codes, absmax and dequantized values`, () => {
      const w = tensor(f32(c.w), [1, c.n]);
      const q = NF4Tensor.quantize(w, { blocksize: c.blocksize, quantType: c.quant_type, doubleQuant: false });
      expect(q.packed.shape).toEqual([(c.n + 1) >> 1, 1]);
      const packed = u8of(q.packed), want = bytes(c.packed);
      const diff = packed.findIndex((v, i) => v !== want[i]);
      expect(diff, `first differing byte ${diff}`).toBe(-1);
      expect(Array.from(f32of(q.absmaxF32()))).toEqual(Array.from(f32(c.absmax)));
      const d = q.dequantize();
      expect(Array.from(f32of(d))).toEqual(Array.from(f32(c.dequant)));
      d.dispose(); q.dispose(); w.dispose();
      if (c.double) {
        const am = tensor(f32(c.absmax), [f32(c.absmax).length]);
        const st = doubleQuantize(am);
        expect(Array.from(u8of(st.q))).toEqual(Array.from(bytes(c.double.q)));
        expect(Array.from(f32of(st.nestedAbsmax))).toEqual(Array.from(f32(c.double.nested_absmax)));
        expect(st.offset).toBe(c.double.offset);
        const dq = new NF4Tensor(tensor(bytes(c.packed), [(c.n + 1) >> 1, 1], 'u8'), st, [1, c.n], c.blocksize, c.quant_type);
        expect(Array.from(f32of(dq.absmaxF32()))).toEqual(Array.from(f32(c.double.absmax_back)));
        dq.dispose(); am.dispose();
      }
    });
  }

  it('ties at the midpoints go to the lower code; an all-zero block is 0x77 (nf4) / 0x00 (fp4)', () => {
    const ties = fixture.cases.find((c) => c.name === 'ties_at_midpoints')!;
    const p = bytes(ties.packed);
    // element 0 is 1.0 (code 15); elements 1..15 are the midpoints m_0..m_14 -> codes 0..14
    const code = (i: number) => (i & 1 ? p[i >> 1]! & 15 : p[i >> 1]! >> 4);
    expect(code(0)).toBe(15);
    for (let i = 0; i < 15; i++) expect(code(1 + i)).toBe(i);
    for (let i = 0; i < 15; i++) expect(code(16 + i)).toBe(i + 1); // one ulp above: next code
    const zero = fixture.cases.find((c) => c.name === 'zero_block')!;
    expect(Array.from(bytes(zero.packed).slice(16, 32)).every((b) => b === 0x77)).toBe(true);
    const fz = fixture.cases.find((c) => c.name === 'fp4_zero_block')!;
    expect(Array.from(bytes(fz.packed).slice(0, 32)).every((b) => b === 0)).toBe(true);
  });
});

describe('NF4 byte accounting and error', () => {
  it('double quantization stores <= 0.52 bytes per parameter (4.5 bits without)', () => {
    const w = randn([256, 512], { std: 0.02, seed: 3 });
    const q = NF4Tensor.quantize(w);
    expect(q.bytesPerParam()).toBeLessThanOrEqual(0.52);
    expect(q.bytesPerParam()).toBeCloseTo(4.127 / 8, 3);
    const p = NF4Tensor.quantize(w, { doubleQuant: false });
    expect(p.bytesPerParam()).toBeCloseTo(4.5 / 8, 6);
    // NF4 of a normal weight: ~10% relative Frobenius error; double quantization adds little
    const e1 = relativeError(w, p.dequantize()).rel, e2 = relativeError(w, q.dequantize()).rel;
    expect(e1).toBeGreaterThan(0.05);
    expect(e1).toBeLessThan(0.12);
    expect(Math.abs(e2 - e1)).toBeLessThan(0.01);
    q.dispose(); p.dispose(); w.dispose();
  });

  it('rejects bad arguments with clear errors', () => {
    const w = randn([4, 64], { seed: 1 });
    expect(() => NF4Tensor.quantize(w, { blocksize: 16 })).toThrow(/blocksize must be an integer in \[32, 4096\]/);
    expect(() => NF4Tensor.quantize(randn([64], { seed: 1 }))).toThrow(/2-D weight/);
    w.dispose();
  });
});

describe('quant_state JSON', () => {
  it('is byte-identical to Python json.dumps of the fixture checkpoint', async () => {
    const { openCheckpointSync } = await import('../../lib/io/safetensors.js');
    const ck = openCheckpointSync(path.join(FIX, 'gpt2_nf4'));
    const key = 'transformer.h.0.attn.c_attn.weight';
    const js = ck.readTensor(`${key}.quant_state.bitsandbytes__nf4`).bytes;
    const st = JSON.parse(new TextDecoder().decode(js)) as { nested_offset: number; shape: number[] };
    const { nf4FromState } = await import('../../lib/quant/checkpoint.js');
    const q = nf4FromState(key, (s) => (ck.names.includes(key + s) ? ck.readTensor(key + s) : undefined));
    ck.close();
    expect(q.shape).toEqual([144, 48]); // Conv1D [48, 144] transposed, as transformers quantizes it
    expect(new TextDecoder().decode(quantStateBytes(q))).toBe(new TextDecoder().decode(js));
    expect(st.shape).toEqual([144, 48]);
    q.dispose();
  });

  it('pyFloat writes floats as Python repr', () => {
    expect(pyFloat(0.5)).toBe('0.5');
    expect(pyFloat(1)).toBe('1.0');
    expect(pyFloat(1e-5)).toBe('1e-05');
    expect(pyFloat(1.5e-5)).toBe('1.5e-05');
    expect(pyFloat(0.0001)).toBe('0.0001');
    expect(pyFloat(123456.25)).toBe('123456.25');
    expect(pyFloat(1e16)).toBe('1e+16');
    expect(pyFloat(-0.012345678)).toBe('-0.012345678');
  });
});

/**
 * SVD uses on LoRA: resizeAdapter (energy kept monotonic in k, full rank reproduces the model,
 * the truncation is the best rank-k one: the dropped energy equals the residual) and PiSSA
 * initialisation (the model output is unchanged at init; the adapter holds W's top-r part).
 */
import { describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { LoraModel } from '../../lib/peft/lora/model.js';
import { resizeAdapter, lowRankProductSvd, svdF64 } from '../../lib/peft/lora/resize.js';
import { manualSeed } from '../../lib/nn/random.js';
import { gpt2, logitsOf, maxRel } from './adalora_helpers.js';

function denseDelta(layer: { adapters: Map<string, { A: { data(): unknown; shape: readonly number[] }; B: { data(): unknown; shape: readonly number[] }; scale: number }> }): { d: Float64Array; out: number; inF: number } {
  const ad = layer.adapters.get('default')!;
  const a = ad.A.data() as Float32Array, b = ad.B.data() as Float32Array;
  const r = ad.A.shape[0]!, inF = ad.A.shape[1]!, out = ad.B.shape[0]!;
  const d = new Float64Array(out * inF);
  for (let o = 0; o < out; o++) for (let k = 0; k < r; k++) for (let i = 0; i < inF; i++) d[o * inF + i] += ad.scale * b[o * r + k]! * a[k * inF + i]!;
  return { d, out, inF };
}

describe('resizeAdapter', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'resize-'));
  manualSeed(21);
  const src = new LoraModel(gpt2(), { r: 6, lora_alpha: 12, target_modules: ['c_attn', 'c_fc'], init_lora_weights: false });
  src.saveAdapterSync(dir);
  const want = logitsOf(src);

  it('full rank reproduces the model; energy kept grows with k; dropped energy = truncation residual', () => {
    const full = LoraModel.fromPretrainedSync(gpt2(), dir);
    const rep = resizeAdapter(full, 6);
    expect(rep.layers.every((l) => Math.abs(l.energyKept - 1) < 1e-12)).toBe(true);
    expect(maxRel(logitsOf(full), want)).toBeLessThan(1e-4);
    let prev: number[] | null = null;
    for (let k = 1; k <= 6; k++) {
      const m = LoraModel.fromPretrainedSync(gpt2(), dir);
      const before = denseDelta(m.layers.get('transformer.h.0.attn.c_attn')!);
      const { layers } = resizeAdapter(m, k);
      const energies = layers.map((l) => l.energyKept);
      if (prev) energies.forEach((e, i) => expect(e).toBeGreaterThanOrEqual(prev![i]! - 1e-12));
      prev = energies;
      const layer = m.layers.get('transformer.h.0.attn.c_attn')!;
      expect(layer.adapters.get('default')!.A.shape).toEqual([k, 48]);
      const after = denseDelta(layer);
      let res = 0, tot = 0;
      for (let i = 0; i < before.d.length; i++) { res += (before.d[i]! - after.d[i]!) ** 2; tot += before.d[i]! ** 2; }
      expect(Math.abs(res / tot - (1 - layers[0]!.energyKept))).toBeLessThan(1e-5);
      expect(m.adapterConfigs.get('default')!.r).toBe(k);
    }
    expect(prev!.every((e) => e > 0.99)).toBe(true);
  });

  it('a resized adapter saves and loads as a plain rank-k LoRA folder', () => {
    const m = LoraModel.fromPretrainedSync(gpt2(), dir);
    resizeAdapter(m, 3);
    const got = logitsOf(m);
    const out = fs.mkdtempSync(path.join(os.tmpdir(), 'resize3-'));
    m.saveAdapterSync(out);
    expect(maxRel(logitsOf(LoraModel.fromPretrainedSync(gpt2(), out)), got)).toBeLessThan(1e-5);
  });

  it('factored SVD of B A equals the SVD of the dense product', () => {
    const out = 9, r = 4, inF = 7;
    const b = Float64Array.from({ length: out * r }, (_, i) => Math.sin(i * 1.3));
    const a = Float64Array.from({ length: r * inF }, (_, i) => Math.cos(i * 0.7));
    const dense = new Float64Array(out * inF);
    for (let o = 0; o < out; o++) for (let k = 0; k < r; k++) for (let i = 0; i < inF; i++) dense[o * inF + i] += b[o * r + k]! * a[k * inF + i]!;
    const f = lowRankProductSvd(b, a, out, r, inF);
    const d = svdF64(dense, out, inF, r);
    for (let i = 0; i < r; i++) expect(Math.abs(f.s[i]! - d.s[i]!)).toBeLessThan(1e-10 * d.s[0]!);
  });
});

describe('PiSSA init', () => {
  it('leaves the model output unchanged at init and puts W top-r part in the adapter', () => {
    const base = logitsOf(gpt2());
    const m = new LoraModel(gpt2(), { r: 4, lora_alpha: 8, target_modules: ['c_attn', 'c_proj'], init_lora_weights: 'pissa' });
    expect(maxRel(logitsOf(m), base)).toBeLessThan(1e-4); // f32 rounding of W - scale B A
    // residual W - scale B A has W's singular values beyond r: its top value is W's (r+1)-th
    const raw = gpt2();
    const layer = m.layers.get('transformer.h.0.attn.c_attn')!;
    const wOrig = raw.namedParameters().find(([n]) => n === 'transformer.h.0.attn.c_attn.weight')![1];
    const sOrig = svdF64(Float64Array.from(wOrig.data() as Float32Array), 48, 144).s;
    const sRes = svdF64(Float64Array.from(layer.base_layer.weight.data() as Float32Array), 48, 144).s;
    expect(Math.abs(sRes[0]! - sOrig[4]!) / sOrig[4]!).toBeLessThan(1e-4);
    const ad = layer.adapters.get('default')!;
    const sAd = lowRankProductSvd(Float64Array.from(ad.B.data() as Float32Array), Float64Array.from(ad.A.data() as Float32Array), 144, 4, 48).s;
    for (let i = 0; i < 4; i++) expect(Math.abs(sAd[i]! * ad.scale - sOrig[i]!) / sOrig[i]!).toBeLessThan(1e-5);
  });
});

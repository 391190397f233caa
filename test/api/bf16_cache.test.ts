/**
 * The bf16 weight cache (compute dtype 'bf16': a frozen weight's bf16 copy is made once and
 * reused) is keyed by the weight's storage version, which every in-place write bumps. Each case
 * writes a frozen weight in place after the copy was made (assign, merging a LoRA adapter, loading
 * a checkpoint, an optimizer step while briefly trainable) and checks the next forward uses the
 * new values. Against the cache keyed by the tensor alone, each case got the stale copy.
 */
import { describe, it, expect, afterEach } from 'vitest';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  Linear, LoraModel, GPT2, parseGPT2Config, manualSeed, randn, full, tensor, AdamW, backward, ops, savePretrainedSync, loadWeightsSync,
  type Tensor,
} from '../../lib/index.js';
import { setComputeDtype, gemm } from '../../lib/tensor/kernels.js';
import { dir as modelDir } from '../models/helpers.js';

afterEach(() => setComputeDtype('f32'));

/** max |a - b| / (max |b| + 1e-6): bf16 rounding of inputs and weights gives about 1e-2 here */
function relDiff(a: number[], b: number[]): number {
  let d = 0, m = 0;
  for (let i = 0; i < b.length; i++) {
    d = Math.max(d, Math.abs(a[i]! - b[i]!));
    m = Math.max(m, Math.abs(b[i]!));
  }
  return d / (m + 1e-6);
}
const BF16_TOL = 2e-2;

/**
 * The layer's output in f32 (x W^T; the bias stays zero here), computed without leaving bf16 mode:
 * setComputeDtype('f32') would empty the cache and hide a stale copy.
 */
function f32Forward(layer: Linear, x: Tensor): number[] {
  return gemm(x, layer.weight, { transB: true }).toArray();
}

function tinyGpt2(seed: number): GPT2 {
  manualSeed(seed);
  const cfg = JSON.parse(readFileSync(join(modelDir('gpt2_lm'), 'config.json'), 'utf8')) as Record<string, unknown>;
  return new GPT2(parseGPT2Config({ ...cfg, resid_pdrop: 0, embd_pdrop: 0, attn_pdrop: 0 }), 'causal_lm');
}

describe('bf16 weight cache', () => {
  it('assign() to a frozen weight: the next forward uses the new values', () => {
    setComputeDtype('bf16');
    const lin = new Linear(32, 16, { seed: 3 }).requiresGrad_(false); // frozen: its bf16 copy is cached
    const x = randn([4, 32], { seed: 4 });
    const before = lin.forward(x).toArray();
    expect(relDiff(before, f32Forward(lin, x))).toBeLessThan(BF16_TOL);
    lin.weight.assign(full([16, 32], 0.25));
    const after = lin.forward(x).toArray();
    expect(relDiff(after, f32Forward(lin, x))).toBeLessThan(BF16_TOL);
    expect(relDiff(after, before)).toBeGreaterThan(0.1);
  });

  it('an optimizer step on a briefly trainable weight is seen once it is frozen again', () => {
    setComputeDtype('bf16');
    const lin = new Linear(32, 16, { seed: 5 }).requiresGrad_(false);
    const x = randn([4, 32], { seed: 6 });
    lin.forward(x).dispose(); // frozen: the bf16 copy is made
    lin.weight.requiresGrad = true;
    const opt = new AdamW([['weight', lin.weight]], { lr: 0.5 });
    backward(ops.mean(ops.square(lin.forward(x))));
    opt.step();
    opt.dispose();
    lin.weight.requiresGrad = false;
    lin.weight.grad = null;
    expect(relDiff(lin.forward(x).toArray(), f32Forward(lin, x))).toBeLessThan(BF16_TOL);
  });

  it('merging a LoRA adapter: merged output equals the unmerged one, not the base', () => {
    setComputeDtype('bf16');
    const lora = new LoraModel(tinyGpt2(1), { r: 4, lora_alpha: 8, target_modules: ['c_attn'] });
    // B starts at zero (PEFT's init): give the adapter an effect
    for (const [name, p] of lora.namedParameters()) if (name.includes('lora_B')) p.assign(randn([...p.shape], { seed: 7, std: 0.5 }));
    const inputIds = tensor(Int32Array.from([5, 9, 2, 41, 7, 3]), [1, 6], 'i32') as Tensor<'i32'>;
    const base = lora.withAdaptersDisabled(() => lora.forward({ inputIds }).logits.toArray()); // bf16 copies of c_attn made
    const unmerged = lora.forward({ inputIds }).logits.toArray();
    expect(relDiff(unmerged, base)).toBeGreaterThan(0.05); // the adapter matters
    lora.merge();
    const merged = lora.forward({ inputIds }).logits.toArray();
    expect(relDiff(merged, unmerged)).toBeLessThan(BF16_TOL);
  });

  describe('loading', () => {
    const dirs: string[] = [];
    afterEach(() => { while (dirs.length) rmSync(dirs.pop()!, { recursive: true, force: true }); });

    it('loadWeightsSync into a model already run: the next forward uses the loaded weights', () => {
      const other = tinyGpt2(2);
      const d = mkdtempSync(join(tmpdir(), 'tunekit-bf16-'));
      dirs.push(d);
      savePretrainedSync(other, d);
      const inputIds = tensor(Int32Array.from([5, 9, 2, 41, 7, 3]), [1, 6], 'i32') as Tensor<'i32'>;
      const want = other.forward({ inputIds }).logits.toArray(); // f32 reference

      setComputeDtype('bf16');
      const model = tinyGpt2(1).requiresGrad_(false);
      const first = model.forward({ inputIds }).logits.toArray(); // bf16 copies of model 1's weights
      loadWeightsSync(model, d, 'causal_lm');
      const got = model.forward({ inputIds }).logits.toArray();
      expect(relDiff(got, want)).toBeLessThan(BF16_TOL);
      expect(relDiff(first, want)).toBeGreaterThan(0.05);
    });
  });
});

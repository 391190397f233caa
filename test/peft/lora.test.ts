/**
 * LoRA invariants on the tiny transformers fixtures: merge == unmerged forward, disabled ==
 * base, only adapter (+ modules_to_save) parameters train, save/load round trips, several
 * named adapters, mergeAndUnload -> savePretrainedSync -> loadPretrainedSync, clear errors, the fused
 * op's gradients (finite differences and the unfused composition), and seeded lora_dropout.
 */
import { describe, it, expect, afterEach } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import '../../lib/index.js';
import '../../lib/peft/index.js';
import { loadPretrainedSync, savePretrainedSync } from '../../lib/models/index.js';
import { LoraModel } from '../../lib/peft/lora/model.js';
import { backward, noGrad } from '../../lib/autograd/tape.js';
import * as F from '../../lib/autograd/ops.js';
import { tidy } from '../../lib/tensor/scope.js';
import { rand, tensor } from '../../lib/tensor/creation.js';
import type { Tensor } from '../../lib/tensor/tensor.js';
import { manualSeed } from '../../lib/nn/random.js';
import { AdamW } from '../../lib/train/optimizer.js';
import type { PretrainedModel, Task } from '../../lib/models/common.js';
import { dir, inputsOf, modelInputs } from '../models/helpers.js';

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'tunekit-lora-'));
const dirs: string[] = [];
afterEach(() => {
  while (dirs.length) fs.rmSync(dirs.pop()!, { recursive: true, force: true });
});
const newDir = () => {
  const d = tmp();
  dirs.push(d);
  return d;
};

const load = (name: string, task: Task = 'causal_lm') => loadPretrainedSync(dir(name), { task }).model;
function logits(m: LoraModel | PretrainedModel, fixture: string): Float32Array {
  return noGrad(() => tidy(() => m.forward(modelInputs(inputsOf(fixture))).logits.toTypedArray() as Float32Array));
}
function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
  return d;
}
const snapshot = (m: { namedParameters(): [string, Tensor][] }) => new Map(m.namedParameters().map(([n, p]) => [n, p.toTypedArray() as Float32Array]));
const bitsEqual = (a: Float32Array, b: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));

/** One AdamW step on the fixture batch with cross-entropy on the (shifted) tokens or classes. */
function trainStep(m: LoraModel, fixture: string, task: Task, opt: AdamW): void {
  tidy(() => {
    const inp = inputsOf(fixture);
    const out = m.forward(modelInputs(inp));
    const C = out.logits.shape.at(-1)!;
    const flat = F.reshape(out.logits, [-1, C]);
    const labels = task === 'seq_cls' ? Int32Array.from([1, 2]) : Int32Array.from(inp.input_ids.flat().map((t, i, a) => (i % 10 === 9 ? -100 : a[i + 1]! % C)));
    backward(F.crossEntropy(flat, tensor(labels, [labels.length], 'i32') as Tensor<'i32'>));
  });
  opt.step(1e-2);
  opt.params.forEach(([, p]) => {
    p.grad?.dispose();
    p.grad = null;
  });
}

describe.each([
  ['gpt2_lm', 'causal_lm', { target_modules: ['c_attn', 'c_fc'] }], // Conv1D [in, out]
  ['llama_lm', 'causal_lm', { target_modules: ['q_proj', 'v_proj', 'down_proj'] }], // nn.Linear [out, in]
  ['bert_seqcls', 'seq_cls', {}],
] as const)('%s', (fixture, task, extra) => {
  const make = (seed = 3) => {
    manualSeed(seed);
    const base = load(fixture, task);
    return { base, baseLogits: logits(base, fixture), lora: new LoraModel(base, { r: 4, lora_alpha: 8, init_lora_weights: false, ...extra }) };
  };

  it('merge gives the unmerged forward; unmerge restores the weights', () => {
    const { lora, baseLogits } = make();
    const before = snapshot(lora.base);
    const unmerged = logits(lora, fixture);
    expect(maxDiff(unmerged, baseLogits)).toBeGreaterThan(1e-2); // the adapter matters
    lora.merge();
    expect(maxDiff(logits(lora, fixture), unmerged)).toBeLessThan(2e-5);
    lora.unmerge();
    expect(maxDiff(logits(lora, fixture), unmerged)).toBeLessThan(2e-5);
    for (const [n, v] of snapshot(lora.base)) expect(maxDiff(v, before.get(n)!), n).toBeLessThan(1e-6);
    lora.dispose();
  });

  it('with adapters disabled the model is exactly the base model', () => {
    const { lora, baseLogits } = make();
    const off = lora.withAdaptersDisabled(() => logits(lora, fixture));
    expect(maxDiff(off, baseLogits)).toBe(0);
    expect(lora.adaptersEnabled).toBe(true);
    expect(maxDiff(logits(lora, fixture), baseLogits)).toBeGreaterThan(1e-2);
    lora.dispose();
  });

  it('only adapter (and modules_to_save) parameters train; frozen weights stay bit-for-bit', () => {
    const { lora } = make();
    const trainable = lora.trainableParameters().map(([n]) => n);
    const isAdapter = (n: string) => /\.lora_[AB]\.default\.weight$/.test(n);
    const isHead = (n: string) => /^base_model\.(classifier|score)\./.test(n);
    expect(trainable.length).toBeGreaterThan(0);
    for (const n of trainable) expect(isAdapter(n) || isHead(n), n).toBe(true);
    if (task === 'seq_cls') expect(trainable.some(isHead)).toBe(true);
    const before = snapshot(lora);
    lora.train();
    const opt = new AdamW(lora.trainableParameters(), { lr: 1e-2 });
    trainStep(lora, fixture, task, opt);
    for (const [n, p] of lora.namedParameters()) {
      const same = bitsEqual(p.toTypedArray() as Float32Array, before.get(n)!);
      if (p.requiresGrad) expect(same, `${n} should have changed`).toBe(false);
      else expect(same, `${n} is frozen but changed`).toBe(true);
      expect(p.requiresGrad || p.grad === null, `${n} got a gradient`).toBe(true);
    }
    lora.dispose();
  });

  it('saveAdapterSync / fromPretrainedSync round trip', () => {
    const { lora } = make();
    // a changed head must travel too (modules_to_save)
    lora.train();
    trainStep(lora, fixture, task, new AdamW(lora.trainableParameters(), { lr: 1e-2 }));
    lora.eval();
    const want = logits(lora, fixture);
    const d = newDir();
    lora.saveAdapterSync(d);
    const files = fs.readdirSync(d).sort();
    expect(files).toEqual(['adapter_config.json', 'adapter_model.safetensors']);
    const back = LoraModel.fromPretrainedSync(load(fixture, task), d);
    expect(maxDiff(logits(back, fixture), want)).toBe(0);
    lora.dispose();
    back.dispose();
  });

  it('mergeAndUnload -> savePretrainedSync -> loadPretrainedSync gives the same logits', () => {
    const { lora } = make();
    lora.eval();
    const want = logits(lora, fixture);
    const merged = lora.mergeAndUnload();
    expect(merged.namedParameters().some(([n]) => n.includes('lora_'))).toBe(false);
    const d = newDir();
    savePretrainedSync(merged, d);
    const back = load(path.relative(dir(''), d), task);
    expect(maxDiff(logits(back, fixture), want)).toBeLessThan(2e-5);
    merged.dispose();
    back.dispose();
  });
});

describe('named adapters', () => {
  it('two adapters: switching changes the forward, each saves and reloads on its own', () => {
    manualSeed(11);
    const lora = new LoraModel(load('gpt2_lm'), { r: 4, lora_alpha: 8, init_lora_weights: false }, 'first');
    const first = logits(lora, 'gpt2_lm');
    lora.addAdapter('second', { r: 2, lora_alpha: 4, init_lora_weights: false, target_modules: ['c_attn', 'c_fc'], layers_to_transform: [1] });
    expect(lora.activeAdapter).toBe('first'); // adding does not switch
    expect(maxDiff(logits(lora, 'gpt2_lm'), first)).toBe(0);
    lora.setAdapter('second');
    const second = logits(lora, 'gpt2_lm');
    expect(maxDiff(second, first)).toBeGreaterThan(1e-2);
    // only the active adapter trains, and it sits only where its config asked
    const trainable = lora.trainableParameters().map(([n]) => n);
    expect(trainable.every((n) => n.includes('.second.'))).toBe(true);
    expect(trainable.filter((n) => n.includes('lora_A')).sort()).toEqual([
      'base_model.transformer.h.1.attn.c_attn.lora_A.second.weight', 'base_model.transformer.h.1.mlp.c_fc.lora_A.second.weight',
    ]);
    const d1 = newDir(), d2 = newDir();
    lora.saveAdapterSync(d1, 'first');
    lora.saveAdapterSync(d2, 'second');
    lora.setAdapter('first');
    expect(maxDiff(logits(lora, 'gpt2_lm'), first)).toBe(0);
    const a = LoraModel.fromPretrainedSync(load('gpt2_lm'), d1);
    const b = LoraModel.fromPretrainedSync(load('gpt2_lm'), d2);
    expect(maxDiff(logits(a, 'gpt2_lm'), first)).toBe(0);
    expect(maxDiff(logits(b, 'gpt2_lm'), second)).toBe(0);
    expect(() => lora.setAdapter('third')).toThrow(/no adapter named 'third' \(have first, second\)/);
    expect(() => lora.addAdapter('second', {})).toThrow(/already exists/);
    for (const m of [lora, a, b]) m.dispose();
  });

  it("a second 'all-linear' adapter reaches the layers the first one already wrapped", () => {
    manualSeed(12);
    const lora = new LoraModel(load('llama_lm'), { r: 2, init_lora_weights: false });
    lora.addAdapter('all', { r: 2, target_modules: 'all-linear' });
    const withAll = [...lora.layers.values()].filter((l) => l.adapters.has('all')).length;
    expect(withAll).toBe(14); // 7 linear layers x 2 blocks, q/v included
    // saved as PEFT does: the resolved module list
    const d = newDir();
    lora.saveAdapterSync(d, 'all');
    const cfg = JSON.parse(fs.readFileSync(path.join(d, 'adapter_config.json'), 'utf8'));
    expect(cfg.target_modules).toHaveLength(14);
    lora.dispose();
  });
});

describe('modules_to_save', () => {
  it("matches module names by suffix as PEFT does ('wpe' is transformer.wpe); the table trains and travels with the adapter", () => {
    const lora = new LoraModel(load('gpt2_lm'), { r: 2, modules_to_save: ['wpe'] });
    const trainable = lora.namedParameters().filter(([, p]) => p.requiresGrad).map(([n]) => n);
    expect(trainable.some((n) => /transformer\.wpe\.weight$/.test(n))).toBe(true);
    expect(trainable.some((n) => /wte/.test(n))).toBe(false);
    const d = newDir();
    lora.saveAdapterSync(d);
    const header = fs.readFileSync(path.join(d, 'adapter_model.safetensors')).subarray(8, 8 + 4096).toString('latin1');
    expect(header).toContain('base_model.model.transformer.wpe.weight');
  });
  it('an entry that names no module is refused (PEFT\'s head aliases classifier/score excepted)', () => {
    expect(() => new LoraModel(load('gpt2_lm'), { modules_to_save: ['wpx'] })).toThrow(/modules_to_save: 'wpx' names no module/);
    expect(() => new LoraModel(load('gpt2_lm'), { modules_to_save: ['classifier'] })).not.toThrow();
  });
});

describe('errors', () => {
  it("a target that matches nothing names the model's layers", () => {
    expect(() => new LoraModel(load('gpt2_lm'), { target_modules: ['q_proj'] })).toThrow(/matched no linear (or convolution )?layer.*c_attn.*c_proj.*c_fc/s);
    expect(() => new LoraModel(load('llama_lm'), { target_modules: 'nothing\\.here' })).toThrow(/matched no linear (or convolution )?layer.*q_proj/s);
  });
  it('bad settings are refused with what was received', () => {
    expect(() => new LoraModel(load('gpt2_lm'), { r: 0 })).toThrow(/r: expected a number > 0 but received number 0/);
    expect(() => new LoraModel(load('gpt2_lm'), { lora_dropout: 1 })).toThrow(/lora_dropout/);
    const d = newDir();
    new LoraModel(load('gpt2_lm'), {}).saveAdapterSync(d);
    fs.writeFileSync(path.join(d, 'adapter_config.json'), JSON.stringify({ peft_type: 'PREFIX_TUNING' }));
    expect(() => LoraModel.fromPretrainedSync(load('gpt2_lm'), d)).toThrow(/holds a PREFIX_TUNING adapter, not LORA/);
    expect(() => LoraModel.fromPretrainedSync(load('gpt2_lm'), newDir())).toThrow(/no adapter_config.json/);
  });
  it('an adapter saved for another model is refused with the tensor and both shapes', () => {
    const d = newDir();
    const lora = new LoraModel(load('gpt2_lm'), { r: 4 });
    lora.saveAdapterSync(d);
    const cfg = JSON.parse(fs.readFileSync(path.join(d, 'adapter_config.json'), 'utf8'));
    fs.writeFileSync(path.join(d, 'adapter_config.json'), JSON.stringify({ ...cfg, r: 2 }));
    expect(() => LoraModel.fromPretrainedSync(load('gpt2_lm'), d)).toThrow(/lora_A.weight' is \[4,48\] but the layer expects \[2,48\]/);
    lora.dispose();
  });
});

describe('fused F.loraLinear gradients', () => {
  // y = x W^T + b + s (x A^T) B^T is linear in each of x, A, B (and W, b) separately, so a
  // central difference is exact up to f32 rounding: eps 0.05 keeps that rounding small.
  const cases = [
    { wInOut: false, M: 5, inF: 7, outF: 6, r: 3, bias: true },
    { wInOut: true, M: 4, inF: 6, outF: 9, r: 2, bias: false },
  ];
  for (const c of cases) {
    it(`matches finite differences and the unfused composition (${c.wInOut ? '[in, out]' : '[out, in]'})`, () => {
      const s = 1.7;
      const mk = (shape: number[], seed: number) => rand(shape, { seed, low: -1, high: 1 });
      const x = mk([c.M, c.inF], 1), A = mk([c.r, c.inF], 2), B = mk([c.outF, c.r], 3);
      const W = mk(c.wInOut ? [c.inF, c.outF] : [c.outF, c.inF], 4), b = c.bias ? mk([c.outF], 5) : null;
      const R = mk([c.M, c.outF], 6); // loss = sum(y * R)
      for (const t of [x, A, B]) t.requiresGrad = true;
      const fused = () => F.loraLinear(x, W, b, A, B, { scale: s, wInOut: c.wInOut });
      const unfused = () => F.add(F.linear(x, W, b, c.wInOut), F.scale(F.matmul(F.matmul(x, A, { transB: true }), B, { transB: true }), s));
      const grads = (f: () => Tensor<'f32'>) => {
        tidy(() => backward(F.sum(F.mul(f(), R))));
        const g = [x, A, B].map((t) => t.grad!.toTypedArray() as Float32Array);
        for (const t of [x, A, B]) {
          t.grad!.dispose();
          t.grad = null;
        }
        return g;
      };
      const gf = grads(fused), gu = grads(unfused);
      expect(noGrad(() => tidy(() => maxDiff(fused().toTypedArray() as Float32Array, unfused().toTypedArray() as Float32Array)))).toBeLessThan(1e-5);
      for (let k = 0; k < 3; k++) expect(maxDiff(gf[k]!, gu[k]!)).toBeLessThan(1e-5);
      // W gets no gradient (frozen), whatever the path
      expect(W.grad).toBeNull();
      // central differences on every element of x, A and B
      const lossAt = () => noGrad(() => tidy(() => F.sum(F.mul(fused(), R)).item()));
      const eps = 0.05;
      let worst = 0;
      [x, A, B].forEach((t, k) => {
        const v = t.toTypedArray() as Float32Array;
        for (let i = 0; i < v.length; i++) {
          const orig = v[i]!;
          v[i] = orig + eps;
          t.copyFrom(v);
          const up = lossAt();
          v[i] = orig - eps;
          t.copyFrom(v);
          const down = lossAt();
          v[i] = orig;
          t.copyFrom(v);
          const fd = (up - down) / (2 * eps);
          worst = Math.max(worst, Math.abs(fd - gf[k]![i]!) / (1 + Math.abs(fd)));
        }
      });
      expect(worst).toBeLessThan(2e-3);
      for (const t of [x, A, B, W, R]) t.dispose();
      b?.dispose();
    });
  }
});

describe('lora_dropout in training', () => {
  function run(seed: number, steps = 3): Float32Array[] {
    manualSeed(seed);
    const lora = new LoraModel(load('gpt2_lm'), { r: 4, lora_alpha: 8, lora_dropout: 0.3, init_lora_weights: false });
    lora.train();
    const opt = new AdamW(lora.trainableParameters(), { lr: 1e-2 });
    for (let i = 0; i < steps; i++) trainStep(lora, 'gpt2_lm', 'causal_lm', opt);
    const out = lora.trainableParameters().map(([, p]) => p.toTypedArray() as Float32Array);
    lora.dispose();
    return out;
  }
  it('is active in train mode only, and training is reproducible with a seed', () => {
    manualSeed(5);
    const lora = new LoraModel(load('gpt2_lm'), { r: 4, lora_alpha: 8, lora_dropout: 0.3, init_lora_weights: false });
    expect(lora.training).toBe(false); // loaded models start in eval mode, and so do the LoRA layers
    const e1 = logits(lora, 'gpt2_lm'), e2 = logits(lora, 'gpt2_lm');
    expect(maxDiff(e1, e2)).toBe(0);
    lora.train();
    const t1 = logits(lora, 'gpt2_lm'), t2 = logits(lora, 'gpt2_lm');
    expect(maxDiff(t1, e1)).toBeGreaterThan(1e-3);
    expect(maxDiff(t1, t2)).toBeGreaterThan(1e-3); // a fresh mask each call
    lora.dispose();
    const a = run(7), b = run(7), c = run(8);
    a.forEach((p, i) => expect(bitsEqual(p, b[i]!)).toBe(true));
    expect(a.some((p, i) => !bitsEqual(p, c[i]!))).toBe(true);
  });
});

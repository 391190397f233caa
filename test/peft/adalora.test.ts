/**
 * AdaLoRA: budget schedule and allocator replay against PEFT (fixtures written by
 * scripts/fixtures/make_adalora_fixtures.py), the native score kernel against a TS reference,
 * masking, the orthogonal regulariser (value against PEFT, gradient against float64 finite
 * differences), PEFT's folder loaded by us, and the scale / layout details.
 */
import { describe, expect, it } from 'vitest';
import * as path from 'node:path';
import * as os from 'node:os';
import * as fs from 'node:fs';
import { AdaLoraModel, RankAllocator, budgetSchedule, adaloraScale } from '../../lib/peft/adalora/index.js';
import { openSafetensorsSync } from '../../lib/io/safetensors.js';
import { f32FromRaw } from '../../lib/models/weights.js';
import { tensor } from '../../lib/tensor/creation.js';
import { Tensor } from '../../lib/tensor/tensor.js';
import { backward, noGrad } from '../../lib/autograd/tape.js';
import { manualSeed } from '../../lib/nn/random.js';
import { ADA_FIXTURES, gpt2, logitsOf, maxRel, readJson } from './adalora_helpers.js';

interface Schedule { initBudget: number; targetBudget: number; tinit: number; tfinal: number; deltaT: number; totalStep: number; budget: number[]; mask: boolean[] }
interface Trace {
  config: Record<string, unknown>;
  orth_reg: number;
  steps: { step: number; scores: Record<string, number[]> | null; rank_pattern: Record<string, boolean[]> | null; E: Record<string, number[]> }[];
  logits: number[];
}

describe('budget schedule', () => {
  it('matches PEFT budget_schedule at every step of five configs', () => {
    const { schedules } = readJson<{ schedules: Schedule[] }>(path.join(ADA_FIXTURES, 'schedule.json'));
    let checked = 0;
    for (const s of schedules) {
      for (let t = 0; t < s.budget.length; t++) {
        expect(budgetSchedule(t, s), `step ${t} of ${JSON.stringify({ ...s, budget: 0, mask: 0 })}`).toEqual({ budget: s.budget[t], mask: s.mask[t] });
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(1000);
  });

  it('is cubic between tinit and T - tfinal', () => {
    const o = { initBudget: 120, targetBudget: 40, tinit: 10, tfinal: 10, deltaT: 5, totalStep: 110 };
    expect(budgetSchedule(10, o)).toEqual({ budget: 120, mask: false });
    expect(budgetSchedule(55, o)).toEqual({ budget: Math.trunc(80 * 0.5 ** 3 + 40), mask: true });
    expect(budgetSchedule(56, o).mask).toBe(false);
    expect(budgetSchedule(100, o).budget).toBe(40);
    expect(budgetSchedule(101, o)).toEqual({ budget: 40, mask: true });
  });
});

/** Plain-number reference of PEFT's update_ipt + triplet score, in float64. */
class RefAllocator {
  ibar = new Map<string, Float64Array>();
  unc = new Map<string, Float64Array>();
  constructor(readonly b1: number, readonly b2: number) {}
  update(key: string, w: ArrayLike<number>, g: ArrayLike<number>): void {
    const ib = this.ibar.get(key) ?? new Float64Array(w.length), un = this.unc.get(key) ?? new Float64Array(w.length);
    for (let i = 0; i < w.length; i++) {
      const I = Math.abs(w[i]! * g[i]!);
      ib[i] = this.b1 * ib[i]! + (1 - this.b1) * I;
      un[i] = this.b2 * un[i]! + (1 - this.b2) * Math.abs(I - ib[i]!);
    }
    this.ibar.set(key, ib);
    this.unc.set(key, un);
  }
  score(key: string, i: number): number {
    return this.ibar.get(key)![i]! * this.unc.get(key)![i]!;
  }
  triplets(name: string, r: number, inF: number, outF: number): number[] {
    return Array.from({ length: r }, (_, i) => {
      let a = 0, b = 0;
      for (let j = 0; j < inF; j++) a += this.score(`${name}.A`, i * inF + j);
      for (let j = 0; j < outF; j++) b += this.score(`${name}.B`, j * r + i);
      return this.score(`${name}.E`, i) + a / inF + b / outF;
    });
  }
}

const randArr = (n: number, seed: number, scale = 1) => {
  let s = seed >>> 0;
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return ((s / 2 ** 32) * 2 - 1) * scale;
  });
};

describe('rank allocator (native kernels)', () => {
  const dims = [{ r: 3, inF: 7, outF: 5 }, { r: 5, inF: 11, outF: 4 }, { r: 2, inF: 3, outF: 9 }];
  function makeLayers() {
    return dims.map((d, li) => {
      const t = (shape: number[], seed: number) => {
        const x = tensor(randArr(shape[0]! * shape[1]!, seed, 0.7), shape);
        x.requiresGrad = true;
        return x;
      };
      return { name: `layer${li}`, A: t([d.r, d.inF], 10 * li + 1), E: t([d.r, 1], 10 * li + 2), B: t([d.outF, d.r], 10 * li + 3) };
    });
  }
  const setGrads = (layers: ReturnType<typeof makeLayers>, step: number) => {
    for (const [li, l] of layers.entries()) for (const [pi, p] of [l.A, l.E, l.B].entries()) p.grad = tensor(randArr(p.numel, 1000 * step + 10 * li + pi), p.shape as number[]);
  };

  it('EMA updates and triplet scores match a float64 reference over several steps', () => {
    const layers = makeLayers();
    const alloc = new RankAllocator(layers, { targetR: 1, tinit: 0, tfinal: 0, deltaT: 1, beta1: 0.85, beta2: 0.7, totalStep: 10 });
    const ref = new RefAllocator(0.85, 0.7);
    for (let step = 1; step <= 4; step++) {
      setGrads(layers, step);
      alloc.updateIpt();
      for (const l of layers) for (const [k, p] of [['A', l.A], ['E', l.E], ['B', l.B]] as const) ref.update(`${l.name}.${k}`, p.data() as Float32Array, p.grad!.data() as Float32Array);
    }
    const got = alloc.tripletScores();
    layers.forEach((l, i) => {
      const want = ref.triplets(l.name, dims[i]!.r, dims[i]!.inF, dims[i]!.outF);
      expect(maxRel(got.get(l.name)!, want, 1e-12)).toBeLessThan(2e-5);
    });
    expect(alloc.initBudget).toBe(10);
    expect(alloc.targetBudget).toBe(3);
  });

  it('masks exactly the lowest-scoring ranks across all layers and reports the pattern', () => {
    const layers = makeLayers();
    const alloc = new RankAllocator(layers, { targetR: 1, tinit: 0, tfinal: 0, deltaT: 1, beta1: 0.85, beta2: 0.85, totalStep: 10 });
    setGrads(layers, 1);
    alloc.updateIpt();
    const scores = alloc.tripletScores();
    const all = [...scores.values()].flatMap((s) => [...s]).sort((a, b) => a - b);
    const budget = 6;
    const threshold = all[10 - budget - 1]!;
    const eBefore = layers.map((l) => Array.from(l.E.data() as Float32Array));
    const pattern = alloc.maskToBudget(budget);
    let kept = 0;
    layers.forEach((l, i) => {
      const row = pattern[`${l.name}.lora_E`]!;
      const e = l.E.data() as Float32Array;
      const s = scores.get(l.name)!;
      row.forEach((k, j) => {
        expect(k).toBe(s[j]! > threshold);
        expect(e[j]).toBe(k ? eBefore[i]![j] : 0);
        if (k) kept++;
      });
    });
    expect(kept).toBe(budget);
    // the frozen pattern is re-applied to revived singular values
    noGrad(() => layers.forEach((l) => l.E.fill_(1)));
    alloc.maskUsingPattern(pattern);
    layers.forEach((l) => expect(Array.from(l.E.data() as Float32Array)).toEqual(pattern[`${l.name}.lora_E`]!.map((k) => (k ? 1 : 0))));
    alloc.dispose();
  });

  it('a budget in parameters keeps the best ranks whose parameters fit, cheap ranks cost less', () => {
    const layers = makeLayers();
    const alloc = new RankAllocator(layers, { targetR: 1, tinit: 0, tfinal: 0, deltaT: 1, beta1: 0.85, beta2: 0.85, totalStep: 10, budgetUnit: 'params' });
    const cost = dims.map((d) => d.inF + d.outF + 1); // 13, 16, 13 parameters per rank
    expect(alloc.initBudget).toBe(3 * 13 + 5 * 16 + 2 * 13);
    expect(alloc.targetBudget).toBe(1 * (12 + 15 + 12)); // LoRA r 1 on the same layers
    setGrads(layers, 1);
    alloc.updateIpt();
    const scores = alloc.tripletScores();
    // best first over all layers: [score, cost]
    const ranked = layers.flatMap((l, i) => [...scores.get(l.name)!].map((sc) => [sc, cost[i]!] as const)).sort((a, b) => b[0] - a[0]);
    for (const budget of [alloc.targetBudget, 60, 100, alloc.initBudget]) {
      let used = 0, threshold = -Infinity;
      for (const [sc, c] of ranked) {
        if (used + c > budget) { threshold = sc; break; }
        used += c;
      }
      const pattern = alloc.maskToBudget(budget);
      let keptCost = 0;
      layers.forEach((l, i) => {
        pattern[`${l.name}.lora_E`]!.forEach((k, j) => {
          expect(k).toBe(scores.get(l.name)![j]! > threshold);
          if (k) keptCost += cost[i]!;
        });
      });
      expect(keptCost).toBe(used);
      expect(keptCost).toBeLessThanOrEqual(budget);
    }
    alloc.dispose();
  });

  it('a missing gradient counts as zero sensitivity', () => {
    const layers = makeLayers();
    const alloc = new RankAllocator(layers, { targetR: 1, tinit: 0, tfinal: 0, deltaT: 1, beta1: 0.85, beta2: 0.85, totalStep: 10 });
    alloc.updateIpt();
    for (const s of alloc.tripletScores().values()) expect([...s].every((v) => v === 0)).toBe(true);
  });
});

describe('AdaLoRA model against PEFT', () => {
  const trace = readJson<Trace>(path.join(ADA_FIXTURES, 'trace.json'));
  const cfg = trace.config;

  function tracedModel(): { model: AdaLoraModel; file: ReturnType<typeof openSafetensorsSync> } {
    const model = new AdaLoraModel(gpt2(), { ...cfg, task_type: 'CAUSAL_LM' });
    const file = openSafetensorsSync(path.join(ADA_FIXTURES, 'trace.safetensors'));
    noGrad(() => {
      for (const { path: p, ad } of model.svdAdapters()) {
        for (const [k, t] of [['lora_A', ad.lora.A], ['lora_E', ad.E], ['lora_B', ad.lora.B]] as const) {
          const v = f32FromRaw(file.readTensor(`${p}.${k}`));
          t.copyFrom(v.data());
          v.dispose();
        }
      }
    });
    return { model, file };
  }

  it('uses PEFT scale alpha / (init_r + 1e-5) and PEFT tensor shapes', () => {
    expect(adaloraScale(8, 4)).toBeCloseTo(8 / 4.00001, 7);
    const { model, file } = tracedModel();
    file.close();
    const layers = model.svdAdapters();
    expect(layers.map((l) => l.path)).toEqual([
      'transformer.h.0.attn.c_attn', 'transformer.h.0.attn.c_proj', 'transformer.h.0.mlp.c_proj',
      'transformer.h.1.attn.c_attn', 'transformer.h.1.attn.c_proj', 'transformer.h.1.mlp.c_proj',
    ]);
    expect(layers[0]!.ad.lora.A.shape).toEqual([4, 48]);
    expect(layers[0]!.ad.E.shape).toEqual([4, 1]);
    expect(layers[0]!.ad.lora.B.shape).toEqual([144, 4]);
    expect(model.trainableParameters().length).toBe(18);
  });

  it('orthogonal regulariser equals PEFT loss term', () => {
    const { model, file } = tracedModel();
    file.close();
    const reg = model.orthRegularizer()!;
    expect(Math.abs(reg.item() - trace.orth_reg) / trace.orth_reg).toBeLessThan(1e-5);
  });

  it('replays update_and_allocate: same scores, rank patterns, masked E and logits as PEFT', () => {
    const { model, file } = tracedModel();
    const phases: string[] = [];
    for (const st of trace.steps) {
      noGrad(() => {
        for (const { path: p, ad } of model.svdAdapters()) {
          for (const [k, t] of [['lora_A', ad.lora.A], ['lora_E', ad.E], ['lora_B', ad.lora.B]] as const) {
            t.grad?.dispose();
            t.grad = f32FromRaw(file.readTensor(`step${st.step}.${p}.${k}`));
          }
        }
      });
      phases.push(model.updateAndAllocate(st.step).phase);
      if (st.scores) {
        const got = model.rankAllocator().tripletScores();
        for (const [p, want] of Object.entries(st.scores)) expect(maxRel(got.get(p)!, want, 1e-12), `${p} step ${st.step}`).toBeLessThan(1e-4);
      }
      expect(model.adaloraConfig().rank_pattern).toEqual(st.rank_pattern);
      for (const { path: p, ad } of model.svdAdapters()) {
        const e = Array.from(ad.E.data() as Float32Array);
        e.forEach((v, i) => expect(v).toBe(Math.fround(st.E[p]![i]!)));
      }
    }
    file.close();
    expect(phases).toEqual(['update', 'mask', 'mask', 'mask', 'mask', 'freeze', 'frozen', 'frozen']);
    expect(maxRel(logitsOf(model), trace.logits)).toBeLessThan(1e-4);
    // saving writes PEFT's pruned layout; loading it back gives the same logits
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ada-'));
    model.saveAdapterSync(dir);
    const f = openSafetensorsSync(path.join(dir, 'adapter_model.safetensors'));
    expect([...f.names].sort()).toEqual([...openSafetensorsSync(path.join(ADA_FIXTURES, 'peft_adapter', 'adapter_model.safetensors')).names].sort());
    expect(f.readTensor('base_model.model.transformer.h.0.attn.c_proj.lora_A').shape).toEqual([0, 48]);
    f.close();
    const back = AdaLoraModel.fromPretrainedSync(gpt2(), dir);
    expect(maxRel(logitsOf(back), trace.logits)).toBeLessThan(1e-4);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('loads the folder PEFT saved (pruned by rank_pattern) and reproduces its logits', () => {
    const model = AdaLoraModel.fromPretrainedSync(gpt2(), path.join(ADA_FIXTURES, 'peft_adapter'));
    expect(maxRel(logitsOf(model), trace.logits)).toBeLessThan(1e-4);
    const last = trace.steps[trace.steps.length - 1]!;
    expect(model.adaloraConfig().rank_pattern).toEqual(last.rank_pattern);
    // a pruned rank loads as zeros at its place; kept ranks at theirs
    for (const { path: p, ad } of model.svdAdapters()) {
      const e = Array.from(ad.E.data() as Float32Array);
      e.forEach((v, i) => expect(v).toBe(Math.fround(last.E[p]![i]!)));
    }
    // merged == unmerged
    const before = logitsOf(model);
    model.merge();
    expect(maxRel(logitsOf(model), before)).toBeLessThan(1e-4);
    model.unmerge();
  });
});

describe('orthogonal regulariser gradient', () => {
  it('matches float64 central differences of ||A A^T - I||_F and ||B^T B - I||_F', () => {
    manualSeed(7);
    const model = new AdaLoraModel(gpt2(), { init_r: 3, target_r: 1, total_step: 10, target_modules: ['c_proj'], orth_reg_weight: 0.3, layers_to_transform: [1] });
    const layers = model.svdAdapters();
    expect(layers.length).toBe(2);
    noGrad(() => {
      for (const [i, { ad }] of layers.entries()) {
        ad.lora.A.copyFrom(randArr(ad.lora.A.numel, 11 + i, 0.3));
        ad.lora.B.copyFrom(randArr(ad.lora.B.numel, 21 + i, 0.3));
      }
    });
    const reg = model.orthRegularizer()!;
    backward(reg);
    // float64 reference
    const mats = layers.flatMap(({ ad }) => [
      { t: ad.lora.A, rows: ad.lora.A.shape[0]!, cols: ad.lora.A.shape[1]!, gram: 'rows' as const },
      { t: ad.lora.B, rows: ad.lora.B.shape[0]!, cols: ad.lora.B.shape[1]!, gram: 'cols' as const },
    ]);
    const vals = mats.map((m) => Float64Array.from(m.t.data() as Float32Array));
    const f = (): number => {
      let total = 0;
      mats.forEach((m, mi) => {
        const v = vals[mi]!;
        const n = m.gram === 'rows' ? m.rows : m.cols;
        let s = 0;
        for (let i = 0; i < n; i++) {
          for (let j = 0; j < n; j++) {
            let d = 0;
            if (m.gram === 'rows') for (let k = 0; k < m.cols; k++) d += v[i * m.cols + k]! * v[j * m.cols + k]!;
            else for (let k = 0; k < m.rows; k++) d += v[k * m.cols + i]! * v[k * m.cols + j]!;
            s += (d - (i === j ? 1 : 0)) ** 2;
          }
        }
        total += Math.sqrt(s);
      });
      return (0.3 * total) / mats.length;
    };
    expect(Math.abs(reg.item() - f()) / f()).toBeLessThan(1e-5);
    const h = 1e-6;
    for (const [mi, m] of mats.entries()) {
      const g = m.t.grad!.data() as Float32Array;
      for (const idx of [0, 5, m.t.numel - 1]) {
        const v = vals[mi]!;
        const x0 = v[idx]!;
        v[idx] = x0 + h;
        const up = f();
        v[idx] = x0 - h;
        const down = f();
        v[idx] = x0;
        const fd = (up - down) / (2 * h);
        expect(Math.abs(g[idx]! - fd), `matrix ${mi} element ${idx}: ${g[idx]} vs ${fd}`).toBeLessThan(1e-4 * Math.max(1, Math.abs(fd)));
      }
    }
  });
});

describe('AdaLoRA layer forward', () => {
  it('equals base + x (B diag(E) A)^T * scale computed densely; E = 0 at init leaves the model unchanged', () => {
    const base = logitsOf(gpt2());
    const model = new AdaLoraModel(gpt2(), { init_r: 4, target_r: 2, total_step: 10 });
    expect(maxRel(logitsOf(model), base)).toBe(0);
    const { layer, ad } = model.svdAdapters()[0]!;
    noGrad(() => ad.E.copyFrom(Float32Array.from([0.5, -1, 2, 0.25])));
    const x = tensor(randArr(3 * 48, 5), [3, 48]);
    const y = noGrad(() => layer.forward(x).data() as Float32Array);
    const yBase = noGrad(() => layer.base_layer.forward(x).data() as Float32Array);
    const d = layer.deltaWeight('default').data() as Float32Array; // [out, in]
    const xv = x.data() as Float32Array;
    const want = new Float64Array(3 * 144);
    for (let m = 0; m < 3; m++) for (let o = 0; o < 144; o++) {
      let s = yBase[m * 144 + o]!;
      for (let i = 0; i < 48; i++) s += xv[m * 48 + i]! * d[o * 48 + i]!;
      want[m * 144 + o] = s;
    }
    expect(maxRel(y, want, 1e-3)).toBeLessThan(1e-5);
    expect(x instanceof Tensor).toBe(true);
  });

  it("init_lora_weights 'lora': A kaiming-uniform, B = 0, E = 1; the model starts unchanged and the file says true", () => {
    const base = logitsOf(gpt2());
    const model = new AdaLoraModel(gpt2(), { init_r: 4, target_r: 2, total_step: 10, init_lora_weights: 'lora' });
    expect(maxRel(logitsOf(model), base)).toBe(0);
    for (const { ad } of model.svdAdapters()) {
      const inF = ad.lora.A.shape[1]!;
      const a = ad.lora.A.data() as Float32Array;
      expect(a.every((v) => Math.abs(v) <= 1 / Math.sqrt(inF))).toBe(true);
      expect(a.some((v) => v !== 0)).toBe(true);
      expect((ad.lora.B.data() as Float32Array).every((v) => v === 0)).toBe(true);
      expect(Array.from(ad.E.data() as Float32Array)).toEqual([1, 1, 1, 1]);
    }
    // B gets a gradient at once (PEFT's init gives A and B none until E moves)
    const inputIds = tensor(Int32Array.from([5, 9, 2, 7]), [1, 4], 'i32') as Tensor<'i32'>;
    const attentionMask = tensor(Int32Array.from([1, 1, 1, 1]), [1, 4], 'i32') as Tensor<'i32'>;
    backward(model.forward({ inputIds, attentionMask }).logits.sum());
    const { ad } = model.svdAdapters()[0]!;
    expect((ad.lora.B.grad!.data() as Float32Array).some((v) => v !== 0)).toBe(true);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ada-lorainit-'));
    model.saveAdapterSync(dir);
    expect(JSON.parse(fs.readFileSync(path.join(dir, 'adapter_config.json'), 'utf8')).init_lora_weights).toBe(true);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('refuses bad configs with the reason', () => {
    expect(() => new AdaLoraModel(gpt2(), { init_r: 4, target_r: 8, total_step: 10 })).toThrow(/target_r/);
    expect(() => new AdaLoraModel(gpt2(), { init_r: 4, target_r: 2, total_step: 10, tinit: 6, tfinal: 4 })).toThrow(/budgeting phase/);
    expect(() => new AdaLoraModel(gpt2(), { beta1: 1, total_step: 10 })).toThrow(/beta1/);
    expect(() => new AdaLoraModel(gpt2(), { budget_unit: 'bytes', total_step: 10 })).toThrow(/budget_unit: expected one of "rank" \| "params" but received string "bytes"/);
    expect(() => new AdaLoraModel(gpt2(), { init_lora_weights: 'pissa', total_step: 10 })).toThrow(/init_lora_weights: expected one of true, false, "lora" but received string "pissa"/);
    const m = new AdaLoraModel(gpt2(), { init_r: 4, target_r: 2 });
    expect(() => m.saveAdapterSync(path.join(os.tmpdir(), 'never'))).toThrow(/total_step/);
  });
});

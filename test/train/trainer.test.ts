/**
 * The Trainer on a tiny GPT-2 built from the fixture config (48 wide, 2 layers, vocab 97):
 * loss goes down, gradient accumulation equals the big batch, resume is exact, checkpoints are
 * atomic, a resume with another config is refused, NaN stops training with the last checkpoint
 * intact, bad labels / empty data are refused, eval metrics on a known case, and native memory
 * stays flat over a 1,000-step loop.
 */
import { describe, it, expect, afterEach } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import '../../lib/index.js';
import '../../lib/peft/index.js';
import { GPT2, parseGPT2Config, loadPretrainedSync } from '../../lib/models/index.js';
import { LoraModel } from '../../lib/peft/lora/model.js';
import { Module } from '../../lib/nn/module.js';
import { Linear } from '../../lib/nn/layers.js';
import * as F from '../../lib/autograd/ops.js';
import { backward } from '../../lib/autograd/tape.js';
import { tidy } from '../../lib/tensor/scope.js';
import { full, rand, tensor, zeros } from '../../lib/tensor/creation.js';
import type { Tensor } from '../../lib/tensor/tensor.js';
import { native } from '../../lib/native.js';
import { manualSeed } from '../../lib/nn/random.js';
import { AdamW } from '../../lib/train/optimizer.js';
import { Trainer, configDiff, type TrainExample, type TrainSettings } from '../../lib/train/trainer.js';
import { ClassificationMetrics } from '../../lib/train/losses.js';
import { readMetrics } from '../../lib/train/metrics_log.js';
import { openSafetensorsSync } from '../../lib/io/safetensors.js';
import type { ModelInputs, ModelOutput } from '../../lib/models/common.js';
import { dir as modelDir } from '../models/helpers.js';

const dirs: string[] = [];
afterEach(() => {
  while (dirs.length) fs.rmSync(dirs.pop()!, { recursive: true, force: true });
});
const newDir = () => {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'tunekit-trainer-'));
  dirs.push(d);
  return d;
};

const FIXTURE_CONFIG = JSON.parse(fs.readFileSync(path.join(modelDir('gpt2_lm'), 'config.json'), 'utf8')) as Record<string, unknown>;

/** A fresh tiny GPT-2 (random init from the seed), every parameter trainable. */
function tinyGpt2(seed: number, dropout = 0): GPT2 {
  manualSeed(seed);
  const cfg = parseGPT2Config({ ...FIXTURE_CONFIG, resid_pdrop: dropout, embd_pdrop: dropout, attn_pdrop: dropout });
  const m = new GPT2(cfg, 'causal_lm');
  m.requiresGrad_(true);
  return m;
}

/** n sequences of a learnable pattern (t, t+1, t+2, ... mod 96, + 1), lengths minLen..maxLen. */
function lmData(n: number, minLen = 6, maxLen = 10, seed = 1): TrainExample[] {
  let s = seed;
  const rnd = () => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648);
  return Array.from({ length: n }, () => {
    const len = minLen + Math.floor(rnd() * (maxLen - minLen + 1));
    const start = Math.floor(rnd() * 96);
    const ids = Array.from({ length: len }, (_, i) => ((start + i) % 96) + 1);
    return { inputIds: ids, labels: ids };
  });
}

const quiet: Partial<TrainSettings> = { logEvery: 1, maxGradNorm: 1, schedule: 'constant' as TrainSettings['schedule'] };
const paramsOf = (m: { namedParameters(): [string, Tensor][] }) => new Map(m.namedParameters().map(([n, p]) => [n, p.toTypedArray() as Float32Array]));
function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
  return d;
}

describe('Trainer', () => {
  it('loss decreases on a learnable pattern', async () => {
    const model = tinyGpt2(1);
    const losses: number[] = [];
    const t = new Trainer({
      model, task: 'causal_lm', train: lmData(16), padTokenId: 0, progress: 'none',
      settings: { ...quiet, maxSteps: 25, batchSize: 8, lr: 3e-3 }, callbacks: { onStep: (i) => losses.push(i.loss) },
    });
    const res = await t.fit();
    expect(res.steps).toBe(25);
    expect(res.status).toBe('completed');
    const tail = losses.slice(-3).reduce((a, b) => a + b) / 3;
    expect(tail).toBeLessThan(losses[0]! * 0.6);
    model.dispose();
  });

  it("the progress line's epoch is fractional (epochs done), as transformers logs it", async () => {
    const model = tinyGpt2(2);
    const lines: string[] = [];
    // 16 examples in batches of 4: 4 steps an epoch, 2 epochs
    await new Trainer({ model, task: 'causal_lm', train: lmData(16), padTokenId: 0, log: (l) => lines.push(l), settings: { ...quiet, epochs: 2, batchSize: 4 } }).fit();
    const epochs = lines.map((l) => /epoch ([\d.]+)/.exec(l)?.[1]).filter((e) => e !== undefined);
    expect(epochs).toEqual(['0.25', '0.50', '0.75', '1.00', '1.25', '1.50', '1.75', '2.00']);
    model.dispose();
  });

  it('trainSeconds is the steps alone: evaluation and checkpoint time are reported apart (as the PEFT reference times its loop)', async () => {
    const model = tinyGpt2(3);
    const d = newDir();
    let stepMs = 0;
    const t0 = performance.now();
    const res = await new Trainer({
      model, task: 'causal_lm', train: lmData(16), eval: lmData(64, 9), padTokenId: 0, progress: 'none', outputDir: d,
      settings: { ...quiet, maxSteps: 4, batchSize: 8, evalEvery: 2 }, callbacks: { onStep: (i) => { stepMs += i.stepSeconds * 1000; } },
    }).fit();
    const wallMs = performance.now() - t0;
    expect(res.evals.length).toBe(2);
    expect(res.evalSeconds).toBeGreaterThan(0);
    expect(res.saveSeconds).toBeGreaterThan(0);
    // the parts add up to no more than the fit's wall time, and the training part holds the steps
    expect((res.trainSeconds + res.evalSeconds + res.saveSeconds) * 1000).toBeLessThanOrEqual(wallMs + 1);
    expect(res.trainSeconds * 1000).toBeGreaterThanOrEqual(stepMs - 1);
    expect(res.trainSeconds * 1000).toBeLessThan(wallMs - (res.evalSeconds + res.saveSeconds) * 1000 + 1);
    model.dispose();
  });

  it('gradient accumulation 2 x batch 4 equals batch 8 on the first step', async () => {
    // equal-length sequences: every micro-batch has the same number of targets, so the mean of
    // the two micro-batch means is the mean over all 8
    const data = lmData(8, 8, 8, 3);
    const gradsOf = async (batchSize: number, gradAccum: number) => {
      const model = tinyGpt2(2);
      let grads: Map<string, Float32Array> | null = null;
      const t = new Trainer({
        model, task: 'causal_lm', train: data, padTokenId: 0, progress: 'none',
        settings: { ...quiet, maxSteps: 1, batchSize, gradAccum, maxGradNorm: 0 },
        callbacks: { afterOptimizerStep: () => (grads = new Map(model.namedParameters().map(([n, p]) => [n, p.grad!.toTypedArray() as Float32Array]))) },
      });
      await t.fit();
      model.dispose();
      return grads!;
    };
    const big = await gradsOf(8, 1), acc = await gradsOf(4, 2);
    let worst = 0, scale = 0;
    for (const [n, g] of big) {
      worst = Math.max(worst, maxDiff(g, acc.get(n)!));
      scale = Math.max(scale, maxDiff(g, new Float32Array(g.length)));
    }
    expect(scale).toBeGreaterThan(1e-3);
    expect(worst).toBeLessThan(1e-5);
  });

  describe.each(['full', 'lora'] as const)('resume (%s)', (kind) => {
    // dropout on (base and lora_dropout): the RNG stream must be restored too
    const build = () => {
      if (kind === 'full') return tinyGpt2(4, 0.1);
      manualSeed(4);
      const { model: base } = loadPretrainedSync(modelDir('gpt2_lm'));
      return new LoraModel(base, { r: 4, lora_alpha: 8, lora_dropout: 0.1, target_modules: ['c_attn', 'c_fc'] });
    };
    const data = lmData(20, 6, 10, 5);
    const settings = { ...quiet, maxSteps: 6, batchSize: 4, lr: 2e-3, schedule: 'linear' as const, warmupSteps: 2, saveEvery: 3 };
    const runConfig = { model: 'tiny', training: { lr: 2e-3 } };

    it('N steps straight == N/2, checkpoint, new Trainer, resume N/2 (bit for bit)', async () => {
      const dA = newDir();
      const a = build();
      const lossesA: number[] = [];
      await new Trainer({ model: a, task: 'causal_lm', train: data, padTokenId: 0, progress: 'none', settings, outputDir: dA, runConfig, callbacks: { onStep: (i) => lossesA.push(i.loss) } }).fit();
      const want = paramsOf(a);

      const dB = newDir();
      const b1 = build();
      const crash = new Trainer({
        model: b1, task: 'causal_lm', train: data, padTokenId: 0, progress: 'none', settings, outputDir: dB, runConfig,
        callbacks: { onStep: (i) => { if (i.step === 5) throw new Error('simulated crash at step 5'); } },
      });
      await expect(crash.fit()).rejects.toThrow(/simulated crash/);
      // the crash left the step-3 checkpoint (written atomically: no temporary folder) and metrics up to step 4
      expect(fs.readdirSync(dB).filter((f) => f.startsWith('.checkpoint'))).toEqual([]);
      expect(JSON.parse(fs.readFileSync(path.join(dB, 'checkpoint', 'trainer_state.json'), 'utf8')).step).toBe(3);
      expect(readMetrics(path.join(dB, 'metrics.jsonl')).map((r) => r.step)).toEqual([1, 2, 3, 4]);
      b1.dispose();

      const b2 = build(); // fresh weights: the checkpoint must overwrite them
      manualSeed(999); // and a different RNG state: the checkpoint's must be restored
      const lossesB: number[] = [];
      const res = await new Trainer({ model: b2, task: 'causal_lm', train: data, padTokenId: 0, progress: 'none', settings, outputDir: dB, runConfig, callbacks: { onStep: (i) => lossesB.push(i.loss) } })
        .fit({ resumeFrom: path.join(dB, 'checkpoint') });
      expect(res.steps).toBe(6);
      expect(lossesB).toEqual(lossesA.slice(3));
      const got = paramsOf(b2);
      expect([...got.keys()]).toEqual([...want.keys()]);
      for (const [n, v] of want) expect(maxDiff(got.get(n)!, v), n).toBe(0);
      // metrics.jsonl was cut back to the checkpoint on resume: each step once
      const steps = readMetrics(path.join(dB, 'metrics.jsonl')).filter((r) => r.split === 'train').map((r) => r.step);
      expect(steps).toEqual([1, 2, 3, 4, 5, 6]);
      const lossA = readMetrics(path.join(dA, 'metrics.jsonl')).map((r) => r.loss);
      expect(readMetrics(path.join(dB, 'metrics.jsonl')).map((r) => r.loss)).toEqual(lossA);
      // the final checkpoint's layout
      const ck = fs.readdirSync(path.join(dB, 'checkpoint')).sort();
      expect(ck).toEqual([kind === 'lora' ? 'adapter' : 'model', 'manifest.json', 'optimizer.safetensors', 'trainer_state.json'].sort());
      expect(fs.readdirSync(dB).filter((f) => f.startsWith('.'))).toEqual([]);
      a.dispose();
      b2.dispose();
    });

    it('a resume with a different config is refused, showing the difference', async () => {
      const d = newDir();
      const m = build();
      await new Trainer({ model: m, task: 'causal_lm', train: data, padTokenId: 0, progress: 'none', settings: { ...settings, maxSteps: 1 }, outputDir: d, runConfig }).fit();
      const other = new Trainer({ model: m, task: 'causal_lm', train: data, padTokenId: 0, progress: 'none', settings, outputDir: d, runConfig: { ...runConfig, training: { lr: 1e-3 } } });
      await expect(other.fit({ resumeFrom: path.join(d, 'checkpoint') })).rejects.toThrow(/different config:\s+training\.lr: checkpoint has 0\.002, this run has 0\.001/);
      expect(configDiff({ a: 1, output_dir: 'x', b: { c: [1, 2] } }, { a: 1, output_dir: 'y', b: { c: [1, 3] } })).toEqual(['b.c: checkpoint has [1,2], this run has [1,3]']);
      m.dispose();
    });
  });

  describe('NaN stops training with the last good checkpoint intact', () => {
    const cases: [string, Partial<TrainSettings>, boolean][] = [
      ['a huge learning rate', { lr: 1e30 }, false],
      ['a hook that injects NaN into the loss', { lr: 1e-3 }, true],
    ];
    for (const [what, s, inject] of cases) {
      it(what, async () => {
        const d = newDir();
        const model = tinyGpt2(6);
        let step = 0;
        const t = new Trainer({
          model, task: 'causal_lm', train: lmData(16), padTokenId: 0, progress: 'none', outputDir: d,
          settings: { ...quiet, maxSteps: 8, batchSize: 4, saveEvery: 1, maxGradNorm: 0, ...s },
          callbacks: {
            onStep: (i) => (step = i.step),
            extraLoss: inject ? () => (step >= 2 ? full([], NaN, 'f32') : null) : undefined,
          },
        });
        const err = await t.fit().catch((e) => e);
        expect(err.code).toBe('ERR_NAN');
        expect(err.message).toMatch(/became (NaN|Infinity|-Infinity) at step \d/);
        const failedAt = Number(/at step (\d+)/.exec(err.message)![1]);
        expect(failedAt).toBeGreaterThan(1);
        const ck = path.join(d, 'checkpoint');
        expect(JSON.parse(fs.readFileSync(path.join(ck, 'trainer_state.json'), 'utf8')).step).toBe(failedAt - 1);
        expect(err.message).toContain(`the last good checkpoint, step ${failedAt - 1}, is kept in ${ck}`);
        const r = openSafetensorsSync(path.join(ck, 'model', 'model.safetensors'));
        try {
          expect(r.names.length).toBeGreaterThan(0);
        } finally {
          r.close();
        }
        // the checkpoint loads into a fresh trainer
        const again = new Trainer({ model: tinyGpt2(7), task: 'causal_lm', train: lmData(16), padTokenId: 0, progress: 'none', settings: { ...quiet, maxSteps: 8, batchSize: 4 } });
        await again.loadCheckpoint(ck);
        // the blocking form restores the same weights
        const model2 = tinyGpt2(8);
        const again2 = new Trainer({ model: model2, task: 'causal_lm', train: lmData(16), padTokenId: 0, progress: 'none', settings: { ...quiet, maxSteps: 8, batchSize: 4 } });
        again2.loadCheckpointSync(ck);
        const w = (m: typeof model) => m.namedParameters().map(([n, p]) => [n, Array.from(p.toTypedArray() as Float32Array)]);
        expect(w(model2)).toEqual(w(again.model as typeof model));
        again.dispose(); again2.dispose(); model2.dispose();
        expect(fs.readdirSync(d).filter((f) => f.startsWith('.checkpoint'))).toEqual([]);
        model.dispose();
      });
    }
  });

  it('NaN with save_every 0 before the first epoch ends says that no checkpoint exists (and none does)', async () => {
    const d = newDir();
    const model = tinyGpt2(6);
    let step = 0;
    const t = new Trainer({
      model, task: 'causal_lm', train: lmData(16), padTokenId: 0, progress: 'none', outputDir: d,
      settings: { ...quiet, maxSteps: 8, batchSize: 4, saveEvery: 0, maxGradNorm: 0 },
      callbacks: { onStep: (i) => (step = i.step), extraLoss: () => (step >= 2 ? full([], NaN, 'f32') : null) },
    });
    const err = await t.fit().catch((e) => e);
    expect(err.code).toBe('ERR_NAN');
    expect(err.message).toMatch(/loss became NaN at step 3; training stopped \(no checkpoint of this run was written before it: save_every 0 writes one at the end of each epoch\)/);
    expect(err.message).not.toMatch(/kept/);
    expect(fs.readdirSync(d).filter((f) => f.includes('checkpoint'))).toEqual([]);
    model.dispose();
  });

  describe('every 0 means at the end of each epoch', () => {
    // 8 examples in batches of 4: an epoch is 2 steps
    const data = lmData(8, 6, 8, 11);
    const evalSteps = async (settings: Partial<TrainSettings>) => {
      const model = tinyGpt2(12);
      const t = new Trainer({ model, task: 'causal_lm', train: data, eval: data.slice(0, 3), padTokenId: 0, progress: 'none', settings: { ...quiet, batchSize: 4, ...settings } });
      const res = await t.fit();
      model.dispose();
      return res.evals.map((e) => e.step);
    };

    it('eval_every 0: a 3-epoch run evaluates after each epoch', async () => {
      expect(await evalSteps({ epochs: 3, evalEvery: 0 })).toEqual([2, 4, 6]);
      // gradient accumulation 3: step 1 = e0b0 e0b1 e1b0, step 2 = e1b1 e2b0 e2b1; a step in
      // which an epoch ends evaluates once
      expect(await evalSteps({ epochs: 3, evalEvery: 0, gradAccum: 3 })).toEqual([1, 2]);
      // a step count: the last step always evaluates, epochs don't
      expect(await evalSteps({ epochs: 3, evalEvery: 4 })).toEqual([4, 6]);
    });

    it('save_every 0: a checkpoint at the end of each epoch', async () => {
      for (const [crashAt, saved] of [[2, null], [3, 2], [5, 4]] as const) {
        const d = newDir();
        const model = tinyGpt2(13);
        const t = new Trainer({
          model, task: 'causal_lm', train: data, padTokenId: 0, progress: 'none', outputDir: d, settings: { ...quiet, batchSize: 4, epochs: 3, saveEvery: 0 },
          // onStep runs before the step's save: a crash there loses that step's checkpoint
          callbacks: { onStep: (i) => { if (i.step === crashAt) throw new Error('crash'); } },
        });
        await expect(t.fit()).rejects.toThrow('crash');
        const state = path.join(d, 'checkpoint', 'trainer_state.json');
        if (saved === null) expect(fs.existsSync(state)).toBe(false);
        else expect(JSON.parse(fs.readFileSync(state, 'utf8')).step, `crash at ${crashAt}`).toBe(saved);
        model.dispose();
      }
    });
  });

  it('the optimizer state is released when fit() ends: native memory is flat across trainers; a second fit() is refused', async () => {
    const model = tinyGpt2(14);
    const data = lmData(8);
    const run = async (outcome: 'ok' | 'throws') => {
      const t = new Trainer({
        model, task: 'causal_lm', train: data, padTokenId: 0, progress: 'none', settings: { ...quiet, maxSteps: 3, batchSize: 4 },
        callbacks: { onStep: (i) => { if (outcome === 'throws' && i.step === 2) throw new Error('boom'); } },
      });
      if (outcome === 'ok') await t.fit();
      else await expect(t.fit()).rejects.toThrow('boom');
      return t;
    };
    await run('ok'); // warm: caches the model keeps between forwards
    const live0 = native.memoryStats().liveBytes;
    const t = await run('ok');
    expect(native.memoryStats().liveBytes).toBe(live0);
    await run('throws');
    expect(native.memoryStats().liveBytes).toBe(live0);
    await expect(t.fit()).rejects.toMatchObject({ code: 'ERR_STATE', message: expect.stringMatching(/fit\(\) already ran on this Trainer/) });
    expect(() => t.optimizer).toThrow(/optimizer state of this Trainer was released/);
    // a Trainer used only to evaluate allocates no optimizer state at all
    const evalOnly = new Trainer({ model, task: 'causal_lm', train: data, eval: data, padTokenId: 0, progress: 'none' });
    evalOnly.evaluate();
    expect(native.memoryStats().liveBytes).toBe(live0);
    model.dispose();
  });

  it('refuses an empty dataset and out-of-range labels', async () => {
    const model = tinyGpt2(8);
    expect(() => new Trainer({ model, task: 'causal_lm', train: [], padTokenId: 0 })).toThrow(/training set is empty/);
    const bad = new Trainer({ model, task: 'causal_lm', train: [{ inputIds: [1, 2, 3], labels: [1, 2, 300] }], padTokenId: 0, progress: 'none', settings: { maxSteps: 1 } });
    await expect(bad.fit()).rejects.toThrow(/label 300 is out of range for 97 classes/);
    const { model: cls } = loadPretrainedSync(modelDir('gpt2_seqcls'), { task: 'seq_cls' });
    cls.requiresGrad_(true);
    const badCls = new Trainer({ model: cls, task: 'seq_cls', train: [{ inputIds: [1, 2], label: 3 }], padTokenId: 0, progress: 'none', settings: { maxSteps: 1 } });
    await expect(badCls.fit()).rejects.toMatchObject({ code: 'ERR_VALUE', message: 'label 3 is out of range for 3 classes' });
    model.dispose();
    cls.dispose();
  });

  it('evaluate: accuracy and macro F1 on a known confusion matrix', () => {
    // a stand-in classifier that predicts the class given by the first token
    class FirstToken extends Module {
      readonly task = 'seq_cls' as const;
      readonly config = { numLabels: 3 } as GPT2['config'];
      constructor() {
        super();
        this.param('w', zeros([1]));
        this.namedParameters()[0]![1].requiresGrad = true;
      }
      forward(inputs: ModelInputs): ModelOutput {
        const ids = inputs.inputIds!.toArray();
        const [B, T] = inputs.inputIds!.shape as [number, number];
        const logits = new Float32Array(B * 3);
        for (let b = 0; b < B; b++) logits[b * 3 + ids[b * T]!] = 5;
        const out = tensor(logits, [B, 3]) as Tensor<'f32'>;
        return { logits: out, hidden: out };
      }
    }
    const preds = [0, 0, 1, 1, 2, 2, 1], gold = [0, 1, 1, 1, 2, 0, 1];
    const ex: TrainExample[] = preds.map((p, i) => ({ inputIds: [p, 4, 4], label: gold[i]! }));
    const t = new Trainer({ model: new FirstToken() as never, task: 'seq_cls', train: ex, eval: ex, padTokenId: 0, progress: 'none', settings: { evalBatchSize: 3 } });
    const r = t.evaluate();
    // class 0: tp 1 fp 1 fn 1 -> F1 1/2; class 1: tp 3 fp 0 fn 1 -> 6/7; class 2: tp 1 fp 1 fn 0 -> 2/3
    expect(r.count).toBe(7);
    expect(r.accuracy).toBeCloseTo(5 / 7, 12);
    expect(r.f1).toBeCloseTo((1 / 2 + 6 / 7 + 2 / 3) / 3, 12);
    const m = new ClassificationMetrics(3);
    preds.forEach((p, i) => m.add(p, gold[i]!));
    expect(m.f1(1)).toBeCloseTo(6 / 7, 12);
  });
});

describe('native memory', () => {
  class MLP extends Module {
    fc1 = this.module('fc1', new Linear(16, 32));
    fc2 = this.module('fc2', new Linear(32, 4));
    forward(x: Tensor): Tensor<'f32'> {
      return this.fc2.forward(F.relu(this.fc1.forward(x)));
    }
  }

  it('a 1,000-step training loop of a small MLP keeps native live bytes flat', () => {
    // liveBytes counts native storage, which dispose()/tidy free at once (no GC involved). The
    // loop reads only loss.item(), a JS-owned copy; Tensor.data() would hand out a view on
    // native memory that lives until GC, so it is kept out of the loop.
    manualSeed(9);
    const model = new MLP();
    const opt = new AdamW(model.trainableParameters(), { lr: 1e-2 });
    const x = rand([8, 16], { seed: 1 });
    const y = tensor(Int32Array.from([0, 1, 2, 3, 0, 1, 2, 3]), [8], 'i32') as Tensor<'i32'>;
    let first = 0, after10 = 0;
    for (let step = 1; step <= 1000; step++) {
      const loss = tidy(() => {
        const l = F.crossEntropy(model.forward(x), y);
        backward(l);
        return l.item();
      });
      if (step === 1) first = loss;
      opt.step();
      model.zeroGrad();
      if (step === 10) after10 = native.memoryStats().liveBytes;
    }
    (globalThis as { gc?: () => void }).gc?.();
    const end = native.memoryStats().liveBytes;
    expect(end).toBe(after10);
    const final = tidy(() => F.crossEntropy(model.forward(x), y).item());
    expect(final).toBeLessThan(first * 0.2); // it did learn
    x.dispose();
    y.dispose();
  });
});

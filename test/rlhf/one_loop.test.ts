/**
 * What the RLHF objectives get from the one Trainer beyond checkpoints (resume.test.ts):
 * gradient accumulation (reward: 2 x 4 pairs gives the gradient of 8; PPO: a rollout of
 * batch_size x grad_accum prompts, each minibatch split into micro-batches), early stopping on a
 * named eval figure (and a clear error for a figure the objective does not report), the NaN stop
 * naming the checkpoint kept, and eval cadence with the before-training evaluation.
 */
import { describe, it, expect, afterEach } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import '../../lib/index.js';
import '../../lib/peft/index.js';
import { loadPretrainedSync } from '../../lib/models/index.js';
import { LoraModel } from '../../lib/peft/lora/model.js';
import { full } from '../../lib/tensor/creation.js';
import type { Tensor } from '../../lib/tensor/tensor.js';
import { manualSeed } from '../../lib/nn/random.js';
import { Rng } from '../../lib/data/rng.js';
import type { PreferenceExample } from '../../lib/data/types.js';
import { RewardTrainer } from '../../lib/rlhf/reward.js';
import { DpoTrainer } from '../../lib/rlhf/dpo.js';
import { PpoTrainer } from '../../lib/rlhf/ppo.js';
import { dir } from '../models/helpers.js';

const PAD = 0;
const dirs: string[] = [];
afterEach(() => {
  while (dirs.length) fs.rmSync(dirs.pop()!, { recursive: true, force: true });
});
const newDir = () => {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'tunekit-one-loop-'));
  dirs.push(d);
  return d;
};

/** Pairs whose chosen answer uses tokens 10-19 and rejected 40-49, after a random prompt. */
function pairs(n: number, seed: number): PreferenceExample[] {
  const rng = new Rng(seed);
  const pick = (lo: number, k: number) => Array.from({ length: k }, () => lo + rng.int(10));
  return Array.from({ length: n }, () => ({ promptIds: [1, ...pick(60, 2 + rng.int(3))], chosenIds: [...pick(10, 2 + rng.int(3)), 2], rejectedIds: [...pick(40, 2 + rng.int(3)), 2] }));
}
const lora = (task: 'seq_cls' | 'causal_lm') => {
  manualSeed(11);
  const { model } = loadPretrainedSync(dir('gpt2_lm'), task === 'seq_cls' ? { task, numLabels: 1 } : {});
  return new LoraModel(model, { r: 4, lora_alpha: 8, target_modules: ['c_attn', 'c_proj'] });
};

describe('gradient accumulation', () => {
  it('reward: 2 micro-batches of 4 pairs give the gradient of one batch of 8', async () => {
    const grads = async (batchSize: number, gradAccum: number) => {
      const model = lora('seq_cls');
      let g: Float32Array[] = [];
      await new RewardTrainer({
        model, train: pairs(16, 1), padTokenId: PAD, progress: 'none', settings: { batchSize, gradAccum, maxSteps: 1, maxGradNorm: 0 },
        callbacks: { afterOptimizerStep: () => (g = model.trainableParameters().map(([, p]) => (p.grad!.toTypedArray() as Float32Array).slice())) },
      }).fit();
      return g;
    };
    const big = await grads(8, 1), accumulated = await grads(4, 2);
    let worst = 0, scale = 0;
    big.forEach((a, i) => a.forEach((v, j) => { worst = Math.max(worst, Math.abs(v - accumulated[i]![j]!)); scale = Math.max(scale, Math.abs(v)); }));
    expect(scale).toBeGreaterThan(1e-4);
    expect(worst / scale).toBeLessThan(1e-5);
  });

  it('PPO: a rollout of batch_size x grad_accum prompts, the same rollout as one big batch, minibatches split into micro-batches', async () => {
    const reward = (_q: number[][], r: number[][]) => r.map((x) => x.filter((t) => t >= 10 && t < 30).length / x.length);
    const rng = new Rng(3);
    const train = Array.from({ length: 16 }, () => [1, 60 + rng.int(10), 60 + rng.int(10)]);
    const run = async (batchSize: number, gradAccum: number) => {
      const steps: { score: number; updates: number; tokens: number }[] = [];
      await new PpoTrainer({
        policy: lora('causal_lm'), reward, padTokenId: PAD, eosTokenId: null, maxNewTokens: 3, ppoEpochs: 2, seed: 4, train,
        settings: { batchSize, gradAccum, maxSteps: 2 }, progress: 'none', callbacks: { onStep: (i) => steps.push({ score: i.figures.score!, updates: i.updates, tokens: i.tokens }) },
      }).fit();
      return steps;
    };
    const big = await run(8, 1), accumulated = await run(4, 2);
    // 8 rollouts a step either way (the same prompts, the same sampling seed): 2 epochs x 4 minibatches of 2
    expect(accumulated.map((s) => s.updates)).toEqual([8, 16]);
    expect(accumulated[0]!.score).toBe(big[0]!.score);
    expect(accumulated[0]!.tokens).toBe(8 * (3 + 3));
  });
});

describe('early stopping and the NaN stop', () => {
  it('DPO stops when the named eval figure stops improving; the before-training evaluation counts', async () => {
    const run = async (mode: 'min' | 'max') => {
      const t = new DpoTrainer({
        model: lora('causal_lm'), train: pairs(24, 3), eval: pairs(8, 4), padTokenId: PAD, beta: 0.1, progress: 'none',
        settings: { batchSize: 8, lr: 5e-3, epochs: 3, evalEvery: 1, earlyStoppingPatience: 1, earlyStoppingMetric: 'eval_rewards/margins', earlyStoppingMode: mode },
      });
      return t.fit();
    };
    // margins start at 0 (policy == reference) and rise: watched as 'min', the first step is no improvement
    const stopped = await run('min');
    expect(stopped).toMatchObject({ status: 'early_stopped', steps: 1 });
    expect(stopped.evals.map((e) => e.step)).toEqual([0, 1]);
    expect(stopped.evals[1]!.result['rewards/margins']).toBeGreaterThan(0);
    const rising = await run('max');
    expect(rising).toMatchObject({ status: 'completed', steps: 9 });
  });

  it('a figure the objective does not report is ERR_CONFIG naming the ones it does', async () => {
    const t = new PpoTrainer({
      policy: lora('causal_lm'), reward: (_q, r) => r.map(() => 1), padTokenId: PAD, eosTokenId: null, maxNewTokens: 2, train: [[1, 60], [1, 61], [1, 62], [1, 63]], eval: [[1, 64]],
      settings: { batchSize: 2, maxSteps: 2, earlyStoppingPatience: 2, earlyStoppingMetric: 'eval_loss' }, progress: 'none',
    });
    await expect(t.fit()).rejects.toMatchObject({ code: 'ERR_CONFIG', message: expect.stringMatching(/early stopping watches 'loss', but the ppo evaluation reports score, kl, response_length, count/) });
  });

  it('reward: a NaN loss term stops the run with ERR_NAN naming the last good checkpoint, which is intact', async () => {
    const out = newDir();
    let step = 0;
    const t = new RewardTrainer({
      model: lora('seq_cls'), train: pairs(32, 5), padTokenId: PAD, progress: 'none', outputDir: out, settings: { batchSize: 4, maxSteps: 6, saveEvery: 2 },
      callbacks: { onStep: (i) => (step = i.step), extraLoss: () => (step >= 2 ? (full([], NaN, 'f32') as Tensor<'f32'>) : null) },
    });
    const err = await t.fit().catch((e) => e);
    expect(err.code).toBe('ERR_NAN');
    expect(err.message).toMatch(/loss became NaN at step 3; training stopped \(the last good checkpoint, step 2, is kept in \S+checkpoint\)/);
    const state = JSON.parse(fs.readFileSync(path.join(out, 'checkpoint', 'trainer_state.json'), 'utf8'));
    expect(state).toMatchObject({ step: 2, objective: { name: 'reward' } });
  });
});

/**
 * The optimisation loop shared by the reward model and DPO, which both train on preference
 * pairs: shuffled mini-batches per epoch (seeded), one loss per batch (chosen and rejected in
 * one forward), gradient clipping, AdamW with an LR schedule, metrics lines, periodic eval.
 */
import { join } from 'node:path';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { tidy } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import { backward } from '../autograd/tape.js';
import { TunekitError } from '../errors.js';
import { Rng, deriveSeed } from '../data/rng.js';
import type { PreferenceExample } from '../data/types.js';
import { AdamW, clipGradNorm } from '../train/optimizer.js';
import { makeLrSchedule, type ScheduleName } from '../train/lr_schedule.js';
import { MetricsLog, readMetrics } from '../train/metrics_log.js';
import { writeLossPlot } from '../train/plot.js';
import type { Module } from '../nn/module.js';

export interface PairTrainSettings {
  epochs: number;
  /** stop after this many optimizer steps (overrides epochs) */
  maxSteps?: number | null;
  /** preference pairs per step (each pair is two sequences) */
  batchSize: number;
  lr: number;
  weightDecay: number;
  warmupSteps: number;
  schedule: ScheduleName;
  /** 0: no clipping */
  maxGradNorm: number;
  /** evaluate every N steps (0: at the end only) */
  evalEvery: number;
  seed: number;
  logEvery: number;
}

export const DEFAULT_PAIR_SETTINGS: PairTrainSettings = {
  epochs: 1, maxSteps: null, batchSize: 8, lr: 1e-4, weightDecay: 0, warmupSteps: 0, schedule: 'linear', maxGradNorm: 1, evalEvery: 0, seed: 42, logEvery: 10,
};

export type PairMetrics = Record<string, number>;

export interface PairFitResult {
  steps: number;
  lastTrain: PairMetrics;
  evals: { step: number; metrics: PairMetrics }[];
  trainSeconds: number;
}

export interface PairLoopOptions {
  model: Module;
  train: PreferenceExample[];
  eval?: PreferenceExample[];
  settings: PairTrainSettings;
  outputDir?: string | null;
  /** the loss of a batch (differentiable) and its metrics */
  step(batch: PreferenceExample[]): { loss: Tensor<'f32'>; metrics: PairMetrics };
  evaluate(examples: PreferenceExample[]): PairMetrics;
  log?: (line: string) => void;
  /** title of the plot written to outputDir/loss.svg */
  title: string;
  /** eval field drawn on the plot's right axis */
  metricKey?: string;
}

/** Runs the loop; returns the last train metrics and every evaluation. */
export async function runPairLoop(o: PairLoopOptions): Promise<PairFitResult> {
  const s = o.settings;
  if (o.train.length === 0) throw new TunekitError('ERR_VALUE', 'the preference training set is empty');
  if (!Number.isInteger(s.batchSize) || s.batchSize < 1) throw new TunekitError('ERR_CONFIG', `batchSize must be a positive integer, got ${s.batchSize}`);
  const perEpoch = Math.ceil(o.train.length / s.batchSize);
  const total = s.maxSteps ?? Math.max(1, Math.floor(perEpoch * s.epochs));
  const params = o.model.trainableParameters();
  const opt = new AdamW(params, { lr: s.lr, weightDecay: s.weightDecay });
  const sched = makeLrSchedule({ schedule: s.schedule, warmupSteps: s.warmupSteps, totalSteps: total, baseLr: s.lr });
  const metricsLog = o.outputDir ? new MetricsLog(join(o.outputDir, 'metrics.jsonl')) : null;
  const evals: PairFitResult['evals'] = [];
  let lastTrain: PairMetrics = {};
  const t0 = performance.now();
  let order: number[] = [];
  let cursor = 0, epoch = 0;
  const nextBatch = (): PreferenceExample[] => {
    if (cursor >= order.length) {
      order = new Rng(deriveSeed(s.seed, epoch)).shuffle(Array.from(o.train.keys()));
      cursor = 0;
      epoch++;
    }
    const idx = order.slice(cursor, cursor + s.batchSize);
    cursor += s.batchSize;
    return idx.map((i) => o.train[i]!);
  };
  const doEval = (step: number) => {
    if (!o.eval?.length) return;
    const m = o.evaluate(o.eval);
    evals.push({ step, metrics: m });
    metricsLog?.append({ step, epoch: Math.max(0, epoch - 1), split: 'eval', ...m });
    o.log?.(`eval @ step ${step}: ${fmt(m)}`);
  };
  // dropout off throughout, as TRL's reward and DPO trainers (disable_dropout=True): the
  // reference and policy passes of DPO then see the same network
  const wasTraining = o.model.training;
  o.model.eval();
  try {
    for (let step = 1; step <= total; step++) {
      const batch = nextBatch();
      const metrics = tidy(() => {
        const { loss, metrics } = o.step(batch);
        const value = loss.item();
        if (!Number.isFinite(value)) throw new TunekitError('ERR_NAN', `loss became ${value} at step ${step}; try a lower learning rate`);
        backward(loss);
        return { loss: value, ...metrics };
      });
      const norm = clipGradNorm(params, s.maxGradNorm);
      const lr = sched.lrAt(step - 1);
      opt.step(lr);
      opt.zeroGrad();
      lastTrain = { ...metrics, grad_norm: norm, lr };
      if (step % s.logEvery === 0 || step === total) {
        metricsLog?.append({ step, epoch: epoch - 1, split: 'train', ...lastTrain });
        o.log?.(`step ${step}/${total}: ${fmt(metrics)}`);
      }
      if ((s.evalEvery > 0 && step % s.evalEvery === 0) || step === total) doEval(step);
      await yieldToLoop();
    }
  } finally {
    metricsLog?.close();
    opt.dispose();
    o.model.train(wasTraining);
  }
  if (o.outputDir && metricsLog) await writeLossPlot(readMetrics(metricsLog.path), join(o.outputDir, 'loss.svg'), { title: o.title, metricKey: o.metricKey ?? 'accuracy' });
  return { steps: total, lastTrain, evals, trainSeconds: (performance.now() - t0) / 1000 };
}

function fmt(m: PairMetrics): string {
  return Object.entries(m).map(([k, v]) => `${k} ${Math.abs(v) >= 100 || Number.isInteger(v) ? v : v.toFixed(4)}`).join(', ');
}

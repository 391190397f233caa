/**
 * Trainer: the training loop over any model of the models layer, plain or wrapped by a PEFT
 * method. Gradient accumulation, clipping, AdamW, LR schedules, periodic evaluation, early
 * stopping, checkpoints written atomically and exact resumption, SIGINT saves before exiting,
 * NaN/infinite loss stops with the last good checkpoint kept.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { Tensor } from '../tensor/tensor.js';
import { tidy } from '../tensor/scope.js';
import { tensor } from '../tensor/creation.js';
import { native } from '../native.js';
import { backward, noGrad } from '../autograd/tape.js';
import * as F from '../autograd/ops.js';
import { TunekitError } from '../errors.js';
import { manualSeed, getSeedState, setSeedState } from '../nn/random.js';
import type { PretrainedModel, ModelInputs, ModelOutput } from '../models/common.js';
import { PeftModel, type TrainingHooks } from '../peft/base/peft_model.js';
import { DataLoader, type LoaderState } from '../data/loader.js';
import { makeCollator } from '../data/collate.js';
import type { Batch, CausalLmExample, ClassificationExample } from '../data/types.js';
import { openSafetensors, writeSafetensors } from '../io/safetensors.js';
import { writeJsonAtomicSync } from '../io/atomic.js';
import { savePretrained, loadWeights } from '../models/loader.js';
import { AdamW, clipGradNorm } from './optimizer.js';
import { makeLrSchedule, type ScheduleName } from './lr_schedule.js';
import { MetricsLog, readMetrics, truncateMetrics, type MetricsRecord } from './metrics_log.js';
import { writeLossPlot } from './plot.js';
import { ProgressReporter } from './progress.js';
import { taskLoss, ClassificationMetrics, type TrainTask } from './losses.js';
import { scoreChoices } from './choice_eval.js';
import type { ChoiceSet } from '../data/choices.js';

export type TrainableModel = PretrainedModel | PeftModel;
export type TrainExample = CausalLmExample | ClassificationExample;

export interface TrainSettings {
  epochs: number;
  /** stop after this many optimizer steps (overrides epochs when set) */
  maxSteps?: number | null;
  batchSize: number;
  evalBatchSize?: number;
  gradAccum: number;
  lr: number;
  weightDecay: number;
  warmupSteps: number;
  schedule: ScheduleName;
  maxGradNorm: number;
  /** evaluate every N optimizer steps (0: at the end of each epoch only) */
  evalEvery: number;
  /** checkpoint every N optimizer steps (0: at the end only) */
  saveEvery: number;
  /** stop after this many evaluations without improvement (0: never) */
  earlyStoppingPatience: number;
  seed: number;
  /** print/log a train record every N steps */
  logEvery: number;
}

export const DEFAULT_SETTINGS: TrainSettings = {
  epochs: 1, maxSteps: null, batchSize: 8, gradAccum: 1, lr: 2e-4, weightDecay: 0, warmupSteps: 0, schedule: 'linear',
  maxGradNorm: 1, evalEvery: 0, saveEvery: 0, earlyStoppingPatience: 0, seed: 42, logEvery: 10,
};

export interface StepInfo {
  step: number;
  epoch: number;
  loss: number;
  lr: number;
  gradNorm: number;
  tokens: number;
  stepSeconds: number;
}

export interface EvalResult {
  loss: number;
  accuracy?: number;
  f1?: number;
  perplexity?: number;
  /** classification: examples scored; causal LM: target tokens in the loss */
  count: number;
}

export interface TrainerCallbacks {
  onStep?(info: StepInfo): void;
  onEval?(step: number, result: EvalResult): void;
  /** after the optimizer step (AdaLoRA's rank allocator hooks in here) */
  afterOptimizerStep?(step: number): void;
  /** extra loss terms added before backward (AdaLoRA's orthogonal regulariser) */
  extraLoss?(): Tensor<'f32'> | null;
}

export interface TrainerOptions {
  model: TrainableModel;
  task: TrainTask;
  train: TrainExample[];
  eval?: TrainExample[];
  padTokenId: number;
  settings?: Partial<TrainSettings>;
  /** run folder: metrics.jsonl, plot, checkpoint/, adapter or model */
  outputDir?: string;
  /** the run's full config, stored in checkpoints; a resume with a different one is refused */
  runConfig?: Record<string, unknown>;
  callbacks?: TrainerCallbacks;
  progress?: 'auto' | 'bar' | 'plain' | 'none';
  /** the metric that decides the best checkpoint and early stopping */
  metric?: 'loss' | 'accuracy';
  /** causal LM: multiple-choice items of the eval split; each evaluation adds their accuracy and F1 */
  choices?: ChoiceSet;
}

export interface FitResult {
  steps: number;
  status: 'completed' | 'early_stopped' | 'interrupted';
  lastTrainLoss: number;
  evals: { step: number; result: EvalResult }[];
  trainSeconds: number;
  tokensPerSecond: number;
  peakBytes: number;
}

interface TrainerState {
  version: 1;
  step: number;
  loader: LoaderState;
  seedState: string;
  best: number | null;
  badEvals: number;
  runConfig: Record<string, unknown> | null;
}

export class Trainer {
  readonly model: TrainableModel;
  readonly task: TrainTask;
  readonly settings: TrainSettings;
  readonly outputDir: string | null;
  readonly optimizer: AdamW;
  private readonly loader: DataLoader<TrainExample, Batch>;
  private readonly evalExamples: TrainExample[];
  private readonly collate: (ex: TrainExample[]) => Batch;
  private step = 0;
  private best: number | null = null;
  private badEvals = 0;
  private interrupted = false;
  private readonly opts: TrainerOptions;
  /** the PEFT method's own hooks (e.g. AdaLoRA), called whatever the user's callbacks are */
  private readonly hooks: TrainingHooks;

  constructor(opts: TrainerOptions) {
    this.opts = opts;
    this.model = opts.model;
    this.task = opts.task;
    this.settings = { ...DEFAULT_SETTINGS, ...opts.settings };
    const s = this.settings;
    if (!Number.isInteger(s.batchSize) || s.batchSize < 1) throw new TunekitError('ERR_CONFIG', `batchSize must be a positive integer, got ${s.batchSize}`);
    if (!Number.isInteger(s.gradAccum) || s.gradAccum < 1) throw new TunekitError('ERR_CONFIG', `gradAccum must be a positive integer, got ${s.gradAccum}`);
    if (!(s.lr > 0)) throw new TunekitError('ERR_CONFIG', `lr must be > 0, got ${s.lr}`);
    if (opts.train.length === 0) throw new TunekitError('ERR_VALUE', 'the training set is empty');
    this.outputDir = opts.outputDir ?? null;
    this.evalExamples = opts.eval ?? [];
    this.collate = makeCollator({ padTokenId: opts.padTokenId }) as (ex: TrainExample[]) => Batch;
    manualSeed(s.seed);
    this.loader = new DataLoader(opts.train, { batchSize: s.batchSize, seed: s.seed, shuffle: true, collate: this.collate });
    this.optimizer = new AdamW(this.model.trainableParameters(), { lr: s.lr, weightDecay: s.weightDecay });
    this.hooks = this.model instanceof PeftModel ? this.model.trainingHooks() : {};
  }

  /** Optimizer steps the run will make. */
  get totalSteps(): number {
    const s = this.settings;
    if (s.maxSteps) return s.maxSteps;
    return Math.max(1, Math.floor((this.loader.batchesPerEpoch * s.epochs) / s.gradAccum));
  }

  /** Model inputs of a batch. */
  static inputsOf(batch: Batch): ModelInputs {
    return {
      inputIds: tensor(batch.inputIds, [batch.batch, batch.seqLen]) as Tensor<'i32'>,
      attentionMask: tensor(batch.attentionMask, [batch.batch, batch.seqLen]) as Tensor<'i32'>,
    };
  }

  /** Loss of one micro-batch, backward included; returns the loss value. */
  private microStep(batch: Batch, scale: number): number {
    return tidy(() => {
      const out: ModelOutput = this.model.forward(Trainer.inputsOf(batch));
      let { loss } = taskLoss(this.task, out, batch);
      const value = loss.item();
      const extra = this.opts.callbacks?.extraLoss?.() ?? this.hooks.extraLoss?.() ?? null;
      if (extra) {
        // a non-finite extra term makes the objective non-finite even when its gradient is not
        // (a constant NaN): report it so that fit() stops with ERR_NAN
        const ev = extra.item();
        if (!Number.isFinite(ev)) return ev;
        loss = F.add(loss, extra);
      }
      backward(scale === 1 ? loss : F.scale(loss, scale));
      return value;
    });
  }

  /**
   * Runs training to the end (or early stop / SIGINT).
   * @example const result = await new Trainer({ model, task: 'seq_cls', train, eval, padTokenId: 0 }).fit();
   */
  async fit(opts: { resumeFrom?: string } = {}): Promise<FitResult> {
    const s = this.settings;
    if (opts.resumeFrom) this.loadCheckpoint(opts.resumeFrom);
    const total = this.totalSteps;
    const schedule = makeLrSchedule({ schedule: s.schedule, warmupSteps: s.warmupSteps, totalSteps: total, baseLr: s.lr });
    const log = this.outputDir ? new MetricsLog(join(this.outputDir, 'metrics.jsonl')) : null;
    const progress = new ProgressReporter({ total, mode: this.opts.progress ?? 'auto', every: s.logEvery, startStep: this.step });
    const onSigint = () => {
      this.interrupted = true;
    };
    process.once('SIGINT', onSigint);
    this.model.train();
    const evals: { step: number; result: EvalResult }[] = [];
    let status: FitResult['status'] = 'completed';
    let lastLoss = NaN;
    let tokensSeen = 0;
    const t0 = performance.now();
    native.resetPeakMemory();
    try {
      while (this.step < total) {
        const ts = performance.now();
        let lossSum = 0, tokens = 0;
        let epoch = 0;
        for (let micro = 0; micro < s.gradAccum; micro++) {
          const { data: batch, epoch: e } = this.loader.next();
          epoch = e;
          tokens += batch.attentionMask.reduce((a, b) => a + b, 0);
          lossSum += this.microStep(batch, 1 / s.gradAccum);
        }
        const loss = lossSum / s.gradAccum;
        if (!Number.isFinite(loss)) {
          this.optimizer.zeroGrad();
          throw new TunekitError('ERR_NAN', `loss became ${loss} at step ${this.step + 1}; training stopped${this.outputDir ? ` (the last good checkpoint in ${join(this.outputDir, 'checkpoint')} is kept)` : ''}. Try a lower learning rate or gradient clipping.`);
        }
        const norm = clipGradNorm(this.optimizer.params, s.maxGradNorm);
        if (!Number.isFinite(norm)) {
          this.optimizer.zeroGrad();
          throw new TunekitError('ERR_NAN', `gradient norm became ${norm} at step ${this.step + 1}; training stopped with the last good checkpoint kept`);
        }
        const lr = schedule.lrAt(this.step);
        this.optimizer.step(lr);
        this.step++;
        this.opts.callbacks?.afterOptimizerStep?.(this.step);
        this.hooks.afterOptimizerStep?.(this.step, total);
        this.optimizer.zeroGrad();
        lastLoss = loss;
        tokensSeen += tokens;
        const stepSeconds = (performance.now() - ts) / 1000;
        const info: StepInfo = { step: this.step, epoch, loss, lr, gradNorm: norm, tokens, stepSeconds };
        this.opts.callbacks?.onStep?.(info);
        progress.update(this.step, { loss, lr, tokens, epoch });
        if (log && (this.step % s.logEvery === 0 || this.step === total)) {
          log.append({ step: this.step, epoch, split: 'train', loss, lr, grad_norm: norm, tokens_per_s: tokens / stepSeconds });
        }
        const epochEnd = s.evalEvery === 0 && this.loader.state().index === 0;
        if (this.evalExamples.length && ((s.evalEvery > 0 && this.step % s.evalEvery === 0) || epochEnd || this.step === total)) {
          const result = this.evaluate();
          evals.push({ step: this.step, result });
          this.opts.callbacks?.onEval?.(this.step, result);
          log?.append({ step: this.step, epoch, split: 'eval', ...result });
          progress.log(`eval @ step ${this.step}: loss ${result.loss.toFixed(4)}${result.accuracy !== undefined ? `, accuracy ${(result.accuracy * 100).toFixed(2)}%` : ''}${result.perplexity !== undefined ? `, perplexity ${result.perplexity.toFixed(2)}` : ''}`);
          if (this.improved(result)) this.badEvals = 0;
          else if (s.earlyStoppingPatience > 0 && ++this.badEvals >= s.earlyStoppingPatience) {
            status = 'early_stopped';
          }
        }
        if (this.outputDir && ((s.saveEvery > 0 && this.step % s.saveEvery === 0) || this.interrupted || status === 'early_stopped')) {
          this.saveCheckpoint();
        }
        if (this.interrupted) {
          status = 'interrupted';
          break;
        }
        if (status === 'early_stopped') break;
        await yieldToLoop();
      }
      if (this.outputDir && status === 'completed') this.saveCheckpoint();
    } finally {
      process.removeListener('SIGINT', onSigint);
      progress.stop();
      log?.close();
    }
    if (this.outputDir && existsSync(join(this.outputDir, 'metrics.jsonl'))) {
      await writeLossPlot(readMetrics(join(this.outputDir, 'metrics.jsonl')), join(this.outputDir, 'loss.svg'), { title: 'tunekit training' });
    }
    const trainSeconds = (performance.now() - t0) / 1000;
    return {
      steps: this.step, status, lastTrainLoss: lastLoss, evals, trainSeconds,
      tokensPerSecond: tokensSeen / trainSeconds, peakBytes: native.memoryStats().peakBytes,
    };
  }

  private improved(r: EvalResult): boolean {
    const metric = this.opts.metric ?? (r.accuracy !== undefined ? 'accuracy' : 'loss');
    const v = metric === 'accuracy' ? r.accuracy ?? 0 : -r.loss;
    if (this.best === null || v > this.best) {
      this.best = v;
      return true;
    }
    return false;
  }

  /** Loss and metrics on the eval set (or the examples given), without gradients. */
  evaluate(examples: TrainExample[] = this.evalExamples): EvalResult {
    const wasTraining = this.model.training;
    this.model.eval();
    const bs = this.settings.evalBatchSize ?? this.settings.batchSize * 2;
    const numClasses = this.model.config.numLabels;
    const metrics = new ClassificationMetrics(Math.max(2, numClasses));
    let lossSum = 0, count = 0;
    noGrad(() => {
      for (let i = 0; i < examples.length; i += bs) {
        const batch = this.collate(examples.slice(i, i + bs));
        tidy(() => {
          const out = this.model.forward(Trainer.inputsOf(batch));
          const { loss, count: n } = taskLoss(this.task, out, batch);
          lossSum += loss.item() * n;
          count += n;
          if (this.task !== 'causal_lm') {
            const pred = F.argmax(out.logits).toArray();
            const gold = this.task === 'seq_cls' ? batch.classLabels! : batch.labels!;
            pred.forEach((p, j) => metrics.add(p, gold[j]!));
          }
        });
      }
    });
    this.model.train(wasTraining);
    const loss = count ? lossSum / count : NaN;
    if (this.task === 'causal_lm') {
      const choices = this.opts.choices && examples === this.evalExamples ? scoreChoices(this.model, this.opts.choices, { padTokenId: this.opts.padTokenId, batchSize: bs }) : null;
      return { loss, perplexity: Math.exp(loss), count, ...(choices ? { accuracy: choices.accuracy, f1: choices.f1 } : {}) };
    }
    return { loss, accuracy: metrics.accuracy, f1: metrics.macroF1, count };
  }

  // ------------------------------------------------------------------ checkpoints

  /** Writes <outputDir>/checkpoint atomically (new folder, then rename over the old one). */
  saveCheckpoint(): string {
    if (!this.outputDir) throw new TunekitError('ERR_STATE', 'saveCheckpoint needs an outputDir');
    mkdirSync(this.outputDir, { recursive: true });
    const final = join(this.outputDir, 'checkpoint');
    const tmp = join(this.outputDir, `.checkpoint.tmp-${process.pid}-${Date.now()}`);
    mkdirSync(tmp, { recursive: true });
    if (this.model instanceof PeftModel) this.model.saveAdapter(join(tmp, 'adapter'));
    else savePretrained(this.model, join(tmp, 'model'));
    writeSafetensors(join(tmp, 'optimizer.safetensors'), this.optimizer.stateTensors(), { step: String(this.optimizer.stepCount) });
    const state: TrainerState = {
      version: 1, step: this.step, loader: this.loader.state(), seedState: getSeedState(), best: this.best, badEvals: this.badEvals,
      runConfig: this.opts.runConfig ?? null,
    };
    writeJsonAtomicSync(join(tmp, 'trainer_state.json'), state, { indent: 2 });
    const old = join(this.outputDir, `.checkpoint.old-${process.pid}`);
    if (existsSync(final)) renameSync(final, old);
    renameSync(tmp, final);
    if (existsSync(old)) rmSync(old, { recursive: true, force: true });
    // leftovers of a crash mid-save
    for (const f of readdirSync(this.outputDir)) if (f.startsWith('.checkpoint.tmp-') && join(this.outputDir, f) !== tmp) rmSync(join(this.outputDir, f), { recursive: true, force: true });
    return final;
  }

  /** Restores weights, optimizer, data position and RNG from a checkpoint folder. */
  loadCheckpoint(dir: string): void {
    const statePath = join(dir, 'trainer_state.json');
    if (!existsSync(statePath)) throw new TunekitError('ERR_NOT_FOUND', `no trainer_state.json in ${dir}: not a tunekit checkpoint`);
    const state = JSON.parse(readFileSync(statePath, 'utf8')) as TrainerState;
    const diff = configDiff(state.runConfig, this.opts.runConfig ?? null);
    if (diff.length) {
      throw new TunekitError('ERR_CONFIG', `refusing to resume from ${dir}: it was written with a different config:\n  ${diff.join('\n  ')}`);
    }
    if (this.model instanceof PeftModel) this.model.loadAdapterWeights(join(dir, 'adapter'));
    else loadWeights(this.model, join(dir, 'model'), this.model.task);
    const r = openSafetensors(join(dir, 'optimizer.safetensors'));
    const tensors = new Map(r.names.map((n) => [n, r.readTensor(n)] as const));
    const stepCount = Number(r.metadata.step ?? state.step);
    r.close();
    this.optimizer.loadStateTensors(tensors, stepCount);
    this.loader.restore(state.loader);
    setSeedState(state.seedState);
    this.step = state.step;
    this.best = state.best;
    this.badEvals = state.badEvals;
    if (this.outputDir && existsSync(join(this.outputDir, 'metrics.jsonl'))) truncateMetrics(join(this.outputDir, 'metrics.jsonl'), this.step);
  }
}

/** Lines describing differences between two configs (ignoring where output goes). */
export function configDiff(a: Record<string, unknown> | null, b: Record<string, unknown> | null): string[] {
  const out: string[] = [];
  const ignore = new Set(['output', 'output_dir', 'resume', 'resume_from', 'logging']);
  const walk = (x: unknown, y: unknown, path: string) => {
    if (ignore.has(path.split('.').pop() ?? '')) return;
    if (x && y && typeof x === 'object' && typeof y === 'object' && !Array.isArray(x) && !Array.isArray(y)) {
      for (const k of new Set([...Object.keys(x), ...Object.keys(y)])) walk((x as Record<string, unknown>)[k], (y as Record<string, unknown>)[k], path ? `${path}.${k}` : k);
    } else if (JSON.stringify(x) !== JSON.stringify(y)) {
      out.push(`${path}: checkpoint has ${JSON.stringify(x)}, this run has ${JSON.stringify(y)}`);
    }
  };
  if (a && b) walk(a, b, '');
  return out;
}

export type { MetricsRecord };

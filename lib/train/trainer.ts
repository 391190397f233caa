/**
 * Trainer: the training loop over any model of the models layer, plain or wrapped by a PEFT
 * method. Gradient accumulation, clipping, AdamW, LR schedules, periodic evaluation, early
 * stopping, checkpoints that survive a crash at any point (checkpoint.ts) and exact resumption,
 * SIGINT saves before exiting, NaN/infinite loss stops and says which checkpoint is kept.
 * The optimizer state (AdamW m and v: twice the trainable parameters, f32) is allocated when
 * fit() starts and released when it ends, whatever the outcome.
 */
import { existsSync } from 'node:fs';
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
import { DataLoader } from '../data/loader.js';
import { makeCollator } from '../data/collate.js';
import type { Batch, CausalLmExample, ClassificationExample } from '../data/types.js';
import { openSafetensors, writeSafetensors } from '../io/safetensors.js';
import { writeFileAtomicSync } from '../io/atomic.js';
import { savePretrained, loadWeights } from '../models/loader.js';
import { AdamW, clipGradNorm } from './optimizer.js';
import { makeLrSchedule, type ScheduleName } from './lr_schedule.js';
import { MetricsLog, readMetrics, truncateMetrics, type MetricsRecord } from './metrics_log.js';
import { readCheckpoint, requireCheckpoint, writeCheckpoint, OPTIMIZER_FILE, TRAINER_STATE_FILE, type CheckpointStatus, type TrainerState } from './checkpoint.js';
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
  /** evaluate every N optimizer steps (0: at the end of each epoch); always after the last step */
  evalEvery: number;
  /** checkpoint every N optimizer steps (0: at the end of each epoch); always after the last step */
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

export interface FitOptions {
  /** continue from this checkpoint folder */
  resumeFrom?: string;
  /**
   * continue from the newest complete checkpoint of outputDir, recovering one left by an
   * interrupted save (checkpoint.ts); none is ERR_NOT_FOUND naming the folder
   */
  resume?: boolean;
  /** where resume/recovery lines go */
  log?: (line: string) => void;
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

export class Trainer {
  readonly model: TrainableModel;
  readonly task: TrainTask;
  readonly settings: TrainSettings;
  readonly outputDir: string | null;
  /** AdamW, allocated on first use (fit, loadCheckpoint), released when fit() ends or by dispose() */
  private adam: AdamW | null = null;
  private released = false;
  private fitStarted = false;
  /** the checkpoint this trainer last wrote or resumed from (what a failure leaves on disk) */
  private lastCheckpoint: { dir: string; step: number } | null = null;
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
    if (this.model.trainableParameters().length === 0) throw new TunekitError('ERR_VALUE', 'AdamW: no trainable parameters (is everything frozen?)');
    this.hooks = this.model instanceof PeftModel ? this.model.trainingHooks() : {};
  }

  /**
   * The optimizer (AdamW over the trainable parameters), allocated on first use.
   * After fit() has ended or dispose() ran, its state is gone: ERR_STATE.
   */
  get optimizer(): AdamW {
    if (this.released) throw new TunekitError('ERR_STATE', 'the optimizer state of this Trainer was released when fit() ended (or by dispose()); make a new Trainer and fit({ resumeFrom }) a checkpoint to continue');
    if (!this.adam) this.adam = new AdamW(this.model.trainableParameters(), { lr: this.settings.lr, weightDecay: this.settings.weightDecay });
    return this.adam;
  }

  /**
   * Releases the optimizer state (native memory); fit() does it when it ends. Idempotent.
   * @example const t = new Trainer(opts); t.loadCheckpoint(dir); ...; t.dispose();
   */
  dispose(): void {
    this.adam?.dispose();
    this.adam = null;
    this.released = true;
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
   * Runs training to the end (or early stop / SIGINT), from the start or from a checkpoint
   * folder. Once per Trainer: the optimizer state is released when it ends.
   *
   * A resume is refused (before any file changes) when the checkpoint is incomplete or
   * corrupt (ERR_FORMAT), was written with another run config (ERR_CONFIG, naming the fields),
   * or is past or at the end of this run (ERR_STATE). metrics.jsonl is cut back to the
   * checkpoint's step, so that no step appears twice; a run from the start begins a new one.
   *
   * @example const result = await new Trainer({ model, task: 'seq_cls', train, eval, padTokenId: 0 }).fit();
   */
  async fit(opts: FitOptions = {}): Promise<FitResult> {
    if (this.fitStarted) throw new TunekitError('ERR_STATE', 'fit() already ran on this Trainer; make a new Trainer (and fit({ resumeFrom }) its checkpoint to continue)');
    this.fitStarted = true;
    try {
      let from = opts.resumeFrom;
      let checked: TrainerState | undefined;
      if (opts.resume) {
        if (from !== undefined) throw new TunekitError('ERR_VALUE', 'fit: give resume or resumeFrom, not both');
        if (!this.outputDir) throw new TunekitError('ERR_STATE', 'fit({ resume: true }) needs an outputDir to find the checkpoint in');
        // the checks run on the newest complete checkpoint before recovery moves anything
        const ck = requireCheckpoint(this.outputDir, { accept: (state, dir) => this.checkResumable(dir, state, this.totalSteps) });
        if (ck.recoveredFrom) opts.log?.(`recovered the checkpoint of step ${ck.step} from ${ck.recoveredFrom} (a save was interrupted)`);
        if (ck.removed.length) opts.log?.(`removed older or incomplete checkpoint folders: ${ck.removed.join(', ')}`);
        opts.log?.(`resuming from ${ck.dir} (step ${ck.step} of ${this.totalSteps})`);
        from = ck.dir;
        checked = ck.state;
      }
      return await this.run(from, checked);
    } finally {
      this.dispose();
    }
  }

  /** `checkedState`: resumeFrom's state when it was just verified (the hashes are not read twice) */
  private async run(resumeFrom: string | undefined, checkedState?: TrainerState): Promise<FitResult> {
    const s = this.settings;
    const total = this.totalSteps;
    const metricsPath = this.outputDir ? join(this.outputDir, 'metrics.jsonl') : null;
    if (resumeFrom) {
      const state = checkedState ?? readCheckpoint(resumeFrom).state;
      if (!checkedState) this.checkResumable(resumeFrom, state, total);
      this.restore(resumeFrom, state);
      if (metricsPath && existsSync(metricsPath)) truncateMetrics(metricsPath, this.step);
    } else if (metricsPath && existsSync(metricsPath)) {
      // a run from the start owns its folder: an earlier run's lines would repeat its steps
      writeFileAtomicSync(metricsPath, '');
    }
    const schedule = makeLrSchedule({ schedule: s.schedule, warmupSteps: s.warmupSteps, totalSteps: total, baseLr: s.lr });
    const log = metricsPath ? new MetricsLog(metricsPath) : null;
    const progress = new ProgressReporter({ total, mode: this.opts.progress ?? 'auto', every: s.logEvery, startStep: this.step });
    const onSigint = () => {
      this.interrupted = true;
    };
    process.once('SIGINT', onSigint);
    this.model.train();
    const optimizer = this.optimizer;
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
        // true when this step consumed the last batch of an epoch (with gradient accumulation
        // an epoch can end inside a step; that step ends the epoch)
        let epochEnded = false;
        for (let micro = 0; micro < s.gradAccum; micro++) {
          const { data: batch, epoch: e, batchIndex } = this.loader.next();
          epoch = e;
          if (batchIndex === this.loader.batchesPerEpoch - 1) epochEnded = true;
          tokens += batch.attentionMask.reduce((a, b) => a + b, 0);
          lossSum += this.microStep(batch, 1 / s.gradAccum);
        }
        const loss = lossSum / s.gradAccum;
        if (!Number.isFinite(loss)) {
          optimizer.zeroGrad();
          throw new TunekitError('ERR_NAN', `loss became ${loss} at step ${this.step + 1}; training stopped${this.checkpointNote()}. Try a lower learning rate or gradient clipping.`);
        }
        const norm = clipGradNorm(optimizer.params, s.maxGradNorm);
        if (!Number.isFinite(norm)) {
          optimizer.zeroGrad();
          throw new TunekitError('ERR_NAN', `gradient norm became ${norm} at step ${this.step + 1}; training stopped${this.checkpointNote()}. Try a lower learning rate.`);
        }
        const lr = schedule.lrAt(this.step);
        optimizer.step(lr);
        this.step++;
        this.opts.callbacks?.afterOptimizerStep?.(this.step);
        this.hooks.afterOptimizerStep?.(this.step, total);
        optimizer.zeroGrad();
        lastLoss = loss;
        tokensSeen += tokens;
        const stepSeconds = (performance.now() - ts) / 1000;
        const info: StepInfo = { step: this.step, epoch, loss, lr, gradNorm: norm, tokens, stepSeconds };
        this.opts.callbacks?.onStep?.(info);
        progress.update(this.step, { loss, lr, tokens, epoch });
        const finished = this.step === total;
        if (log && (this.step % s.logEvery === 0 || finished)) {
          log.append({ step: this.step, epoch, split: 'train', loss, lr, grad_norm: norm, tokens_per_s: tokens / stepSeconds });
        }
        const evalNow = s.evalEvery > 0 ? this.step % s.evalEvery === 0 : epochEnded;
        if (this.evalExamples.length && (evalNow || finished)) {
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
        if (this.interrupted && !finished && status === 'completed') status = 'interrupted';
        const saveNow = s.saveEvery > 0 ? this.step % s.saveEvery === 0 : epochEnded;
        if (this.outputDir && (saveNow || finished || status !== 'completed')) {
          this.saveCheckpoint(status === 'completed' ? (finished ? 'completed' : 'running') : status);
        }
        if (status !== 'completed') break;
        await yieldToLoop();
      }
    } finally {
      process.removeListener('SIGINT', onSigint);
      progress.stop();
      log?.close();
    }
    if (metricsPath && existsSync(metricsPath)) {
      await writeLossPlot(readMetrics(metricsPath), join(this.outputDir!, 'loss.svg'), { title: 'tunekit training' });
    }
    const trainSeconds = (performance.now() - t0) / 1000;
    return {
      steps: this.step, status, lastTrainLoss: lastLoss, evals, trainSeconds,
      tokensPerSecond: tokensSeen / trainSeconds, peakBytes: native.memoryStats().peakBytes,
    };
  }

  /** " (<which checkpoint is on disk>)" for a stopped run's message; '' without an output folder. */
  private checkpointNote(): string {
    if (!this.outputDir) return '';
    if (this.lastCheckpoint) return ` (the last good checkpoint, step ${this.lastCheckpoint.step}, is kept in ${this.lastCheckpoint.dir})`;
    const when = this.settings.saveEvery > 0 ? `save_every is ${this.settings.saveEvery} steps` : 'save_every 0 writes one at the end of each epoch';
    return ` (no checkpoint of this run was written before it: ${when})`;
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

  /**
   * Writes <outputDir>/checkpoint so that a crash at any point leaves a complete checkpoint
   * (checkpoint.ts). `status` records where the run stands (a resume of a finished run is refused).
   * @example trainer.saveCheckpoint(); // -> 'runs/x/checkpoint'
   */
  saveCheckpoint(status: CheckpointStatus = 'running'): string {
    if (!this.outputDir) throw new TunekitError('ERR_STATE', 'saveCheckpoint needs an outputDir');
    const optimizer = this.optimizer;
    const model = this.model;
    const state: TrainerState = {
      version: 2, step: this.step, totalSteps: this.totalSteps, status, loader: this.loader.state(), seedState: getSeedState(),
      best: this.best, badEvals: this.badEvals, runConfig: this.opts.runConfig ?? null,
    };
    const dir = writeCheckpoint(this.outputDir, {
      writeWeights: (d) => (model instanceof PeftModel ? model.saveAdapter(join(d, 'adapter')) : savePretrained(model, join(d, 'model'))),
      writeOptimizer: (f) => writeSafetensors(f, optimizer.stateTensors(), { step: String(optimizer.stepCount) }),
      state,
    });
    this.lastCheckpoint = { dir, step: this.step };
    return dir;
  }

  /**
   * Restores weights, optimizer, data position and RNG from a checkpoint folder, after checking
   * it: incomplete or corrupt is ERR_FORMAT, another run config ERR_CONFIG (naming the fields),
   * a step above this run's steps ERR_STATE.
   * @example trainer.loadCheckpoint('runs/x/checkpoint');
   */
  loadCheckpoint(dir: string): void {
    const { state } = readCheckpoint(dir);
    this.checkConfig(dir, state);
    this.checkStep(dir, state, this.totalSteps);
    this.restore(dir, state);
  }

  private checkConfig(dir: string, state: TrainerState): void {
    const diff = configDiff(state.runConfig, this.opts.runConfig ?? null);
    if (diff.length) {
      throw new TunekitError('ERR_CONFIG', `refusing to resume from ${dir}: it was written with a different config:\n  ${diff.join('\n  ')}`);
    }
  }

  private checkStep(dir: string, state: TrainerState, total: number): void {
    if (state.step > total) {
      throw new TunekitError('ERR_STATE', `refusing to resume from ${dir}: ${TRAINER_STATE_FILE} has step ${state.step}, above this run's ${total} optimizer steps (max_steps / epochs)`);
    }
  }

  /** A resume must have steps left: a finished run is refused, its folder left as it is. */
  private checkResumable(dir: string, state: TrainerState, total: number): void {
    this.checkConfig(dir, state);
    this.checkStep(dir, state, total);
    if (state.step === total || state.status === 'early_stopped') {
      const how = state.status === 'early_stopped' ? `stopped early at step ${state.step} of ${total}` : `completed all ${total} steps`;
      throw new TunekitError('ERR_STATE', `nothing to resume: the run of ${dir} has already finished (${how}); its results and outputs are left as they are. Start a new run without --resume, or in another output folder, to train again.`);
    }
  }

  private restore(dir: string, state: TrainerState): void {
    if (this.model instanceof PeftModel) this.model.loadAdapterWeights(join(dir, 'adapter'));
    else loadWeights(this.model, join(dir, 'model'), this.model.task);
    const r = openSafetensors(join(dir, OPTIMIZER_FILE));
    let stepCount: number;
    try {
      const tensors = new Map(r.names.map((n) => [n, r.readTensor(n)] as const));
      stepCount = r.metadata.step === undefined ? state.step : Number(r.metadata.step);
      if (!Number.isSafeInteger(stepCount) || stepCount < 0) throw new TunekitError('ERR_FORMAT', `${join(dir, OPTIMIZER_FILE)}: expected a non-negative integer for metadata.step but received ${JSON.stringify(r.metadata.step)}`);
      this.optimizer.loadStateTensors(tensors, stepCount);
    } finally {
      r.close();
    }
    this.loader.restore(state.loader);
    setSeedState(state.seedState);
    this.step = state.step;
    this.best = state.best;
    this.badEvals = state.badEvals;
    this.lastCheckpoint = { dir, step: state.step };
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

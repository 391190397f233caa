/**
 * Trainer: the one training loop, for every objective (objective.ts): supervised causal LM /
 * sequence / token classification (the default, from `task`), reward models, DPO and PPO
 * (lib/rlhf). Whatever the objective, the loop does the same things the same way: the seeded
 * data order, gradient accumulation, clipping, AdamW, LR schedules, periodic evaluation, early
 * stopping on a watched eval figure, checkpoints that survive a crash at any point
 * (checkpoint.ts) and exact resumption, a checkpoint saved on SIGINT before exiting, NaN/infinite
 * loss stops that say which checkpoint is kept, progress, metrics.jsonl and plots.
 *
 * A step: `gradAccum` loader batches -> objective.plan() (PPO samples its rollouts here) -> its
 * updates, each a sum of micro-batch gradients, clipped and applied once -> objective.afterStep().
 * The loss of each micro-batch is the objective's, plus the PEFT method's term (AdaLoRA's
 * orthogonal regulariser), plus the user's `extraLoss`: the terms are added, none replaces another.
 *
 * The optimizer state (AdamW m and v: twice the trainable parameters, f32) is allocated when
 * fit() starts and released when it ends, whatever the outcome.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { yieldToEventLoop as yieldToLoop } from '../event_loop.js';
import { Tensor } from '../tensor/tensor.js';
import { tidy } from '../tensor/scope.js';
import { resolveDevice, trainingPath, type Device, type DeviceRequest } from '../tensor/device.js';
import { memoryStats, resetPeakMemory } from '../backend.js';
import { backward } from '../autograd/tape.js';
import * as F from '../autograd/ops.js';
import { TunekitError, describe } from '../errors.js';
import { manualSeed, getSeedState, setSeedState } from '../nn/random.js';
import type { Module } from '../nn/module.js';
import type { PretrainedModel, ModelInputs } from '../models/common.js';
import { PeftModel, type TrainingHooks } from '../peft/base/peft_model.js';
import { DataLoader } from '../data/loader.js';
import type { Batch } from '../data/types.js';
import type { ChoiceSet } from '../data/choices.js';
import { openSafetensors, openSafetensorsSync, writeSafetensors, writeSafetensorsSync, type RawTensor } from '../io/safetensors.js';
import { writeFileAtomicSync } from '../io/atomic.js';
import { savePretrained, savePretrainedSync, loadWeights, loadWeightsSync } from '../models/loader.js';
import { rawFromTensor, f32FromRaw } from '../models/weights.js';
import { AdamW, clipGradNorm } from './optimizer.js';
import { makeLrSchedule, warmupFromRatio, type ScheduleName } from './lr_schedule.js';
import { MetricsLog, readMetrics, truncateMetrics, type MetricsRecord } from './metrics_log.js';
import { readCheckpoint, readCheckpointSync, requireCheckpoint, writeCheckpoint, writeCheckpointSync, CHECKPOINT_DIR, OPTIMIZER_FILE, TRAINER_STATE_FILE, type CheckpointStatus, type TrainerState } from './checkpoint.js';
import { writeLossPlot, writePanelsPlot } from './plot.js';
import { ProgressReporter } from './progress.js';
import type { TrainTask } from './losses.js';
import type { Figures, MicroBatch, Objective, StepPlan, WatchedMetric } from './objective.js';
import { SupervisedObjective, batchInputs, type EvalResult, type SupervisedExample } from './objectives/supervised.js';
import type { DataParallel } from './distributed/data_parallel.js';

export type TrainableModel = PretrainedModel | PeftModel;
export type TrainExample = SupervisedExample;
export type { EvalResult };

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
  /** warm-up as a fraction of the run's steps, used when warmupSteps is 0 (transformers' warmup_ratio) */
  warmupRatio: number;
  schedule: ScheduleName;
  /** 0: no clipping */
  maxGradNorm: number;
  /** evaluate every N steps (0: at the end of each epoch); always after the last step */
  evalEvery: number;
  /** evaluate once before the first step; undefined: as the objective asks (reward, DPO, PPO do) */
  evalOnStart?: boolean;
  /** checkpoint every N steps (0: at the end of each epoch); always after the last step */
  saveEvery: number;
  /** stop after this many evaluations without improvement (0: never) */
  earlyStoppingPatience: number;
  /**
   * the eval figure early stopping watches: a key of the objective's evaluation ('loss',
   * 'accuracy', 'rewards/margins', 'score' ...), with or without transformers' 'eval_' prefix;
   * null: the objective's choice (accuracy when there is one, else loss; PPO: score)
   */
  earlyStoppingMetric?: string | null;
  /** null: 'min' for the objective's own choice of a loss, 'max' for accuracy and score */
  earlyStoppingMode?: 'min' | 'max' | null;
  /** an evaluation improves only when it beats the best by more than this */
  earlyStoppingMinDelta: number;
  seed: number;
  /** shuffle the training examples each epoch (seeded) */
  shuffle: boolean;
  /** print/log a train record every N steps */
  logEvery: number;
}

export const DEFAULT_SETTINGS: TrainSettings = {
  epochs: 1, maxSteps: null, batchSize: 8, gradAccum: 1, lr: 2e-4, weightDecay: 0, warmupSteps: 0, warmupRatio: 0, schedule: 'linear',
  maxGradNorm: 1, evalEvery: 0, saveEvery: 0, earlyStoppingPatience: 0, earlyStoppingMetric: null, earlyStoppingMode: null, earlyStoppingMinDelta: 0,
  seed: 42, shuffle: true, logEvery: 10,
};

export interface StepInfo {
  step: number;
  epoch: number;
  /** the objective's loss, averaged over the step's updates (extra terms not included) */
  loss: number;
  lr: number;
  /** gradient norm before clipping (mean over the step's updates) */
  gradNorm: number;
  /** real tokens the step processed */
  tokens: number;
  stepSeconds: number;
  /** the objective's figures of the step (reward: accuracy, margin; DPO: rewards/*; PPO: score, kl, clipfrac ...) */
  figures: Figures;
  /** optimizer updates done so far (PPO makes several per step) */
  updates: number;
}

export interface TrainerCallbacks<M = EvalResult> {
  onStep?(info: StepInfo): void;
  onEval?(step: number, result: M): void;
  /** after each optimizer update, with the count of updates so far (AdaLoRA's rank allocator hooks in here) */
  afterOptimizerStep?(update: number): void;
  /** a term added to every micro-batch's loss before backward, beside the objective's and the PEFT method's */
  extraLoss?(): Tensor<'f32'> | null;
}

export interface TrainerOptions<E = TrainExample, R = EvalResult> {
  model: TrainableModel;
  /** what a step computes; default: the supervised objective of `task` */
  objective?: Objective<E, R>;
  /** supervised shorthand: the task of the default objective */
  task?: TrainTask;
  /** supervised shorthand: the collator's padding id */
  padTokenId?: number;
  /** supervised shorthand, causal LM: multiple-choice items of the eval split; each evaluation adds their accuracy and F1 */
  choices?: ChoiceSet;
  train: E[];
  eval?: E[];
  settings?: Partial<TrainSettings>;
  /** run folder: metrics.jsonl, plots, checkpoint/ */
  outputDir?: string;
  /** the run's full config, stored in checkpoints; a resume with a different one is refused */
  runConfig?: Record<string, unknown>;
  callbacks?: TrainerCallbacks<Awaited<R>>;
  progress?: 'auto' | 'bar' | 'plain' | 'none';
  /** the figure early stopping watches (older spelling of settings.earlyStoppingMetric) */
  metric?: 'loss' | 'accuracy';
  /** where eval and resume lines go (default: beside the progress output) */
  log?: (line: string) => void;
  /**
   * Data-parallel training over the ranks of a process group (lib/train/distributed): each rank
   * trains on its shard of every batch of batchSize x ranks examples, gradients are all-reduced
   * in buckets during backward, rank 0 evaluates and writes every file. Every rank runs the same
   * Trainer with the same settings and data.
   */
  distributed?: DataParallel | null;
  /**
   * Where the run trains: 'cpu', 'cuda' / 'cuda:N' (a usable GPU, else ERR_DEVICE with CUDA's
   * reason, here in the constructor: never a silent CPU run) or 'auto' (the GPU when one is
   * usable, else the CPU; `deviceNote` and the fit result say which). The model (and the
   * objective's own modules) are moved there with Module.to(); batches follow the model. Left
   * out: wherever the model already is.
   */
  device?: DeviceRequest;
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

export interface FitResult<M = EvalResult> {
  steps: number;
  status: 'completed' | 'early_stopped' | 'interrupted';
  lastTrainLoss: number;
  /** the last step's figures (objective figures, loss, lr, grad_norm) */
  lastTrain: Figures;
  /** every evaluation of this fit (step 0: before training, when the objective evaluates on start) */
  evals: { step: number; result: M }[];
  /** seconds of training steps: the fit's wall time less evaluations, checkpoint saves and charts */
  trainSeconds: number;
  /** seconds spent evaluating (included in no step) */
  evalSeconds: number;
  /** seconds spent writing checkpoints and charts */
  saveSeconds: number;
  /** real tokens processed by this fit's steps per second of training */
  tokensPerSecond: number;
  peakBytes: number;
  /** where it trained */
  device: Device;
  /** which device and why ('cpu (auto: no CUDA device: ...)', 'cuda:0 (NVIDIA H100, auto)') */
  deviceNote: string;
}

export class Trainer<E = TrainExample, R = EvalResult> {
  readonly model: TrainableModel;
  readonly objective: Objective<E, R>;
  /** the objective's name ('causal_lm', 'seq_cls', 'token_cls', 'reward', 'dpo', 'ppo') */
  readonly task: string;
  readonly settings: TrainSettings;
  readonly outputDir: string | null;
  /** AdamW, allocated on first use (fit, loadCheckpoint), released when fit() ends or by dispose() */
  private adam: AdamW | null = null;
  private released = false;
  private fitStarted = false;
  /** the checkpoint this trainer last wrote or resumed from (what a failure leaves on disk) */
  private lastCheckpoint: { dir: string; step: number } | null = null;
  private readonly loader: DataLoader<E, E[]>;
  private readonly evalExamples: E[];
  private step = 0;
  private best: number | null = null;
  private badEvals = 0;
  private interrupted = false;
  private readonly opts: TrainerOptions<E, R>;
  /** the PEFT method's own hooks (e.g. AdaLoRA), called whatever the user's callbacks are */
  private readonly hooks: TrainingHooks;
  private readonly extraModules: [string, Module][];
  /** the ranks of a data-parallel run (null: one process) */
  private readonly dp: DataParallel | null;
  /** where the model, batches and optimizer state live */
  readonly device: Device;
  /** which device and why (what `auto` found) */
  readonly deviceNote: string;

  constructor(opts: TrainerOptions<E, R>) {
    this.opts = opts;
    this.model = opts.model;
    this.settings = { ...DEFAULT_SETTINGS, ...definedOnly(opts.settings ?? {}) };
    const s = this.settings;
    if (!Number.isInteger(s.batchSize) || s.batchSize < 1) throw new TunekitError('ERR_CONFIG', `batchSize must be a positive integer, got ${s.batchSize}`);
    if (!Number.isInteger(s.gradAccum) || s.gradAccum < 1) throw new TunekitError('ERR_CONFIG', `gradAccum must be a positive integer, got ${s.gradAccum}`);
    if (!(s.lr > 0)) throw new TunekitError('ERR_CONFIG', `lr must be > 0, got ${s.lr}`);
    if (!Number.isInteger(s.logEvery) || s.logEvery < 1) throw new TunekitError('ERR_CONFIG', `logEvery must be a positive integer, got ${s.logEvery}`);
    if (opts.train.length === 0) throw new TunekitError('ERR_VALUE', 'the training set is empty');
    // the device first: a GPU asked for and not usable stops here, before anything is allocated
    const resolved = opts.device !== undefined ? resolveDevice(opts.device, 'Trainer device', { path: trainingPath(opts.task) }) : { device: opts.model.device, note: opts.model.device };
    this.device = resolved.device;
    this.deviceNote = resolved.note;
    if (opts.objective) this.objective = opts.objective;
    else if (opts.task) this.objective = new SupervisedObjective(opts.model, { task: opts.task, padTokenId: opts.padTokenId ?? 0, choices: opts.choices }) as unknown as Objective<E, R>;
    else throw new TunekitError('ERR_VALUE', 'Trainer: expected an objective, or a task (causal_lm, seq_cls, token_cls) for the supervised one, but received neither');
    this.task = this.objective.name;
    this.dp = opts.distributed ?? null;
    // PPO's several updates per step (and its rollout statistics) are not sharded
    if (this.dp && this.objective.updatesPerStep({ batchSize: s.batchSize, gradAccum: s.gradAccum }) !== 1) {
      throw new TunekitError('ERR_UNSUPPORTED', `data-parallel training runs objectives of one update per step (supervised, reward, dpo); '${this.objective.name}' makes several`);
    }
    // every rank reads the global micro-batches (batchSize x ranks examples) and trains on its shard
    const loaderBatch = s.batchSize * (this.dp?.size ?? 1);
    this.outputDir = opts.outputDir ?? null;
    this.evalExamples = opts.eval ?? [];
    // dropout masks come from the global RNG: an objective that trains with dropout has them
    // decided by the run's seed; the RLHF objectives (no dropout) leave the caller's RNG alone
    if (this.objective.dropout) manualSeed(s.seed);
    if (this.objective.dropLast && opts.train.length < loaderBatch) {
      const what = this.dp ? `batchSize x ranks (${s.batchSize} x ${this.dp.size})` : `batchSize (${s.batchSize})`;
      throw new TunekitError('ERR_VALUE', `${this.objective.name}: expected at least ${what} training examples, since every step takes a full batch, but received ${opts.train.length}`);
    }
    this.loader = new DataLoader<E, E[]>(opts.train, { batchSize: loaderBatch, seed: s.seed, shuffle: s.shuffle, dropLast: this.objective.dropLast ?? false });
    this.extraModules = Object.entries(this.objective.extraModules ?? {});
    // every tensor, not only when the first parameter is elsewhere (module.device): adapters added
    // after the base was moved stay behind otherwise; tensors already there are not copied
    if (opts.device !== undefined) for (const m of [this.model, ...this.extraModules.map(([, e]) => e)]) m.to(this.device);
    if (this.trainableParameters().length === 0) throw new TunekitError('ERR_VALUE', 'AdamW: no trainable parameters (is everything frozen?)');
    this.hooks = this.model instanceof PeftModel ? this.model.trainingHooks() : {};
  }

  /** The model's trainable parameters, then those of the objective's own modules (`<key>.<name>`). */
  private trainableParameters(): [string, Tensor][] {
    return [...this.model.trainableParameters(), ...this.extraModules.flatMap(([key, m]) => m.trainableParameters().map(([n, p]) => [`${key}.${n}`, p] as [string, Tensor]))];
  }

  /**
   * The optimizer (AdamW over the trainable parameters), allocated on first use.
   * After fit() has ended or dispose() ran, its state is gone: ERR_STATE.
   */
  get optimizer(): AdamW {
    if (this.released) throw new TunekitError('ERR_STATE', 'the optimizer state of this Trainer was released when fit() ended (or by dispose()); make a new Trainer and fit({ resumeFrom }) a checkpoint to continue');
    if (!this.adam) this.adam = new AdamW(this.trainableParameters(), { lr: this.settings.lr, weightDecay: this.settings.weightDecay });
    return this.adam;
  }

  /**
   * Releases the optimizer state (native memory); fit() does it when it ends. Idempotent.
   * @example const t = new Trainer(opts); await t.loadCheckpoint(dir); ...; t.dispose();
   */
  dispose(): void {
    this.adam?.dispose();
    this.adam = null;
    this.released = true;
  }

  /** Steps the run will make. */
  get totalSteps(): number {
    const s = this.settings;
    if (s.maxSteps) return s.maxSteps;
    return Math.max(1, Math.floor((this.loader.batchesPerEpoch * s.epochs) / s.gradAccum));
  }

  /** Optimizer updates the run will make (method hooks such as AdaLoRA's schedule count these). */
  get totalUpdates(): number {
    return this.totalSteps * this.objective.updatesPerStep({ batchSize: this.settings.batchSize, gradAccum: this.settings.gradAccum });
  }

  /** Model inputs of a supervised batch. */
  static inputsOf(batch: Batch): ModelInputs {
    return batchInputs(batch);
  }

  /**
   * One micro-batch: the objective's loss plus the method's and the user's terms, backward
   * scaled by `scale`. Returns the objective's loss value and the extra terms' sum; a
   * non-finite total is returned without backward (fit() then stops with ERR_NAN).
   */
  private microStep(micro: MicroBatch, scale: number, extraScale?: number): { value: number; extra: number | null; figures: Figures } {
    return tidy(() => {
      const { loss, figures } = micro();
      const value = loss.item();
      let total: Tensor<'f32'> = loss;
      let extra: number | null = null;
      // data-parallel: the objective's loss and the extra terms have their own scales (the extra
      // terms are the same on every rank, the loss is the rank's share of the combined batch's)
      if (extraScale !== undefined) total = F.scale(loss, scale);
      for (const term of [this.hooks.extraLoss?.() ?? null, this.opts.callbacks?.extraLoss?.() ?? null]) {
        if (!term) continue;
        extra = (extra ?? 0) + term.item();
        total = F.add(total, extraScale === undefined ? term : F.scale(term, extraScale));
      }
      // a non-finite extra term makes the objective non-finite even when its gradient is not
      // (a constant NaN): report it so that fit() stops with ERR_NAN
      if (Number.isFinite(value) && (extra === null || Number.isFinite(extra))) backward(scale === 1 || extraScale !== undefined ? total : F.scale(total, scale));
      return { value, extra, figures: figures ?? {} };
    });
  }

  /**
   * One step of data-parallel training (lib/train/distributed/data_parallel.ts): this rank's
   * shards of the global micro-batches, their loss scales agreed over the ranks, backward with
   * the last micro-batch's gradient hooks starting the buckets' all-reduce, the step's figures
   * and flags reduced, then clipping and AdamW on the combined gradient (identical on every
   * rank). Returns the global figures and a plan standing for the whole step.
   */
  private async dataParallelStep(dp: DataParallel, batches: E[][], lr: number): Promise<{ plan: StepPlan; loss: number; extra: number | null; gradNorm: number; figures: Figures }> {
    const optimizer = this.optimizer;
    const shards = batches.map((b) => dp.shard(b));
    const mine = shards.filter((b) => b.length > 0);
    // a rank with no example in the step (a short last batch) plans nothing and sends zeros
    const local = mine.length ? await this.objective.plan(mine, { step: this.step }) : null;
    const micro = local?.updates[0] ?? [];
    if (local && (local.updates.length !== 1 || micro.length !== mine.length)) {
      throw new TunekitError('ERR_UNSUPPORTED', `data-parallel training needs one micro-batch per loader batch in one update; objective ${this.objective.name} planned ${local.updates.map((u) => u.length).join(' + ')} for ${mine.length} batches`);
    }
    const localCounts = local?.counts?.[0];
    let k = 0;
    const counts = shards.map((b) => (b.length === 0 ? null : localCounts ? localCounts[k++]! : 1));
    const scales = dp.stepScales(counts, localCounts !== undefined);
    let loss = 0, extra: number | null = null, nonFinite = false, armed = false, m = 0;
    const figures: Figures = {};
    for (let a = 0; a < shards.length && !nonFinite; a++) {
      if (shards[a]!.length === 0) continue;
      const fn = micro[m++]!;
      if (m === micro.length) {
        dp.armGradients();
        armed = true;
      }
      const r = this.microStep(fn, scales.loss[a]!, scales.extra[a]!);
      // a non-finite loss is not thrown at once: every rank learns it from the step's reduction
      // and stops together (a rank that left alone would hold the others in the all-reduce)
      if (!Number.isFinite(r.value + (r.extra ?? 0))) nonFinite = true;
      loss += scales.loss[a]! * r.value;
      if (r.extra !== null) extra = (extra ?? 0) + scales.extra[a]! * r.extra;
      for (const [key, v] of Object.entries(r.figures)) figures[key] = (figures[key] ?? 0) + scales.loss[a]! * v;
    }
    if (!armed) dp.armGradients();
    dp.finishGradients();
    const g = dp.reduceStep({ loss, extra, tokens: local?.tokens ?? 0, figures, nonFinite, interrupted: this.interrupted });
    if (g.interrupted) this.interrupted = true;
    if (g.nonFinite) {
      optimizer.zeroGrad();
      throw new TunekitError('ERR_NAN', `loss became non-finite at step ${this.step + 1} on ${nonFinite ? `rank ${dp.rank}` : 'another rank'}; training stopped${this.checkpointNote()}. Try a lower learning rate or gradient clipping.`);
    }
    const gradNorm = clipGradNorm(optimizer.params, this.settings.maxGradNorm);
    if (!Number.isFinite(gradNorm)) {
      optimizer.zeroGrad();
      throw new TunekitError('ERR_NAN', `gradient norm became ${gradNorm} at step ${this.step + 1}; training stopped${this.checkpointNote()}. Try a lower learning rate.`);
    }
    optimizer.step(lr);
    this.opts.callbacks?.afterOptimizerStep?.(optimizer.stepCount);
    this.hooks.afterOptimizerStep?.(optimizer.stepCount, this.totalUpdates);
    optimizer.zeroGrad();
    return { plan: { updates: [micro], tokens: g.tokens }, loss: g.loss, extra: g.extra, gradNorm, figures: g.figures };
  }

  /**
   * Runs training to the end (or early stop / SIGINT), from the start or from a checkpoint
   * folder. Once per Trainer: the optimizer state is released when it ends.
   *
   * A resume is refused (before any file changes) when the checkpoint is incomplete or
   * corrupt (ERR_FORMAT), was written with another run config or objective (ERR_CONFIG, naming
   * the fields), or is past or at the end of this run (ERR_STATE). metrics.jsonl is cut back to
   * the checkpoint's step, so that no step appears twice; a run from the start begins a new one.
   *
   * @example const result = await new Trainer({ model, task: 'seq_cls', train, eval, padTokenId: 0 }).fit();
   */
  async fit(opts: FitOptions = {}): Promise<FitResult<Awaited<R>>> {
    if (this.fitStarted) throw new TunekitError('ERR_STATE', 'fit() already ran on this Trainer; make a new Trainer (and fit({ resumeFrom }) its checkpoint to continue)');
    this.fitStarted = true;
    const log = opts.log ?? this.opts.log;
    try {
      let from = opts.resumeFrom;
      let checked: TrainerState | undefined;
      if (opts.resume) {
        if (from !== undefined) throw new TunekitError('ERR_VALUE', 'fit: give resume or resumeFrom, not both');
        if (!this.outputDir) throw new TunekitError('ERR_STATE', 'fit({ resume: true }) needs an outputDir to find the checkpoint in');
        const outputDir = this.outputDir;
        if (this.dp && this.dp.rank > 0) {
          // rank 0 checks the folder and recovers an interrupted save; the others read what it
          // installed (the output folder must be readable by every rank: shared, or copied)
          from = this.dp.shareFromRoot<{ dir: string }>(() => ({ dir: '' }), 'broadcast of the checkpoint to resume from').dir;
        } else {
          // the checks run on the newest complete checkpoint before recovery moves anything
          const ck = await requireCheckpoint(outputDir, { accept: (state, dir) => this.checkResumable(dir, state, this.totalSteps) });
          if (ck.recoveredFrom) log?.(`recovered the checkpoint of step ${ck.step} from ${ck.recoveredFrom} (a save was interrupted)`);
          if (ck.removed.length) log?.(`removed older or incomplete checkpoint folders: ${ck.removed.join(', ')}`);
          log?.(`resuming from ${ck.dir} (step ${ck.step} of ${this.totalSteps})`);
          this.dp?.shareFromRoot(() => ({ dir: ck.dir }), 'broadcast of the checkpoint to resume from');
          from = ck.dir;
          checked = ck.state;
        }
      }
      return await this.run(from, checked);
    } finally {
      this.dispose();
    }
  }

  /** `checkedState`: resumeFrom's state when it was just verified (the hashes are not read twice) */
  private async run(resumeFrom: string | undefined, checkedState?: TrainerState): Promise<FitResult<Awaited<R>>> {
    const s = this.settings;
    const total = this.totalSteps;
    const totalUpdates = this.totalUpdates;
    // data-parallel: rank 0 writes every file (metrics, checkpoints, plots)
    const writes = !this.dp || this.dp.rank === 0;
    const metricsPath = this.outputDir && writes ? join(this.outputDir, 'metrics.jsonl') : null;
    if (resumeFrom) {
      const state = checkedState ?? (await readCheckpoint(resumeFrom)).state;
      if (!checkedState) this.checkResumable(resumeFrom, state, total);
      await this.restore(resumeFrom, state);
      if (metricsPath && existsSync(metricsPath)) truncateMetrics(metricsPath, this.step);
    } else if (metricsPath && existsSync(metricsPath)) {
      // a run from the start owns its folder: an earlier run's lines would repeat its steps
      writeFileAtomicSync(metricsPath, '');
    }
    const warmupSteps = s.warmupSteps > 0 ? s.warmupSteps : warmupFromRatio(s.warmupRatio, total);
    const schedule = makeLrSchedule({ schedule: s.schedule, warmupSteps, totalSteps: total, baseLr: s.lr });
    const metricsLog = metricsPath ? new MetricsLog(metricsPath) : null;
    // with a `log`, plain progress lines go to it too (RLHF trainers print through the caller's logger)
    const sink = this.opts.log;
    const progress = new ProgressReporter({
      total, mode: writes ? this.opts.progress ?? (sink ? 'plain' : 'auto') : 'none', every: s.logEvery, startStep: this.step,
      ...(sink ? { stream: lineStream(sink) } : {}),
    });
    const say = !writes ? () => undefined : sink ?? ((line: string) => progress.log(line));
    const onSigint = () => {
      this.interrupted = true;
    };
    process.once('SIGINT', onSigint);
    // data-parallel: `--nproc`'s launcher turns Ctrl-C into the signal mpirun forwards to every
    // rank (Open MPI: SIGUSR2, MPICH: SIGUSR1)
    if (this.dp) for (const sig of ['SIGUSR1', 'SIGUSR2'] as const) process.once(sig, onSigint);
    const wasTraining = this.model.training;
    this.model.train(this.objective.dropout);
    const optimizer = this.optimizer;
    if (this.dp) {
      // DDP's start: rank 0's weights everywhere (initialised from the seed, or restored), the
      // ranks at the same step and data position, the gradient buckets and their hooks
      const position = this.loader.state();
      this.dp.syncState(this.trainableParameters(), { step: this.step, epoch: position.epoch, example: position.index, optimizer_steps: optimizer.stepCount });
      this.dp.attach(this.trainableParameters());
    }
    const evals: { step: number; result: Awaited<R> }[] = [];
    let status: FitResult['status'] = 'completed';
    let lastLoss = NaN;
    let lastTrain: Figures = {};
    let tokensSeen = 0;
    const t0 = performance.now();
    // evaluation and saving are timed apart, so that trainSeconds (and tokens/s) is training alone
    let evalMs = 0, saveMs = 0;
    resetPeakMemory();
    const evaluateAt = async (step: number, epoch: number): Promise<boolean> => {
      // data-parallel: rank 0 evaluates; its result (and so every early-stopping decision) is every rank's
      const te = performance.now();
      const result = this.dp ? await this.dp.fromRoot(() => this.evaluate()) : await this.evaluate();
      evalMs += performance.now() - te;
      evals.push({ step, result });
      this.opts.callbacks?.onEval?.(step, result);
      metricsLog?.append({ step, epoch, split: 'eval', ...(result as Record<string, number>) });
      say(`eval @ step ${step}: ${this.objective.describeEval?.(result) ?? describeFigures(result as Figures)}`);
      return this.improved(result);
    };
    try {
      if (this.step === 0 && this.evalExamples.length && (s.evalOnStart ?? this.objective.evalOnStart ?? false)) {
        await evaluateAt(0, 0);
      }
      while (this.step < total) {
        const ts = performance.now();
        // data-parallel: each rank's dropout masks come from (seed, step, rank), so that ranks
        // differ and a resumed run draws what the uninterrupted one did
        if (this.dp && this.objective.dropout) manualSeed(this.dp.stepSeed(s.seed, this.step));
        const batches: E[][] = [];
        let epoch = 0;
        // epochs done, with the fraction of the current one (the progress line's "epoch 0.36", as transformers logs it)
        let epochsDone = 0;
        // true when this step consumed the last batch of an epoch (with gradient accumulation
        // an epoch can end inside a step; that step ends the epoch)
        let epochEnded = false;
        for (let micro = 0; micro < s.gradAccum; micro++) {
          const { data, epoch: e, batchIndex } = this.loader.next();
          batches.push(data);
          epoch = e;
          epochsDone = e + (batchIndex + 1) / this.loader.batchesPerEpoch;
          if (batchIndex === this.loader.batchesPerEpoch - 1) epochEnded = true;
        }
        const lr = schedule.lrAt(this.step);
        let lossSum = 0, normSum = 0, extraSum: number | null = null, micros = 0;
        const figureSums: Figures = {};
        let plan: StepPlan;
        if (this.dp) {
          const r = await this.dataParallelStep(this.dp, batches, lr);
          plan = r.plan;
          lossSum = r.loss;
          normSum = r.gradNorm;
          extraSum = r.extra;
          micros = 1;
          Object.assign(figureSums, r.figures);
        } else {
          plan = await this.objective.plan(batches, { step: this.step });
          if (plan.updates.length === 0 || plan.updates.some((u) => u.length === 0)) {
            throw new TunekitError('ERR_VALUE', `objective ${this.objective.name} planned an empty update at step ${this.step + 1}`);
          }
          for (const [u, update] of plan.updates.entries()) {
            let updateLoss = 0;
            for (const micro of update) {
              const r = this.microStep(micro, 1 / update.length);
              const totalValue = r.value + (r.extra ?? 0);
              if (!Number.isFinite(totalValue)) {
                optimizer.zeroGrad();
                throw new TunekitError('ERR_NAN', `loss became ${totalValue} at step ${this.step + 1}; training stopped${this.checkpointNote()}. Try a lower learning rate or gradient clipping.`);
              }
              updateLoss += r.value;
              if (r.extra !== null) extraSum = (extraSum ?? 0) + r.extra;
              for (const [k, v] of Object.entries(r.figures)) figureSums[k] = (figureSums[k] ?? 0) + v;
              micros++;
            }
            lossSum += updateLoss / update.length;
            const norm = clipGradNorm(optimizer.params, s.maxGradNorm);
            if (!Number.isFinite(norm)) {
              optimizer.zeroGrad();
              throw new TunekitError('ERR_NAN', `gradient norm became ${norm} at step ${this.step + 1}; training stopped${this.checkpointNote()}. Try a lower learning rate.`);
            }
            normSum += norm;
            optimizer.step(lr);
            this.opts.callbacks?.afterOptimizerStep?.(optimizer.stepCount);
            this.hooks.afterOptimizerStep?.(optimizer.stepCount, totalUpdates);
            optimizer.zeroGrad();
            // several updates (PPO's optimisation phase): let the event loop breathe between them
            if (u + 1 < plan.updates.length) await yieldToLoop();
          }
        }
        const after = this.objective.afterStep?.(plan) ?? {};
        this.step++;
        const loss = lossSum / plan.updates.length;
        const gradNorm = normSum / plan.updates.length;
        const figures: Figures = { ...Object.fromEntries(Object.entries(figureSums).map(([k, v]) => [k, v / micros])), ...plan.figures, ...after };
        lastLoss = loss;
        tokensSeen += plan.tokens;
        const stepSeconds = (performance.now() - ts) / 1000;
        const info: StepInfo = { step: this.step, epoch, loss, lr, gradNorm, tokens: plan.tokens, stepSeconds, figures, updates: optimizer.stepCount };
        lastTrain = { loss, ...figures, lr, grad_norm: gradNorm };
        this.opts.callbacks?.onStep?.(info);
        progress.update(this.step, { loss, lr, tokens: plan.tokens, epoch: epochsDone, figures });
        const finished = this.step === total;
        if (metricsLog && (this.step % s.logEvery === 0 || finished)) {
          metricsLog.append({
            step: this.step, epoch, split: 'train', loss, ...(extraSum !== null ? { extra_loss: extraSum / micros } : {}), ...figures,
            lr, grad_norm: gradNorm, tokens_per_s: plan.tokens / stepSeconds,
          });
        }
        const evalNow = s.evalEvery > 0 ? this.step % s.evalEvery === 0 : epochEnded;
        if (this.evalExamples.length && (evalNow || finished)) {
          if (await evaluateAt(this.step, epoch)) this.badEvals = 0;
          else if (s.earlyStoppingPatience > 0 && ++this.badEvals >= s.earlyStoppingPatience) status = 'early_stopped';
        }
        if (this.interrupted && !finished && status === 'completed') status = 'interrupted';
        const saveNow = s.saveEvery > 0 ? this.step % s.saveEvery === 0 : epochEnded;
        if (this.outputDir && (saveNow || finished || status !== 'completed')) {
          const tw = performance.now();
          if (writes) await this.saveCheckpoint(status === 'completed' ? (finished ? 'completed' : 'running') : status);
          else this.lastCheckpoint = { dir: join(this.outputDir, CHECKPOINT_DIR), step: this.step };
          saveMs += performance.now() - tw;
        }
        if (status !== 'completed') break;
        await yieldToLoop();
      }
    } finally {
      process.removeListener('SIGINT', onSigint);
      process.removeListener('SIGUSR1', onSigint);
      process.removeListener('SIGUSR2', onSigint);
      progress.stop();
      metricsLog?.close();
      this.model.train(wasTraining);
      this.dp?.dispose();
    }
    const tc = performance.now();
    if (metricsPath && existsSync(metricsPath)) await this.writeCharts(readMetrics(metricsPath));
    saveMs += performance.now() - tc;
    const trainSeconds = Math.max(1e-9, (performance.now() - t0 - evalMs - saveMs) / 1000);
    return {
      steps: this.step, status, lastTrainLoss: lastLoss, lastTrain, evals, trainSeconds, evalSeconds: evalMs / 1000, saveSeconds: saveMs / 1000,
      tokensPerSecond: tokensSeen / trainSeconds, peakBytes: memoryStats().peakBytes, device: this.device, deviceNote: this.deviceNote,
    };
  }

  /** loss.svg for every objective, and the objective's own charts (PPO: ppo.svg), from metrics.jsonl. */
  private async writeCharts(records: MetricsRecord[]): Promise<void> {
    const dir = this.outputDir!;
    const o = this.objective;
    await writeLossPlot(records, join(dir, 'loss.svg'), { title: o.chartTitle ?? 'tunekit training', ...(o.chartMetric ? { metricKey: o.chartMetric } : {}) });
    for (const chart of o.charts?.(records) ?? []) writePanelsPlot(chart.title, chart.panels, join(dir, chart.file));
  }

  /** " (<which checkpoint is on disk>)" for a stopped run's message; '' without an output folder. */
  private checkpointNote(): string {
    if (!this.outputDir) return '';
    if (this.lastCheckpoint) return ` (the last good checkpoint, step ${this.lastCheckpoint.step}, is kept in ${this.lastCheckpoint.dir})`;
    const when = this.settings.saveEvery > 0 ? `save_every is ${this.settings.saveEvery} steps` : 'save_every 0 writes one at the end of each epoch';
    return ` (no checkpoint of this run was written before it: ${when})`;
  }

  /** The eval figure early stopping watches, for this result. */
  watched(result: Awaited<R>): WatchedMetric {
    const s = this.settings;
    const named = s.earlyStoppingMetric ?? this.opts.metric ?? null;
    if (named === null) {
      const own = this.objective.defaultWatch(result);
      return s.earlyStoppingMode ? { key: own.key, mode: s.earlyStoppingMode } : own;
    }
    const key = named.startsWith('eval_') ? named.slice(5) : named;
    const mode = s.earlyStoppingMode ?? (key === 'accuracy' || key === 'f1' || key === 'score' ? 'max' : 'min');
    return { key, mode };
  }

  /** Whether an evaluation beats the best one so far (by more than the minimum delta); it becomes the best. */
  private improved(result: Awaited<R>): boolean {
    const { key, mode } = this.watched(result);
    let value = (result as Record<string, unknown>)[key];
    // the older `metric` option counted a missing figure as 0 (accuracy of a causal LM without choice items)
    if (value === undefined && this.settings.earlyStoppingMetric == null && this.opts.metric) value = 0;
    if (typeof value !== 'number') {
      if (this.settings.earlyStoppingPatience === 0) return false; // nothing watches it
      const have = Object.keys(result as object).filter((k) => typeof (result as Record<string, unknown>)[k] === 'number');
      throw new TunekitError('ERR_CONFIG', `early stopping watches '${key}', but the ${this.objective.name} evaluation reports ${have.join(', ')}; name one of them (early_stopping.metric: eval_<name>)`);
    }
    return this.better(value, mode);
  }

  private better(raw: number, mode: 'min' | 'max'): boolean {
    // stored as a figure to maximise, so that best/badEvals mean the same for every metric
    const v = mode === 'max' ? raw : -raw;
    if (this.best === null || v > this.best + this.settings.earlyStoppingMinDelta) {
      this.best = v;
      return true;
    }
    return false;
  }

  /**
   * The objective's evaluation on the eval set (or the examples given), without gradients and
   * with the model in eval mode meanwhile (its mode is restored after).
   * @example const { loss, accuracy } = trainer.evaluate();
   */
  evaluate(examples: E[] = this.evalExamples): R {
    const wasTraining = this.model.training;
    this.model.eval();
    const ctx = { batchSize: this.settings.evalBatchSize ?? this.settings.batchSize * 2, evalSplit: examples === this.evalExamples };
    let result: R;
    try {
      result = this.objective.evaluate(examples, ctx);
    } catch (e) {
      this.model.train(wasTraining);
      throw e;
    }
    if (result instanceof Promise) return result.finally(() => this.model.train(wasTraining)) as R;
    this.model.train(wasTraining);
    return result;
  }

  // ------------------------------------------------------------------ checkpoints

  /**
   * Writes <outputDir>/checkpoint so that a crash at any point leaves a complete checkpoint
   * (checkpoint.ts). `status` records where the run stands (a resume of a finished run is refused).
   * Files are written through promises, one tensor at a time; fit() saves this way.
   * @example await trainer.saveCheckpoint(); // -> 'runs/x/checkpoint'
   */
  async saveCheckpoint(status: CheckpointStatus = 'running'): Promise<string> {
    const { optimizer, model, state, outputDir } = this.checkpointParts(status);
    const dir = await writeCheckpoint(outputDir, {
      writeWeights: async (d) => {
        if (model instanceof PeftModel) await model.saveAdapter(join(d, 'adapter'));
        else await savePretrained(model, join(d, 'model'));
        for (const [key, m] of this.extraModules) await writeSafetensors(join(d, `${key}.safetensors`), m.namedParameters().map(([n, p]) => rawFromTensor(n, p)));
      },
      writeOptimizer: (f) => writeSafetensors(f, optimizer.stateTensors(), { step: String(optimizer.stepCount) }),
      state,
    });
    this.lastCheckpoint = { dir, step: this.step };
    return dir;
  }

  /**
   * The blocking form of {@link saveCheckpoint}: the same files.
   * @example trainer.saveCheckpointSync(); // -> 'runs/x/checkpoint'
   */
  saveCheckpointSync(status: CheckpointStatus = 'running'): string {
    const { optimizer, model, state, outputDir } = this.checkpointParts(status);
    const dir = writeCheckpointSync(outputDir, {
      writeWeights: (d) => {
        if (model instanceof PeftModel) model.saveAdapterSync(join(d, 'adapter'));
        else savePretrainedSync(model, join(d, 'model'));
        for (const [key, m] of this.extraModules) writeSafetensorsSync(join(d, `${key}.safetensors`), m.namedParameters().map(([n, p]) => rawFromTensor(n, p)));
      },
      writeOptimizer: (f) => writeSafetensorsSync(f, optimizer.stateTensors(), { step: String(optimizer.stepCount) }),
      state,
    });
    this.lastCheckpoint = { dir, step: this.step };
    return dir;
  }

  private checkpointParts(status: CheckpointStatus): { optimizer: AdamW; model: TrainableModel; state: TrainerState; outputDir: string } {
    if (!this.outputDir) throw new TunekitError('ERR_STATE', 'saveCheckpoint needs an outputDir');
    const state: TrainerState = {
      version: 2, step: this.step, totalSteps: this.totalSteps, status, loader: this.loader.state(), seedState: getSeedState(),
      best: this.best, badEvals: this.badEvals, runConfig: this.storedRunConfig,
      objective: { name: this.objective.name, state: this.objective.state?.() ?? null },
    };
    return { optimizer: this.optimizer, model: this.model, state, outputDir: this.outputDir };
  }

  /**
   * Restores weights, optimizer, data position, RNG and the objective's state from a checkpoint
   * folder, after checking it: incomplete or corrupt is ERR_FORMAT, another run config or
   * objective ERR_CONFIG (naming the fields), a step above this run's steps ERR_STATE. The
   * check (sizes and sha256 of every file in the manifest), the weights and the optimizer state
   * are read through promises.
   * @example await trainer.loadCheckpoint('runs/x/checkpoint');
   */
  async loadCheckpoint(dir: string): Promise<void> {
    const { state } = await readCheckpoint(dir);
    this.checkConfig(dir, state);
    this.checkStep(dir, state, this.totalSteps);
    await this.restore(dir, state);
  }

  /**
   * The blocking form of {@link loadCheckpoint}.
   * @example trainer.loadCheckpointSync('runs/x/checkpoint');
   */
  loadCheckpointSync(dir: string): void {
    const { state } = readCheckpointSync(dir);
    this.checkConfig(dir, state);
    this.checkStep(dir, state, this.totalSteps);
    this.restoreSync(dir, state);
  }

  /** The run config checkpoints record: the caller's, plus the number of ranks of a data-parallel run. */
  private get storedRunConfig(): Record<string, unknown> | null {
    return this.dp ? { ...(this.opts.runConfig ?? {}), world_size: this.dp.size } : this.opts.runConfig ?? null;
  }

  private checkConfig(dir: string, state: TrainerState): void {
    // the data order, the steps and each step's examples depend on the number of ranks
    const wrote = worldSizeOf(state.runConfig), ranks = this.dp?.size ?? 1;
    if (wrote !== ranks) {
      const as = (n: number) => (n === 1 ? 'one process' : `${n} ranks`);
      throw new TunekitError('ERR_CONFIG', `refusing to resume from ${dir}: it was written by a run of ${as(wrote)}, this run has ${as(ranks)}; a step's examples (batch_size x ranks x grad_accum), the data position and the step count depend on the number of ranks. Resume with ${wrote === 1 ? 'no --nproc' : `--nproc ${wrote}`}, or start a new run in another output folder.`);
    }
    // files written before objectives were recorded come from supervised runs
    const written = state.objective?.name ?? null;
    const supervised = this.objective instanceof SupervisedObjective;
    if (written === null ? !supervised : written !== this.objective.name) {
      throw new TunekitError('ERR_CONFIG', `refusing to resume from ${dir}: it was written by ${written === null ? 'a supervised run' : `the '${written}' objective`}, this run trains '${this.objective.name}'`);
    }
    const diff = configDiff(state.runConfig, this.storedRunConfig);
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

  private async restore(dir: string, state: TrainerState): Promise<void> {
    if (this.model instanceof PeftModel) await this.model.loadAdapterWeights(join(dir, 'adapter'));
    else await loadWeights(this.model, join(dir, 'model'), this.model.task);
    for (const [key, m] of this.extraModules) {
      const file = join(dir, `${key}.safetensors`);
      const r = await openSafetensors(file);
      try {
        loadModuleTensors(m, file, r.names, await readAll(r, m.namedParameters().map(([n]) => n).filter((n) => r.has(n))));
      } finally {
        await r.close();
      }
    }
    const file = join(dir, OPTIMIZER_FILE);
    const r = await openSafetensors(file);
    try {
      this.restoreOptimizer(file, r.metadata, await readAll(r, r.names), state);
    } finally {
      await r.close();
    }
    this.restoreState(dir, state);
  }

  /** The blocking form of {@link restore}. */
  private restoreSync(dir: string, state: TrainerState): void {
    if (this.model instanceof PeftModel) this.model.loadAdapterWeightsSync(join(dir, 'adapter'));
    else loadWeightsSync(this.model, join(dir, 'model'), this.model.task);
    for (const [key, m] of this.extraModules) {
      const file = join(dir, `${key}.safetensors`);
      const r = openSafetensorsSync(file);
      try {
        const names = m.namedParameters().map(([n]) => n).filter((n) => r.has(n));
        loadModuleTensors(m, file, r.names, new Map(names.map((n) => [n, r.readTensor(n)] as const)));
      } finally {
        r.close();
      }
    }
    const file = join(dir, OPTIMIZER_FILE);
    const r = openSafetensorsSync(file);
    try {
      this.restoreOptimizer(file, r.metadata, new Map(r.names.map((n) => [n, r.readTensor(n)] as const)), state);
    } finally {
      r.close();
    }
    this.restoreState(dir, state);
  }

  private restoreOptimizer(file: string, metadata: Readonly<Record<string, string>>, tensors: Map<string, RawTensor>, state: TrainerState): void {
    const stepCount = metadata.step === undefined ? state.step : Number(metadata.step);
    if (!Number.isSafeInteger(stepCount) || stepCount < 0) throw new TunekitError('ERR_FORMAT', `${file}: expected a non-negative integer for metadata.step but received ${JSON.stringify(metadata.step)}`);
    this.optimizer.loadStateTensors(tensors, stepCount);
  }

  /** What a checkpoint restores beside the tensors: the objective's state, data position, RNG, counters. */
  private restoreState(dir: string, state: TrainerState): void {
    const objectiveState = state.objective?.state ?? null;
    if (this.objective.restoreState) {
      if (!objectiveState) throw new TunekitError('ERR_FORMAT', `${join(dir, TRAINER_STATE_FILE)}: expected the ${this.objective.name} objective's state but received ${describe(objectiveState)}`);
      this.objective.restoreState(objectiveState, join(dir, TRAINER_STATE_FILE));
    }
    this.loader.restore(state.loader);
    setSeedState(state.seedState);
    this.step = state.step;
    this.best = state.best;
    this.badEvals = state.badEvals;
    this.lastCheckpoint = { dir, step: state.step };
  }
}

/** Reads the named tensors of an open file one at a time (the event loop runs between them). */
async function readAll(r: { readTensor(name: string): Promise<RawTensor> }, names: readonly string[]): Promise<Map<string, RawTensor>> {
  const out = new Map<string, RawTensor>();
  for (const n of names) out.set(n, await r.readTensor(n));
  return out;
}

/**
 * Sets a module's parameters from the tensors read from the safetensors file a checkpoint wrote
 * for it (`fileNames`: every name in the file, for the error of a missing one).
 */
function loadModuleTensors(m: Module, file: string, fileNames: readonly string[], tensors: ReadonlyMap<string, RawTensor>): void {
  for (const [name, p] of m.namedParameters()) {
    const raw = tensors.get(name);
    if (!raw) throw new TunekitError('ERR_FORMAT', `${file}: expected a tensor '${name}' but the file has ${fileNames.join(', ') || 'none'}`);
    if (raw.shape.join() !== p.shape.join()) throw new TunekitError('ERR_SHAPE', `${file}: '${name}' is [${raw.shape}] but the module's parameter is [${p.shape}]`);
    const t = f32FromRaw(raw);
    p.assign(t);
    t.dispose();
  }
}

/** The ranks of the run that wrote a checkpoint (its run config's world_size; 1 when absent). */
function worldSizeOf(runConfig: Record<string, unknown> | null): number {
  const n = runConfig?.world_size;
  return typeof n === 'number' && Number.isSafeInteger(n) && n >= 1 ? n : 1;
}

/** A writable stream that hands each complete line to `log`. */
function lineStream(log: (line: string) => void): NodeJS.WritableStream & { isTTY: boolean } {
  let pending = '';
  return {
    isTTY: false,
    write(chunk: string | Uint8Array): boolean {
      pending += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8');
      const lines = pending.split('\n');
      pending = lines.pop()!;
      for (const line of lines) if (line) log(line);
      return true;
    },
  } as unknown as NodeJS.WritableStream & { isTTY: boolean };
}

/** "key value, ..." for figures without a describeEval. */
function describeFigures(f: Figures): string {
  return Object.entries(f).map(([k, v]) => `${k} ${typeof v !== 'number' || Number.isInteger(v) || Math.abs(v) >= 100 ? v : v.toFixed(4)}`).join(', ');
}

/** The settings given, without the keys set to undefined (they would hide the defaults). */
function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
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

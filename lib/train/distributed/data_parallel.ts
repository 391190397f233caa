/**
 * Data-parallel training: what the one Trainer (lib/train/trainer.ts) asks of the ranks when a
 * process group is given. Every rank holds the whole model and the same data loader, whose
 * batches are the *global* micro-batches (batch_size x ranks examples); each rank trains on its
 * shard of each (shard()), so a step covers batch_size x ranks x grad_accum examples.
 *
 * A step on every rank, in the same order (every collective below is matched across ranks by
 * its place in this sequence):
 *   1. stepScales(): one all-reduce of the step's loss-term counts per global micro-batch, so
 *      that rank r scales micro-batch a's loss by n(a, r) / (N(a) x grad_accum): the sum over
 *      ranks of the scaled gradients is then the gradient of one process on the combined batch
 *      (the mean over all of its targets), whatever the shards' sizes or padding. Objectives that
 *      report no counts weigh each non-empty shard the same (PyTorch DDP's average);
 *   2. the micro-batches' backward passes, the last one armed: its gradient hooks start the
 *      buckets' all-reduce while backward runs (reducer.ts); finishGradients() waits for them;
 *   3. reduceStep(): one all-reduce of the step's figures (loss, extra terms, tokens) and of the
 *      flags every rank must agree on (a non-finite loss: all stop with ERR_NAN; SIGINT on any
 *      rank: all save and stop at the same step).
 * Then clipping and AdamW run on identical gradients, so the ranks' weights stay identical.
 *
 * Rank 0 alone evaluates (fromRoot(): the result is broadcast, so early stopping decides the same
 * everywhere) and writes checkpoints, metrics, plots and the adapter. At the start, rank 0's
 * trainable parameters are broadcast once (as DDP does), and the ranks' step and data position
 * are checked to agree.
 */
import { Tensor } from '../../tensor/tensor.js';
import { TunekitError } from '../../errors.js';
import { deriveSeed } from '../../data/rng.js';
import type { Figures } from '../objective.js';
import { GradientReducer, type ReducerOptions, type ReductionReport } from './reducer.js';
import { allreduceNumbers, broadcastJson, type ProcessGroup } from './process_group.js';

export interface DataParallelOptions extends ReducerOptions {}

/** The scales of one step's micro-batches on this rank (indexed by global micro-batch). */
export interface StepScales {
  /** multiplies micro-batch a's objective loss before backward (0: no shard of a on this rank) */
  loss: number[];
  /** multiplies micro-batch a's extra terms (method regularisers, user terms): 1 / (ranks with a shard x micro-batches) */
  extra: number[];
}

/** What this rank computed in a step, before the reduction. */
export interface LocalStep {
  /** sum over its micro-batches of scale x loss */
  loss: number;
  /** sum over its micro-batches of extra scale x extra terms (null: none had extra terms) */
  extra: number | null;
  tokens: number;
  /** sum over its micro-batches of scale x figure */
  figures: Figures;
  nonFinite: boolean;
  interrupted: boolean;
}

/** A step's figures over all ranks. */
export interface GlobalStep {
  loss: number;
  extra: number | null;
  tokens: number;
  figures: Figures;
  nonFinite: boolean;
  interrupted: boolean;
}

/** Totals of a run's communication on this rank, for results.json and the log. */
export interface DataParallelSummary {
  world_size: number;
  backend: string;
  /** gradient buckets, and the bytes all-reduced per update (trainable parameters only, f32) */
  buckets: number;
  gradient_bytes_per_update: number;
  /** payload of every collective of the run on this rank, per optimizer step */
  bytes_per_step: number;
  /** wall seconds per step with a collective in flight (communication thread), overlapped or not */
  comm_seconds_per_step: number;
  /** seconds per step the training thread waited for the gradient all-reduce after backward */
  exposed_comm_seconds_per_step: number;
  /** share of buckets started by gradient hooks during backward */
  buckets_started_in_backward: number;
  steps: number;
}

/**
 * The ranks' side of a training run.
 * @example new Trainer({ model, task: 'seq_cls', train, distributed: new DataParallel(group) });
 */
export class DataParallel {
  private reducer: GradientReducer | null = null;
  private figureKeys: string[] | null = null;
  private steps = 0;
  private waitSeconds = 0;
  private inBackward = 0;
  private bucketsTotal = 0;
  private startStats: { bytes: number; busySeconds: number } | null = null;
  private layout = { buckets: 0, bytes: 0 };

  constructor(readonly group: ProcessGroup, private readonly opts: DataParallelOptions = {}) {}

  get rank(): number {
    return this.group.rank;
  }

  get size(): number {
    return this.group.size;
  }

  /**
   * This rank's contiguous part of a global micro-batch, the sizes as even as possible and the
   * larger parts first (rank 0 always has examples when the batch has any).
   * @example dp.shard([a, b, c, d, e]); // rank 0 of 2: [a, b, c]; rank 1: [d, e]
   */
  shard<E>(batch: readonly E[]): E[] {
    const n = batch.length, p = this.size, r = this.rank;
    const base = Math.floor(n / p), extra = n % p;
    const start = r * base + Math.min(r, extra);
    return batch.slice(start, start + base + (r < extra ? 1 : 0));
  }

  /** Builds the gradient buckets over the trainable parameters (once, when training starts). */
  attach(params: readonly [string, Tensor][]): void {
    this.reducer?.dispose();
    this.reducer = new GradientReducer(this.group, params, this.opts);
    this.layout = { buckets: this.reducer.buckets.length, bytes: this.reducer.bytesPerUpdate };
    const s = this.group.stats();
    this.startStats = { bytes: s.bytes, busySeconds: s.busySeconds };
  }

  /** Bytes of gradient all-reduced per update (known once attached). */
  get gradientBytes(): number {
    return this.layout.bytes;
  }

  /** Gradient buckets (known once attached). */
  get bucketCount(): number {
    return this.layout.buckets;
  }

  /**
   * Rank 0's values of `params` on every rank (DDP's broadcast of the initial state: adapters
   * initialised from the seed, or restored from a checkpoint, are the same everywhere), then a
   * check that every rank stands at the same place (`position`: step, epoch, example index ...).
   */
  syncState(params: readonly [string, Tensor][], position: Record<string, number>): void {
    const works = params.map(([name, p]) => {
      if (!p.isContiguous) throw new TunekitError('ERR_VALUE', `data-parallel training: parameter '${name}' is not contiguous`);
      return this.group.broadcast(p, 0, `broadcast of rank 0's '${name}'`);
    });
    for (const w of works) w.wait();
    const keys = Object.keys(position).sort();
    const values = keys.map((k) => position[k]!);
    const max = allreduceNumbers(this.group, values, 'max', 'all-reduce of the ranks\' positions');
    const min = allreduceNumbers(this.group, values, 'min', 'all-reduce of the ranks\' positions');
    const differ = keys.flatMap((k, i) => (max[i] !== min[i] ? [`${k} from ${min[i]} to ${max[i]}`] : []));
    if (differ.length) {
      throw new TunekitError('ERR_STATE', `rank ${this.rank}: the ranks do not start from the same place (${differ.join(', ')}); every rank must resume from the same checkpoint`);
    }
  }

  /**
   * The loss scales of this step's micro-batches on this rank (one all-reduce).
   * `counts[a]`: the loss terms of this rank's shard of global micro-batch a (null: no shard);
   * `weighted`: the objective reported counts (else every shard weighs the same).
   */
  stepScales(counts: readonly (number | null)[], weighted: boolean): StepScales {
    const A = counts.length;
    const mine = [...counts.map((c) => c ?? 0), ...counts.map((c) => (c === null ? 0 : 1)), weighted ? 1 : 0];
    const all = allreduceNumbers(this.group, mine, 'sum', 'all-reduce of the step\'s loss-term counts');
    const anyWeighted = all[2 * A]! > 0;
    const loss: number[] = [], extra: number[] = [];
    for (let a = 0; a < A; a++) {
      const total = all[a]!, ranksWithShard = all[A + a]!;
      const c = counts[a];
      if (c === null || ranksWithShard === 0) {
        loss.push(0);
        extra.push(0);
        continue;
      }
      loss.push(anyWeighted ? (total > 0 ? c / total / A : 0) : 1 / ranksWithShard / A);
      extra.push(1 / ranksWithShard / A);
    }
    return { loss, extra };
  }

  /** Call before the backward pass of this rank's last micro-batch of the update. */
  armGradients(): void {
    this.requireReducer().arm();
  }

  /** Waits for the gradient all-reduce: `.grad` is then the sum over ranks (the combined batch's gradient). */
  finishGradients(): ReductionReport {
    const report = this.requireReducer().finish();
    this.waitSeconds += report.waitSeconds;
    this.inBackward += report.startedInBackward;
    this.bucketsTotal += report.buckets;
    return report;
  }

  private requireReducer(): GradientReducer {
    if (!this.reducer) throw new TunekitError('ERR_STATE', 'DataParallel: attach() the trainable parameters first');
    return this.reducer;
  }

  /**
   * The step's figures over all ranks, and the flags every rank acts on (one all-reduce; the
   * figure names are rank 0's, agreed once).
   */
  reduceStep(local: LocalStep): GlobalStep {
    if (this.figureKeys === null) this.figureKeys = broadcastJson(this.group, Object.keys(local.figures).sort(), 0, 'broadcast of the objective\'s figure names') ?? [];
    const keys = this.figureKeys;
    const v = allreduceNumbers(this.group, [
      local.loss, local.extra ?? 0, local.extra === null ? 0 : 1, local.tokens, local.nonFinite ? 1 : 0, local.interrupted ? 1 : 0,
      ...keys.map((k) => local.figures[k] ?? 0),
    ], 'sum', 'all-reduce of the step\'s loss and flags');
    this.steps++;
    return {
      loss: v[0]!, extra: v[2]! > 0 ? v[1]! : null, tokens: v[3]!, nonFinite: v[4]! > 0, interrupted: v[5]! > 0,
      figures: Object.fromEntries(keys.map((k, i) => [k, v[6 + i]!])),
    };
  }

  /**
   * `fn` on rank 0 (evaluation), its JSON result on every rank: the others wait meanwhile (within
   * the group's timeout).
   */
  async fromRoot<T>(fn: () => T | Promise<T>): Promise<T> {
    const value = this.rank === 0 ? await fn() : (null as T);
    return broadcastJson(this.group, value, 0, 'broadcast of rank 0\'s evaluation');
  }

  /**
   * `fn()` on rank 0, its JSON value on every rank (the others do not call fn).
   * @example const { dir } = dp.shareFromRoot(() => ({ dir: recover() }));
   */
  shareFromRoot<T>(fn: () => T, label = 'broadcast of rank 0\'s state'): T {
    return broadcastJson(this.group, this.rank === 0 ? fn() : (null as T), 0, label);
  }

  /**
   * The dropout seed of a step on this rank: a function of (seed, step, rank) only, so that
   * ranks draw different masks and a resumed run draws the same ones as the uninterrupted run.
   */
  stepSeed(seed: number, step: number): number {
    return deriveSeed(deriveSeed(seed, step), this.rank + 1);
  }

  /** This rank's communication so far. */
  summary(): DataParallelSummary {
    const s = this.group.stats();
    const steps = Math.max(1, this.steps);
    const bytes = s.bytes - (this.startStats?.bytes ?? 0);
    const busy = s.busySeconds - (this.startStats?.busySeconds ?? 0);
    return {
      world_size: this.size, backend: this.group.backend, buckets: this.bucketCount, gradient_bytes_per_update: this.gradientBytes,
      bytes_per_step: bytes / steps, comm_seconds_per_step: busy / steps, exposed_comm_seconds_per_step: this.waitSeconds / steps,
      buckets_started_in_backward: this.bucketsTotal ? this.inBackward / this.bucketsTotal : 0, steps: this.steps,
    };
  }

  /** Frees the gradient buffers and removes the hooks (the group stays open). */
  dispose(): void {
    this.reducer?.dispose();
    this.reducer = null;
  }
}

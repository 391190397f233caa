/**
 * Learning-rate schedules with warm-up, matching transformers' `get_constant_schedule_with_warmup`,
 * `get_linear_schedule_with_warmup` and `get_cosine_schedule_with_warmup`: `lrAt(step)` is the
 * rate used for optimizer step `step` (0-based), i.e. `baseLr * lambda(step)` as LambdaLR gives
 * before the step's `scheduler.step()`. With warm-up the first step therefore has lr 0.
 */

import { TunekitError, describe } from '../errors.js';

export type ScheduleName = 'constant' | 'linear' | 'cosine';

export interface LrScheduleOptions {
  schedule: ScheduleName;
  baseLr: number;
  /** Total optimizer steps (needed by linear and cosine). */
  totalSteps: number;
  /** Warm-up steps; or give warmupRatio (steps = ceil(ratio * totalSteps), as transformers). */
  warmupSteps?: number;
  warmupRatio?: number;
  /** Cosine: number of waves (transformers' num_cycles, default 0.5 = decay to 0 once). */
  numCycles?: number;
}

/**
 * Warm-up steps for a ratio, as transformers' TrainingArguments.get_warmup_steps.
 *
 * @example
 * warmupFromRatio(0.06, 1000); // 60
 */
export function warmupFromRatio(ratio: number, totalSteps: number): number {
  return Math.ceil(ratio * totalSteps);
}

function check(opts: LrScheduleOptions): number {
  const { schedule, baseLr, totalSteps, warmupSteps, warmupRatio } = opts;
  if (schedule !== 'constant' && schedule !== 'linear' && schedule !== 'cosine') {
    throw new TunekitError('ERR_VALUE', `Expected 'constant', 'linear' or 'cosine' for schedule but received ${describe(schedule)}`);
  }
  if (!(typeof baseLr === 'number' && baseLr >= 0 && Number.isFinite(baseLr))) {
    throw new TunekitError('ERR_VALUE', `Expected a finite number >= 0 for baseLr but received ${describe(baseLr)}`);
  }
  if (!Number.isInteger(totalSteps) || totalSteps < 1) {
    throw new TunekitError('ERR_VALUE', `Expected a positive integer for totalSteps but received ${describe(totalSteps)}`);
  }
  if (warmupSteps !== undefined && warmupRatio !== undefined && warmupSteps > 0 && warmupRatio > 0) {
    throw new TunekitError('ERR_VALUE', `Expected warmupSteps or warmupRatio but received both (${warmupSteps} and ${warmupRatio})`);
  }
  if (warmupSteps !== undefined && (!Number.isInteger(warmupSteps) || warmupSteps < 0)) {
    throw new TunekitError('ERR_VALUE', `Expected a non-negative integer for warmupSteps but received ${describe(warmupSteps)}`);
  }
  if (warmupRatio !== undefined && !(warmupRatio >= 0 && warmupRatio < 1)) {
    throw new TunekitError('ERR_VALUE', `Expected a number in [0, 1) for warmupRatio but received ${describe(warmupRatio)}`);
  }
  return warmupSteps && warmupSteps > 0 ? warmupSteps : warmupFromRatio(warmupRatio ?? 0, totalSteps);
}

/**
 * The multiplier lambda(step) of a schedule (the lr is baseLr * lambda).
 *
 * @example
 * lrLambda(50, 'linear', 10, 110); // 0.6
 */
export function lrLambda(step: number, schedule: ScheduleName, warmup: number, totalSteps: number, numCycles = 0.5): number {
  if (step < warmup) return step / Math.max(1, warmup);
  if (schedule === 'constant') return 1;
  if (schedule === 'linear') return Math.max(0, (totalSteps - step) / Math.max(1, totalSteps - warmup));
  const progress = (step - warmup) / Math.max(1, totalSteps - warmup);
  return Math.max(0, 0.5 * (1 + Math.cos(Math.PI * numCycles * 2 * progress)));
}

/**
 * Learning rate at optimizer step `step` (0-based). Pure.
 *
 * @example
 * lrAt(0, { schedule: 'cosine', baseLr: 2e-4, totalSteps: 1000, warmupRatio: 0.1 });   // 0
 * lrAt(100, { schedule: 'cosine', baseLr: 2e-4, totalSteps: 1000, warmupRatio: 0.1 }); // 2e-4
 */
export function lrAt(step: number, opts: LrScheduleOptions): number {
  const warmup = check(opts);
  if (!Number.isInteger(step) || step < 0) throw new TunekitError('ERR_VALUE', `Expected a non-negative integer for step but received ${describe(step)}`);
  return opts.baseLr * lrLambda(step, opts.schedule, warmup, opts.totalSteps, opts.numCycles);
}

/**
 * A schedule with its options validated once.
 *
 * @example
 * const sched = makeLrSchedule({ schedule: 'linear', baseLr: 1e-3, totalSteps: 500, warmupSteps: 50 });
 * optimizer.lr = sched.lrAt(step);
 */
export function makeLrSchedule(opts: LrScheduleOptions): { warmupSteps: number; totalSteps: number; lrAt(step: number): number } {
  const warmup = check(opts);
  return {
    warmupSteps: warmup,
    totalSteps: opts.totalSteps,
    lrAt: (step: number) => {
      if (!Number.isInteger(step) || step < 0) throw new TunekitError('ERR_VALUE', `Expected a non-negative integer for step but received ${describe(step)}`);
      return opts.baseLr * lrLambda(step, opts.schedule, warmup, opts.totalSteps, opts.numCycles);
    },
  };
}

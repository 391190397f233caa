/**
 * What `runTraining` (run.ts) asks of a method's job, and the registry that finds the job of a
 * config's `method`. A job knows its data, its model and its objective; the runner does the
 * rest the same way for every method (output folder, seed, threads, settings from the config,
 * the Trainer, --resume, results.json). The supervised job (run_supervised.ts) takes the
 * fine-tuning methods (full, head_only and every PEFT method); lib/rlhf registers reward, dpo and
 * ppo when it is imported (tunekit's index and its CLI import it), so that lib/train never
 * imports lib/rlhf.
 */
import { TunekitError } from '../errors.js';
import type { PretrainedModel } from '../models/common.js';
import type { Tokenizer } from '../tokenizer/index.js';
import type { TrainConfig } from './config.js';
import type { Objective } from './objective.js';
import type { TrainableModel } from './trainer.js';

/** What every step of a job can use. */
export interface RunJobContext {
  config: TrainConfig;
  /** the base model's folder (builtin names resolved) */
  modelDir: string;
  /** the base's tokenizer, read (through promises) on the first call; an image model's folder has none */
  loadTokenizer(): Promise<Tokenizer>;
  log: (line: string) => void;
}

/** A job's prepared data. */
export interface RunJobData<E> {
  train: E[];
  eval: E[];
  /** what one example is, for the log line ('examples', 'preference pairs', 'prompts') */
  unit: string;
  /** class or tag names (classification), written to results.json */
  labels?: string[];
}

/** The model a job trains, and the base it wraps (its size is reported). */
export interface RunJobModel {
  model: TrainableModel;
  base: PretrainedModel;
}

/**
 * A method's job: data preparation, model wrapping, the objective, the final artefacts.
 * @example registerRunJob(['dpo'], { prepareData, buildModel, objective, writeOutputs });
 */
export interface RunJob<E = unknown, R = unknown> {
  /** reads and prepares the config's dataset (refuses what the method cannot do before loading anything big) */
  prepareData(ctx: RunJobContext): Promise<RunJobData<E>>;
  /** loads the base for the job's task (through promises) and wraps it for the config's method */
  buildModel(ctx: RunJobContext, data: RunJobData<E>): Promise<RunJobModel>;
  /**
   * the objective that trains the model; built before any checkpoint is restored (the model is at
   * its initial weights); a promise when it loads something (PPO: the reward model)
   */
  objective(ctx: RunJobContext, model: TrainableModel, data: RunJobData<E>): Objective<E, R> | Promise<Objective<E, R>>;
  /** writes the run's artefacts beside metrics.jsonl and checkpoint/ (adapter/, model/, label names) */
  writeOutputs(ctx: RunJobContext, model: TrainableModel, data: RunJobData<E>): Promise<void>;
}

/**
 * Which runs a job takes: a list of methods, a test of the method (the supervised job takes
 * every PEFT method), or a list of tasks (whatever the method: a task with its own data, as
 * images, has its own job).
 */
export type RunJobMatch = readonly string[] | ((method: string) => boolean) | { tasks: readonly string[] };

interface Entry {
  match: RunJobMatch;
  job: RunJob;
  name: string;
}

const entries: Entry[] = [];

/**
 * Registers the job of some methods (or tasks). A method already taken by a listed job is
 * refused (a second registration under the same name, as a module loaded twice, replaces the first).
 * @example registerRunJob('reward', ['reward'], rewardJob);
 */
export function registerRunJob<E, R>(name: string, match: RunJobMatch, job: RunJob<E, R>): void {
  const at = entries.findIndex((e) => e.name === name);
  if (at >= 0) entries.splice(at, 1);
  if (Array.isArray(match)) {
    for (const m of match as readonly string[]) {
      const owner = entries.find((e) => Array.isArray(e.match) && (e.match as readonly string[]).includes(m));
      if (owner) throw new TunekitError('ERR_CONFIG', `registerRunJob: method '${m}' already belongs to the '${owner.name}' job`);
    }
  }
  entries.push({ name, match, job: job as RunJob });
}

/**
 * The job that trains a config's method (a job registered for the config's task comes first,
 * then one listing the method, then one whose test takes it); none is ERR_CONFIG naming the
 * registered ones.
 * @example const job = runJobFor(config.method, config.task);
 */
export function runJobFor(method: string, task?: string): RunJob {
  const byTask = task === undefined ? undefined : entries.find((e) => typeof e.match === 'object' && !Array.isArray(e.match) && (e.match as { tasks: readonly string[] }).tasks.includes(task));
  const listed = entries.find((e) => Array.isArray(e.match) && (e.match as readonly string[]).includes(method));
  const tested = entries.find((e) => typeof e.match === 'function' && e.match(method));
  const found = byTask ?? listed ?? tested;
  if (found) return found.job;
  const names = entries.flatMap((e) => (Array.isArray(e.match) ? (e.match as readonly string[]) : [`(${e.name} job)`]));
  throw new TunekitError('ERR_CONFIG', `method '${method}': no training job is registered for it (registered: ${names.join(', ') || 'none'}). The reward, dpo and ppo jobs register when lib/rlhf is imported, as tunekit's index and CLI do.`);
}

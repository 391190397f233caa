/**
 * A whole training job from a validated config, for every method: the method's job
 * (run_job.ts) prepares the data and wraps the model and names the objective; the run itself is
 * the same for all: the output folder, the seed, the Trainer with the config's settings
 * (--resume included), the job's artefacts, and results.json beside metrics.jsonl, loss.svg and
 * checkpoint/.
 */
import { join } from 'node:path';
import { native } from '../native.js';
import { TunekitError, describe } from '../errors.js';
import { resolveModelPath } from '../models/builtin.js';
import { Tokenizer } from '../tokenizer/index.js';
import { writeJsonAtomicSync } from '../io/atomic.js';
import { prepareOutputDir } from '../io/output_dir.js';
import { manualSeed } from '../nn/random.js';
import { Trainer, type TrainerCallbacks, type TrainSettings } from './trainer.js';
import { warmupStepsFor, type TrainConfig } from './config.js';
import type { Objective } from './objective.js';
import { runJobFor, type RunJobContext } from './run_job.js';
import type { RunEval, RunResult } from './run_result.js';
// the jobs of lib/train register themselves: fine-tuning methods, and the image_cls task
import './run_supervised.js';
import './run_image.js';

export type { RunResult } from './run_result.js';

export interface RunOptions {
  /** continue from the newest complete checkpoint of the output folder (`tunekit train --resume`) */
  resume?: boolean;
  /** progress and summary lines (default: stderr) */
  log?: (line: string) => void;
  /** the Trainer's callbacks (onStep, onEval, afterOptimizerStep, extraLoss) */
  callbacks?: TrainerCallbacks<RunEval>;
}

/**
 * The Trainer settings a config asks for. Steps per epoch count whole accumulation groups of
 * whole (PPO) or partial batches.
 * @example const settings = trainSettingsFor(config, train.length, objective);
 */
export function trainSettingsFor(config: TrainConfig, trainExamples: number, objective: Pick<Objective<unknown>, 'dropLast'>): Partial<TrainSettings> {
  const t = config.training;
  const batchesPerEpoch = objective.dropLast ? Math.floor(trainExamples / t.batch_size) : Math.ceil(trainExamples / t.batch_size);
  const stepsPerEpoch = Math.max(1, Math.floor(batchesPerEpoch / t.grad_accum));
  const totalSteps = t.max_steps ?? Math.max(1, Math.floor(stepsPerEpoch * t.epochs));
  const es = t.early_stopping;
  return {
    epochs: t.epochs, maxSteps: totalSteps, batchSize: t.batch_size, gradAccum: t.grad_accum, lr: t.lr, weightDecay: t.weight_decay,
    warmupSteps: warmupStepsFor(t, totalSteps), schedule: t.schedule, maxGradNorm: t.max_grad_norm ?? 0,
    evalEvery: t.eval_every, saveEvery: t.save_every, seed: t.seed, logEvery: config.logging.every,
    earlyStoppingPatience: es?.patience ?? 0, earlyStoppingMetric: es?.metric ?? null, earlyStoppingMode: es?.mode ?? null, earlyStoppingMinDelta: es?.min_delta ?? 0,
  };
}

/**
 * `TUNEKIT_FAULT_SIGINT_AT_STEP=<n>` makes the process send itself SIGINT after step n, for
 * tests of Ctrl-C in a real `tunekit train` (the handler then saves a checkpoint and stops).
 */
function sigintFaultFromEnv(): ((step: number) => void) | null {
  const spec = process.env.TUNEKIT_FAULT_SIGINT_AT_STEP;
  if (!spec) return null;
  const at = Number(spec);
  if (!Number.isSafeInteger(at) || at < 1) throw new TunekitError('ERR_CONFIG', `TUNEKIT_FAULT_SIGINT_AT_STEP: expected a positive integer step but received ${describe(spec)}`);
  return (step) => {
    if (step === at) process.kill(process.pid, 'SIGINT');
  };
}

/**
 * Runs the job a config describes.
 * @example
 * const result = await runTraining(loadConfig('spam.yaml'));
 * console.log(result.eval?.accuracy);
 */
export async function runTraining(config: TrainConfig, opts: RunOptions = {}): Promise<RunResult> {
  const log = opts.log ?? ((s: string) => process.stderr.write(s + '\n'));
  // the output folder is checked (and made) before minutes of loading and training, not after
  prepareOutputDir(config.output_dir);
  // the seed decides initialisation (adapters, new heads, prompt encoders) as well as dropout and data order
  manualSeed(config.training.seed);
  if (config.training.threads > 0) native.setNumThreads(config.training.threads);
  if (config.training.dtype !== 'f32') throw new TunekitError('ERR_CONFIG', `training.dtype '${config.training.dtype}' is not supported yet on this build; use f32`);
  // a job registered for the task (image_cls: images, not text) comes before the method's
  const job = runJobFor(config.method, config.task);
  const modelDir = resolveModelPath(config.model);
  // read when a job asks for it: an image model's folder has no tokenizer
  let tokenizer: Tokenizer | null = null;
  const ctx: RunJobContext = { config, modelDir, get tokenizer() { return (tokenizer ??= Tokenizer.fromFolder(modelDir)); }, log };

  // 1. data preparation
  const data = await job.prepareData(ctx);
  if (data.train.length === 0) throw new TunekitError('ERR_VALUE', `the training split of ${config.dataset.path} produced no ${data.unit}`);
  // 2. model wrapping
  const { model, base } = job.buildModel(ctx, data);
  const trainable = model.countParameters(true);
  const totalParams = base.countParameters();
  log(`model ${config.model}: ${(totalParams / 1e6).toFixed(2)}M parameters, method ${config.method}: ${trainable.toLocaleString('en-US')} trainable (${((100 * trainable) / totalParams).toFixed(3)}%)`);
  log(`data: ${data.train.length} train / ${data.eval.length} eval ${data.unit} (max_length ${config.dataset.max_length})`);

  // 3. the run
  const objective = job.objective(ctx, model, data);
  const outputDir = config.output_dir;
  const runConfig = JSON.parse(JSON.stringify({ ...config, configPath: undefined })) as Record<string, unknown>;
  const fault = sigintFaultFromEnv();
  const callbacks: TrainerCallbacks<unknown> = {
    ...opts.callbacks,
    onStep: (info) => {
      opts.callbacks?.onStep?.(info);
      fault?.(info.step);
    },
  };
  const trainer = new Trainer<unknown, unknown>({
    model, objective, train: data.train, eval: data.eval, settings: trainSettingsFor(config, data.train.length, objective),
    outputDir, runConfig, progress: config.logging.progress, callbacks,
  });
  // --resume: from the newest complete checkpoint of outputDir (an interrupted save is recovered);
  // none is ERR_NOT_FOUND, a finished run ERR_STATE with its outputs left as they are
  const fit = await trainer.fit({ resume: opts.resume === true, log });

  job.writeOutputs(ctx, model, data);
  const evals = fit.evals as { step: number; result: RunEval }[];
  const last = evals.filter((e) => e.step > 0).at(-1)?.result ?? null;
  const before = evals.find((e) => e.step === 0)?.result ?? null;
  const result: RunResult = { outputDir, fit: { ...fit, evals }, trainableParameters: trainable, totalParameters: totalParams, eval: last, ...(before ? { before } : {}) };
  writeJsonAtomicSync(join(outputDir, 'results.json'), {
    model: config.model, method: config.method, task: model.task, objective: objective.name, steps: fit.steps, status: fit.status,
    train_seconds: fit.trainSeconds, tokens_per_second: fit.tokensPerSecond, step_seconds: fit.trainSeconds / Math.max(1, fit.steps),
    peak_native_bytes: fit.peakBytes, peak_rss_bytes: process.resourceUsage().maxRSS * 1024, trainable_parameters: trainable, total_parameters: totalParams,
    eval: last, before, train: fit.lastTrain, labels: data.labels,
  }, { indent: 2 });
  return result;
}

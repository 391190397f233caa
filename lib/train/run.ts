/**
 * A whole training job from a validated config, for every method: the method's job
 * (run_job.ts) prepares the data and wraps the model and names the objective; the run itself is
 * the same for all: the output folder, the seed, the Trainer with the config's settings
 * (--resume included), the job's artefacts, and results.json beside metrics.jsonl, loss.svg and
 * checkpoint/.
 */
import { join } from 'node:path';
import { availableParallelism } from 'node:os';
import { setNumThreads, getNumThreads, backendInfo } from '../backend.js';
import { TunekitError, describe } from '../errors.js';
import { resolveModelPath } from '../models/builtin.js';
import { Tokenizer } from '../tokenizer/index.js';
import { writeJsonAtomicSync } from '../io/atomic.js';
import { prepareOutputDir } from '../io/output_dir.js';
import { manualSeed } from '../nn/random.js';
import { resolveDevice, trainingPath, type Device } from '../tensor/device.js';
import { Trainer, type TrainerCallbacks, type TrainSettings } from './trainer.js';
import { warmupStepsFor, type TrainConfig } from './config.js';
import { inComputeDtype } from './compute_dtype.js';
import type { Objective } from './objective.js';
import { runJobFor, type RunJobContext } from './run_job.js';
import type { RunEval, RunResult } from './run_result.js';
import { initProcessGroup } from './distributed/process_group.js';
import { DataParallel } from './distributed/data_parallel.js';
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
export function trainSettingsFor(config: TrainConfig, trainExamples: number, objective: Pick<Objective<unknown>, 'dropLast'>, ranks = 1): Partial<TrainSettings> {
  const t = config.training;
  // data-parallel: a loader batch is the global micro-batch, batch_size examples per rank
  const global = t.batch_size * ranks;
  const batchesPerEpoch = objective.dropLast ? Math.floor(trainExamples / global) : Math.ceil(trainExamples / global);
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
 * `TUNEKIT_FAULT_RANK=<rank>:<step>:<kill|stop>` makes that rank of a data-parallel run SIGKILL
 * (dies) or SIGSTOP (hangs) itself after that step, for tests of a failed rank: the others must
 * stop with a clear error within distributed.timeout_s and leave the last checkpoint intact.
 */
function rankFaultFromEnv(rank: number): ((step: number) => void) | null {
  const spec = process.env.TUNEKIT_FAULT_RANK;
  if (!spec) return null;
  const m = /^(\d+):(\d+):(kill|stop)$/.exec(spec);
  if (!m) throw new TunekitError('ERR_CONFIG', `TUNEKIT_FAULT_RANK: expected <rank>:<step>:<kill|stop> but received ${describe(spec)}`);
  if (Number(m[1]) !== rank) return null;
  const at = Number(m[2]);
  const signal = m[3] === 'kill' ? 'SIGKILL' : 'SIGSTOP';
  return (step) => {
    if (step === at) process.kill(process.pid, signal);
  };
}

/**
 * The progress mode of a run: under `--nproc` the ranks' output goes through mpirun's pty, so
 * 'auto' follows what the launcher's user sees (TUNEKIT_LAUNCHER_TTY, set by launch.ts).
 */
function progressMode(config: TrainConfig, distributed: boolean): TrainConfig['logging']['progress'] {
  const mode = config.logging.progress;
  return distributed && mode === 'auto' && process.env.TUNEKIT_LAUNCHER_TTY === '0' ? 'plain' : mode;
}

/** What bf16 compute costs on this device, when it is not what one expects (a speed-up). */
function bf16Note(device: Device): string {
  if (device !== 'cpu' || backendInfo().cpu.avx512bf16) return '';
  return ': this CPU has no AVX512_BF16, so the bf16 GEMM widens to f32 (bf16\'s numbers at about f32\'s speed)';
}

/**
 * Runs the job a config describes.
 * @example
 * const result = await runTraining(loadConfig('spam.yaml'));
 * console.log(result.eval?.accuracy);
 */
export async function runTraining(config: TrainConfig, opts: RunOptions = {}): Promise<RunResult> {
  // training.dtype: the run's matrix products in bf16 (autocast) or f32, for this run only
  return inComputeDtype(config.training.dtype, () => runWithDtype(config, opts));
}

async function runWithDtype(config: TrainConfig, opts: RunOptions): Promise<RunResult> {
  // training.device before anything else: `cuda` without a usable GPU is ERR_DEVICE with CUDA's
  // reason here, before the output folder, the data or the model are touched
  const device = resolveDevice(config.training.device, 'training.device', { path: trainingPath(config.task) });
  // started by an MPI launcher (mpirun, or `tunekit train --nproc N`): join the other ranks first,
  // so that a missing MPI library is reported before anything is loaded
  const group = initProcessGroup({ timeoutSeconds: config.distributed?.timeout_s });
  const lead = !group || group.rank === 0;
  // rank 0 speaks for the job; the others print only their errors
  const log = !lead ? () => undefined : opts.log ?? ((s: string) => process.stderr.write(s + '\n'));
  // the output folder is checked (and made) before minutes of loading and training, not after
  if (lead) prepareOutputDir(config.output_dir);
  // the seed decides initialisation (adapters, new heads, prompt encoders) as well as dropout and data order
  manualSeed(config.training.seed);
  if (config.training.threads > 0) setNumThreads(config.training.threads);
  // ranks on one machine share its cores
  else if (group) setNumThreads(Math.max(1, Math.floor(availableParallelism() / group.localSize)));
  // a job registered for the task (image_cls: images, not text) comes before the method's
  const job = runJobFor(config.method, config.task);
  const modelDir = resolveModelPath(config.model);
  // read when a job asks for it: an image model's folder has no tokenizer
  let tokenizer: Promise<Tokenizer> | null = null;
  const ctx: RunJobContext = { config, modelDir, loadTokenizer: () => (tokenizer ??= Tokenizer.fromFolder(modelDir)), log };

  // 1. data preparation
  const data = await job.prepareData(ctx);
  if (data.train.length === 0) throw new TunekitError('ERR_VALUE', `the training split of ${config.dataset.path} produced no ${data.unit}`);
  // 2. model wrapping
  const { model, base } = await job.buildModel(ctx, data);
  const trainable = model.countParameters(true);
  const totalParams = base.countParameters();
  log(`model ${config.model}: ${(totalParams / 1e6).toFixed(2)}M parameters, method ${config.method}: ${trainable.toLocaleString('en-US')} trainable (${((100 * trainable) / totalParams).toFixed(3)}%)`);
  log(`data: ${data.train.length} train / ${data.eval.length} eval ${data.unit} (max_length ${config.dataset.max_length})`);
  log(`device: ${device.note}${config.training.dtype === 'bf16' ? `; matrix products in bf16 (training.dtype)${bf16Note(device.device)}` : ''}`);

  // 3. the run
  const objective = await job.objective(ctx, model, data);
  const outputDir = config.output_dir;
  // `distributed` stays out: the Trainer records and checks the number of ranks itself, and a
  // run may resume with another timeout or bucket size
  const runConfig = JSON.parse(JSON.stringify({ ...config, configPath: undefined, distributed: undefined })) as Record<string, unknown>;
  const dp = group ? new DataParallel(group, { bucketBytes: (config.distributed?.bucket_mb ?? 25) * 2 ** 20 }) : null;
  if (dp) {
    const t = config.training;
    log(`data parallel: ${dp.size} ranks (${group!.backend}), ${getNumThreads()} thread(s) each; a step takes ${t.batch_size * dp.size * t.grad_accum} examples (batch_size ${t.batch_size} x ${dp.size} ranks x grad_accum ${t.grad_accum}); each update all-reduces ${(trainable * 4 / 1e6).toFixed(3)} MB of gradients (the trainable parameters, f32)`);
  }
  const fault = sigintFaultFromEnv();
  const rankFault = group ? rankFaultFromEnv(group.rank) : null;
  const callbacks: TrainerCallbacks<unknown> = {
    ...opts.callbacks,
    onStep: (info) => {
      opts.callbacks?.onStep?.(info);
      fault?.(info.step);
      rankFault?.(info.step);
    },
  };
  const trainer = new Trainer<unknown, unknown>({
    model, objective, train: data.train, eval: data.eval, settings: trainSettingsFor(config, data.train.length, objective, dp?.size ?? 1),
    outputDir, runConfig, progress: progressMode(config, group !== null), callbacks, distributed: dp, device: device.device,
  });
  // --resume: from the newest complete checkpoint of outputDir (an interrupted save is recovered);
  // none is ERR_NOT_FOUND, a finished run ERR_STATE with its outputs left as they are
  const fit = await trainer.fit({ resume: opts.resume === true, log });
  const distributed = dp?.summary() ?? null;
  if (distributed) {
    log(`communication: ${(distributed.bytes_per_step / 1e6).toFixed(3)} MB per step on each rank in ${distributed.buckets} gradient bucket(s) and the step's figures; ${(distributed.comm_seconds_per_step * 1e3).toFixed(1)} ms per step with a collective in flight, ${(distributed.exposed_comm_seconds_per_step * 1e3).toFixed(1)} ms of it waited for after backward`);
  }
  if (!lead) {
    // the other ranks' weights equal rank 0's, which writes them
    group!.close();
    return { outputDir, fit: { ...fit, evals: fit.evals as { step: number; result: RunEval }[] }, trainableParameters: trainable, totalParameters: totalParams, eval: null };
  }

  await job.writeOutputs(ctx, model, data);
  const evals = fit.evals as { step: number; result: RunEval }[];
  const last = evals.filter((e) => e.step > 0).at(-1)?.result ?? null;
  const before = evals.find((e) => e.step === 0)?.result ?? null;
  const result: RunResult = { outputDir, fit: { ...fit, evals }, trainableParameters: trainable, totalParameters: totalParams, eval: last, ...(before ? { before } : {}) };
  writeJsonAtomicSync(join(outputDir, 'results.json'), {
    model: config.model, method: config.method, task: model.task, objective: objective.name, steps: fit.steps, status: fit.status,
    device: device.device, device_note: device.note, dtype: config.training.dtype,
    train_seconds: fit.trainSeconds, eval_seconds: fit.evalSeconds, save_seconds: fit.saveSeconds, tokens_per_second: fit.tokensPerSecond, step_seconds: fit.trainSeconds / Math.max(1, fit.steps),
    peak_native_bytes: fit.peakBytes, peak_rss_bytes: process.resourceUsage().maxRSS * 1024, trainable_parameters: trainable, total_parameters: totalParams,
    eval: last, before, train: fit.lastTrain, labels: data.labels, ...(distributed ? { distributed } : {}),
  }, { indent: 2 });
  // the others wait at the end for rank 0's outputs (close() is collective)
  group?.close();
  return result;
}

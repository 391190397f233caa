/**
 * A whole training job from a validated config: load the base model and tokenizer, prepare the
 * dataset for the task, wrap the model with the method, train, evaluate, and write the run
 * folder (adapter or model, metrics.jsonl, loss.svg, checkpoint/, results.json).
 */
import { join } from 'node:path';
import { native } from '../native.js';
import { TunekitError } from '../errors.js';
import { loadPretrained, savePretrained } from '../models/loader.js';
import { resolveModelPath } from '../models/builtin.js';
import type { PretrainedModel } from '../models/common.js';
import { Tokenizer } from '../tokenizer/index.js';
import { labelMapToConfig, LABELS_FILE } from '../data/labels.js';
import { PeftModel } from '../peft/base/peft_model.js';
import { writeJsonAtomicSync } from '../io/atomic.js';
import { prepareOutputDir } from '../io/output_dir.js';
import { manualSeed } from '../nn/random.js';
import { Trainer, type TrainSettings } from './trainer.js';
import { warmupStepsFor, type TrainConfig } from './config.js';
import { prepareRunData } from './run_data.js';
import { checkSequenceLength, wrapForMethod } from './run_model.js';
import { isRlhfMethod, runRlhf, toRunResult } from '../rlhf/run.js';

export type { RunResult } from './run_result.js';
import type { RunResult } from './run_result.js';

/**
 * Runs the job a config describes.
 * @example
 * const result = await runTraining(loadConfig('spam.yaml'));
 * console.log(result.eval?.accuracy);
 */
export async function runTraining(config: TrainConfig, opts: { resume?: boolean; log?: (s: string) => void } = {}): Promise<RunResult> {
  const log = opts.log ?? ((s: string) => process.stderr.write(s + '\n'));
  // the output folder is checked (and made) before minutes of loading and training, not after
  prepareOutputDir(config.output_dir);
  // the seed decides initialisation (adapters, new heads, prompt encoders) as well as dropout and data order
  manualSeed(config.training.seed);
  // RLHF methods (reward, dpo, ppo) run their own loops: lib/rlhf/run.ts
  if (isRlhfMethod(config.method)) return toRunResult(await runRlhf(config, { log }));
  if (config.training.threads > 0) native.setNumThreads(config.training.threads);
  if (config.training.dtype !== 'f32') throw new TunekitError('ERR_CONFIG', `training.dtype '${config.training.dtype}' is not supported yet on this build; use f32`);
  const modelDir = resolveModelPath(config.model);
  checkSequenceLength(config, modelDir);
  const tokenizer = Tokenizer.fromFolder(modelDir);
  const task = config.task;
  const maxLength = config.dataset.max_length;
  const { train, eval: evalEx, labels, labelMap, choices, padTokenId } = await prepareRunData(config, { tokenizer, modelDir, log });
  if (train.length === 0) throw new TunekitError('ERR_VALUE', `the training split of ${config.dataset.path} produced no examples`);

  const { model: base, report } = loadPretrained(modelDir, { task, labels });
  if (report.initialised.length) log(`new head initialised: ${report.initialised.join(', ')}`);
  const model = wrapForMethod(base, config);
  const trainable = model.countParameters(true);
  const totalParams = base.countParameters();
  log(`model ${config.model}: ${(totalParams / 1e6).toFixed(2)}M parameters, method ${config.method}: ${trainable.toLocaleString('en-US')} trainable (${((100 * trainable) / totalParams).toFixed(3)}%)`);
  log(`data: ${train.length} train / ${evalEx.length} eval examples (max_length ${maxLength})`);

  const t = config.training;
  const stepsPerEpoch = Math.max(1, Math.floor(Math.ceil(train.length / t.batch_size) / t.grad_accum));
  const totalSteps = t.max_steps ?? Math.max(1, Math.floor(stepsPerEpoch * t.epochs));
  const settings: Partial<TrainSettings> = {
    epochs: t.epochs, maxSteps: totalSteps, batchSize: t.batch_size, gradAccum: t.grad_accum, lr: t.lr, weightDecay: t.weight_decay,
    warmupSteps: warmupStepsFor(t, totalSteps), schedule: t.schedule, maxGradNorm: t.max_grad_norm ?? 0,
    evalEvery: t.eval_every, saveEvery: t.save_every, earlyStoppingPatience: t.early_stopping?.patience ?? 0, seed: t.seed,
    logEvery: config.logging.every,
  };
  const outputDir = config.output_dir;
  const runConfig = JSON.parse(JSON.stringify({ ...config, configPath: undefined })) as Record<string, unknown>;
  const trainer = new Trainer({ model, task, train, eval: evalEx, padTokenId, settings, outputDir, runConfig, progress: config.logging.progress, choices });
  // --resume: from the newest complete checkpoint of outputDir (an interrupted save is recovered);
  // none is ERR_NOT_FOUND, a finished run ERR_STATE with its outputs left as they are
  const fit = await trainer.fit({ resume: opts.resume === true, log });

  // final artefacts
  if (model instanceof PeftModel) {
    model.saveAdapter(join(outputDir, 'adapter'));
    // PEFT's folder has no place for label names; a side file keeps them for merge and eval
    if (labelMap) writeJsonAtomicSync(join(outputDir, 'adapter', LABELS_FILE), labelMapToConfig(labelMap), { indent: 2 });
    for (const line of model.writeRunReport(outputDir)) log(line);
  } else {
    savePretrained(model as PretrainedModel, join(outputDir, 'model'), { extraConfig: labelMap ? labelMapToConfig(labelMap) : {} });
  }
  const last = fit.evals.at(-1)?.result ?? null;
  const result: RunResult = { outputDir, fit, trainableParameters: trainable, totalParameters: totalParams, eval: last };
  writeJsonAtomicSync(join(outputDir, 'results.json'), {
    model: config.model, method: config.method, task, steps: fit.steps, status: fit.status, train_seconds: fit.trainSeconds,
    tokens_per_second: fit.tokensPerSecond, step_seconds: fit.trainSeconds / Math.max(1, fit.steps), peak_native_bytes: fit.peakBytes,
    peak_rss_bytes: process.resourceUsage().maxRSS * 1024, trainable_parameters: trainable, total_parameters: totalParams,
    eval: last, labels,
  }, { indent: 2 });
  return result;
}

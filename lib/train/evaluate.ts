/**
 * Evaluation of a finished run (adapter or full model) on its config's eval split: the same
 * examples, labels and model (NF4 base included) that training evaluated on.
 */
import { TunekitError } from '../errors.js';
import { resolveDevice, trainingPath, type Device } from '../tensor/device.js';
import { resolveModelPath } from '../models/builtin.js';
import { Tokenizer } from '../tokenizer/index.js';
import { Trainer, type EvalResult } from './trainer.js';
import type { TrainConfig } from './config.js';
import { prepareRunData } from './run_data.js';
import { inComputeDtype } from './compute_dtype.js';
import { checkSequenceLength, loadRunModel } from './run_model.js';
import { imageClassificationJob } from './run_image.js';
import { ImageClassificationObjective } from './objectives/image_cls.js';

/**
 * Evaluates `runDir`'s adapter/model (or the bare base when `base`) on the config's eval split.
 *
 * @example
 * const r = await evaluateRun(loadConfig('examples/spam-lora.yaml'), { runDir: 'runs/spam-lora' });
 */
export async function evaluateRun(config: TrainConfig, opts: { runDir: string; base?: boolean }): Promise<EvalResult> {
  // training.dtype as in training: the run's own evaluations and this one compute alike
  return inComputeDtype(config.training.dtype, () => evaluateIn(config, opts));
}

async function evaluateIn(config: TrainConfig, opts: { runDir: string; base?: boolean }): Promise<EvalResult> {
  // training.device as in training: a GPU asked for and not usable fails before anything is read
  const device = resolveDevice(config.training.device, 'training.device', { path: trainingPath(config.task) }).device;
  if (config.task === 'image_cls') return evaluateImageRun(config, opts, device);
  const modelDir = resolveModelPath(config.model);
  await checkSequenceLength(config, modelDir);
  const tokenizer = await Tokenizer.fromFolder(modelDir);
  const data = await prepareRunData(config, { tokenizer, modelDir, splits: 'eval' });
  const model = await loadRunModel(config, { runDir: opts.runDir, base: opts.base, labels: data.labels });
  const trainer = new Trainer({
    model, task: config.task, train: data.eval.slice(0, 1), eval: data.eval, padTokenId: data.padTokenId,
    settings: { batchSize: config.training.batch_size }, progress: 'none', choices: data.choices, device,
  });
  try {
    return trainer.evaluate();
  } finally {
    trainer.dispose();
  }
}

/**
 * An image_cls run (lib/train/run_image.ts): the same images, preprocessing and label names as
 * training, the run's model (merged full model, or the base with its adapter; the base alone with
 * `base`), scored by the image objective.
 */
async function evaluateImageRun(config: TrainConfig, opts: { runDir: string; base?: boolean }, device: Device): Promise<EvalResult> {
  const modelDir = resolveModelPath(config.model);
  const ctx = { config, modelDir, log: () => undefined, loadTokenizer: (): Promise<Tokenizer> => Promise.reject(new TunekitError('ERR_STATE', 'image runs have no tokenizer')) };
  const data = await imageClassificationJob.prepareData(ctx);
  const model = await loadRunModel(config, { runDir: opts.runDir, base: opts.base, labels: data.labels });
  if (model.device !== device) model.to(device);
  return new ImageClassificationObjective(model).evaluate(data.eval, { batchSize: config.training.batch_size * 2, evalSplit: true });
}

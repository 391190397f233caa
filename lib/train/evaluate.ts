/**
 * Evaluation of a finished run (adapter or full model) on its config's eval split: the same
 * examples, labels and model (NF4 base included) that training evaluated on.
 */
import { TunekitError } from '../errors.js';
import { resolveModelPath } from '../models/builtin.js';
import { Tokenizer } from '../tokenizer/index.js';
import { Trainer, type EvalResult } from './trainer.js';
import type { TrainConfig } from './config.js';
import { prepareRunData } from './run_data.js';
import { checkSequenceLength, loadRunModel } from './run_model.js';

/**
 * Evaluates `runDir`'s adapter/model (or the bare base when `base`) on the config's eval split.
 *
 * @example
 * const r = await evaluateRun(loadConfig('examples/spam-lora.yaml'), { runDir: 'runs/spam-lora' });
 */
export async function evaluateRun(config: TrainConfig, opts: { runDir: string; base?: boolean }): Promise<EvalResult> {
  if (config.task === 'image_cls') throw new TunekitError('ERR_CONFIG', 'tunekit eval does not read image_cls runs yet: their results.json holds the final evaluation (loss, accuracy, F1)');
  const modelDir = resolveModelPath(config.model);
  checkSequenceLength(config, modelDir);
  const tokenizer = Tokenizer.fromFolder(modelDir);
  const data = await prepareRunData(config, { tokenizer, modelDir, splits: 'eval' });
  const model = loadRunModel(config, { runDir: opts.runDir, base: opts.base, labels: data.labels });
  const trainer = new Trainer({
    model, task: config.task, train: data.eval.slice(0, 1), eval: data.eval, padTokenId: data.padTokenId,
    settings: { batchSize: config.training.batch_size }, progress: 'none', choices: data.choices,
  });
  try {
    return trainer.evaluate();
  } finally {
    trainer.dispose();
  }
}

/**
 * Evaluation of a finished run (adapter or full model) on its config's eval split.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { loadPretrained } from '../models/loader.js';
import { resolveModelPath } from '../models/builtin.js';
import { Tokenizer } from '../tokenizer/index.js';
import { loadDataset } from '../data/dataset.js';
import { buildLabelMap } from '../data/labels.js';
import { buildClassificationExamples } from '../data/examples.js';
import { causalLmExamplesFor } from './run.js';
import { loadPeftFolder } from '../peft/index.js';
import type { TokenizerLike } from '../data/types.js';
import type { ChoiceSet } from '../data/choices.js';
import { choiceSetFor } from './choice_eval.js';
import { Trainer, type EvalResult, type TrainExample } from './trainer.js';
import type { TrainConfig } from './config.js';
import '../peft/index.js';

/** Evaluates `runDir`'s adapter/model (or the bare base when `base`) on the config's eval split. */
export async function evaluateRun(config: TrainConfig, opts: { runDir: string; base?: boolean }): Promise<EvalResult> {
  const modelDir = resolveModelPath(config.model);
  const tokenizer = Tokenizer.fromFolder(modelDir);
  const tok: TokenizerLike = { encode: (t, o) => tokenizer.encode(t, o), eosTokenId: tokenizer.eosTokenId ?? undefined, padTokenId: tokenizer.padTokenId ?? undefined };
  const data = await loadDataset({ path: config.dataset.path, format: config.dataset.format, recordFormat: config.dataset.record_format, textField: config.dataset.text_field, labelField: config.dataset.label_field, onError: config.dataset.on_error, invalidUtf8: config.dataset.invalid_utf8, eval: config.dataset.eval });
  let evalEx: TrainExample[];
  let labels: string[] | undefined;
  let choices: ChoiceSet | undefined;
  if (config.task === 'seq_cls') {
    const lm = buildLabelMap(data.train as never);
    labels = lm.names;
    evalEx = buildClassificationExamples(data.eval, tok, lm, { maxLength: config.dataset.max_length });
  } else {
    evalEx = causalLmExamplesFor(config, data.eval, data.format, tokenizer, tok, modelDir);
    choices = choiceSetFor(config, data.train, data.eval, tok);
  }
  const fullModel = join(opts.runDir, 'model');
  const useFull = !opts.base && existsSync(fullModel);
  const { model: base } = loadPretrained(useFull ? fullModel : modelDir, { task: config.task, labels });
  const adapterDir = join(opts.runDir, 'adapter');
  let evalModel: ConstructorParameters<typeof Trainer>[0]['model'] = base;
  if (!opts.base && !useFull && existsSync(adapterDir)) {
    evalModel = loadPeftFolder(base, adapterDir);
  }
  const padTokenId = tokenizer.padTokenId ?? tokenizer.eosTokenId ?? 0;
  const trainer = new Trainer({ model: evalModel, task: config.task as 'seq_cls', train: evalEx.slice(0, 1), eval: evalEx, padTokenId, settings: { batchSize: config.training.batch_size }, progress: 'none', choices });
  return trainer.evaluate();
}

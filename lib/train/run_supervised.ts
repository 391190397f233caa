/**
 * The job of the fine-tuning methods (full, head_only and every PEFT method) for the supervised
 * tasks: data from run_data.ts, the model from run_model.ts, the supervised objective, and the
 * adapter (with its label names and the method's run report) or the full model as outputs.
 */
import { join } from 'node:path';
import { TunekitError } from '../errors.js';
import { loadPretrained, savePretrained } from '../models/loader.js';
import type { PretrainedModel } from '../models/common.js';
import { labelMapToConfig, LABELS_FILE } from '../data/labels.js';
import { PeftModel } from '../peft/base/peft_model.js';
import { peftMethods } from '../peft/index.js';
import { writeJsonAtomic } from '../io/atomic.js';
import { prepareRunData, type RunData } from './run_data.js';
import { checkSequenceLength, wrapForMethod } from './run_model.js';
import { SupervisedObjective, type EvalResult, type SupervisedExample } from './objectives/supervised.js';
import { registerRunJob, type RunJob, type RunJobData } from './run_job.js';

type Data = RunJobData<SupervisedExample> & { run: RunData };

export const supervisedJob: RunJob<SupervisedExample, EvalResult> = {
  async prepareData(ctx) {
    // dataset.max_length (+ virtual tokens) against the model's positions, before any data is read
    await checkSequenceLength(ctx.config, ctx.modelDir);
    const run = await prepareRunData(ctx.config, { tokenizer: await ctx.loadTokenizer(), modelDir: ctx.modelDir, log: ctx.log });
    const data: Data = { train: run.train, eval: run.eval, unit: 'examples', labels: run.labels, run };
    return data;
  },

  async buildModel(ctx, data) {
    const { model: base, report } = await loadPretrained(ctx.modelDir, { task: ctx.config.task, labels: data.labels });
    if (report.initialised.length) ctx.log(`new head initialised: ${report.initialised.join(', ')}`);
    return { model: await wrapForMethod(base, ctx.config), base };
  },

  objective(ctx, model, data) {
    const run = (data as Data).run;
    // image_cls runs take run_image.ts's job (run.ts), never this one
    if (ctx.config.task === 'image_cls') throw new TunekitError('ERR_STATE', 'image_cls is trained by the image job (lib/train/run_image.ts)');
    return new SupervisedObjective(model, { task: ctx.config.task, padTokenId: run.padTokenId, choices: run.choices });
  },

  async writeOutputs(ctx, model, data) {
    const out = ctx.config.output_dir;
    const { labelMap } = (data as Data).run;
    if (model instanceof PeftModel) {
      await model.saveAdapter(join(out, 'adapter'));
      // PEFT's folder has no place for label names; a side file keeps them for merge and eval
      if (labelMap) await writeJsonAtomic(join(out, 'adapter', LABELS_FILE), labelMapToConfig(labelMap), { indent: 2 });
      for (const line of await model.writeRunReport(out)) ctx.log(line);
    } else {
      await savePretrained(model as PretrainedModel, join(out, 'model'), { extraConfig: labelMap ? labelMapToConfig(labelMap) : {} });
    }
  },
};

const FULL_MODEL_METHODS = new Set(['full', 'head_only']);
registerRunJob('supervised', (method) => FULL_MODEL_METHODS.has(method) || peftMethods().includes(method), supervisedJob);

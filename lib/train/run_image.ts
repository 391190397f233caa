/**
 * The job of image classification (task 'image_cls', any fine-tuning method: full, head_only,
 * lora, qlora, ...): images read and preprocessed by the model's preprocessor_config.json
 * (lib/data/images.ts), the model's classifier sized to the classes, the method's wrapper
 * (run_model.ts), the image objective with the dataset's augmentation, and the adapter (with its
 * label names) or the full model (with the preprocessor beside it) as outputs.
 *
 * dataset.path: "builtin:mnist", "builtin:mnist-0-4", "builtin:mnist-5-9" (fixed splits), a
 * folder of class folders (ImageFolder), or a .jsonl/.json/.csv file of {image, label} records
 * (dataset.image_field / label_field); eval: dataset.eval.path, or a seeded split (fraction,
 * default 0.1, or size).
 */
import { existsSync, statSync } from 'node:fs';
import { copyFile } from 'node:fs/promises';
import { join } from 'node:path';
import { TunekitError } from '../errors.js';
import { loadPretrained, readConfig, savePretrained } from '../models/loader.js';
import type { PretrainedModel } from '../models/common.js';
import { labelMapToConfig, requireTwoClasses, LABELS_FILE, type LabelMap } from '../data/labels.js';
import { splitTrainEval } from '../data/split.js';
import { readImageProcessor, type ImageProcessorConfig } from '../data/image_processor.js';
import { loadBuiltinDigits, loadImageFolder, loadImageList, blackPixel, type ImageExample, type ImageLoadReport, type ImageDatasetOptions } from '../data/images.js';
import { PeftModel } from '../peft/base/peft_model.js';
import { writeJsonAtomic } from '../io/atomic.js';
import { wrapForMethod } from './run_model.js';
import { ImageClassificationObjective } from './objectives/image_cls.js';
import type { EvalResult } from './objectives/supervised.js';
import { registerRunJob, type RunJob, type RunJobContext, type RunJobData } from './run_job.js';

type Data = RunJobData<ImageExample> & { labelMap: LabelMap; processor: ImageProcessorConfig; channels: number };

/** The model folder's preprocessing and channel count; an image model without preprocessor_config.json is ERR_CONFIG. */
async function modelImageSetup(modelDir: string): Promise<{ processor: ImageProcessorConfig; channels: number }> {
  const raw = await readConfig(modelDir);
  const processor = readImageProcessor(modelDir);
  if (!processor) {
    throw new TunekitError('ERR_CONFIG', `${modelDir} has no preprocessor_config.json: an image model needs it (how images are resized, rescaled and normalized, as transformers' image processors read it)`);
  }
  const channels = raw.num_channels === undefined ? 3 : raw.num_channels;
  if (channels !== 1 && channels !== 3) throw new TunekitError('ERR_CONFIG', `${modelDir}/config.json: num_channels ${JSON.stringify(channels)}: tunekit reads images as 1 (grayscale) or 3 (RGB) channels`);
  return { processor, channels };
}

function logReport(ctx: RunJobContext, what: string, r: ImageLoadReport): void {
  if (r.skipped) ctx.log(`${what}: skipped ${r.skipped} image(s): ${r.skipReasons.slice(0, 3).join('; ')}`);
  if (r.converted) ctx.log(`${what}: converted ${r.converted} image(s) to the model's ${r.converted ? 'channels' : ''} (grayscale <-> RGB, as PIL's convert)`);
  for (const w of r.warnings) ctx.log(`${what}: ${w}`);
}

export const imageClassificationJob: RunJob<ImageExample, EvalResult> = {
  async prepareData(ctx) {
    const { config, modelDir } = ctx;
    const d = config.dataset;
    const { processor, channels } = await modelImageSetup(modelDir);
    const base: ImageDatasetOptions = { processor, channels, onError: d.on_error, imageField: d.image_field, labelField: d.label_field };
    let train: ImageExample[], ev: ImageExample[], labelMap: LabelMap;
    if (d.path.startsWith('builtin:')) {
      const b = loadBuiltinDigits(d.path, base);
      logReport(ctx, d.path, b.report);
      ({ train, eval: ev, labelMap } = b);
    } else {
      const load = (path: string, opts: ImageDatasetOptions) => (existsSync(path) && statSync(path).isDirectory() ? loadImageFolder(path, opts) : loadImageList(path, opts));
      const all = await load(d.path, base);
      logReport(ctx, d.path, all.report);
      labelMap = all.labelMap;
      if (d.eval.path) {
        train = all.examples;
        const e = await load(d.eval.path, { ...base, labelMap });
        logReport(ctx, d.eval.path, e.report);
        ev = e.examples;
      } else {
        const s = splitTrainEval(all.examples, d.eval.size !== undefined ? { evalSize: d.eval.size, seed: d.eval.seed } : { evalFraction: d.eval.fraction ?? 0.1, seed: d.eval.seed });
        train = s.train;
        ev = s.eval;
      }
    }
    requireTwoClasses(train.map((e) => labelMap.names[e.label] ?? String(e.label)), 'label', `${d.path}'s training images`);
    const data: Data = { train, eval: ev, unit: 'images', labels: labelMap.names, labelMap, processor, channels };
    return data;
  },

  async buildModel(ctx, data) {
    const { model: base, report } = await loadPretrained(ctx.modelDir, { task: 'image_cls', labels: data.labels });
    if (report.initialised.length) ctx.log(`new head initialised: ${report.initialised.join(', ')}`);
    return { model: await wrapForMethod(base, ctx.config), base };
  },

  objective(ctx, model, data) {
    const { processor, channels } = data as Data;
    const a = ctx.config.dataset.augment;
    return new ImageClassificationObjective(model, {
      augment: a ? { randomCrop: a.random_crop, horizontalFlip: a.horizontal_flip } : undefined,
      fill: blackPixel(processor, channels),
      seed: ctx.config.training.seed,
    });
  },

  async writeOutputs(ctx, model, data) {
    const out = ctx.config.output_dir;
    const { labelMap } = data as Data;
    if (model instanceof PeftModel) {
      await model.saveAdapter(join(out, 'adapter'));
      await writeJsonAtomic(join(out, 'adapter', LABELS_FILE), labelMapToConfig(labelMap), { indent: 2 });
      for (const line of await model.writeRunReport(out)) ctx.log(line);
    } else {
      await savePretrained(model as PretrainedModel, join(out, 'model'), { extraConfig: labelMapToConfig(labelMap) });
      // the saved model is a complete Hugging Face folder: its preprocessing goes with it
      await copyFile(join(ctx.modelDir, 'preprocessor_config.json'), join(out, 'model', 'preprocessor_config.json'));
    }
  },
};

// every image_cls run, whatever its method (run.ts finds it through the job registry)
registerRunJob('image_cls', { tasks: ['image_cls'] }, imageClassificationJob);

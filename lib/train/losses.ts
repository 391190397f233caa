/**
 * Task losses and metrics on padded batches (see lib/data Batch).
 */
import { Tensor } from '../tensor/tensor.js';
import { tensor } from '../tensor/creation.js';
import * as F from '../autograd/ops.js';
import { TunekitError } from '../errors.js';
import type { Batch } from '../data/types.js';
import type { ModelOutput } from '../models/common.js';

export type TrainTask = 'causal_lm' | 'seq_cls' | 'token_cls';

/** Labels shifted left by one (position t predicts token t+1); the last column is ignored. */
export function shiftLabels(labels: Int32Array, B: number, T: number): Int32Array {
  const out = new Int32Array(B * T).fill(-100);
  for (let b = 0; b < B; b++) for (let t = 0; t + 1 < T; t++) out[b * T + t] = labels[b * T + t + 1]!;
  return out;
}

/** Mean loss of a batch for the task, and the number of targets it averages over. */
export function taskLoss(task: TrainTask, out: ModelOutput, batch: Batch): { loss: Tensor<'f32'>; count: number } {
  const { logits } = out;
  const C = logits.shape[logits.ndim - 1]!;
  const flat = F.reshape(logits, [-1, C]);
  let labels: Int32Array;
  if (task === 'seq_cls') {
    if (!batch.classLabels) throw new TunekitError('ERR_VALUE', 'sequence classification needs classLabels in the batch');
    labels = batch.classLabels;
  } else {
    if (!batch.labels) throw new TunekitError('ERR_VALUE', `${task} needs per-token labels in the batch`);
    labels = task === 'causal_lm' ? shiftLabels(batch.labels, batch.batch, batch.seqLen) : batch.labels;
  }
  for (const l of labels) {
    if (l !== -100 && (l < 0 || l >= C)) throw new TunekitError('ERR_VALUE', `label ${l} is out of range for ${C} classes`);
  }
  let count = 0;
  for (const l of labels) if (l !== -100) count++;
  const loss = F.crossEntropy(flat, tensor(labels, [labels.length], 'i32', flat.device));
  return { loss, count };
}

/** Confusion counts for classification metrics. */
export class ClassificationMetrics {
  readonly tp: number[];
  readonly fp: number[];
  readonly fn: number[];
  correct = 0;
  total = 0;
  constructor(readonly numClasses: number) {
    this.tp = new Array(numClasses).fill(0);
    this.fp = new Array(numClasses).fill(0);
    this.fn = new Array(numClasses).fill(0);
  }
  add(pred: number, gold: number): void {
    if (gold === -100) return;
    this.total++;
    if (pred === gold) {
      this.correct++;
      this.tp[gold]!++;
    } else {
      this.fp[pred]!++;
      this.fn[gold]!++;
    }
  }
  get accuracy(): number {
    return this.total ? this.correct / this.total : 0;
  }
  /** Macro-averaged F1 over classes that occur (in gold or predictions). */
  get macroF1(): number {
    let s = 0, n = 0;
    for (let c = 0; c < this.numClasses; c++) {
      const denom = 2 * this.tp[c]! + this.fp[c]! + this.fn[c]!;
      if (denom === 0) continue;
      s += (2 * this.tp[c]!) / denom;
      n++;
    }
    return n ? s / n : 0;
  }
  /** F1 of class `positive` (binary tasks: spam = 1). */
  f1(positive: number): number {
    const denom = 2 * this.tp[positive]! + this.fp[positive]! + this.fn[positive]!;
    return denom ? (2 * this.tp[positive]!) / denom : 0;
  }
}

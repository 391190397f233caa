/**
 * Reward models: a sequence model with a scalar head (task seq_cls, one label; GPT-2 and Llama
 * pool the last real token, as transformers' *ForSequenceClassification), trained on preference
 * pairs with the pairwise loss -mean log sigmoid(r+ - r-). Chosen and rejected sequences of a
 * batch go through the model in one forward.
 *
 * @example
 * const { model: base } = loadPretrained('models/tunekit-gpt2-small', { task: 'seq_cls', numLabels: 1 });
 * const rm = new LoraModel(base, { r: 8, lora_alpha: 16 });
 * const trainer = new RewardTrainer({ model: rm, train: pairs, eval: heldOut, padTokenId: 0 });
 * const { evals } = await trainer.fit();            // evals.at(-1).metrics.accuracy
 * scoreSequences(rm, [[...prompt, ...answer]], 0);  // [r]
 */
import { Tensor } from '../tensor/tensor.js';
import { tensor } from '../tensor/creation.js';
import { tidy } from '../tensor/scope.js';
import { noGrad } from '../autograd/tape.js';
import * as F from '../autograd/ops.js';
import { TunekitError } from '../errors.js';
import type { ModelInputs, ModelOutput, ModelConfig, Task } from '../models/common.js';
import type { PreferenceExample } from '../data/types.js';
import type { Module } from '../nn/module.js';
import { pairwiseRewardLoss } from './losses.js';
import { runPairLoop, DEFAULT_PAIR_SETTINGS, type PairTrainSettings, type PairFitResult, type PairMetrics } from './pair_loop.js';

/** What a reward model must offer: a seq_cls forward with one output per sequence. */
export interface ScalarModel extends Module {
  readonly config: ModelConfig;
  readonly task: Task;
  forward(inputs: ModelInputs): ModelOutput;
}

function checkScalar(model: ScalarModel): void {
  if (model.task !== 'seq_cls' || model.config.numLabels !== 1) {
    throw new TunekitError('ERR_VALUE', `a reward model must be a seq_cls model with one label (numLabels 1) but received task '${model.task}' with ${model.config.numLabels} labels; load it with { task: 'seq_cls', numLabels: 1 }`);
  }
}

/** Right-pads token sequences into model inputs. */
export function padRight(seqs: readonly (readonly number[])[], padTokenId: number): ModelInputs {
  const B = seqs.length, T = Math.max(1, ...seqs.map((s) => s.length));
  const ids = new Int32Array(B * T).fill(padTokenId), mask = new Int32Array(B * T);
  seqs.forEach((s, b) => s.forEach((id, t) => { ids[b * T + t] = id; mask[b * T + t] = 1; }));
  return {
    inputIds: tensor(ids, [B, T], 'i32') as Tensor<'i32'>,
    attentionMask: tensor(mask, [B, T], 'i32') as Tensor<'i32'>,
  };
}

/**
 * Scalar rewards of whole sequences (no gradient; the model is put in eval mode meanwhile).
 * @example scoreSequences(rewardModel, [[1, 5, 9], [1, 7]], 0); // [0.42, -1.3]
 */
export function scoreSequences(model: ScalarModel, seqs: readonly (readonly number[])[], padTokenId: number, batchSize = 16): number[] {
  checkScalar(model);
  const out: number[] = [];
  const was = model.training;
  model.eval();
  try {
    noGrad(() => {
      for (let i = 0; i < seqs.length; i += batchSize) {
        tidy(() => { out.push(...model.forward(padRight(seqs.slice(i, i + batchSize), padTokenId)).logits.toArray()); });
      }
    });
  } finally {
    model.train(was);
  }
  return out;
}

/** Rewards of the chosen and rejected sequences of pairs, from one forward: [B] each. */
export function pairRewards(model: ScalarModel, pairs: readonly PreferenceExample[], padTokenId: number): { chosen: Tensor<'f32'>; rejected: Tensor<'f32'> } {
  const seqs = [...pairs.map((p) => [...p.promptIds, ...p.chosenIds]), ...pairs.map((p) => [...p.promptIds, ...p.rejectedIds])];
  const r = F.reshape(model.forward(padRight(seqs, padTokenId)).logits, [2 * pairs.length]);
  return { chosen: F.slice(r, 0, 0, pairs.length), rejected: F.slice(r, 0, pairs.length) };
}

export interface RewardTrainerOptions {
  /** a seq_cls model with one label, plain or with adapters */
  model: ScalarModel;
  train: PreferenceExample[];
  eval?: PreferenceExample[];
  padTokenId: number;
  settings?: Partial<PairTrainSettings>;
  /** metrics.jsonl and loss.svg go here */
  outputDir?: string;
  log?: (line: string) => void;
}

/** Trains a reward model on preference pairs (TRL RewardTrainer's loss and metrics). */
export class RewardTrainer {
  readonly settings: PairTrainSettings;
  constructor(readonly opts: RewardTrainerOptions) {
    checkScalar(opts.model);
    this.settings = { ...DEFAULT_PAIR_SETTINGS, ...opts.settings };
  }

  /** Loss, accuracy and margin of one batch; the loss is differentiable. */
  batchLoss(batch: readonly PreferenceExample[]): { loss: Tensor<'f32'>; metrics: PairMetrics } {
    const { chosen, rejected } = pairRewards(this.opts.model, batch, this.opts.padTokenId);
    const out = pairwiseRewardLoss(chosen, rejected);
    return { loss: out.loss, metrics: { accuracy: out.accuracy, margin: out.margin } };
  }

  /** Mean loss, accuracy (r+ > r-) and margin on held-out pairs, without gradients. */
  evaluate(examples: readonly PreferenceExample[] = this.opts.eval ?? []): PairMetrics {
    const bs = this.settings.batchSize * 2;
    let loss = 0, acc = 0, margin = 0;
    const was = this.opts.model.training;
    this.opts.model.eval();
    noGrad(() => {
      for (let i = 0; i < examples.length; i += bs) {
        const batch = examples.slice(i, i + bs);
        tidy(() => {
          const { loss: l, metrics } = this.batchLoss(batch);
          loss += l.item() * batch.length;
          acc += metrics.accuracy! * batch.length;
          margin += metrics.margin! * batch.length;
        });
      }
    });
    this.opts.model.train(was);
    const n = Math.max(1, examples.length);
    return { loss: loss / n, accuracy: acc / n, margin: margin / n, count: examples.length };
  }

  /** Trains; returns the last train metrics and every evaluation. */
  fit(): Promise<PairFitResult> {
    return runPairLoop({
      model: this.opts.model, train: this.opts.train, eval: this.opts.eval, settings: this.settings, outputDir: this.opts.outputDir,
      step: (b) => this.batchLoss(b), evaluate: (e) => this.evaluate(e), log: this.opts.log, title: 'tunekit reward model',
    });
  }
}

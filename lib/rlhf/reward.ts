/**
 * Reward models: a sequence model with a scalar head (task seq_cls, one label; GPT-2 and Llama
 * pool the last real token, as transformers' *ForSequenceClassification), trained on preference
 * pairs with the pairwise loss -mean log sigmoid(r+ - r-). Chosen and rejected sequences of a
 * batch go through the model in one forward. The objective runs in the one Trainer
 * (lib/train/trainer.ts): checkpoints, resume, accumulation, early stopping and the rest are
 * the Trainer's.
 *
 * @example
 * const { model: base } = loadPretrainedSync('models/tunekit-gpt2-small', { task: 'seq_cls', numLabels: 1 });
 * const rm = new LoraModel(base, { r: 8, lora_alpha: 16 });
 * const trainer = new RewardTrainer({ model: rm, train: pairs, eval: heldOut, padTokenId: 0 });
 * const { evals } = await trainer.fit();            // evals.at(-1).result.accuracy
 * scoreSequences(rm, [[...prompt, ...answer]], 0);  // [r]
 */
import { Tensor } from '../tensor/tensor.js';
import { tensor } from '../tensor/creation.js';
import type { Device } from '../tensor/device.js';
import { tidy } from '../tensor/scope.js';
import { noGrad } from '../autograd/tape.js';
import * as F from '../autograd/ops.js';
import { TunekitError } from '../errors.js';
import type { ModelInputs, ModelOutput, ModelConfig, Task } from '../models/common.js';
import type { PreferenceExample } from '../data/types.js';
import type { Module } from '../nn/module.js';
import type { EvalContext, Figures, Objective, StepPlan, WatchedMetric } from '../train/objective.js';
import { Trainer, type TrainableModel, type TrainerCallbacks, type TrainSettings } from '../train/trainer.js';
import { pairwiseRewardLoss } from './losses.js';

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

/** Right-pads token sequences into model inputs on `device` (the model's). */
export function padRight(seqs: readonly (readonly number[])[], padTokenId: number, device: Device = 'cpu'): ModelInputs {
  const B = seqs.length, T = Math.max(1, ...seqs.map((s) => s.length));
  const ids = new Int32Array(B * T).fill(padTokenId), mask = new Int32Array(B * T);
  seqs.forEach((s, b) => s.forEach((id, t) => { ids[b * T + t] = id; mask[b * T + t] = 1; }));
  return {
    inputIds: tensor(ids, [B, T], 'i32', device),
    attentionMask: tensor(mask, [B, T], 'i32', device),
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
        tidy(() => { out.push(...model.forward(padRight(seqs.slice(i, i + batchSize), padTokenId, model.device)).logits.toArray()); });
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
  const r = F.reshape(model.forward(padRight(seqs, padTokenId, model.device)).logits, [2 * pairs.length]);
  return { chosen: F.slice(r, 0, 0, pairs.length), rejected: F.slice(r, 0, pairs.length) };
}

/** Real tokens of preference pairs: prompt + chosen and prompt + rejected, each pair. */
export function pairTokens(pairs: readonly PreferenceExample[]): number {
  let n = 0;
  for (const p of pairs) n += 2 * p.promptIds.length + p.chosenIds.length + p.rejectedIds.length;
  return n;
}

/** Held-out figures of preference objectives (reward: loss, accuracy, margin; DPO: loss, rewards/*), and count. */
export type PairFigures = Figures;

/** "loss 0.4162, accuracy 0.8125, ..., count 400" */
export function describePairFigures(m: PairFigures): string {
  return Object.entries(m).map(([k, v]) => `${k} ${Math.abs(v) >= 100 || Number.isInteger(v) ? v : v.toFixed(4)}`).join(', ');
}

/**
 * The reward-model objective (TRL RewardTrainer's loss and metrics): one update per step over
 * `gradAccum` batches of pairs, without dropout; evaluated before training and after.
 * @example new Trainer({ model: rm, objective: new RewardObjective(rm, { padTokenId: 0 }), train: pairs, eval: heldOut });
 */
export class RewardObjective implements Objective<PreferenceExample, PairFigures> {
  readonly name = 'reward';
  readonly dropout = false;
  readonly evalOnStart = true;
  readonly chartTitle = 'tunekit reward model';

  constructor(readonly model: ScalarModel, readonly opts: { padTokenId: number }) {
    checkScalar(model);
  }

  updatesPerStep(): number {
    return 1;
  }

  /** Loss, accuracy and margin of one batch; the loss is differentiable. */
  batchLoss(batch: readonly PreferenceExample[]): { loss: Tensor<'f32'>; figures: PairFigures } {
    const { chosen, rejected } = pairRewards(this.model, batch, this.opts.padTokenId);
    const out = pairwiseRewardLoss(chosen, rejected);
    return { loss: out.loss, figures: { accuracy: out.accuracy, margin: out.margin } };
  }

  plan(batches: PreferenceExample[][]): StepPlan {
    return { updates: [batches.map((b) => () => this.batchLoss(b))], tokens: batches.reduce((n, b) => n + pairTokens(b), 0) };
  }

  /** Mean loss, accuracy (r+ > r-) and margin on held-out pairs, without gradients. */
  evaluate(examples: PreferenceExample[], ctx: EvalContext): PairFigures {
    let loss = 0, acc = 0, margin = 0;
    noGrad(() => {
      for (let i = 0; i < examples.length; i += ctx.batchSize) {
        const batch = examples.slice(i, i + ctx.batchSize);
        tidy(() => {
          const { loss: l, figures } = this.batchLoss(batch);
          loss += l.item() * batch.length;
          acc += figures.accuracy! * batch.length;
          margin += figures.margin! * batch.length;
        });
      }
    });
    const n = Math.max(1, examples.length);
    return { loss: loss / n, accuracy: acc / n, margin: margin / n, count: examples.length };
  }

  /** The pairwise loss, as TRL's default metric_for_best_model. */
  defaultWatch(): WatchedMetric {
    return { key: 'loss', mode: 'min' };
  }

  describeEval(m: PairFigures): string {
    return describePairFigures(m);
  }
}

/** RLHF trainers' defaults (TRL-like): 1 epoch, 8 pairs a step, lr 1e-4, linear decay, clipping at 1, a line every 10 steps. */
export const RLHF_DEFAULT_SETTINGS: Partial<TrainSettings> = { epochs: 1, batchSize: 8, lr: 1e-4, logEvery: 10 };

/** What every trainer on preference pairs takes (the reward model's and DPO's). */
export interface PairTrainerOptions {
  model: TrainableModel;
  train: PreferenceExample[];
  eval?: PreferenceExample[];
  padTokenId: number;
  settings?: Partial<TrainSettings>;
  /** metrics.jsonl, loss.svg and checkpoint/ go here */
  outputDir?: string;
  /** progress, eval and resume lines (default: stderr, as the Trainer's progress) */
  log?: (line: string) => void;
  progress?: 'auto' | 'bar' | 'plain' | 'none';
  callbacks?: TrainerCallbacks<PairFigures>;
  runConfig?: Record<string, unknown>;
}

export interface RewardTrainerOptions extends PairTrainerOptions {
  /** a seq_cls model with one label, plain or with adapters */
  model: TrainableModel;
}

/**
 * Trains a reward model on preference pairs: the Trainer with a {@link RewardObjective}.
 * @example const fit = await new RewardTrainer({ model: rm, train, eval, padTokenId: 0 }).fit(); fit.evals.at(-1)!.result.accuracy;
 */
export class RewardTrainer extends Trainer<PreferenceExample, PairFigures> {
  constructor(opts: RewardTrainerOptions) {
    super({
      model: opts.model, objective: new RewardObjective(opts.model, { padTokenId: opts.padTokenId }), train: opts.train, eval: opts.eval,
      settings: { ...RLHF_DEFAULT_SETTINGS, ...opts.settings }, outputDir: opts.outputDir, log: opts.log, progress: opts.progress,
      callbacks: opts.callbacks, runConfig: opts.runConfig,
    });
  }
}

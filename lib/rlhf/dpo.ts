/**
 * Direct preference optimisation (Rafailov et al. 2023), sigmoid loss:
 * -mean log sigmoid(beta [(logp(y+) - logp_ref(y+)) - (logp(y-) - logp_ref(y-))]), log-probs
 * summed over completion tokens. With adapters the reference is the same PeftModel with its
 * adapters disabled, run without gradients (no second copy of the weights); a separate
 * reference model or precomputed reference log-probs also work. The objective runs in the one
 * Trainer (lib/train/trainer.ts).
 *
 * @example
 * const { model: base } = loadPretrainedSync('models/tunekit-gpt2-small');
 * const policy = new LoraModel(base, { r: 8, lora_alpha: 16 });
 * const dpo = new DpoTrainer({ model: policy, train: pairs, eval: heldOut, padTokenId: 0, beta: 0.1 });
 * const before = dpo.evaluate();     // rewards/margins 0 at the start (policy == reference)
 * await dpo.fit();
 * dpo.evaluate()['rewards/margins']; // > 0 when the preference was learnt
 */
import type { Tensor } from '../tensor/tensor.js';
import { tidy } from '../tensor/scope.js';
import { noGrad } from '../autograd/tape.js';
import * as F from '../autograd/ops.js';
import { TunekitError } from '../errors.js';
import { PeftModel } from '../peft/base/peft_model.js';
import type { PreferenceExample } from '../data/types.js';
import type { Module } from '../nn/module.js';
import { collateCompletions, completionLogprobs, type CausalForward, type PromptCompletion } from '../models/logprobs.js';
import type { EvalContext, Objective, StepPlan, WatchedMetric } from '../train/objective.js';
import { Trainer, type TrainableModel, type TrainerCallbacks, type TrainSettings } from '../train/trainer.js';
import { dpoLoss } from './losses.js';
import { RLHF_DEFAULT_SETTINGS, describePairFigures, pairTokens, type PairFigures, type PairTrainerOptions } from './reward.js';

export type PolicyModel = Module & CausalForward;

/** The 2B sequences of B pairs: every chosen completion, then every rejected one. */
export function pairSequences(pairs: readonly PreferenceExample[]): PromptCompletion[] {
  return [
    ...pairs.map((p) => ({ promptIds: p.promptIds, completionIds: p.chosenIds })),
    ...pairs.map((p) => ({ promptIds: p.promptIds, completionIds: p.rejectedIds })),
  ];
}

/**
 * Summed completion log-probs of the chosen and rejected answers of pairs, one forward: [B] each.
 * @example const { chosen, rejected } = pairLogprobs(model, pairs, 0);
 */
export function pairLogprobs(model: CausalForward, pairs: readonly PreferenceExample[], padTokenId: number): { chosen: Tensor<'f32'>; rejected: Tensor<'f32'> } {
  const { sums } = completionLogprobs(model, collateCompletions(pairSequences(pairs), padTokenId));
  const B = pairs.length;
  return { chosen: F.slice(sums, 0, 0, B), rejected: F.slice(sums, 0, B) };
}

export interface DpoObjectiveOptions {
  /** a frozen reference for a policy without adapters */
  refModel?: CausalForward;
  padTokenId: number;
  /** DPO temperature (0.1) */
  beta?: number;
}

/**
 * The DPO objective: one update per step over `gradAccum` batches of pairs, without dropout;
 * evaluated before training (rewards/margins 0: policy == reference) and after.
 * @example new Trainer({ model: policy, objective: new DpoObjective(policy, { padTokenId: 0, beta: 0.1 }), train: pairs });
 */
export class DpoObjective implements Objective<PreferenceExample, PairFigures> {
  readonly name = 'dpo';
  readonly dropout = false;
  readonly evalOnStart = true;
  readonly chartTitle = 'tunekit DPO';
  readonly chartMetric = 'rewards/accuracies';
  readonly beta: number;
  private readonly refCache = new WeakMap<PreferenceExample, [number, number]>();

  constructor(readonly model: PolicyModel, readonly opts: DpoObjectiveOptions) {
    this.beta = opts.beta ?? 0.1;
    if (!(this.beta > 0)) throw new TunekitError('ERR_VALUE', `DPO: expected beta > 0 but received ${this.beta}`);
  }

  /** Whether the reference of a pair comes from somewhere (adapters, a reference model, or the cache). */
  private checkReference(pairs: readonly PreferenceExample[]): void {
    if (this.model instanceof PeftModel || this.opts.refModel) return;
    if (pairs.some((p) => !this.refCache.has(p))) {
      throw new TunekitError('ERR_VALUE', 'DPO without adapters needs a reference: pass refModel, or precompute the reference log-probs of every pair before the policy changes');
    }
  }

  /** Reference log-probs (no gradient) of pairs: [chosen[], rejected[]]. */
  referenceLogprobs(pairs: readonly PreferenceExample[]): { chosen: number[]; rejected: number[] } {
    const cached = pairs.map((p) => this.refCache.get(p));
    if (cached.every((c) => c)) return { chosen: cached.map((c) => c![0]), rejected: cached.map((c) => c![1]) };
    const { refModel, padTokenId } = this.opts;
    const model = this.model;
    return noGrad(() => tidy(() => {
      const run = () => {
        const { chosen, rejected } = pairLogprobs(refModel ?? model, pairs, padTokenId);
        return { chosen: chosen.toArray(), rejected: rejected.toArray() };
      };
      return !refModel && model instanceof PeftModel ? model.withAdaptersDisabled(run) : run();
    }));
  }

  /**
   * Computes and stores the reference log-probs of examples (TRL's precompute_ref_log_probs),
   * `batchSize` pairs at a time; call it while the policy is still the reference.
   */
  precompute(examples: readonly PreferenceExample[], batchSize: number): void {
    for (let i = 0; i < examples.length; i += batchSize) {
      const batch = examples.slice(i, i + batchSize);
      const { chosen, rejected } = this.referenceLogprobs(batch);
      batch.forEach((p, j) => this.refCache.set(p, [chosen[j]!, rejected[j]!]));
    }
  }

  updatesPerStep(): number {
    return 1;
  }

  /** DPO loss of one batch (differentiable) and TRL's rewards/* metrics. */
  batchLoss(batch: readonly PreferenceExample[]): { loss: Tensor<'f32'>; figures: PairFigures } {
    this.checkReference(batch);
    const ref = this.referenceLogprobs(batch);
    const { chosen, rejected } = pairLogprobs(this.model, batch, this.opts.padTokenId);
    const out = dpoLoss(chosen, rejected, ref.chosen, ref.rejected, this.beta);
    return { loss: out.loss, figures: { ...out.metrics } };
  }

  /** Tokens: the policy's forward of both sequences of each pair (the reference pass is not counted). */
  plan(batches: PreferenceExample[][]): StepPlan {
    return { updates: [batches.map((b) => () => this.batchLoss(b))], tokens: batches.reduce((n, b) => n + pairTokens(b), 0) };
  }

  /** Loss and rewards/* metrics on held-out pairs, without gradients. */
  evaluate(examples: PreferenceExample[], ctx: EvalContext): PairFigures {
    const sums: PairFigures = {};
    noGrad(() => {
      for (let i = 0; i < examples.length; i += ctx.batchSize) {
        const batch = examples.slice(i, i + ctx.batchSize);
        tidy(() => {
          const { loss, figures } = this.batchLoss(batch);
          for (const [k, v] of Object.entries({ loss: loss.item(), ...figures })) sums[k] = (sums[k] ?? 0) + v * batch.length;
        });
      }
    });
    const n = Math.max(1, examples.length);
    return { ...Object.fromEntries(Object.entries(sums).map(([k, v]) => [k, v / n])), count: examples.length };
  }

  /** The DPO loss, as TRL's default metric_for_best_model. */
  defaultWatch(): WatchedMetric {
    return { key: 'loss', mode: 'min' };
  }

  describeEval(m: PairFigures): string {
    return describePairFigures(m);
  }
}

export interface DpoTrainerOptions extends PairTrainerOptions {
  /** the policy: a PeftModel (its disabled-adapter self is the reference) or a plain model with `refModel` or `precomputeReference` */
  model: TrainableModel;
  /** a frozen reference for a policy without adapters */
  refModel?: CausalForward;
  /** DPO temperature (0.1) */
  beta?: number;
  /** compute every reference log-prob once, here, before training (then the reference never runs again) */
  precomputeReference?: boolean;
}

/**
 * DPO training: the Trainer with a {@link DpoObjective}.
 * @example await new DpoTrainer({ model: policy, train: pairs, padTokenId: 0, beta: 0.1 }).fit();
 */
export class DpoTrainer extends Trainer<PreferenceExample, PairFigures> {
  readonly dpo: DpoObjective;
  readonly beta: number;

  constructor(opts: DpoTrainerOptions) {
    const objective = new DpoObjective(opts.model, { refModel: opts.refModel, padTokenId: opts.padTokenId, beta: opts.beta });
    const settings = { ...RLHF_DEFAULT_SETTINGS, ...opts.settings };
    if (!(opts.model instanceof PeftModel) && !opts.refModel && !opts.precomputeReference) {
      throw new TunekitError('ERR_VALUE', 'DPO without adapters needs a reference: pass refModel, or precomputeReference before the policy changes');
    }
    if (opts.precomputeReference) {
      const bs = (settings.batchSize ?? 8) * 2;
      objective.precompute(opts.train, bs);
      if (opts.eval) objective.precompute(opts.eval, bs);
    }
    super({
      model: opts.model, objective, train: opts.train, eval: opts.eval, settings, outputDir: opts.outputDir, log: opts.log,
      progress: opts.progress, callbacks: opts.callbacks, runConfig: opts.runConfig,
    });
    this.dpo = objective;
    this.beta = objective.beta;
  }

  /** Reference log-probs (no gradient) of pairs. */
  referenceLogprobs(pairs: readonly PreferenceExample[]): { chosen: number[]; rejected: number[] } {
    return this.dpo.referenceLogprobs(pairs);
  }

  /** DPO loss of one batch (differentiable) and its rewards/* figures. */
  batchLoss(batch: readonly PreferenceExample[]): { loss: Tensor<'f32'>; figures: PairFigures } {
    return this.dpo.batchLoss(batch);
  }
}

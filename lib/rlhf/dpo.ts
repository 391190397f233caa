/**
 * Direct preference optimisation (Rafailov et al. 2023), sigmoid loss:
 * -mean log sigmoid(beta [(logp(y+) - logp_ref(y+)) - (logp(y-) - logp_ref(y-))]), log-probs
 * summed over completion tokens. With adapters the reference is the same PeftModel with its
 * adapters disabled, run without gradients (no second copy of the weights); a separate
 * reference model or precomputed reference log-probs also work.
 *
 * @example
 * const { model: base } = loadPretrained('models/tunekit-gpt2-small');
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
import { dpoLoss } from './losses.js';
import { runPairLoop, DEFAULT_PAIR_SETTINGS, type PairTrainSettings, type PairFitResult, type PairMetrics } from './pair_loop.js';

export type PolicyModel = Module & CausalForward;

export interface DpoTrainerOptions {
  /** the policy: a PeftModel (its disabled-adapter self is the reference) or a plain model with `refModel` */
  model: PolicyModel;
  /** a frozen reference for a policy without adapters */
  refModel?: CausalForward;
  train: PreferenceExample[];
  eval?: PreferenceExample[];
  padTokenId: number;
  /** DPO temperature (0.1) */
  beta?: number;
  /** compute every reference log-prob once before training (then the reference never runs again) */
  precomputeReference?: boolean;
  settings?: Partial<PairTrainSettings>;
  outputDir?: string;
  log?: (line: string) => void;
}

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

export class DpoTrainer {
  readonly settings: PairTrainSettings;
  readonly beta: number;
  private readonly refCache = new WeakMap<PreferenceExample, [number, number]>();

  constructor(readonly opts: DpoTrainerOptions) {
    this.settings = { ...DEFAULT_PAIR_SETTINGS, ...opts.settings };
    this.beta = opts.beta ?? 0.1;
    if (!(this.beta > 0)) throw new TunekitError('ERR_VALUE', `DPO: expected beta > 0 but received ${this.beta}`);
    if (!(opts.model instanceof PeftModel) && !opts.refModel && !opts.precomputeReference) {
      throw new TunekitError('ERR_VALUE', 'DPO without adapters needs a reference: pass refModel, or precomputeReference before the policy changes');
    }
    if (opts.precomputeReference) {
      this.precompute(opts.train);
      if (opts.eval) this.precompute(opts.eval);
    }
  }

  /** Reference log-probs (no gradient) of pairs: [chosen[], rejected[]]. */
  referenceLogprobs(pairs: readonly PreferenceExample[]): { chosen: number[]; rejected: number[] } {
    const cached = pairs.map((p) => this.refCache.get(p));
    if (cached.every((c) => c)) return { chosen: cached.map((c) => c![0]), rejected: cached.map((c) => c![1]) };
    const { model, refModel, padTokenId } = this.opts;
    return noGrad(() => tidy(() => {
      const run = () => {
        const { chosen, rejected } = pairLogprobs(refModel ?? model, pairs, padTokenId);
        return { chosen: chosen.toArray(), rejected: rejected.toArray() };
      };
      return !refModel && model instanceof PeftModel ? model.withAdaptersDisabled(run) : run();
    }));
  }

  /** Computes and stores the reference log-probs of examples (TRL's precompute_ref_log_probs). */
  precompute(examples: readonly PreferenceExample[]): void {
    const bs = this.settings.batchSize * 2;
    for (let i = 0; i < examples.length; i += bs) {
      const batch = examples.slice(i, i + bs);
      const { chosen, rejected } = this.referenceLogprobs(batch);
      batch.forEach((p, j) => this.refCache.set(p, [chosen[j]!, rejected[j]!]));
    }
  }

  /** DPO loss of one batch (differentiable) and TRL's rewards/* metrics. */
  batchLoss(batch: readonly PreferenceExample[]): { loss: Tensor<'f32'>; metrics: PairMetrics } {
    const ref = this.referenceLogprobs(batch);
    const { chosen, rejected } = pairLogprobs(this.opts.model, batch, this.opts.padTokenId);
    const out = dpoLoss(chosen, rejected, ref.chosen, ref.rejected, this.beta);
    return { loss: out.loss, metrics: { ...out.metrics } };
  }

  /** Loss and rewards/* metrics on held-out pairs, without gradients. */
  evaluate(examples: readonly PreferenceExample[] = this.opts.eval ?? []): PairMetrics {
    const bs = this.settings.batchSize * 2;
    const sums: PairMetrics = {};
    const was = this.opts.model.training;
    this.opts.model.eval();
    noGrad(() => {
      for (let i = 0; i < examples.length; i += bs) {
        const batch = examples.slice(i, i + bs);
        tidy(() => {
          const { loss, metrics } = this.batchLoss(batch);
          for (const [k, v] of Object.entries({ loss: loss.item(), ...metrics })) sums[k] = (sums[k] ?? 0) + v * batch.length;
        });
      }
    });
    this.opts.model.train(was);
    const n = Math.max(1, examples.length);
    return { ...Object.fromEntries(Object.entries(sums).map(([k, v]) => [k, v / n])), count: examples.length };
  }

  fit(): Promise<PairFitResult> {
    return runPairLoop({
      model: this.opts.model, train: this.opts.train, eval: this.opts.eval, settings: this.settings, outputDir: this.opts.outputDir,
      step: (b) => this.batchLoss(b), evaluate: (e) => this.evaluate(e), log: this.opts.log, title: 'tunekit DPO', metricKey: 'rewards/accuracies',
    });
  }
}

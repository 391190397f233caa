/**
 * PPO for RLHF (Ziegler et al. 2019; TRL's PPOTrainer mechanics), as an objective of the one
 * Trainer (lib/train/trainer.ts). Each step takes `batch_size x grad_accum` prompts:
 *
 * rollout phase (plan(), no gradients)
 *  1. sample a response to every prompt with the KV cache (`generate`);
 *  2. score: the reward function (usually a reward model) scores prompt+response;
 *  3. one pass of the policy gives the old log-probs and values (value head: a Linear(C, 1) on
 *     the policy's final hidden states), one of the reference (the same PeftModel with adapters
 *     disabled) the reference log-probs;
 *  4. per-token rewards -kl_coef (logp - logp_ref), plus the score on the last response token;
 *     GAE (gamma, lambda) gives advantages and returns; advantages are whitened over the mask;
 * optimisation phase (the Trainer's updates)
 *  5. `ppoEpochs` epochs over shuffled minibatches (rollouts / numMiniBatches, each split into
 *     grad_accum micro-batches): clipped policy loss + vf_coef * clipped value loss, one update
 *     per minibatch;
 * after the step
 *  6. with `klTarget` set, the adaptive KL controller (kl_control.ts) moves kl_coef toward the
 *     value that holds the rollout's KL at the target; without it kl_coef stays fixed.
 *
 * The value head trains beside the policy (in the optimizer, saved in checkpoints as
 * value_head.safetensors); kl_coef is the objective's checkpointed state. The rollout's sampling
 * seed and the minibatch order derive from the seed and the step, so a resumed run samples
 * exactly what the uninterrupted run did.
 *
 * Differences from TRL, on purpose: the score sits on the last response token (TRL adds it one
 * position later, `sequence_lengths_p1`, and keeps that position's value), and the value head
 * shares the policy's trunk (TRL's current trainer runs a separate value model).
 *
 * @example
 * const policy = new LoraModel(loadPretrainedSync('models/tunekit-gpt2-small').model, { r: 8, lora_alpha: 16 });
 * const ppo = new PpoTrainer({ policy, reward: rewardModelScorer(rm, 0), padTokenId: 0, eosTokenId: 0, maxNewTokens: 16, train: prompts, settings: { batchSize: 16, maxSteps: 20 } });
 * const fit = await ppo.fit();   // fit.lastTrain.score, fit.lastTrain.kl
 */
import { Tensor } from '../tensor/tensor.js';
import { tensor } from '../tensor/creation.js';
import { tidy } from '../tensor/scope.js';
import { noGrad } from '../autograd/tape.js';
import * as F from '../autograd/ops.js';
import { TunekitError, describe } from '../errors.js';
import { Module } from '../nn/module.js';
import { Linear } from '../nn/layers.js';
import { PeftModel } from '../peft/base/peft_model.js';
import type { ModelConfig, ModelInputs, PretrainedModel, Task } from '../models/common.js';
import { generate } from '../models/generate.js';
import { Rng, deriveSeed } from '../data/rng.js';
import { gatherLogprobs, type CausalForward } from '../models/logprobs.js';
import type { MetricsRecord } from '../train/metrics_log.js';
import { writePanelsPlot, type SeriesPanel } from '../train/plot.js';
import type { EvalContext, Figures, MicroBatch, Objective, StepContext, StepPlan, WatchedMetric } from '../train/objective.js';
import { Trainer, type TrainableModel, type TrainerCallbacks, type TrainSettings } from '../train/trainer.js';
import { gae, maskedWhiten, perTokenRewards, ppoPolicyLoss, ppoValueLoss, responseMask } from './losses.js';
import { scoreSequences, type ScalarModel } from './reward.js';
import { AdaptiveKlController, makeKlController, type KlController } from './kl_control.js';

/** TRL's fill value for log-probs at masked-out response positions. */
export const INVALID_LOGPROB = 1.0;

/** Stream of the rollout sampling seeds (1000 + step) and of the evaluation's (EVAL_SEED_STREAM + batch). */
const EVAL_SEED_STREAM = 1_000_000;

/** A scalar value per position: Linear(C, 1) on hidden states [.., C] -> [..]. */
export class ValueHead extends Module {
  summary: Linear;
  constructor(hiddenSize: number, opts: { seed?: number } = {}) {
    super();
    this.summary = this.module('summary', new Linear(hiddenSize, 1, { seed: opts.seed }));
    this.summary.requiresGrad_(true);
  }
  forward(hidden: Tensor): Tensor<'f32'> {
    const lead = hidden.shape.slice(0, -1);
    return F.reshape(this.summary.forward(hidden), lead);
  }
}

/** Scores prompt+response pairs; higher is better. */
export type RewardFn = (queries: number[][], responses: number[][]) => number[] | Promise<number[]>;

/**
 * A reward function from a reward model (seq_cls, one label): the score of prompt+response.
 * @example const reward = rewardModelScorer(rm, tokenizer.padTokenId ?? 0);
 */
export function rewardModelScorer(model: ScalarModel, padTokenId: number, batchSize = 16): RewardFn {
  return (q, r) => scoreSequences(model, q.map((qi, i) => [...qi, ...r[i]!]), padTokenId, batchSize);
}

/** The policy: a causal LM (a PeftModel, whose disabled-adapter self is the reference). */
export interface PolicyLike extends Module, CausalForward {
  readonly config: ModelConfig;
  readonly task: Task;
}

/** What PPO computes with: everything but the optimizer's settings (the Trainer's). */
export interface PpoObjectiveOptions {
  policy: PolicyLike;
  /** a frozen reference for a policy without adapters, on the policy's device (the grids are made there) */
  refModel?: CausalForward;
  reward: RewardFn;
  padTokenId: number;
  /** ends a response (kept in it); null for none. Default: the model's eos_token_id */
  eosTokenId?: number | null;
  /** KL penalty coefficient (0.05); with klTarget, its initial value */
  klCoef?: number;
  /**
   * Adaptive KL control (Ziegler et al. 2019; TRL's adap_kl_ctrl): the summed-over-tokens KL per
   * sequence to steer toward, in nats. null (default): kl_coef is fixed
   */
  klTarget?: number | null;
  /** rollouts over which the adaptive controller may change kl_coef by about 20% (10000, TRL's default) */
  klHorizon?: number;
  gamma?: number;
  lam?: number;
  cliprange?: number;
  cliprangeValue?: number;
  /** weight of the value loss (TRL's vf_coef 0.1) */
  vfCoef?: number;
  ppoEpochs?: number;
  /** minibatches per rollout batch (4) */
  numMiniBatches?: number;
  maxNewTokens?: number;
  /** sampling temperature (1); log-probs use the same temperature */
  temperature?: number;
  topK?: number;
  /** advantage whitening (true, as TRL) */
  whitenAdvantages?: boolean;
  /** seeds the value head, the rollouts' sampling and the minibatch order (42) */
  seed?: number;
}

type Resolved = Required<Omit<PpoObjectiveOptions, 'refModel' | 'eosTokenId' | 'klTarget'>> & Pick<PpoObjectiveOptions, 'refModel'> & { eosTokenId: number | null; klTarget: number | null };

/** One rollout batch, flattened [B, R] over response positions. */
export interface Rollout {
  queries: number[][];
  responses: number[][];
  scores: number[];
  B: number;
  R: number;
  /** 1 on real response tokens */
  mask: Float32Array;
  logprobs: Float32Array;
  refLogprobs: Float32Array;
  values: Float32Array;
  advantages: Float64Array;
  returns: Float64Array;
  kl: Float64Array;
  entropy: number;
  /** the KL coefficient of the per-token rewards */
  klCoef: number;
}

/** What a PPO step measured (TRL's objective/* and policy/* figures), as its train record holds them. */
export interface PpoStats {
  step: number;
  /** mean reward-model score of the rollout */
  score: number;
  /** mean over sequences of the summed per-token KL (logp - logp_ref) */
  kl: number;
  /** score - kl_coef * kl */
  rlhf_reward: number;
  /** the KL coefficient this rollout was rewarded with (changes only with klTarget) */
  kl_coef: number;
  /** mean per-token entropy of the sampling distribution */
  entropy: number;
  pg_loss: number;
  vf_loss: number;
  /** fraction of response tokens whose policy ratio was clipped */
  clipfrac: number;
  vf_clipfrac: number;
  approxkl: number;
  ratio: number;
  response_length: number;
}

/** PPO's evaluation: responses sampled (fixed seeds) for held-out prompts, scored, and their KL to the reference. */
export interface PpoEval {
  score: number;
  /** mean over prompts of the summed per-token KL */
  kl: number;
  response_length: number;
  /** prompts */
  count: number;
}

interface Grid {
  inputs: ModelInputs;
  /** flat positions (b*(L+R) + L-1+t) predicting response token t */
  positions: Int32Array;
  targets: Int32Array;
}

/**
 * The PPO objective: a rollout phase in plan(), then ppo_epochs x minibatches updates.
 * @example new Trainer({ model: policy, objective: new PpoObjective({ policy, reward, padTokenId: 0 }), train: prompts, settings: { batchSize: 16 } });
 */
export class PpoObjective implements Objective<number[], Promise<PpoEval>> {
  readonly name = 'ppo';
  readonly dropout = false;
  /** every rollout has batch_size prompts (advantages are whitened over the batch) */
  readonly dropLast = true;
  readonly evalOnStart = true;
  readonly chartTitle = 'tunekit PPO';
  readonly valueHead: ValueHead;
  readonly extraModules: Readonly<Record<string, Module>>;
  readonly o: Resolved;
  /** kl_coef for the next rollout (fixed, or adaptive with klTarget) */
  readonly klController: KlController;
  /** the current step's rollout, for afterStep */
  private pending: { kl: number; B: number } | null = null;

  constructor(opts: PpoObjectiveOptions) {
    if (opts.policy.task !== 'causal_lm') throw new TunekitError('ERR_VALUE', `PPO: expected a causal_lm policy but received task '${opts.policy.task}'`);
    if (!(opts.policy instanceof PeftModel) && !opts.refModel) throw new TunekitError('ERR_VALUE', 'PPO without adapters needs a frozen refModel');
    this.o = {
      klCoef: 0.05, klTarget: null, klHorizon: 10000, gamma: 1, lam: 0.95, cliprange: 0.2, cliprangeValue: 0.2, vfCoef: 0.1, ppoEpochs: 4, numMiniBatches: 4, maxNewTokens: 16,
      temperature: 1, topK: 0, whitenAdvantages: true, seed: 42,
      ...definedOnly(opts),
      eosTokenId: opts.eosTokenId === undefined ? opts.policy.config.eosTokenId : opts.eosTokenId,
    } as Resolved;
    for (const k of ['ppoEpochs', 'numMiniBatches', 'maxNewTokens'] as const) {
      if (!Number.isInteger(this.o[k]) || this.o[k] < 1) throw new TunekitError('ERR_VALUE', `PPO: expected a positive integer for ${k} but received ${describe(this.o[k])}`);
    }
    if (!(this.o.temperature > 0)) throw new TunekitError('ERR_VALUE', `PPO: expected temperature > 0 but received ${this.o.temperature}`);
    this.klController = makeKlController(this.o);
    this.valueHead = new ValueHead(opts.policy.config.hiddenSize, { seed: this.o.seed });
    this.extraModules = { value_head: this.valueHead };
  }

  /** Minibatches per epoch and their size, for a rollout of B prompts (TRL: B / num_mini_batches each). */
  private minibatches(B: number): { size: number; count: number } {
    const size = Math.max(1, Math.floor(B / this.o.numMiniBatches));
    return { size, count: Math.floor(B / size) };
  }

  updatesPerStep(shape: { batchSize: number; gradAccum: number }): number {
    return this.o.ppoEpochs * this.minibatches(shape.batchSize * shape.gradAccum).count;
  }

  /** Left-padded queries then right-padded responses, with the rows that predict each response token. */
  private grid(queries: number[][], responses: number[][], R: number): Grid {
    const B = queries.length, L = Math.max(...queries.map((q) => q.length)), T = L + R;
    const ids = new Int32Array(B * T).fill(this.o.padTokenId), mask = new Int32Array(B * T);
    const positions = new Int32Array(B * R), targets = new Int32Array(B * R).fill(this.o.padTokenId);
    for (let b = 0; b < B; b++) {
      const q = queries[b]!, r = responses[b]!;
      q.forEach((id, j) => { ids[b * T + L - q.length + j] = id; mask[b * T + L - q.length + j] = 1; });
      r.forEach((id, t) => { ids[b * T + L + t] = id; mask[b * T + L + t] = 1; targets[b * R + t] = id; });
      for (let t = 0; t < R; t++) positions[b * R + t] = b * T + L - 1 + t;
    }
    return {
      // on the policy's device (a GPU's memory in a device run)
      inputs: { inputIds: tensor(ids, [B, T], 'i32', this.o.policy.device), attentionMask: tensor(mask, [B, T], 'i32', this.o.policy.device) },
      positions, targets,
    };
  }

  /** Log-probs [B, R] of the response tokens (masked positions filled with 1.0) and values [B, R]. */
  private evaluateGrid(model: CausalForward, g: Grid, B: number, R: number, mask: Float32Array, withValues: boolean): { logprobs: Tensor<'f32'>; values: Tensor<'f32'> | null } {
    const out = model.forward(g.inputs);
    const lp = F.reshape(gatherLogprobs(out.logits, g.positions, g.targets, this.o.temperature), [B, R]);
    const M = tensor(mask, [B, R], 'f32', lp.device);
    const fill = tensor(Float32Array.from(mask, (m) => (1 - m) * INVALID_LOGPROB), [B, R], 'f32', lp.device);
    const logprobs = F.add(F.mul(lp, M), fill);
    let values: Tensor<'f32'> | null = null;
    if (withValues) {
      const C = out.hidden.shape[out.hidden.ndim - 1]!;
      const h = F.gatherRows(F.reshape(out.hidden, [-1, C]), tensor(g.positions, [B * R], 'i32', out.hidden.device));
      values = F.mul(F.reshape(this.valueHead.forward(h), [B, R]), M);
    }
    return { logprobs, values };
  }

  /** Reference log-probs [B*R] of a grid (no gradient): the adapters-disabled policy or the reference model. */
  private referenceLogprobs(g: Grid, B: number, R: number, mask: Float32Array): Float32Array {
    const policy = this.o.policy;
    return noGrad(() => tidy(() => {
      const run = () => this.evaluateGrid(this.o.refModel ?? policy, g, B, R, mask, false).logprobs.toTypedArray() as Float32Array;
      return !this.o.refModel && policy instanceof PeftModel ? policy.withAdaptersDisabled(run) : run();
    }));
  }

  /** Mean per-token entropy of the sampling distribution over the masked response positions. */
  private meanEntropy(model: CausalForward, g: Grid, mask: Float32Array): number {
    return noGrad(() => tidy(() => {
      const out = model.forward(g.inputs);
      const V = out.logits.shape[out.logits.ndim - 1]!;
      let rows = F.gatherRows(F.reshape(out.logits, [-1, V]), tensor(g.positions, [g.positions.length], 'i32', out.logits.device));
      if (this.o.temperature !== 1) rows = F.scale(rows, 1 / this.o.temperature);
      const lsm = F.logSoftmax(rows);
      const ent = F.neg(F.sum(F.mul(F.exp(lsm), lsm), 1)).toArray();
      let s = 0, n = 0;
      ent.forEach((e, i) => { s += e * mask[i]!; n += mask[i]!; });
      return n ? s / n : 0;
    }));
  }

  private disposeGrid(g: Grid): void {
    for (const t of Object.values(g.inputs)) (t as Tensor | undefined)?.dispose?.();
  }

  /**
   * The rollout phase: samples responses to the prompts (seeded by the step) and computes
   * everything the updates need, without gradients.
   * @example const ro = await objective.rollout(prompts); ro.scores;
   */
  async rollout(queries: number[][], step = 0): Promise<Rollout> {
    if (queries.length < 2) throw new TunekitError('ERR_VALUE', `PPO: a rollout batch needs at least 2 prompts (advantages are whitened) but received ${queries.length}`);
    const policy = this.o.policy;
    policy.eval();
    const gen = await generate(policy as unknown as PretrainedModel, queries, {
      maxNewTokens: this.o.maxNewTokens, temperature: this.o.temperature, topK: this.o.topK,
      eosTokenId: this.o.eosTokenId, padTokenId: this.o.padTokenId, seed: deriveSeed(this.o.seed, 1000 + step),
    });
    const responses = gen.sequences;
    const B = queries.length, R = Math.max(...responses.map((r) => r.length));
    const lastIndex = responses.map((r) => r.length - 1);
    const mask = responseMask(lastIndex, R);
    const scores = await this.o.reward(queries, responses);
    if (scores.length !== B || scores.some((s) => !Number.isFinite(s))) throw new TunekitError('ERR_VALUE', `PPO: the reward function must return ${B} finite scores but returned [${scores.slice(0, 4).join(', ')}${scores.length > 4 ? ', ...' : ''}] (${scores.length})`);
    const g = this.grid(queries, responses, R);
    const { logprobs, values } = noGrad(() => tidy(() => {
      const r = this.evaluateGrid(policy, g, B, R, mask, true);
      return { logprobs: r.logprobs.toTypedArray() as Float32Array, values: r.values!.toTypedArray() as Float32Array };
    }));
    const refLogprobs = this.referenceLogprobs(g, B, R, mask);
    const entropy = this.meanEntropy(policy, g, mask);
    const klCoef = this.klController.value;
    const { rewards, kl } = perTokenRewards(logprobs, refLogprobs, scores, lastIndex, B, R, klCoef);
    const { advantages: rawAdv, returns } = gae(rewards, values, B, R, this.o.gamma, this.o.lam);
    const advantages = this.o.whitenAdvantages ? maskedWhiten(rawAdv, mask) : rawAdv;
    for (let i = 0; i < advantages.length; i++) if (!mask[i]) advantages[i] = 0;
    this.disposeGrid(g);
    return { queries, responses, scores, B, R, mask, logprobs, refLogprobs, values, advantages, returns, kl, entropy, klCoef };
  }

  /** The clipped policy + value loss of rollouts `idx` (one micro-batch of a minibatch). */
  private microLoss(ro: Rollout, idx: number[]): MicroBatch {
    const { R } = ro;
    const m = idx.length;
    const pick = <A extends Float32Array | Float64Array>(a: A): Float64Array => {
      const out = new Float64Array(m * R);
      idx.forEach((b, j) => { for (let t = 0; t < R; t++) out[j * R + t] = a[b * R + t]!; });
      return out;
    };
    const mask = Float32Array.from(pick(ro.mask));
    return () => {
      const g = this.grid(idx.map((b) => ro.queries[b]!), idx.map((b) => ro.responses[b]!), R);
      const { logprobs, values } = this.evaluateGrid(this.o.policy, g, m, R, mask, true);
      const pg = ppoPolicyLoss(logprobs, pick(ro.logprobs), pick(ro.advantages), mask, this.o.cliprange);
      const vf = ppoValueLoss(values!, pick(ro.values), pick(ro.returns), mask, this.o.cliprangeValue);
      return {
        loss: F.add(pg.loss, F.scale(vf.loss, this.o.vfCoef)),
        figures: { pg_loss: pg.loss.item(), vf_loss: vf.loss.item(), clipfrac: pg.clipFrac, vf_clipfrac: vf.clipFrac, approxkl: pg.approxKl, ratio: pg.ratioMean },
      };
    };
  }

  /**
   * The rollout phase on the step's prompts, and the optimisation phase's updates: `ppoEpochs`
   * epochs of shuffled minibatches, each split into as many micro-batches as loader batches.
   */
  async plan(batches: number[][][], ctx: StepContext): Promise<StepPlan> {
    const queries = batches.flat();
    const ro = await this.rollout(queries, ctx.step);
    const { B, R } = ro;
    const mb = this.minibatches(B);
    const parts = batches.length;
    const updates: MicroBatch[][] = [];
    for (let epoch = 0; epoch < this.o.ppoEpochs; epoch++) {
      const order = new Rng(deriveSeed(this.o.seed, ctx.step * 131 + epoch)).shuffle(Array.from({ length: B }, (_, i) => i));
      for (let start = 0; start + mb.size <= B; start += mb.size) {
        const idx = order.slice(start, start + mb.size);
        const per = Math.ceil(idx.length / parts);
        const micro: MicroBatch[] = [];
        for (let j = 0; j < idx.length; j += per) {
          const chunk = idx.slice(j, j + per);
          // a micro-batch without response tokens has no loss (masked means over nothing)
          if (chunk.some((b) => ro.mask[b * R] === 1)) micro.push(this.microLoss(ro, chunk));
        }
        if (micro.length) updates.push(micro);
      }
    }
    let kl = 0;
    for (let b = 0; b < B; b++) for (let t = 0; t < R; t++) kl += ro.kl[b * R + t]!;
    kl /= B;
    const score = ro.scores.reduce((a, b) => a + b, 0) / B;
    const responseTokens = ro.responses.reduce((a, r) => a + r.length, 0);
    this.pending = { kl, B };
    return {
      updates,
      tokens: queries.reduce((a, q) => a + q.length, 0) + responseTokens,
      figures: { score, kl, rlhf_reward: score - ro.klCoef * kl, kl_coef: ro.klCoef, entropy: ro.entropy, response_length: responseTokens / B },
    };
  }

  /** As TRL: the controller sees the batch's mean KL once the batch has been learnt from. */
  afterStep(): void {
    if (!this.pending) return;
    this.klController.update(this.pending.kl, this.pending.B);
    this.pending = null;
  }

  /**
   * Responses sampled for held-out prompts (the same seeds at every evaluation, so that they
   * compare), their mean score and KL to the reference, without gradients.
   */
  async evaluate(prompts: number[][], ctx: EvalContext): Promise<PpoEval> {
    const policy = this.o.policy;
    let score = 0, kl = 0, length = 0;
    for (let i = 0; i < prompts.length; i += ctx.batchSize) {
      const queries = prompts.slice(i, i + ctx.batchSize);
      const gen = await generate(policy as unknown as PretrainedModel, queries, {
        maxNewTokens: this.o.maxNewTokens, temperature: this.o.temperature, topK: this.o.topK,
        eosTokenId: this.o.eosTokenId, padTokenId: this.o.padTokenId, seed: deriveSeed(this.o.seed, EVAL_SEED_STREAM + i),
      });
      const responses = gen.sequences;
      const B = queries.length, R = Math.max(...responses.map((r) => r.length));
      const mask = responseMask(responses.map((r) => r.length - 1), R);
      const scores = await this.o.reward(queries, responses);
      const g = this.grid(queries, responses, R);
      const lp = noGrad(() => tidy(() => this.evaluateGrid(policy, g, B, R, mask, false).logprobs.toTypedArray() as Float32Array));
      const ref = this.referenceLogprobs(g, B, R, mask);
      this.disposeGrid(g);
      for (let j = 0; j < B * R; j++) kl += mask[j]! * (lp[j]! - ref[j]!);
      score += scores.reduce((a, b) => a + b, 0);
      length += responses.reduce((a, r) => a + r.length, 0);
    }
    const n = Math.max(1, prompts.length);
    return { score: score / n, kl: kl / n, response_length: length / n, count: prompts.length };
  }

  /** The mean reward-model score of held-out responses. */
  defaultWatch(): WatchedMetric {
    return { key: 'score', mode: 'max' };
  }

  describeEval(r: PpoEval): string {
    return `score ${r.score.toFixed(4)}, kl ${r.kl.toFixed(4)}, response_length ${r.response_length.toFixed(1)} (${r.count} prompts)`;
  }

  state(): Record<string, unknown> {
    return { kl_coef: this.klController.value };
  }

  restoreState(state: Record<string, unknown>, file: string): void {
    const v = state.kl_coef;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new TunekitError('ERR_FORMAT', `${file}: expected a non-negative number for objective.state.kl_coef but received ${describe(v)}`);
    if (this.klController instanceof AdaptiveKlController) this.klController.value = v;
    else if (v !== this.klController.value) throw new TunekitError('ERR_CONFIG', `${file}: the checkpoint's kl_coef ${v} differs from this run's fixed ${this.klController.value}`);
  }

  /** ppo.svg: score and KL (with the target) per step, and kl_coef when it changed. */
  charts(records: readonly MetricsRecord[]): { file: string; title: string; panels: SeriesPanel[] }[] {
    const stats = records.filter((r) => r.split === 'train' && typeof r.score === 'number' && typeof r.kl === 'number')
      .map((r) => ({ step: r.step, score: r.score as number, kl: r.kl as number, kl_coef: typeof r.kl_coef === 'number' ? r.kl_coef : undefined }));
    return [{ file: 'ppo.svg', title: this.chartTitle, panels: ppoPanels(stats, { klTarget: this.o.klTarget }) }];
  }
}

export interface PpoPlotOptions {
  /** the adaptive controller's KL target, drawn on the KL panel */
  klTarget?: number | null;
  /** more panels after score, KL and kl_coef */
  extra?: SeriesPanel[];
}

/**
 * The PPO chart's panels: score and KL per step, plus kl_coef when it changed during the run.
 * @example writePanelsPlot('PPO', ppoPanels(stats, { klTarget: 6 }), 'runs/ppo/ppo.svg');
 */
export function ppoPanels(stats: readonly { step: number; score: number; kl: number; kl_coef?: number }[], opts: PpoPlotOptions = {}): SeriesPanel[] {
  const panels: SeriesPanel[] = [
    { title: 'mean reward-model score', points: stats.map((s) => [s.step, s.score]), color: '#1f77b4', xLabel: 'PPO step' },
    {
      title: 'KL(policy || reference), summed over tokens', points: stats.map((s) => [s.step, s.kl]), color: '#d62728', xLabel: 'PPO step',
      ...(opts.klTarget != null ? { reference: { y: opts.klTarget, label: `target ${opts.klTarget}` } } : {}),
    },
  ];
  const coefs = stats.map((s) => s.kl_coef).filter((c): c is number => c !== undefined);
  if (coefs.length && Math.max(...coefs) > Math.min(...coefs)) panels.push({ title: 'kl_coef (adaptive)', points: stats.map((s) => [s.step, s.kl_coef!]), color: '#9467bd', xLabel: 'PPO step' });
  panels.push(...(opts.extra ?? []));
  return panels;
}

/**
 * Writes the PPO chart (lib/train/plot.ts's panel chart) for per-step stats.
 * @example writePpoPlot(stats, 'runs/ppo/ppo.svg', 'PPO', { klTarget: 6 })
 */
export function writePpoPlot(stats: readonly { step: number; score: number; kl: number; kl_coef?: number }[], path: string, title = 'tunekit PPO', opts: PpoPlotOptions = {}): void {
  writePanelsPlot(title, ppoPanels(stats, opts), path);
}

export interface PpoTrainerOptions extends PpoObjectiveOptions {
  /** prompts (token ids); each step takes batchSize x gradAccum of them, in loader order */
  train: number[][];
  /** held-out prompts, evaluated before training and at the eval cadence */
  eval?: number[][];
  settings?: Partial<TrainSettings>;
  /** shorthands for settings.lr / weightDecay / maxGradNorm (1e-4, 0, 1) */
  lr?: number;
  weightDecay?: number;
  /** 0: no clipping */
  maxGradNorm?: number;
  /** metrics.jsonl, loss.svg, ppo.svg and checkpoint/ go here */
  outputDir?: string;
  log?: (line: string) => void;
  progress?: 'auto' | 'bar' | 'plain' | 'none';
  callbacks?: TrainerCallbacks<PpoEval>;
  runConfig?: Record<string, unknown>;
}

/** PPO's defaults beyond the Trainer's: a constant lr of 1e-4, a train record every step (a step is a whole rollout). */
export const PPO_DEFAULT_SETTINGS: Partial<TrainSettings> = { epochs: 1, batchSize: 16, lr: 1e-4, schedule: 'constant', logEvery: 1 };

/**
 * PPO training: the Trainer with a {@link PpoObjective} over a list of prompts.
 * @example const fit = await new PpoTrainer({ policy, reward, padTokenId: 0, train: prompts, settings: { batchSize: 16, maxSteps: 50 } }).fit();
 */
export class PpoTrainer extends Trainer<number[], Promise<PpoEval>> {
  readonly ppo: PpoObjective;

  constructor(opts: PpoTrainerOptions) {
    const objective = new PpoObjective(opts);
    const settings: Partial<TrainSettings> = {
      ...PPO_DEFAULT_SETTINGS, ...(opts.lr !== undefined ? { lr: opts.lr } : {}), ...(opts.weightDecay !== undefined ? { weightDecay: opts.weightDecay } : {}),
      ...(opts.maxGradNorm !== undefined ? { maxGradNorm: opts.maxGradNorm } : {}), ...(opts.seed !== undefined ? { seed: opts.seed } : {}), ...opts.settings,
    };
    super({
      model: opts.policy as unknown as TrainableModel, objective, train: opts.train, eval: opts.eval, settings, outputDir: opts.outputDir, log: opts.log,
      progress: opts.progress, callbacks: opts.callbacks, runConfig: opts.runConfig,
    });
    this.ppo = objective;
  }

  get valueHead(): ValueHead {
    return this.ppo.valueHead;
  }

  get klController(): KlController {
    return this.ppo.klController;
  }

  /** The rollout phase of step `step` on the given prompts (no update). */
  rollout(queries: number[][], step = 0): Promise<Rollout> {
    return this.ppo.rollout(queries, step);
  }
}

/** PPO stats of a train record (metrics.jsonl line or the fit's lastTrain). */
export function ppoStatsOf(step: number, f: Figures): PpoStats {
  const keys = ['score', 'kl', 'rlhf_reward', 'kl_coef', 'entropy', 'pg_loss', 'vf_loss', 'clipfrac', 'vf_clipfrac', 'approxkl', 'ratio', 'response_length'] as const;
  const out = { step } as PpoStats;
  for (const k of keys) out[k] = f[k] ?? NaN;
  return out;
}

function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

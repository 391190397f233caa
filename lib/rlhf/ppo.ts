/**
 * PPO for RLHF (Ziegler et al. 2019; TRL's PPOTrainer mechanics). Each step:
 *  1. rollout: sample a response to every prompt of the batch with the KV cache (`generate`);
 *  2. score: the reward function (usually a reward model) scores prompt+response;
 *  3. one no-gradient pass of the policy gives the old log-probs and values (value head: a
 *     Linear(C, 1) on the policy's final hidden states), one of the reference (the same
 *     PeftModel with adapters disabled) the reference log-probs;
 *  4. per-token rewards -kl_coef (logp - logp_ref), plus the score on the last response token;
 *     GAE (gamma, lambda) gives advantages and returns; advantages are whitened over the mask;
 *  5. `ppoEpochs` epochs over shuffled minibatches: clipped policy loss + vf_coef * clipped
 *     value loss, one AdamW step per minibatch;
 *  6. with `klTarget` set, the adaptive KL controller (kl_control.ts) moves kl_coef toward the
 *     value that holds the rollout's KL at the target; without it kl_coef stays fixed.
 * Differences from TRL, on purpose: the score sits on the last response token (TRL adds it one
 * position later, `sequence_lengths_p1`, and keeps that position's value), and the value head
 * shares the policy's trunk (TRL's current trainer runs a separate value model).
 *
 * @example
 * const policy = new LoraModel(loadPretrained('models/tunekit-gpt2-small').model, { r: 8, lora_alpha: 16 });
 * const ppo = new PpoTrainer({ policy, reward: rewardModelScorer(rm, 0), padTokenId: 0, eosTokenId: 0, maxNewTokens: 16 });
 * for (let i = 0; i < 20; i++) console.log(await ppo.step(prompts.slice(16 * i, 16 * i + 16)));
 */
import { join } from 'node:path';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { Tensor } from '../tensor/tensor.js';
import { tensor } from '../tensor/creation.js';
import { tidy } from '../tensor/scope.js';
import { backward, noGrad } from '../autograd/tape.js';
import * as F from '../autograd/ops.js';
import { TunekitError } from '../errors.js';
import { Module } from '../nn/module.js';
import { Linear } from '../nn/layers.js';
import { PeftModel } from '../peft/base/peft_model.js';
import type { ModelConfig, ModelInputs, PretrainedModel, Task } from '../models/common.js';
import { generate } from '../models/generate.js';
import { Rng, deriveSeed } from '../data/rng.js';
import { AdamW, clipGradNorm } from '../train/optimizer.js';
import { MetricsLog } from '../train/metrics_log.js';
import { gatherLogprobs, type CausalForward } from '../models/logprobs.js';
import { gae, maskedWhiten, perTokenRewards, ppoPolicyLoss, ppoValueLoss, responseMask } from './losses.js';
import { scoreSequences, type ScalarModel } from './reward.js';
import { makeKlController, type KlController } from './kl_control.js';

/** TRL's fill value for log-probs at masked-out response positions. */
export const INVALID_LOGPROB = 1.0;

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

export interface PpoOptions {
  policy: PolicyLike;
  /** a frozen reference for a policy without adapters */
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
  lr?: number;
  weightDecay?: number;
  /** 0: no clipping */
  maxGradNorm?: number;
  /** advantage whitening (true, as TRL) */
  whitenAdvantages?: boolean;
  seed?: number;
  /** metrics.jsonl goes here */
  outputDir?: string;
  log?: (line: string) => void;
}

/** What one PPO step measured (TRL's objective/* and policy/* figures). */
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
  seconds: number;
}

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

interface Grid {
  inputs: ModelInputs;
  /** flat positions (b*(L+R) + L-1+t) predicting response token t */
  positions: Int32Array;
  targets: Int32Array;
}

export class PpoTrainer {
  readonly valueHead: ValueHead;
  readonly optimizer: AdamW;
  readonly o: Required<Omit<PpoOptions, 'refModel' | 'outputDir' | 'log' | 'eosTokenId' | 'klTarget'>> & Pick<PpoOptions, 'refModel' | 'outputDir' | 'log'> & { eosTokenId: number | null; klTarget: number | null };
  /** kl_coef for the next rollout (fixed, or adaptive with klTarget) */
  readonly klController: KlController;
  private stepCount = 0;
  private readonly metrics: MetricsLog | null;

  constructor(opts: PpoOptions) {
    if (opts.policy.task !== 'causal_lm') throw new TunekitError('ERR_VALUE', `PPO: expected a causal_lm policy but received task '${opts.policy.task}'`);
    if (!(opts.policy instanceof PeftModel) && !opts.refModel) throw new TunekitError('ERR_VALUE', 'PPO without adapters needs a frozen refModel');
    this.o = {
      klCoef: 0.05, klTarget: null, klHorizon: 10000, gamma: 1, lam: 0.95, cliprange: 0.2, cliprangeValue: 0.2, vfCoef: 0.1, ppoEpochs: 4, numMiniBatches: 4, maxNewTokens: 16,
      temperature: 1, topK: 0, lr: 1e-4, weightDecay: 0, maxGradNorm: 1, whitenAdvantages: true, seed: 42,
      ...opts,
      eosTokenId: opts.eosTokenId === undefined ? opts.policy.config.eosTokenId : opts.eosTokenId,
    };
    this.klController = makeKlController(this.o);
    if (!(this.o.temperature > 0)) throw new TunekitError('ERR_VALUE', `PPO: expected temperature > 0 but received ${this.o.temperature}`);
    this.valueHead = new ValueHead(opts.policy.config.hiddenSize, { seed: this.o.seed });
    this.optimizer = new AdamW([...opts.policy.trainableParameters(), ...this.valueHead.namedParameters('value_head.')], { lr: this.o.lr, weightDecay: this.o.weightDecay });
    this.metrics = opts.outputDir ? new MetricsLog(join(opts.outputDir, 'metrics.jsonl')) : null;
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
      inputs: { inputIds: tensor(ids, [B, T], 'i32') as Tensor<'i32'>, attentionMask: tensor(mask, [B, T], 'i32') as Tensor<'i32'> },
      positions, targets,
    };
  }

  /** Log-probs [B, R] of the response tokens (masked positions filled with 1.0) and values [B, R]. */
  private evaluateGrid(model: CausalForward, g: Grid, B: number, R: number, mask: Float32Array, withValues: boolean): { logprobs: Tensor<'f32'>; values: Tensor<'f32'> | null } {
    const out = model.forward(g.inputs);
    const lp = F.reshape(gatherLogprobs(out.logits, g.positions, g.targets, this.o.temperature), [B, R]);
    const M = tensor(mask, [B, R]) as Tensor<'f32'>;
    const fill = tensor(Float32Array.from(mask, (m) => (1 - m) * INVALID_LOGPROB), [B, R]) as Tensor<'f32'>;
    const logprobs = F.add(F.mul(lp, M), fill);
    let values: Tensor<'f32'> | null = null;
    if (withValues) {
      const C = out.hidden.shape[out.hidden.ndim - 1]!;
      const h = F.gatherRows(F.reshape(out.hidden, [-1, C]), tensor(g.positions, [B * R], 'i32') as Tensor<'i32'>);
      values = F.mul(F.reshape(this.valueHead.forward(h), [B, R]), M);
    }
    return { logprobs, values };
  }

  /** Mean per-token entropy of the sampling distribution over the masked response positions. */
  private meanEntropy(model: CausalForward, g: Grid, mask: Float32Array): number {
    return noGrad(() => tidy(() => {
      const out = model.forward(g.inputs);
      const V = out.logits.shape[out.logits.ndim - 1]!;
      let rows = F.gatherRows(F.reshape(out.logits, [-1, V]), tensor(g.positions, [g.positions.length], 'i32') as Tensor<'i32'>);
      if (this.o.temperature !== 1) rows = F.scale(rows, 1 / this.o.temperature);
      const lsm = F.logSoftmax(rows);
      const ent = F.neg(F.sum(F.mul(F.exp(lsm), lsm), 1)).toArray();
      let s = 0, n = 0;
      ent.forEach((e, i) => { s += e * mask[i]!; n += mask[i]!; });
      return n ? s / n : 0;
    }));
  }

  /**
   * Samples responses to the prompts and computes everything the update needs (no gradients).
   * @example const ro = await ppo.rollout(prompts); ro.scores;
   */
  async rollout(queries: number[][]): Promise<Rollout> {
    if (queries.length < 2) throw new TunekitError('ERR_VALUE', `PPO: a rollout batch needs at least 2 prompts (advantages are whitened) but received ${queries.length}`);
    const policy = this.o.policy;
    policy.eval();
    const gen = await generate(policy as unknown as PretrainedModel, queries, {
      maxNewTokens: this.o.maxNewTokens, temperature: this.o.temperature, topK: this.o.topK,
      eosTokenId: this.o.eosTokenId, padTokenId: this.o.padTokenId, seed: deriveSeed(this.o.seed, 1000 + this.stepCount),
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
    const refLogprobs = noGrad(() => tidy(() => {
      const run = () => this.evaluateGrid(this.o.refModel ?? policy, g, B, R, mask, false).logprobs.toTypedArray() as Float32Array;
      return !this.o.refModel && policy instanceof PeftModel ? policy.withAdaptersDisabled(run) : run();
    }));
    const entropy = this.meanEntropy(policy, g, mask);
    const klCoef = this.klController.value;
    const { rewards, kl } = perTokenRewards(logprobs, refLogprobs, scores, lastIndex, B, R, klCoef);
    const { advantages: rawAdv, returns } = gae(rewards, values, B, R, this.o.gamma, this.o.lam);
    const advantages = this.o.whitenAdvantages ? maskedWhiten(rawAdv, mask) : rawAdv;
    for (let i = 0; i < advantages.length; i++) if (!mask[i]) advantages[i] = 0;
    for (const t of Object.values(g.inputs)) (t as Tensor | undefined)?.dispose?.();
    return { queries, responses, scores, B, R, mask, logprobs, refLogprobs, values, advantages, returns, kl, entropy, klCoef };
  }

  /** ppoEpochs epochs of shuffled minibatch updates on a rollout; returns the averaged losses. */
  async learn(ro: Rollout): Promise<Pick<PpoStats, 'pg_loss' | 'vf_loss' | 'clipfrac' | 'vf_clipfrac' | 'approxkl' | 'ratio'>> {
    const { B, R } = ro;
    const mbSize = Math.max(1, Math.floor(B / this.o.numMiniBatches));
    const params = this.optimizer.params;
    const acc = { pg_loss: 0, vf_loss: 0, clipfrac: 0, vf_clipfrac: 0, approxkl: 0, ratio: 0 };
    let n = 0;
    const policy = this.o.policy;
    policy.eval();
    for (let epoch = 0; epoch < this.o.ppoEpochs; epoch++) {
      const order = new Rng(deriveSeed(this.o.seed, this.stepCount * 131 + epoch)).shuffle(Array.from({ length: B }, (_, i) => i));
      for (let start = 0; start + mbSize <= B; start += mbSize) {
        const idx = order.slice(start, start + mbSize);
        const m = idx.length;
        const pick = <A extends Float32Array | Float64Array>(a: A): Float64Array => {
          const out = new Float64Array(m * R);
          idx.forEach((b, j) => { for (let t = 0; t < R; t++) out[j * R + t] = a[b * R + t]!; });
          return out;
        };
        const mask = Float32Array.from(pick(ro.mask));
        if (mask.reduce((a, b) => a + b, 0) === 0) continue;
        const stats = tidy(() => {
          const g = this.grid(idx.map((b) => ro.queries[b]!), idx.map((b) => ro.responses[b]!), R);
          const { logprobs, values } = this.evaluateGrid(policy, g, m, R, mask, true);
          const pg = ppoPolicyLoss(logprobs, pick(ro.logprobs), pick(ro.advantages), mask, this.o.cliprange);
          const vf = ppoValueLoss(values!, pick(ro.values), pick(ro.returns), mask, this.o.cliprangeValue);
          const loss = F.add(pg.loss, F.scale(vf.loss, this.o.vfCoef));
          const lv = loss.item();
          if (!Number.isFinite(lv)) throw new TunekitError('ERR_NAN', `PPO loss became ${lv} at step ${this.stepCount + 1}; try a lower learning rate`);
          backward(loss);
          return { pg_loss: pg.loss.item(), vf_loss: vf.loss.item(), clipfrac: pg.clipFrac, vf_clipfrac: vf.clipFrac, approxkl: pg.approxKl, ratio: pg.ratioMean };
        });
        clipGradNorm(params, this.o.maxGradNorm);
        this.optimizer.step(this.o.lr);
        this.optimizer.zeroGrad();
        for (const k of Object.keys(acc) as (keyof typeof acc)[]) acc[k] += stats[k];
        n++;
        await yieldToLoop();
      }
    }
    for (const k of Object.keys(acc) as (keyof typeof acc)[]) acc[k] /= Math.max(1, n);
    return acc;
  }

  /**
   * One PPO iteration on a batch of prompts: rollout, then the update. Logs and returns its stats.
   * @example const stats = await ppo.step(batchOfPromptIds); stats.score; stats.kl;
   */
  async step(queries: number[][]): Promise<PpoStats> {
    const t0 = performance.now();
    const ro = await this.rollout(queries);
    const learn = await this.learn(ro);
    this.stepCount++;
    let kl = 0;
    for (let b = 0; b < ro.B; b++) for (let t = 0; t < ro.R; t++) kl += ro.kl[b * ro.R + t]!;
    kl /= ro.B;
    const score = ro.scores.reduce((a, b) => a + b, 0) / ro.B;
    // as TRL: the controller sees the batch's mean KL once the batch has been learnt from
    this.klController.update(kl, ro.B);
    const stats: PpoStats = {
      step: this.stepCount, score, kl, rlhf_reward: score - ro.klCoef * kl, kl_coef: ro.klCoef, entropy: ro.entropy, ...learn,
      response_length: ro.responses.reduce((a, r) => a + r.length, 0) / ro.B, seconds: (performance.now() - t0) / 1000,
    };
    this.metrics?.append({ ...stats, epoch: 0, split: 'train' });
    this.o.log?.(`ppo step ${stats.step}: score ${score.toFixed(4)}, kl ${kl.toFixed(4)}, kl_coef ${ro.klCoef.toPrecision(3)}, entropy ${stats.entropy.toFixed(3)}, clipfrac ${stats.clipfrac.toFixed(3)}, pg ${stats.pg_loss.toFixed(4)}, vf ${stats.vf_loss.toFixed(4)} (${stats.seconds.toFixed(1)} s)`);
    return stats;
  }

  /** Closes the metrics log and frees the optimizer state. */
  close(): void {
    this.metrics?.close();
    this.optimizer.dispose();
  }
}

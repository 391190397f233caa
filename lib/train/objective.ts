/**
 * What the one training loop (trainer.ts) asks of an objective. The Trainer owns everything an
 * objective has in common: the data order, accumulation, clipping, AdamW, the LR schedule, the
 * eval cadence, early stopping, the NaN stop, checkpoints (atomic, bit-exact resume, SIGINT
 * save), progress, metrics.jsonl and plots. An objective says only what one step computes:
 *
 *   supervised (objectives/supervised.ts)  one update of `gradAccum` micro-batches
 *   reward model, DPO (lib/rlhf)           the same, over preference pairs
 *   PPO (lib/rlhf/ppo.ts)                  a rollout phase (no gradients) in plan(), then an
 *                                          optimisation phase of ppo_epochs x minibatches updates
 *
 * Loss terms compose: the Trainer adds the PEFT method's own term (AdaLoRA's orthogonal
 * regulariser, PeftModel.trainingHooks().extraLoss) and the user's `extraLoss` callback to the
 * objective's loss of every micro-batch; none replaces another.
 */
import type { Tensor } from '../tensor/tensor.js';
import type { Module } from '../nn/module.js';
import type { SeriesPanel } from './plot.js';
import type { MetricsRecord } from './metrics_log.js';

/** Figures of a micro-batch, a step or an evaluation: name -> number. */
export type Figures = Record<string, number>;

/** The loss of one micro-batch and its figures (averaged over the step's micro-batches in the train record). */
export interface MicroLoss {
  /** differentiable scalar: the objective's loss, the mean over the micro-batch */
  loss: Tensor<'f32'>;
  figures?: Figures;
}

/** One micro-batch: builds its loss under the Trainer's memory scope (called once). */
export type MicroBatch = () => MicroLoss;

/** What one training step does. */
export interface StepPlan {
  /**
   * The optimizer updates of the step, in order. Each is a list of micro-batches whose
   * gradients are summed, every loss scaled by 1 / (list length), then clipped and applied
   * once. Supervised, reward, DPO: one update of `gradAccum` micro-batches; PPO: ppo_epochs x
   * minibatches updates.
   */
  updates: MicroBatch[][];
  /**
   * Optional, parallel to `updates`: the number of terms each micro-batch's loss is the mean of
   * (supervised: labelled targets). Data-parallel training weighs the ranks' shards by them, so
   * that a step equals one process on the combined batch (lib/train/distributed/data_parallel.ts);
   * without them every shard weighs the same, as in PyTorch DDP.
   */
  counts?: number[][];
  /** real (non-padding) tokens the step processed, for tokens/s */
  tokens: number;
  /** figures of the step that belong to no micro-batch (PPO's rollout: score, kl, entropy ...) */
  figures?: Figures;
}

/** Early stopping and the best checkpoint watch one eval figure. */
export interface WatchedMetric {
  /** a key of the objective's eval result: 'loss', 'accuracy', 'rewards/margins', 'score' ... */
  key: string;
  mode: 'min' | 'max';
}

/** What an objective's evaluation is told. */
export interface EvalContext {
  /** examples per evaluation batch */
  batchSize: number;
  /** the examples are the run's eval split (the multiple-choice items of a causal LM belong to it) */
  evalSplit: boolean;
}

/** What plan() is told. */
export interface StepContext {
  /** steps done before this one (0 for the first): PPO derives its rollout seeds from it */
  step: number;
}

/**
 * A training objective over examples of type E, whose evaluation returns R (figures, or a
 * promise of them when it generates text, as PPO's does).
 * @example
 * const trainer = new Trainer({ model, objective: new SupervisedObjective({ task: 'seq_cls', padTokenId: 0 }), train, eval });
 */
export interface Objective<E, R = Figures> {
  /** 'causal_lm', 'seq_cls', 'token_cls', 'reward', 'dpo', 'ppo': stored in checkpoints, a resume with another is refused */
  readonly name: string;
  /**
   * Train with dropout on (supervised). The RLHF objectives train without it, as TRL's trainers
   * (disable_dropout): DPO's reference and policy passes then see the same network, and PPO's
   * old and new log-probs agree before the first update. Objectives with dropout also have the
   * Trainer seed the global RNG (the dropout masks) from the run's seed.
   */
  readonly dropout: boolean;
  /** the last loader batch of an epoch is dropped when short (PPO: every rollout has batch_size prompts) */
  readonly dropLast?: boolean;
  /** evaluate once before the first step (reward, DPO, PPO: the "before" figures) */
  readonly evalOnStart?: boolean;
  /**
   * Modules trained beside the model (PPO's value head): their parameters join the optimizer
   * (named `<key>.<param>`) and each is saved in checkpoints as `<key>.safetensors`.
   */
  readonly extraModules?: Readonly<Record<string, Module>>;
  /** optimizer updates in one step (1 unless the objective plans several, as PPO): method hooks see the update count */
  updatesPerStep(shape: { batchSize: number; gradAccum: number }): number;
  /**
   * The work of one step from its `gradAccum` loader batches. PPO samples and scores its
   * rollouts here (no gradients) and returns the optimisation phase's updates.
   */
  plan(batches: E[][], ctx: StepContext): StepPlan | Promise<StepPlan>;
  /** after the step's updates (PPO: the adaptive KL controller learns the step's KL); figures for the train record */
  afterStep?(plan: StepPlan): Figures | void;
  /** figures on held-out examples, without gradients (the Trainer puts the model in eval mode meanwhile) */
  evaluate(examples: E[], ctx: EvalContext): R;
  /** the eval figure early stopping watches unless the settings name one */
  defaultWatch(result: Awaited<R>): WatchedMetric;
  /** a line for the log after an evaluation */
  describeEval?(result: Awaited<R>): string;
  /** JSON state beyond weights, optimizer, data position and RNG, saved in checkpoints */
  state?(): Record<string, unknown>;
  restoreState?(state: Record<string, unknown>, file: string): void;
  /** title of loss.svg (default 'tunekit training') */
  readonly chartTitle?: string;
  /** eval figure on loss.svg's right axis (default: accuracy when recorded) */
  readonly chartMetric?: string;
  /** charts beyond loss.svg, written from metrics.jsonl at the end of a run (PPO: ppo.svg) */
  charts?(records: readonly MetricsRecord[]): { file: string; title: string; panels: SeriesPanel[] }[];
}

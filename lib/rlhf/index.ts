/**
 * RLHF: reward models, DPO and PPO on top of the models and PEFT layers.
 * @example
 * import { RewardTrainer, DpoTrainer, PpoTrainer } from 'tunekit/rlhf';
 */
export * from './losses.js';
export * from '../models/logprobs.js';
export { RewardTrainer, scoreSequences, pairRewards, padRight, type RewardTrainerOptions, type ScalarModel } from './reward.js';
export { DpoTrainer, pairLogprobs, pairSequences, type DpoTrainerOptions } from './dpo.js';
export { PpoTrainer, ValueHead, rewardModelScorer, INVALID_LOGPROB, type PpoOptions, type PpoStats, type Rollout, type RewardFn } from './ppo.js';
export { AdaptiveKlController, FixedKlController, makeKlController, KL_ERROR_CLIP, type KlController } from './kl_control.js';
export { splitSentences, polarSentences, contrastPairs, pairByScore, type ScoredText, type PolarOptions } from './preference_data.js';
export { runRlhf, isRlhfMethod, type RlhfRunResult } from './run.js';
export { writePpoPlot, renderPanels, type PpoPlotOptions, type SeriesPanel } from './plot.js';
export { DEFAULT_PAIR_SETTINGS, type PairTrainSettings, type PairFitResult } from './pair_loop.js';

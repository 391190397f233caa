/**
 * RLHF: reward models, DPO and PPO as objectives of the one Trainer (lib/train/trainer.ts), on
 * top of the models and PEFT layers; importing this module registers the reward, dpo and ppo
 * jobs of `tunekit train` (jobs.ts).
 * @example
 * import { RewardTrainer, DpoTrainer, PpoTrainer } from 'tunekit/rlhf';
 */
export * from './losses.js';
export * from '../models/logprobs.js';
export {
  RewardTrainer, RewardObjective, scoreSequences, pairRewards, pairTokens, padRight, RLHF_DEFAULT_SETTINGS,
  type RewardTrainerOptions, type ScalarModel, type PairFigures,
} from './reward.js';
export { DpoTrainer, DpoObjective, pairLogprobs, pairSequences, type DpoTrainerOptions, type DpoObjectiveOptions } from './dpo.js';
export {
  PpoTrainer, PpoObjective, ValueHead, rewardModelScorer, writePpoPlot, ppoPanels, ppoStatsOf, INVALID_LOGPROB, PPO_DEFAULT_SETTINGS,
  type PpoTrainerOptions, type PpoObjectiveOptions, type PpoStats, type PpoEval, type PpoPlotOptions, type Rollout, type RewardFn,
} from './ppo.js';
export { AdaptiveKlController, FixedKlController, makeKlController, KL_ERROR_CLIP, type KlController } from './kl_control.js';
export { splitSentences, polarSentences, contrastPairs, pairByScore, type ScoredText, type PolarOptions } from './preference_data.js';
export { isRlhfMethod, rewardJob, dpoJob, ppoJob } from './jobs.js';
export { renderPanels, writePanelsPlot, type SeriesPanel } from '../train/plot.js';

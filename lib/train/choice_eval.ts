/**
 * Multiple-choice accuracy of a causal LM: for each item, the summed log-probability of every
 * answer's tokens after the prompt; the prediction is the most likely answer (lib/data/choices.ts
 * builds the items). Works for any model with a causal-LM forward, prompt-method wrappers
 * included (their logits cover the real tokens only).
 */
import { tidy } from '../tensor/scope.js';
import { noGrad } from '../autograd/tape.js';
import { collateCompletions, completionLogprobs, type CausalForward, type PromptCompletion } from '../models/logprobs.js';
import { detectChoices, buildChoiceSet, type ChoiceSet } from '../data/choices.js';
import type { NormalizedRecord, TokenizerLike } from '../data/types.js';
import type { TrainConfig } from './config.js';
import { ClassificationMetrics } from './losses.js';

export interface ChoiceResult {
  accuracy: number;
  /** macro F1 over the answers */
  f1: number;
  count: number;
  /** predicted answer index per item */
  predictions: number[];
}

/**
 * Scores every item of `set` (no gradients); `batchSize` items per forward (each item is one
 * sequence per answer).
 *
 * @example
 * const { accuracy } = scoreChoices(model, buildChoiceSet(evalRecords, tok, [' ham', ' spam']), { padTokenId: 0 });
 */
export function scoreChoices(model: CausalForward & { training: boolean; train(on?: boolean): unknown }, set: ChoiceSet, opts: { padTokenId: number; batchSize?: number }): ChoiceResult {
  const A = set.answers.length;
  const bs = Math.max(1, opts.batchSize ?? 16);
  const metrics = new ClassificationMetrics(A);
  const predictions: number[] = [];
  const wasTraining = model.training;
  model.train(false);
  noGrad(() => {
    for (let i = 0; i < set.items.length; i += bs) {
      const items = set.items.slice(i, i + bs);
      // one sequence per (item, answer): [items.length * A]
      const seqs: PromptCompletion[] = items.flatMap((it) => set.answerIds.map((ids) => ({ promptIds: it.promptIds, completionIds: ids })));
      const scores = tidy(() => completionLogprobs(model, collateCompletions(seqs, opts.padTokenId)).sums.toArray());
      items.forEach((it, j) => {
        let best = 0;
        for (let a = 1; a < A; a++) if (scores[j * A + a]! > scores[j * A + best]!) best = a;
        predictions.push(best);
        metrics.add(best, it.gold);
      });
    }
  });
  model.train(wasTraining);
  return { accuracy: metrics.accuracy, f1: metrics.macroF1, count: metrics.total, predictions };
}

/** The eval split as multiple choice when its completions are a few fixed answers (dataset.choices). */
export function choiceSetFor(config: TrainConfig, train: NormalizedRecord[], evalRecords: NormalizedRecord[], tok: TokenizerLike, log?: (s: string) => void): ChoiceSet | undefined {
  const answers = detectChoices(train, evalRecords, config.dataset.choices);
  if (!answers) return undefined;
  log?.(`eval: multiple choice over ${answers.length} answers (${answers.map((a) => JSON.stringify(a)).join(', ')})`);
  return buildChoiceSet(evalRecords, tok, answers, { maxLength: config.dataset.max_length });
}

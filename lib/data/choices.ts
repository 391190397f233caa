/**
 * Multiple-choice items from prompt/completion records (a "verbalizer"): when every completion
 * is one of a few fixed answers (" spam" / " ham", " positive" / " negative", " A" ... " D"), a
 * causal LM classifies by which answer it finds most likely after the prompt. This is how an
 * untuned base is scored zero-shot and how prompt-tuned models are compared with it.
 */
import { TunekitError } from '../errors.js';
import { encodePlain, specialTokenLayout } from './examples.js';
import type { NormalizedRecord, TokenizerLike } from './types.js';

/** `auto`: the distinct completions when there are 2..MAX_AUTO_ANSWERS; `off`; or the answers. */
export type ChoiceSpec = 'auto' | 'off' | readonly string[];

export const MAX_AUTO_ANSWERS = 16;

/** Tokenised multiple-choice items: one prompt and the index of its gold answer each. */
export interface ChoiceSet {
  answers: string[];
  /** answer index -> its token ids (no special tokens) */
  answerIds: number[][];
  items: { promptIds: number[]; gold: number }[];
}

/**
 * The answer set of a prompt/completion dataset, or null when it has none: `auto` takes the
 * training split's distinct completions if there are 2..16 of them and the eval split uses no
 * other; an explicit list must cover every eval completion.
 *
 * @example
 * detectChoices(train, evalRecords, 'auto'); // [' ham', ' spam']
 */
export function detectChoices(train: readonly NormalizedRecord[], evalRecords: readonly NormalizedRecord[], spec: ChoiceSpec): string[] | null {
  if (spec === 'off') return null;
  const completions = (rs: readonly NormalizedRecord[]) => rs.flatMap((r) => (r.kind === 'prompt_completion' ? [r.completion] : []));
  const evalCompletions = completions(evalRecords);
  if (spec === 'auto') {
    if (evalCompletions.length === 0 || evalCompletions.length !== evalRecords.length) return null;
    const answers = [...new Set(completions(train))].sort();
    if (answers.length < 2 || answers.length > MAX_AUTO_ANSWERS) return null;
    const known = new Set(answers);
    return evalCompletions.every((c) => known.has(c)) ? answers : null;
  }
  const answers = [...spec];
  if (new Set(answers).size !== answers.length) throw new TunekitError('ERR_CONFIG', `dataset.choices: expected distinct answers but received ${JSON.stringify(answers)}`);
  if (evalCompletions.length !== evalRecords.length) throw new TunekitError('ERR_CONFIG', `dataset.choices needs prompt/completion records, but the eval split has ${evalRecords.length - evalCompletions.length} record(s) of another kind`);
  const known = new Set(answers);
  const unknown = evalCompletions.find((c) => !known.has(c));
  if (unknown !== undefined) throw new TunekitError('ERR_CONFIG', `dataset.choices ${JSON.stringify(answers)} does not contain the eval completion ${JSON.stringify(unknown)}`);
  return answers;
}

/**
 * Tokenises the items: the prompt as the training examples see it (the tokenizer's leading
 * special tokens, then the prompt), cut from the left when prompt + longest answer would pass
 * `maxLength`, so that the end of the prompt (the question) stays next to the answer.
 *
 * @example
 * const set = buildChoiceSet(evalRecords, tok, [' ham', ' spam'], { maxLength: 256 });
 */
export function buildChoiceSet(records: readonly NormalizedRecord[], tok: TokenizerLike, answers: readonly string[], opts: { maxLength?: number } = {}): ChoiceSet {
  const answerIds = answers.map((a) => encodePlain(tok, a));
  answerIds.forEach((ids, i) => {
    if (ids.length === 0) throw new TunekitError('ERR_VALUE', `choice answer ${JSON.stringify(answers[i])} encodes to no tokens`);
  });
  const longest = Math.max(...answerIds.map((a) => a.length));
  const prefix = specialTokenLayout(tok).prefix;
  const budget = opts.maxLength === undefined ? Infinity : opts.maxLength - longest - prefix.length;
  if (budget < 1) throw new TunekitError('ERR_VALUE', `maxLength ${opts.maxLength} leaves no room for a prompt before a ${longest}-token answer`);
  const index = new Map(answers.map((a, i) => [a, i] as const));
  const items = records.map((r, i) => {
    if (r.kind !== 'prompt_completion') throw new TunekitError('ERR_FORMAT', `record ${i}: expected a prompt/completion record for multiple-choice scoring but received a ${r.kind} record`);
    const gold = index.get(r.completion);
    if (gold === undefined) throw new TunekitError('ERR_VALUE', `record ${i}: completion ${JSON.stringify(r.completion)} is not one of the answers ${JSON.stringify(answers)}`);
    const body = encodePlain(tok, r.prompt, Number.isFinite(budget) ? { maxTokens: budget, keepEnd: true } : undefined);
    return { promptIds: [...prefix, ...body], gold };
  });
  return { answers: [...answers], answerIds, items };
}

/**
 * Building preference data from real text and a scoring rule (for example the AFINN lexicon):
 *  - sentences of a corpus, split and sorted into clearly positive and clearly negative ones
 *    (neutral ones dropped), then paired (positive preferred) to train a reward model;
 *  - sampled continuations of the same prompt, paired by their scores (the higher preferred,
 *    ties skipped) for DPO.
 * Plain data: strings and token ids in, pairs out, no model.
 *
 * @example
 * const { positive, negative } = polarSentences(texts, (s) => lexiconScore(s).score, { threshold: 2 });
 * const pairs = contrastPairs(positive, negative, 1);   // [{ chosen, rejected }, ...]
 * const ex = pairByScore([0, 41], [[7, 8], [9, 10]], [3, -1]); // chosen [7, 8], rejected [9, 10]
 */
import { TunekitError, describe } from '../errors.js';
import { Rng } from '../data/rng.js';
import type { PreferenceExample } from '../data/types.js';
import { lexiconWords } from '../data/afinn.js';

/**
 * Splits prose into sentences: after . ! or ? (and any closing quote or bracket) followed by
 * white space and a capital letter, an opening quote or a digit. Runs of white space become one
 * space. Abbreviations such as "Mr. Smith" are split too; at corpus scale that is noise, not bias.
 * @example splitSentences('It rained. "Stay," he said! Then: sun.') // ['It rained.', '"Stay," he said!', 'Then: sun.']
 */
export function splitSentences(text: string): string[] {
  if (typeof text !== 'string') throw new TunekitError('ERR_VALUE', `splitSentences: expected a string but received ${describe(text)}`);
  const flat = text.replace(/\s+/g, ' ').trim();
  if (!flat) return [];
  return flat.split(/(?<=[.!?]['"\u2019\u201d)\]]*)\s+(?=['"\u2018\u201c(\[]?[\p{Lu}\p{N}])/u).map((s) => s.trim()).filter(Boolean);
}

/** A sentence and its score. */
export interface ScoredText {
  text: string;
  score: number;
}

export interface PolarOptions {
  /** keep sentences with at least this many words (8) */
  minWords?: number;
  /** and at most this many (24) */
  maxWords?: number;
  /** positive: score >= threshold; negative: score <= -threshold; the rest is dropped (2) */
  threshold?: number;
}

/**
 * The clearly positive and clearly negative sentences of some texts, by a scoring rule.
 * @example polarSentences(['Peace is good. War is bad and cruel.'], (s) => lexiconScore(s).score, { minWords: 3 })
 */
export function polarSentences(texts: readonly string[], score: (sentence: string) => number, opts: PolarOptions = {}): { positive: ScoredText[]; negative: ScoredText[] } {
  const minWords = opts.minWords ?? 8, maxWords = opts.maxWords ?? 24, threshold = opts.threshold ?? 2;
  if (!(threshold > 0)) throw new TunekitError('ERR_VALUE', `polarSentences: expected threshold > 0 (0 would keep neutral sentences) but received ${describe(threshold)}`);
  if (!(Number.isInteger(minWords) && Number.isInteger(maxWords) && minWords >= 1 && maxWords >= minWords)) {
    throw new TunekitError('ERR_VALUE', `polarSentences: expected integers 1 <= minWords <= maxWords but received ${minWords}, ${maxWords}`);
  }
  const positive: ScoredText[] = [], negative: ScoredText[] = [];
  for (const text of texts) {
    for (const s of splitSentences(text)) {
      const n = lexiconWords(s).length;
      if (n < minWords || n > maxWords) continue;
      const v = score(s);
      if (!Number.isFinite(v)) throw new TunekitError('ERR_VALUE', `polarSentences: the scoring rule returned ${v} for ${describe(s)}`);
      if (v >= threshold) positive.push({ text: s, score: v });
      else if (v <= -threshold) negative.push({ text: s, score: v });
    }
  }
  return { positive, negative };
}

/**
 * Pairs preferred with dispreferred items, each used once: both lists shuffled with the seed,
 * then zipped (as many pairs as the shorter list, or `limit`).
 * @example contrastPairs(['good a', 'good b'], ['bad a', 'bad b', 'bad c'], 7).length // 2
 */
export function contrastPairs<T>(preferred: readonly T[], dispreferred: readonly T[], seed: number, limit = Infinity): { chosen: T; rejected: T }[] {
  const a = new Rng(seed).shuffle([...preferred]), b = new Rng(seed + 1).shuffle([...dispreferred]);
  const n = Math.min(a.length, b.length, limit);
  return Array.from({ length: n }, (_, i) => ({ chosen: a[i]!, rejected: b[i]! }));
}

/**
 * A preference pair from several sampled completions of one prompt: the highest-scoring one is
 * chosen, the lowest rejected. Returns null when they tie (no preference to learn), or when the
 * gap is below `minGap`. With two samples this is "the better of the two".
 * @example pairByScore([0, 5], [[1, 2], [3, 4]], [-2, 1]) // { promptIds: [0, 5], chosenIds: [3, 4], rejectedIds: [1, 2] }
 */
export function pairByScore(promptIds: readonly number[], completions: readonly (readonly number[])[], scores: readonly number[], minGap = 0): PreferenceExample | null {
  if (completions.length !== scores.length) throw new TunekitError('ERR_VALUE', `pairByScore: expected one score per completion but received ${scores.length} scores for ${completions.length} completions`);
  if (completions.length < 2) throw new TunekitError('ERR_VALUE', `pairByScore: expected at least 2 completions of the prompt but received ${completions.length}`);
  let hi = 0, lo = 0;
  scores.forEach((s, i) => {
    if (!Number.isFinite(s)) throw new TunekitError('ERR_VALUE', `pairByScore: expected finite scores but received ${describe(s)} at ${i}`);
    if (s > scores[hi]!) hi = i;
    if (s < scores[lo]!) lo = i;
  });
  const gap = scores[hi]! - scores[lo]!;
  if (gap === 0 || gap < minGap) return null;
  return { promptIds: [...promptIds], chosenIds: [...completions[hi]!], rejectedIds: [...completions[lo]!] };
}

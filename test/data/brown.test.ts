import { describe, expect, test } from 'vitest';
import { brownCorpus, brownLineToText } from '../../lib/data/brown.js';

describe('Brown Corpus (pretraining text)', () => {
  test('a tagged line reads as written: tags dropped, quotes and punctuation rejoined', () => {
    expect(brownLineToText("He/pps said/vbd ``/`` no/at ''/'' ./.")).toBe('He said "no".');
    expect(brownLineToText("It/pps wasn't/bedz* ,/, (/( he/pps said/vbd )/) good/jj ;/. the/at man's/nn$ hat/nn ?/.")).toBe(
      "It wasn't, (he said) good; the man's hat?",
    );
    expect(brownLineToText("``/`` Only/rb a/at handful/nn ''/'' ,/, the/at jury/nn said/vbd ,/, ``/`` was/bedz received/vbn ./.")).toBe(
      '"Only a handful", the jury said, "was received.',
    );
  });

  test('the 500 samples of the npm package, 15 genres, as plain text', () => {
    const all = brownCorpus();
    expect(all).toHaveLength(500);
    expect(new Set(all.map((r) => r.genre)).size).toBe(15);
    expect(all[0]!.id).toBe('ca01');
    expect(all[0]!.text.startsWith('The Fulton County Grand Jury said Friday an investigation of Atlanta\'s recent primary election produced "no evidence"')).toBe(true);
    const words = all.reduce((n, r) => n + r.text.split(/\s+/).length, 0);
    expect(words).toBeGreaterThan(900_000); // about a million words
    expect(all.filter((r) => / \w+\/(at|nn|vbd|in) /.test(r.text)).map((r) => r.id)).toEqual([]); // no tags left
  });
});

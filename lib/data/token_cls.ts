/**
 * Token classification data (NER-style): records holding pre-split words and one tag per word,
 * `{"tokens": ["John", "lives", "in", "Paris"], "tags": ["B-PER", "O", "O", "B-LOC"]}`.
 * Each word is tokenised on its own; its tag goes on its first sub-token and the others get -100
 * (transformers' usual alignment), so the loss and accuracy count words.
 */
import { TunekitError, describe } from '../errors.js';
import { specialTokenLayout } from './examples.js';
import { splitTrainEval } from './split.js';
import { denseIds, MAX_NUM_LABELS } from './labels.js';
import { loadRecordsSync, type LoadOptions } from './load.js';
import { IGNORE_INDEX, type CausalLmExample, type RawRecord, type TokenizerLike } from './types.js';

export interface TaggedRecord {
  words: string[];
  tags: (string | number)[];
  where: string;
}

/**
 * Reads tagged records from a JSONL/JSON/CSV file (fields `tokens` and `tags` by default).
 * @example const recs = loadTaggedRecords('ner.jsonl', { wordsField: 'tokens', tagsField: 'ner_tags' });
 */
export function loadTaggedRecords(path: string, opts: LoadOptions & { wordsField?: string; tagsField?: string; warn?: (message: string) => void } = {}): TaggedRecord[] {
  const wf = opts.wordsField ?? 'tokens', tf = opts.tagsField ?? 'tags';
  const loaded = loadRecordsSync(path, opts);
  for (const w of loaded.warnings) opts.warn?.(w);
  return loaded.records.map((r: RawRecord, i) => {
    const src = loaded.sources[i];
    const where = `${path}${src?.line !== undefined ? `:${src.line}` : `[${i}]`}`;
    const words = r[wf], tags = r[tf];
    if (!Array.isArray(words) || !words.every((w) => typeof w === 'string')) {
      throw new TunekitError('ERR_FORMAT', `${where}: Expected '${wf}' to be an array of strings but received ${describe(words)}`);
    }
    if (!Array.isArray(tags) || tags.length !== words.length || !tags.every((t) => typeof t === 'string' || Number.isInteger(t))) {
      throw new TunekitError('ERR_FORMAT', `${where}: Expected '${tf}' to be ${words.length} tags (strings or integers), one per word, but received ${describe(tags)}`);
    }
    return { words: words as string[], tags: tags as (string | number)[], where };
  });
}

/**
 * Tag names of the training records, by id: integer tags are ids 0..max when they are dense
 * (as labels.ts's {@link denseIds}), other tags, sparse integers included, are names in sorted
 * order (integers numerically). More than {@link MAX_NUM_LABELS} tags is ERR_LIMIT, before any
 * per-tag array is allocated (a tag of 2e9 taken as an id would be a 2e9-entry list).
 *
 * @example buildTagMap([{ words: ['a', 'b'], tags: ['O', 'B-PER'], where: 'x:1' }]); // ['B-PER', 'O']
 */
export function buildTagMap(records: TaggedRecord[]): string[] {
  const all = new Set<string>();
  for (const r of records) for (const t of r.tags) all.add(String(t));
  if (all.size > MAX_NUM_LABELS) {
    throw new TunekitError('ERR_LIMIT', `Expected at most ${MAX_NUM_LABELS} distinct tags (MAX_NUM_LABELS) but the training split has ${all.size}; is the tags field the right one?`);
  }
  const names = [...all];
  if (names.length > 0 && names.every((n) => /^\d+$/.test(n) && Number.isSafeInteger(Number(n)))) {
    let max = 0;
    for (const n of names) max = Math.max(max, Number(n));
    if (denseIds(max, names.length)) return Array.from({ length: max + 1 }, (_, i) => String(i));
    return names.sort((a, b) => Number(a) - Number(b) || (a < b ? -1 : a > b ? 1 : 0));
  }
  return names.sort();
}

/**
 * Token ids and per-token labels (tag id on each word's first sub-token, -100 elsewhere).
 * @example const ex = buildTokenClassificationExamples(recs, tok, buildTagMap(recs), { maxLength: 128 });
 */
export function buildTokenClassificationExamples(records: TaggedRecord[], tok: TokenizerLike, tagNames: string[], opts: { maxLength?: number } = {}): CausalLmExample[] {
  const index = new Map(tagNames.map((n, i) => [n, i]));
  const layout = specialTokenLayout(tok);
  const budget = (opts.maxLength ?? Infinity) - layout.prefix.length - layout.suffix.length;
  return records.map((r) => {
    const ids: number[] = [], labels: number[] = [];
    for (let w = 0; w < r.words.length; w++) {
      const id = index.get(String(r.tags[w]));
      if (id === undefined) throw new TunekitError('ERR_VALUE', `${r.where}: tag ${describe(r.tags[w])} is not among the training tags (${tagNames.slice(0, 10).join(', ')})`);
      // byte-level BPE marks word starts with a leading space; WordPiece ignores it
      // one id more than fits is enough to know the word does not fit (a huge word is not tokenized whole)
      const room = budget - ids.length;
      const sub = tok.encode(w === 0 ? r.words[w]! : ` ${r.words[w]}`, { addSpecialTokens: false, ...(Number.isFinite(room) ? { maxLength: room + 1 } : {}) }).ids;
      if (ids.length + sub.length > budget) break;
      sub.forEach((t, k) => {
        ids.push(t);
        labels.push(k === 0 ? id : IGNORE_INDEX);
      });
    }
    return {
      inputIds: [...layout.prefix, ...ids, ...layout.suffix],
      labels: [...layout.prefix.map(() => IGNORE_INDEX), ...labels, ...layout.suffix.map(() => IGNORE_INDEX)],
    };
  });
}

/** Train/eval split of tagged records (seeded), as the config's dataset.eval asks. */
export function splitTagged(records: TaggedRecord[], ev: { fraction?: number; size?: number; seed?: number }): { train: TaggedRecord[]; eval: TaggedRecord[] } {
  const s = splitTrainEval(records, ev.size !== undefined ? { evalSize: ev.size, seed: ev.seed ?? 42 } : { evalFraction: ev.fraction ?? 0.1, seed: ev.seed ?? 42 });
  return { train: s.train, eval: s.eval };
}

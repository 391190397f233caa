/**
 * Hostile datasets, tokenizer folders and chat templates, each run through the pipeline a
 * training run uses (load -> normalise -> labels -> examples -> batch, with a real tokenizer),
 * with the error code it must end in (or 'ok' and a check of the result) and a bound on the time
 * it may take. Bounds are generous (the test machine is shared); what they catch is the aborts
 * and hangs of issue 18: a label of 2e9 killed V8, a 50 MB record took 141 s and aborted the heap,
 * a range(2e8) template killed V8, nested range loops hung. The 50 MB record's memory is
 * measured in a child process with a small heap at the end.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { TunekitError } from '../../lib/errors.js';
import { loadDataset, type DatasetSpec, type DatasetSplits } from '../../lib/data/dataset.js';
import { buildLabelMap, labelMapToConfig, MAX_NUM_LABELS, type LabelMap } from '../../lib/data/labels.js';
import { buildCausalLmSplit, buildClassificationExamples, buildPreferenceExample } from '../../lib/data/examples.js';
import { collate } from '../../lib/data/collate.js';
import { loadTaggedRecords, buildTagMap, buildTokenClassificationExamples } from '../../lib/data/token_cls.js';
import { loadRecordsSync, parseRecords } from '../../lib/data/load.js';
import { normalizeRecords } from '../../lib/data/formats.js';
import { detectChoices, buildChoiceSet } from '../../lib/data/choices.js';
import { Tokenizer } from '../../lib/tokenizer/index.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.join(HERE, '..', '..');
const TOKENIZERS = path.join(HERE, '..', 'fixtures', 'tokenizers');
let dir: string;
beforeAll(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tunekit-hostile-')); });
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const gpt2 = Tokenizer.fromFolderSync(path.join(TOKENIZERS, 'gpt2-bpe'));
const jsonl = (rows: unknown[]) => rows.map((r) => JSON.stringify(r)).join('\n') + '\n';
const PARAGRAPH = fs.readFileSync(path.join(TOKENIZERS, 'corpus.txt'), 'utf8').slice(0, 4000).replace(/\s+$/, '');
/** About `mb` MB of real text, one record's worth. */
const bigText = (mb: number) => (PARAGRAPH + ' ').repeat(Math.ceil((mb * 1e6) / (PARAGRAPH.length + 1))).trimEnd();

type Task = 'seq_cls' | 'causal_lm' | 'token_cls' | 'preference';
interface Result { splits?: DatasetSplits; labels?: LabelMap | string[]; examples: Array<{ inputIds: number[] }> }
interface DatasetCase {
  name: string;
  /** File name (the extension picks the format) and its bytes, or a special file. */
  file: string;
  content: string | Buffer | (() => string | Buffer) | 'fifo' | 'directory' | 'missing' | { sparseBytes: number };
  task: Task;
  spec?: Partial<DatasetSpec>;
  maxLength?: number;
  truncation?: 'keep_start' | 'keep_end';
  template?: string;
  expect: string;
  check?: (r: Result) => void;
  ms: number;
}

function writeCase(c: DatasetCase): string {
  const p = path.join(dir, `${c.name.replace(/[^a-z0-9]+/gi, '_').slice(0, 60)}_${c.file}`);
  if (c.content === 'fifo') execFileSync('mkfifo', [p]);
  else if (c.content === 'directory') fs.mkdirSync(p);
  else if (c.content === 'missing') { /* nothing */ }
  else if (typeof c.content === 'object' && 'sparseBytes' in c.content) {
    fs.writeFileSync(p, '');
    fs.truncateSync(p, c.content.sparseBytes); // no disk used: the size check must come before reading
  } else fs.writeFileSync(p, typeof c.content === 'function' ? c.content() : c.content);
  return p;
}

async function runCase(c: DatasetCase): Promise<Result> {
  const file = writeCase(c);
  const maxLength = c.maxLength ?? 64;
  const tok = gpt2;
  if (c.task === 'token_cls') {
    const recs = loadTaggedRecords(file, c.spec);
    const tags = buildTagMap(recs);
    return { labels: tags, examples: buildTokenClassificationExamples(recs, tok, tags, { maxLength }) };
  }
  // the same file as eval split: single-record datasets stay usable and eval goes through every step too
  const splits = await loadDataset({ path: file, eval: { path: file }, ...c.spec });
  const examples: Array<{ inputIds: number[] }> = [];
  let labels: LabelMap | undefined;
  if (c.task === 'seq_cls') {
    labels = buildLabelMap(splits.train);
    for (const split of [splits.train, splits.eval]) {
      const ex = buildClassificationExamples(split, tok, labels, { maxLength });
      collate(ex.slice(0, 8), { padTokenId: 0 });
      examples.push(...ex);
    }
  } else if (c.task === 'causal_lm') {
    const template = c.template ?? gpt2.chatTemplate!;
    const renderChat = (m: { role: string; content: string }[], o?: { addGenerationPrompt?: boolean }) => gpt2.applyChatTemplate(m, { chatTemplate: template, addGenerationPrompt: o?.addGenerationPrompt ?? false });
    for (const split of [splits.train, splits.eval]) {
      const ex = buildCausalLmSplit(split, tok, { maxLength, renderChat, truncation: c.truncation });
      if (ex.length) collate(ex.slice(0, 8), { padTokenId: 0 });
      examples.push(...ex);
    }
  } else {
    splits.train.forEach((r, i) => examples.push({ inputIds: buildPreferenceExample(r, tok, { maxLength }, i).promptIds }));
  }
  return { splits, labels, examples };
}

const ok = 'ok';
const DATASETS: DatasetCase[] = [
  // labels: integers are class ids only while dense; never an allocation per id
  { name: 'integer label 2000000000 (V8 abort before)', file: 'a.jsonl', content: jsonl([{ text: 'a', label: 0 }, { text: 'b', label: 2_000_000_000 }]), task: 'seq_cls', expect: ok, ms: 2_000,
    check: (r) => expect(r.labels).toEqual({ kind: 'string', names: ['0', '2000000000'], numLabels: 2 }) },
  { name: 'integer label 30000000 (81 s and 4.9 GB before)', file: 'a.csv', content: 'text,label\na,1\nb,30000000\n', task: 'seq_cls', expect: ok, ms: 2_000,
    check: (r) => expect((r.labels as LabelMap).names).toEqual(['1', '30000000']) },
  { name: 'dense integer labels stay class ids', file: 'a.jsonl', content: jsonl([{ text: 'a', label: 4 }, { text: 'b', label: 0 }]), task: 'seq_cls', expect: ok, ms: 2_000,
    check: (r) => expect(r.labels).toEqual({ kind: 'int', names: ['0', '1', '2', '3', '4'], numLabels: 5 }) },
  { name: `${MAX_NUM_LABELS + 1} distinct labels`, file: 'a.jsonl', content: () => jsonl(Array.from({ length: MAX_NUM_LABELS + 1 }, (_, i) => ({ text: 't', label: `c${i}` }))), task: 'seq_cls', expect: 'ERR_LIMIT', ms: 5_000 },
  { name: 'a negative integer label', file: 'a.jsonl', content: jsonl([{ text: 'a', label: -1 }, { text: 'b', label: 1 }]), task: 'seq_cls', expect: 'ERR_VALUE', ms: 2_000 },
  { name: 'an integer label beyond 2^53', file: 'a.jsonl', content: '{"text":"a","label":1e300}\n{"text":"b","label":1}\n', task: 'seq_cls', expect: ok, ms: 2_000,
    check: (r) => expect((r.labels as LabelMap).names).toEqual(['1', '1e+300']) },
  { name: 'a boolean label', file: 'a.jsonl', content: jsonl([{ text: 'a', label: true }]), task: 'seq_cls', expect: 'ERR_FORMAT', ms: 2_000 },
  { name: 'a null label', file: 'a.jsonl', content: jsonl([{ text: 'a', label: null }]), task: 'seq_cls', expect: 'ERR_FORMAT', ms: 2_000 },
  { name: 'a label named __proto__', file: 'a.jsonl', content: jsonl([{ text: 'a', label: '__proto__' }, { text: 'b', label: 'ham' }]), task: 'seq_cls', expect: ok, ms: 2_000,
    check: (r) => expect(Object.hasOwn(labelMapToConfig(r.labels as LabelMap).label2id, '__proto__')).toBe(true) },
  { name: "a CSV without the label column (TypeError 'trim' before)", file: 'a.csv', content: 'text,category\nhello,1\nworld,0\n', task: 'seq_cls', expect: 'ERR_FORMAT', ms: 2_000 },
  // wrong types, nulls, nested objects
  { name: 'a text that is a number', file: 'a.jsonl', content: jsonl([{ text: 5 }]), task: 'causal_lm', expect: 'ERR_FORMAT', ms: 2_000 },
  { name: 'a text that is an object', file: 'a.jsonl', content: jsonl([{ text: { nested: ['x'] } }]), task: 'causal_lm', expect: 'ERR_FORMAT', ms: 2_000 },
  { name: 'a text that is null', file: 'a.jsonl', content: jsonl([{ text: null }]), task: 'causal_lm', expect: 'ERR_FORMAT', ms: 2_000 },
  { name: 'a __proto__ field instead of text', file: 'a.jsonl', content: '{"__proto__":{"text":"x"}}\n', task: 'causal_lm', expect: 'ERR_FORMAT', ms: 2_000 },
  { name: 'chat messages that are a string', file: 'a.jsonl', content: jsonl([{ messages: 'hi' }]), task: 'causal_lm', expect: 'ERR_FORMAT', ms: 2_000 },
  { name: 'a chat message with null content', file: 'a.jsonl', content: jsonl([{ messages: [{ role: 'user', content: null }] }]), task: 'causal_lm', expect: 'ERR_FORMAT', ms: 2_000 },
  { name: 'alpaca with a numeric instruction', file: 'a.json', content: JSON.stringify([{ instruction: 1, output: 'x' }]), task: 'causal_lm', expect: 'ERR_FORMAT', ms: 2_000 },
  { name: 'a preference record with a null answer', file: 'a.jsonl', content: jsonl([{ prompt: 'q', chosen: null, rejected: 'b' }]), task: 'preference', expect: 'ERR_FORMAT', ms: 2_000 },
  { name: 'a JSON document that is a number', file: 'a.json', content: '42', task: 'causal_lm', expect: 'ERR_FORMAT', ms: 2_000 },
  { name: 'a JSON array nested 100,000 deep', file: 'a.json', content: () => '['.repeat(100_000) + ']'.repeat(100_000), task: 'causal_lm', expect: 'ERR_FORMAT', ms: 3_000 },
  // empty, broken and binary files
  { name: 'an empty file', file: 'a.jsonl', content: '', task: 'causal_lm', expect: 'ERR_FORMAT', ms: 2_000 },
  { name: 'only blank lines', file: 'a.jsonl', content: '\n \r\n\t\n', task: 'causal_lm', expect: 'ERR_FORMAT', ms: 2_000 },
  { name: 'only a byte order mark', file: 'a.csv', content: '\ufeff', task: 'causal_lm', expect: 'ERR_FORMAT', ms: 2_000 },
  { name: 'a CSV with only a header', file: 'a.csv', content: 'text,label\n', task: 'seq_cls', expect: 'ERR_FORMAT', ms: 2_000 },
  { name: 'a CSV with an unclosed quote', file: 'a.csv', content: 'text,label\n"hello,1\nworld,0\n', task: 'seq_cls', expect: 'ERR_FORMAT', ms: 2_000 },
  { name: 'a CSV with ragged rows', file: 'a.csv', content: 'text,label\nhello,1,extra\n', task: 'seq_cls', expect: 'ERR_FORMAT', ms: 2_000 },
  { name: 'a binary file (PNG bytes) named .jsonl', file: 'a.jsonl', content: Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 2654435761) >>> 24))]), task: 'causal_lm', expect: 'ERR_FORMAT', ms: 2_000 },
  { name: 'NUL bytes (valid UTF-8, not JSON)', file: 'a.jsonl', content: Buffer.alloc(1024), task: 'causal_lm', expect: 'ERR_FORMAT', ms: 2_000 },
  { name: 'a UTF-16 file', file: 'a.jsonl', content: Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from('{"text":"hi"}\n', 'utf16le')]), task: 'causal_lm', expect: 'ERR_FORMAT', ms: 2_000 },
  { name: 'BOM and CRLF line ends (JSONL)', file: 'a.jsonl', content: '\ufeff{"text":"one"}\r\n{"text":"two"}\r\n', task: 'causal_lm', expect: ok, ms: 2_000,
    check: (r) => expect(r.splits!.train.map((x) => (x as { text: string }).text)).toEqual(['one', 'two']) },
  { name: 'BOM and CRLF line ends (CSV)', file: 'a.csv', content: '\ufefftext,label\r\nhello,spam\r\nworld,ham\r\n', task: 'seq_cls', expect: ok, ms: 2_000,
    check: (r) => expect((r.labels as LabelMap).names).toEqual(['ham', 'spam']) },
  // invalid UTF-8: refused naming the line, or read as U+FFFD and counted (dataset.invalid_utf8)
  { name: 'invalid UTF-8 (invalid_utf8: fail)', file: 'a.jsonl', content: Buffer.concat([Buffer.from('{"text":"ok"}\n{"text":"caf'), Buffer.from([0xe9]), Buffer.from('"}\n')]), task: 'causal_lm', expect: 'ERR_FORMAT', ms: 2_000 },
  { name: 'invalid UTF-8 (invalid_utf8: replace) is counted', file: 'a.jsonl', spec: { invalidUtf8: 'replace' },
    content: Buffer.concat([Buffer.from('{"text":"ok \ufffd"}\n{"text":"caf'), Buffer.from([0xe9, 0xff]), Buffer.from(' '), Buffer.from([0xc3]), Buffer.from('"}\n')]), task: 'causal_lm', expect: ok, ms: 2_000,
    check: (r) => {
      expect(r.splits!.invalidUtf8).toBe(6); // 3 sequences, train and eval (the same file) each
      expect(r.splits!.warnings[0]).toMatch(/3 invalid UTF-8 sequence\(s\) read as U\+FFFD \(the first at line 2/);
    } },
  // files that are not files, or too big to read
  { name: 'a FIFO (would block forever)', file: 'a.jsonl', content: 'fifo', task: 'causal_lm', expect: 'ERR_IO', ms: 2_000 },
  { name: 'a directory', file: 'a.jsonl', content: 'directory', task: 'causal_lm', expect: 'ERR_IO', ms: 2_000 },
  { name: 'a missing file', file: 'a.jsonl', content: 'missing', task: 'causal_lm', expect: 'ERR_NOT_FOUND', ms: 2_000 },
  { name: 'a 600 MiB file (over MAX_DATASET_FILE_BYTES)', file: 'a.jsonl', content: { sparseBytes: 600 * 2 ** 20 }, task: 'causal_lm', expect: 'ERR_LIMIT', ms: 2_000 },
  // huge records: cut before tokenizing
  { name: 'one 50 MB JSONL record, max_length 32 (141 s and a heap abort before)', file: 'a.jsonl', content: () => jsonl([{ text: bigText(50) }]), task: 'causal_lm', maxLength: 32, expect: ok, ms: 20_000,
    check: (r) => {
      expect(r.examples).toHaveLength(2);
      expect(r.examples[0]!.inputIds).toEqual(gpt2.encode(PARAGRAPH, { addSpecialTokens: false }).ids.slice(0, 32));
    } },
  { name: 'an 8 MB prompt with keep_end keeps the end of the prompt and the completion', file: 'a.jsonl', content: () => jsonl([{ prompt: bigText(8), completion: ' the end' }]), task: 'causal_lm', maxLength: 24, truncation: 'keep_end', expect: ok, ms: 20_000,
    check: (r) => {
      const tail = gpt2.encode(' ' + PARAGRAPH, { addSpecialTokens: false }).ids;
      const completion = [...gpt2.encode(' the end', { addSpecialTokens: false }).ids, gpt2.eosTokenId!];
      expect(r.examples[0]!.inputIds).toEqual([...tail.slice(tail.length - (24 - completion.length)), ...completion]);
    } },
  { name: 'an 8 MB text to classify, max_length 16', file: 'a.jsonl', content: () => jsonl([{ text: bigText(8), label: 'big' }, { text: 'small', label: 'small' }]), task: 'seq_cls', maxLength: 16, expect: ok, ms: 20_000,
    check: (r) => expect(r.examples[0]!.inputIds).toEqual(gpt2.encode(PARAGRAPH, { addSpecialTokens: false }).ids.slice(0, 16)) },
  { name: 'an 8 MB preference prompt, max_length 16', file: 'a.jsonl', content: () => jsonl([{ prompt: bigText(8), chosen: ' yes', rejected: ' no' }]), task: 'preference', maxLength: 16, expect: ok, ms: 20_000,
    check: (r) => expect(r.examples[0]!.inputIds).toHaveLength(15) },
  // chat records through hostile templates
  { name: 'a chat template with range(200000000) (killed V8 before)', file: 'a.jsonl', content: jsonl([{ messages: [{ role: 'user', content: 'hi' }, { role: 'assistant', content: 'yo' }] }]), task: 'causal_lm',
    template: '{% for i in range(200000000) %}x{% endfor %}', expect: 'ERR_LIMIT', ms: 2_000 },
  { name: 'a chat template with two nested range(20000) loops (hung before)', file: 'a.jsonl', content: jsonl([{ messages: [{ role: 'user', content: 'hi' }, { role: 'assistant', content: 'yo' }] }]), task: 'causal_lm',
    template: '{% for i in range(20000) %}{% for j in range(20000) %}{% endfor %}{% endfor %}', expect: 'ERR_LIMIT', ms: 5_000 },
  { name: 'a chat template that raises', file: 'a.jsonl', content: jsonl([{ messages: [{ role: 'assistant', content: 'yo' }] }]), task: 'causal_lm',
    template: "{{ raise_exception('first message must be from the user') }}", expect: 'ERR_VALUE', ms: 2_000 },
  // token classification tags
  { name: 'a tag of 2000000000', file: 'a.jsonl', content: jsonl([{ tokens: ['a', 'b'], tags: [0, 2_000_000_000] }]), task: 'token_cls', expect: ok, ms: 2_000,
    check: (r) => expect(r.labels).toEqual(['0', '2000000000']) },
  { name: `${MAX_NUM_LABELS + 1} distinct tags`, file: 'a.jsonl', content: () => jsonl([{ tokens: Array.from({ length: MAX_NUM_LABELS + 1 }, () => 'w'), tags: Array.from({ length: MAX_NUM_LABELS + 1 }, (_, i) => `T${i}`) }]), task: 'token_cls', expect: 'ERR_LIMIT', ms: 5_000 },
  { name: 'tags not one per word', file: 'a.jsonl', content: jsonl([{ tokens: ['a', 'b'], tags: ['O'] }]), task: 'token_cls', expect: 'ERR_FORMAT', ms: 2_000 },
  { name: 'a 10 MB word in token classification', file: 'a.jsonl', content: () => jsonl([{ tokens: ['hello', bigText(10)], tags: ['O', 'B'] }]), task: 'token_cls', maxLength: 8, expect: ok, ms: 20_000,
    check: (r) => expect(r.examples[0]!.inputIds).toEqual(gpt2.encode('hello', { addSpecialTokens: false }).ids) },
];

describe('hostile datasets: a typed error or a right result, in bounded time', () => {
  for (const c of DATASETS) {
    it(`${c.name}: ${c.expect}`, async () => {
      const t0 = performance.now();
      let result: Result | undefined;
      let caught: unknown;
      try {
        result = await runCase(c);
      } catch (e) {
        caught = e;
      }
      const ms = performance.now() - t0;
      if (c.expect === ok) {
        expect(caught, String(caught)).toBeUndefined();
        c.check?.(result!);
      } else {
        expect(caught, `expected ${c.expect} but got ${String(caught)}`).toBeInstanceOf(TunekitError);
        expect((caught as TunekitError).code, (caught as Error).message).toBe(c.expect);
      }
      expect(ms, 'time').toBeLessThan(c.ms);
    });
  }

  it('invalid UTF-8 with invalid_utf8: fail names the line and the option', async () => {
    const p = path.join(dir, 'latin1.jsonl');
    fs.writeFileSync(p, Buffer.concat([Buffer.from('{"text":"ok"}\n{"text":"caf'), Buffer.from([0xe9]), Buffer.from('"}\n')]));
    await expect(loadDataset({ path: p, eval: { path: p } })).rejects.toThrow(/latin1\.jsonl:2: Expected UTF-8 text but received the invalid byte 0xe9 at byte offset 26; set dataset\.invalid_utf8: replace/);
  });
});

// ---------------------------------------------------------------------------------------------
// tokenizer folders

type Json = Record<string, unknown>;
const fixtureJson = (name: string): Json => JSON.parse(fs.readFileSync(path.join(TOKENIZERS, name, 'tokenizer.json'), 'utf8'));
interface TokenizerCase {
  name: string;
  base: 'gpt2-bpe' | 'bert-wordpiece' | 'llama-bpe';
  /** Changes the parsed tokenizer.json (or returns what to write instead: a string is written as is). */
  mutate?: (j: Json) => Json | string | void;
  config?: Json;
  special?: 'fifo' | 'directory' | 'missing';
  expect: string;
  /** What the message must name. */
  names?: RegExp;
}
const vocabOf = (j: Json) => (j.model as Json).vocab as Record<string, unknown>;
const TOKENIZERS_CASES: TokenizerCase[] = [
  { name: 'a string id in the vocab (encode returned it before)', base: 'gpt2-bpe', mutate: (j) => { vocabOf(j)['the'] = '5'; }, expect: 'ERR_FORMAT', names: /model\.vocab\["the"\]: expected an integer id in \[0, 2\^31\) but received the string "5"/ },
  { name: 'an id of 2^40 (the collator made it 0 before)', base: 'gpt2-bpe', mutate: (j) => { vocabOf(j)['the'] = 2 ** 40; }, expect: 'ERR_FORMAT', names: /model\.vocab\["the"\].*1099511627776/ },
  { name: 'a negative id', base: 'bert-wordpiece', mutate: (j) => { vocabOf(j)['the'] = -1; }, expect: 'ERR_FORMAT', names: /"the"/ },
  { name: 'a fractional id', base: 'llama-bpe', mutate: (j) => { vocabOf(j)['▁the'] = 1.5; }, expect: 'ERR_FORMAT', names: /"▁the"/ },
  { name: 'two tokens with one id', base: 'gpt2-bpe', mutate: (j) => { vocabOf(j)['zzz-new'] = vocabOf(j)['e']; }, expect: 'ERR_FORMAT', names: /both have id/ },
  { name: 'an empty vocab (every text encoded to [] before)', base: 'gpt2-bpe', mutate: (j) => { (j.model as Json).vocab = {}; (j.model as Json).merges = []; j.added_tokens = []; }, expect: 'ERR_FORMAT', names: /vocab is empty/ },
  { name: 'a vocab that is a list', base: 'bert-wordpiece', mutate: (j) => { (j.model as Json).vocab = ['a']; }, expect: 'ERR_FORMAT', names: /model\.vocab/ },
  { name: 'a merge of a token not in the vocab', base: 'gpt2-bpe', mutate: (j) => { ((j.model as Json).merges as unknown[]).push(['zq', 'x']); }, expect: 'ERR_FORMAT', names: /"zq" is not in the vocab/ },
  { name: 'a merge whose result is not in the vocab', base: 'gpt2-bpe', mutate: (j) => { ((j.model as Json).merges as unknown[]).push(['x', 'q']); }, expect: 'ERR_FORMAT', names: /merged token "xq" is not in the vocab/ },
  { name: 'a merge of three parts', base: 'llama-bpe', mutate: (j) => { ((j.model as Json).merges as unknown[])[3] = 'a b c'; }, expect: 'ERR_FORMAT', names: /model\.merges\[3\]/ },
  { name: 'a merge that is a number', base: 'gpt2-bpe', mutate: (j) => { ((j.model as Json).merges as unknown[])[0] = 7; }, expect: 'ERR_FORMAT', names: /model\.merges\[0\]/ },
  { name: 'a byte-level vocab without the newline byte (silently dropped before)', base: 'gpt2-bpe', mutate: (j) => { delete vocabOf(j)['\u010a']; (j.model as Json).merges = ((j.model as Json).merges as string[][]).filter((m) => !m.join('').includes('\u010a')); }, expect: 'ERR_FORMAT', names: /lacks byte 0x0a/ },
  { name: 'an added token with a string id', base: 'bert-wordpiece', mutate: (j) => { (j.added_tokens as Json[])[0]!.id = '0'; }, expect: 'ERR_FORMAT', names: /added_tokens\[0\]\.id/ },
  { name: 'an added token with empty content', base: 'gpt2-bpe', mutate: (j) => { (j.added_tokens as Json[])[0]!.content = ''; }, expect: 'ERR_FORMAT', names: /added_tokens\[0\]\.content/ },
  { name: 'an added token whose id the vocab gives to another token', base: 'llama-bpe', mutate: (j) => { (j.added_tokens as Json[]).push({ id: 300, content: '<new>', special: true }); }, expect: 'ERR_FORMAT', names: /id 300 is "<new>" but model\.vocab gives that id to/ },
  { name: 'a WordPiece unk token missing from the vocab', base: 'bert-wordpiece', mutate: (j) => { (j.model as Json).unk_token = '<nope>'; }, expect: 'ERR_FORMAT', names: /unk_token "<nope>"/ },
  { name: 'post-processor special token ids out of range', base: 'bert-wordpiece', mutate: (j) => { ((j.post_processor as Json).special_tokens as Record<string, Json>)['[CLS]']!.ids = [2 ** 40]; }, expect: 'ERR_FORMAT', names: /post_processor\.special_tokens\["\[CLS\]"\]\.ids/ },
  { name: 'an unknown model type (the package guessed one before)', base: 'gpt2-bpe', mutate: (j) => { (j.model as Json).type = 'Quantum'; }, expect: 'ERR_FORMAT', names: /model\.type/ },
  { name: 'tokenizer.json that is a list', base: 'gpt2-bpe', mutate: () => '[1, 2]', expect: 'ERR_FORMAT' },
  { name: 'tokenizer.json that is not JSON', base: 'gpt2-bpe', mutate: () => '{"model": ', expect: 'ERR_FORMAT' },
  { name: 'tokenizer.json that is a FIFO (would block forever)', base: 'gpt2-bpe', special: 'fifo', expect: 'ERR_IO' },
  { name: 'tokenizer.json that is a directory', base: 'gpt2-bpe', special: 'directory', expect: 'ERR_IO' },
  { name: 'no tokenizer.json', base: 'gpt2-bpe', special: 'missing', expect: 'ERR_NOT_FOUND' },
  { name: 'a chat_template that is a number', base: 'gpt2-bpe', config: { chat_template: 7 }, expect: 'ERR_FORMAT', names: /chat_template/ },
  { name: 'a chat_template list without templates', base: 'gpt2-bpe', config: { chat_template: [null] }, expect: 'ERR_FORMAT', names: /chat_template/ },
  { name: 'additional_special_tokens that is a number', base: 'gpt2-bpe', config: { additional_special_tokens: 3 }, expect: 'ERR_FORMAT', names: /additional_special_tokens/ },
];

describe('hostile tokenizer folders: ERR_FORMAT naming the entry, in bounded time', () => {
  for (const c of TOKENIZERS_CASES) {
    it(`${c.name}: ${c.expect}`, () => {
      const folder = fs.mkdtempSync(path.join(dir, 'tok-'));
      const file = path.join(folder, 'tokenizer.json');
      if (c.special === 'fifo') execFileSync('mkfifo', [file]);
      else if (c.special === 'directory') fs.mkdirSync(file);
      else if (c.special !== 'missing') {
        const j = fixtureJson(c.base);
        const out = c.mutate?.(j);
        fs.writeFileSync(file, typeof out === 'string' ? out : JSON.stringify(out ?? j));
      }
      fs.writeFileSync(path.join(folder, 'tokenizer_config.json'), JSON.stringify(c.config ?? {}));
      const t0 = performance.now();
      let caught: unknown;
      try {
        Tokenizer.fromFolderSync(folder);
      } catch (e) {
        caught = e;
      }
      expect(caught, `expected ${c.expect} but got ${String(caught)}`).toBeInstanceOf(TunekitError);
      expect((caught as TunekitError).code, (caught as Error).message).toBe(c.expect);
      if (c.names) expect((caught as Error).message).toMatch(c.names);
      expect(performance.now() - t0).toBeLessThan(2_000);
    });
  }

  it('the fixture tokenizers and the built-in model tokenizer pass the checks', () => {
    for (const name of ['gpt2-bpe', 'bert-wordpiece', 'llama-bpe']) expect(() => Tokenizer.fromFolderSync(path.join(TOKENIZERS, name))).not.toThrow();
    expect(() => Tokenizer.fromFolderSync(path.join(ROOT, 'models', 'tunekit-gpt2-small'))).not.toThrow();
  });
});

// ---------------------------------------------------------------------------------------------
// memory: the 50 MB record in a child process with a small heap

/**
 * Transpiles lib/errors.ts, lib/data and lib/tokenizer (which import nothing else of tunekit)
 * into a temporary folder whose node_modules points at ours, so that a plain `node` child can
 * run them under --max-old-space-size.
 */
function transpileForChild(): string {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'tunekit-child-'));
  fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(out, 'node_modules'));
  fs.writeFileSync(path.join(out, 'package.json'), '{"type":"module"}');
  const files = ['lib/errors.ts', ...['lib/data', 'lib/tokenizer'].flatMap((d) => fs.readdirSync(path.join(ROOT, d)).filter((f) => f.endsWith('.ts')).map((f) => `${d}/${f}`))];
  for (const f of files) {
    const js = ts.transpileModule(fs.readFileSync(path.join(ROOT, f), 'utf8'), { compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 } }).outputText;
    fs.mkdirSync(path.dirname(path.join(out, f)), { recursive: true });
    fs.writeFileSync(path.join(out, f.replace(/\.ts$/, '.js')), js);
  }
  return out;
}

describe('memory', () => {
  it('one 50 MB record with max_length 32: seconds, a 256 MB heap, the first 32 tokens of the uncut text', () => {
    const out = transpileForChild();
    try {
      const data = path.join(out, 'big.jsonl');
      fs.writeFileSync(data, jsonl([{ text: bigText(50) }]));
      fs.writeFileSync(path.join(out, 'child.mjs'), `
        import { loadRecords } from './lib/data/load.js';
        import { normalizeRecords } from './lib/data/formats.js';
        import { buildCausalLmExamples } from './lib/data/examples.js';
        import { Tokenizer } from './lib/tokenizer/tokenizer.js';
        const t0 = performance.now();
        const tok = Tokenizer.fromFolderSync(${JSON.stringify(path.join(TOKENIZERS, 'gpt2-bpe'))});
        const { records } = normalizeRecords(await loadRecords(${JSON.stringify(data)}));
        const like = { encode: (s, o) => tok.encode(s, o), eosTokenId: tok.eosTokenId };
        const { examples } = buildCausalLmExamples(records, like, { maxLength: 32 });
        const tail = buildCausalLmExamples(records, like, { maxLength: 32, truncation: 'keep_end', addEos: false }).examples;
        console.log(JSON.stringify({ ids: examples[0].inputIds, tail: tail[0].inputIds, ms: performance.now() - t0, maxRssMB: process.resourceUsage().maxRSS / 1024 }));
      `);
      const r = spawnSync(process.execPath, ['--max-old-space-size=256', path.join(out, 'child.mjs')], { encoding: 'utf8', timeout: 60_000 });
      expect(r.status, r.stderr.slice(-2000)).toBe(0);
      const got = JSON.parse(r.stdout.trim().split('\n').pop()!) as { ids: number[]; tail: number[]; ms: number; maxRssMB: number };
      // the uncut text is PARAGRAPH repeated: its first tokens are PARAGRAPH's, its last those of ' ' + PARAGRAPH
      expect(got.ids).toEqual(gpt2.encode(PARAGRAPH, { addSpecialTokens: false }).ids.slice(0, 32));
      const tail = gpt2.encode(' ' + PARAGRAPH, { addSpecialTokens: false }).ids;
      expect(got.tail).toEqual(tail.slice(tail.length - 32));
      expect(got.ms).toBeLessThan(15_000);
      // the file (50 MB), its text (50 MB) and the parsed record (50 MB) are most of it
      expect(got.maxRssMB).toBeLessThan(700);
    } finally {
      fs.rmSync(out, { recursive: true, force: true });
    }
  });
});

// ---------------------------------------------------------------------------------------------
// seeded fuzz: records of every shape with fields of every type, and byte-mutated files

describe('seeded fuzz: nothing but TunekitError comes out of the data pipeline', () => {
  const xorshift = (seed: number) => () => { seed ^= seed << 13; seed >>>= 0; seed ^= seed >>> 17; seed ^= seed << 5; seed >>>= 0; return seed / 2 ** 32; };
  const tok = gpt2;
  const renderChat = (m: { role: string; content: string }[], o?: { addGenerationPrompt?: boolean }) => gpt2.applyChatTemplate(m, { addGenerationPrompt: o?.addGenerationPrompt ?? false });

  /** Runs records through one task's pipeline; returns 'ok' or the error code, 'RAW ...' for anything else. */
  function pipeline(text: string, name: string, task: number, opts: { invalidUtf8?: 'fail' | 'replace' } = {}, file?: string): string {
    try {
      const loaded = file ? loadRecordsSync(file, { invalidUtf8: opts.invalidUtf8 }) : parseRecords(text, name);
      const { records } = normalizeRecords(loaded);
      if (task === 0) collate(buildClassificationExamples(records, tok, buildLabelMap(records), { maxLength: 16 }), { padTokenId: 0 });
      else if (task === 1) {
        const ex = buildCausalLmSplit(records, tok, { maxLength: 16, renderChat, truncation: records.length % 2 ? 'keep_end' : 'keep_start' });
        if (ex.length) collate(ex, { padTokenId: 0 });
      } else if (task === 2) records.forEach((r, i) => buildPreferenceExample(r, tok, { maxLength: 8 }, i));
      else {
        const answers = detectChoices(records, records, 'auto');
        if (answers) buildChoiceSet(records, tok, answers, { maxLength: 16 });
      }
      return 'ok';
    } catch (e) {
      return e instanceof TunekitError ? e.code : `RAW ${(e as Error).constructor.name}: ${(e as Error).message.slice(0, 120)} <- ${text.slice(0, 160)}`;
    }
  }

  it('3,000 records with fields of random types (strings, numbers beyond 2^53, NaN, nulls, nested lists and objects, __proto__)', () => {
    const r = xorshift(20240518);
    const pick = <T,>(a: readonly T[]): T => a[Math.floor(r() * a.length)]!;
    const fields = ['text', 'label', 'prompt', 'completion', 'instruction', 'input', 'output', 'messages', 'chosen', 'rejected', '__proto__', 'constructor', 'toString'];
    const value = (depth: number): unknown => {
      const k = r();
      if (depth > 3 || k < 0.3) return pick(['', 'a b', 'spam', '0', '1', ' 7', '-3', '1e3', '\u0000', '\ud800', '💥', 'x'.repeat(200)]);
      if (k < 0.45) return pick([0, 1, -1, 2 ** 31, 2 ** 53 + 2, 1.5, 1e300, -0]);
      if (k < 0.55) return pick([null, true, false]);
      if (k < 0.75) return Array.from({ length: Math.floor(r() * 4) }, () => (r() < 0.5 ? { role: pick(['user', 'assistant', 'system', 5]), content: value(depth + 1) } : value(depth + 1)));
      const o: Record<string, unknown> = {};
      for (let i = 0; i < 1 + r() * 3; i++) o[pick(fields)] = value(depth + 1);
      return o;
    };
    const shapes = [{ text: 'a' }, { text: 'a', label: 1 }, { prompt: 'q', completion: ' a' }, { instruction: 'i', output: 'o' }, { messages: [{ role: 'user', content: 'hi' }, { role: 'assistant', content: 'yo' }] }, { prompt: 'q', chosen: 'a', rejected: 'b' }];
    const outcomes: Record<string, number> = {};
    const raw: string[] = [];
    for (let i = 0; i < 3000; i++) {
      const shape = pick(shapes);
      const rows = Array.from({ length: 1 + Math.floor(r() * 4) }, () => {
        const o: Record<string, unknown> = { ...shape };
        if (r() < 0.3) o[pick(fields)] = value(0);
        return JSON.stringify(o);
      });
      const got = pipeline(rows.join('\n'), 'fuzz.jsonl', Math.floor(r() * 4));
      outcomes[got.startsWith('RAW') ? 'RAW' : got] = (outcomes[got.startsWith('RAW') ? 'RAW' : got] ?? 0) + 1;
      if (got.startsWith('RAW')) raw.push(got);
    }
    expect(raw).toEqual([]);
    expect(outcomes.ok).toBeGreaterThan(500); // the fuzz reaches the tokenizer and the batches, not only the parser
  });

  it('300 byte-mutated JSONL and CSV files (flipped, inserted, deleted bytes), with invalid_utf8 fail and replace', () => {
    const r = xorshift(7);
    const sources = [
      { name: 'm.jsonl', bytes: Buffer.from(jsonl([{ text: 'héllo wörld', label: 'spam' }, { text: 'ok 🎉', label: 'ham' }, { text: 'third one', label: 'ham' }])) },
      { name: 'm.csv', bytes: Buffer.from('\ufefftext,label\r\n"quoted, text",spam\r\nplain ünïcode,ham\r\nthird,ham\r\n') },
      { name: 'm.jsonl', bytes: Buffer.from(jsonl([{ prompt: 'Q: 2+2?', completion: ' 4' }, { prompt: 'Q: 1+1?', completion: ' 2' }])) },
    ];
    const raw: string[] = [];
    const outcomes: Record<string, number> = {};
    for (let i = 0; i < 300; i++) {
      const src = pick(sources);
      const bytes = Buffer.from(src.bytes);
      const edits = 1 + Math.floor(r() * 3);
      let b: Buffer = bytes;
      for (let e = 0; e < edits; e++) {
        const at = Math.floor(r() * b.length);
        const kind = r();
        if (kind < 0.4) b[at] = Math.floor(r() * 256);
        else if (kind < 0.7) b = Buffer.concat([b.subarray(0, at), Buffer.from([Math.floor(r() * 256)]), b.subarray(at)]);
        else b = Buffer.concat([b.subarray(0, at), b.subarray(at + 1)]);
      }
      const file = path.join(dir, `fuzz-${i}-${src.name}`);
      fs.writeFileSync(file, b);
      const got = pipeline(b.toString('latin1'), src.name, Math.floor(r() * 2), { invalidUtf8: r() < 0.5 ? 'fail' : 'replace' }, file);
      outcomes[got.startsWith('RAW') ? 'RAW' : got] = (outcomes[got.startsWith('RAW') ? 'RAW' : got] ?? 0) + 1;
      if (got.startsWith('RAW')) raw.push(got);
    }
    expect(raw).toEqual([]);
    expect(outcomes.ok).toBeGreaterThan(15); // some mutations leave a readable file
    function pick<T>(a: readonly T[]): T { return a[Math.floor(r() * a.length)]!; }
  });
});

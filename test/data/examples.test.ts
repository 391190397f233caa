import { describe, expect, test } from 'vitest';
import { loadRecordsSync } from '../../lib/data/load.js';
import { normalizeRecords } from '../../lib/data/formats.js';
import { buildLabelMap, encodeLabel, labelMapToConfig } from '../../lib/data/labels.js';
import {
  buildCausalLmSplit,
  buildCausalLmExample,
  buildCausalLmExamples,
  buildClassificationExamples,
  buildPreferenceExample,
  packExamples,
  specialTokenLayout,
} from '../../lib/data/examples.js';
import { collate } from '../../lib/data/collate.js';
import { IGNORE_INDEX, type ChatRenderer, type LabelledRecord } from '../../lib/data/types.js';
import { TunekitError } from '../../lib/errors.js';
import { charTokenizer, dec, fx } from './helpers.js';

const load = (f: string) => normalizeRecords(loadRecordsSync(fx(f))).records;

describe('causal LM examples', () => {
  test('loss only on completion tokens, EOS appended', () => {
    const tok = charTokenizer('gpt2');
    const ex = buildCausalLmExample(load('prompts.jsonl')[0]!, tok)!;
    expect(dec(ex.inputIds)).toBe('Q: 2+2? 4<2>');
    const nPrompt = 'Q: 2+2?'.length;
    expect(ex.labels.slice(0, nPrompt).every((l) => l === IGNORE_INDEX)).toBe(true);
    expect(ex.labels.slice(nPrompt)).toEqual(ex.inputIds.slice(nPrompt));
  });

  test("the tokenizer's leading special token is kept and masked (llama-style BOS)", () => {
    const tok = charTokenizer('llama');
    expect(specialTokenLayout(tok)).toEqual({ prefix: [1], suffix: [] });
    const ex = buildCausalLmExample({ kind: 'text', text: 'abc' }, tok)!;
    expect(ex.inputIds).toEqual([1, ...[...'abc'].map((c) => c.charCodeAt(0) + 10), 2]);
    expect(ex.labels[0]).toBe(IGNORE_INDEX);
    expect(ex.labels.slice(1)).toEqual(ex.inputIds.slice(1));
  });

  test('truncation keeps the start; prompt-only results are dropped', () => {
    const tok = charTokenizer();
    const recs = load('prompts.jsonl');
    const ex = buildCausalLmExample(recs[1]!, tok, { maxLength: 24 })!;
    expect(ex.inputIds).toHaveLength(24);
    expect(dec(ex.inputIds)).toBe('Q: capital of France? Pa');
    const { examples, dropped } = buildCausalLmExamples(recs, tok, { maxLength: 5 });
    expect(examples).toHaveLength(0);
    expect(dropped).toBe(3);
  });

  test("truncation keep_end cuts the prompt's start and keeps the answer, after the leading special tokens", () => {
    const tok = charTokenizer('llama'); // BOS=1 first
    const rec = { kind: 'prompt_completion' as const, prompt: 'Q: capital of France?', completion: ' Paris' };
    const ex = buildCausalLmExample(rec, tok, { maxLength: 12, truncation: 'keep_end' })!;
    expect(ex.inputIds[0]).toBe(1);
    expect(dec(ex.inputIds.slice(1))).toBe('nce? Paris<2>');
    expect(ex.labels.filter((l) => l !== IGNORE_INDEX)).toHaveLength(7);
    expect(buildCausalLmExample(rec, tok, { maxLength: 1, truncation: 'keep_end' })).toBeNull(); // only BOS left: nothing to learn
  });

  test('alpaca records train on the output only', () => {
    const ex = buildCausalLmExample(load('alpaca.json')[0]!, charTokenizer())!;
    const trained = ex.inputIds.filter((_, i) => ex.labels[i] !== IGNORE_INDEX);
    expect(dec(trained)).toBe('5<2>');
  });

  test('chat: loss on assistant turns only, via the renderer', () => {
    const render: ChatRenderer = (msgs, o) =>
      msgs.map((m) => `<|${m.role}|>${m.content}<|end|>`).join('') + (o?.addGenerationPrompt ? '<|assistant|>' : '');
    const ex = buildCausalLmExample(load('chat.jsonl')[0]!, charTokenizer(), { renderChat: render })!;
    expect(dec(ex.inputIds)).toBe('<|system|>Be brief.<|end|><|user|>Hi<|end|><|assistant|>Hello.<|end|><|user|>Bye<|end|><|assistant|>Goodbye.<|end|>');
    const trained = ex.inputIds.map((id, i) => (ex.labels[i] === IGNORE_INDEX ? '_' : dec([id]))).join('');
    expect(trained.replace(/_+/g, '|')).toBe('|Hello.<|end|>|Goodbye.<|end|>');
    expect(() => buildCausalLmExample(load('chat.jsonl')[0]!, charTokenizer())).toThrow(/renderChat/);
  });

  test('labelled records are rejected for causal LM with the row named', () => {
    const recs = load('labelled.csv');
    expect(() => buildCausalLmExample(recs[0]!, charTokenizer())).toThrow(/labelled\.csv:2.*labelled record/);
  });

  test('packing into fixed blocks keeps the label mask', () => {
    const tok = charTokenizer();
    const { examples } = buildCausalLmExamples(load('prompts.jsonl'), tok);
    const total = examples.reduce((s, e) => s + e.inputIds.length, 0);
    const blocks = packExamples(examples, 8);
    expect(blocks).toHaveLength(Math.floor(total / 8));
    expect(blocks.every((b) => b.inputIds.length === 8 && b.labels.length === 8)).toBe(true);
    expect(blocks.flatMap((b) => b.inputIds)).toEqual(examples.flatMap((e) => e.inputIds).slice(0, blocks.length * 8));
    expect(blocks.flatMap((b) => b.labels)).toEqual(examples.flatMap((e) => e.labels).slice(0, blocks.length * 8));
    expect(packExamples(examples, 8, { keepRemainder: true }).flatMap((b) => b.inputIds)).toHaveLength(total);
    expect(() => packExamples(examples, 10_000)).toThrow(/at least 10000 tokens/);
  });

  test('a packed split keeps every record whole (records are not cut at maxLength first)', () => {
    const tok = charTokenizer();
    const docs = [{ kind: 'text' as const, text: 'abcdefghijklmnopqrstuvwxyz' }, { kind: 'text' as const, text: 'ABCDEFGHIJ' }];
    const blocks = buildCausalLmSplit(docs, tok, { maxLength: 8, packing: true });
    // 26 + EOS + 10 + EOS = 38 tokens -> 4 whole blocks of 8
    expect(blocks.map((b) => dec(b.inputIds)).join('')).toBe('abcdefghijklmnopqrstuvwxyz<2>ABCDE');
    expect(buildCausalLmSplit(docs, tok, { maxLength: 8 }).map((b) => dec(b.inputIds))).toEqual(['abcdefgh', 'ABCDEFGH']);
  });
});

describe('classification examples and label maps', () => {
  test('string labels: sorted map from train, applied to eval; unknown label names the row', () => {
    const train = load('labelled.csv') as LabelledRecord[];
    const map = buildLabelMap(train);
    expect(map.names).toEqual(['ham', 'spam']);
    expect(labelMapToConfig(map)).toEqual({ id2label: { '0': 'ham', '1': 'spam' }, label2id: { ham: 0, spam: 1 } });
    const ex = buildClassificationExamples(train, charTokenizer('bert'), map, { maxLength: 6 });
    expect(ex.map((e) => e.label)).toEqual([1, 0, 0, 1]);
    // truncation keeps the start and the [CLS] ... [SEP] frame
    expect(ex[0]!.inputIds).toHaveLength(6);
    expect(ex[0]!.inputIds[0]).toBe(1);
    expect(ex[0]!.inputIds[5]).toBe(2);
    expect(dec(ex[0]!.inputIds.slice(1, 5))).toBe('Win ');
    const evalRecs = load('labels_eval_unknown.csv');
    expect(() => buildClassificationExamples(evalRecs, charTokenizer(), map)).toThrow(/labels_eval_unknown\.csv:3.*unknown label "phishing"/);
  });

  test('truncation keep_end and keep_start_and_end (head + tail) keep the [CLS] ... [SEP] frame', () => {
    const tok = charTokenizer('bert');
    const map = buildLabelMap([{ kind: 'labelled', text: 'x', label: 'a' }]);
    const rec: LabelledRecord = { kind: 'labelled', text: 'abcdefghijklmnopqrstuvwxyz', label: 'a' };
    const body = (truncation: 'keep_start' | 'keep_end' | 'keep_start_and_end', maxLength: number) => {
      const ids = buildClassificationExamples([rec], tok, map, { maxLength, truncation })[0]!.inputIds;
      expect(ids).toHaveLength(Math.min(maxLength, 28));
      expect([ids[0], ids.at(-1)]).toEqual([1, 2]);
      return dec(ids.slice(1, -1));
    };
    expect(body('keep_start', 10)).toBe('abcdefgh');
    expect(body('keep_end', 10)).toBe('stuvwxyz');
    expect(body('keep_start_and_end', 10)).toBe('abcdefyz'); // room 8: the first 6, the last 2
    expect(body('keep_start_and_end', 18)).toBe('abcdefghijklwxyz'); // room 16: 12 + 4
    expect(body('keep_start_and_end', 28)).toBe('abcdefghijklmnopqrstuvwxyz'); // fits exactly: whole text once
    expect(body('keep_start_and_end', 40)).toBe('abcdefghijklmnopqrstuvwxyz');
    expect(body('keep_start_and_end', 5)).toBe('abc'); // room 3: no tail
  });

  test('integer labels: ids used directly, out of range names the row', () => {
    const map = buildLabelMap(load('labels_int.jsonl') as LabelledRecord[]);
    expect(map).toEqual({ kind: 'int', names: ['0', '1', '2'], numLabels: 3 });
    expect(encodeLabel(map, '2', 'x')).toBe(2); // CSV gives strings
    try {
      buildClassificationExamples(load('labels_eval_bad.jsonl'), charTokenizer(), map);
      throw new Error('no error');
    } catch (e) {
      expect(e).toBeInstanceOf(TunekitError);
      expect((e as Error).message).toBe(`${fx('labels_eval_bad.jsonl')}:2: Expected a label in [0, 2] but received 7 (out of range)`);
    }
  });

  test('preference pairs tokenise with EOS', () => {
    const ex = buildPreferenceExample(load('preference.jsonl')[1]!, charTokenizer());
    expect(dec(ex.promptIds)).toBe('2+2?');
    expect(dec(ex.chosenIds)).toBe(' 4<2>');
    expect(dec(ex.rejectedIds)).toBe(' 5<2>');
    const cut = buildPreferenceExample(load('preference.jsonl')[0]!, charTokenizer(), { maxLength: 10 });
    expect(cut.promptIds.length + cut.chosenIds.length).toBeLessThanOrEqual(10);
    expect(cut.chosenIds.length).toBeGreaterThan(0);
  });
});

describe('collate', () => {
  const exs = [
    { inputIds: [5, 6, 7], labels: [-100, 6, 7] },
    { inputIds: [8], labels: [8] },
  ];
  test('right padding to the longest, labels -100 on pad', () => {
    const b = collate(exs, { padTokenId: 0 });
    expect(b.batch).toBe(2);
    expect(b.seqLen).toBe(3);
    expect([...b.inputIds]).toEqual([5, 6, 7, 8, 0, 0]);
    expect([...b.attentionMask]).toEqual([1, 1, 1, 1, 0, 0]);
    expect([...b.labels!]).toEqual([-100, 6, 7, 8, -100, -100]);
    expect(b.inputIds).toBeInstanceOf(Int32Array);
  });
  test('left padding, multiple of 8, pad id from tokenizer (EOS when no PAD)', () => {
    const b = collate(exs, { tokenizer: charTokenizer('gpt2'), paddingSide: 'left', padToMultipleOf: 8 });
    expect(b.seqLen).toBe(8);
    expect([...b.inputIds.slice(0, 8)]).toEqual([2, 2, 2, 2, 2, 5, 6, 7]);
    expect([...b.attentionMask.slice(8)]).toEqual([0, 0, 0, 0, 0, 0, 0, 1]);
    expect([...b.labels!.slice(8)]).toEqual([-100, -100, -100, -100, -100, -100, -100, 8]);
  });
  test('classification batches carry classLabels', () => {
    const b = collate([{ inputIds: [1, 2], label: 1 }, { inputIds: [3], label: 0 }]);
    expect([...b.classLabels!]).toEqual([1, 0]);
    expect(b.labels).toBeUndefined();
    expect(() => collate([{ inputIds: [1], label: 0 }, { inputIds: [1], labels: [1] }])).toThrow(/example 1/);
    expect(() => collate([])).toThrow(/empty/);
  });
});

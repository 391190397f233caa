import { describe, expect, test } from 'vitest';
import { loadRecords, loadRecordsSync, parseRecords, formatFromPath } from '../../lib/data/load.js';
import { normalizeRecords, detectFormat } from '../../lib/data/formats.js';
import { TunekitError } from '../../lib/errors.js';
import { fx } from './helpers.js';

async function err(p: Promise<unknown> | (() => unknown)): Promise<TunekitError> {
  try {
    if (typeof p === 'function') p();
    else await p;
  } catch (e) {
    expect(e).toBeInstanceOf(TunekitError);
    return e as TunekitError;
  }
  throw new Error('expected an error');
}

describe('loadRecords', () => {
  test('JSONL with line numbers, blank lines ignored', async () => {
    const r = await loadRecords(fx('prompts.jsonl'));
    expect(r.format).toBe('jsonl');
    expect(r.records).toHaveLength(3);
    expect(r.sources.map((s) => s.line)).toEqual([1, 2, 4]);
    expect(r.skipped).toBe(0);
  });

  test('malformed JSONL fails naming file and line', async () => {
    const e = await err(loadRecords(fx('bad.jsonl')));
    expect(e.code).toBe('ERR_FORMAT');
    expect(e.message).toContain('bad.jsonl:3');
    expect(e.message).toMatch(/invalid JSON/);
  });

  test('malformed JSONL rows are skipped and counted with onError skip', async () => {
    const r = await loadRecords(fx('bad.jsonl'), { onError: 'skip' });
    expect(r.records.map((x) => x['text'])).toEqual(['ok one', 'ok two', 'ok three', 'ok four']);
    expect(r.skipped).toBe(2);
    expect(r.skipReasons[0]).toContain('bad.jsonl:3');
    expect(r.skipReasons[1]).toContain('bad.jsonl:5');
    expect(r.skipReasons[1]).toContain('Expected a JSON object');
    expect(r.sources.map((s) => s.line)).toEqual([1, 2, 4, 6]);
  });

  test('JSON: {data: [...]} and arrays; non-objects fail or skip', async () => {
    const a = loadRecordsSync(fx('alpaca.json'));
    expect(a.records).toHaveLength(2);
    const e = await err(loadRecords(fx('texts.json')));
    expect(e.message).toContain('texts.json:record 2');
    const s = await loadRecords(fx('texts.json'), { onError: 'skip' });
    expect(s.records).toHaveLength(2);
    expect(s.skipped).toBe(1);
    expect(s.sources[1]).toEqual({ file: fx('texts.json'), index: 1 });
  });

  test('broken JSON document fails with its line', async () => {
    const e = await err(loadRecords(fx('broken.json'), { onError: 'skip' }));
    expect(e.message).toContain('broken.json:3');
  });

  test('CSV with header row, quoted multi-line fields', async () => {
    const r = await loadRecords(fx('labelled.csv'));
    expect(r.records).toHaveLength(4);
    expect(r.records[0]).toEqual({ text: 'Win a FREE cruise, click now', label: 'spam' });
    expect(r.records[2]!['text']).toBe('Multi-line\nmessage body');
    expect(r.sources[0]!.line).toBe(2);
  });

  test('malformed CSV row fails with line, or is skipped', async () => {
    const e = await err(loadRecords(fx('bad.csv')));
    expect(e.message).toContain('bad.csv:3');
    const r = await loadRecords(fx('bad.csv'), { onError: 'skip' });
    expect(r.records.map((x) => x['text'])).toEqual(['fine row', 'another fine row']);
    expect(r.skipped).toBe(1);
  });

  test('empty datasets give a clear error', async () => {
    for (const f of ['empty.jsonl', 'blank.jsonl']) {
      const e = await err(loadRecords(fx(f)));
      expect(e.message).toMatch(/at least one record.*empty/);
    }
  });

  test('missing file and unknown extension', async () => {
    expect((await err(loadRecords(fx('nope.jsonl')))).code).toBe('ERR_NOT_FOUND');
    expect((await err(() => formatFromPath('data.txt'))).message).toContain('.txt');
  });

  test('explicit format overrides the extension', () => {
    const r = parseRecords('{"text":"a"}\n', 'inline.txt', { format: 'jsonl' });
    expect(r.records).toEqual([{ text: 'a' }]);
  });
});

describe('record formats', () => {
  test('detection', () => {
    expect(detectFormat({ text: 'a' })).toBe('text');
    expect(detectFormat({ text: 'a', label: 1 })).toBe('labelled');
    expect(detectFormat({ prompt: 'a', completion: 'b' })).toBe('prompt_completion');
    expect(detectFormat({ instruction: 'a', input: '', output: 'b' })).toBe('alpaca');
    expect(detectFormat({ messages: [] })).toBe('chat');
    expect(detectFormat({ prompt: 'p', chosen: 'a', rejected: 'b' })).toBe('preference');
    expect(detectFormat({ body: 'x', y: 1 }, { textField: 'body', labelField: 'y' })).toBe('labelled');
    expect(detectFormat({ foo: 1 })).toBeUndefined();
  });

  test('alpaca becomes prompt/completion with the Alpaca template', () => {
    const { format, records } = normalizeRecords(loadRecordsSync(fx('alpaca.json')));
    expect(format).toBe('alpaca');
    const r = records[0]!;
    expect(r.kind).toBe('prompt_completion');
    if (r.kind !== 'prompt_completion') throw new Error();
    expect(r.prompt).toContain('### Instruction:\nAdd the numbers.\n\n### Input:\n2 3\n\n### Response:\n');
    expect(r.completion).toBe('5');
    const r2 = records[1]!;
    if (r2.kind !== 'prompt_completion') throw new Error();
    expect(r2.prompt).not.toContain('### Input');
  });

  test('chat, preference, labelled CSV', () => {
    expect(normalizeRecords(loadRecordsSync(fx('chat.jsonl'))).records[0]!.kind).toBe('chat');
    expect(normalizeRecords(loadRecordsSync(fx('preference.jsonl'))).format).toBe('preference');
    const lab = normalizeRecords(loadRecordsSync(fx('labelled.csv')));
    expect(lab.format).toBe('labelled');
  });

  test('a wrong field type names the row', async () => {
    const e = await err(() => normalizeRecords(loadRecordsSync(fx('wrongtype.jsonl'))));
    expect(e.message).toContain('wrongtype.jsonl:2');
    expect(e.message).toContain('Expected a string for field "completion" but received 42');
  });

  test('undetectable records list their fields', async () => {
    const e = await err(() => normalizeRecords(loadRecordsSync(fx('nofields.jsonl'))));
    expect(e.message).toContain('nofields.jsonl:1');
    expect(e.message).toContain('"foo"');
  });
});

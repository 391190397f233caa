/** Label and tag maps: checked against MAX_NUM_LABELS before allocating; sparse integers are names. */
import { describe, it, expect } from 'vitest';
import { buildLabelMap, denseIds, encodeLabel, MAX_NUM_LABELS } from '../../lib/data/labels.js';
import { buildTagMap } from '../../lib/data/token_cls.js';
import type { NormalizedRecord } from '../../lib/data/types.js';

const rec = (label: string | number, line = 1): NormalizedRecord => ({ kind: 'labelled', text: 't', label, source: { file: 'd.jsonl', line } });

describe('label maps under limits', () => {
  it('a label of 2e9 is a name, in microseconds: no 2e9-entry list (V8 abort before)', () => {
    const t0 = performance.now();
    const map = buildLabelMap([rec(0), rec(2_000_000_000), rec(0)]);
    expect(performance.now() - t0).toBeLessThan(100);
    expect(map).toEqual({ kind: 'string', names: ['0', '2000000000'], numLabels: 2 });
    // eval rows spell the number however they like
    expect(encodeLabel(map, '2000000000', 'eval:1')).toBe(1);
    expect(encodeLabel(map, ' 2000000000', 'eval:2')).toBe(1);
    expect(encodeLabel(map, 0, 'eval:3')).toBe(0);
    expect(() => encodeLabel(map, 5, 'eval:4')).toThrowError(/eval:4: Expected one of the training labels/);
  });

  it('sparse integers are names sorted as numbers; dense ones stay ids', () => {
    expect(buildLabelMap([rec(900), rec(3), rec(17)]).names).toEqual(['3', '17', '900']);
    expect(buildLabelMap([rec('1'), rec('5')])).toEqual({ kind: 'int', names: ['0', '1', '2', '3', '4', '5'], numLabels: 6 });
    expect(denseIds(4, 2)).toBe(true);
    expect(denseIds(MAX_NUM_LABELS, MAX_NUM_LABELS)).toBe(false);
    expect(denseIds(40, 2)).toBe(false);
  });

  it('numLabels is checked against the limit; too many distinct labels is ERR_LIMIT naming the limit', () => {
    expect(() => buildLabelMap([rec(0)], { numLabels: 2 ** 31 })).toThrowError(expect.objectContaining({ code: 'ERR_LIMIT' }));
    expect(buildLabelMap([rec(0), rec(1)], { numLabels: 3 }).numLabels).toBe(3);
    const many = Array.from({ length: MAX_NUM_LABELS + 1 }, (_, i) => rec(`c${i}`));
    expect(() => buildLabelMap(many)).toThrowError(/at most 32768 classes \(MAX_NUM_LABELS\)/);
  });

  it('records without labels are ERR_FORMAT naming the row (a raw TypeError before)', () => {
    const text: NormalizedRecord = { kind: 'text', text: 'no label', source: { file: 'd.csv', line: 3 } };
    expect(() => buildLabelMap([rec(1), text])).toThrowError(/d\.csv:3: Expected a labelled record/);
  });

  it('tags: the same rules', () => {
    const tagged = (tags: (string | number)[]) => ({ words: tags.map(() => 'w'), tags, where: 'x:1' });
    expect(buildTagMap([tagged([0, 2_000_000_000])])).toEqual(['0', '2000000000']);
    expect(buildTagMap([tagged([2, 0])])).toEqual(['0', '1', '2']);
    expect(buildTagMap([tagged(['O', 'B-PER'])])).toEqual(['B-PER', 'O']);
    expect(() => buildTagMap([tagged(Array.from({ length: MAX_NUM_LABELS + 1 }, (_, i) => `T${i}`))])).toThrowError(expect.objectContaining({ code: 'ERR_LIMIT' }));
  });
});

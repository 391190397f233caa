import { describe, expect, test } from 'vitest';
import { Rng, permutation, deriveSeed } from '../../lib/data/rng.js';
import { splitTrainEval } from '../../lib/data/split.js';
import { DataLoader } from '../../lib/data/loader.js';
import { makeCollator } from '../../lib/data/collate.js';

describe('Rng', () => {
  test('deterministic, seed-dependent, uniform-ish', () => {
    const a = new Rng(123);
    const b = new Rng(123);
    const xs = Array.from({ length: 5 }, () => a.nextU32());
    expect(Array.from({ length: 5 }, () => b.nextU32())).toEqual(xs);
    expect(new Rng(124).nextU32()).not.toBe(xs[0]);
    const r = new Rng(7);
    const counts = new Array(10).fill(0);
    for (let i = 0; i < 100_000; i++) counts[r.int(10)]++;
    for (const c of counts) expect(Math.abs(c - 10_000)).toBeLessThan(500);
    const f = new Rng(1).nextFloat();
    expect(f).toBeGreaterThanOrEqual(0);
    expect(f).toBeLessThan(1);
  });
  test('fixed stream (guards against accidental changes to the generator)', () => {
    expect(permutation(10, 42)).toEqual(permutation(10, 42));
    expect([...permutation(10, 42)].sort((x, y) => x - y)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(deriveSeed(42, 0)).not.toBe(deriveSeed(42, 1));
    expect(() => new Rng(1.5)).toThrow(/safe integer/);
  });
});

describe('splitTrainEval', () => {
  const recs = Array.from({ length: 101 }, (_, i) => i);
  test('seeded, disjoint, complete, ceil(n * fraction)', () => {
    const s = splitTrainEval(recs, { evalFraction: 0.2, seed: 5 });
    expect(s.eval).toHaveLength(21);
    expect(s.train).toHaveLength(80);
    expect([...s.train, ...s.eval].sort((a, b) => a - b)).toEqual(recs);
    expect(splitTrainEval(recs, { evalFraction: 0.2, seed: 5 }).eval).toEqual(s.eval);
    expect(splitTrainEval(recs, { evalFraction: 0.2, seed: 6 }).eval).not.toEqual(s.eval);
    expect(s.eval).toEqual([...s.eval].sort((a, b) => a - b));
  });
  test('evalSize and bad arguments', () => {
    expect(splitTrainEval(recs, { evalSize: 10, seed: 1 }).eval).toHaveLength(10);
    expect(() => splitTrainEval(recs, { evalFraction: 1.5 })).toThrow(/Expected a number in \[0, 1\) for evalFraction but received 1.5/);
    expect(() => splitTrainEval(recs, { evalSize: 101 })).toThrow(/evalSize/);
    expect(() => splitTrainEval(recs, {})).toThrow(/neither/);
  });
});

describe('DataLoader', () => {
  const items = Array.from({ length: 10 }, (_, i) => i);
  test('covers every item each epoch, reshuffles per epoch', () => {
    const dl = new DataLoader(items, { batchSize: 3, seed: 1 });
    expect(dl.batchesPerEpoch).toBe(4);
    const e0 = [...dl.epoch()].map((b) => b.data);
    const e1 = [...dl.epoch()].map((b) => b.data);
    expect(e0.map((b) => b.length)).toEqual([3, 3, 3, 1]);
    expect(e0.flat().sort((a, b) => a - b)).toEqual(items);
    expect(e1.flat().sort((a, b) => a - b)).toEqual(items);
    expect(e0.flat()).not.toEqual(e1.flat());
    expect(dl.state()).toEqual({ epoch: 2, index: 0, seed: 1 });
  });
  test('dropLast and no shuffle', () => {
    const dl = new DataLoader(items, { batchSize: 3, shuffle: false, dropLast: true });
    expect([...dl.epoch()].map((b) => b.data)).toEqual([[0, 1, 2], [3, 4, 5], [6, 7, 8]]);
    expect(dl.next().epoch).toBe(1);
  });
  test('state/restore resumes exactly, through JSON', () => {
    const ref = new DataLoader(items, { batchSize: 4, seed: 9 });
    const seq = Array.from({ length: 9 }, () => ref.next().data);
    const a = new DataLoader(items, { batchSize: 4, seed: 9 });
    for (let i = 0; i < 4; i++) a.next();
    const saved = JSON.parse(JSON.stringify(a.state()));
    expect(saved).toEqual({ epoch: 1, index: 4, seed: 9 });
    const b = new DataLoader(items, { batchSize: 4, seed: 0 });
    b.restore(saved);
    expect(Array.from({ length: 5 }, () => b.next().data)).toEqual(seq.slice(4));
    expect(() => b.restore({ epoch: 0, index: 99, seed: 1 })).toThrow(/state.index/);
  });
  test('with a collator', () => {
    const exs = [{ inputIds: [1, 2], label: 0 }, { inputIds: [3], label: 1 }];
    const dl = new DataLoader(exs, { batchSize: 2, shuffle: false, collate: makeCollator({ padTokenId: 0 }) });
    const b = dl.next().data;
    expect([...b.inputIds]).toEqual([1, 2, 3, 0]);
    expect([...b.classLabels!]).toEqual([0, 1]);
  });
});

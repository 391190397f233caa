import { describe, expect, test } from 'vitest';
import { loadDataset } from '../../lib/data/dataset.js';
import { fx } from './helpers.js';

describe('loadDataset', () => {
  test('file with a seeded split', async () => {
    const d = await loadDataset({ path: fx('labelled.csv'), eval: { size: 1, seed: 3 } });
    expect(d.format).toBe('labelled');
    expect(d.train).toHaveLength(3);
    expect(d.eval).toHaveLength(1);
    const again = await loadDataset({ path: fx('labelled.csv'), eval: { size: 1, seed: 3 } });
    expect(again.eval).toEqual(d.eval);
  });
  test('separate eval file keeps the train format; skip counts add up', async () => {
    const d = await loadDataset({ path: fx('bad.jsonl'), onError: 'skip', eval: { path: fx('bad.jsonl') }, recordFormat: 'text' });
    expect(d.eval).toHaveLength(4);
    expect(d.train).toHaveLength(4);
    expect(d.skipped).toBe(4);
    await expect(loadDataset({ path: fx('labelled.csv'), eval: { path: fx('prompts.jsonl') } })).rejects.toThrow(/prompts\.jsonl:1: Expected .* for field "label" but received nothing/);
  });
  test('builtin', async () => {
    const d = await loadDataset({ path: 'builtin:spam-assassin' });
    expect(d.train.length + d.eval.length).toBe(6046);
    expect(d.format).toBe('labelled');
  });
});

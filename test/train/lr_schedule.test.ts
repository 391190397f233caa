import { describe, expect, test } from 'vitest';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { lrAt, lrLambda, makeLrSchedule, warmupFromRatio } from '../../lib/train/lr_schedule.js';

// Expected values worked out from transformers' lr_lambda formulas (optimization.py):
// warm-up: step / max(1, warmup); linear: max(0, (T - s) / max(1, T - w));
// cosine: max(0, 0.5 * (1 + cos(pi * num_cycles * 2 * progress))), progress = (s - w) / max(1, T - w).
describe('lr schedules (transformers formulas)', () => {
  const base = 1e-3;
  test('linear with warm-up', () => {
    const o = { schedule: 'linear' as const, baseLr: base, totalSteps: 110, warmupSteps: 10 };
    expect(lrAt(0, o)).toBe(0);
    expect(lrAt(5, o)).toBeCloseTo(0.5e-3, 15);
    expect(lrAt(10, o)).toBeCloseTo(1e-3, 15);
    expect(lrAt(60, o)).toBeCloseTo(0.5e-3, 15);
    expect(lrAt(109, o)).toBeCloseTo(1e-5, 15);
    expect(lrAt(110, o)).toBe(0);
    expect(lrAt(500, o)).toBe(0);
  });
  test('cosine with warm-up', () => {
    const o = { schedule: 'cosine' as const, baseLr: base, totalSteps: 110, warmupSteps: 10 };
    expect(lrAt(3, o)).toBeCloseTo(0.3e-3, 15);
    expect(lrAt(10, o)).toBeCloseTo(1e-3, 15);
    expect(lrAt(35, o)).toBeCloseTo(base * 0.5 * (1 + Math.SQRT1_2), 15);
    expect(lrAt(60, o)).toBeCloseTo(0.5e-3, 15);
    expect(lrAt(110, o)).toBeCloseTo(0, 15);
    // num_cycles 1: back up to the peak at the end
    expect(lrAt(110, { ...o, numCycles: 1 })).toBeCloseTo(1e-3, 15);
  });
  test('constant, with and without warm-up', () => {
    expect(lrAt(0, { schedule: 'constant', baseLr: base, totalSteps: 100 })).toBe(base);
    const o = { schedule: 'constant' as const, baseLr: base, totalSteps: 100, warmupSteps: 4 };
    expect([0, 1, 2, 3, 4, 99].map((s) => lrAt(s, o) / base)).toEqual([0, 0.25, 0.5, 0.75, 1, 1]);
  });
  test('no warm-up: linear starts at the peak', () => {
    expect(lrAt(0, { schedule: 'linear', baseLr: base, totalSteps: 100 })).toBe(base);
    expect(lrAt(0, { schedule: 'cosine', baseLr: base, totalSteps: 100 })).toBe(base);
  });
  test('warm-up ratio -> ceil(ratio * total)', () => {
    expect(warmupFromRatio(0.06, 1000)).toBe(60);
    expect(warmupFromRatio(0.1, 15)).toBe(2);
    const s = makeLrSchedule({ schedule: 'linear', baseLr: base, totalSteps: 15, warmupRatio: 0.1 });
    expect(s.warmupSteps).toBe(2);
    expect(s.lrAt(1)).toBeCloseTo(0.5e-3, 15);
    expect(s.lrAt(2)).toBeCloseTo(1e-3, 15);
  });
  test('lambda is pure and monotone in the right places', () => {
    const l = Array.from({ length: 101 }, (_, s) => lrLambda(s, 'cosine', 10, 100));
    for (let s = 1; s <= 10; s++) expect(l[s]!).toBeGreaterThanOrEqual(l[s - 1]!);
    for (let s = 11; s <= 100; s++) expect(l[s]!).toBeLessThanOrEqual(l[s - 1]!);
    expect(lrLambda(50, 'cosine', 10, 100)).toBe(lrLambda(50, 'cosine', 10, 100));
  });
  test('bad arguments', () => {
    expect(() => lrAt(0, { schedule: 'step' as 'linear', baseLr: 1, totalSteps: 10 })).toThrow(/Expected 'constant', 'linear' or 'cosine' for schedule but received "step"/);
    expect(() => lrAt(0, { schedule: 'linear', baseLr: 1, totalSteps: 0 })).toThrow(/totalSteps/);
    expect(() => lrAt(-1, { schedule: 'linear', baseLr: 1, totalSteps: 10 })).toThrow(/step/);
    expect(() => lrAt(0, { schedule: 'linear', baseLr: 1, totalSteps: 10, warmupSteps: 2, warmupRatio: 0.1 })).toThrow(/both/);
  });
});

// Fixture written with the Python stack (.venv: torch 2.13 + transformers 5.18):
//   opt = SGD([p], lr=1e-3); s = get_<name>_schedule_with_warmup(opt, 7, 53)
//   for step in range(60): record opt.param_groups[0]['lr']; opt.step(); s.step()
describe('matches transformers step by step', () => {
  const fixture = JSON.parse(
    readFileSync(join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'data', 'lr_schedules_transformers.json'), 'utf8'),
  ) as Record<'linear' | 'cosine' | 'constant', number[]>;
  for (const name of ['linear', 'cosine', 'constant'] as const) {
    test(name, () => {
      const s = makeLrSchedule({ schedule: name, baseLr: 1e-3, totalSteps: 53, warmupSteps: 7 });
      fixture[name].forEach((want, step) => expect(Math.abs(s.lrAt(step) - want)).toBeLessThan(1e-15));
    });
  }
});

/**
 * The Trainer releases its optimizer state (AdamW m and v: 2 x 4 bytes per trainable weight)
 * when fit() ends, completed or failed, seen through the public API only (memoryStats).
 */
import { describe, it, expect } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { GPT2, parseGPT2Config, manualSeed, Trainer, memoryStats, type TrainerOptions } from '../../lib/index.js';
import { dir as modelDir } from '../models/helpers.js';

function tinyGpt2(): GPT2 {
  manualSeed(11);
  const cfg = JSON.parse(readFileSync(join(modelDir('gpt2_lm'), 'config.json'), 'utf8')) as Record<string, unknown>;
  return new GPT2(parseGPT2Config(cfg), 'causal_lm').requiresGrad_(true);
}

const data = Array.from({ length: 8 }, (_, i) => {
  const ids = [1 + i, 2 + i, 3 + i, 4 + i, 5 + i, 6 + i];
  return { inputIds: ids, labels: ids };
});

describe('Trainer memory', () => {
  it('the optimizer state is alive during fit() and gone after it, also when fit() throws', async () => {
    const model = tinyGpt2();
    const trainableBytes = model.namedParameters().reduce((s, [, p]) => s + p.numel * 4, 0);
    const opts = (onStep?: () => void): TrainerOptions => ({
      model, task: 'causal_lm', train: data, padTokenId: 0, progress: 'none',
      settings: { maxSteps: 2, batchSize: 4, lr: 1e-3 }, callbacks: { onStep },
    });
    await new Trainer(opts()).fit(); // warm: caches the model keeps between forwards
    const live0 = memoryStats().liveBytes;

    let during = 0;
    const t = new Trainer(opts(() => { during = Math.max(during, memoryStats().liveBytes - live0); }));
    await t.fit();
    expect(during).toBeGreaterThanOrEqual(2 * trainableBytes); // m and v
    expect(memoryStats().liveBytes).toBe(live0);
    expect(() => t.optimizer).toThrow(/released/);

    const failing = new Trainer(opts(() => { throw new Error('stop here'); }));
    await expect(failing.fit()).rejects.toThrow('stop here');
    expect(memoryStats().liveBytes).toBe(live0);
    model.dispose();
  });
});

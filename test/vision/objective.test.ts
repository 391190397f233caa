/**
 * The image objective: a step's augmentation depends only on (seed, step, micro-batch), so a
 * resumed run draws exactly what the uninterrupted one would; evaluation is never augmented.
 */
import { describe, it, expect } from 'vitest';
import { loadPretrainedSync, tidy, manualSeed } from '../../lib/index.js';
import { ImageClassificationObjective } from '../../lib/train/objectives/image_cls.js';
import type { ImageExample } from '../../lib/data/images.js';
import { fixturePath } from './helpers.js';

function examples(n: number): ImageExample[] {
  manualSeed(3);
  return Array.from({ length: n }, (_, i) => ({
    pixels: Float32Array.from({ length: 3 * 19 * 17 }, (_, k) => Math.sin(k * 0.37 + i)),
    shape: [3, 19, 17] as [number, number, number],
    label: i % 3,
  }));
}

describe('ImageClassificationObjective', () => {
  it('same step -> same augmented loss; another step -> another; eval is deterministic and unaugmented', () => {
    const { model } = loadPretrainedSync(fixturePath('resnet_basic'), { task: 'image_cls' });
    model.eval();
    const ex = examples(6);
    const obj = new ImageClassificationObjective(model, { augment: { randomCrop: 3, horizontalFlip: true }, fill: [0, 0, 0], seed: 11 });
    const loss = (step: number) => tidy(() => obj.plan([ex], { step }).updates[0]![0]!().loss.item());
    expect(loss(5)).toBe(loss(5));
    expect(loss(5)).not.toBe(loss(6));
    const plain = new ImageClassificationObjective(model, { seed: 11 });
    const a = obj.evaluate(ex, { batchSize: 4, evalSplit: true }), b = plain.evaluate(ex, { batchSize: 4, evalSplit: true });
    expect(a).toEqual(b);
    expect(tidy(() => plain.plan([ex], { step: 1 }).updates[0]![0]!().loss.item())).toBeCloseTo(a.loss, 5);
    model.dispose();
  });
});

/**
 * With TUNEKIT_VISION_EXPORT=<dir> set (scripts/fixtures/make_vision_fixtures.py --interop), writes
 * our savePretrainedSync of each fixture image model there for transformers to load; otherwise it
 * checks the writer only (the folder is complete).
 */
import { describe, it, expect } from 'vitest';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadPretrainedSync, savePretrainedSync, readConfigSync } from '../../lib/index.js';
import { fixturePath } from './helpers.js';

const target = process.env.TUNEKIT_VISION_EXPORT;

describe('our image-model folders', () => {
  it('are written for transformers (config.json with architectures, model.safetensors)', () => {
    const root = target ?? mkdtempSync(join(tmpdir(), 'tk-vision-export-'));
    try {
      for (const name of ['resnet_basic', 'resnet_bottleneck', 'vit']) {
        const { model } = loadPretrainedSync(fixturePath(name), { task: 'image_cls' });
        savePretrainedSync(model, join(root, name));
        const cfg = readConfigSync(join(root, name));
        expect(cfg.architectures).toEqual([name === 'vit' ? 'ViTForImageClassification' : 'ResNetForImageClassification']);
        expect(cfg.num_labels).toBe(model.config.numLabels);
        expect(existsSync(join(root, name, 'model.safetensors'))).toBe(true);
        model.dispose();
      }
    } finally {
      if (!target) rmSync(root, { recursive: true, force: true });
    }
  });
});

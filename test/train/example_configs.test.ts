/**
 * Every config under examples/ passes the same validation as `tunekit train` (a typo in a field
 * name or value is refused there), and the AdaLoRA/LoRA pair the README compares keeps its
 * premise: the same layers, the same final budget, AdaLoRA's counted in parameters.
 */
import { describe, it, expect } from 'vitest';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import '../../lib/index.js';
import { loadConfig } from '../../lib/train/config.js';
import { DEFAULT_TRAIN_CONFIG } from '../../lib/cli/defaults.js';

const dir = join(__dirname, '..', '..', 'examples');

describe('example configs', () => {
  const files = readdirSync(dir).filter((f) => f.endsWith('.yaml'));
  it('there are examples to check', () => expect(files.length).toBeGreaterThan(5));
  for (const f of files) {
    it(`${f} is a valid config`, () => {
      expect(() => loadConfig(join(dir, f))).not.toThrow();
    });
  }
  it('spam-lora.yaml is the main job spelled out (what `tunekit train` runs with no config)', () => {
    const spelled = loadConfig(join(dir, 'spam-lora.yaml'));
    const main = loadConfig(structuredClone(DEFAULT_TRAIN_CONFIG) as unknown as Record<string, unknown>);
    for (const k of ['model', 'task', 'method', 'peft', 'dataset', 'training', 'output_dir'] as const) expect(spelled[k], k).toEqual(main[k]);
  });
  for (const [adaFile, loraFile] of [['spam-adalora.yaml', 'spam-lora-r8.yaml'], ['spam-adalora-r2.yaml', 'spam-lora-r2.yaml']]) {
    it(`${adaFile} ends at the parameter budget of ${loraFile} on the same layers, same scale and lr`, () => {
      const ada = loadConfig(join(dir, adaFile!));
      const lora = loadConfig(join(dir, loraFile!));
      const a = ada.peft as Record<string, number | string | string[]>, l = lora.peft as Record<string, number | string | string[]>;
      expect(a.target_r).toBe(l.r);
      expect(a.budget_unit).toBe('params');
      expect(a.target_modules).toEqual(l.target_modules);
      expect((a.lora_alpha as number) / (a.init_r as number)).toBe((l.lora_alpha as number) / (l.r as number));
      expect(ada.training.lr).toBe(lora.training.lr);
    });
  }
});

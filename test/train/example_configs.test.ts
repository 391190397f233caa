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

const dir = join(__dirname, '..', '..', 'examples');

describe('example configs', () => {
  const files = readdirSync(dir).filter((f) => f.endsWith('.yaml'));
  it('there are examples to check', () => expect(files.length).toBeGreaterThan(5));
  for (const f of files) {
    it(`${f} is a valid config`, () => {
      expect(() => loadConfig(join(dir, f))).not.toThrow();
    });
  }
  it('spam-adalora.yaml ends at the parameter budget of spam-lora-r8.yaml on the same layers', () => {
    const ada = loadConfig(join(dir, 'spam-adalora.yaml'));
    const lora = loadConfig(join(dir, 'spam-lora-r8.yaml'));
    const a = ada.peft as Record<string, unknown>, l = lora.peft as Record<string, unknown>;
    expect(a.target_r).toBe(l.r);
    expect(a.budget_unit).toBe('params');
    expect(a.target_modules).toEqual(l.target_modules);
  });
});

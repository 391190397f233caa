/**
 * lib/train/config.ts validates `peft:` blocks through the PEFT registry, which lib/peft/index.ts
 * fills as its methods' folders load. This file imports config.ts alone (vitest gives each test
 * file its own module graph), so it checks that config.ts's own import fills the registry before
 * it is read, and that no import cycle (lib/peft -> lib/train) can leave it half-initialised.
 */
import { describe, it, expect } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfig, methodNames } from '../../lib/train/config.js';

const LIB = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'lib');

describe('config.ts and the PEFT registry', () => {
  it('importing config.ts alone registers every method, in registry order', () => {
    expect(methodNames()).toEqual(['full', 'head_only', 'lora', 'qlora', 'adalora', 'prompt_tuning', 'p_tuning', 'prefix_tuning', 'reward', 'dpo', 'ppo']);
    expect(loadConfig({ model: 'builtin:gpt2-tiny', dataset: { path: 'builtin:sotu' }, method: 'p_tuning' }).peft).toMatchObject({ peft_type: 'P_TUNING', encoder_num_layers: 2 });
  });

  it('lib/peft imports nothing from lib/train, lib/rlhf or lib/cli (no cycle through config.ts)', () => {
    const files = (fs.readdirSync(path.join(LIB, 'peft'), { recursive: true }) as string[]).filter((f) => f.endsWith('.ts'));
    expect(files.length).toBeGreaterThan(20);
    const bad = files.filter((f) => /from '(\.\.\/)+(train|rlhf|cli|index)(\/|\.js')/.test(fs.readFileSync(path.join(LIB, 'peft', f), 'utf8')));
    expect(bad).toEqual([]);
  });
});

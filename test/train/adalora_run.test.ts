/**
 * An AdaLoRA job through runTraining (what `tunekit train` runs): the allocator prunes to the
 * parameter budget, the kept ranks per layer are printed at the end and drawn into ranks.svg in
 * the run folder, and they agree with the saved adapter's rank_pattern.
 */
import { describe, it, expect } from 'vitest';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import '../../lib/index.js';
import { loadConfig } from '../../lib/train/config.js';
import { runTraining } from '../../lib/train/run.js';
import { rankReportFromFolderSync, rankTable } from '../../lib/peft/adalora/index.js';

const CHAT = join(__dirname, '..', 'fixtures', 'chat', 'chat.jsonl');

describe('AdaLoRA run', () => {
  it('prints the kept ranks and writes ranks.svg beside the adapter', async () => {
    const out = mkdtempSync(join(tmpdir(), 'tunekit-adalora-run-'));
    const config = loadConfig({
      model: 'builtin:tunekit-gpt2-small', task: 'causal_lm', method: 'adalora',
      peft: { init_r: 4, target_r: 2, tinit: 1, tfinal: 2, deltaT: 1, budget_unit: 'params', init_lora_weights: 'lora', lora_alpha: 8, target_modules: ['c_attn', 'c_fc'] },
      dataset: { path: CHAT, max_length: 64, eval: { size: 1 } },
      training: { max_steps: 6, batch_size: 2, lr: 1e-3 }, output_dir: out, logging: { progress: 'none' },
    });
    const lines: string[] = [];
    const res = await runTraining(config, { log: (s) => lines.push(s) });
    expect(res.fit.steps).toBe(6);
    const report = rankReportFromFolderSync(join(out, 'adapter'));
    expect(report.rows).toHaveLength(8); // 4 layers x (c_attn, c_fc)
    expect(report.keptParameters).toBeLessThanOrEqual(report.loraParameters);
    expect(lines).toContain(rankTable(report));
    const svg = readFileSync(join(out, 'ranks.svg'), 'utf8');
    expect(svg).toContain(`${report.keptParameters.toLocaleString('en-US')} parameters`);
    rmSync(out, { recursive: true, force: true });
  });
});

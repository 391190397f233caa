/**
 * AdaLoRA in the Trainer: the Trainer calls the allocator and the regulariser by itself (a run
 * without any user callback still prunes to the target budget), a short real training run on the
 * tiny GPT-2 lowers the loss, and the trained adapter round-trips through its PEFT folder and
 * the compact LoRA export with the same logits.
 */
import { describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { AdaLoraModel, rankReportFromFolderSync, rankTable, rankChartSvg } from '../../lib/peft/adalora/index.js';
import { LoraModel } from '../../lib/peft/lora/model.js';
import { peftMethodFor } from '../../lib/peft/base/registry.js';
import { Trainer, type TrainExample } from '../../lib/train/trainer.js';
import { manualSeed } from '../../lib/nn/random.js';
import { gpt2, logitsOf, maxRel } from './adalora_helpers.js';

/** A tiny repetitive "language": sequences over 8 tokens with a fixed successor rule. */
function examples(n: number): TrainExample[] {
  const out: TrainExample[] = [];
  for (let i = 0; i < n; i++) {
    const ids = [3 + (i % 8)];
    for (let t = 1; t < 12; t++) ids.push(3 + ((ids[t - 1]! - 3) * 3 + 1) % 8);
    out.push({ inputIds: ids, labels: ids });
  }
  return out;
}

describe('AdaLoRA training', () => {
  it('the Trainer runs the allocator and regulariser by itself: ranks pruned to the target budget', async () => {
    manualSeed(3);
    const model = peftMethodFor('adalora').create(gpt2(), { init_r: 4, target_r: 2, tinit: 1, tfinal: 2, lora_alpha: 8 }, 'default') as AdaLoraModel;
    expect(model).toBeInstanceOf(AdaLoraModel);
    let regSeen = 0;
    const hooks = model.trainingHooks();
    expect(hooks.extraLoss).toBeDefined();
    expect(hooks.afterOptimizerStep).toBeDefined();
    const trainer = new Trainer({
      model, task: 'causal_lm', train: examples(16), padTokenId: 0, progress: 'none',
      settings: { maxSteps: 8, batchSize: 4, lr: 5e-3, logEvery: 100 },
      callbacks: { onStep: () => { regSeen++; } },
    });
    await trainer.fit();
    expect(regSeen).toBe(8);
    const cfg = model.adaloraConfig();
    expect(cfg.total_step).toBe(8); // taken from the trainer
    expect(cfg.rank_pattern).not.toBeNull();
    const kept = Object.values(cfg.rank_pattern!).map((r) => r.filter(Boolean).length);
    expect(kept.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(2 * 2); // target_r * layers
    expect(model.lastAllocation?.phase).toBe('frozen');
    for (const { path: p, ad } of model.svdAdapters()) {
      const e = ad.E.data() as Float32Array;
      cfg.rank_pattern![`${p}.lora_E`]!.forEach((k, i) => { if (!k) expect(e[i]).toBe(0); });
    }
  });

  it("budget_unit params (with init_lora_weights 'lora'): the kept ranks hold about the parameters of LoRA r = target_r, never more", async () => {
    manualSeed(4);
    const model = new AdaLoraModel(gpt2(), { init_r: 4, target_r: 2, tinit: 1, tfinal: 2, lora_alpha: 8, target_modules: ['c_attn', 'c_fc'], budget_unit: 'params', init_lora_weights: 'lora' });
    const trainer = new Trainer({
      model, task: 'causal_lm', train: examples(16), padTokenId: 0, progress: 'none',
      settings: { maxSteps: 10, batchSize: 4, lr: 5e-3, logEvery: 100 },
    });
    await trainer.fit();
    const cfg = model.adaloraConfig();
    let keptParams = 0, loraParams = 0, maxCost = 0;
    for (const { path: p, ad } of model.svdAdapters()) {
      const [r, inF] = ad.lora.A.shape as [number, number];
      const outF = ad.lora.B.shape[0]!;
      expect(r).toBe(4);
      const kept = cfg.rank_pattern![`${p}.lora_E`]!.filter(Boolean).length;
      keptParams += kept * (inF + outF + 1);
      loraParams += 2 * (inF + outF);
      maxCost = Math.max(maxCost, inF + outF + 1);
    }
    expect(model.lastAllocation!.budget).toBe(loraParams);
    expect(keptParams).toBeLessThanOrEqual(loraParams);
    expect(keptParams).toBeGreaterThan(loraParams - maxCost);
    // the rank report counts the same, from the model and from the saved folder
    const report = model.rankReport();
    expect(report.keptParameters).toBe(keptParams);
    expect(report.loraParameters).toBe(loraParams);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ada-params-'));
    model.saveAdapterSync(dir);
    const saved = JSON.parse(fs.readFileSync(path.join(dir, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
    expect(saved.budget_unit).toBe('params');
    expect(AdaLoraModel.fromPretrainedSync(gpt2(), dir).adaloraConfig().budget_unit).toBe('params');
    expect(rankReportFromFolderSync(dir)).toEqual(report);
    const table = rankTable(report);
    expect(table.split('\n')).toHaveLength(2 + report.rows.length + 1);
    expect(table).toContain(`parameters kept ${keptParams.toLocaleString('en-US')}`);
    const svg = rankChartSvg(report);
    expect(svg.match(/fill="#1f77b4"/g)).toHaveLength(report.rows.length);
    const lines = await model.writeRunReport(dir);
    expect(lines[0]).toBe(table);
    expect(fs.readFileSync(path.join(dir, 'ranks.svg'), 'utf8')).toBe(svg);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('a short run on the tiny GPT-2 lowers the loss; the adapter round-trips (PEFT folder, compact LoRA)', async () => {
    manualSeed(5);
    const model = new AdaLoraModel(gpt2(), { init_r: 6, target_r: 3, tinit: 4, tfinal: 6, total_step: 30, lora_alpha: 16, target_modules: ['c_attn', 'c_fc'] });
    const losses: number[] = [];
    const trainer = new Trainer({
      model, task: 'causal_lm', train: examples(32), padTokenId: 0, progress: 'none',
      settings: { maxSteps: 30, batchSize: 8, lr: 2e-2, logEvery: 100, schedule: 'constant' },
      callbacks: { onStep: (s) => losses.push(s.loss) },
    });
    await trainer.fit();
    const first = (losses[0]! + losses[1]!) / 2, last = (losses[28]! + losses[29]!) / 2;
    expect(last).toBeLessThan(first * 0.7);
    const cfg = model.adaloraConfig();
    const kept = Object.values(cfg.rank_pattern!).map((r) => r.filter(Boolean).length);
    expect(kept.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(3 * 4);
    model.eval();
    const want = logitsOf(model);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ada-train-'));
    model.saveAdapterSync(path.join(dir, 'adapter'));
    const back = AdaLoraModel.fromPretrainedSync(gpt2(), path.join(dir, 'adapter'));
    expect(maxRel(logitsOf(back), want)).toBeLessThan(1e-5);
    const { ranks, r } = model.exportCompactLoraSync(path.join(dir, 'compact'));
    expect(Object.values(ranks).every((k) => k >= 1 && k <= r)).toBe(true);
    const compact = LoraModel.fromPretrainedSync(gpt2(), path.join(dir, 'compact'));
    expect(maxRel(logitsOf(compact), want)).toBeLessThan(1e-4);
    fs.rmSync(dir, { recursive: true, force: true });
  });
});

/**
 * PEFT loads the folders OUR code writes. With TUNEKIT_ADALORA_EXPORT=<dir> this writes
 * AdaLoRA folders (full rank; pruned by a rank pattern, one layer with no rank left) and a
 * compact LoRA export, each with our logits (scripts/fixtures/make_adalora_fixtures.py --interop
 * loads them with PEFT and records python_loads_ours.json). Without it, it checks that record and
 * that the same folders still come out of our code with the same logits.
 */
import { describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { AdaLoraModel } from '../../lib/peft/adalora/index.js';
import { LoraModel } from '../../lib/peft/lora/model.js';
import { manualSeed } from '../../lib/nn/random.js';
import { noGrad } from '../../lib/autograd/tape.js';
import { ADA_FIXTURES, INPUT_IDS, gpt2, logitsOf, maxRel, readJson } from './adalora_helpers.js';

function build(): AdaLoraModel {
  manualSeed(11);
  const m = new AdaLoraModel(gpt2(), { init_r: 5, target_r: 2, total_step: 20, tinit: 2, lora_alpha: 10, target_modules: ['c_attn', 'c_fc', 'c_proj'], init_lora_weights: false });
  noGrad(() => {
    for (const { ad } of m.svdAdapters()) for (const t of [ad.lora.A, ad.lora.B]) t.copyFrom((t.data() as Float32Array).map((v) => v * 15));
  });
  return m;
}

function prune(m: AdaLoraModel): void {
  const cfg = m.adaloraConfig();
  cfg.rank_pattern = {};
  m.svdAdapters().forEach(({ path: p, ad }, li) => {
    const row = Array.from({ length: 5 }, (_, i) => li === 1 ? false : (i + li) % 3 !== 0);
    cfg.rank_pattern![`${p}.lora_E`] = row;
    noGrad(() => ad.E.copyFrom((ad.E.data() as Float32Array).map((v, i) => (row[i] ? v : 0))));
  });
}

function writeAll(dir: string): Record<string, Float32Array> {
  const out: Record<string, Float32Array> = {};
  const full = build();
  full.saveAdapterSync(path.join(dir, 'ours_full'));
  out.ours_full = logitsOf(full);
  const pruned = build();
  prune(pruned);
  pruned.saveAdapterSync(path.join(dir, 'ours_pruned'));
  out.ours_pruned = logitsOf(pruned);
  pruned.exportCompactLoraSync(path.join(dir, 'ours_compact'));
  out.ours_compact = out.ours_pruned;
  for (const [name, logits] of Object.entries(out)) {
    fs.writeFileSync(path.join(dir, name, 'ours_logits.json'), JSON.stringify({ input_ids: INPUT_IDS, logits: Array.from(logits) }));
  }
  return out;
}

describe('PEFT loads our AdaLoRA folders', () => {
  const exportDir = process.env.TUNEKIT_ADALORA_EXPORT;
  it.runIf(exportDir)('writes the folders for the Python check', () => {
    writeAll(exportDir!);
  });

  it.skipIf(exportDir)('recorded: PEFT reproduced our logits from every folder (max |diff| < 1e-4)', () => {
    const rec = readJson<{ results: Record<string, { peft_type: string; max_abs_diff: number; ok: boolean; shapes: Record<string, number[]> }> }>(path.join(ADA_FIXTURES, 'python_loads_ours.json'));
    expect(Object.keys(rec.results).sort()).toEqual(['ours_compact', 'ours_full', 'ours_pruned']);
    for (const [name, r] of Object.entries(rec.results)) {
      expect(r.ok, name).toBe(true);
      expect(r.max_abs_diff, name).toBeLessThan(1e-4);
    }
    expect(rec.results.ours_full!.peft_type).toBe('ADALORA');
    expect(rec.results.ours_compact!.peft_type).toBe('LORA');
    // PEFT resized the pruned layers to their kept ranks, and the empty one to rank 0
    const shapes = Object.values(rec.results.ours_pruned!.shapes).map((s) => s.join('x'));
    expect(shapes).toContain('0x1');
  });

  it.skipIf(exportDir)('our folders still round-trip through our loaders with the logits PEFT was checked on', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ada-io-'));
    const logits = writeAll(dir);
    expect(maxRel(logitsOf(AdaLoraModel.fromPretrainedSync(gpt2(), path.join(dir, 'ours_full'))), logits.ours_full!)).toBeLessThan(1e-5);
    expect(maxRel(logitsOf(AdaLoraModel.fromPretrainedSync(gpt2(), path.join(dir, 'ours_pruned'))), logits.ours_pruned!)).toBeLessThan(1e-5);
    expect(maxRel(logitsOf(LoraModel.fromPretrainedSync(gpt2(), path.join(dir, 'ours_compact'))), logits.ours_compact!)).toBeLessThan(1e-4);
    // the pruned/full logits differ (the pattern matters)
    expect(maxRel(logits.ours_full!, logits.ours_pruned!)).toBeGreaterThan(1e-3);
    fs.rmSync(dir, { recursive: true, force: true });
  });
});

/**
 * Loss terms compose: the objective's loss, the PEFT method's own term (AdaLoRA's orthogonal
 * regulariser, from PeftModel.trainingHooks().extraLoss) and the user's `extraLoss` callback are
 * added. A user term used to replace the regulariser (`callbacks?.extraLoss?.() ??
 * hooks.extraLoss?.()`): AdaLoRA then trained as if orth_reg_weight were 0.
 */
import { describe, it, expect, afterEach } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import '../../lib/index.js';
import '../../lib/peft/index.js';
import { peftMethodFor } from '../../lib/peft/base/registry.js';
import type { AdaLoraModel } from '../../lib/peft/adalora/model.js';
import { full } from '../../lib/tensor/creation.js';
import type { Tensor } from '../../lib/tensor/tensor.js';
import { manualSeed } from '../../lib/nn/random.js';
import { Trainer, type TrainExample } from '../../lib/train/trainer.js';
import { readMetrics } from '../../lib/train/metrics_log.js';
import { gpt2 } from '../peft/adalora_helpers.js';

const dirs: string[] = [];
afterEach(() => {
  while (dirs.length) fs.rmSync(dirs.pop()!, { recursive: true, force: true });
});

const data: TrainExample[] = Array.from({ length: 8 }, (_, i) => {
  const ids = Array.from({ length: 10 }, (_, t) => ((i * 5 + t * 3) % 90) + 3);
  return { inputIds: ids, labels: ids };
});

/** Gradients of the first update of an AdaLoRA run, and its metrics. */
async function firstUpdate(orthRegWeight: number, userTerm: number | null): Promise<{ grads: Map<string, Float32Array>; reg: number; extraLoss: unknown }> {
  manualSeed(3);
  const model = peftMethodFor('adalora').create(gpt2(), { init_r: 4, target_r: 2, tinit: 1, tfinal: 2, lora_alpha: 8, orth_reg_weight: orthRegWeight }, 'default') as AdaLoraModel;
  let grads = new Map<string, Float32Array>();
  let reg = NaN;
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'tunekit-terms-'));
  dirs.push(out);
  const trainer = new Trainer({
    model, task: 'causal_lm', train: data, padTokenId: 0, progress: 'none', outputDir: out,
    settings: { maxSteps: 4, batchSize: 4, lr: 1e-3, logEvery: 1, seed: 5 },
    callbacks: {
      // a constant: it adds to the loss but nothing to the gradients
      extraLoss: userTerm === null ? undefined : () => {
        if (Number.isNaN(reg)) reg = model.trainingHooks().extraLoss!()!.item();
        return full([], userTerm, 'f32') as Tensor<'f32'>;
      },
      afterOptimizerStep: (update) => {
        if (update === 1) grads = new Map(model.trainableParameters().map(([n, p]) => [n, (p.grad!.toTypedArray() as Float32Array).slice()]));
      },
    },
  });
  await trainer.fit();
  const first = readMetrics(path.join(out, 'metrics.jsonl')).find((r) => r.split === 'train' && r.step === 1)!;
  model.dispose();
  return { grads, reg, extraLoss: first.extra_loss };
}

function maxDiff(a: Map<string, Float32Array>, b: Map<string, Float32Array>): number {
  let d = 0;
  for (const [n, g] of a) {
    const h = b.get(n)!;
    for (let i = 0; i < g.length; i++) d = Math.max(d, Math.abs(g[i]! - h[i]!));
  }
  return d;
}

describe('loss terms', () => {
  it("AdaLoRA's orthogonal regulariser still applies when the user adds an extraLoss; the terms are summed", async () => {
    const methodOnly = await firstUpdate(0.5, null);
    const withUser = await firstUpdate(0.5, 0.25);
    const noRegulariser = await firstUpdate(0, null);
    // the regulariser moves the gradients (otherwise this test would show nothing) ...
    expect(maxDiff(methodOnly.grads, noRegulariser.grads)).toBeGreaterThan(1e-4);
    // ... and a user term (a constant) leaves them exactly as the method's own term made them
    expect(maxDiff(withUser.grads, methodOnly.grads)).toBe(0);
    // metrics.jsonl records the extra terms: the regulariser alone, or regulariser + user term
    expect(withUser.reg).toBeGreaterThan(0);
    expect(methodOnly.extraLoss).toBeCloseTo(withUser.reg, 6);
    expect(withUser.extraLoss).toBeCloseTo(withUser.reg + 0.25, 6);
  });
});

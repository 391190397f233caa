/**
 * AdaLoRA's rank allocator follows Module.to(): a model moved after its allocator exists (the
 * allocator holds the adapters' A, E, B and its own EMAs, scores and masks) goes on allocating on
 * the new device exactly as a model that never moved. On the loopback device
 * (TUNEKIT_LOOPBACK_DEVICE=1: cuda:0 served by the CPU kernels), so the figures must be equal to
 * the bit. Before the fix the allocator kept the disposed CPU tensors and the next step failed.
 */
import '../train/loopback_env.js'; // first: the switch is read when lib/tensor loads
import { afterAll, describe, expect, it } from 'vitest';
import { AdaLoraModel } from '../../lib/peft/adalora/index.js';
import { tensor } from '../../lib/tensor/creation.js';
import type { Tensor } from '../../lib/tensor/tensor.js';
import { backward } from '../../lib/autograd/tape.js';
import { manualSeed } from '../../lib/nn/random.js';
import { LOOPBACK_DEVICE } from '../../lib/tensor/loopback.js';
import { gpt2, INPUT_IDS } from './adalora_helpers.js';

afterAll(() => {
  // this file's modules keep the loopback (read at load); a later file in this process must not get it
  delete process.env.TUNEKIT_LOOPBACK_DEVICE;
});

function adalora(): AdaLoraModel {
  manualSeed(11);
  // init false: random E, so A and B get gradients from the first step; the schedule masks at every step
  return new AdaLoraModel(gpt2(), { init_r: 4, target_r: 2, lora_alpha: 8, target_modules: ['c_attn', 'c_fc'], init_lora_weights: false, total_step: 6, tinit: 0, tfinal: 2, deltaT: 1 });
}

/** One step's gradients (the sum of the logits) on the model's device, then update_and_allocate. */
function step(model: AdaLoraModel, n: number): unknown {
  const device = model.device;
  const shape = [INPUT_IDS.length, INPUT_IDS[0]!.length];
  const inputIds = tensor(Int32Array.from(INPUT_IDS.flat()), shape, 'i32', device) as Tensor<'i32'>;
  const attentionMask = tensor(new Int32Array(shape[0]! * shape[1]!).fill(1), shape, 'i32', device) as Tensor<'i32'>;
  backward(model.forward({ inputIds, attentionMask }).logits.sum());
  inputIds.dispose();
  attentionMask.dispose();
  const info = model.updateAndAllocate(n);
  for (const [, p] of model.trainableParameters()) {
    p.grad?.dispose();
    p.grad = null;
  }
  const E = model.svdAdapters().map(({ ad }) => Array.from(ad.E.toTypedArray() as Float32Array));
  const scores = [...model.rankAllocator().tripletScores()];
  return { info, E, scores, pattern: model.adaloraConfig().rank_pattern };
}

describe('AdaLoRA on a device', () => {
  it('the rank allocator follows Module.to: moved after step 1 (and back after step 4), the run equals the CPU run', () => {
    expect(LOOPBACK_DEVICE).toBe(true);
    const still = adalora();
    const moved = adalora();
    const want: unknown[] = [];
    const got: unknown[] = [];
    for (let n = 1; n <= 6; n++) {
      // the allocator exists from step 1 on: the moves below happen after it
      if (n === 2) moved.to('cuda');
      if (n === 5) moved.to('cpu');
      want.push(step(still, n));
      got.push(step(moved, n));
      expect(moved.device).toBe(n >= 2 && n <= 4 ? 'cuda:0' : 'cpu');
    }
    // the schedule masked, froze the pattern (step 4 = T - tfinal) and re-applied it
    expect((want as { info: { phase: string } }[]).map((w) => w.info.phase)).toEqual(['mask', 'mask', 'mask', 'freeze', 'frozen', 'frozen']);
    expect(got).toEqual(want);
    still.dispose();
    moved.dispose();
  });
});

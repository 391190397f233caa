/**
 * QLoRA vs LoRA training step on GPT-2 small (124M, random init), batch 4 x 128, causal LM:
 * median step time and peak native memory. Not a test (bench figures go to bench/RESULTS.md).
 *   npx tsx test/quant/bench_step.ts [steps=3]
 */
import '../../lib/index.js';
import '../../lib/peft/index.js';
import { native } from '../../lib/native.js';
import { architectureFor } from '../../lib/models/registry.js';
import { LoraModel } from '../../lib/peft/lora/model.js';
import { backward } from '../../lib/autograd/tape.js';
import * as F from '../../lib/autograd/ops.js';
import { tidy } from '../../lib/tensor/scope.js';
import { tensor } from '../../lib/tensor/creation.js';
import type { Tensor } from '../../lib/tensor/tensor.js';
import { manualSeed } from '../../lib/nn/random.js';
import { AdamW } from '../../lib/train/optimizer.js';
import { quantizeModelSync } from '../../lib/quant/quantize.js';

const steps = Number(process.argv[2] ?? 3);
const B = 4, T = 128;
const raw = { model_type: 'gpt2', n_embd: 768, n_layer: 12, n_head: 12, n_positions: 1024, vocab_size: 50257, n_inner: null, layer_norm_epsilon: 1e-5, activation_function: 'gelu_new', attn_pdrop: 0, resid_pdrop: 0, embd_pdrop: 0 };

function run(method: 'lora' | 'qlora') {
  manualSeed(1);
  const arch = architectureFor('gpt2');
  const base = arch.build(arch.parseConfig(raw), 'causal_lm');
  let bytes = '';
  if (method === 'qlora') {
    const r = quantizeModelSync(base, { blocksize: 64, doubleQuant: true });
    bytes = `weights ${(r.weightBytesBefore / 2 ** 20).toFixed(0)} -> ${(r.weightBytesAfter / 2 ** 20).toFixed(0)} MiB (${r.bytesPerParam.toFixed(4)} B/param), model ${(r.bytesBefore / 2 ** 20).toFixed(0)} -> ${(r.bytesAfter / 2 ** 20).toFixed(0)} MiB`;
  }
  const lora = new LoraModel(base, { r: 64, lora_alpha: 16, lora_dropout: 0.05, target_modules: 'all-linear' });
  lora.train();
  const opt = new AdamW(lora.trainableParameters(), { lr: 2e-4 });
  const ids = Int32Array.from({ length: B * T }, (_, i) => (i * 7919) % 50257);
  const times: number[] = [];
  native.resetPeakMemory();
  const live0 = native.memoryStats().liveBytes;
  for (let s = 0; s <= steps; s++) {
    const t0 = performance.now();
    tidy(() => {
      const out = lora.forward({ inputIds: tensor(ids, [B, T], 'i32') as Tensor<'i32'> });
      const labels = Int32Array.from(ids, (_, i) => (i % T === T - 1 ? -100 : ids[i + 1]!));
      backward(F.crossEntropy(F.reshape(out.logits, [-1, 50257]), tensor(labels, [B * T], 'i32') as Tensor<'i32'>));
    });
    opt.step();
    for (const [, p] of opt.params) { p.grad?.dispose(); p.grad = null; }
    if (s > 0) times.push(performance.now() - t0); // step 0 warms up
  }
  const peak = native.memoryStats().peakBytes;
  times.sort((a, b) => a - b);
  const med = times[Math.floor(times.length / 2)]!;
  console.log(`${method}: median step ${(med / 1000).toFixed(2)} s (${times.map((t) => (t / 1000).toFixed(2)).join(', ')}), peak native ${(peak / 2 ** 20).toFixed(0)} MiB (live before steps ${(live0 / 2 ** 20).toFixed(0)} MiB) ${bytes}`);
  lora.dispose();
  return { med, peak };
}

console.log(`threads ${native.getNumThreads()}, GEMM ${native.gemmKernelName()}, load ${(await import('node:os')).loadavg().map((x) => x.toFixed(2)).join(' ')}`);
const a = run('lora');
const b = run('qlora');
console.log(`QLoRA / LoRA step time: ${(b.med / a.med).toFixed(3)}x; peak memory ${(b.peak / a.peak).toFixed(3)}x`);

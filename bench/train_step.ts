/**
 * One whole process per measurement: builds a random-init GPT-2 (transformers' GPT2Config()
 * sizes unless told otherwise), optionally wraps it in LoRA, and times full training steps
 * (forward, shifted cross-entropy, backward, grad-norm clipping, AdamW, zero grad) on random
 * token ids. Prints one JSON line on stdout. Mirrors bench/reference/peft_step.py.
 *
 *   node bench/.out/train_step.js --mode lora|full --batch 4 --seq 128 --steps 5 --warmup 2
 *        [--model small|medium|tiny|mini] [--threads 2] [--fixed-batch] [--lr x]
 *   node bench/.out/train_step.js --mode mainjob --batch 16 --seq 128   the main job's step: the built-in
 *        base (tunekit-gpt2-small) with its seq_cls head and the main job's LoRA (r 8, alpha 16,
 *        dropout 0.05 on wte, c_attn, c_proj, c_fc), cross-entropy on a label per sequence
 * TUNEKIT_COMPUTE_DTYPE=bf16 in the environment: frozen-weight products on the bf16 GEMM.
 *
 * For --mode lora|full it also prints the step's GEMM bound, measured in the same process: the
 * step's matrix-product work (stepGflop, counted below) over our GEMM's rate on a 2048^3 product
 * of the step's dtype (gemmGflops), as tokens/s (boundTokensPerSec), and the step's share of it.
 */
import { parseArgs } from 'node:util';
import {
  GPT2, parseGPT2Config, LoraModel, AdamW, clipGradNorm, backward, noGrad, tidy, tensor, randn, zeros, ones,
  manualSeed, nextSeed, setNumThreads, memoryStats, ops as F, loadPretrainedSync, resolveModelPath, type Tensor,
} from 'tunekit';
import { gemmStepGflop, measureGemmGflops } from './gemm_bound.js';

export const MODEL_SIZES: Record<string, { n_embd: number; n_layer: number; n_head: number }> = {
  tiny: { n_embd: 128, n_layer: 2, n_head: 2 },
  mini: { n_embd: 384, n_layer: 6, n_head: 6 },
  small: { n_embd: 768, n_layer: 12, n_head: 12 },
  medium: { n_embd: 1024, n_layer: 24, n_head: 16 },
};

const { values } = parseArgs({
  options: {
    mode: { type: 'string', default: 'lora' },
    batch: { type: 'string', default: '4' },
    seq: { type: 'string', default: '128' },
    steps: { type: 'string', default: '5' },
    warmup: { type: 'string', default: '2' },
    model: { type: 'string', default: 'small' },
    threads: { type: 'string', default: '2' },
    seed: { type: 'string', default: '0' },
    lr: { type: 'string', default: '' },
    'fixed-batch': { type: 'boolean', default: false },
  },
});
const mode = values.mode!, B = +values.batch!, T = +values.seq!, steps = +values.steps!, warmup = +values.warmup!;
const mainJob = mode === 'mainjob';
const size = MODEL_SIZES[values.model!];
if (!size || (mode !== 'lora' && mode !== 'full' && !mainJob)) throw new Error(`bad --model/--mode: ${values.model} ${mode}`);
setNumThreads(+values.threads!);
const V = mainJob ? 8192 : 50257;
const cfg = parseGPT2Config({
  model_type: 'gpt2', vocab_size: V, n_positions: 1024, ...size, activation_function: 'gelu_new',
  resid_pdrop: 0.1, embd_pdrop: 0.1, attn_pdrop: 0.0, layer_norm_epsilon: 1e-5, tie_word_embeddings: true,
});
manualSeed(+values.seed!);
const base = mainJob ? (loadPretrainedSync(resolveModelPath('builtin:tunekit-gpt2-small'), { task: 'seq_cls', numLabels: 2 }).model as GPT2) : new GPT2(cfg, 'causal_lm');
if (!mainJob) noGrad(() => {
  for (const [name, p] of base.namedParameters()) {
    const init = name.includes('ln_') && name.endsWith('.weight') ? ones(p.shape) : p.ndim >= 2 ? randn(p.shape, { seed: nextSeed(), std: 0.02 }) : zeros(p.shape);
    p.assign(init);
    init.dispose();
  }
});
let model: GPT2 | LoraModel;
if (mainJob) {
  model = new LoraModel(base, { r: 8, lora_alpha: 16, lora_dropout: 0.05, target_modules: ['wte', 'c_attn', 'c_proj', 'c_fc'] });
} else if (mode === 'lora') {
  model = new LoraModel(base, { r: 8, lora_alpha: 16, lora_dropout: 0.0, target_modules: ['c_attn'] });
} else {
  base.requiresGrad_(true);
  model = base;
}
model.train();
const params = model.trainableParameters();
const lr = values.lr ? +values.lr : mainJob ? 2e-3 : mode === 'lora' ? 2e-4 : 5e-5;
const opt = new AdamW(params, { lr, weightDecay: mainJob ? 0.01 : 0.0 });

// random ids, a fixed stream per seed
let s = (+values.seed! * 2654435761 + 12345) >>> 0;
const rnd = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) % V);
const ids = new Int32Array(B * T);
const labels = new Int32Array(B * T);

let drawn = false;
function step(): number {
  if (!values['fixed-batch'] || !drawn) for (let i = 0; i < ids.length; i++) ids[i] = rnd();
  drawn = true;
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) labels[b * T + t] = t + 1 < T ? ids[b * T + t + 1]! : -100;
  }
  const loss = tidy(() => {
    const out = model.forward({ inputIds: tensor(ids, [B, T]) as Tensor<'i32'>, attentionMask: tensor(new Int32Array(B * T).fill(1), [B, T]) as Tensor<'i32'> });
    const l = mainJob
      ? F.crossEntropy(out.logits, tensor(Int32Array.from({ length: B }, (_, b) => ids[b * T]! % 2), [B]) as Tensor<'i32'>)
      : F.crossEntropy(F.reshape(out.logits, [-1, V]), tensor(labels, [B * T]) as Tensor<'i32'>);
    const v = l.item();
    backward(l);
    return v;
  });
  clipGradNorm(opt.params, 1.0);
  opt.step();
  opt.zeroGrad();
  return loss;
}

// the profiler's totals live in dist/native.js (the same module instance 'tunekit' loads)
type Prof = { nativeProfile(): { name: string; calls: number; ms: number }[] | null; resetNativeProfile(): void };
const prof = (await import(new URL('../../dist/native.js', import.meta.url).href)) as Prof;

const times: number[] = [];
const cpu: number[] = [];
const losses: number[] = [];
for (let i = 0; i < warmup + steps; i++) {
  if (i === warmup) prof.resetNativeProfile();
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  losses.push(step());
  const dt = (performance.now() - t0) / 1000;
  const dc = process.cpuUsage(c0);
  if (i >= warmup) {
    times.push(dt);
    cpu.push((dc.user + dc.system) / 1e6);
  }
}
const profile = prof.nativeProfile()?.map((e) => ({ name: e.name, calls: e.calls / steps, msPerStep: e.ms / steps }));
const sorted = [...times].sort((a, b) => a - b);
const median = sorted[Math.floor(sorted.length / 2)]!;
const mean = times.reduce((a, b) => a + b, 0) / times.length;
const dtype = process.env.TUNEKIT_COMPUTE_DTYPE === 'bf16' ? 'bf16' : 'f32';
// the bound of this very run: our GEMM measured right after the steps, on the same threads
let bound = {};
if (!mainJob) {
  const stepGflop = gemmStepGflop({ mode: mode as 'lora' | 'full', B, T, C: size.n_embd, L: size.n_layer, V, r: 8 });
  const gemmGflops = measureGemmGflops(dtype);
  const boundTokensPerSec = (B * T) / (stepGflop / gemmGflops);
  bound = { stepGflop, gemmGflops, boundTokensPerSec, shareOfBound: (B * T) / median / boundTokensPerSec };
}
process.stdout.write(JSON.stringify({
  impl: 'tunekit', mode, model: values.model, batch: B, seq: T, threads: +values.threads!,
  dtype, ...bound,
  stepSeconds: times, medianStep: median, tokensPerSec: (B * T) / median, meanTokensPerSec: (B * T) / mean,
  peakRssMB: process.resourceUsage().maxRSS / 1024, nativePeakMB: memoryStats().peakBytes / 2 ** 20,
  cpuSecondsPerStep: cpu.reduce((a, b) => a + b, 0) / cpu.length,
  trainable: params.reduce((a, [, p]) => a + p.numel, 0), losses, ...(profile ? { profile } : {}),
}) + '\n');

#!/usr/bin/env node
/**
 * Whole training steps on the GPU against the CPU (docs/cuda.md, issue #20): the same LoRA job
 * (GPT-2-shaped model, LoRA on c_attn / c_proj / c_fc with lora_dropout, AdamW) run for a few
 * steps with `training.device: cpu` and with `cuda`, same seed and data; the per-step training
 * losses (metrics.jsonl, logged every step) must agree within a relative tolerance, and the
 * tokens/s of both runs are printed. The kernels each step runs are checked one by one, without
 * Node, by scripts/gpu-check.sh; this script checks that they compose into a training step.
 *
 *   node scripts/gpu-train-check.mjs [--model builtin:tunekit-gpt2-small | <folder of a GPT-2 checkpoint>]
 *                                    [--steps 5] [--batch 4] [--max-length 128] [--tol 2e-3] [--device cuda]
 *
 * --device names the device compared with the CPU (default cuda; `--device cpu` runs the script's
 * own logic on a machine without a GPU: two CPU runs, which must agree exactly).
 *
 * Needs dist/ (npx tsc -p tsconfig.build.json), node_modules and an addon built with the CUDA
 * backend (npm run build:cuda). Exit status: 0 the losses agree, 1 they do not (or a run failed),
 * 2 no usable CUDA device (cudaInfo's reason printed).
 *
 * Why a tolerance and not equality: the CUDA kernels sum in other orders than the CPU's (GEMM
 * tiles, atomics in the embedding and norm-weight gradients), so values differ in the last bits
 * and the differences grow through 5 optimizer steps; dropout masks are bit-identical on both.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith('--') ? [...acc, [a.slice(2), all[i + 1]]] : acc), []),
);
const model = args.model ?? 'builtin:tunekit-gpt2-small';
const steps = Number(args.steps ?? 5);
const batch = Number(args.batch ?? 4);
const maxLength = Number(args['max-length'] ?? 128);
const tol = Number(args.tol ?? 2e-3);
const device = args.device ?? 'cuda';

const tk = await import(join(ROOT, 'dist', 'index.js'));
const info = tk.backendInfo();
if (device !== 'cpu' && (!info.cuda?.compiled || info.cuda.devices === 0)) {
  console.log(`${info.cuda?.reason ?? 'no CUDA device: this addon has no CUDA backend (npm run build:cuda)'}`);
  process.exit(2);
}

async function run(dev) {
  const out = mkdtempSync(join(tmpdir(), `tunekit-gpu-train-${dev}-`));
  const config = tk.loadConfig({
    model,
    task: 'causal_lm',
    method: 'lora',
    peft: { r: 8, lora_alpha: 16, lora_dropout: 0.1, target_modules: ['c_attn', 'c_proj', 'c_fc'] },
    dataset: { path: join(ROOT, 'test', 'fixtures', 'chat', 'chat.jsonl'), max_length: maxLength },
    training: { max_steps: steps, batch_size: batch, lr: 1e-3, seed: 42, device: dev },
    output_dir: out,
    logging: { every: 1, progress: 'none', plot: false },
  });
  const t0 = performance.now();
  const res = await tk.runTraining(config, { log: () => {} });
  const seconds = (performance.now() - t0) / 1000;
  const losses = readFileSync(join(out, 'metrics.jsonl'), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l))
    .filter((r) => r.split === 'train' && typeof r.loss === 'number')
    .map((r) => [r.step, r.loss]);
  rmSync(out, { recursive: true, force: true });
  return { losses, tokensPerSecond: res.fit.tokensPerSecond, seconds };
}

let failed = false;
const results = {};
for (const [key, d] of [['cpu', 'cpu'], ['other', device]]) {
  try {
    results[key] = await run(d);
  } catch (e) {
    console.log(`FAIL ${d} run threw: ${e.code ?? ''} ${e.message}`);
    failed = true;
  }
}
if (results.cpu && results.other) {
  console.log(`model ${model}, ${steps} LoRA steps, batch ${batch}, max_length ${maxLength}; relative tolerance ${tol}`);
  console.log(`| step | cpu loss | ${device} loss | relative difference |`);
  console.log('|---:|---:|---:|---:|');
  const other = new Map(results.other.losses);
  if (results.cpu.losses.length !== steps || results.other.losses.length !== steps) {
    console.log(`FAIL expected ${steps} train losses, got cpu ${results.cpu.losses.length} and ${device} ${results.other.losses.length}`);
    failed = true;
  }
  for (const [step, l] of results.cpu.losses) {
    const g = other.get(step);
    const rel = g === undefined ? Infinity : Math.abs(g - l) / Math.max(1e-6, Math.abs(l));
    if (!(rel <= tol)) failed = true;
    console.log(`| ${step} | ${l.toFixed(6)} | ${g === undefined ? '-' : g.toFixed(6)} | ${rel.toExponential(2)}${rel <= tol ? '' : ' FAIL'} |`);
  }
  console.log(`tokens/s: cpu ${results.cpu.tokensPerSecond.toFixed(0)}, ${device} ${results.other.tokensPerSecond.toFixed(0)}` +
    (device === 'cpu' ? '' : ` (${info.cuda.name ?? 'device 0'})`));
}
console.log(`RESULT ${failed ? 'FAIL' : 'PASS'}`);
process.exit(failed ? 1 : 0);

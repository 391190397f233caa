/**
 * Data-parallel throughput and communication, through the one Trainer (the code `tunekit train
 * --nproc` runs). Start it with mpirun; one rank (`-np 1`) is plain single-process training:
 *
 *   npx tsc -p bench/tsconfig.json
 *   mpirun -np 1 node bench/.out/data_parallel.js --model mainjob --steps 8
 *   mpirun -np 2 --oversubscribe --bind-to none node bench/.out/data_parallel.js --model mainjob --steps 8
 *   mpirun -np 2 ... node bench/.out/data_parallel.js --allreduce     all-reduce time per size
 *
 * Models (random tokens, one thread per rank unless --threads):
 *   mainjob  the main job's step: built-in tunekit-gpt2-small, seq_cls head, LoRA r8 alpha16
 *            dropout 0.05 on wte, c_attn, c_proj, c_fc; 16 x 128 tokens per rank
 *   small    GPT-2 124M (GPT2Config() sizes, random init), causal LM, LoRA r8 on c_attn
 *            (bench/train_step.ts's workload); 4 x 128 tokens per rank
 *   small-full  the same model, full fine-tuning (every weight's gradient is all-reduced)
 * Rank 0 prints one JSON line: global tokens/s (median step), communication per step.
 */
import { parseArgs } from 'node:util';
import {
  GPT2, parseGPT2Config, LoraModel, Trainer, noGrad, randn, zeros, ones, manualSeed, nextSeed, setNumThreads,
  loadPretrainedSync, resolveModelPath, distributed, Tensor,
} from 'tunekit';

const { values } = parseArgs({
  options: {
    model: { type: 'string', default: 'mainjob' },
    steps: { type: 'string', default: '8' },
    warmup: { type: 'string', default: '2' },
    threads: { type: 'string', default: '1' },
    batch: { type: 'string', default: '' },
    seq: { type: 'string', default: '128' },
    allreduce: { type: 'boolean', default: false },
  },
});
setNumThreads(+values.threads!);
const group = distributed.initProcessGroup({ timeoutSeconds: 600 });
const rank = group?.rank ?? 0, ranks = group?.size ?? 1;

if (values.allreduce) {
  // time per in-place f32 sum of each size (median of repeats after one warm-up), and the bus
  // bandwidth it implies: a ring all-reduce moves 2 (p - 1) / p of the buffer through each link
  if (!group) throw new Error('--allreduce needs 2 or more ranks (mpirun -np 2 ...)');
  const rows: { bytes: number; seconds: number; busGBps: number }[] = [];
  for (const bytes of [4 << 10, 64 << 10, 1 << 20, 4 << 20, 16 << 20, 64 << 20]) {
    const t = zeros([bytes / 4]) as Tensor<'f32'>;
    const reps = bytes <= 1 << 20 ? 50 : 8;
    const times: number[] = [];
    for (let i = 0; i <= reps; i++) {
      distributed.allreduceNumbers(group, [0], 'sum', 'barrier');
      const t0 = performance.now();
      group.allreduce(t).wait();
      if (i > 0) times.push((performance.now() - t0) / 1000);
    }
    t.dispose();
    const s = times.sort((a, b) => a - b)[Math.floor(times.length / 2)]!;
    rows.push({ bytes, seconds: s, busGBps: (2 * (ranks - 1) / ranks) * bytes / s / 1e9 });
  }
  if (rank === 0) process.stdout.write(JSON.stringify({ ranks, backend: group.backend, allreduce: rows }) + '\n');
  group.close();
  process.exit(0);
}

const which = values.model!;
const mainJob = which === 'mainjob';
if (!['mainjob', 'small', 'small-full'].includes(which)) throw new Error(`--model: mainjob | small | small-full, not ${which}`);
const B = values.batch ? +values.batch : mainJob ? 16 : 4, T = +values.seq!;
const V = mainJob ? 8192 : 50257;
manualSeed(0);
const base = mainJob
  ? (loadPretrainedSync(resolveModelPath('builtin:tunekit-gpt2-small'), { task: 'seq_cls', numLabels: 2 }).model as GPT2)
  : new GPT2(parseGPT2Config({
    model_type: 'gpt2', vocab_size: V, n_positions: 1024, n_embd: 768, n_layer: 12, n_head: 12, activation_function: 'gelu_new',
    resid_pdrop: 0.1, embd_pdrop: 0.1, attn_pdrop: 0.0, layer_norm_epsilon: 1e-5, tie_word_embeddings: true,
  }), 'causal_lm');
if (!mainJob) noGrad(() => {
  for (const [name, p] of base.namedParameters()) {
    const init = name.includes('ln_') && name.endsWith('.weight') ? ones(p.shape) : p.ndim >= 2 ? randn(p.shape, { seed: nextSeed(), std: 0.02 }) : zeros(p.shape);
    p.assign(init);
    init.dispose();
  }
});
let model: GPT2 | LoraModel;
if (mainJob) model = new LoraModel(base, { r: 8, lora_alpha: 16, lora_dropout: 0.05, target_modules: ['wte', 'c_attn', 'c_proj', 'c_fc'] });
else if (which === 'small') model = new LoraModel(base, { r: 8, lora_alpha: 16, lora_dropout: 0, target_modules: ['c_attn'] });
else {
  base.requiresGrad_(true);
  model = base;
}

// random full-length sequences: every rank reads the same global batches and takes its shard
const steps = +values.steps!, warmup = +values.warmup!;
let s = 12345;
const rnd = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) % V);
const train: ({ inputIds: number[]; label: number } | { inputIds: number[]; labels: number[] })[] = Array.from({ length: B * ranks * (steps + warmup) }, () => {
  const ids = Array.from({ length: T }, rnd);
  return mainJob ? { inputIds: ids, label: ids[0]! % 2 } : { inputIds: ids, labels: ids };
});
const stepSeconds: number[] = [];
const dp = group ? new distributed.DataParallel(group) : null;
const trainer = new Trainer({
  model, task: mainJob ? 'seq_cls' : 'causal_lm', padTokenId: 0, train, progress: 'none',
  settings: { batchSize: B, maxSteps: steps + warmup, lr: mainJob ? 2e-3 : 2e-4, maxGradNorm: 1, shuffle: false, logEvery: 1000 },
  distributed: dp,
  callbacks: { onStep: (info) => void (info.step > warmup && stepSeconds.push(info.stepSeconds)) },
});
const fit = await trainer.fit();
const median = [...stepSeconds].sort((a, b) => a - b)[Math.floor(stepSeconds.length / 2)]!;
const summary = dp?.summary() ?? null;
if (rank === 0) {
  process.stdout.write(JSON.stringify({
    model: which, ranks, threadsPerRank: +values.threads!, tokensPerStep: B * T * ranks, medianStepSeconds: median,
    tokensPerSecond: (B * T * ranks) / median, stepSeconds, trainable: model.trainableParameters().reduce((n, [, p]) => n + p.numel, 0),
    loss: fit.lastTrainLoss, distributed: summary,
  }) + '\n');
}
group?.close();

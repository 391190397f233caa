/**
 * Training on a device, on a CPU-only machine: the loopback device (TUNEKIT_LOOPBACK_DEVICE=1,
 * lib/tensor/loopback.ts) serves `cuda:0` with the CPU kernels on host memory labelled cuda:0,
 * so any tensor left on the CPU and mixed into a device op is ERR_DEVICE, and any host view of a
 * device tensor (data()) is ERR_DEVICE, as on a GPU. Every method on every architecture trains
 * 2 steps on `cuda` and on the CPU through runTraining, and the two runs must agree exactly (the
 * same kernels): the loss of every step, the evaluation, and the saved weights byte for byte.
 * Also: evaluateRun, generate(), reward / DPO / PPO, a resume from a device checkpoint, and the
 * CLI with `device: cuda`. Before the fixes each device run stopped with ERR_DEVICE.
 */
import './loopback_env.js'; // first: the switch is read when lib/tensor loads
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import '../../lib/index.js';
import { architectureFor, savePretrainedSync, loadPretrainedSync, type Task } from '../../lib/models/index.js';
import { generate } from '../../lib/models/generate.js';
import { manualSeed } from '../../lib/nn/random.js';
import { native, OPTIONAL_KERNEL_OPS } from '../../lib/native.js';
import { loadConfig } from '../../lib/train/config.js';
import { runTraining } from '../../lib/train/run.js';
import { evaluateRun } from '../../lib/train/evaluate.js';
import { cudaStatus, resolveDevice, trainingPath } from '../../lib/tensor/device.js';
import { LOOPBACK_DEVICE, LOOPBACK_NAME, loopbackKernelCalls, takeLoopbackOps, nativeCudaOps } from '../../lib/tensor/loopback.js';
import { tensor, randn } from '../../lib/tensor/creation.js';
import type { Tensor } from '../../lib/tensor/tensor.js';
import { loraBatchedLinear, packLoraSlots, type LoraSlotAdapter } from '../../lib/tensor/lora_batched.js';
import { makeTinyRlhfWork, type TinyRlhfWork } from '../rlhf/tiny_run.js';
import { LoraModel } from '../../lib/peft/lora/model.js';
import { Trainer } from '../../lib/train/trainer.js';
import { makeServeWorld } from '../serve/helpers.js';
import { Tokenizer } from '../../lib/tokenizer/index.js';
import { AdapterSet } from '../../lib/serve/adapters.js';
import { BatchEngine } from '../../lib/serve/engine.js';
import { tinyRawConfig } from '../models/helpers.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const MAIN = path.join(ROOT, 'dist', 'cli', 'main.js');
const TOKENIZERS = path.join(ROOT, 'test', 'fixtures', 'tokenizers');
const SPAM = path.join(ROOT, 'test', 'fixtures', 'cli', 'tiny_spam.jsonl');

type Arch = 'gpt2' | 'bert' | 'llama' | 'vit' | 'resnet_basic';
const TOKENIZER_OF: Record<'gpt2' | 'bert' | 'llama', string> = { gpt2: 'gpt2-bpe', bert: 'bert-wordpiece', llama: 'llama-bpe' };
const VISION = path.join(ROOT, 'test', 'fixtures', 'vision');


const TARGETS: Record<Arch, string[]> = { gpt2: ['c_attn'], bert: ['query', 'value'], llama: ['q_proj', 'v_proj'], vit: ['q_proj', 'v_proj'], resnet_basic: [] };
function peftFor(arch: Arch, method: string): Record<string, unknown> | undefined {
  switch (method) {
    case 'lora': return { r: 2, lora_alpha: 4, target_modules: TARGETS[arch] };
    // dropout on: the mask must be drawn the same way on both devices
    case 'qlora': return { r: 2, lora_alpha: 4, lora_dropout: 0.1, target_modules: TARGETS[arch] };
    // total_step 2 with tinit 0 / tfinal 0: the allocator masks ranks at both steps
    case 'adalora': return { init_r: 4, target_r: 2, lora_alpha: 4, target_modules: TARGETS[arch], total_step: 3, tinit: 0, tfinal: 0, deltaT: 1 };
    case 'prompt_tuning': return { num_virtual_tokens: 3 };
    case 'p_tuning': return { num_virtual_tokens: 3, encoder_hidden_size: 8 };
    case 'prefix_tuning': return { num_virtual_tokens: 3 };
    default: return undefined;
  }
}

interface Cell { arch: Arch; task: Task; method: string }
const METHODS = ['full', 'lora', 'qlora', 'adalora', 'prompt_tuning', 'p_tuning', 'prefix_tuning'];
const CELLS: Cell[] = [
  // every method on every architecture (BERT is an encoder: sequence classification)
  ...METHODS.map((method) => ({ arch: 'gpt2' as Arch, task: 'causal_lm' as Task, method })),
  ...METHODS.map((method) => ({ arch: 'llama' as Arch, task: 'causal_lm' as Task, method })),
  ...METHODS.map((method) => ({ arch: 'bert' as Arch, task: 'seq_cls' as Task, method })),
  // the other heads
  { arch: 'gpt2', task: 'seq_cls', method: 'lora' },
  { arch: 'llama', task: 'seq_cls', method: 'full' },
  { arch: 'gpt2', task: 'token_cls', method: 'full' },
  { arch: 'bert', task: 'token_cls', method: 'lora' },
  { arch: 'llama', task: 'token_cls', method: 'lora' },
  // images: a ViT with LoRA, a ResNet (BatchNorm's running statistics and batch count) fully
  { arch: 'vit', task: 'image_cls', method: 'lora' },
  { arch: 'resnet_basic', task: 'image_cls', method: 'full' },
];

let proj = '';
let rlhf: TinyRlhfWork;

// The CPU's optional ops (its own faster forms, lib/native.ts OPTIONAL_KERNEL_OPS) are hidden while
// this file runs: the loopback device runs what the CUDA backend runs, and the CPU runs compared
// with it bit for bit must use the same kernels. (That the CPU's packed path computes what the
// padded path does: test/autograd/packed_attention.test.ts.)
const cpuKernels = native.cpu as unknown as Record<string, unknown>;
const optionalKernels = new Map(OPTIONAL_KERNEL_OPS.map((op) => [op, cpuKernels[op]]));

beforeAll(() => {
  expect(LOOPBACK_DEVICE).toBe(true);
  for (const op of OPTIONAL_KERNEL_OPS) cpuKernels[op] = undefined;
  proj = fs.mkdtempSync(path.join(os.tmpdir(), 'tunekit-loopback-'));
  for (const d of ['models', 'data', 'runs']) fs.mkdirSync(path.join(proj, d));
  const records = fs.readFileSync(SPAM, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { text: string; label: string }).slice(0, 12);
  fs.writeFileSync(path.join(proj, 'data', 'spam.jsonl'), records.map((r) => JSON.stringify(r)).join('\n') + '\n');
  fs.writeFileSync(path.join(proj, 'data', 'text.jsonl'), records.map((r) => JSON.stringify({ text: r.text })).join('\n') + '\n');
  const hamWords = new Set(records.filter((r) => r.label === 'ham').flatMap((r) => r.text.split(' ')));
  fs.writeFileSync(
    path.join(proj, 'data', 'tagged.jsonl'),
    records.map((r) => { const tokens = r.text.split(' '); return JSON.stringify({ tokens, tags: tokens.map((w) => (hamWords.has(w) ? 'O' : 'SPAMWORD')) }); }).join('\n') + '\n',
  );
  // an ImageFolder of two classes from the fixture pictures, and the fixture image models with a
  // preprocessor that brings every picture to their size
  const pics = ['rgb.png', 'gray.png', 'rgba.png', 'photo.jpg'];
  for (const [i, c] of ['stripes', 'waves'].entries()) {
    fs.mkdirSync(path.join(proj, 'data', 'images', c), { recursive: true });
    for (let k = 0; k < 4; k++) fs.copyFileSync(path.join(VISION, 'images', pics[(i + k) % 4]!), path.join(proj, 'data', 'images', c, `${k}${path.extname(pics[(i + k) % 4]!)}`));
  }
  for (const [name, size] of [['vit', { height: 20, width: 16 }], ['resnet_basic', { height: 19, width: 17 }]] as const) {
    const dir = path.join(proj, 'models', name);
    fs.mkdirSync(dir);
    for (const f of ['config.json', 'model.safetensors']) fs.copyFileSync(path.join(VISION, name, f), path.join(dir, f));
    fs.writeFileSync(path.join(dir, 'preprocessor_config.json'), JSON.stringify({ image_processor_type: 'ViTImageProcessor', size, resample: 2 }));
  }
  for (const arch of ['gpt2', 'bert', 'llama'] as const) {
    const dir = path.join(proj, 'models', arch);
    fs.mkdirSync(dir);
    for (const f of fs.readdirSync(path.join(TOKENIZERS, TOKENIZER_OF[arch]))) fs.copyFileSync(path.join(TOKENIZERS, TOKENIZER_OF[arch], f), path.join(dir, f));
    const tok = JSON.parse(fs.readFileSync(path.join(dir, 'tokenizer.json'), 'utf8')) as { model: { vocab: Record<string, number> }; added_tokens?: { id: number }[] };
    const vocab = Math.max(...Object.values(tok.model.vocab), ...(tok.added_tokens ?? []).map((t) => t.id)) + 1;
    manualSeed(7);
    const a = architectureFor(arch);
    const m = a.build(a.parseConfig(tinyRawConfig(arch, vocab, 16, 32)), arch === 'bert' ? 'base' : 'causal_lm');
    savePretrainedSync(m, dir);
    m.dispose();
  }
  rlhf = makeTinyRlhfWork('tunekit-loopback-rlhf-');
});

afterAll(() => {
  for (const [op, k] of optionalKernels) cpuKernels[op] = k;
  if (proj) fs.rmSync(proj, { recursive: true, force: true });
  rlhf?.remove();
  // this file's modules keep the loopback (read at load); a later file in this process must not get it
  delete process.env.TUNEKIT_LOOPBACK_DEVICE;
});

function cellConfig(cell: Cell, device: string, name: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  const data = cell.task === 'seq_cls' ? 'spam.jsonl' : cell.task === 'causal_lm' ? 'text.jsonl' : cell.task === 'image_cls' ? 'images' : 'tagged.jsonl';
  const peft = peftFor(cell.arch, cell.method);
  return {
    model: path.join(proj, 'models', cell.arch), task: cell.task, method: cell.method, ...(peft ? { peft } : {}),
    dataset: { path: path.join(proj, 'data', data), ...(cell.task === 'image_cls' ? {} : { max_length: 12 }), eval: { fraction: 0.25, seed: 1 } },
    training: { max_steps: 2, batch_size: 3, lr: 1e-2, threads: 1, device, max_grad_norm: 0.5, ...extra },
    output_dir: path.join(proj, 'runs', name), logging: { every: 1, progress: 'none', plot: false },
  };
}

/** What a run computed: every step's loss and figures, the evaluations, and the saved weight files' hashes. */
interface Outcome { steps: unknown[]; evals: unknown; files: Record<string, string>; device: string; kernelCalls: number; ops: string[] }

/** The ops the device runs of text models used (GPT-2, BERT, Llama: every method, RLHF): checked against native/cuda's at the end. */
const TEXT_OPS = new Set<string>();

async function train(raw: Record<string, unknown>, resume = false): Promise<Outcome> {
  const steps: unknown[] = [];
  const calls0 = loopbackKernelCalls();
  takeLoopbackOps();
  const r = await runTraining(loadConfig(raw), {
    log: () => {},
    resume,
    callbacks: { onStep: (info) => steps.push({ step: info.step, loss: info.loss, gradNorm: info.gradNorm, figures: info.figures }) },
  });
  const files: Record<string, string> = {};
  for (const sub of ['adapter', 'model']) {
    const dir = path.join(r.outputDir, sub);
    if (!fs.existsSync(dir)) continue;
    for (const f of fs.readdirSync(dir).filter((f) => f.endsWith('.safetensors') || f.endsWith('.bin'))) {
      files[`${sub}/${f}`] = createHash('sha256').update(fs.readFileSync(path.join(dir, f))).digest('hex');
    }
  }
  return { steps, evals: r.fit.evals, files, device: r.fit.device, kernelCalls: loopbackKernelCalls() - calls0, ops: takeLoopbackOps() };
}

function expectSame(onDevice: Outcome, onCpu: Outcome): void {
  expect(onCpu.device).toBe('cpu');
  expect(onCpu.kernelCalls).toBe(0);
  expect(onDevice.device).toBe('cuda:0');
  expect(onDevice.kernelCalls).toBeGreaterThan(0);
  expect(onDevice.steps.length).toBeGreaterThan(0);
  expect(onDevice.steps).toEqual(onCpu.steps);
  expect(onDevice.evals).toEqual(onCpu.evals);
  expect(Object.keys(onDevice.files).length).toBeGreaterThan(0);
  expect(onDevice.files).toEqual(onCpu.files);
}

describe('the loopback device', () => {
  it('is cuda:0, refuses host views and mixed ops, copies through the device path; tunekit info names it', () => {
    expect(cudaStatus()).toMatchObject({ devices: 1, name: LOOPBACK_NAME });
    // auto takes it (every op of a training step is served), cuda:1 does not exist
    expect(resolveDevice('auto')).toEqual({ device: 'cuda:0', note: `cuda:0 (${LOOPBACK_NAME}, auto)` });
    expect(() => resolveDevice('cuda:1')).toThrow(/1 usable CUDA device/);
    const a = tensor([1, 2, 3]);
    const d = a.to('cuda');
    expect(d.device).toBe('cuda:0');
    expect(() => d.data()).toThrow(/ERR_DEVICE|no host view/);
    expect(() => d.storage.arrayBuffer()).toThrow(/cuda:0/);
    expect(() => a.to('cuda:1')).toThrow(/cuda:0 only/);
    expect(d.toArray()).toEqual([1, 2, 3]);
    expect(d.to('cpu').data()).toEqual(Float32Array.from([1, 2, 3]));
    const calls = loopbackKernelCalls();
    expect((d as unknown as { add(o: unknown): { toArray(): number[] } }).add(d).toArray()).toEqual([2, 4, 6]);
    expect(loopbackKernelCalls()).toBeGreaterThan(calls);
    expect(() => (d as unknown as { add(o: unknown): unknown }).add(a)).toThrow(/cuda:0.*cpu|cpu.*cuda:0/);
    const info = spawnSync(process.execPath, [MAIN, 'info'], { encoding: 'utf8', env: { ...process.env, TUNEKIT_LOOPBACK_DEVICE: '1' } });
    expect(info.status).toBe(0);
    const devices = (JSON.parse(info.stdout) as { devices: { device: string; name?: string; available: boolean }[] }).devices;
    expect(devices[1]).toMatchObject({ device: 'cuda:0', available: true, name: LOOPBACK_NAME, missingOps: 0 });
  });
});

describe('every method on every architecture trains on the device exactly as on the CPU', () => {
  for (const cell of CELLS) {
    const name = `${cell.arch}-${cell.task}-${cell.method}`;
    it(name, async () => {
      const cpu = await train(cellConfig(cell, 'cpu', `${name}-cpu`));
      const dev = await train(cellConfig(cell, 'cuda', `${name}-cuda`));
      expectSame(dev, cpu);
      if (cell.task !== 'image_cls') dev.ops.forEach((op) => TEXT_OPS.add(op));
      // tunekit eval of the device run: the same figures as the CPU run's
      const evDev = await evaluateRun(loadConfig(cellConfig(cell, 'cuda', `${name}-cuda`)), { runDir: path.join(proj, 'runs', `${name}-cuda`) });
      const evCpu = await evaluateRun(loadConfig(cellConfig(cell, 'cpu', `${name}-cpu`)), { runDir: path.join(proj, 'runs', `${name}-cpu`) });
      expect(evDev).toEqual(evCpu);
    });
  }
});

describe('training.dtype bf16 on every architecture, on the CPU and on the device', () => {
  // the matrix products with weights in bf16 (autocast): on the CPU the activation is rounded as
  // the GEMM packs it, on the device cast first (the same bits), so a fully fine-tuned model's
  // device run equals the CPU's exactly; LoRA's layer is one fused kernel on the CPU and composed
  // of ops on the device (the same numbers up to summation order). Against f32: moved by bf16's
  // rounding, and no further.
  const cells: Cell[] = [
    ...(['gpt2', 'llama'] as Arch[]).flatMap((arch) => ['full', 'lora'].map((method) => ({ arch, task: 'causal_lm' as Task, method }))),
    { arch: 'bert', task: 'seq_cls', method: 'full' }, { arch: 'bert', task: 'seq_cls', method: 'lora' },
    { arch: 'vit', task: 'image_cls', method: 'lora' },
  ];
  for (const cell of cells) {
    const name = `${cell.arch}-${cell.task}-${cell.method}-bf16`;
    it(name, async () => {
      const f32 = await train(cellConfig(cell, 'cpu', `${name}-f32`));
      const cpu = await train(cellConfig(cell, 'cpu', `${name}-cpu`, { dtype: 'bf16' }));
      const dev = await train(cellConfig(cell, 'cuda', `${name}-cuda`, { dtype: 'bf16' }));
      const losses = (o: Outcome) => o.steps.map((x) => (x as { loss: number }).loss);
      expect(losses(cpu)).not.toEqual(losses(f32));
      losses(f32).forEach((l, i) => expect(Math.abs(losses(cpu)[i]! - l), `step ${i + 1}`).toBeLessThan(0.05 * Math.abs(l)));
      if (cell.method === 'full') {
        expectSame(dev, cpu);
      } else {
        losses(cpu).forEach((l, i) => expect(Math.abs(losses(dev)[i]! - l), `step ${i + 1} on the device`).toBeLessThan(1e-4 * Math.abs(l)));
      }
    });
  }
});

describe('generate() and resume on the device', () => {
  it('generate() on a model on cuda:0 gives the CPU\'s tokens (greedy and sampled)', async () => {
    for (const arch of ['gpt2', 'llama'] as Arch[]) {
      const { model } = loadPretrainedSync(path.join(proj, 'models', arch), { task: 'causal_lm' });
      const prompts = [[5, 6, 7], [8, 9]];
      const onCpu = [await generate(model, prompts, { maxNewTokens: 4 }), await generate(model, prompts, { maxNewTokens: 4, temperature: 0.9, topP: 0.9, seed: 3 })];
      model.to('cuda');
      const calls = loopbackKernelCalls();
      const onDev = [await generate(model, prompts, { maxNewTokens: 4 }), await generate(model, prompts, { maxNewTokens: 4, temperature: 0.9, topP: 0.9, seed: 3 })];
      expect(loopbackKernelCalls()).toBeGreaterThan(calls);
      expect(onDev).toEqual(onCpu);
      model.dispose();
    }
  });

});

describe('Trainer({ device })', () => {
  it('moves adapters added after the base was moved (the first parameter was there already)', async () => {
    const { model: base } = loadPretrainedSync(path.join(proj, 'models', 'gpt2'), { task: 'causal_lm' });
    base.to('cuda');
    const lora = new LoraModel(base, { r: 2, target_modules: ['c_attn'] });
    const data = [[5, 6, 7, 8], [9, 10, 11, 12]].map((ids) => ({ inputIds: ids, labels: ids }));
    const t = new Trainer({ model: lora, task: 'causal_lm', train: data, padTokenId: 0, progress: 'none', device: 'cuda', settings: { maxSteps: 1, batchSize: 2, lr: 1e-3 } });
    expect(lora.trainableParameters().every(([, p]) => p.device === 'cuda:0')).toBe(true);
    expect((await t.fit()).steps).toBe(1);
    lora.dispose();
  });
});

describe('batched LoRA (serving) on the device', () => {
  it('packs the adapters where they are and gives the CPU\'s rows', () => {
    const inF = 7, outF = 5;
    const slots = (device: 'cpu' | 'cuda'): (LoraSlotAdapter | null)[] =>
      [2, 0, 3].map((r, a) => (r === 0 ? null : { A: randn([r, inF], { seed: 10 + a, std: 0.3 }).to(device), B: randn([outF, r], { seed: 20 + a, std: 0.3 }).to(device), scale: 2 }));
    const rows = Int32Array.of(0, 2, -1, 2);
    const run = (device: 'cpu' | 'cuda') => {
      const pack = packLoraSlots(slots(device), inF, outF);
      expect(pack.aPack!.device).toBe(device === 'cpu' ? 'cpu' : 'cuda:0');
      const x = randn([4, inF], { seed: 1 }).to(device), w = randn([outF, inF], { seed: 2 }).to(device);
      return loraBatchedLinear(x, w, null, pack, tensor(rows, [4], 'i32', x.device) as Tensor<'i32'>).toArray();
    };
    expect(run('cuda')).toEqual(run('cpu'));
  });
});

describe('serving on the device', () => {
  it('the batch engine with a model on cuda:0 gives the CPU\'s tokens for mixed-adapter batches', async () => {
    const world = makeServeWorld('gpt2');
    try {
      const tok = Tokenizer.fromFolderSync(world.modelDir);
      const serve = async (device: 'cpu' | 'cuda') => {
        const { model } = loadPretrainedSync(world.modelDir, { task: 'causal_lm' });
        model.to(device);
        const set = new AdapterSet(model);
        for (const n of ['alpha', 'beta']) await set.load(n, world.adapterDirs[n]!);
        const eng = new BatchEngine(model, tok, set, { maxBatch: 4, maxPrefillTokens: 4096 });
        const prompts: [string, string | null][] = [['Hello there', 'alpha'], ['free money now', 'beta'], ['a', null]];
        const handles = prompts.map(([p, name], i) => eng.submit({
          promptIds: tok.encode(p, { addSpecialTokens: false }).ids, slot: name ? set.slotOf(name)! : -1, adapter: name ?? 'base',
          maxNewTokens: 4 + i, temperature: 0, topP: 1, topK: 0, repetitionPenalty: 1, seed: 0, stop: [], deadline: Date.now() + 60_000,
        }));
        const out = (await Promise.all(handles.map((h) => h.result))).map((r) => r.tokens);
        set.dispose();
        model.dispose();
        return out;
      };
      const cpu = await serve('cpu');
      const calls = loopbackKernelCalls();
      expect(await serve('cuda')).toEqual(cpu);
      expect(loopbackKernelCalls()).toBeGreaterThan(calls);
    } finally {
      world.cleanup();
    }
  });
});

describe('RLHF on the device', () => {
  const rlhfConfig = (method: string, device: string, extra: Record<string, unknown> = {}) => {
    const raw = rlhf.config(method, `${method}${extra.peft === null ? '-full' : ''}-${device}`, extra);
    raw.training = { ...(raw.training as Record<string, unknown>), max_steps: 2, device };
    return raw;
  };
  it('reward, DPO and PPO give the CPU\'s figures', async () => {
    // DPO with LoRA (reference: adapters off) and full fine-tuning (reference log-probs precomputed)
    for (const [method, extra] of [['reward', {}], ['dpo', { rlhf: { beta: 0.1 } }], ['dpo', { rlhf: { beta: 0.1 }, peft: null }]] as const) {
      const cpu = await train(rlhfConfig(method, 'cpu', extra));
      const dev = await train(rlhfConfig(method, 'cuda', extra));
      expectSame(dev, cpu);
      dev.ops.forEach((op) => TEXT_OPS.add(op));
    }
    // LoRA (the reference is the policy with its adapters off) and full fine-tuning (a reference
    // model, moved to the run's device with the reward model)
    for (const peft of [{}, { peft: null }]) {
      const ppo = (device: string) => rlhfConfig('ppo', device, { rlhf: { reward_model: path.join(rlhf.work, 'reward-cpu'), max_new_tokens: 3, ppo_epochs: 2 }, ...peft });
      const cpu = await train(ppo('cpu'));
      const dev = await train(ppo('cuda'));
      expectSame(dev, cpu);
      dev.ops.forEach((op) => TEXT_OPS.add(op));
    }
  });
});

describe('tunekit train with device: cuda', () => {
  it('trains on the loopback device, is interrupted, resumes from its checkpoint and ends as the CPU run does', async () => {
    const cell: Cell = { arch: 'llama', task: 'seq_cls', method: 'lora' };
    const cpu = await train(cellConfig(cell, 'cpu', 'cli-cpu', { max_steps: 3, save_every: 1 }));
    const cfg = path.join(proj, 'cli.json');
    fs.writeFileSync(cfg, JSON.stringify(cellConfig(cell, 'cuda', 'cli-cuda', { max_steps: 3, save_every: 1 })));
    const tunekit = (args: string[], env: Record<string, string> = {}) =>
      spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8', env: { ...process.env, TUNEKIT_LOOPBACK_DEVICE: '1', NO_COLOR: '1', ...env }, timeout: 60_000 });
    const stopped = tunekit(['train', cfg], { TUNEKIT_FAULT_SIGINT_AT_STEP: '1' });
    expect(stopped.stderr).toContain(`device: cuda:0 (${LOOPBACK_NAME})`);
    expect(stopped.stdout + stopped.stderr).toMatch(/interrupted/);
    // the checkpoint was copied to the host and written; the resumed run loads it onto the device
    const resumed = tunekit(['train', cfg, '--resume']);
    expect(resumed.status, resumed.stderr).toBe(0);
    expect(resumed.stderr).toMatch(/resuming from .*\(step [12] of 3\)/);
    const run = path.join(proj, 'runs', 'cli-cuda');
    const results = JSON.parse(fs.readFileSync(path.join(run, 'results.json'), 'utf8')) as { device: string; steps: number };
    expect(results).toMatchObject({ device: 'cuda:0', steps: 3 });
    const losses = fs.readFileSync(path.join(run, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { split: string; step: number; loss: number })
      .filter((l) => l.split === 'train').map((l) => [l.step, l.loss]);
    expect(losses).toEqual((cpu.steps as { step: number; loss: number }[]).map((s) => [s.step, s.loss]));
    const hash = (f: string) => createHash('sha256').update(fs.readFileSync(f)).digest('hex');
    expect(hash(path.join(run, 'adapter', 'adapter_model.safetensors'))).toBe(cpu.files['adapter/adapter_model.safetensors']);
  });
});

describe('what a GPU run of these jobs needs', () => {
  const cudaOps = nativeCudaOps();
  it('every op the text runs used is in the text training path (what auto asks of the CUDA backend)', () => {
    expect(TEXT_OPS.size).toBeGreaterThan(20);
    const ops: readonly string[] = trainingPath('causal_lm').ops;
    expect([...TEXT_OPS].filter((op) => !ops.includes(op))).toEqual([]);
  });
  // runs after the matrix and RLHF (tests of a file run in order)
  it.skipIf(cudaOps === null)(`every op the text runs used has a kernel in this build's CUDA backend${cudaOps === null ? ' (skipped: this build has no CUDA backend)' : ''}`, () => {
    expect(TEXT_OPS.size).toBeGreaterThan(20);
    expect([...TEXT_OPS].filter((op) => !cudaOps!.includes(op))).toEqual([]);
  });
});

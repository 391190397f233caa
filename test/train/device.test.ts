/**
 * training.device / Trainer({ device }) / Module.to() / `tunekit info`'s device list, on a machine
 * without a usable GPU (the GPU cases are skipped where one is usable: there `cuda` trains, and
 * test/tensor/backend_ops.test.ts runs the CUDA column):
 *  - `device: cuda` in a YAML config: `tunekit train` and `tunekit eval` exit non-zero with
 *    ERR_DEVICE carrying CUDA's reason, before any output is written (no output folder);
 *  - the same through new Trainer({ device: 'cuda' }) and Module.to('cuda');
 *  - `auto` trains on the CPU and says so (log line, results.json, FitResult);
 *  - `tunekit info` lists the devices: the CPU with its kernels, and CUDA's reason for none.
 * Each failed before the device plumbing: the field was accepted and ignored (a CPU run).
 */
import { describe, it, expect, afterEach } from 'vitest';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import '../../lib/index.js';
import { GPT2, parseGPT2Config } from '../../lib/models/index.js';
import { manualSeed } from '../../lib/nn/random.js';
import { Module } from '../../lib/nn/module.js';
import { tensor } from '../../lib/tensor/creation.js';
import { cudaStatus, resolveDevice } from '../../lib/tensor/device.js';
import { Trainer, type TrainExample } from '../../lib/train/trainer.js';
import { loadConfig } from '../../lib/train/config.js';
import { runTraining } from '../../lib/train/run.js';
import { TunekitError } from '../../lib/errors.js';
import { dir as modelDir } from '../models/helpers.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const MAIN = path.join(ROOT, 'dist', 'cli', 'main.js');
const DATA = path.join(ROOT, 'test', 'fixtures', 'cli', 'tiny_spam.jsonl');
const cuda = cudaStatus();
const gpu = cuda.devices > 0;

const dirs: string[] = [];
afterEach(() => {
  while (dirs.length) fs.rmSync(dirs.pop()!, { recursive: true, force: true });
});
const newDir = () => {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'tunekit-device-'));
  dirs.push(d);
  return d;
};

function cli(args: string[], cwd: string): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [MAIN, ...args], { cwd, encoding: 'utf8', env: { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0' }, timeout: 60_000 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** A YAML config of a LoRA seq_cls run on the builtin GPT-2 with training.device = `device`. */
function yamlConfig(dir: string, device: string, out = path.join(dir, 'run')): string {
  const p = path.join(dir, 'config.yaml');
  fs.writeFileSync(p, [
    'model: builtin:tunekit-gpt2-small',
    'task: seq_cls',
    'method: lora',
    'peft: { r: 2, lora_alpha: 4, target_modules: [c_attn] }',
    `dataset: { path: ${JSON.stringify(DATA)}, max_length: 16, eval: { fraction: 0.25, seed: 1 } }`,
    `training: { epochs: 1, max_steps: 1, batch_size: 2, lr: 1.0e-3, threads: 1, device: ${JSON.stringify(device)} }`,
    `output_dir: ${JSON.stringify(out)}`,
    'logging: { every: 1, progress: none, plot: false }',
    '',
  ].join('\n'));
  return p;
}

const FIXTURE_CONFIG = JSON.parse(fs.readFileSync(path.join(modelDir('gpt2_lm'), 'config.json'), 'utf8')) as Record<string, unknown>;
function tinyGpt2(): GPT2 {
  manualSeed(1);
  const m = new GPT2(parseGPT2Config(FIXTURE_CONFIG), 'causal_lm');
  m.requiresGrad_(true);
  return m;
}
const lmData: TrainExample[] = Array.from({ length: 4 }, (_, i) => {
  const ids = Array.from({ length: 6 }, (_, j) => ((i + j) % 90) + 1);
  return { inputIds: ids, labels: ids };
});

function deviceError(fn: () => unknown): TunekitError {
  try {
    fn();
  } catch (e) {
    return e as TunekitError;
  }
  throw new Error('expected an ERR_DEVICE error but nothing was thrown');
}

describe('device: cuda without a usable GPU', () => {
  it.skipIf(gpu)('tunekit train fails with ERR_DEVICE and CUDA\'s reason before writing anything', () => {
    const dir = newDir();
    const out = path.join(dir, 'run');
    const r = cli(['train', yamlConfig(dir, 'cuda')], dir);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('ERR_DEVICE');
    expect(r.stderr).toContain("training.device 'cuda'");
    expect(r.stderr).toContain(cuda.reason);
    // before the model, the data and the output folder
    expect(r.stderr).not.toMatch(/^model /m);
    expect(fs.existsSync(out)).toBe(false);
  });

  it.skipIf(gpu)('tunekit eval refuses it the same way', () => {
    const dir = newDir();
    const r = cli(['eval', yamlConfig(dir, 'cuda:1'), '--base'], dir);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('ERR_DEVICE');
    expect(r.stderr).toContain(cuda.reason);
  });

  it.skipIf(gpu)('new Trainer({ device: "cuda" }) throws ERR_DEVICE with the reason, and leaves the model where it was', () => {
    const model = tinyGpt2();
    for (const device of ['cuda', 'cuda:0', 'cuda:3'] as const) {
      const e = deviceError(() => new Trainer({ model, task: 'causal_lm', train: lmData, padTokenId: 0, progress: 'none', device }));
      expect(e).toBeInstanceOf(TunekitError);
      expect(e.code).toBe('ERR_DEVICE');
      expect(e.message).toContain(`Trainer device '${device}'`);
      expect(e.message).toContain(cuda.reason);
    }
    expect(model.device).toBe('cpu');
    model.dispose();
  });

  it.skipIf(gpu)('Module.to("cuda") is ERR_DEVICE naming CUDA\'s reason; to("cpu") keeps every tensor', () => {
    const model = tinyGpt2();
    const before = model.namedParameters();
    expect(model.to('cpu')).toBe(model);
    expect(model.namedParameters()).toEqual(before);
    const e = deviceError(() => model.to('cuda'));
    expect(e.code).toBe('ERR_DEVICE');
    model.dispose();
  });
});

describe('device: auto and cpu', () => {
  it('resolveDevice: cpu; auto picks the GPU only when usable, else the CPU with the reason; bad names refused', () => {
    expect(resolveDevice('cpu')).toEqual({ device: 'cpu', note: 'cpu' });
    const auto = resolveDevice('auto');
    if (!gpu) expect(auto).toEqual({ device: 'cpu', note: `cpu (auto: ${cuda.reason})` });
    else expect(auto.note).toMatch(/auto/);
    for (const bad of ['gpu', 'cuda:x', 'CPU', 3, null]) expect(() => resolveDevice(bad, 'training.device')).toThrow(/training.device/);
  });

  it.skipIf(gpu)('Trainer({ device: "auto" }) trains on the CPU and says so in its result', async () => {
    const model = tinyGpt2();
    const t = new Trainer({ model, task: 'causal_lm', train: lmData, padTokenId: 0, progress: 'none', device: 'auto', settings: { maxSteps: 1, batchSize: 2, lr: 1e-3 } });
    expect(t.device).toBe('cpu');
    const r = await t.fit();
    expect(r.steps).toBe(1);
    expect(r.device).toBe('cpu');
    expect(r.deviceNote).toBe(`cpu (auto: ${cuda.reason})`);
    model.dispose();
  });

  it.skipIf(gpu)('a run with training.device auto logs the device it chose and records it in results.json', async () => {
    const dir = newDir();
    const config = loadConfig(yamlConfig(dir, 'auto'));
    const lines: string[] = [];
    const r = await runTraining(config, { log: (l) => lines.push(l) });
    expect(r.fit.steps).toBe(1);
    expect(lines).toContain(`device: cpu (auto: ${cuda.reason})`);
    const results = JSON.parse(fs.readFileSync(path.join(config.output_dir, 'results.json'), 'utf8')) as { device: string; device_note: string };
    expect(results.device).toBe('cpu');
    expect(results.device_note).toContain('auto');
  }, 60_000);
});

describe('Module.to', () => {
  class Tied extends Module {
    readonly a;
    readonly b;
    constructor() {
      super();
      this.a = this.param('w', tensor([1, 2, 3]));
      this.b = this.module('child', new (class extends Module {
        constructor(w: ReturnType<typeof tensor>) {
          super();
          this.param('w', w); // the same tensor under a second name (tied weights)
          this.buffer('buf', tensor([7]));
        }
      })(this.a));
    }
  }

  it('a module without tensors is on the CPU; a tied tensor stays one tensor', () => {
    expect(new (class extends Module {})().device).toBe('cpu');
    const m = new Tied();
    m.to('cpu');
    const [p0, p1] = m.namedParameters().map(([, p]) => p);
    expect(p0).toBe(p1);
    expect(m.device).toBe('cpu');
    m.a.dispose();
    m.namedBuffers().forEach(([, b]) => b.dispose());
  });
});

describe('tunekit info', () => {
  it('lists the devices: the CPU with its kernels, and each CUDA device or the reason there is none', () => {
    const r = cli(['info'], ROOT);
    expect(r.code).toBe(0);
    const info = JSON.parse(r.stdout) as { devices: { device: string; available: boolean; kernels?: string; reason?: string }[] };
    expect(info.devices[0]).toMatchObject({ device: 'cpu', available: true });
    expect(['avx512', 'avx2', 'portable']).toContain(info.devices[0]!.kernels);
    if (!gpu) expect(info.devices[1]).toEqual({ device: 'cuda', available: false, reason: cuda.reason });
    else expect(info.devices.slice(1).map((d) => d.device)).toEqual(Array.from({ length: cuda.devices }, (_, i) => `cuda:${i}`));
  });
});

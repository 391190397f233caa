/**
 * `--device` for `tunekit generate` and `tunekit serve` (and `device` in the serve config):
 *  - the resolver's op check per path, on fake CUDA probes: `auto` takes the GPU only when its
 *    backend has every op of the path (serving's mixed-adapter loraBatchedLinear included),
 *    `cuda` for serving or generation fails at start naming the missing op;
 *  - through the CLI on the loopback device (TUNEKIT_LOOPBACK_DEVICE=1: cuda:0 served by the CPU
 *    kernels on host memory, so results must equal the CPU's to the token): generate and serve on
 *    `--device cuda` give the CPU's text;
 *  - without the loopback switch (no GPU here), `--device cuda` is ERR_DEVICE with CUDA's reason
 *    and a non-zero exit, before the model loads;
 *  - the ops generate() and the serving engine run on the device are within GENERATE_PATH /
 *    SERVE_PATH (so the op check cannot miss one a GPU run would need).
 */
import '../train/loopback_env.js'; // first: the switch is read when lib/tensor loads
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeServeWorld, type ServeWorld } from './helpers.js';
import { KERNEL_OPS } from '../../lib/native.js';
import { resolveDevice, trainingPath, GENERATE_PATH, SERVE_PATH, TRAINING_PATH, type CudaProbe } from '../../lib/tensor/device.js';
import { LOOPBACK_DEVICE, LOOPBACK_NAME, takeLoopbackOps } from '../../lib/tensor/loopback.js';
import { loadPretrainedSync } from '../../lib/models/index.js';
import { loadPeftFolderSync } from '../../lib/peft/index.js';
import { generate } from '../../lib/models/generate.js';
import { TunekitServer } from '../../lib/serve/server.js';
import type { PretrainedModel } from '../../lib/models/common.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const MAIN = path.join(ROOT, 'dist', 'cli', 'main.js');

/** the environment of a CLI run: with or without the loopback device */
function envOf(loopback: boolean): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1', TUNEKIT_API_KEY: '' };
  if (loopback) env.TUNEKIT_LOOPBACK_DEVICE = '1';
  else delete env.TUNEKIT_LOOPBACK_DEVICE;
  return env;
}

function cli(args: string[], loopback: boolean): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8', env: envOf(loopback), timeout: 60_000 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** Starts `tunekit serve` on a free port; resolves with its URL and what it printed on stderr. */
async function startServe(args: string[], loopback: boolean): Promise<{ url: string; stderr: () => string; stop: () => Promise<number | null> }> {
  const child = spawn(process.execPath, [MAIN, 'serve', ...args, '--port', '0'], { stdio: ['ignore', 'pipe', 'pipe'], env: envOf(loopback) });
  let out = '', err = '';
  child.stderr.on('data', (d: Buffer) => { err += d.toString(); });
  const stop = () => {
    const exited = new Promise<number | null>((r) => (child.exitCode !== null ? r(child.exitCode) : child.once('exit', (code) => r(code))));
    child.kill('SIGTERM');
    return exited;
  };
  try {
    const url = await new Promise<string>((resolve, reject) => {
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        const m = /on (http:\/\/127\.0\.0\.1:\d+)/.exec(out);
        if (m) resolve(m[1]!);
      });
      child.on('exit', (code) => reject(new Error(`serve exited with ${code}: ${out}${err}`)));
    });
    return { url, stderr: () => err, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}

let w: ServeWorld;
beforeAll(() => {
  expect(LOOPBACK_DEVICE).toBe(true);
  expect(fs.existsSync(MAIN)).toBe(true); // built by test/global_setup.ts
  w = makeServeWorld();
});
afterAll(() => {
  w?.cleanup();
  // this file's modules keep the loopback (read at load); a later file in this process must not get it
  delete process.env.TUNEKIT_LOOPBACK_DEVICE;
});

describe('the resolver checks the ops of the path (fake CUDA backends)', () => {
  const gpu = { devices: 2, reason: '', name: 'Fake GPU' };
  // native/cuda today: every op but the serving engine's batched LoRA and the vision ops
  const lacking = (...missing: string[]): CudaProbe => ({ status: gpu, ops: KERNEL_OPS.filter((op) => !missing.includes(op)) });
  const today = lacking('loraBatchedLinear', 'conv2dForward', 'maxPool2d', 'svd');

  it('auto: the GPU for generation, the CPU for serving (loraBatchedLinear missing), and says why', () => {
    expect(resolveDevice('auto', '--device', { path: GENERATE_PATH, probe: today })).toEqual({ device: 'cuda:0', note: 'cuda:0 (Fake GPU, auto)' });
    const serve = resolveDevice('auto', 'serve device', { path: SERVE_PATH, probe: today });
    expect(serve.device).toBe('cpu');
    expect(serve.note).toBe("cpu (auto: cuda:0 (Fake GPU) is usable but this build's CUDA backend lacks 1 op(s) of serving: loraBatchedLinear)");
    // with the kernel, serving goes to the GPU too
    expect(resolveDevice('auto', 'serve device', { path: SERVE_PATH, probe: lacking('conv2dForward') })).toEqual({ device: 'cuda:0', note: 'cuda:0 (Fake GPU, auto)' });
    // no device at all: CUDA's reason, whatever the path
    const none: CudaProbe = { status: { devices: 0, reason: 'no CUDA device: driver too old' }, ops: [] };
    expect(resolveDevice('auto', 'serve device', { path: SERVE_PATH, probe: none })).toEqual({ device: 'cpu', note: 'cpu (auto: no CUDA device: driver too old)' });
  });

  it('cuda for serving fails at start naming the missing op; generation and training go on', () => {
    const e = (() => { try { resolveDevice('cuda', 'serve device', { path: SERVE_PATH, probe: today }); } catch (err) { return err as { code: string; message: string }; } return null; })();
    expect(e).toMatchObject({ code: 'ERR_DEVICE' });
    expect(e!.message).toBe("serve device 'cuda': this build's CUDA backend has no kernel for 1 op(s) of serving: loraBatchedLinear. Use cpu (or auto, which picks the CPU here).");
    expect(() => resolveDevice('cuda:1', '--device', { path: GENERATE_PATH, probe: lacking('loraLinearForward', 'rope') })).toThrow(/no kernel for 2 op\(s\) of generation: rope, loraLinearForward/);
    expect(resolveDevice('cuda:1', '--device', { path: GENERATE_PATH, probe: today })).toEqual({ device: 'cuda:1', note: 'cuda:1' });
    // training's list is every architecture's: cuda goes on (an op it lacks stops the run when it runs); auto does not take it
    expect(resolveDevice('cuda', 'training.device', { probe: today })).toEqual({ device: 'cuda:0', note: 'cuda:0 (Fake GPU)' });
    expect(resolveDevice('auto', 'training.device', { probe: today }).note).toMatch(/lacks 3 op\(s\) of a training step: loraBatchedLinear, conv2dForward, maxPool2d; device: cuda runs there anyway/);
    expect(TRAINING_PATH.ops).not.toContain('svd');
    // a text model's training step needs no vision op (nor loraBatchedLinear): auto takes that GPU; an image model's does
    for (const task of ['causal_lm', 'seq_cls', 'token_cls']) {
      expect(resolveDevice('auto', 'training.device', { path: trainingPath(task), probe: today })).toEqual({ device: 'cuda:0', note: 'cuda:0 (Fake GPU, auto)' });
    }
    expect(resolveDevice('auto', 'training.device', { path: trainingPath('image_cls'), probe: today }).note).toMatch(/lacks 2 op\(s\) of a training step: conv2dForward, maxPool2d;/);
    expect(resolveDevice('auto', 'training.device', { path: trainingPath('causal_lm'), probe: lacking('attentionBackward') }).device).toBe('cpu');
    // the device count and bad names are checked as for training
    expect(() => resolveDevice('cuda:2', 'serve device', { path: SERVE_PATH, probe: lacking() })).toThrow(/2 usable CUDA device\(s\) \(cuda:0\.\.cuda:1\)/);
    expect(() => resolveDevice('gpu', '--device', { path: GENERATE_PATH, probe: lacking() })).toThrow(/Expected --device to be 'cpu', 'cuda', 'cuda:N' or 'auto' but received "gpu"/);
  });
});

describe('on the loopback device', () => {
  it('the ops generate() and the serving engine run there are within GENERATE_PATH / SERVE_PATH', async () => {
    // generate() with a LoRA adapter, greedy and sampled (top-k, top-p, repetition penalty)
    const { model } = loadPretrainedSync(w.modelDir, { task: 'causal_lm' });
    const peft = loadPeftFolderSync(model, w.adapterDirs.beta!);
    peft.eval();
    peft.to('cuda');
    takeLoopbackOps();
    const lm = peft as unknown as PretrainedModel;
    await generate(lm, [[5, 6, 7], [8, 9]], { maxNewTokens: 3 });
    await generate(lm, [[5, 6, 7], [8, 9]], { maxNewTokens: 3, temperature: 0.9, topK: 5, topP: 0.9, repetitionPenalty: 1.2, seed: 3 });
    const genOps = takeLoopbackOps();
    expect(genOps).toContain('loraLinearForward');
    expect(genOps.filter((op) => !(GENERATE_PATH.ops as readonly string[]).includes(op))).toEqual([]);
    peft.dispose();
    // the server with two adapters, a mixed batch
    const server = await TunekitServer.start({ model: w.modelDir, adapters: { alpha: w.adapterDirs.alpha, gamma: w.adapterDirs.gamma }, port: 0, device: 'cuda' });
    try {
      expect(server.deviceNote).toBe(`cuda:0 (${LOOPBACK_NAME})`);
      takeLoopbackOps();
      const ask = (model: string, temperature: number) => fetch(`${server.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model, prompt: 'free money', max_tokens: 3, temperature, top_p: 0.9, seed: 1 }) });
      const answers = await Promise.all([ask('alpha', 0), ask('gamma', 0.8), ask('model', 0)]);
      expect(answers.map((a) => a.status)).toEqual([200, 200, 200]);
      const serveOps = takeLoopbackOps();
      expect(serveOps).toContain('loraBatchedLinear');
      expect(serveOps.filter((op) => !(SERVE_PATH.ops as readonly string[]).includes(op))).toEqual([]);
    } finally {
      await server.close();
    }
  });

  it('tunekit generate --device cuda gives the CPU\'s tokens (greedy and sampled, with an adapter) and says where it ran', () => {
    for (const extra of [['--temperature', '0'], ['--temperature', '0.9', '--top-k', '8', '--seed', '5']]) {
      const args = ['generate', '--model', w.modelDir, '--adapter', w.adapterDirs.alpha!, '--prompt', 'Hello there', '--max-new-tokens', '8', ...extra];
      const cpu = cli([...args, '--device', 'cpu'], true);
      const dev = cli([...args, '--device', 'cuda'], true);
      expect(cpu.code, cpu.stderr).toBe(0);
      expect(dev.code, dev.stderr).toBe(0);
      expect(cpu.stderr).toContain('device: cpu\n');
      expect(dev.stderr).toContain(`device: cuda:0 (${LOOPBACK_NAME})`);
      expect(dev.stdout.length).toBeGreaterThan('Hello there\n'.length);
      expect(dev.stdout).toBe(cpu.stdout);
    }
    // auto takes the loopback device (it has every op of generation)
    const auto = cli(['generate', '--model', w.modelDir, '--prompt', 'a', '--max-new-tokens', '2'], true);
    expect(auto.code, auto.stderr).toBe(0);
    expect(auto.stderr).toContain(`device: cuda:0 (${LOOPBACK_NAME}, auto)`);
  });

  it('tunekit serve --device cuda serves the CPU\'s completion; device in the config file works the same', async () => {
    const complete = async (url: string) => {
      const res = await fetch(`${url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'beta', prompt: ['Hello there', 'free money'], max_tokens: 8, temperature: 0 }) });
      expect(res.status).toBe(200);
      return ((await res.json()) as { choices: { text: string }[] }).choices.map((c) => c.text);
    };
    const cfg = path.join(w.dir, 'serve-device.yaml');
    fs.writeFileSync(cfg, `model: ${w.modelDir}\nadapters:\n  beta: ${w.adapterDirs.beta}\ndevice: cuda\n`);
    const texts: Record<string, string[]> = {};
    for (const [name, args] of [['cpu', [cfg, '--device', 'cpu']], ['flag', ['--model', w.modelDir, '--adapter', `beta=${w.adapterDirs.beta}`, '--device', 'cuda']], ['file', [cfg]]] as const) {
      const s = await startServe([...args], true);
      try {
        texts[name] = await complete(s.url);
        expect(s.stderr()).toContain(name === 'cpu' ? 'device: cpu\n' : `device: cuda:0 (${LOOPBACK_NAME})`);
      } finally {
        expect(await s.stop()).toBe(0);
      }
    }
    expect(texts.cpu!.every((t) => t.length > 0)).toBe(true);
    expect(texts.flag).toEqual(texts.cpu);
    expect(texts.file).toEqual(texts.cpu);
  });
});

describe('without a usable GPU (the loopback switch off)', () => {
  const gpu = (() => { const r = cli(['info'], false); return r.code === 0 && (JSON.parse(r.stdout) as { devices: { device: string; available: boolean }[] }).devices.some((d) => d.device.startsWith('cuda') && d.available); })();
  it.skipIf(gpu)('--device cuda is ERR_DEVICE with CUDA\'s reason and a non-zero exit, before the model loads', () => {
    // a model folder that does not exist: the device is refused first
    const missing = path.join(w.dir, 'no-such-model');
    for (const args of [['generate', '--model', missing, '--prompt', 'a', '--device', 'cuda'], ['serve', '--model', missing, '--device', 'cuda:0', '--port', '0']]) {
      const r = cli(args, false);
      expect(r.code, r.stderr).not.toBe(0);
      expect(r.stderr).toMatch(/ERR_DEVICE/);
      expect(r.stderr).toMatch(/asks for a GPU but none is usable: /);
      expect(r.stderr).not.toMatch(/ERR_NOT_FOUND|no-such-model/);
    }
    // the serve config's field, and a bad name in it
    const cfg = path.join(w.dir, 'serve-cuda.yaml');
    fs.writeFileSync(cfg, `model: ${missing}\ndevice: cuda\n`);
    expect(cli(['serve', cfg, '--port', '0'], false).stderr).toMatch(/ERR_DEVICE.*serve device 'cuda' asks for a GPU/);
    fs.writeFileSync(cfg, `model: ${missing}\ndevice: gpu\n`);
    expect(cli(['serve', cfg], false).stderr).toMatch(/ERR_CONFIG[\s\S]*device/);
    // auto: the CPU, with CUDA's reason
    const auto = cli(['generate', '--model', w.modelDir, '--prompt', 'a', '--max-new-tokens', '1'], false);
    expect(auto.code, auto.stderr).toBe(0);
    expect(auto.stderr).toMatch(/device: cpu \(auto: .+\)/);
  });
});

/**
 * What the multi-process tests share: a tiny GPT-2 base with its tokenizer, configs of the main
 * job's setup on it (LoRA, seq_cls spam/ham), the CLI as users run it, adapter comparison, and
 * whether this machine can run MPI jobs at all (otherwise the tests say why and skip).
 */
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import '../../lib/index.js';
import { GPT2, parseGPT2Config, savePretrainedSync } from '../../lib/models/index.js';
import { trainByteLevelBpe, saveTrainedBpe } from '../../lib/tokenizer/index.js';
import { manualSeed } from '../../lib/nn/random.js';
import { openSafetensorsSync } from '../../lib/io/safetensors.js';
import { f32FromRaw } from '../../lib/models/weights.js';
import { findLauncher } from '../../lib/train/distributed/launch.js';
import { mpiLibrary } from '../../lib/train/distributed/process_group.js';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const MAIN = path.join(ROOT, 'dist', 'cli', 'main.js');
export const DATA = path.join(ROOT, 'test', 'fixtures', 'cli', 'tiny_spam.jsonl');

/** Why MPI jobs cannot run here (null: they can). */
export function mpiUnavailable(): string | null {
  const lib = mpiLibrary();
  if (!lib.available) return lib.reason;
  try {
    findLauncher();
  } catch (e) {
    return (e as Error).message;
  }
  return null;
}

/** A 2-layer, 32-wide GPT-2 with a byte-level BPE tokenizer trained on the fixture texts. */
export function makeTinyBase(dir: string): string {
  const modelDir = path.join(dir, 'tiny-gpt2');
  const texts = fs.readFileSync(DATA, 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as { text: string }).text);
  const bpe = trainByteLevelBpe(texts, { vocabSize: 300, specialTokens: ['<|endoftext|>'] });
  saveTrainedBpe(modelDir, bpe, { eosToken: '<|endoftext|>', bosToken: '<|endoftext|>', unkToken: '<|endoftext|>', modelMaxLength: 64 });
  manualSeed(2024);
  const m = new GPT2(parseGPT2Config({
    model_type: 'gpt2', vocab_size: bpe.vocab.size, n_embd: 32, n_layer: 2, n_head: 2, n_positions: 64, n_inner: 64,
    activation_function: 'gelu_new', resid_pdrop: 0, embd_pdrop: 0, attn_pdrop: 0, layer_norm_epsilon: 1e-5,
    bos_token_id: 0, eos_token_id: 0, pad_token_id: 0, tie_word_embeddings: true,
  }), 'causal_lm');
  savePretrainedSync(m, modelDir);
  m.dispose();
  return modelDir;
}

/**
 * The main job's setup (LoRA on a GPT-2 base, spam/ham seq_cls; the default config's target
 * modules, wte included) on the tiny base, one thread per process. 24 train / 8 eval examples.
 */
export function jobConfig(modelDir: string, output: string, training: Record<string, unknown>, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    model: modelDir, task: 'seq_cls', method: 'lora',
    peft: { r: 4, lora_alpha: 8, lora_dropout: 0, target_modules: ['wte', 'c_attn', 'c_proj', 'c_fc'] },
    dataset: { path: DATA, max_length: 24, eval: { fraction: 0.25, seed: 1 } },
    training: { epochs: 1, lr: 5e-3, threads: 1, ...training },
    output_dir: output,
    logging: { every: 1, progress: 'none' },
    ...extra,
  };
}

export function writeConfig(file: string, config: Record<string, unknown>): string {
  fs.writeFileSync(file, JSON.stringify(config, null, 2));
  return file;
}

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  seconds: number;
}

/** `node dist/cli/main.js <args>` (tunekit as users run it), asynchronous so that tests can time it. */
export function cli(args: string[], opts: { cwd: string; env?: Record<string, string>; timeoutMs?: number }): Promise<CliResult> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [MAIN, ...args], { cwd: opts.cwd, env: { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0', ...opts.env } });
    let stdout = '', stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
    child.once('error', reject);
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, seconds: (performance.now() - t0) / 1000 });
    });
  });
}

/** Tensors of a safetensors file as f32 arrays. */
export function readTensors(file: string): Map<string, Float32Array> {
  const r = openSafetensorsSync(file);
  try {
    return new Map(r.names.map((n) => {
      const t = f32FromRaw(r.readTensor(n));
      const a = Float32Array.from(t.toTypedArray() as Float32Array);
      t.dispose();
      return [n, a] as const;
    }));
  } finally {
    r.close();
  }
}

/** Largest |a - b| over every tensor (the same names required). */
export function maxAbsDiff(a: Map<string, Float32Array>, b: Map<string, Float32Array>): number {
  if ([...a.keys()].sort().join() !== [...b.keys()].sort().join()) throw new Error(`tensor names differ: ${[...a.keys()]} / ${[...b.keys()]}`);
  let worst = 0;
  for (const [n, x] of a) {
    const y = b.get(n)!;
    for (let i = 0; i < x.length; i++) worst = Math.max(worst, Math.abs(x[i]! - y[i]!));
  }
  return worst;
}

/** Every file of a folder with its bytes (base64). */
export function snapshot(d: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (p: string) => {
    for (const e of fs.readdirSync(p, { withFileTypes: true })) {
      const f = path.join(p, e.name);
      if (e.isDirectory()) walk(f);
      else out.set(path.relative(d, f), fs.readFileSync(f).toString('base64'));
    }
  };
  walk(d);
  return out;
}

/** Whether any process of this command line is still alive (a rank left behind). */
export function processesOf(pattern: string): number[] {
  const r = spawnSync('pgrep', ['-f', pattern], { encoding: 'utf8' });
  return r.stdout.split('\n').filter(Boolean).map(Number).filter((p) => p !== process.pid);
}

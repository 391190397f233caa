/**
 * `tunekit train --resume` as users run it (`node dist/cli/main.js`, dist/ rebuilt first when
 * older than lib/): a real SIGKILL between the checkpoint's two renames (the process kills
 * itself there through TUNEKIT_FAULT_CHECKPOINT_KILL), then --resume recovers the newer
 * checkpoint and ends with the adapter byte-identical to an uninterrupted run; --resume with no
 * checkpoint, of a finished run, or of a truncated trainer_state.json is a typed error that
 * leaves the folder as it was. Every window of the write is covered in-process by
 * checkpoint_faults.test.ts; this file shows that the hook's throw stands for a real kill.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import '../../lib/index.js';
import { GPT2, parseGPT2Config, savePretrainedSync } from '../../lib/models/index.js';
import { trainByteLevelBpe, saveTrainedBpe } from '../../lib/tokenizer/index.js';
import { manualSeed } from '../../lib/nn/random.js';
import { readMetrics } from '../../lib/train/metrics_log.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const MAIN = path.join(ROOT, 'dist', 'cli', 'main.js');
const DATA = path.join(ROOT, 'test', 'fixtures', 'cli', 'tiny_spam.jsonl');

let work = '';
let modelDir = '';


function cli(args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [MAIN, ...args], { cwd: work, encoding: 'utf8', env: { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0', ...env }, timeout: 60_000 });
  return { code: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

/** Every file of a folder with its bytes. */
function snapshot(d: string): Map<string, string> {
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

let configPath = '';

beforeAll(() => {
  // dist/ is built once by test/global_setup.ts
  expect(fs.existsSync(MAIN)).toBe(true);
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'tunekit-resume-cli-'));
  modelDir = path.join(work, 'tiny-gpt2');
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
  configPath = path.join(work, 'train.json');
  // lora_dropout on: the RNG stream must survive the kill too; checkpoints after steps 2, 4, 6
  fs.writeFileSync(configPath, JSON.stringify({
    model: modelDir, task: 'seq_cls', method: 'lora',
    peft: { r: 4, lora_alpha: 8, lora_dropout: 0.1, target_modules: ['c_attn', 'c_fc'] },
    dataset: { path: DATA, max_length: 24, eval: { fraction: 0.25, seed: 1 } },
    training: { epochs: 1, max_steps: 6, batch_size: 4, lr: 5e-3, save_every: 2, threads: 1 },
    output_dir: path.join(work, 'unused'),
    logging: { every: 1, progress: 'none' },
  }, null, 2));
});

afterAll(() => {
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

describe('tunekit train --resume', () => {
  it('with no checkpoint in the output folder is an error naming it; nothing is trained', () => {
    const out = path.join(work, 'empty');
    const r = cli(['train', configPath, '--output', out, '--resume']);
    expect(r.code, r.stdout).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`\\[ERR_NOT_FOUND\\] nothing to resume: no complete checkpoint in ${out.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}`));
    expect(fs.existsSync(path.join(out, 'metrics.jsonl'))).toBe(false);
    expect(fs.existsSync(path.join(out, 'results.json'))).toBe(false);
  });

  it('SIGKILL between the two renames of a save: --resume recovers the newer checkpoint and ends byte-identical; a second --resume says the run is finished', () => {
    const ref = path.join(work, 'ref');
    const straight = cli(['train', configPath, '--output', ref]);
    expect(straight.code, straight.stderr).toBe(0);

    const out = path.join(work, 'killed');
    const killed = cli(['train', configPath, '--output', out], { TUNEKIT_FAULT_CHECKPOINT_KILL: 'old-moved@2' });
    expect(killed.signal, killed.stderr).toBe('SIGKILL');
    // the window of issue 18: no checkpoint/, the step-2 folder moved aside, the complete step-4 one not yet in place
    const left = fs.readdirSync(out).filter((n) => n.includes('checkpoint')).sort();
    expect(left.map((n) => n.replace(/-[\w-]+$/, ''))).toEqual(['.checkpoint.old', '.checkpoint.tmp']);

    const resumed = cli(['train', configPath, '--output', out, '--resume']);
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(resumed.stderr).toMatch(/recovered the checkpoint of step 4 from \.checkpoint\.tmp-\S+ \(a save was interrupted\)/);
    expect(resumed.stderr).toMatch(/resuming from \S+checkpoint \(step 4 of 6\)/);
    expect(resumed.stdout).toMatch(/done.*6 steps \(completed\)/);
    for (const f of ['adapter/adapter_model.safetensors', 'checkpoint/adapter/adapter_model.safetensors', 'checkpoint/optimizer.safetensors']) {
      expect(fs.readFileSync(path.join(out, f)).equals(fs.readFileSync(path.join(ref, f))), f).toBe(true);
    }
    const trainLog = (d: string) => readMetrics(path.join(d, 'metrics.jsonl')).filter((x) => x.split === 'train');
    expect(trainLog(out).map((x) => x.step)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(trainLog(out).map((x) => x.loss)).toEqual(trainLog(ref).map((x) => x.loss));
    const res = (d: string) => JSON.parse(fs.readFileSync(path.join(d, 'results.json'), 'utf8'));
    expect(res(out).eval).toEqual(res(ref).eval);
    expect(fs.readdirSync(out).filter((f) => f.startsWith('.'))).toEqual([]);

    // finished: refused, every file left as it was
    const before = snapshot(out);
    const again = cli(['train', configPath, '--output', out, '--resume']);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/\[ERR_STATE\] nothing to resume: the run of \S+ has already finished \(completed all 6 steps\); its results and outputs are left as they are/);
    expect(snapshot(out)).toEqual(before);

    // a truncated trainer_state.json: a typed error naming the file, not a SyntaxError
    const state = path.join(out, 'checkpoint', 'trainer_state.json');
    fs.writeFileSync(state, fs.readFileSync(state, 'utf8').slice(0, 40));
    const truncated = cli(['train', configPath, '--output', out, '--resume']);
    expect(truncated.code).toBe(1);
    expect(truncated.stderr).toMatch(/\[ERR_FORMAT\] nothing to resume: no complete checkpoint in [\s\S]*checkpoint: \S+trainer_state\.json has 40 bytes, the manifest says \d+/);
    expect(truncated.stderr).not.toMatch(/SyntaxError/);
  });
});

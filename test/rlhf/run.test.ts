/**
 * `method: reward | dpo | ppo` through runTraining (what `tunekit train` calls) on a tiny GPT-2
 * with a BPE tokenizer trained in the setup: reward writes a merged reward model that PPO then
 * loads; DPO and PPO write PEFT adapters; every run writes metrics and results.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import '../../lib/index.js';
import { trainByteLevelBpe, saveTrainedBpe } from '../../lib/tokenizer/index.js';
import { GPT2, parseGPT2Config } from '../../lib/models/gpt2.js';
import { savePretrainedSync, loadPretrainedSync } from '../../lib/models/index.js';
import { manualSeed } from '../../lib/nn/random.js';
import { loadConfig } from '../../lib/train/config.js';
import { runTraining } from '../../lib/train/run.js';

let work = '';
let modelDir = '';
let data = '';
const GOOD = ['a fine happy day', 'what a great idea', 'lovely work thanks', 'good and kind', 'nice clear answer'];
const BAD = ['an awful sad day', 'what a terrible idea', 'bad broken work', 'rude and cruel', 'ugly wrong answer'];

beforeAll(() => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'tunekit-rlhf-'));
  data = path.join(work, 'prefs.jsonl');
  const lines: string[] = [];
  for (let i = 0; i < 40; i++) lines.push(JSON.stringify({ prompt: `note ${i % 7}:`, chosen: ` ${GOOD[i % 5]}`, rejected: ` ${BAD[(i + 2) % 5]}` }));
  fs.writeFileSync(data, lines.join('\n') + '\n');
  modelDir = path.join(work, 'tiny-gpt2');
  const bpe = trainByteLevelBpe([...GOOD, ...BAD, 'note 0 1 2 3 4 5 6:'], { vocabSize: 300, specialTokens: ['<|endoftext|>'] });
  saveTrainedBpe(modelDir, bpe, { eosToken: '<|endoftext|>', bosToken: '<|endoftext|>', unkToken: '<|endoftext|>', modelMaxLength: 64 });
  manualSeed(7);
  const cfg = parseGPT2Config({
    model_type: 'gpt2', vocab_size: bpe.vocab.size, n_embd: 32, n_layer: 2, n_head: 2, n_positions: 64, n_inner: 64,
    activation_function: 'gelu_new', resid_pdrop: 0, embd_pdrop: 0, attn_pdrop: 0, layer_norm_epsilon: 1e-5,
    bos_token_id: 0, eos_token_id: 0, pad_token_id: 0, tie_word_embeddings: true,
  });
  const m = new GPT2(cfg, 'causal_lm');
  savePretrainedSync(m, modelDir);
  m.dispose();
});

afterAll(() => {
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

const base = (method: string, out: string, extra: Record<string, unknown> = {}) => ({
  model: modelDir, method, peft: { r: 4, lora_alpha: 8, target_modules: ['c_attn', 'c_proj'] },
  dataset: { path: data, max_length: 32, eval: { fraction: 0.25, seed: 1 } },
  training: { epochs: 1, max_steps: 6, batch_size: 4, lr: 1e-2, threads: 1 },
  output_dir: path.join(work, out), logging: { every: 1, progress: 'none' }, ...extra,
});
const quiet = { log: () => {} };

describe('RLHF through runTraining', () => {
  it('reward: trains a LoRA reward model, writes adapter/, a merged model/ and metrics', async () => {
    const res = await runTraining(loadConfig(base('reward', 'reward')), quiet);
    const out = res.outputDir;
    for (const f of ['adapter/adapter_config.json', 'model/config.json', 'model/model.safetensors', 'metrics.jsonl', 'loss.svg', 'results.json']) expect(fs.existsSync(path.join(out, f)), f).toBe(true);
    const results = JSON.parse(fs.readFileSync(path.join(out, 'results.json'), 'utf8'));
    expect(results.method).toBe('reward');
    expect(results.objective).toBe('reward');
    expect(results.eval.accuracy).toBeGreaterThanOrEqual(0);
    expect(results.before.count).toBe(10);
    expect(results.tokens_per_second).toBeGreaterThan(0);
    expect(res.eval?.count).toBe(10);
    // the Trainer's checkpoint, as for supervised runs
    expect(fs.existsSync(path.join(out, 'checkpoint', 'manifest.json'))).toBe(true);
    const { model } = loadPretrainedSync(path.join(out, 'model'), { task: 'seq_cls', numLabels: 1 });
    expect(model.config.numLabels).toBe(1);
  });

  it('dpo: trains LoRA with the disabled-adapter reference; results hold rewards/* before and after', async () => {
    const res = await runTraining(loadConfig(base('dpo', 'dpo', { rlhf: { beta: 0.1 } })), quiet);
    const results = JSON.parse(fs.readFileSync(path.join(res.outputDir, 'results.json'), 'utf8'));
    expect(results.before['rewards/margins']).toBeCloseTo(0, 5);
    expect(Number.isFinite(results.eval['rewards/margins'])).toBe(true);
    // real tokens/s (it was 0), and the checkpoint/ the summary lists is there
    expect(results.tokens_per_second).toBeGreaterThan(0);
    expect(res.fit.tokensPerSecond).toBe(results.tokens_per_second);
    expect(fs.existsSync(path.join(res.outputDir, 'checkpoint', 'adapter', 'adapter_model.safetensors'))).toBe(true);
    expect(fs.existsSync(path.join(res.outputDir, 'adapter', 'adapter_model.safetensors'))).toBe(true);
  });

  it('ppo: loads the reward run as rlhf.reward_model, runs PPO steps, writes ppo.svg and per-step metrics', async () => {
    const cfg = base('ppo', 'ppo', { rlhf: { reward_model: path.join(work, 'reward'), max_new_tokens: 4, ppo_epochs: 2 } });
    (cfg.training as Record<string, unknown>).max_steps = 2;
    const res = await runTraining(loadConfig(cfg), quiet);
    const lines = fs.readFileSync(path.join(res.outputDir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    const train = lines.filter((l) => l.split === 'train');
    expect(train.map((l) => l.step)).toEqual([1, 2]);
    for (const l of train) for (const k of ['score', 'kl', 'entropy', 'clipfrac', 'pg_loss', 'vf_loss', 'tokens_per_s']) expect(Number.isFinite(l[k]), k).toBe(true);
    // held-out prompts: evaluated before training and after the last step
    expect(lines.filter((l) => l.split === 'eval').map((l) => [l.step, l.count])).toEqual([[0, 10], [2, 10]]);
    expect(res.before?.kl).toBeCloseTo(0, 5);
    expect(res.fit.tokensPerSecond).toBeGreaterThan(0);
    expect(fs.existsSync(path.join(res.outputDir, 'checkpoint', 'value_head.safetensors'))).toBe(true);
    expect(fs.readFileSync(path.join(res.outputDir, 'ppo.svg'), 'utf8')).toMatch(/^<svg/);
    expect(fs.existsSync(path.join(res.outputDir, 'adapter', 'adapter_config.json'))).toBe(true);
  });

  it('training.dtype bf16: the reward model, DPO and PPO train with their products in bf16, near the f32 runs', async () => {
    const trainLosses = (dir: string, key: string) => fs.readFileSync(path.join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n')
      .map((l) => JSON.parse(l) as Record<string, number | string>).filter((l) => l.split === 'train').map((l) => l[key] as number);
    const cases: [string, Record<string, unknown>, string][] = [
      ['reward', {}, 'loss'],
      ['dpo', { rlhf: { beta: 0.1 } }, 'loss'],
      ['ppo', { rlhf: { reward_model: path.join(work, 'reward-f32'), max_new_tokens: 4, ppo_epochs: 2 } }, 'vf_loss'],
    ];
    for (const [method, extra, key] of cases) {
      const runs: Record<string, number[]> = {};
      for (const dtype of ['f32', 'bf16']) {
        const cfg = base(method, `${method}-${dtype}`, extra);
        Object.assign(cfg.training as Record<string, unknown>, { dtype, max_steps: method === 'ppo' ? 2 : 4 });
        const res = await runTraining(loadConfig(cfg), quiet);
        runs[dtype] = trainLosses(res.outputDir, key);
        expect(runs[dtype]!.every(Number.isFinite), `${method} ${dtype}`).toBe(true);
      }
      expect(runs.bf16, method).not.toEqual(runs.f32);
      // PPO's rollouts are sampled from the policy, so bf16's rounding draws other tokens: only
      // finite figures are asked of it. The others: the first step's loss, before any update
      // compounds the rounding, within bf16's rounding of f32's
      if (method !== 'ppo') expect(Math.abs(runs.bf16![0]! - runs.f32![0]!), method).toBeLessThan(0.01 * Math.abs(runs.f32![0]!));
    }
  });

  it('ppo without a reward model is refused by the config', () => {
    expect(() => loadConfig(base('ppo', 'x'))).toThrow(/reward_model/);
  });
});

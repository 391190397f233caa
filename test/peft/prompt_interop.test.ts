/**
 * Prompt tuning, P-tuning and prefix tuning against PEFT 0.21 (fixtures written by
 * scripts/fixtures/make_prompt_fixtures.py):
 *  - PEFT's adapter folders load here and reproduce PEFT's logits (real tokens, 1e-4);
 *  - PEFT's full encoder state (embedding, MLP, bidirectional LSTM, prefix projection) put into
 *    our encoders gives the very `prompt_embeddings` PEFT saved (our LSTM == torch.nn.LSTM);
 *  - our adapter folders have PEFT's layout, and PEFT reproduced our logits on them
 *    (python_loads_ours.json, written by the script's step 2 from folders this test exports
 *    when TUNEKIT_PROMPT_EXPORT is set).
 */
import { describe, it, expect, afterAll } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { noGrad } from '../../lib/autograd/tape.js';
import { manualSeed } from '../../lib/nn/random.js';
import { openSafetensorsSync } from '../../lib/io/safetensors.js';
import { f32FromRaw } from '../../lib/models/weights.js';
import { peftMethodFor } from '../../lib/peft/base/registry.js';
import { PromptTuningModel } from '../../lib/peft/prompt_tuning/index.js';
import { PTuningModel, PTuningEncoder, normalizePTuningConfig } from '../../lib/peft/p_tuning/index.js';
import { PrefixTuningModel, PrefixEncoder, normalizePrefixTuningConfig } from '../../lib/peft/prefix_tuning/index.js';
import { PromptEmbedding } from '../../lib/peft/prompt_tuning/model.js';
import type { PromptLearningModel } from '../../lib/peft/prompt/prompt_model.js';
import { PROMPT_FIXTURES, readJson, promptInputs, baseModel, fixtureInputs, loadEncoderState, maxErrMasked } from './prompt_helpers.js';

const CASES = ['prompt_random_gpt2', 'prompt_random_llama', 'ptuning_mlp_gpt2', 'ptuning_lstm_gpt2', 'prefix_gpt2', 'prefix_proj_gpt2', 'prefix_llama'];
const measured: Record<string, number> = {};
afterAll(() => console.log('max abs logit error vs PEFT:', JSON.stringify(measured)));

function fromPretrainedSync(dir: string, base: ReturnType<typeof baseModel>): PromptLearningModel {
  const type = readJson<{ peft_type: string }>(path.join(dir, 'adapter_config.json')).peft_type;
  if (type === 'PROMPT_TUNING') return PromptTuningModel.fromPretrainedSync(base, dir);
  if (type === 'P_TUNING') return PTuningModel.fromPretrainedSync(base, dir);
  return PrefixTuningModel.fromPretrainedSync(base, dir);
}

describe('PEFT-written prompt adapters load and reproduce PEFT logits', () => {
  for (const c of CASES) {
    it(c, () => {
      const exp = readJson<{ base: string; logits: number[][][] }>(path.join(PROMPT_FIXTURES, c, 'expected.json'));
      const m = fromPretrainedSync(path.join(PROMPT_FIXTURES, c, 'adapter'), baseModel(exp.base));
      m.eval();
      const { logits } = noGrad(() => m.forward(fixtureInputs()));
      expect(logits.shape).toEqual([2, 6, 97]);
      const err = maxErrMasked(logits.data() as Float32Array, exp.logits, promptInputs().attention_mask);
      measured[c] = err;
      expect(err).toBeLessThan(1e-4);
    });
  }
});

function savedEmbeddings(c: string): Float32Array {
  const r = openSafetensorsSync(path.join(PROMPT_FIXTURES, c, 'adapter', 'adapter_model.safetensors'));
  expect(r.names).toEqual(['prompt_embeddings']);
  const t = f32FromRaw(r.readTensor('prompt_embeddings'));
  r.close();
  return t.data() as Float32Array;
}

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
  return d;
}

describe("our prompt encoders with PEFT's weights give PEFT's saved output", () => {
  const cfgOf = (c: string) => readJson<Record<string, unknown>>(path.join(PROMPT_FIXTURES, c, 'adapter', 'adapter_config.json'));
  it('P-tuning MLP (mlp_head.{0,2,4})', () => {
    const c = 'ptuning_mlp_gpt2';
    const enc = new PTuningEncoder(normalizePTuningConfig({ ...cfgOf(c), inference_mode: false }, baseModel('gpt2_lm')));
    loadEncoderState(enc, path.join(PROMPT_FIXTURES, c, 'encoder.safetensors'));
    expect(maxDiff(noGrad(() => enc.forward()).data() as Float32Array, savedEmbeddings(c))).toBeLessThan(1e-5);
  });
  it('P-tuning LSTM (bidirectional, 2 layers, lstm_head.*_reverse) equals torch.nn.LSTM', () => {
    const c = 'ptuning_lstm_gpt2';
    const enc = new PTuningEncoder(normalizePTuningConfig({ ...cfgOf(c), inference_mode: false }, baseModel('gpt2_lm')));
    const names = loadEncoderState(enc, path.join(PROMPT_FIXTURES, c, 'encoder.safetensors'));
    expect(names).toContain('lstm_head.weight_hh_l1_reverse');
    const d = maxDiff(noGrad(() => enc.forward()).data() as Float32Array, savedEmbeddings(c));
    measured['lstm_encoder_output'] = d;
    expect(d).toBeLessThan(1e-5);
  });
  it('prefix projection (embedding, transform.{0,2})', () => {
    const c = 'prefix_proj_gpt2';
    const enc = new PrefixEncoder(normalizePrefixTuningConfig({ ...cfgOf(c), inference_mode: false }, baseModel('gpt2_lm')));
    loadEncoderState(enc, path.join(PROMPT_FIXTURES, c, 'encoder.safetensors'));
    expect(maxDiff(noGrad(() => enc.forward()).data() as Float32Array, savedEmbeddings(c))).toBeLessThan(1e-5);
  });
  it('prompt tuning and plain prefix: the table is the output', () => {
    const enc = new PromptEmbedding(4, 48);
    loadEncoderState(enc, path.join(PROMPT_FIXTURES, 'prompt_random_gpt2', 'encoder.safetensors'));
    expect(maxDiff(enc.forward().data() as Float32Array, savedEmbeddings('prompt_random_gpt2'))).toBe(0);
  });
});

/** Our adapters for the round trip through PEFT: [name, base, method, config]. */
const OURS: [string, string, string, Record<string, unknown>][] = [
  ['prompt_tuning_gpt2', 'gpt2_lm', 'prompt_tuning', { num_virtual_tokens: 4 }],
  ['p_tuning_mlp_gpt2', 'gpt2_lm', 'p_tuning', { num_virtual_tokens: 4, encoder_hidden_size: 16 }],
  ['p_tuning_lstm_gpt2', 'gpt2_lm', 'p_tuning', { num_virtual_tokens: 5, encoder_hidden_size: 8, encoder_reparameterization_type: 'LSTM' }],
  ['prefix_tuning_gpt2', 'gpt2_lm', 'prefix_tuning', { num_virtual_tokens: 4 }],
  ['prefix_tuning_proj_gpt2', 'gpt2_lm', 'prefix_tuning', { num_virtual_tokens: 3, prefix_projection: true, encoder_hidden_size: 16 }],
  ['prefix_tuning_llama', 'llama_lm', 'prefix_tuning', { num_virtual_tokens: 4 }],
  ['prompt_tuning_llama', 'llama_lm', 'prompt_tuning', { num_virtual_tokens: 3 }],
];

describe('our prompt adapters in PEFT format', () => {
  const exportDir = process.env.TUNEKIT_PROMPT_EXPORT;
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tunekit-prompt-'));
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
  for (const [name, base, method, cfg] of OURS) {
    it(`${name}: layout, reload, and PEFT reproduces our logits`, () => {
      manualSeed(7);
      const m = peftMethodFor(method).create(baseModel(base), cfg, 'default') as PromptLearningModel;
      m.eval();
      const { logits } = noGrad(() => m.forward(fixtureInputs()));
      const ours = Array.from(logits.data() as Float32Array);
      const out = path.join(exportDir ?? tmp, name);
      m.saveAdapterSync(path.join(out, 'adapter'));
      // PEFT's layout: one unprefixed tensor, the encoder's output; the prompt-learning fields
      const r = openSafetensorsSync(path.join(out, 'adapter', 'adapter_model.safetensors'));
      expect(r.names).toEqual(['prompt_embeddings']);
      const raw = r.readTensor('prompt_embeddings');
      r.close();
      const cfgOut = readJson<Record<string, unknown>>(path.join(out, 'adapter', 'adapter_config.json'));
      const L = m.config.numLayers;
      const width = method === 'prefix_tuning' ? L * 2 * (cfgOut.token_dim as number) : (cfgOut.token_dim as number);
      expect(raw.shape).toEqual([cfg.num_virtual_tokens, width]);
      expect(cfgOut).toMatchObject({ peft_type: method.toUpperCase(), num_virtual_tokens: cfg.num_virtual_tokens, num_transformer_submodules: 1, num_layers: L, task_type: 'CAUSAL_LM', inference_mode: true });
      // reload here: same logits
      const back = fromPretrainedSync(path.join(out, 'adapter'), baseModel(base));
      back.eval();
      const again = noGrad(() => back.forward(fixtureInputs())).logits.data() as Float32Array;
      expect(maxDiff(again, ours)).toBeLessThan(1e-5);
      if (exportDir) {
        const B = 2, T = 6, V = 97;
        const nested = Array.from({ length: B }, (_, b) => Array.from({ length: T }, (_, t) => ours.slice((b * T + t) * V, (b * T + t + 1) * V).map((x) => Math.round(x * 1e6) / 1e6)));
        fs.writeFileSync(path.join(out, 'ours.json'), JSON.stringify({ base, logits: nested }));
      }
    });
  }
  it.skipIf(!!exportDir)('PEFT loaded our folders and reproduced our logits (python_loads_ours.json)', () => {
    const rec = readJson<{ results: Record<string, { max_abs_err: number; ok: boolean }> }>(path.join(PROMPT_FIXTURES, 'python_loads_ours.json'));
    expect(Object.keys(rec.results).sort()).toEqual(OURS.map(([n]) => n).sort());
    for (const [n, r] of Object.entries(rec.results)) {
      expect(r.ok, n).toBe(true);
      expect(r.max_abs_err, n).toBeLessThan(1e-4);
    }
  });
});

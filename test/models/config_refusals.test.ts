/**
 * Hostile and wrong config.json files end in a typed error naming the field, fast and with
 * bounded memory: sizes that are not positive integers within CONFIG_LIMITS, parameter counts
 * over the budget, configs that disagree with the weights (found from the checkpoint's headers
 * before the model is allocated: `n_layer: 1e9` once ran the heap out after two minutes),
 * config.json that is not an object or lacks model_type, `num_labels: 0` (once `gemm_f32: ldc=0`),
 * and every field tunekit refuses rather than computing something else than transformers.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadPretrainedSync, parseGPT2Config, type LoadOptions } from '../../lib/models/index.js';
import { openCheckpointSync, writeSafetensorsSync } from '../../lib/io/safetensors.js';
import { TunekitError } from '../../lib/errors.js';
import { native } from '../../lib/native.js';
import { dir, readJson } from './helpers.js';

let tmp: string;
beforeAll(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tunekit-config-refusals-')); });
afterAll(() => { fs.rmSync(tmp, { recursive: true, force: true }); });

/** A copy of a fixture folder whose config.json is edited, or replaced by `text`. */
function variant(name: string, edit: ((c: Record<string, unknown>) => void) | { text: string }): string {
  const out = fs.mkdtempSync(path.join(tmp, `${name}-`));
  const cfg = readJson<Record<string, unknown>>(path.join(dir(name), 'config.json'));
  if (typeof edit === 'function') edit(cfg);
  fs.writeFileSync(path.join(out, 'config.json'), typeof edit === 'function' ? JSON.stringify(cfg) : edit.text);
  const ck = openCheckpointSync(dir(name));
  try {
    writeSafetensorsSync(path.join(out, 'model.safetensors'), [...ck.names].map((k) => ck.readTensor(k)), { format: 'pt' });
  } finally {
    ck.close();
  }
  return out;
}

/** Bounds of every refusal: well under a second, and no model-sized allocation. */
const TIME_LIMIT_MS = 1000;
const HEAP_LIMIT_BYTES = 64 * 2 ** 20;

interface Case {
  title: string;
  base: string;
  edit: ((c: Record<string, unknown>) => void) | { text: string };
  opts?: LoadOptions;
  code: string;
  message: RegExp;
}

const set = (patch: Record<string, unknown>) => (c: Record<string, unknown>) => Object.assign(c, patch);

const CASES: Case[] = [
  // sizes: positive integers within CONFIG_LIMITS, checked before anything is allocated
  { title: 'n_layer -1', base: 'gpt2_lm', edit: set({ n_layer: -1 }), code: 'ERR_CONFIG', message: /n_layer to be an integer in \[1, 1024\] but received -1/ },
  { title: 'n_layer 0', base: 'gpt2_lm', edit: set({ n_layer: 0 }), code: 'ERR_CONFIG', message: /n_layer .* received 0/ },
  { title: 'n_layer 1e9', base: 'gpt2_lm', edit: set({ n_layer: 1e9 }), code: 'ERR_CONFIG', message: /n_layer .* received 1000000000/ },
  { title: 'n_layer "2" (a string)', base: 'gpt2_lm', edit: set({ n_layer: '2' }), code: 'ERR_CONFIG', message: /n_layer .* received "2"/ },
  { title: 'n_embd 2.5', base: 'gpt2_lm', edit: set({ n_embd: 2.5 }), code: 'ERR_CONFIG', message: /n_embd .* received 2\.5/ },
  { title: 'n_embd not divisible by n_head', base: 'gpt2_lm', edit: set({ n_embd: 50 }), code: 'ERR_CONFIG', message: /n_embd 50 is not divisible by n_head 3/ },
  { title: 'n_positions 2^30', base: 'gpt2_lm', edit: set({ n_positions: 2 ** 30 }), code: 'ERR_CONFIG', message: /n_positions .*16777216.* received 1073741824/ },
  { title: 'n_inner 0', base: 'gpt2_lm', edit: set({ n_inner: 0 }), code: 'ERR_CONFIG', message: /n_inner .* received 0/ },
  { title: 'vocab_size an object', base: 'gpt2_lm', edit: set({ vocab_size: { n: 97 } }), code: 'ERR_CONFIG', message: /vocab_size .* received Object/ },
  { title: 'num_hidden_layers 1e9 (BERT)', base: 'bert_seqcls', edit: set({ num_hidden_layers: 1e9 }), opts: { task: 'seq_cls' }, code: 'ERR_CONFIG', message: /num_hidden_layers .* received 1000000000/ },
  { title: 'type_vocab_size 0 (BERT)', base: 'bert_seqcls', edit: set({ type_vocab_size: 0 }), opts: { task: 'seq_cls' }, code: 'ERR_CONFIG', message: /type_vocab_size .* received 0/ },
  { title: 'intermediate_size 2^21 (Llama)', base: 'llama_lm', edit: set({ intermediate_size: 2 ** 21 }), code: 'ERR_CONFIG', message: /intermediate_size to be an integer in \[1, 131072\]/ },
  // a parameter count over the budget (each size within its own limit)
  { title: '1000 layers of width 60000: 4e13 parameters', base: 'gpt2_lm', edit: set({ n_layer: 1000, n_embd: 60000, n_head: 3, n_inner: null }), code: 'ERR_LIMIT', message: /4\.3\d*e\+13 parameters .* over the limit/ },
  // sizes within limits that disagree with the weights: found from the headers, before building
  { title: 'n_layer 1000 over a 2-layer checkpoint', base: 'gpt2_lm', edit: set({ n_layer: 1000 }), code: 'ERR_FORMAT', message: /lacks 11976 weight\(s\).*transformer\.h\.2\.ln_1\.weight/ },
  { title: 'vocab_size 98 over a 97-token table', base: 'gpt2_lm', edit: set({ vocab_size: 98 }), code: 'ERR_SHAPE', message: /'transformer\.wte\.weight' has shape \[97,48\] .* expects \[98,48\]/ },
  { title: 'n_positions 4096 over a 64-row table', base: 'gpt2_lm', edit: set({ n_positions: 4096 }), code: 'ERR_SHAPE', message: /'transformer\.wpe\.weight' has shape \[64,48\] .* \[4096,48\]/ },
  { title: 'num_hidden_layers 500 (Llama) over a 2-layer checkpoint', base: 'llama_lm', edit: set({ num_hidden_layers: 500 }), code: 'ERR_FORMAT', message: /model\.layers\.2\./ },
  // config.json that is not an object, or lacks / mistypes model_type
  { title: 'config.json is an array', base: 'gpt2_lm', edit: { text: '[{"model_type": "gpt2"}]' }, code: 'ERR_CONFIG', message: /config\.json: expected a JSON object .* received an array/ },
  { title: 'config.json is a string', base: 'gpt2_lm', edit: { text: '"gpt2"' }, code: 'ERR_CONFIG', message: /received a string/ },
  { title: 'config.json is null', base: 'gpt2_lm', edit: { text: 'null' }, code: 'ERR_CONFIG', message: /received null/ },
  { title: 'no model_type', base: 'gpt2_lm', edit: (c) => { delete c.model_type; }, code: 'ERR_CONFIG', message: /config\.json has no model_type: expected one of 'gpt2'/ },
  { title: 'model_type 7', base: 'gpt2_lm', edit: set({ model_type: 7 }), code: 'ERR_CONFIG', message: /model_type to be a string .* received 7/ },
  // classification heads
  { title: 'num_labels 0', base: 'gpt2_seqcls', edit: set({ num_labels: 0 }), opts: { task: 'seq_cls' }, code: 'ERR_CONFIG', message: /num_labels to be an integer in \[1, 1048576\] but received 0/ },
  { title: 'num_labels -3', base: 'bert_seqcls', edit: set({ num_labels: -3 }), opts: { task: 'seq_cls' }, code: 'ERR_CONFIG', message: /num_labels .* received -3/ },
  { title: 'id2label an array', base: 'llama_seqcls', edit: (c) => { delete c.num_labels; c.id2label = ['a', 'b']; }, opts: { task: 'seq_cls' }, code: 'ERR_CONFIG', message: /id2label to be an object/ },
  { title: 'loadPretrainedSync numLabels 0', base: 'gpt2_lm', edit: set({}), opts: { task: 'seq_cls', numLabels: 0 }, code: 'ERR_VALUE', message: /numLabels to be an integer in \[1, 1048576\] but received 0/ },
  // fields refused rather than computed differently from transformers
  { title: 'activation_function 7', base: 'gpt2_lm', edit: set({ activation_function: 7 }), code: 'ERR_CONFIG', message: /activation_function .* received 7/ },
  { title: 'activation_function "mish"', base: 'gpt2_lm', edit: set({ activation_function: 'mish' }), code: 'ERR_CONFIG', message: /activation_function 'mish' is not supported/ },
  { title: 'GPT-2 add_cross_attention', base: 'gpt2_lm', edit: set({ add_cross_attention: true }), code: 'ERR_CONFIG', message: /add_cross_attention true is not supported/ },
  { title: 'layer_norm_epsilon -1', base: 'gpt2_lm', edit: set({ layer_norm_epsilon: -1 }), code: 'ERR_CONFIG', message: /layer_norm_epsilon to be a number in \[0, inf\) but received -1/ },
  { title: 'resid_pdrop 1', base: 'gpt2_lm', edit: set({ resid_pdrop: 1 }), code: 'ERR_CONFIG', message: /resid_pdrop to be a number in \[0, 1\) but received 1/ },
  { title: 'scale_attn_weights "no"', base: 'gpt2_lm', edit: set({ scale_attn_weights: 'no' }), code: 'ERR_CONFIG', message: /scale_attn_weights to be true or false but received "no"/ },
  { title: 'tie_word_embeddings 0', base: 'gpt2_lm', edit: set({ tie_word_embeddings: 0 }), code: 'ERR_CONFIG', message: /tie_word_embeddings to be true or false/ },
  { title: 'eos_token_id "2"', base: 'gpt2_lm', edit: set({ eos_token_id: '2' }), code: 'ERR_CONFIG', message: /eos_token_id to be an integer token id/ },
  { title: 'BERT position_embedding_type relative_key', base: 'bert_tokcls', edit: set({ position_embedding_type: 'relative_key' }), opts: { task: 'token_cls' }, code: 'ERR_CONFIG', message: /position_embedding_type 'relative_key'/ },
  { title: 'BERT add_cross_attention', base: 'bert_tokcls', edit: set({ add_cross_attention: true }), opts: { task: 'token_cls' }, code: 'ERR_CONFIG', message: /add_cross_attention/ },
  { title: 'BERT hidden_act prelu (learned)', base: 'bert_seqcls', edit: set({ hidden_act: 'prelu' }), opts: { task: 'seq_cls' }, code: 'ERR_CONFIG', message: /hidden_act 'prelu' is not supported/ },
  { title: 'Llama hidden_act xielu', base: 'llama_lm', edit: set({ hidden_act: 'xielu' }), code: 'ERR_CONFIG', message: /hidden_act 'xielu'/ },
  { title: 'Llama rope yarn', base: 'llama_lm', edit: set({ rope_parameters: { rope_type: 'yarn', rope_theta: 10000, factor: 4 } }), code: 'ERR_CONFIG', message: /rope type 'yarn' is not supported/ },
  { title: 'Llama rope dynamic (4.x rope_scaling)', base: 'llama_lm', edit: set({ rope_scaling: { type: 'dynamic', factor: 2 } }), code: 'ERR_CONFIG', message: /rope type 'dynamic'/ },
  { title: 'Llama partial_rotary_factor 0.5', base: 'llama_lm', edit: set({ partial_rotary_factor: 0.5 }), code: 'ERR_CONFIG', message: /partial_rotary_factor 0\.5 is not supported/ },
  { title: 'Llama rope_theta -1', base: 'llama_lm', edit: set({ rope_parameters: { rope_type: 'default', rope_theta: -1 } }), code: 'ERR_CONFIG', message: /rope_theta .* received -1/ },
  { title: 'Llama3 rope high_freq_factor <= low_freq_factor', base: 'llama3_lm', edit: (c) => { (c.rope_parameters as Record<string, unknown>).high_freq_factor = 1; }, code: 'ERR_CONFIG', message: /high_freq_factor .* > low_freq_factor 1/ },
  { title: 'Llama linear rope without factor', base: 'llama_lm', edit: set({ rope_parameters: { rope_type: 'linear', rope_theta: 10000 } }), code: 'ERR_CONFIG', message: /rope type 'linear' needs 'factor'/ },
  { title: 'Llama odd head_dim', base: 'llama_lm', edit: set({ head_dim: 7 }), code: 'ERR_CONFIG', message: /head_dim 7 is odd/ },
  { title: 'Llama num_key_value_heads 3 of 4', base: 'llama_lm', edit: set({ num_key_value_heads: 3 }), code: 'ERR_CONFIG', message: /multiple of num_key_value_heads 3/ },
  { title: 'Qwen2 use_sliding_window', base: 'qwen2_lm', edit: set({ use_sliding_window: true }), code: 'ERR_CONFIG', message: /use_sliding_window/ },
  { title: 'Qwen2 sliding_attention layers', base: 'qwen2_lm', edit: set({ layer_types: ['full_attention', 'sliding_attention'] }), code: 'ERR_CONFIG', message: /layer_types .*sliding_attention/ },
];

describe('config.json refusals: typed, naming the field, fast and without allocating the model', () => {
  for (const c of CASES) {
    it(c.title, () => {
      const folder = variant(c.base, c.edit);
      const native0 = native.memoryStats().liveBytes;
      const heap0 = process.memoryUsage().heapUsed;
      const t0 = performance.now();
      let err: unknown;
      try {
        loadPretrainedSync(folder, c.opts).model.dispose();
      } catch (e) {
        err = e;
      }
      const ms = performance.now() - t0;
      expect(err).toBeInstanceOf(TunekitError);
      expect((err as TunekitError).code).toBe(c.code);
      expect((err as TunekitError).message).toMatch(c.message);
      expect(ms).toBeLessThan(TIME_LIMIT_MS);
      expect(native.memoryStats().liveBytes - native0).toBeLessThanOrEqual(0);
      expect(process.memoryUsage().heapUsed - heap0).toBeLessThan(HEAP_LIMIT_BYTES);
    });
  }

  it('a hand-built config (no loader) is checked the same way', () => {
    expect(() => parseGPT2Config({ model_type: 'gpt2', n_layer: 1e9 })).toThrow(/n_layer .* received 1000000000/);
    expect(() => parseGPT2Config({ model_type: 'gpt2', activation_function: 7 })).toThrow(/activation_function/);
  });
});

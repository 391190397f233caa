/** Shared helpers of the model tests: fixture folders, their inputs, and error measures. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import '../../lib/index.js';
import { tensor } from '../../lib/tensor/creation.js';
import type { Tensor } from '../../lib/tensor/tensor.js';
import type { ModelInputs, Task } from '../../lib/models/common.js';

export const FIXTURES = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'models');

export interface Expected {
  task: Task;
  class: string;
  shape: number[];
  logits: number[];
  inv_freq?: number[];
  prefix?: { P: number; shape: number[]; k: number[][]; v: number[][] };
  prefix_logits?: number[];
  generate?: { prompts: number[][]; max_new_tokens: number; batched: number[][]; single: number[][] };
}
export interface Inputs { input_ids: number[][]; attention_mask: number[][]; token_type_ids?: number[][] }

export const dir = (name: string) => path.join(FIXTURES, name);
export const readJson = <T>(file: string): T => JSON.parse(fs.readFileSync(file, 'utf8')) as T;
export const expectedOf = (name: string) => readJson<Expected>(path.join(dir(name), 'expected.json'));
export const inputsOf = (name: string) => readJson<Inputs>(path.join(dir(name), 'inputs.json'));

export const ids2d = (rows: number[][]) => tensor(Int32Array.from(rows.flat()), [rows.length, rows[0]!.length], 'i32') as Tensor<'i32'>;

export function modelInputs(inp: Inputs): ModelInputs {
  const out: ModelInputs = { inputIds: ids2d(inp.input_ids), attentionMask: ids2d(inp.attention_mask) };
  if (inp.token_type_ids) out.tokenTypeIds = ids2d(inp.token_type_ids);
  return out;
}

/**
 * Tolerance against transformers (both f32): relative error |a - b| / (|b| + FLOOR) < REL_TOL,
 * i.e. allclose(rtol = 1e-4, atol = 1e-5). The absolute floor keeps logits near zero (where
 * summation order alone moves the relative error) from dominating; measured absolute errors are
 * about 5e-6 on logits up to 9.
 */
export const REL_TOL = 1e-4;
export const FLOOR = 0.1;

/**
 * Max relative error of `got` against `want` (flat, same layout); for per-token outputs
 * [B, T, ...] only rows whose mask is 1 count (padding positions are not comparable).
 */
export function maxRelErr(got: ArrayLike<number>, want: ArrayLike<number>, shape: number[], mask?: number[][]): number {
  expectLength(got.length, want.length);
  const perToken = shape.length === 3 && mask;
  const inner = perToken ? shape[2]! : 1;
  let worst = 0;
  for (let i = 0; i < want.length; i++) {
    if (perToken) {
      const row = Math.floor(i / inner);
      const b = Math.floor(row / shape[1]!), t = row % shape[1]!;
      if (!mask[b]![t]) continue;
    }
    const e = Math.abs(got[i]! - want[i]!) / (Math.abs(want[i]!) + FLOOR);
    if (!(e <= worst)) worst = e; // NaN propagates
  }
  return worst;
}

function expectLength(a: number, b: number): void {
  if (a !== b) throw new Error(`length ${a} != expected ${b}`);
}

/** Max absolute error over the compared entries (same masking as maxRelErr). */
export function maxAbsErr(got: ArrayLike<number>, want: ArrayLike<number>, shape: number[], mask?: number[][]): { err: number; at: number; want: number } {
  const perToken = shape.length === 3 && mask;
  const inner = perToken ? shape[2]! : 1;
  let worst = { err: 0, at: -1, want: 0 };
  for (let i = 0; i < want.length; i++) {
    if (perToken) {
      const row = Math.floor(i / inner);
      if (!mask[Math.floor(row / shape[1]!)]![row % shape[1]!]) continue;
    }
    const e = Math.abs(got[i]! - want[i]!);
    if (!(e <= worst.err)) worst = { err: e, at: i, want: want[i]! };
  }
  return worst;
}

/**
 * config.json of a tiny random GPT-2, BERT or Llama (2 layers, dropout off; Llama with
 * grouped-query attention, 4 query heads over 2 key/value heads, and RoPE): `width` hidden units,
 * 2 x width in the MLP, `positions` positions. The CLI, device and serving tests build their
 * models from it.
 */
export function tinyRawConfig(arch: 'gpt2' | 'bert' | 'llama', vocab: number, width: number, positions: number): Record<string, unknown> {
  if (arch === 'gpt2') {
    return {
      model_type: 'gpt2', vocab_size: vocab, n_embd: width, n_layer: 2, n_head: 2, n_positions: positions, n_inner: 2 * width,
      activation_function: 'gelu_new', resid_pdrop: 0, embd_pdrop: 0, attn_pdrop: 0, layer_norm_epsilon: 1e-5,
      bos_token_id: 0, eos_token_id: 0, tie_word_embeddings: true,
    };
  }
  if (arch === 'bert') {
    return {
      model_type: 'bert', vocab_size: vocab, hidden_size: width, num_hidden_layers: 2, num_attention_heads: 2, intermediate_size: 2 * width,
      max_position_embeddings: positions, type_vocab_size: 2, hidden_act: 'gelu', hidden_dropout_prob: 0, attention_probs_dropout_prob: 0,
      layer_norm_eps: 1e-12, pad_token_id: 0,
    };
  }
  return {
    model_type: 'llama', vocab_size: vocab, hidden_size: width, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2,
    intermediate_size: 2 * width, max_position_embeddings: positions, rms_norm_eps: 1e-6, rope_theta: 10000, hidden_act: 'silu',
    bos_token_id: 1, eos_token_id: 2, tie_word_embeddings: false,
  };
}

/** Rotary frequencies against transformers' ROPE_INIT_FUNCTIONS, and config parsing of both rope layouts. */
import { describe, it, expect } from 'vitest';
import { parseLlamaConfig, ropeInvFreq } from '../../lib/models/index.js';
import { TunekitError } from '../../lib/errors.js';
import { dir, expectedOf, readJson } from './helpers.js';
import * as path from 'node:path';

const cfgOf = (name: string) => readJson<Record<string, unknown>>(path.join(dir(name), 'config.json'));

describe('rope inv_freq', () => {
  for (const name of ['llama_lm', 'llama3_lm', 'llama_tied_linear', 'qwen2_lm']) {
    it(`${name} equals transformers' inv_freq`, () => {
      const want = expectedOf(name).inv_freq!;
      const got = ropeInvFreq(parseLlamaConfig(cfgOf(name)).rope);
      expect(got.length).toBe(want.length);
      for (let i = 0; i < want.length; i++) expect(Math.abs(got[i]! - want[i]!)).toBeLessThanOrEqual(Math.abs(want[i]!) * 2.5e-7);
    });
  }

  it('reads transformers 4 layout (top-level rope_theta + rope_scaling with `type`) like rope_parameters', () => {
    const v5 = cfgOf('llama3_lm');
    const rp = v5.rope_parameters as Record<string, unknown>;
    const { rope_parameters: _drop, ...rest } = v5;
    const v4 = { ...rest, rope_theta: rp.rope_theta, rope_scaling: { type: 'llama3', factor: rp.factor, low_freq_factor: rp.low_freq_factor, high_freq_factor: rp.high_freq_factor, original_max_position_embeddings: rp.original_max_position_embeddings } };
    expect(parseLlamaConfig(v4).rope).toEqual(parseLlamaConfig(v5).rope);
    const lin = parseLlamaConfig({ ...rest, rope_theta: 500, rope_scaling: { type: 'linear', factor: 2 } }).rope;
    expect(lin).toMatchObject({ type: 'linear', theta: 500, factor: 2 });
    const none = parseLlamaConfig({ ...rest }).rope;
    expect(none).toMatchObject({ type: 'default', theta: 10000, dim: 12 });
  });

  it('refuses rope types it does not implement, naming the supported ones', () => {
    const c = { ...cfgOf('llama_lm'), rope_parameters: { rope_type: 'yarn', rope_theta: 10000, factor: 4 } };
    expect(() => parseLlamaConfig(c)).toThrow(TunekitError);
    expect(() => parseLlamaConfig(c)).toThrow(/'yarn'.*'default', 'linear', 'llama3'/);
    const l3 = { ...cfgOf('llama_lm'), rope_parameters: { rope_type: 'llama3', rope_theta: 10000, factor: 8 } };
    expect(() => parseLlamaConfig(l3)).toThrow(/low_freq_factor/);
  });

  it('takes head_dim, GQA, biases and tying from the config', () => {
    const t = parseLlamaConfig(cfgOf('llama_tied_linear'));
    expect(t).toMatchObject({ headDim: 16, numHeads: 4, numKvHeads: 2, qkvBias: true, oBias: true, mlpBias: true, tieWordEmbeddings: true });
    const q = parseLlamaConfig(cfgOf('qwen2_lm'));
    expect(q).toMatchObject({ modelType: 'qwen2', qkvBias: true, oBias: false, mlpBias: false });
    expect(() => parseLlamaConfig({ ...cfgOf('llama_lm'), num_key_value_heads: 3 })).toThrow(/multiple of num_key_value_heads/);
  });
});

/**
 * maxSequenceLength() gives the longest input each model accepts (the training runner refuses a
 * dataset.max_length above it), and forwards past it fail with ERR_VALUE naming the limit: a GPT-2
 * or BERT input longer than its position table once failed inside gatherRows with an index error.
 */
import { describe, it, expect } from 'vitest';
import { loadPretrainedSync, maxSequenceLength, generate } from '../../lib/models/index.js';
import { noGrad } from '../../lib/autograd/tape.js';
import { tidy } from '../../lib/tensor/scope.js';
import { tensor } from '../../lib/tensor/creation.js';
import type { Tensor } from '../../lib/tensor/tensor.js';
import type { LayerKV, ModelInputs, PretrainedModel } from '../../lib/models/common.js';
import { TunekitError } from '../../lib/errors.js';
import { dir, ids2d } from './helpers.js';

const row = (n: number) => [Array.from({ length: n }, (_, i) => 1 + (i % 90))];

function forwardError(model: PretrainedModel, inputs: ModelInputs): TunekitError | null {
  try {
    noGrad(() => tidy(() => { model.forward(inputs); }));
    return null;
  } catch (e) {
    expect(e).toBeInstanceOf(TunekitError);
    return e as TunekitError;
  }
}

describe('maxSequenceLength', () => {
  it('is n_positions / max_position_embeddings (Mistral: at most its sliding window)', () => {
    const want: Record<string, number> = { gpt2_lm: 64, bert_seqcls: 64, llama_lm: 64, qwen2_lm: 64, mistral_lm: 16 };
    for (const [name, n] of Object.entries(want)) {
      const { model } = loadPretrainedSync(dir(name), { task: name.startsWith('bert') ? 'seq_cls' : 'causal_lm' });
      expect(maxSequenceLength(model), name).toBe(n);
      expect(maxSequenceLength(model.config)).toBe(n);
      model.dispose();
    }
  });
});

describe('inputs longer than the position table', () => {
  it('GPT-2: 64 tokens run, 65 are ERR_VALUE naming n_positions (also through the cache and with a prefix)', () => {
    const { model } = loadPretrainedSync(dir('gpt2_lm'));
    expect(forwardError(model, { inputIds: ids2d(row(64)) })).toBeNull();
    const e = forwardError(model, { inputIds: ids2d(row(65)) })!;
    expect(e.code).toBe('ERR_VALUE');
    expect(e.message).toMatch(/65 positions \(65 new tokens\) exceed n_positions 64/);
    // 60 tokens cached + 5 new
    const cache: LayerKV[] = [];
    noGrad(() => tidy(() => { model.forward({ inputIds: ids2d(row(60)), cache }); }));
    const c = forwardError(model, { inputIds: ids2d(row(5)), cache })!;
    expect(c.message).toMatch(/65 positions \(60 cached \+ 5 new tokens\) exceed n_positions 64/);
    for (const kv of cache) { kv.k.dispose(); kv.v.dispose(); }
    // a 3-token prefix (prefix tuning) + 62 tokens
    const kv = () => tensor(new Float32Array(1 * 3 * 3 * 16), [1, 3, 3, 16]) as Tensor<'f32'>;
    const prefix = Array.from({ length: model.config.numLayers }, () => ({ k: kv(), v: kv() }));
    const p = forwardError(model, { inputIds: ids2d(row(62)), prefix })!;
    expect(p.message).toMatch(/65 positions \(3 prefix \+ 62 new tokens\) exceed n_positions 64/);
    model.dispose();
  });

  it('BERT: 65 tokens are ERR_VALUE naming max_position_embeddings', () => {
    const { model } = loadPretrainedSync(dir('bert_seqcls'), { task: 'seq_cls' });
    expect(forwardError(model, { inputIds: ids2d(row(64)) })).toBeNull();
    const e = forwardError(model, { inputIds: ids2d(row(65)) })!;
    expect(e.code).toBe('ERR_VALUE');
    expect(e.message).toMatch(/65 positions .* exceed max_position_embeddings 64/);
    model.dispose();
  });

  it('generate refuses a prompt + maxNewTokens that would pass the limit before generating anything', async () => {
    const { model } = loadPretrainedSync(dir('gpt2_lm'));
    const ok = await generate(model, row(60), { maxNewTokens: 5, eosTokenId: null }); // the last forward sees 64
    expect(ok.sequences[0]).toHaveLength(5);
    await expect(generate(model, row(60), { maxNewTokens: 6 })).rejects.toThrow(/need 65 positions, over the 64 positions .* at most 5/);
    model.dispose();
  });
});

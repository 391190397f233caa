/**
 * The shipped base model: a Hugging Face folder that tunekit loads, and that transformers loads
 * and reproduces (scripts/fixtures/check_builtin_base.py wrote python_check.json from
 * transformers' own run on the same text).
 */
import { describe, it, expect } from 'vitest';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import '../../lib/index.js';
import { loadPretrainedSync } from '../../lib/models/index.js';
import { resolveModelPath } from '../../lib/models/builtin.js';
import { Tokenizer } from '../../lib/tokenizer/index.js';
import { noGrad } from '../../lib/autograd/tape.js';
import { tensor } from '../../lib/tensor/creation.js';
import type { Tensor } from '../../lib/tensor/tensor.js';

const dir = resolveModelPath('builtin:tunekit-gpt2-small');
const check = JSON.parse(readFileSync(join(__dirname, '..', 'fixtures', 'builtin_base', 'python_check.json'), 'utf8'));

describe('built-in base model', () => {
  it('ships as a Hugging Face folder with a tokenizer that agrees with transformers', () => {
    for (const f of ['config.json', 'model.safetensors', 'tokenizer.json', 'README.md']) expect(existsSync(join(dir, f)), f).toBe(true);
    const tok = Tokenizer.fromFolderSync(dir);
    expect(tok.encode(check.text).ids).toEqual(check.input_ids);
  });

  it('reproduces transformers logits (GPT2LMHeadModel)', () => {
    expect(check.class).toBe('GPT2LMHeadModel');
    const { model } = loadPretrainedSync(dir, { task: 'causal_lm' });
    const ids = check.input_ids as number[];
    const logits = noGrad(() => model.forward({ inputIds: tensor(new Int32Array(ids), [1, ids.length]) as Tensor<'i32'> }).logits);
    const V = logits.shape[2]!;
    const all = logits.toArray();
    const last = all.slice((ids.length - 1) * V, (ids.length - 1) * V + 64);
    last.forEach((v, i) => expect(Math.abs(v - check.last_logits_head[i])).toBeLessThan(1e-3 + 1e-4 * Math.abs(v)));
    const argmax = ids.map((_, t) => { const row = all.slice(t * V, (t + 1) * V); return row.indexOf(Math.max(...row)); });
    expect(argmax).toEqual(check.argmax);
    model.dispose();
  });
});

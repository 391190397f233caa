/**
 * Our forward passes against transformers' logits (f32) for every fixture model and task,
 * including the legacy GPT-2 key names and a sharded checkpoint.
 */
import { describe, it, expect, afterAll } from 'vitest';
import { loadPretrainedSync } from '../../lib/models/index.js';
import { noGrad } from '../../lib/autograd/tape.js';
import { tidy } from '../../lib/tensor/scope.js';
import { tensor } from '../../lib/tensor/creation.js';
import type { Tensor } from '../../lib/tensor/tensor.js';
import { dir, expectedOf, inputsOf, modelInputs, maxRelErr, maxAbsErr, REL_TOL } from './helpers.js';

const CASES: [folder: string, expectedFrom: string][] = [
  ['gpt2_lm', 'gpt2_lm'], ['gpt2_seqcls', 'gpt2_seqcls'], ['gpt2_legacy', 'gpt2_lm'], ['gpt2_sharded', 'gpt2_lm'],
  ['bert_seqcls', 'bert_seqcls'], ['bert_tokcls', 'bert_tokcls'],
  ['llama_lm', 'llama_lm'], ['llama_seqcls', 'llama_seqcls'], ['llama3_lm', 'llama3_lm'], ['llama_tied_linear', 'llama_tied_linear'],
  ['qwen2_lm', 'qwen2_lm'], ['mistral_lm', 'mistral_lm'],
];

const measured: Record<string, { rel: number; abs: number }> = {};
afterAll(() => {
  console.log('max errors vs transformers (rel with floor, abs):', JSON.stringify(measured));
});

describe('logits match transformers', () => {
  for (const [folder, from] of CASES) {
    it(`${folder}`, () => {
      const exp = expectedOf(from);
      const inp = inputsOf(from);
      const { model, report } = loadPretrainedSync(dir(folder), { task: exp.task });
      expect(report.initialised).toEqual([]);
      const logits = noGrad(() => tidy(() => {
        const out = model.forward(modelInputs(inp));
        return Array.from(out.logits.contiguousRaw().data() as Float32Array);
      }));
      expect(logits.length).toBe(exp.logits.length);
      const err = maxRelErr(logits, exp.logits, exp.shape, inp.attention_mask);
      measured[folder] = { rel: err, abs: maxAbsErr(logits, exp.logits, exp.shape, inp.attention_mask).err };
      expect(err).toBeLessThan(REL_TOL);
      model.dispose();
    });
  }
});

describe('prefix key/values (prefix tuning) match transformers with a past-key-value prefix', () => {
  for (const name of ['gpt2_lm', 'llama_lm']) {
    it(`${name}`, () => {
      const exp = expectedOf(name);
      const inp = inputsOf(name);
      const pre = exp.prefix!;
      const { model } = loadPretrainedSync(dir(name));
      const logits = noGrad(() => tidy(() => {
        const t = (x: number[]) => tensor(Float32Array.from(x), pre.shape) as Tensor<'f32'>;
        const prefix = pre.k.map((k, i) => ({ k: t(k), v: t(pre.v[i]!) }));
        const out = model.forward({ ...modelInputs(inp), prefix });
        return Array.from(out.logits.contiguousRaw().data() as Float32Array);
      }));
      const err = maxRelErr(logits, exp.prefix_logits!, exp.shape, inp.attention_mask);
      measured[`${name}+prefix`] = { rel: err, abs: maxAbsErr(logits, exp.prefix_logits!, exp.shape, inp.attention_mask).err };
      expect(err).toBeLessThan(REL_TOL);
    });
  }
});

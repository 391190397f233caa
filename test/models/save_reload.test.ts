/**
 * savePretrainedSync -> loadPretrainedSync gives the same model: same tensor names as transformers
 * saved, same logits; and the Python side loads our folders (python_loads_ours.json).
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadPretrainedSync, savePretrainedSync } from '../../lib/models/index.js';
import { openCheckpointSync } from '../../lib/io/safetensors.js';
import { noGrad } from '../../lib/autograd/tape.js';
import { tidy } from '../../lib/tensor/scope.js';
import type { PretrainedModel } from '../../lib/models/common.js';
import { FIXTURES, dir, expectedOf, inputsOf, modelInputs, readJson } from './helpers.js';

let tmp: string;
beforeAll(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tunekit-models-')); });
afterAll(() => { fs.rmSync(tmp, { recursive: true, force: true }); });

const names = (d: string) => { const c = openCheckpointSync(d); try { return [...c.names].sort(); } finally { c.close(); } };
const logitsOf = (m: PretrainedModel, name: string) => noGrad(() => tidy(() =>
  Array.from(m.forward(modelInputs(inputsOf(name))).logits.contiguousRaw().data() as Float32Array)));

describe('savePretrainedSync -> loadPretrainedSync', () => {
  for (const name of ['gpt2_lm', 'gpt2_seqcls', 'bert_seqcls', 'bert_tokcls', 'llama_lm', 'llama_seqcls', 'llama3_lm', 'llama_tied_linear', 'qwen2_lm', 'mistral_lm']) {
    it(`${name} round-trips with transformers' key names`, () => {
      const task = expectedOf(name).task;
      const { model } = loadPretrainedSync(dir(name), { task });
      const out = path.join(tmp, name);
      savePretrainedSync(model, out);
      expect(names(out)).toEqual(names(dir(name)));
      const cfg = readJson<Record<string, unknown>>(path.join(out, 'config.json'));
      expect(cfg.architectures).toEqual([expectedOf(name).class]);
      const { model: again, report } = loadPretrainedSync(out, { task });
      expect(report).toEqual({ initialised: [], unused: [] });
      expect(logitsOf(again, name)).toEqual(logitsOf(model, name));
      model.dispose();
      again.dispose();
    });
  }

  it('bf16 save reloads close to the f32 model', () => {
    const { model } = loadPretrainedSync(dir('llama_lm'));
    const out = path.join(tmp, 'llama_bf16');
    savePretrainedSync(model, out, { dtype: 'bf16' });
    const { model: again } = loadPretrainedSync(out);
    const a = logitsOf(model, 'llama_lm'), b = logitsOf(again, 'llama_lm');
    const worst = Math.max(...a.map((v, i) => Math.abs(v - b[i]!)));
    expect(worst).toBeGreaterThan(0);
    expect(worst).toBeLessThan(0.5);
  });

  it('loads a causal-LM checkpoint into a classification head (new head initialised, lm_head unused)', () => {
    const { model, report } = loadPretrainedSync(dir('llama_lm'), { task: 'seq_cls', numLabels: 4 });
    expect(report.initialised).toEqual(['score.weight']);
    expect(model.config.numLabels).toBe(4);
    // BERT seq-cls -> token-cls: the pooler is dropped (transformers builds none), the classifier fits
    const { model: tok, report: r2 } = loadPretrainedSync(dir('bert_seqcls'), { task: 'token_cls' });
    expect(r2).toEqual({ initialised: [], unused: [] });
    expect(tok.namedParameters().some(([n]) => n.startsWith('bert.pooler'))).toBe(false);
  });

  it('loaded models start in eval mode', () => {
    const { model } = loadPretrainedSync(dir('bert_seqcls'), { task: 'seq_cls' });
    expect(model.training).toBe(false);
  });
});

describe('transformers loads folders written by savePretrainedSync', () => {
  it('python_loads_ours.json (written by scripts/fixtures/make_model_fixtures.py) records ok for every model', () => {
    const rec = readJson<{ ok: boolean; models: Record<string, { ok: boolean; max_rel_err?: number }> }>(path.join(FIXTURES, 'python_loads_ours.json'));
    expect(rec.ok).toBe(true);
    expect(Object.keys(rec.models).sort()).toEqual(['bert_seqcls', 'bert_tokcls', 'gpt2_lm', 'gpt2_seqcls', 'llama3_lm', 'llama_lm', 'llama_seqcls', 'llama_tied_linear', 'mistral_lm', 'qwen2_lm']);
    for (const m of Object.values(rec.models)) expect(m.ok).toBe(true);
  });
});

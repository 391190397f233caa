/**
 * LoRA adapters across PEFT and tunekit, both ways (fixtures: scripts/fixtures/make_lora_fixtures.py).
 *
 * - PEFT -> us: test/fixtures/lora/peft_<case>/ were written by PEFT 0.21 (init_lora_weights=False,
 *   so B is random) on the tiny transformers fixtures, with PEFT's logits; LoraModel.fromPretrainedSync
 *   must reproduce them (GPT-2 Conv1D / fan_in_fan_out, BERT SEQ_CLS with modules_to_save, Llama,
 *   rsLoRA with rank_pattern/alpha_pattern, layers_to_transform, a regex and 'all-linear').
 * - us -> PEFT: test/fixtures/lora/ours_<case>/ hold OUR adapters for the same configs with our
 *   logits. They are (re)written with
 *       TUNEKIT_WRITE_FIXTURES=1 npx vitest run test/peft/lora_interop.test.ts
 *   (the fixture script's --interop step does this, then loads them with PeftModel.from_pretrained
 *   and records the comparison in python_loads_ours.json, which this test requires to say ok for
 *   the very files committed: their sha256 is checked).
 */
import { describe, it, expect, afterAll } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import '../../lib/index.js';
import '../../lib/peft/index.js';
import { loadPretrainedSync } from '../../lib/models/index.js';
import { LoraModel } from '../../lib/peft/lora/model.js';
import { noGrad } from '../../lib/autograd/tape.js';
import { tidy } from '../../lib/tensor/scope.js';
import { rand } from '../../lib/tensor/creation.js';
import { manualSeed } from '../../lib/nn/random.js';
import type { PretrainedModel, Task } from '../../lib/models/common.js';
import { dir as modelDir, inputsOf, modelInputs, maxRelErr, maxAbsErr, REL_TOL } from '../models/helpers.js';

const LORA = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'lora');
const WRITE = process.env.TUNEKIT_WRITE_FIXTURES === '1';

interface Case { model: string; task: Task; lora: Record<string, unknown> }
interface Expected { model: string; task: Task; shape: number[]; logits: number[]; lora_layers: number }
const CASES = JSON.parse(fs.readFileSync(path.join(LORA, 'cases.json'), 'utf8')) as Record<string, Case>;
const readJson = <T>(f: string) => JSON.parse(fs.readFileSync(f, 'utf8')) as T;

function logitsOf(model: LoraModel | PretrainedModel, fixture: string): number[] {
  return noGrad(() => tidy(() => Array.from(model.forward(modelInputs(inputsOf(fixture))).logits.toTypedArray() as Float32Array)));
}
const loraLayerCount = (m: LoraModel, adapter = 'default') => [...m.layers.values()].filter((l) => l.adapters.has(adapter)).length;

const measured: Record<string, { rel: number; abs: number }> = {};
afterAll(() => console.log('LoRA vs PEFT, max errors (rel with floor 0.1, abs):', JSON.stringify(measured)));

describe('PEFT-written LoRA adapters load and reproduce PEFT logits', () => {
  for (const [name, c] of Object.entries(CASES)) {
    it(name, () => {
      const folder = path.join(LORA, `peft_${name}`);
      const exp = readJson<Expected>(path.join(folder, 'expected.json'));
      const { model: base } = loadPretrainedSync(modelDir(c.model), { task: c.task });
      const baseLogits = logitsOf(base, c.model);
      const lora = LoraModel.fromPretrainedSync(base, folder);
      expect(loraLayerCount(lora)).toBe(exp.lora_layers);
      const got = logitsOf(lora, c.model);
      const mask = inputsOf(c.model).attention_mask;
      const rel = maxRelErr(got, exp.logits, exp.shape, mask);
      measured[name] = { rel, abs: maxAbsErr(got, exp.logits, exp.shape, mask).err };
      expect(rel).toBeLessThan(REL_TOL);
      // the adapter really changes the model (B is not zero)
      expect(maxAbsErr(baseLogits, exp.logits, exp.shape, mask).err).toBeGreaterThan(1e-2);
      lora.dispose();
    });
  }

  it('rank_pattern, alpha_pattern and rsLoRA give each layer its own rank and scale', () => {
    const { model: base } = loadPretrainedSync(modelDir('gpt2_lm'));
    const lora = LoraModel.fromPretrainedSync(base, path.join(LORA, 'peft_gpt2_rslora_patterns'));
    const ad = (p: string) => lora.layers.get(p)!.adapters.get('default')!;
    expect(ad('transformer.h.0.attn.c_attn').r).toBe(2);
    expect(ad('transformer.h.0.attn.c_attn').scale).toBeCloseTo(6 / Math.sqrt(2), 12);
    expect(ad('transformer.h.1.attn.c_attn').r).toBe(4);
    expect(ad('transformer.h.1.mlp.c_fc').r).toBe(6);
    expect(ad('transformer.h.1.mlp.c_proj').scale).toBeCloseTo(3 / Math.sqrt(4), 12);
    expect(ad('transformer.h.1.attn.c_proj').scale).toBeCloseTo(6 / Math.sqrt(4), 12);
    lora.dispose();
  });

  it('layers_to_transform and a regex select only the named layers', () => {
    const { model: g } = loadPretrainedSync(modelDir('gpt2_lm'));
    const a = LoraModel.fromPretrainedSync(g, path.join(LORA, 'peft_gpt2_layers'));
    expect([...a.layers.keys()].sort()).toEqual(['transformer.h.1.attn.c_attn', 'transformer.h.1.mlp.c_fc']);
    a.dispose();
    const { model: b } = loadPretrainedSync(modelDir('bert_seqcls'), { task: 'seq_cls' });
    const r = new LoraModel(b, CASES.bert_regex!.lora);
    expect([...r.layers.keys()].sort()).toEqual([
      'bert.encoder.layer.1.attention.self.key', 'bert.encoder.layer.1.attention.self.query', 'bert.encoder.layer.1.output.dense',
    ]);
    r.dispose();
  });
});

describe('our LoRA adapters (written for PEFT)', () => {
  const entries = Object.entries(CASES);
  const pyPath = path.join(LORA, 'python_loads_ours.json');

  for (const [i, [name, c]] of entries.entries()) {
    it(`${name}: ${WRITE ? 'writes' : 'reloads'} ours_${name}`, () => {
      const folder = path.join(LORA, `ours_${name}`);
      if (WRITE) {
        manualSeed(1000 + i);
        const { model: base } = loadPretrainedSync(modelDir(c.model), { task: c.task });
        const lora = new LoraModel(base, { ...c.lora, init_lora_weights: false });
        if (c.task === 'seq_cls') {
          // a trained head: modules_to_save must travel with the adapter
          noGrad(() => {
            for (const [n, p] of lora.base.namedParameters()) {
              if (!/^(classifier|score)\./.test(n)) continue;
              const d = rand(p.shape, { seed: 77 + i, low: -0.5, high: 0.5 });
              const v = p.toTypedArray() as Float32Array, dv = d.toTypedArray() as Float32Array;
              p.copyFrom(v.map((x, k) => x + dv[k]!));
              d.dispose();
            }
          });
        }
        fs.rmSync(folder, { recursive: true, force: true });
        lora.saveAdapterSync(folder);
        const logits = logitsOf(lora, c.model);
        const shape = c.task === 'seq_cls' ? [2, 3] : [2, 10, 97];
        fs.writeFileSync(path.join(folder, 'expected.json'), JSON.stringify({ model: c.model, task: c.task, shape, logits, lora_layers: loraLayerCount(lora) }));
        lora.dispose();
      }
      // our own reload reproduces what we recorded, up to summation order (the fused kernel's
      // order changes with its blocking: a few f32 ulps of logits of size ~1-10)
      const exp = readJson<Expected>(path.join(folder, 'expected.json'));
      const { model: base } = loadPretrainedSync(modelDir(c.model), { task: c.task });
      const lora = LoraModel.fromPretrainedSync(base, folder);
      const got = logitsOf(lora, c.model);
      expect(maxAbsErr(got, exp.logits, exp.shape, inputsOf(c.model).attention_mask).err).toBeLessThan(1e-5);
      const cfg = readJson<Record<string, unknown>>(path.join(folder, 'adapter_config.json'));
      expect(cfg.peft_type).toBe('LORA');
      expect(Object.keys(cfg)).toEqual(Object.keys(cfg).sort());
      lora.dispose();
    });
  }

  it.skipIf(WRITE)('PEFT loaded every committed adapter of ours with the same logits (python_loads_ours.json)', () => {
    const py = readJson<{ adapters: Record<string, { ok: boolean; sha256: string; max_rel?: number; error?: string }> }>(pyPath);
    for (const [name] of entries) {
      const e = py.adapters[name];
      expect(e, `python_loads_ours.json has no entry for ${name}: rerun the fixture script`).toBeDefined();
      expect(e!.error ?? null).toBeNull();
      expect(e!.ok).toBe(true);
      expect(e!.max_rel!).toBeLessThan(REL_TOL);
      const sha = createHash('sha256').update(fs.readFileSync(path.join(LORA, `ours_${name}`, 'adapter_model.safetensors'))).digest('hex');
      expect(sha, `ours_${name} changed since PEFT checked it: rerun scripts/fixtures/make_lora_fixtures.py --interop`).toBe(e!.sha256);
    }
  });
});

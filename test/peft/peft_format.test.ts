/**
 * PEFT's on-disk adapter format, one defect of issue 17 per block (checked against peft 0.21;
 * the PEFT-written folders are the matrix fixtures of scripts/fixtures/make_peft_matrix_fixtures.py):
 *  - modules_to_save by short name ('wpe'): saved as `base_model.model.transformer.wpe.weight`
 *    and read back by fromPretrainedSync and `tunekit merge`, matched as PEFT matches (`endswith`);
 *  - prompt-learning heads: `base_model.<head>.*` (no `.model.`), modules_to_save listed;
 *  - LoRA on `embed_tokens`: PEFT also writes `embed_tokens.base_layer.weight`; it is read back
 *    (and written by us on the same rule).
 */
import { describe, it, expect, afterAll } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import '../../lib/index.js';
import '../../lib/peft/index.js';
import { loadPretrainedSync } from '../../lib/models/index.js';
import type { PretrainedModel, Task } from '../../lib/models/common.js';
import { LoraModel, peftSavesEmbeddingLayers } from '../../lib/peft/lora/model.js';
import { PromptTuningModel } from '../../lib/peft/prompt_tuning/model.js';
import { AdaLoraModel } from '../../lib/peft/adalora/model.js';
import { PrefixTuningModel } from '../../lib/peft/prefix_tuning/model.js';
import { savesParameter } from '../../lib/peft/base/peft_model.js';
import { openSafetensorsSync, writeSafetensorsSync, type RawTensor } from '../../lib/io/safetensors.js';
import { mergeCommand } from '../../lib/cli/merge.js';
import { noGrad } from '../../lib/autograd/tape.js';
import { tidy } from '../../lib/tensor/scope.js';
import { manualSeed } from '../../lib/nn/random.js';
import { ids2d, maxRelErr, REL_TOL } from '../models/helpers.js';

const MATRIX = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'peft_matrix');
const INPUTS = JSON.parse(fs.readFileSync(path.join(MATRIX, 'inputs.json'), 'utf8')) as Record<string, { input_ids: number[][]; attention_mask: number[][] }>;
const EXPECTED = (JSON.parse(fs.readFileSync(path.join(MATRIX, 'expected.json'), 'utf8')) as { cells: Record<string, { shape: number[]; logits: number[] }> }).cells;

const dirs: string[] = [];
afterAll(() => { for (const d of dirs) fs.rmSync(d, { recursive: true, force: true }); });
const newDir = () => { const d = fs.mkdtempSync(path.join(os.tmpdir(), 'tunekit-peftfmt-')); dirs.push(d); return d; };

const base = (arch: string, task: Task = 'causal_lm') => loadPretrainedSync(path.join(MATRIX, 'models', arch), { task }).model;
function logits(m: { forward: PretrainedModel['forward'] }, inputs: 'padded' | 'full' = 'padded'): number[] {
  const inp = INPUTS[inputs]!;
  return noGrad(() => tidy(() => Array.from(m.forward({ inputIds: ids2d(inp.input_ids), attentionMask: ids2d(inp.attention_mask) }).logits.toTypedArray() as Float32Array)));
}
const maxDiff = (a: number[], b: number[]) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);
function keys(dir: string): string[] {
  const r = openSafetensorsSync(path.join(dir, 'adapter_model.safetensors'));
  try { return [...r.names].sort(); } finally { r.close(); }
}
const cfgOf = (dir: string) => JSON.parse(fs.readFileSync(path.join(dir, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;

describe('modules_to_save by short name (PEFT: a module whose path ends with the name)', () => {
  it("'wpe' saves transformer.wpe.weight and fromPretrainedSync reads it back (was ERR_FORMAT: match no layer)", () => {
    manualSeed(1);
    const lora = new LoraModel(base('gpt2'), { r: 2, target_modules: ['c_attn'], modules_to_save: ['wpe'], init_lora_weights: false });
    noGrad(() => {
      const wpe = lora.base.namedParameters().find(([n]) => n === 'transformer.wpe.weight')![1];
      wpe.copyFrom((wpe.toTypedArray() as Float32Array).map((v, i) => v + 0.01 * (i % 7)));
    });
    const want = logits(lora);
    const dir = newDir();
    lora.saveAdapterSync(dir);
    expect(keys(dir)).toContain('base_model.model.transformer.wpe.weight');
    const back = LoraModel.fromPretrainedSync(base('gpt2'), dir);
    expect(maxDiff(logits(back), want)).toBe(0);
  });

  it("tunekit merge takes PEFT's folder with modules_to_save ['wpe'] and the merged model gives PEFT's logits", async () => {
    const adapter = path.join(MATRIX, 'peft', 'lora__gpt2__causal_lm');
    expect(cfgOf(adapter).modules_to_save).toEqual(['wpe']);
    const out = path.join(newDir(), 'merged');
    const log = console.log;
    console.log = () => undefined;
    try {
      await mergeCommand(['--model', path.join(MATRIX, 'models', 'gpt2'), '--adapter', adapter, '--output', out]);
    } finally {
      console.log = log;
    }
    const { model } = loadPretrainedSync(out);
    const exp = EXPECTED['lora__gpt2__causal_lm']!;
    expect(maxRelErr(logits(model), exp.logits, exp.shape, INPUTS.padded!.attention_mask)).toBeLessThan(REL_TOL);
  });

  it("matches as PEFT's `key.endswith(name)`: 'norm' selects model.norm and every *_layernorm of Llama", () => {
    expect(savesParameter('wpe', 'transformer.wpe.weight')).toBe(true);
    expect(savesParameter('transformer.wpe', 'transformer.wpe.weight')).toBe(true);
    expect(savesParameter('wpe', 'transformer.wte.weight')).toBe(false);
    expect(savesParameter('h.0', 'transformer.h.0.ln_1.weight')).toBe(true); // an ancestor module
    expect(savesParameter('norm', 'model.layers.1.post_attention_layernorm.weight')).toBe(true);
    expect(savesParameter('norm', 'model.norm.weight')).toBe(true);
    // PEFT's folder for that config holds exactly those tensors, and they load
    const dir = path.join(MATRIX, 'peft', 'lora__llama__seq_cls');
    const saved = keys(dir).filter((k) => !k.includes('lora_'));
    expect(saved).toEqual([
      'base_model.model.model.layers.0.input_layernorm.weight', 'base_model.model.model.layers.0.post_attention_layernorm.weight',
      'base_model.model.model.layers.1.input_layernorm.weight', 'base_model.model.model.layers.1.post_attention_layernorm.weight',
      'base_model.model.model.norm.weight', 'base_model.model.score.weight',
    ]);
    expect(() => LoraModel.fromPretrainedSync(base('llama', 'seq_cls'), dir)).not.toThrow();
  });
});

describe('modules_to_save in adapter_config.json lists what the file holds (PEFT adds its head names)', () => {
  it('LoRA and the AdaLoRA compact export of a classifier write [..., classifier, score]', () => {
    manualSeed(5);
    const lora = new LoraModel(base('bert', 'seq_cls'), { r: 2, modules_to_save: ['position_embeddings'] });
    const d1 = newDir();
    lora.saveAdapterSync(d1);
    expect(cfgOf(d1).modules_to_save).toEqual(['position_embeddings', 'classifier', 'score']);
    const ada = new AdaLoraModel(base('gpt2', 'seq_cls'), { init_r: 2, target_r: 1, total_step: 4, init_lora_weights: false });
    const d2 = newDir();
    ada.exportCompactLoraSync(d2);
    expect(cfgOf(d2).modules_to_save).toEqual(['classifier', 'score']);
    expect(keys(d2)).toContain('base_model.model.score.weight');
  });
});

describe('prompt-learning heads: base_model.<head> (PEFT keeps the model as base_model, no BaseTuner)', () => {
  for (const [arch, head] of [['gpt2', 'score'], ['bert', 'classifier']] as const) {
    it(`${arch} seq_cls prompt tuning writes base_model.${head}.* and lists modules_to_save`, () => {
      manualSeed(2);
      const pt = new PromptTuningModel(base(arch, 'seq_cls'), { num_virtual_tokens: 2 });
      const dir = newDir();
      pt.saveAdapterSync(dir);
      const heads = keys(dir).filter((k) => k !== 'prompt_embeddings');
      expect(heads.length).toBeGreaterThan(0);
      for (const k of heads) expect(k.startsWith(`base_model.${head}.`), k).toBe(true);
      expect(cfgOf(dir).modules_to_save).toEqual(['classifier', 'score']);
      const back = PromptTuningModel.fromPretrainedSync(base(arch, 'seq_cls'), dir);
      expect(maxDiff(logits(back, 'full'), logits(pt, 'full'))).toBe(0);
    });
  }

  it("PEFT's prefix-tuning classifier folder loads (was ERR_FORMAT: tensors a prompt-learning adapter does not use)", () => {
    const m = PrefixTuningModel.fromPretrainedSync(base('bert', 'seq_cls'), path.join(MATRIX, 'peft', 'prefix_tuning__bert__seq_cls'));
    const exp = EXPECTED['prefix_tuning__bert__seq_cls']!;
    expect(maxRelErr(logits(m, 'full'), exp.logits, exp.shape)).toBeLessThan(REL_TOL);
  });

  it('a folder tunekit wrote before (head under base_model.model.<head>) still loads', () => {
    manualSeed(3);
    const pt = new PromptTuningModel(base('gpt2', 'seq_cls'), { num_virtual_tokens: 2 });
    const dir = newDir();
    pt.saveAdapterSync(dir);
    // rewrite the file with the old key form
    const r = openSafetensorsSync(path.join(dir, 'adapter_model.safetensors'));
    const raws: RawTensor[] = [...r.names].map((n) => ({ ...r.readTensor(n), name: n.replace(/^base_model\./, 'base_model.model.').replace('base_model.model.prompt_embeddings', 'prompt_embeddings') }));
    r.close();
    writeSafetensorsSync(path.join(dir, 'adapter_model.safetensors'), raws, { format: 'pt' });
    expect(keys(dir)).toContain('base_model.model.score.weight');
    const back = PromptTuningModel.fromPretrainedSync(base('gpt2', 'seq_cls'), dir);
    expect(maxDiff(logits(back, 'full'), logits(pt, 'full'))).toBe(0);
  });
});

describe("LoRA on embed_tokens: PEFT's save_embedding_layers", () => {
  it("PEFT's folder (with embed_tokens.base_layer.weight, a changed table) loads with PEFT's logits (was ERR_FORMAT)", () => {
    const dir = path.join(MATRIX, 'peft', 'lora_embed__llama__causal_lm');
    expect(keys(dir)).toContain('base_model.model.model.embed_tokens.base_layer.weight');
    const m = LoraModel.fromPretrainedSync(base('llama'), dir);
    const exp = EXPECTED['lora_embed__llama__causal_lm']!;
    expect(maxRelErr(logits(m), exp.logits, exp.shape, INPUTS.padded!.attention_mask)).toBeLessThan(REL_TOL);
  });

  it('we write the base table when target_modules names embed_tokens (list or regex), as PEFT does, and not otherwise', () => {
    const llama = base('llama');
    expect(peftSavesEmbeddingLayers(['q_proj', 'embed_tokens'], llama)).toBe(true);
    expect(peftSavesEmbeddingLayers(['q_proj', 'lm_head'], llama)).toBe(true);
    expect(peftSavesEmbeddingLayers(['model.embed_tokens'], llama)).toBe(false); // PEFT tests list membership
    expect(peftSavesEmbeddingLayers('.*\\.(q_proj|embed_tokens)', llama)).toBe(true);
    expect(peftSavesEmbeddingLayers('.*\\.q_proj', llama)).toBe(false);
    expect(peftSavesEmbeddingLayers('all-linear', llama)).toBe(false);
    manualSeed(4);
    const lora = new LoraModel(llama, { r: 2, target_modules: ['q_proj', 'embed_tokens', 'lm_head'], init_lora_weights: false });
    const dir = newDir();
    lora.saveAdapterSync(dir);
    expect(keys(dir)).toEqual(expect.arrayContaining(['base_model.model.model.embed_tokens.base_layer.weight', 'base_model.model.lm_head.base_layer.weight']));
    const plain = new LoraModel(base('llama'), { r: 2, target_modules: ['q_proj'] });
    const d2 = newDir();
    plain.saveAdapterSync(d2);
    expect(keys(d2).some((k) => k.includes('base_layer'))).toBe(false);
  });
});

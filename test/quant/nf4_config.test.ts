/**
 * config.json of a 4-bit folder as transformers reads it. transformers' BitsAndBytesConfig
 * (utils/quantization_config.py, post_init) raises TypeError unless llm_int8_threshold is a
 * Python float, load_in_4bit / load_in_8bit / llm_int8_enable_fp32_cpu_offload /
 * llm_int8_has_fp16_weight / bnb_4bit_use_double_quant are bools, bnb_4bit_quant_type is a
 * string, llm_int8_skip_modules is null or a list, bnb_4bit_compute_dtype names a torch dtype and
 * bnb_4bit_quant_storage is one of float16, float32, int8, uint8, float64, bfloat16. JSON from
 * JavaScript writes 6 for 6.0, which Python's json reads as an int: the text must say 6.0.
 * (That transformers accepts our file is also checked with the real library:
 * scripts/fixtures/make_peft_matrix_fixtures.py --ours, recorded in python_reads_ours.json.)
 */
import { describe, it, expect, afterEach } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import '../../lib/index.js';
import '../../lib/peft/index.js';
import { loadPretrainedSync } from '../../lib/models/index.js';
import { LoraModel } from '../../lib/peft/lora/model.js';
import { savePretrainedSync } from '../../lib/models/loader.js';
import { quantizeModelSync } from '../../lib/quant/quantize.js';
import { saveNf4PretrainedSync, loadNf4PretrainedSync, nf4ConfigJson } from '../../lib/quant/checkpoint.js';
import { mergeQlora } from '../../lib/peft/qlora/merge.js';
import { NF4Linear } from '../../lib/quant/nf4_linear.js';
import { Linear } from '../../lib/nn/layers.js';
import { manualSeed } from '../../lib/nn/random.js';
import { noGrad } from '../../lib/autograd/tape.js';
import { tidy } from '../../lib/tensor/scope.js';
import { dir, inputsOf, modelInputs } from '../models/helpers.js';

const dirs: string[] = [];
afterEach(() => { while (dirs.length) fs.rmSync(dirs.pop()!, { recursive: true, force: true }); });
const newDir = () => { const d = fs.mkdtempSync(path.join(os.tmpdir(), 'tunekit-nf4cfg-')); dirs.push(d); return d; };

const TORCH_DTYPES = ['float16', 'float32', 'float64', 'bfloat16'];
const STORAGE = ['float16', 'float32', 'int8', 'uint8', 'float64', 'bfloat16'];

/** transformers' BitsAndBytesConfig checks, on the raw JSON text (Python's int/float split kept). */
function checkLikeTransformers(text: string): void {
  const qc = (JSON.parse(text) as { quantization_config: Record<string, unknown> }).quantization_config;
  expect(qc.quant_method).toBe('bitsandbytes');
  // a Python float has a '.' or an exponent in the JSON text
  const m = /"llm_int8_threshold": (-?[\d.eE+-]+)/.exec(text);
  expect(m, 'llm_int8_threshold is written').not.toBeNull();
  expect(m![1], 'llm_int8_threshold must be a Python float (6.0, not 6)').toMatch(/[.eE]/);
  for (const f of ['load_in_4bit', 'load_in_8bit', 'llm_int8_enable_fp32_cpu_offload', 'llm_int8_has_fp16_weight', 'bnb_4bit_use_double_quant']) {
    expect(typeof qc[f], f).toBe('boolean');
  }
  expect(qc.load_in_4bit && qc.load_in_8bit).toBe(false);
  expect(typeof qc.bnb_4bit_quant_type).toBe('string');
  expect(qc.llm_int8_skip_modules === null || Array.isArray(qc.llm_int8_skip_modules)).toBe(true);
  expect(TORCH_DTYPES).toContain(qc.bnb_4bit_compute_dtype);
  expect(STORAGE).toContain(qc.bnb_4bit_quant_storage);
}

describe('4-bit config.json is what transformers accepts', () => {
  it('saveNf4PretrainedSync writes llm_int8_threshold as 6.0 and every checked field with its Python type', () => {
    const { model } = loadPretrainedSync(dir('gpt2_lm'));
    quantizeModelSync(model);
    const out = newDir();
    saveNf4PretrainedSync(model, out);
    const text = fs.readFileSync(path.join(out, 'config.json'), 'utf8');
    expect(text).toContain('"llm_int8_threshold": 6.0');
    checkLikeTransformers(text);
    // our reader takes it back (a JSON number either way)
    const { model: back } = loadNf4PretrainedSync(out);
    expect(back.config.raw.quantization_config).toMatchObject({ llm_int8_threshold: 6 });
  });

  it('a reloaded and re-saved folder still writes 6.0 (the value read back is the JS number 6)', () => {
    const { model } = loadPretrainedSync(dir('gpt2_lm'));
    quantizeModelSync(model);
    const a = newDir(), b = newDir();
    saveNf4PretrainedSync(model, a);
    saveNf4PretrainedSync(loadNf4PretrainedSync(a).model, b);
    checkLikeTransformers(fs.readFileSync(path.join(b, 'config.json'), 'utf8'));
  });

  it('nf4ConfigJson leaves other numbers and already-fractional thresholds alone', () => {
    const text = nf4ConfigJson({ n_embd: 6, quantization_config: { llm_int8_threshold: 6, x: 6 } });
    expect(text).toContain('"n_embd": 6,');
    expect(text).toContain('"llm_int8_threshold": 6.0,');
    expect(text).toContain('"x": 6\n');
    expect(nf4ConfigJson({ quantization_config: { llm_int8_threshold: 5.5 } })).toContain('"llm_int8_threshold": 5.5');
    expect(JSON.parse(text)).toEqual({ n_embd: 6, quantization_config: { llm_int8_threshold: 6, x: 6 } });
  });

  it('a dense merge of an adapter over a 4-bit folder writes a dense folder: no quantization_config, every weight present', () => {
    manualSeed(3);
    const { model } = loadPretrainedSync(dir('gpt2_lm'));
    quantizeModelSync(model);
    const q = newDir();
    saveNf4PretrainedSync(model, q);
    const { model: nf4 } = loadNf4PretrainedSync(q);
    // only c_attn is adapted: the other NF4 layers (c_proj, c_fc, mlp.c_proj) must be written dense too
    const lora = new LoraModel(nf4, { r: 2, lora_alpha: 4, init_lora_weights: false, target_modules: ['c_attn'] });
    const want = noGrad(() => tidy(() => Array.from(lora.forward(modelInputs(inputsOf('gpt2_lm'))).logits.toTypedArray() as Float32Array)));
    const { model: merged } = mergeQlora(lora);
    for (const [, m] of merged.namedModules()) expect(m).not.toBeInstanceOf(NF4Linear);
    expect(new Map(merged.namedModules()).get('transformer.h.0.mlp.c_fc')).toBeInstanceOf(Linear);
    const out = newDir();
    savePretrainedSync(merged, out);
    const cfg = JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8')) as Record<string, unknown>;
    expect(cfg.quantization_config).toBeUndefined();
    const { model: back, report } = loadPretrainedSync(out);
    expect(report.initialised.filter((n) => !/^(score|classifier|lm_head)\./.test(n))).toEqual([]);
    const got = noGrad(() => tidy(() => Array.from(back.forward(modelInputs(inputsOf('gpt2_lm'))).logits.toTypedArray() as Float32Array)));
    let d = 0;
    for (let i = 0; i < got.length; i++) d = Math.max(d, Math.abs(got[i]! - want[i]!));
    expect(d).toBeLessThan(1e-4);
  });
});

/**
 * config.json fields that change the numbers, against transformers: tiny models whose configs set
 * fields away from their defaults (scripts/fixtures/make_config_fixtures.py) give transformers'
 * logits; an untied GPT-2 head is loaded, used and saved back; every ACT2FN name is computed as
 * transformers does or refused; and each architecture's parameter plan (what the loader checks
 * before allocating) lists exactly what the built model has.
 */
import { describe, it, expect, afterAll } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadPretrainedSync, savePretrainedSync, readConfigSync } from '../../lib/models/index.js';
import { architectureFor } from '../../lib/models/registry.js';
import { openCheckpointSync } from '../../lib/io/safetensors.js';
import { activate, parseActivation, SUPPORTED_ACTIVATIONS } from '../../lib/nn/activation.js';
import { noGrad } from '../../lib/autograd/tape.js';
import { tidy } from '../../lib/tensor/scope.js';
import { tensor } from '../../lib/tensor/creation.js';
import { TunekitError } from '../../lib/errors.js';
import type { Tensor } from '../../lib/tensor/tensor.js';
import type { Task } from '../../lib/models/common.js';
import { MODEL_LOGITS_TOL, OP_TOL } from '../tolerances.js';
import { FIXTURES, modelInputs, readJson, type Inputs } from './helpers.js';

const VARIANTS = path.join(FIXTURES, 'config_variants');
const variantNames = fs.readdirSync(VARIANTS).filter((d) => fs.existsSync(path.join(VARIANTS, d, 'expected.json'))).sort();

interface VariantExpected { task: Task; class: string; fields: Record<string, unknown>; shape: number[]; logits: number[] }

/** Worst |got - want| / (atol + rtol |want|) over the compared entries (<= 1 passes); padding positions of per-token outputs are skipped. */
function worstRatio(got: ArrayLike<number>, want: number[], shape: number[], mask: number[][], tol: { rtol: number; atol: number }): number {
  const perToken = shape.length === 3;
  const inner = perToken ? shape[2]! : 1;
  let worst = 0;
  for (let i = 0; i < want.length; i++) {
    if (perToken) {
      const row = Math.floor(i / inner);
      if (!mask[Math.floor(row / shape[1]!)]![row % shape[1]!]) continue;
    }
    const r = Math.abs(got[i]! - want[i]!) / (tol.atol + tol.rtol * Math.abs(want[i]!));
    if (!(r <= worst)) worst = r; // NaN propagates
  }
  return worst;
}

function logitsOf(dir: string, task: Task, inp: Inputs): { logits: number[]; unused: string[]; initialised: string[] } {
  const { model, report } = loadPretrainedSync(dir, { task });
  try {
    const logits = noGrad(() => tidy(() => Array.from(model.forward(modelInputs(inp)).logits.contiguousRaw().data() as Float32Array)));
    return { logits, unused: report.unused, initialised: report.initialised };
  } finally {
    model.dispose();
  }
}

const used: Record<string, number> = {};
afterAll(() => console.log('config variants, share of MODEL_LOGITS_TOL used:', JSON.stringify(used)));

describe('non-default config.json fields give transformers\' logits', () => {
  expect(variantNames.length).toBeGreaterThanOrEqual(15);
  for (const name of variantNames) {
    const exp = readJson<VariantExpected>(path.join(VARIANTS, name, 'expected.json'));
    it(`${name}: ${JSON.stringify(exp.fields)}`, () => {
      const inp = readJson<Inputs>(path.join(VARIANTS, name, 'inputs.json'));
      const got = logitsOf(path.join(VARIANTS, name), exp.task, inp);
      expect(got.initialised).toEqual([]);
      expect(got.unused).toEqual([]);
      expect(got.logits.length).toBe(exp.logits.length);
      const r = worstRatio(got.logits, exp.logits, exp.shape, inp.attention_mask, MODEL_LOGITS_TOL);
      used[name] = Number(r.toPrecision(2));
      expect(r).toBeLessThanOrEqual(1);
    });
  }
});

describe('GPT-2 with tie_word_embeddings: false', () => {
  const src = path.join(VARIANTS, 'gpt2_untied');
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tunekit-untied-'));
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('loads lm_head.weight as its own parameter (not wte) and saves it back; the reload gives the same logits', () => {
    const { model } = loadPretrainedSync(src);
    const names = new Map(model.namedParameters());
    expect(names.has('lm_head.weight')).toBe(true);
    const head = Array.from(names.get('lm_head.weight')!.toTypedArray() as Float32Array);
    const wte = Array.from(names.get('transformer.wte.weight')!.toTypedArray() as Float32Array);
    expect(head).not.toEqual(wte);
    const ck = openCheckpointSync(src);
    expect(head).toEqual(Array.from(new Float32Array(ck.readTensor('lm_head.weight').bytes.slice().buffer)));
    ck.close();
    savePretrainedSync(model, tmp);
    model.dispose();
    const saved = openCheckpointSync(tmp);
    expect(saved.names).toContain('lm_head.weight');
    saved.close();
    expect(readConfigSync(tmp).tie_word_embeddings).toBe(false);
    const inp = readJson<Inputs>(path.join(src, 'inputs.json'));
    expect(logitsOf(tmp, 'causal_lm', inp).logits).toEqual(logitsOf(src, 'causal_lm', inp).logits);
  });

  it('a tied GPT-2 lists a stray lm_head.weight as unused instead of dropping it silently', () => {
    const dir = fs.mkdtempSync(path.join(tmp, 'tied-'));
    fs.copyFileSync(path.join(src, 'model.safetensors'), path.join(dir, 'model.safetensors'));
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...readConfigSync(src), tie_word_embeddings: true }));
    const { model, report } = loadPretrainedSync(dir);
    expect(report.unused).toEqual(['lm_head.weight']);
    expect(model.namedParameters().some(([n]) => n === 'lm_head.weight')).toBe(false);
    model.dispose();
  });
});

describe('activations (transformers ACT2FN)', () => {
  const fx = readJson<{ all_names: string[]; x: number[]; values: Record<string, number[]> }>(path.join(FIXTURES, 'activations.json'));

  it('every implemented name equals transformers on [-12, 12]', () => {
    expect(Object.keys(fx.values).sort()).toEqual([...SUPPORTED_ACTIVATIONS].sort());
    const tol = OP_TOL.elementwise;
    for (const name of SUPPORTED_ACTIVATIONS) {
      const got = noGrad(() => tidy(() => Array.from(activate(tensor(Float32Array.from(fx.x), [fx.x.length]) as Tensor<'f32'>, name).toTypedArray() as Float32Array)));
      const r = worstRatio(got, fx.values[name]!, [got.length], [], tol);
      expect(r, name).toBeLessThanOrEqual(1);
    }
  });

  it('every other ACT2FN name, an unknown string and a non-string are refused with ERR_CONFIG naming the field and value', () => {
    const refused = fx.all_names.filter((n) => !(SUPPORTED_ACTIVATIONS as string[]).includes(n));
    expect(refused.length).toBeGreaterThan(0);
    for (const v of [...refused, 'gelu_neww', 7, null, ['relu']]) {
      let err: unknown;
      try { parseActivation('activation_function', v); } catch (e) { err = e; }
      expect(err, String(v)).toBeInstanceOf(TunekitError);
      expect((err as TunekitError).code).toBe('ERR_CONFIG');
      expect((err as TunekitError).message).toContain('activation_function');
      expect((err as TunekitError).message).toContain(typeof v === 'string' ? `'${v}'` : v === null ? 'null' : String(v).slice(0, 4));
    }
  });
});

describe('the parameter plan the loader checks before allocating', () => {
  const folders = [
    ...['gpt2_lm', 'gpt2_seqcls', 'bert_seqcls', 'bert_tokcls', 'llama_lm', 'llama_seqcls', 'llama_tied_linear', 'qwen2_lm', 'mistral_lm'].map((n) => path.join(FIXTURES, n)),
    ...variantNames.map((n) => path.join(VARIANTS, n)),
  ];
  it('lists exactly the built model\'s parameters, for every task', () => {
    for (const dir of folders) {
      const raw = readConfigSync(dir);
      const arch = architectureFor(raw.model_type);
      const tasks: Task[] = raw.model_type === 'bert' ? ['seq_cls', 'token_cls', 'base'] : ['causal_lm', 'seq_cls', 'token_cls'];
      for (const task of tasks) {
        const config = arch.parseConfig({ ...raw, num_labels: 3 });
        const model = arch.build(config, task);
        const built = model.namedParameters().map(([n, p]) => [n, [...p.shape]]);
        expect(arch.parameterShapes(config, task), `${path.basename(dir)} ${task}`).toEqual(built);
        model.dispose();
      }
    }
  });
});

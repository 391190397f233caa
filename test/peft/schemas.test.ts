/**
 * Each PEFT method's one schema (lib/peft/<method>/config.ts), checked against PEFT 0.21 itself
 * (test/fixtures/peft_defaults/peft_configs.json, written by scripts/fixtures/make_peft_defaults.py):
 * its defaults, the adapter_config.json files PEFT writes, and which layers layers_pattern /
 * layers_to_transform select. The API path and `tunekit train`'s config path report the same
 * problems; every accepted field changes what the method does, is file metadata, or is refused.
 */
import { describe, it, expect, afterAll } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import '../../lib/index.js';
import { peftMethodFor, registerPeftMethod, peftMethods } from '../../lib/peft/base/registry.js';
import { layerIndexOf } from '../../lib/peft/base/targets.js';
import { LoraModel } from '../../lib/peft/lora/model.js';
import { LoraLinear } from '../../lib/peft/lora/layer.js';
import { LoraSchema } from '../../lib/peft/lora/config.js';
import { AdaLoraModel } from '../../lib/peft/adalora/model.js';
import { SavedPromptEncoder, type PromptLearningModel } from '../../lib/peft/prompt/prompt_model.js';
import { PrefixEncoder } from '../../lib/peft/prefix_tuning/model.js';
import { loadConfig } from '../../lib/train/config.js';
import { loadPretrainedSync } from '../../lib/models/index.js';
import type { PretrainedModel, Task } from '../../lib/models/common.js';
import { TunekitError } from '../../lib/errors.js';
import { dir as modelDir } from '../models/helpers.js';

const FIXTURE = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'peft_defaults', 'peft_configs.json');
interface PeftFixture {
  versions: Record<string, string>;
  configs: Record<string, { class: string; defaults: Record<string, unknown>; file: Record<string, unknown> }>;
  layers: { model: string; config: Record<string, unknown>; adapted?: string[]; error?: string }[];
}
const PEFT = JSON.parse(fs.readFileSync(FIXTURE, 'utf8')) as PeftFixture;

const TASK_OF: Record<string, Task> = { gpt2_lm: 'causal_lm', llama_lm: 'causal_lm', bert_seqcls: 'seq_cls' };
const load = (name: string): PretrainedModel => loadPretrainedSync(modelDir(name), { task: TASK_OF[name] ?? 'causal_lm' }).model;

const tmpDirs: string[] = [];
afterAll(() => tmpDirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));
const newDir = () => {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'tunekit-schemas-'));
  tmpDirs.push(d);
  return d;
};

/** The problem lines of an ERR_CONFIG thrown by fn (header dropped). */
function problems(fn: () => unknown): string[] {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(TunekitError);
    expect((e as TunekitError).code).toBe('ERR_CONFIG');
    return (e as Error).message.split('\n').slice(1).map((l) => l.replace(/^ {2}- /, ''));
  }
  throw new Error('expected an ERR_CONFIG');
}

const minimal = { model: 'builtin:gpt2-tiny', dataset: { path: 'builtin:sotu' } };
/** `tunekit train`'s config path: the peft.* lines, prefix dropped. */
const configProblems = (method: string, block: unknown) =>
  problems(() => loadConfig({ ...minimal, method, peft: block } as Record<string, unknown>))
    .filter((l) => l.startsWith('peft.'))
    .map((l) => l.slice('peft.'.length));

/** Where tunekit's default differs from PEFT's dataclass default, and why. */
const DEFAULT_DIFFERENCES: Record<string, Record<string, unknown>> = {
  // PEFT requires num_virtual_tokens (its default None fails); tunekit's default is 20
  PROMPT_TUNING: { num_virtual_tokens: 20 },
  P_TUNING: { num_virtual_tokens: 20 },
  PREFIX_TUNING: { num_virtual_tokens: 20 },
};
/** PEFT fields its save_pretrained never writes (so no folder carries them): tunekit does not accept them. */
const NEVER_WRITTEN = ['runtime_config'];
/** tunekit's own fields (each marked as such in its schema), absent from `{}`'s parse or with their default. */
const TUNEKIT_ADDITIONS: Record<string, Record<string, unknown>> = { ADALORA: { budget_unit: undefined } };

describe('each method\'s schema has PEFT 0.21\'s defaults', () => {
  for (const [type, peft] of Object.entries(PEFT.configs)) {
    it(`${type} (${peft.class}): {} parses to PEFT's defaults, and PEFT's every written field is known`, () => {
      expect(PEFT.versions.peft).toBe('0.21.0');
      const schema = peftMethodFor(type).schema;
      const out = schema.parse({}) as Record<string, unknown>;
      for (const [field, peftDefault] of Object.entries(peft.defaults)) {
        if (NEVER_WRITTEN.includes(field)) {
          expect(field in (peft.file as object)).toBe(false);
          expect(schema.safeParse({ [field]: {} }).success).toBe(false);
          continue;
        }
        // PEFT's dataclass default of peft_type is None; its __post_init__ sets the method's type
        const want = field === 'peft_type' ? type : field in (DEFAULT_DIFFERENCES[type] ?? {}) ? DEFAULT_DIFFERENCES[type]![field] : peftDefault;
        if (field in out) expect(out[field], field).toEqual(want);
        // optional metadata and PEFT features tunekit does not implement: accepted at PEFT's default
        else expect(schema.safeParse({ [field]: peftDefault }).success, `${field} = ${JSON.stringify(peftDefault)}`).toBe(true);
      }
      for (const k of Object.keys(out)) expect(k in peft.defaults || k in (TUNEKIT_ADDITIONS[type] ?? {}), `${k} is PEFT's`).toBe(true);
    });

    it(`${type}: the adapter_config.json PEFT writes is accepted and creates the adapter`, () => {
      const method = peftMethodFor(type);
      expect(method.schema.safeParse(peft.file).success).toBe(true);
      const m = method.create(load('gpt2_lm'), { ...peft.file }, 'default');
      expect(m.adapterConfigs.get('default')).toMatchObject({ peft_type: type, task_type: 'CAUSAL_LM' });
    });
  }

  it('QLoRA: LoRA\'s fields with the QLoRA recipe\'s defaults plus the 4-bit base\'s settings', () => {
    const lora = peftMethodFor('lora').schema.parse({}) as Record<string, unknown>;
    const qlora = peftMethodFor('qlora').schema.parse({}) as Record<string, unknown>;
    const recipe = { r: 64, lora_alpha: 16, lora_dropout: 0.05, target_modules: 'all-linear', double_quant: true, blocksize: 64 };
    expect(qlora).toEqual({ ...lora, ...recipe });
    // a registry variant: its folders are LoRA folders, loaded through LoRA
    expect(peftMethodFor('qlora').variantOf).toBe('lora');
    expect(peftMethodFor('LORA').name).toBe('lora');
  });
});

describe('PEFT fields tunekit does not implement are refused by name', () => {
  // PEFT's default of each such field (the feature off) is accepted above; anything else is refused
  const cases: [string, string, unknown][] = [
    ['lora', 'exclude_modules', ['c_proj']],
    ['lora', 'lora_bias', true],
    ['lora', 'loftq_config', { loftq_bits: 4 }],
    ['lora', 'eva_config', {}],
    ['lora', 'corda_config', {}],
    ['lora', 'lora_ga_config', {}],
    ['lora', 'trainable_token_indices', [1, 2]],
    ['lora', 'layer_replication', [[0, 1]]],
    ['lora', 'target_parameters', ['w']],
    ['lora', 'alora_invocation_tokens', [1]],
    ['lora', 'use_qalora', true],
    ['lora', 'megatron_config', {}],
    ['lora', 'velora_config', {}],
    ['lora', 'monteclora_config', {}],
    ['lora', 'use_bdlora', {}],
    ['lora', 'arrow_config', {}],
    ['lora', 'kasa_config', {}],
    ['lora', 'ensure_weight_tying', true],
    ['adalora', 'alpha_pattern', { c_attn: 4 }],
    ['adalora', 'use_rslora', true],
    ['prompt_tuning', 'tokenizer_kwargs', { use_fast: true }],
  ];
  for (const [method, field, value] of cases) {
    it(`${method} ${field}: ${JSON.stringify(value)}`, () => {
      const lines = problems(() => peftMethodFor(method).create(load('gpt2_lm'), { [field]: value }, 'default'));
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(new RegExp(`^${field}: expected .* \\(.* not implemented in tunekit\\) but received `));
    });
  }

  it('bias other than "none", use_dora, and PEFT\'s other initialisations', () => {
    const lines = problems(() => new LoraModel(load('gpt2_lm'), { bias: 'lora_only', use_dora: true, init_lora_weights: 'olora' }));
    expect(lines).toEqual([
      `bias: expected one of "none" (PEFT's 'all' and 'lora_only' train the base layers' biases, not implemented in tunekit) but received string "lora_only"`,
      'init_lora_weights: expected one of true, false, "gaussian", "pissa" (PEFT\'s "olora", "eva", "corda", "loftq", "orthogonal", "mica" and "pissa_niter_N" are not implemented in tunekit) but received string "olora"',
      'use_dora: expected one of false (DoRA is not implemented in tunekit) but received boolean true',
    ]);
  });
});

describe('the API path and the config path report the same problems', () => {
  const bad: [string, Record<string, unknown>][] = [
    ['lora', { r: 0, lora_dropot: 0.1, lora_alpha: 'x', layers_pattern: 'h', init_lora_weights: 'gaussian ' }],
    ['lora', { target_modules: 'c_.*', layers_to_transform: [0], layers_pattern: 'h' }],
    ['lora', { layers_pattern: 'h' }],
    ['qlora', { blocksize: 32, double_quant: 'yes' }],
    ['adalora', { init_r: 4, target_r: 8 }],
    ['adalora', { total_step: 10, tinit: 6, tfinal: 4 }],
    ['adalora', { beta1: 1, budget_unit: 'bytes', deltaT: 0 }],
    ['prompt_tuning', { prompt_tuning_init: 'TEXT' }],
    ['prompt_tuning', { num_virtual_tokens: 2.5, prompt_tuning_init: 'FILE' }],
    ['p_tuning', { encoder_reparameterization_type: 'GRU', encoder_dropout: 1, encoder_num_layers: 0 }],
    ['prefix_tuning', { init_weights: 'one', num_transformer_submodules: 2, prefix_projektion: true }],
    ['prefix_tuning', { peft_type: 'LORA', task_type: 'REGRESSION' }],
  ];
  for (const [method, block] of bad) {
    it(`${method} ${JSON.stringify(block)}`, () => {
      const api = problems(() => peftMethodFor(method).create(load('gpt2_lm'), block, 'default'));
      expect(api.length).toBeGreaterThan(0);
      expect(configProblems(method, block)).toEqual(api);
    });
  }

  it('the lines name the field, what was expected and what was received', () => {
    expect(configProblems('lora', bad[0]![1])).toEqual([
      'r: expected a number > 0 but received number 0',
      'lora_alpha: expected a number but received string "x"',
      'init_lora_weights: expected one of true, false, "gaussian", "pissa" (PEFT\'s "olora", "eva", "corda", "loftq", "orthogonal", "mica" and "pissa_niter_N" are not implemented in tunekit) but received string "gaussian "',
      'lora_dropot: unknown field (check the spelling) with value 0.1',
    ]);
    expect(configProblems('lora', bad[1]![1])).toEqual([
      'layers_to_transform: expected null when target_modules is a string (a regex or "all-linear"; give a list of names to select layers) but received array [0]',
      'layers_pattern: expected null when target_modules is a string (a regex or "all-linear") but received string "h"',
    ]);
    expect(configProblems('adalora', bad[4]![1])).toEqual(['target_r: expected a number <= init_r = 4 (the allocator only removes ranks) but received number 8']);
    expect(configProblems('qlora', bad[3]![1])).toEqual(['double_quant: expected a boolean (true or false) but received string "yes"', 'blocksize: expected one of 64, 128, 256 but received number 32']);
    expect(configProblems('adalora', bad[5]![1])).toEqual(['tinit: expected a number < total_step - tfinal = 6 (total_step 10, tfinal 4) so that there is a budgeting phase; decrease tinit/tfinal or train longer but received number 6']);
    expect(configProblems('prompt_tuning', bad[7]![1])).toEqual(['prompt_tuning_init_text: expected a non-empty string when prompt_tuning_init is TEXT but received nothing']);
  });

  it('unknown fields are refused for every method', () => {
    for (const method of peftMethods()) {
      expect(configProblems(method, { lora_alpah: 16 }), method).toEqual(['lora_alpah: unknown field (check the spelling) with value 16']);
    }
  });

  it('RLHF methods take LoRA\'s schema for their adapter', () => {
    for (const method of ['reward', 'dpo', 'ppo']) expect(configProblems(method, { r: 0 }), method).toEqual(['r: expected a number > 0 but received number 0']);
  });

  it('peft fields are checked even when top-level fields are wrong too: one run lists every problem', () => {
    const lines = problems(() => loadConfig({ model: 42, dataset: { path: 'builtin:sotu' }, training: { epochs: 'three' }, method: 'adalora', peft: { init_r: 2, target_r: 4, lora_dropot: 0 } }));
    expect(lines.sort()).toEqual([
      'model: expected a string but received number 42',
      'peft.lora_dropot: unknown field (check the spelling) with value 0',
      'peft.target_r: expected a number <= init_r = 2 (the allocator only removes ranks) but received number 4',
      'training.epochs: expected a number but received string "three"',
    ]);
    // a cross-field rule waits for the fields it reads to parse (then the next run reports it)
    expect(problems(() => loadConfig({ model: 42, dataset: { path: 'builtin:sotu' }, method: 'adalora', peft: { init_r: 'two', target_r: 4 } })).sort()).toEqual([
      'model: expected a string but received number 42',
      'peft.init_r: expected a number but received string "two"',
    ]);
  });

  it('a training config may not set inference_mode (it would freeze the adapter)', () => {
    expect(problems(() => loadConfig({ ...minimal, peft: { inference_mode: true } }))).toEqual([
      'peft.inference_mode: expected false for training (true freezes the adapter; PEFT writes it into saved folders) but received true',
    ]);
  });
});

describe('layers_pattern and layers_to_transform select the layers PEFT selects', () => {
  for (const c of PEFT.layers) {
    it(`${c.model} ${JSON.stringify(c.config)}`, () => {
      const make = () => new LoraModel(load(c.model), { ...c.config, init_lora_weights: false });
      if (c.error) {
        expect(c.error).toMatch(/not found in the base model/);
        expect(make).toThrow(/matched no linear (or convolution )?layer/);
        return;
      }
      expect([...make().layers.keys()].sort()).toEqual(c.adapted);
    });
  }

  it('layers_pattern changes the result: the pattern names which numbered segment is the layer', () => {
    // a nested index (an expert's) is not the layer's; a pattern picks the segment it names
    expect(layerIndexOf('model.layers.3.mlp.experts.0.up_proj')).toBe(3);
    expect(layerIndexOf('model.layers.3.mlp.experts.0.up_proj', 'experts')).toBe(0);
    expect(layerIndexOf('transformer.h.2.attn.c_attn', ['layer', 'h'])).toBe(2);
    expect(layerIndexOf('transformer.h.2.attn.c_attn', 'layers')).toBeNull();
    expect(layerIndexOf('transformer.wpe')).toBeNull();
    expect(() => layerIndexOf('transformer.h.2.attn', '(')).toThrow(/layers_pattern: expected a valid regular expression but received "\("/);
  });

  it('AdaLoRA selects the same layers', () => {
    const m = new AdaLoraModel(load('gpt2_lm'), { target_modules: ['c_attn', 'c_proj'], layers_to_transform: [1], layers_pattern: 'h', init_r: 2, target_r: 1 });
    expect([...m.layers.keys()].sort()).toEqual(['transformer.h.1.attn.c_attn', 'transformer.h.1.attn.c_proj', 'transformer.h.1.mlp.c_proj']);
  });
});

describe('every accepted LoRA field does what it says (or is file metadata)', () => {
  const lin = (m: LoraModel, p: string) => m.layers.get(p) as LoraLinear;
  const attn = 'transformer.h.0.attn.c_attn', proj = 'transformer.h.0.attn.c_proj';

  it('r, lora_alpha, use_rslora, lora_dropout, rank_pattern, alpha_pattern, target_modules', () => {
    const m = new LoraModel(load('gpt2_lm'), { r: 4, lora_alpha: 16, lora_dropout: 0.1, target_modules: ['c_attn', 'c_proj'], rank_pattern: { c_proj: 2 }, alpha_pattern: { 'h\\.1\\.attn\\.c_attn': 2 } });
    const a = lin(m, attn).adapters.get('default')!;
    expect(a.A.shape).toEqual([4, 48]);
    expect([a.r, a.alpha, a.scale, a.dropout]).toEqual([4, 16, 4, 0.1]);
    expect(lin(m, proj).adapters.get('default')!.r).toBe(2);
    expect(lin(m, 'transformer.h.1.attn.c_attn').adapters.get('default')!.scale).toBe(0.5);
    expect(m.layers.has('transformer.h.0.mlp.c_fc')).toBe(false);
    const rs = new LoraModel(load('gpt2_lm'), { r: 4, lora_alpha: 16, use_rslora: true });
    expect(lin(rs, attn).adapters.get('default')!.scale).toBe(8);
  });

  it('init_lora_weights: true (B = 0), "gaussian" (A ~ N(0, 1/r), B = 0), false (B random), "pissa" (base weight becomes the residual)', () => {
    const B = (init: unknown) => lin(new LoraModel(load('gpt2_lm'), { r: 4, init_lora_weights: init }), attn).adapters.get('default')!;
    const zero = (t: { toArray(): number[] }) => t.toArray().every((v) => v === 0);
    expect(zero(B(true).B)).toBe(true);
    const g = B('gaussian');
    expect(zero(g.B)).toBe(true);
    const a = g.A.toArray();
    const std = Math.sqrt(a.reduce((s, v) => s + v * v, 0) / a.length);
    expect(std).toBeGreaterThan(0.25 * 0.8);
    expect(std).toBeLessThan(0.25 * 1.2);
    expect(zero(B(false).B)).toBe(false);
    const base = load('gpt2_lm');
    const before = (base.namedParameters().find(([n]) => n === `${attn}.weight`)![1]).toArray();
    const p = new LoraModel(base, { r: 2, init_lora_weights: 'pissa' });
    const after = lin(p, attn).base_layer.weight.toArray();
    expect(after).not.toEqual(before);
  });

  it('fan_in_fan_out is corrected to each layer\'s layout, as PEFT does', () => {
    expect(new LoraModel(load('gpt2_lm'), { fan_in_fan_out: false }).adapterConfigs.get('default')!.fan_in_fan_out).toBe(true);
    expect(new LoraModel(load('bert_seqcls'), { fan_in_fan_out: true }).adapterConfigs.get('default')!.fan_in_fan_out).toBe(false);
  });

  it('modules_to_save trains and saves the module whole', () => {
    const m = new LoraModel(load('gpt2_lm'), { modules_to_save: ['wpe'] });
    expect(m.modulesToSave).toContain('wpe');
    expect(m.namedParameters().filter(([, t]) => t.requiresGrad).map(([n]) => n)).toContain('base_model.transformer.wpe.weight');
  });

  it('inference_mode: the adapter is created frozen (LoRA and AdaLoRA)', () => {
    const trainable = (m: LoraModel) => m.namedParameters().filter(([, t]) => t.requiresGrad).length;
    expect(trainable(new LoraModel(load('gpt2_lm'), {}))).toBeGreaterThan(0);
    expect(trainable(new LoraModel(load('gpt2_lm'), { inference_mode: true }))).toBe(0);
    expect(trainable(new AdaLoraModel(load('gpt2_lm'), { inference_mode: true, init_r: 2, target_r: 1 }))).toBe(0);
  });

  it('task_type: null becomes the model\'s task; another task is refused', () => {
    expect(new LoraModel(load('gpt2_lm'), {}).adapterConfigs.get('default')!.task_type).toBe('CAUSAL_LM');
    expect(new LoraModel(load('bert_seqcls'), {}).adapterConfigs.get('default')!.task_type).toBe('SEQ_CLS');
    expect(() => new LoraModel(load('gpt2_lm'), { task_type: 'SEQ_CLS' })).toThrow(/LoRA task_type: expected "CAUSAL_LM" \(the model's task is causal_lm\) or null but received "SEQ_CLS"/);
  });

  it('file metadata (base_model_name_or_path, revision, peft_version, auto_mapping, megatron_core, qalora_group_size) is kept into the saved folder', () => {
    const meta = { base_model_name_or_path: 'org/model', revision: 'v1', peft_version: '0.21.0', auto_mapping: null, megatron_core: 'megatron.core', qalora_group_size: 16 };
    const d = newDir();
    new LoraModel(load('gpt2_lm'), meta).saveAdapterSync(d);
    expect(JSON.parse(fs.readFileSync(path.join(d, 'adapter_config.json'), 'utf8'))).toMatchObject(meta);
  });

  it('AdaLoRA: r is ignored (the rank is init_r), lora_alpha 0 uses init_r, as in PEFT', () => {
    const m = new AdaLoraModel(load('gpt2_lm'), { r: 32, init_r: 3, target_r: 1, lora_alpha: 0 });
    const { ad } = m.svdAdapters()[0]!;
    expect(ad.lora.A.shape[0]).toBe(3);
  });
});

describe('prompt methods: inference_mode is PEFT\'s (no encoder, no init)', () => {
  it('P-tuning serves its table without the MLP/LSTM head; prefix tuning without the projection; TEXT init needs no text', () => {
    const pt = peftMethodFor('p_tuning').create(load('gpt2_lm'), { num_virtual_tokens: 3, encoder_reparameterization_type: 'LSTM', inference_mode: true }, 'default') as PromptLearningModel;
    expect(pt.encoder).toBeInstanceOf(SavedPromptEncoder);
    expect(pt.prompt().shape).toEqual([3, 48]);
    const trained = peftMethodFor('p_tuning').create(load('gpt2_lm'), { num_virtual_tokens: 3 }, 'default') as PromptLearningModel;
    expect(trained.encoder).not.toBeInstanceOf(SavedPromptEncoder);
    const px = peftMethodFor('prefix_tuning').create(load('gpt2_lm'), { num_virtual_tokens: 3, prefix_projection: true, inference_mode: true }, 'default') as PromptLearningModel;
    expect((px.encoder as PrefixEncoder).transform).toBeNull();
    expect(() => peftMethodFor('prompt_tuning').create(load('gpt2_lm'), { prompt_tuning_init: 'TEXT', inference_mode: true }, 'default')).not.toThrow();
  });

  it('num_virtual_tokens, token_dim, num_layers: filled from the model, contradictions refused', () => {
    const m = peftMethodFor('prefix_tuning').create(load('gpt2_lm'), {}, 'default');
    expect(m.adapterConfigs.get('default')).toMatchObject({ num_virtual_tokens: 20, token_dim: 48, num_layers: 2, num_attention_heads: 3, num_transformer_submodules: 1, encoder_hidden_size: 48 });
    expect(() => peftMethodFor('prompt_tuning').create(load('gpt2_lm'), { token_dim: 50 }, 'default')).toThrow(/48 wide but the config says 50/);
  });
});

describe('the registry owns the schemas', () => {
  it('duplicates are refused; a variant needs its method registered first', () => {
    const lora = peftMethodFor('lora');
    expect(() => registerPeftMethod({ ...lora })).toThrow(/PEFT method 'lora' \(LORA\) is already registered/);
    expect(() => registerPeftMethod({ ...lora, name: 'lora2' })).toThrow(/already registered/);
    expect(() => registerPeftMethod({ ...lora, name: 'lora3', variantOf: 'nothing' })).toThrow(/variant of 'nothing', which is not registered/);
  });

  it('a method registered with its schema is a `method:` of tunekit train at once, validated by that schema', () => {
    // what a new method's folder does in its index.ts (here: LoRA under another name and type)
    registerPeftMethod({ peftType: 'TOY_LORA', name: 'toy_lora', schema: LoraSchema, create: (model, config, name) => new LoraModel(model, config, name) });
    expect(loadConfig({ ...minimal, method: 'toy_lora', peft: { r: 2 } }).peft).toMatchObject({ r: 2, lora_alpha: 8 });
    expect(configProblems('toy_lora', { r: -1 })).toEqual(['r: expected a number > 0 but received number -1']);
    expect(problems(() => loadConfig({ ...minimal, method: 'sgd' }))[0]).toMatch(/^method: expected one of "full" \| "head_only" \| "lora" \| "qlora" \| "adalora" \| "prompt_tuning" \| "p_tuning" \| "prefix_tuning" \| "toy_lora" \| "reward" \| "dpo" \| "ppo" but received string "sgd"$/);
  });
});

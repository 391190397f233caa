import { describe, expect, test } from 'vitest';
import { fileURLToPath } from 'node:url';
import { dirname, join, resolve } from 'node:path';
import { loadConfig, warmupStepsFor } from '../../lib/train/config.js';
import { TunekitError } from '../../lib/errors.js';

const DIR = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'data', 'configs');

function configError(arg: Parameters<typeof loadConfig>[0]): TunekitError {
  try {
    loadConfig(arg);
  } catch (e) {
    expect(e).toBeInstanceOf(TunekitError);
    return e as TunekitError;
  }
  throw new Error('expected an error');
}

const minimal = { model: 'builtin:gpt2-tiny', dataset: { path: 'builtin:sotu' } };

describe('loadConfig defaults', () => {
  test('a minimal config gets every default (LoRA, PEFT defaults)', () => {
    const c = loadConfig(minimal);
    expect(c.task).toBe('causal_lm');
    expect(c.method).toBe('lora');
    expect(c.quantization).toBe('none');
    // LoRA's schema (lib/peft/lora/config.ts) with PEFT 0.21's defaults; target_modules and task_type are set from the model later
    expect(c.peft).toEqual({
      peft_type: 'LORA', task_type: null, inference_mode: false, base_model_name_or_path: null, revision: null,
      r: 8, lora_alpha: 8, lora_dropout: 0, target_modules: null, fan_in_fan_out: false, bias: 'none', use_rslora: false, use_dora: false,
      modules_to_save: null, init_lora_weights: true, rank_pattern: {}, alpha_pattern: {}, layers_to_transform: null, layers_pattern: null,
    });
    expect(c.training).toMatchObject({ epochs: 3, batch_size: 8, grad_accum: 1, lr: 2e-4, schedule: 'linear', max_grad_norm: 1, seed: 42, dtype: 'f32', early_stopping: null });
    expect(c.dataset).toMatchObject({ max_length: 512, packing: false, on_error: 'fail', text_field: 'text', label_field: 'label', eval: { seed: 42 } });
    expect(c.logging).toEqual({ every: 10, progress: 'auto', plot: true });
    // relative paths resolve against the working directory (as transformers' TrainingArguments do)
    expect(c.output_dir).toBe(resolve('runs/tunekit'));
    expect(c.rlhf).toBeNull();
  });

  test('method defaults: qlora, adalora, prompt methods, full, dpo', () => {
    const q = loadConfig({ ...minimal, method: 'qlora' });
    expect(q.quantization).toBe('nf4');
    expect(q.peft).toMatchObject({ r: 64, lora_alpha: 16, target_modules: 'all-linear', double_quant: true, blocksize: 64 });
    expect(loadConfig({ ...minimal, method: 'adalora' }).peft).toMatchObject({ init_r: 12, target_r: 8, tinit: 0, tfinal: 0, deltaT: 1, beta1: 0.85, beta2: 0.85, orth_reg_weight: 0.5 });
    expect(loadConfig({ ...minimal, method: 'prompt_tuning' }).peft).toMatchObject({ num_virtual_tokens: 20, prompt_tuning_init: 'RANDOM' });
    expect(loadConfig({ ...minimal, method: 'p_tuning' }).peft).toMatchObject({ encoder_reparameterization_type: 'MLP', encoder_num_layers: 2 });
    expect(loadConfig({ ...minimal, method: 'prefix_tuning' }).peft).toMatchObject({ prefix_projection: false });
    expect(loadConfig({ ...minimal, method: 'full' }).peft).toBeNull();
    const d = loadConfig({ ...minimal, method: 'dpo' });
    expect(d.rlhf).toMatchObject({ beta: 0.1 });
    expect(d.peft).toMatchObject({ r: 8 });
    expect(loadConfig({ ...minimal, method: 'reward', peft: null }).peft).toBeNull();
  });

  test('warm-up steps from ratio', () => {
    const c = loadConfig({ ...minimal, training: { warmup_ratio: 0.06 } });
    expect(warmupStepsFor(c.training, 1000)).toBe(60);
    expect(warmupStepsFor(loadConfig({ ...minimal, training: { warmup_steps: 7 } }).training, 1000)).toBe(7);
  });
});

describe('config files', () => {
  test('YAML: values read, relative paths resolved against the working directory (not the file)', () => {
    const c = loadConfig(join(DIR, 'lora.yaml'));
    expect(c.task).toBe('seq_cls');
    expect(c.model).toBe(resolve('../models/tiny-gpt2'));
    expect(c.dataset.path).toBe('builtin:spam-assassin');
    expect(c.peft).toMatchObject({ r: 16, lora_alpha: 32, lora_dropout: 0.1, target_modules: ['c_attn', 'c_proj'], modules_to_save: ['score'], rank_pattern: { 'h.0.attn.c_attn': 4 } });
    expect(c.training).toMatchObject({ epochs: 2, lr: 3e-4, schedule: 'cosine', warmup_ratio: 0.06, early_stopping: { patience: 3, metric: 'eval_loss', mode: 'min', min_delta: 0 } });
    expect(c.output_dir).toBe(resolve('../../../../runs/spam-lora'));
    expect(c.configPath).toBe(join(DIR, 'lora.yaml'));
  });

  test('JSON', () => {
    const c = loadConfig(join(DIR, 'qlora.json'));
    expect(c.method).toBe('qlora');
    expect(c.quantization).toBe('nf4');
    expect(c.training).toMatchObject({ max_steps: 100, max_grad_norm: 0.3, dtype: 'bf16' });
    expect(c.dataset.path).toBe(resolve('train.jsonl'));
    expect(c.dataset.eval.fraction).toBe(0.05);
    expect(c.output_dir).toBe(resolve('runs/tunekit'));
  });

  test('YAML syntax errors give file, line and column', () => {
    const e = configError(join(DIR, 'broken.yaml'));
    expect(e.code).toBe('ERR_CONFIG');
    expect(e.message).toMatch(/broken\.yaml:\d+:\d+: /);
  });

  test('missing file', () => {
    expect(configError(join(DIR, 'nope.yaml')).code).toBe('ERR_NOT_FOUND');
  });
});

describe('every bad field is listed', () => {
  test('bad.yaml: type, enum, range, unknown keys, peft fields, cross-field', () => {
    const e = configError(join(DIR, 'bad.yaml'));
    expect(e.code).toBe('ERR_CONFIG');
    const lines = e.message.split('\n').slice(1).map((l) => l.replace(/^ {2}- /, ''));
    const expected = [
      'model: expected a string but received number 42',
      'task: expected one of "causal_lm" | "seq_cls" | "token_cls" | "image_cls" but received string "regression"',
      'dataset.path: expected a string but received nothing (the field is required)',
      'dataset.max_length: expected a number > 0 but received number -5',
      'dataset.packing: expected a boolean (true or false) but received string "yes"',
      'training.batch_size: expected an integer but received number 2.5',
      'training.lr: expected a number but received string "abc"',
      'training.schedule: expected one of "constant" | "linear" | "cosine" but received string "cosine_with_restarts"',
      'outptu_dir: unknown field (check the spelling) with value "runs/x"',
      'peft.r: expected a number > 0 but received number 0',
      'peft.lora_alpha: expected a number but received string "sixteen"',
      'peft.target_modules: expected a list or a string but received number 7',
      'peft.bias: expected one of "none" (PEFT\'s \'all\' and \'lora_only\' train the base layers\' biases, not implemented in tunekit) but received string "some"',
      'peft.lora_dropot: unknown field (check the spelling) with value 0.1',
      'training.warmup_steps: expected warmup_steps or warmup_ratio but received both (10 and 0.1)',
    ];
    expect(lines.sort()).toEqual([...expected].sort());
    expect(e.message.split('\n')[0]).toContain(`bad.yaml (${expected.length} problems)`);
  });

  test('method-specific rules', () => {
    expect(configError({ ...minimal, method: 'full', peft: { r: 4 } }).message).toContain('peft: expected no peft block for method "full"');
    expect(configError({ ...minimal, method: 'qlora', quantization: 'none' }).message).toContain('quantization: expected "nf4" for method "qlora"');
    expect(configError({ ...minimal, method: 'full', quantization: 'nf4' }).message).toContain('quantization: expected "none" for method "full"');
    expect(configError({ ...minimal, method: 'ppo' }).message).toContain('rlhf.reward_model');
    expect(configError({ ...minimal, method: 'lora', rlhf: { beta: 1 } }).message).toContain('rlhf: expected no rlhf block');
    expect(configError({ ...minimal, method: 'prompt_tuning', peft: { prompt_tuning_init: 'TEXT' } }).message).toContain('peft.prompt_tuning_init_text');
    expect(configError({ ...minimal, method: 'adalora', peft: { beta1: 1.5, total_step: 0 } }).message).toMatch(/peft\.beta1: expected a number < 1[\s\S]*peft\.total_step: expected a number > 0/);
    expect(configError({ ...minimal, method: 'dpo', rlhf: { beta: -1 } }).message).toContain('rlhf.beta: expected a number > 0 but received number -1');
    expect(configError({ ...minimal, method: 'sgd' }).message).toContain('method: expected one of "full" | "head_only" | "lora"');
    expect(configError({ ...minimal, peft: { target_modules: [] } }).message).toContain('peft.target_modules');
    expect(configError({ ...minimal, dataset: { path: 'x.jsonl', eval: { fraction: 0.1, size: 10 } } }).message).toContain('dataset.eval: expected only one of path, fraction or size');
  });

  test('dataset.truncation: head + tail is for seq_cls; token and image classification cut the end only', () => {
    expect(loadConfig({ ...minimal, task: 'seq_cls', dataset: { path: 'builtin:spam-assassin', truncation: 'keep_start_and_end' } }).dataset.truncation).toBe('keep_start_and_end');
    expect(configError({ ...minimal, task: 'causal_lm', dataset: { path: 'builtin:sotu', truncation: 'keep_start_and_end' } }).message).toContain(
      'dataset.truncation: expected "keep_start" or "keep_end" for task "causal_lm" ("keep_start_and_end" is for seq_cls) but received "keep_start_and_end"',
    );
    expect(configError({ ...minimal, task: 'token_cls', dataset: { path: 'x.jsonl', truncation: 'keep_end' } }).message).toContain('dataset.truncation: expected "keep_start" for task "token_cls"');
    expect(configError({ ...minimal, dataset: { path: 'builtin:sotu', truncation: 'middle' } }).message).toContain('dataset.truncation: expected one of "keep_start" | "keep_end" | "keep_start_and_end"');
  });

  test('not a mapping', () => {
    expect(configError([] as unknown as Record<string, unknown>).message).toContain('(top level): expected a mapping of settings but received a list');
  });
});

/**
 * LoRA configuration with PEFT's field names and defaults (peft 0.21 LoraConfig).
 */
import { TunekitError, describe } from '../../errors.js';
import type { TargetSpec } from '../base/targets.js';

export interface LoraConfig {
  peft_type: 'LORA';
  task_type: string | null;
  /** rank */
  r: number;
  lora_alpha: number;
  lora_dropout: number;
  /** list: exact or suffix match; string: regex; 'all-linear' */
  target_modules: TargetSpec | null;
  /** true when the layer stores weights as [in, out] (GPT-2 Conv1D) */
  fan_in_fan_out: boolean;
  bias: 'none' | 'all' | 'lora_only';
  use_rslora: boolean;
  use_dora: boolean;
  modules_to_save: string[] | null;
  /** true (kaiming A, zero B), 'gaussian', or false (random B: for tests) */
  init_lora_weights: boolean | 'gaussian' | 'pissa';
  rank_pattern: Record<string, number>;
  alpha_pattern: Record<string, number>;
  layers_to_transform: number[] | number | null;
  base_model_name_or_path: string | null;
  inference_mode: boolean;
}

export const DEFAULT_TARGETS: Record<string, string[]> = {
  gpt2: ['c_attn'],
  bert: ['query', 'value'],
  llama: ['q_proj', 'v_proj'],
  mistral: ['q_proj', 'v_proj'],
  qwen2: ['q_proj', 'v_proj'],
};

const TASK_TYPES: Record<string, string> = { causal_lm: 'CAUSAL_LM', seq_cls: 'SEQ_CLS', token_cls: 'TOKEN_CLS', base: 'FEATURE_EXTRACTION' };

/** Fills PEFT defaults into a partial config (snake_case, as in adapter_config.json). */
export function normalizeLoraConfig(partial: Record<string, unknown>, modelType: string, task: string): LoraConfig {
  const c: LoraConfig = {
    peft_type: 'LORA',
    task_type: (partial.task_type as string) ?? TASK_TYPES[task] ?? null,
    r: (partial.r as number) ?? 8,
    lora_alpha: (partial.lora_alpha as number) ?? 8,
    lora_dropout: (partial.lora_dropout as number) ?? 0,
    target_modules: (partial.target_modules as TargetSpec) ?? DEFAULT_TARGETS[modelType] ?? null,
    fan_in_fan_out: (partial.fan_in_fan_out as boolean) ?? modelType === 'gpt2',
    bias: (partial.bias as LoraConfig['bias']) ?? 'none',
    use_rslora: (partial.use_rslora as boolean) ?? false,
    use_dora: (partial.use_dora as boolean) ?? false,
    modules_to_save: (partial.modules_to_save as string[]) ?? null,
    init_lora_weights: (partial.init_lora_weights as LoraConfig['init_lora_weights']) ?? true,
    rank_pattern: (partial.rank_pattern as Record<string, number>) ?? {},
    alpha_pattern: (partial.alpha_pattern as Record<string, number>) ?? {},
    layers_to_transform: (partial.layers_to_transform as number[] | number | null) ?? null,
    base_model_name_or_path: (partial.base_model_name_or_path as string) ?? null,
    inference_mode: (partial.inference_mode as boolean) ?? false,
  };
  if (!Number.isInteger(c.r) || c.r < 1) throw new TunekitError('ERR_CONFIG', `LoRA r: expected a positive integer but received ${describe(c.r)}`);
  if (!(c.lora_dropout >= 0 && c.lora_dropout < 1)) throw new TunekitError('ERR_CONFIG', `LoRA lora_dropout: expected a number in [0, 1) but received ${describe(c.lora_dropout)}`);
  if (c.target_modules === null) throw new TunekitError('ERR_CONFIG', `LoRA target_modules: no default for model type '${modelType}'; set it`);
  if (c.use_dora) throw new TunekitError('ERR_CONFIG', 'LoRA use_dora: DoRA is not supported yet');
  if (c.bias !== 'none') throw new TunekitError('ERR_CONFIG', `LoRA bias '${c.bias}' is not supported yet (only 'none')`);
  return c;
}

/** Scaling of the adapter product: alpha / r, or alpha / sqrt(r) with rsLoRA. */
export function loraScale(alpha: number, r: number, rslora: boolean): number {
  return rslora ? alpha / Math.sqrt(r) : alpha / r;
}

/** The classification head PEFT adds to modules_to_save for each task. */
export function headModulesFor(task: string, modelType: string): string[] {
  if (task === 'seq_cls') return modelType === 'bert' ? ['classifier'] : ['score'];
  if (task === 'token_cls') return ['classifier'];
  return [];
}

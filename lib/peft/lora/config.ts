/**
 * LoRA's one config schema: peft 0.21's LoraConfig, field for field, with PEFT's names and
 * defaults. Types derive from it; `tunekit train`'s `peft:` block and `new LoraModel(model, {...})`
 * both validate with it (same messages). What depends on the model (target_modules per model
 * type, task_type) is a second step, `loraConfigFor`. fan_in_fan_out is corrected to each
 * layer's real layout when the adapter is created, as PEFT does (GPT-2's Conv1D: true).
 *
 * @example
 * const cfg = normalizeLoraConfig({ r: 4, lora_alpha: 8 }, 'gpt2', 'causal_lm');
 * cfg.target_modules; // ['c_attn'] (PEFT's default for GPT-2)
 */
import { z } from 'zod';
import { TunekitError } from '../../errors.js';
import { expectedIssue, parseConfigOrThrow } from '../../config_errors.js';
import { peftConfigShape, offOnly, oneOf, posInt, nonNegInt, dropoutProb, taskTypeFor } from '../base/config.js';
import type { TargetSpec } from '../base/targets.js';

/** target_modules: a list (exact name or ".name" suffix), a full-match regex string, or 'all-linear'. */
export const targetModules = z.union([z.array(z.string().min(1)).min(1), z.string().min(1)]);

/** The LoRA fields, shared by AdaLoRA and QLoRA (which change some of them). */
export const loraShape = {
  ...peftConfigShape('LORA'),
  /** rank of the update B A (A [r, in], B [out, r]) */
  r: posInt.default(8),
  /** which modules get adapters; null: PEFT's default for the model type (GPT-2 c_attn; BERT query, value; Llama q_proj, v_proj) */
  target_modules: targetModules.nullable().default(null),
  /** numerator of the scale: scale = lora_alpha / r (lora_alpha / sqrt(r) with use_rslora) */
  lora_alpha: z.number().positive().default(8),
  /** dropout on the adapter's input while training */
  lora_dropout: dropoutProb.default(0),
  /** true when the layer stores W as [in, out] (GPT-2's Conv1D); corrected to each layer's real layout, as PEFT does */
  fan_in_fan_out: z.boolean().default(false),
  /** which biases train: only 'none' (PEFT's 'all' / 'lora_only' train the base layers' biases; not implemented in tunekit) */
  bias: oneOf(['none'] as const, "PEFT's 'all' and 'lora_only' train the base layers' biases, not implemented in tunekit").default('none'),
  /** rank-stabilised LoRA: scale = lora_alpha / sqrt(r) */
  use_rslora: z.boolean().default(false),
  /** modules trained and saved whole beside the adapter (a module path or its last part, e.g. 'wpe'); the task head is added */
  modules_to_save: z.array(z.string().min(1)).nullable().default(null),
  /** true: A kaiming-uniform, B = 0 (the adapter starts as a no-op); 'gaussian': A ~ N(0, 1/r), B = 0; 'pissa': A, B from W's top-r SVD, W the residual; false: A and B random (for tests) */
  init_lora_weights: oneOf([true, false, 'gaussian', 'pissa'] as const, `PEFT's "olora", "eva", "corda", "loftq", "orthogonal", "mica" and "pissa_niter_N" are not implemented in tunekit`).default(true),
  /** only the layers with these indices get adapters (the index is found in the module path, see layers_pattern) */
  layers_to_transform: z.union([nonNegInt, z.array(nonNegInt).min(1)]).nullable().default(null),
  /** name(s) of the layer list in module paths ('h' for GPT-2, 'layer' for BERT, 'layers' for Llama), a regex; null: the first numbered path segment */
  layers_pattern: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]).nullable().default(null),
  /** per-module rank: {"<regex or name>": r}, matched as PEFT does against the module path's end */
  rank_pattern: z.record(z.string(), posInt).default({}),
  /** per-module lora_alpha, matched like rank_pattern */
  alpha_pattern: z.record(z.string(), z.number().positive()).default({}),
  /** DoRA (weight-decomposed LoRA): not implemented in tunekit, only false */
  use_dora: oneOf([false] as const, 'DoRA is not implemented in tunekit').default(false),
  // PEFT 0.21 features tunekit does not implement: accepted only as PEFT writes them when off
  /** modules never adapted (PEFT's exclude_modules): not implemented, only null */
  exclude_modules: offOnly(null, "PEFT's exclude_modules"),
  /** not implemented, only false */
  lora_bias: offOnly(false, "PEFT's lora_bias (a trainable bias on lora_B)"),
  /** not implemented, only {} */
  loftq_config: offOnly({}, "PEFT's LoftQ initialisation"),
  /** not implemented, only null */
  eva_config: offOnly(null, "PEFT's EVA initialisation"),
  /** not implemented, only null */
  corda_config: offOnly(null, "PEFT's CorDA initialisation"),
  /** not implemented, only null */
  lora_ga_config: offOnly(null, "PEFT's LoRA-GA initialisation"),
  /** not implemented, only null */
  trainable_token_indices: offOnly(null, "PEFT's trainable_token_indices"),
  /** not implemented, only null */
  layer_replication: offOnly(null, "PEFT's layer_replication"),
  /** not implemented, only null */
  target_parameters: offOnly(null, "PEFT's target_parameters (LoRA on nn.Parameter)"),
  /** not implemented, only null */
  alora_invocation_tokens: offOnly(null, "PEFT's activated LoRA (aLoRA)"),
  /** not implemented, only false */
  use_qalora: offOnly(false, "PEFT's QALoRA"),
  /** read by PEFT only with use_qalora (refused): file metadata */
  qalora_group_size: posInt.optional(),
  /** not implemented, only null */
  megatron_config: offOnly(null, "PEFT's Megatron parallel layers"),
  /** read by PEFT only with megatron_config (refused): file metadata */
  megatron_core: z.string().nullable().optional(),
  /** not implemented, only null */
  velora_config: offOnly(null, "PEFT's VeLoRA"),
  /** not implemented, only null */
  monteclora_config: offOnly(null, "PEFT's MonteCLoRA"),
  /** not implemented, only null */
  use_bdlora: offOnly(null, "PEFT's BD-LoRA"),
  /** not implemented, only null */
  arrow_config: offOnly(null, "PEFT's Arrow routing"),
  /** not implemented, only null */
  kasa_config: offOnly(null, "PEFT's KaSA"),
  /** not implemented, only false */
  ensure_weight_tying: offOnly(false, "PEFT's ensure_weight_tying"),
};

/**
 * PEFT's cross-field rules (LoraConfig.__post_init__) on an object whose fields each parsed.
 * @example z.strictObject(loraShape).superRefine(loraRules)
 */
export function loraRules(v: { target_modules: unknown; layers_to_transform: unknown; layers_pattern: unknown }, ctx: z.RefinementCtx): void {
  if (typeof v.target_modules === 'string') {
    // a regex (or 'all-linear') already says which layers; PEFT refuses both
    if (v.layers_to_transform !== null) ctx.addIssue(expectedIssue('null when target_modules is a string (a regex or "all-linear"; give a list of names to select layers)', v.layers_to_transform, ['layers_to_transform']));
    if (v.layers_pattern !== null) ctx.addIssue(expectedIssue('null when target_modules is a string (a regex or "all-linear")', v.layers_pattern, ['layers_pattern']));
  }
  if (v.layers_pattern !== null && v.layers_to_transform === null) {
    ctx.addIssue({ code: 'custom', path: ['layers_pattern'], message: 'expected layers_to_transform beside it (layers_pattern only says where the layer index is) but received no layers_to_transform' });
  }
}

export const LoraSchema = z.strictObject(loraShape).superRefine(loraRules);

/** What users write (every field optional). */
export type LoraConfigInput = z.input<typeof LoraSchema>;
/** A parsed LoRA config (PEFT's defaults filled; target_modules and task_type set by loraConfigFor). */
export type LoraConfig = z.output<typeof LoraSchema>;

/** PEFT's default target_modules per model type (TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING). */
export const DEFAULT_TARGETS: Record<string, string[]> = {
  gpt2: ['c_attn'],
  bert: ['query', 'value'],
  llama: ['q_proj', 'v_proj'],
  mistral: ['q_proj', 'v_proj'],
  qwen2: ['q_proj', 'v_proj'],
};

/**
 * Validates a LoRA config with the schema (PEFT's defaults filled) or throws ERR_CONFIG listing every problem.
 * @example parseLoraConfig({ r: 4 }).lora_alpha // 8
 */
export function parseLoraConfig(raw: unknown): LoraConfig {
  return parseConfigOrThrow(LoraSchema, raw, 'LoRA config');
}

/**
 * The model step: target_modules null -> PEFT's default for the model type; task_type null ->
 * the model's task (another is refused).
 */
export function loraConfigFor<C extends { task_type: string | null; target_modules: TargetSpec | null }>(cfg: C, modelType: string, task: string, method = 'LoRA'): C {
  const out = { ...cfg, task_type: taskTypeFor(cfg.task_type, task, method) };
  if (out.target_modules === null) {
    const def = DEFAULT_TARGETS[modelType];
    if (!def) throw new TunekitError('ERR_CONFIG', `${method} target_modules: expected a list of module names (no default for model type '${modelType}') but received null`);
    out.target_modules = [...def];
  }
  return out;
}

/**
 * The schema's parse plus the model step (snake_case, as in adapter_config.json).
 * @example normalizeLoraConfig({ r: 4 }, 'bert', 'seq_cls').target_modules // ['query', 'value']
 */
export function normalizeLoraConfig(partial: unknown, modelType: string, task: string): LoraConfig {
  return loraConfigFor(parseLoraConfig(partial), modelType, task);
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

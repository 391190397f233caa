/**
 * The building blocks of every method's one config schema (lib/peft/<method>/config.ts): the
 * fields all PEFT configs share (peft 0.21's PeftConfig), with PEFT's names and defaults, and
 * the rules for fields tunekit does not implement. Each field a schema accepts is one of:
 *  - implemented (changes what the method does), or
 *  - file metadata (written to and read from adapter_config.json, no effect on the numbers;
 *    said so in its comment), or
 *  - a PEFT feature tunekit does not implement, accepted only at PEFT's default (the feature
 *    off, as PEFT writes it into every folder) and refused with its name otherwise (`offOnly`).
 */
import { z } from 'zod';
import { isDeepStrictEqual } from 'node:util';
import { TunekitError } from '../../errors.js';
import { expectedIssue, receivedText, showValue } from '../../config_errors.js';

export const posInt = z.number().int().positive();
export const nonNegInt = z.number().int().nonnegative();
/** a dropout probability: [0, 1) */
export const dropoutProb = z.number().min(0).lt(1);

/** PEFT's TaskType values for the tasks tunekit's models have (model task -> task_type). */
export const TASK_TYPE_OF_TASK = { causal_lm: 'CAUSAL_LM', seq_cls: 'SEQ_CLS', token_cls: 'TOKEN_CLS', base: 'FEATURE_EXTRACTION' } as const;
const TASK_TYPES = ['CAUSAL_LM', 'SEQ_CLS', 'TOKEN_CLS', 'FEATURE_EXTRACTION'] as const;

/**
 * The fields of PEFT's PeftConfig, shared by every method.
 * @example z.strictObject({ ...peftConfigShape('LORA'), r: posInt.default(8) })
 */
export function peftConfigShape<T extends string>(peftType: T) {
  return {
    /** the method as adapter_config.json names it; optional in configs, refused when it names another method */
    peft_type: z.literal(peftType).default(peftType),
    /** PEFT's task; null: the model's task (set when the adapter is created); another task than the model's is refused */
    task_type: z.enum(TASK_TYPES).nullable().default(null),
    /** true: the adapter is for inference (LoRA family: created frozen; prompt methods: no encoder or init, the saved prompt is served); PEFT writes true into saved folders */
    inference_mode: z.boolean().default(false),
    /** file metadata: the base model's folder or Hub id (tunekit loads the base model you give it, not this) */
    base_model_name_or_path: z.string().nullable().default(null),
    /** file metadata: the base model's Hub revision */
    revision: z.string().nullable().default(null),
    /** file metadata: the PEFT version that wrote the folder (PEFT sets it on save) */
    peft_version: z.string().nullable().optional(),
    /** file metadata: PEFT's custom-model mapping for the Hub */
    auto_mapping: z.record(z.string(), z.unknown()).nullable().optional(),
  };
}

/**
 * A PEFT field tunekit does not implement: absent or PEFT's default (the feature off) passes
 * through, anything else is refused with the feature named.
 * @example loftq_config: offOnly({}, "PEFT's LoftQ initialisation")
 */
export function offOnly(peftDefault: unknown, feature: string) {
  return z.unknown().superRefine((v, ctx) => {
    if (v === undefined || isDeepStrictEqual(v, peftDefault)) return;
    ctx.addIssue(expectedIssue(`${showValue(peftDefault)} (${feature} is not implemented in tunekit)`, v));
  }).optional();
}

/**
 * One of a closed list of values, with the alternatives PEFT has and tunekit does not named in
 * the error (a z.enum's error would list only the accepted values).
 * @example oneOf([true, false, 'gaussian'] as const, 'PEFT\'s "olora" ... are not implemented')
 */
export function oneOf<const T extends readonly (string | number | boolean)[]>(values: T, note?: string) {
  const list = values.map((v) => JSON.stringify(v)).join(', ');
  return z.custom<T[number]>((v) => values.includes(v as T[number]), {
    error: (iss) => `expected one of ${list}${note ? ` (${note})` : ''} but received ${receivedText(iss.input)}`,
  });
}

/**
 * The model step every method shares: task_type null becomes the model's task; another is refused.
 * @example taskTypeFor(null, 'seq_cls', 'LoRA') // 'SEQ_CLS'
 */
export function taskTypeFor(taskType: string | null, modelTask: string, method: string): string | null {
  // PEFT has no task_type for image classification: its image examples leave it null (a plain
  // PeftModel) and list the head in modules_to_save
  if (modelTask === 'image_cls') {
    if (taskType !== null) throw new TunekitError('ERR_CONFIG', `${method} task_type: expected null for image classification (PEFT has no image task type) but received "${taskType}"`);
    return null;
  }
  const want = (TASK_TYPE_OF_TASK as Record<string, string>)[modelTask];
  if (!want) throw new TunekitError('ERR_CONFIG', `${method}: model task '${modelTask}' has no PEFT task_type (supported: ${Object.keys(TASK_TYPE_OF_TASK).join(', ')})`);
  if (taskType !== null && taskType !== want) {
    throw new TunekitError('ERR_CONFIG', `${method} task_type: expected "${want}" (the model's task is ${modelTask}) or null but received "${taskType}"`);
  }
  return want;
}

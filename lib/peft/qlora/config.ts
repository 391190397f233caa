/**
 * QLoRA's one config schema: LoRA's fields (peft 0.21 LoraConfig) with the QLoRA recipe's
 * defaults (Dettmers et al. 2023: r 64, lora_alpha 16, lora_dropout 0.05, every linear layer)
 * plus the 4-bit base's settings (bitsandbytes' double quantization and block size). QLoRA
 * writes plain PEFT LoRA folders (peft_type "LORA"): the quantization is the base model's, not
 * the adapter's, so double_quant and blocksize never reach adapter_config.json.
 *
 * @example
 * parseQloraConfig({}).r // 64
 */
import { z } from 'zod';
import { parseConfigOrThrow } from '../../config_errors.js';
import { posInt, dropoutProb, oneOf } from '../base/config.js';
import { loraShape, loraRules, targetModules, type LoraConfig } from '../lora/config.js';

export const QloraSchema = z
  .strictObject({
    ...loraShape,
    /** rank of the update (the QLoRA recipe: 64) */
    r: posInt.default(64),
    /** numerator of the scale lora_alpha / r (the QLoRA recipe: 16) */
    lora_alpha: z.number().positive().default(16),
    /** dropout on the adapter's input while training (the QLoRA recipe: 0.05) */
    lora_dropout: dropoutProb.default(0.05),
    /** which modules get adapters (the QLoRA recipe: every linear layer but the output head) */
    target_modules: targetModules.nullable().default('all-linear'),
    /** tunekit's addition (bitsandbytes' bnb_4bit_use_double_quant): quantize the blocks' absmax scales to 8 bits too (QLoRA recipe: true) */
    double_quant: z.boolean().default(true),
    /** tunekit's addition (bitsandbytes' blocksize): weights per absmax scale (bitsandbytes: 64) */
    blocksize: oneOf([64, 128, 256] as const).default(64),
  })
  .superRefine(loraRules);

/** What users write (every field optional). */
export type QloraConfigInput = z.input<typeof QloraSchema>;
/** A parsed QLoRA config: LoRA's fields plus the base's quantization settings. */
export type QloraConfig = z.output<typeof QloraSchema>;

/**
 * Validates a QLoRA config with the schema or throws ERR_CONFIG listing every problem.
 * @example parseQloraConfig({ blocksize: 128 }).double_quant // true
 */
export function parseQloraConfig(raw: unknown): QloraConfig {
  return parseConfigOrThrow(QloraSchema, raw, 'QLoRA config');
}

/** Splits a parsed QLoRA config into the base's quantization settings and the LoRA adapter's config. */
export function splitQloraConfig(cfg: QloraConfig): { quantization: { blocksize: number; doubleQuant: boolean }; lora: LoraConfig } {
  const { double_quant, blocksize, ...lora } = cfg;
  return { quantization: { blocksize, doubleQuant: double_quant }, lora };
}

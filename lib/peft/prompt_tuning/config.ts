/**
 * Prompt tuning's one config schema: peft 0.21's PromptTuningConfig (the shared prompt-learning
 * fields plus the initialisation), with PEFT's names and defaults; types derive from it.
 *
 * @example
 * const cfg = normalizePromptTuningConfig({ num_virtual_tokens: 8, prompt_tuning_init: 'SAMPLE_VOCAB' }, model);
 */
import { z } from 'zod';
import type { PretrainedModel } from '../../models/common.js';
import { parseConfigOrThrow } from '../../config_errors.js';
import { offOnly } from '../base/config.js';
import { promptLearningShape, promptConfigFor, type WithModelFields } from '../prompt/config.js';

export const PromptTuningSchema = z
  .strictObject({
    ...promptLearningShape('PROMPT_TUNING'),
    /** RANDOM: N(0, 1) rows; TEXT: the embeddings of prompt_tuning_init_text's tokens (repeated or cut to P); SAMPLE_VOCAB: P random vocabulary rows */
    prompt_tuning_init: z.enum(['RANDOM', 'TEXT', 'SAMPLE_VOCAB']).default('RANDOM'),
    /** the text whose tokens initialise the prompt (TEXT) */
    prompt_tuning_init_text: z.string().min(1).nullable().default(null),
    /** tokenizer folder for TEXT; null: the `tokenizer` option, or the base model's folder in `tunekit train` (tunekit's addition: PEFT requires it) */
    tokenizer_name_or_path: z.string().min(1).nullable().default(null),
    /** PEFT's extra arguments to AutoTokenizer: not implemented in tunekit, only null */
    tokenizer_kwargs: offOnly(null, "PEFT's tokenizer_kwargs"),
  })
  .superRefine((v, ctx) => {
    // a loaded folder (inference_mode) serves its saved prompt: no init, no text needed
    if (v.prompt_tuning_init === 'TEXT' && !v.inference_mode && !v.prompt_tuning_init_text) {
      ctx.addIssue({ code: 'custom', path: ['prompt_tuning_init_text'], message: 'expected a non-empty string when prompt_tuning_init is TEXT but received nothing' });
    }
  });

/** What users write (every field optional). */
export type PromptTuningConfigInput = z.input<typeof PromptTuningSchema>;
/** A prompt tuning config after the model step. */
export type PromptTuningConfig = WithModelFields<z.output<typeof PromptTuningSchema>>;

/**
 * Validates a prompt tuning config with the schema or throws ERR_CONFIG listing every problem.
 * @example parsePromptTuningConfig({}).num_virtual_tokens // 20
 */
export function parsePromptTuningConfig(raw: unknown): z.output<typeof PromptTuningSchema> {
  return parseConfigOrThrow(PromptTuningSchema, raw, 'prompt_tuning config');
}

/** The schema's parse plus the model step (token_dim, num_layers, ... from the model). */
export function normalizePromptTuningConfig(partial: unknown, model: PretrainedModel): PromptTuningConfig {
  return promptConfigFor(parsePromptTuningConfig(partial), model);
}

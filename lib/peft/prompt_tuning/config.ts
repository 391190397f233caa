/**
 * Prompt tuning configuration (peft 0.21 PromptTuningConfig): the shared prompt-learning fields
 * plus `prompt_tuning_init` (RANDOM | TEXT | SAMPLE_VOCAB), `prompt_tuning_init_text` and
 * `tokenizer_name_or_path` (a tokenizer folder, for TEXT).
 */
import { TunekitError, describe } from '../../errors.js';
import type { PretrainedModel } from '../../models/common.js';
import { normalizePromptLearningConfig, type PromptLearningConfig } from '../prompt/config.js';

export interface PromptTuningConfig extends PromptLearningConfig {
  peft_type: 'PROMPT_TUNING';
  prompt_tuning_init: 'RANDOM' | 'TEXT' | 'SAMPLE_VOCAB';
  prompt_tuning_init_text: string | null;
  tokenizer_name_or_path: string | null;
  tokenizer_kwargs: Record<string, unknown> | null;
}

export function normalizePromptTuningConfig(partial: Record<string, unknown>, model: PretrainedModel): PromptTuningConfig {
  const c: PromptTuningConfig = {
    ...normalizePromptLearningConfig(partial, model, 'PROMPT_TUNING'),
    peft_type: 'PROMPT_TUNING',
    prompt_tuning_init: (partial.prompt_tuning_init as PromptTuningConfig['prompt_tuning_init']) ?? 'RANDOM',
    prompt_tuning_init_text: (partial.prompt_tuning_init_text as string) ?? null,
    tokenizer_name_or_path: (partial.tokenizer_name_or_path as string) ?? null,
    tokenizer_kwargs: (partial.tokenizer_kwargs as Record<string, unknown>) ?? null,
  };
  if (!['RANDOM', 'TEXT', 'SAMPLE_VOCAB'].includes(c.prompt_tuning_init)) {
    throw new TunekitError('ERR_CONFIG', `prompt_tuning prompt_tuning_init: expected RANDOM, TEXT or SAMPLE_VOCAB but received ${describe(c.prompt_tuning_init)}`);
  }
  if (c.prompt_tuning_init === 'TEXT' && !c.inference_mode && !c.prompt_tuning_init_text) {
    throw new TunekitError('ERR_CONFIG', 'prompt_tuning prompt_tuning_init_text: expected a non-empty string when prompt_tuning_init is TEXT but received nothing');
  }
  return c;
}

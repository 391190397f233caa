/**
 * Prefix tuning configuration (peft 0.21 PrefixTuningConfig): the shared prompt-learning fields
 * plus `prefix_projection` (false), `encoder_hidden_size` (default token_dim) and `init_weights`
 * (null = random, "zero" = a no-op start: zero prefixes, or a zero last projection layer).
 */
import { TunekitError, describe } from '../../errors.js';
import type { PretrainedModel } from '../../models/common.js';
import { normalizePromptLearningConfig, type PromptLearningConfig } from '../prompt/config.js';

export interface PrefixTuningConfig extends PromptLearningConfig {
  peft_type: 'PREFIX_TUNING';
  prefix_projection: boolean;
  encoder_hidden_size: number;
  init_weights: 'zero' | null;
}

export function normalizePrefixTuningConfig(partial: Record<string, unknown>, model: PretrainedModel): PrefixTuningConfig {
  const base = normalizePromptLearningConfig(partial, model, 'PREFIX_TUNING');
  const c: PrefixTuningConfig = {
    ...base,
    peft_type: 'PREFIX_TUNING',
    prefix_projection: (partial.prefix_projection as boolean) ?? false,
    encoder_hidden_size: (partial.encoder_hidden_size as number) ?? base.token_dim,
    init_weights: (partial.init_weights as 'zero' | null) ?? null,
  };
  if (!Number.isInteger(c.encoder_hidden_size) || c.encoder_hidden_size < 1) {
    throw new TunekitError('ERR_CONFIG', `prefix_tuning encoder_hidden_size: expected a positive integer but received ${describe(c.encoder_hidden_size)}`);
  }
  if (c.init_weights !== null && c.init_weights !== 'zero') throw new TunekitError('ERR_CONFIG', `prefix_tuning init_weights: expected null or "zero" but received ${describe(c.init_weights)}`);
  return c;
}

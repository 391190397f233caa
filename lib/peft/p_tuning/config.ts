/**
 * P-tuning configuration (peft 0.21 PromptEncoderConfig): the shared prompt-learning fields plus
 * `encoder_reparameterization_type` (MLP | LSTM), `encoder_hidden_size` (default token_dim),
 * `encoder_num_layers` (2; LSTM layers, ignored by the MLP) and `encoder_dropout` (0; between
 * LSTM layers).
 */
import { TunekitError, describe } from '../../errors.js';
import type { PretrainedModel } from '../../models/common.js';
import { normalizePromptLearningConfig, type PromptLearningConfig } from '../prompt/config.js';

export interface PTuningConfig extends PromptLearningConfig {
  peft_type: 'P_TUNING';
  encoder_reparameterization_type: 'MLP' | 'LSTM';
  encoder_hidden_size: number;
  encoder_num_layers: number;
  encoder_dropout: number;
}

export function normalizePTuningConfig(partial: Record<string, unknown>, model: PretrainedModel): PTuningConfig {
  const base = normalizePromptLearningConfig(partial, model, 'P_TUNING');
  const c: PTuningConfig = {
    ...base,
    peft_type: 'P_TUNING',
    encoder_reparameterization_type: (partial.encoder_reparameterization_type as PTuningConfig['encoder_reparameterization_type']) ?? 'MLP',
    encoder_hidden_size: (partial.encoder_hidden_size as number) ?? base.token_dim,
    encoder_num_layers: (partial.encoder_num_layers as number) ?? 2,
    encoder_dropout: (partial.encoder_dropout as number) ?? 0,
  };
  if (c.encoder_reparameterization_type !== 'MLP' && c.encoder_reparameterization_type !== 'LSTM') {
    throw new TunekitError('ERR_CONFIG', `p_tuning encoder_reparameterization_type: expected MLP or LSTM but received ${describe(c.encoder_reparameterization_type)}`);
  }
  for (const k of ['encoder_hidden_size', 'encoder_num_layers'] as const) {
    if (!Number.isInteger(c[k]) || c[k] < 1) throw new TunekitError('ERR_CONFIG', `p_tuning ${k}: expected a positive integer but received ${describe(c[k])}`);
  }
  if (!(c.encoder_dropout >= 0 && c.encoder_dropout < 1)) throw new TunekitError('ERR_CONFIG', `p_tuning encoder_dropout: expected a number in [0, 1) but received ${describe(c.encoder_dropout)}`);
  return c;
}

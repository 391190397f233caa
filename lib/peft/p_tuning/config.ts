/**
 * P-tuning's one config schema: peft 0.21's PromptEncoderConfig (the shared prompt-learning
 * fields plus the prompt encoder), with PEFT's names and defaults; types derive from it.
 *
 * @example
 * const cfg = normalizePTuningConfig({ num_virtual_tokens: 8, encoder_reparameterization_type: 'LSTM' }, model);
 */
import { z } from 'zod';
import type { PretrainedModel } from '../../models/common.js';
import { parseConfigOrThrow } from '../../config_errors.js';
import { posInt, dropoutProb } from '../base/config.js';
import { promptLearningShape, promptConfigFor, type WithModelFields } from '../prompt/config.js';

export const PTuningSchema = z.strictObject({
  ...promptLearningShape('P_TUNING'),
  /** the encoder over the virtual tokens' table: MLP (Linear-ReLU-Linear-ReLU-Linear) or LSTM (bidirectional, then an MLP) */
  encoder_reparameterization_type: z.enum(['MLP', 'LSTM']).default('MLP'),
  /** the encoder's hidden width; null: token_dim (tunekit's default; PEFT has none) */
  encoder_hidden_size: posInt.nullable().default(null),
  /** LSTM layers (ignored by the MLP, as in PEFT) */
  encoder_num_layers: posInt.default(2),
  /** dropout between LSTM layers */
  encoder_dropout: dropoutProb.default(0),
});

/** What users write (every field optional). */
export type PTuningConfigInput = z.input<typeof PTuningSchema>;
/** A P-tuning config after the model step (encoder_hidden_size filled). */
export type PTuningConfig = Omit<WithModelFields<z.output<typeof PTuningSchema>>, 'encoder_hidden_size'> & { encoder_hidden_size: number };

/**
 * Validates a P-tuning config with the schema or throws ERR_CONFIG listing every problem.
 * @example parsePTuningConfig({}).encoder_num_layers // 2
 */
export function parsePTuningConfig(raw: unknown): z.output<typeof PTuningSchema> {
  return parseConfigOrThrow(PTuningSchema, raw, 'p_tuning config');
}

/** The schema's parse plus the model step (token_dim, ... from the model; encoder_hidden_size = token_dim when null). */
export function normalizePTuningConfig(partial: unknown, model: PretrainedModel): PTuningConfig {
  const c = promptConfigFor(parsePTuningConfig(partial), model);
  return { ...c, encoder_hidden_size: c.encoder_hidden_size ?? c.token_dim };
}

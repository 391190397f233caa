/**
 * Prefix tuning's one config schema: peft 0.21's PrefixTuningConfig (the shared prompt-learning
 * fields plus the prefix projection), with PEFT's names and defaults; types derive from it.
 *
 * @example
 * const cfg = normalizePrefixTuningConfig({ num_virtual_tokens: 8, prefix_projection: true }, model);
 */
import { z } from 'zod';
import type { PretrainedModel } from '../../models/common.js';
import { parseConfigOrThrow } from '../../config_errors.js';
import { posInt, oneOf } from '../base/config.js';
import { promptLearningShape, promptConfigFor, type WithModelFields } from '../prompt/config.js';

export const PrefixTuningSchema = z.strictObject({
  ...promptLearningShape('PREFIX_TUNING'),
  /** true: prefixes come from Embedding(P, C') -> Linear(C', h) -> Tanh -> Linear(h, L*2*C'); false: a table */
  prefix_projection: z.boolean().default(false),
  /** the projection's hidden width h; null: token_dim (tunekit's default; PEFT has none) */
  encoder_hidden_size: posInt.nullable().default(null),
  /** null: random prefixes; "zero": a no-op start (zero prefixes, or a zero last projection layer) */
  init_weights: oneOf(['zero'] as const).nullable().default(null),
});

/** What users write (every field optional). */
export type PrefixTuningConfigInput = z.input<typeof PrefixTuningSchema>;
/** A prefix tuning config after the model step (encoder_hidden_size filled). */
export type PrefixTuningConfig = Omit<WithModelFields<z.output<typeof PrefixTuningSchema>>, 'encoder_hidden_size'> & { encoder_hidden_size: number };

/**
 * Validates a prefix tuning config with the schema or throws ERR_CONFIG listing every problem.
 * @example parsePrefixTuningConfig({}).prefix_projection // false
 */
export function parsePrefixTuningConfig(raw: unknown): z.output<typeof PrefixTuningSchema> {
  return parseConfigOrThrow(PrefixTuningSchema, raw, 'prefix_tuning config');
}

/** The schema's parse plus the model step (token_dim = the key/value width, ...; encoder_hidden_size = token_dim when null). */
export function normalizePrefixTuningConfig(partial: unknown, model: PretrainedModel): PrefixTuningConfig {
  const c = promptConfigFor(parsePrefixTuningConfig(partial), model);
  return { ...c, encoder_hidden_size: c.encoder_hidden_size ?? c.token_dim };
}

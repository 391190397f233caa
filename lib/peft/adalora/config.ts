/**
 * AdaLoRA's one config schema: peft 0.21's AdaLoraConfig (which extends LoraConfig), with PEFT's
 * names and defaults; types derive from it. `r` is ignored, as in PEFT (the rank is `init_r`);
 * `rank_pattern` holds the kept ranks once the allocator has masked any:
 * `{"<module>.lora_E": [true, false, ...]}`. The model step is LoRA's (`loraConfigFor`).
 *
 * @example
 * normalizeAdaloraConfig({ init_r: 12, target_r: 4, total_step: 1000, tinit: 100, tfinal: 200 }, 'gpt2', 'causal_lm')
 */
import { z } from 'zod';
import { TunekitError } from '../../errors.js';
import { expectedIssue, parseConfigOrThrow } from '../../config_errors.js';
import { peftConfigShape, oneOf, offOnly, posInt, nonNegInt, dropoutProb } from '../base/config.js';
import { loraShape, loraRules, loraConfigFor } from '../lora/config.js';

export const AdaloraSchema = z
  .strictObject({
    ...loraShape,
    ...peftConfigShape('ADALORA'),
    /** ignored by AdaLoRA, as in PEFT (which warns): the rank is init_r */
    r: posInt.default(8),
    /** numerator of the scale lora_alpha / init_r; 0: PEFT's rule, the scale numerator is init_r */
    lora_alpha: z.number().nonnegative().default(8),
    /**
     * true: PEFT's init, A, B ~ N(0, 0.02), E = 0; 'lora' (tunekit's addition): LoRA's init in SVD
     * form, A kaiming-uniform, B = 0, E = 1 (trains better: docs/methods-adalora.md; written to files
     * as true, PEFT's field is a bool); false: left random, for tests
     */
    init_lora_weights: oneOf([true, false, 'lora'] as const).default(true),
    /** kept ranks per layer, keys "<module path>.lora_E"; null before any masking (PEFT's AdaLoRA meaning, not LoRA's ranks) */
    rank_pattern: z.record(z.string(), z.array(z.boolean())).nullable().default(null),
    /** AdaLoRA has one lora_alpha (PEFT ignores alpha_pattern here): only {} */
    alpha_pattern: offOnly({}, "a per-module lora_alpha for AdaLoRA (PEFT ignores it)"),
    /** rsLoRA: PEFT's AdaLoRA layers have no rsLoRA scale, only false */
    use_rslora: offOnly(false, "rsLoRA scaling for AdaLoRA (PEFT's AdaLoRA ignores it)"),
    /** dropout on the adapter's input while training */
    lora_dropout: dropoutProb.default(0),
    /** rank each layer starts with */
    init_r: posInt.default(12),
    /** average rank per layer at the end (the final budget is target_r * layers) */
    target_r: posInt.default(8),
    /** warm-up steps without pruning */
    tinit: nonNegInt.default(0),
    /** final steps with the rank pattern frozen */
    tfinal: nonNegInt.default(0),
    /** steps between two budget allocations */
    deltaT: posInt.default(1),
    /** EMA coefficient of the sensitivity, in (0, 1) */
    beta1: z.number().gt(0).lt(1).default(0.85),
    /** EMA coefficient of the uncertainty, in (0, 1) */
    beta2: z.number().gt(0).lt(1).default(0.85),
    /** weight of the orthogonal regulariser added to the loss */
    orth_reg_weight: z.number().nonnegative().default(0.5),
    /** total training steps; null (tunekit's addition: PEFT requires it) until the Trainer sets it from its step count */
    total_step: posInt.nullable().default(null),
    /**
     * tunekit's addition: what the budget counts. 'rank' (absent: PEFT's rule) counts ranks;
     * 'params' counts each kept rank as its in + out + 1 parameters and ends at the parameter
     * count of LoRA r = target_r on the same layers. Written to files only when 'params'.
     */
    budget_unit: z.enum(['rank', 'params']).optional(),
  })
  .superRefine((v, ctx) => {
    loraRules(v, ctx);
    // the allocator only removes ranks
    if (v.target_r > v.init_r) ctx.addIssue(expectedIssue(`a number <= init_r = ${v.init_r} (the allocator only removes ranks)`, v.target_r, ['target_r']));
    if (v.total_step !== null && v.tinit >= v.total_step - v.tfinal) {
      // PEFT's check: warm-up and final phases must leave a budgeting phase between them
      ctx.addIssue(expectedIssue(`a number < total_step - tfinal = ${v.total_step - v.tfinal} (total_step ${v.total_step}, tfinal ${v.tfinal}) so that there is a budgeting phase; decrease tinit/tfinal or train longer`, v.tinit, ['tinit']));
    }
  });

/** What users write (every field optional). */
export type AdaloraConfigInput = z.input<typeof AdaloraSchema>;
/** A parsed AdaLoRA config (PEFT's defaults filled). */
export type AdaloraConfig = z.output<typeof AdaloraSchema>;

/**
 * Validates an AdaLoRA config with the schema or throws ERR_CONFIG listing every problem.
 * @example parseAdaloraConfig({ init_r: 6, target_r: 2 }).tinit // 0
 */
export function parseAdaloraConfig(raw: unknown): AdaloraConfig {
  return parseConfigOrThrow(AdaloraSchema, raw, 'AdaLoRA config');
}

/** The schema's parse plus LoRA's model step (snake_case, as in adapter_config.json). */
export function normalizeAdaloraConfig(partial: unknown, modelType: string, task: string): AdaloraConfig {
  return loraConfigFor(parseAdaloraConfig(partial), modelType, task, 'AdaLoRA');
}

/** PEFT's check: the schedule must leave a budgeting phase (tinit < total_step - tfinal). */
export function checkSchedule(c: Pick<AdaloraConfig, 'tinit' | 'tfinal'>, totalStep: number): void {
  if (c.tinit >= totalStep - c.tfinal) {
    throw new TunekitError('ERR_CONFIG', `AdaLoRA schedule: tinit (${c.tinit}) must be < total_step (${totalStep}) - tfinal (${c.tfinal}) so that there is a budgeting phase; decrease tinit/tfinal or train longer`);
  }
}

/**
 * The adapter scale PEFT applies: lora_alpha / (ranknum + 1e-5) with ranknum = init_r (f32), and
 * init_r itself in place of alpha when lora_alpha is 0. ranknum stays init_r after pruning.
 * @example adaloraScale(8, 12) // 0.6666661
 */
export function adaloraScale(alpha: number, initR: number): number {
  const scaling = alpha > 0 ? alpha : initR;
  return scaling / Math.fround(Math.fround(initR) + Math.fround(1e-5));
}

/**
 * AdaLoRA configuration with PEFT's field names and defaults (peft 0.21 AdaLoraConfig, which
 * extends LoraConfig). `r` is ignored (the rank is `init_r`); `rank_pattern` holds the kept ranks
 * once the allocator has masked any: `{"<module>.lora_E": [true, false, ...]}`.
 *
 * @example
 * normalizeAdaloraConfig({ init_r: 12, target_r: 4, total_step: 1000, tinit: 100, tfinal: 200 }, 'gpt2', 'causal_lm')
 */
import { TunekitError, describe } from '../../errors.js';
import { normalizeLoraConfig, type LoraConfig } from '../lora/config.js';

export interface AdaloraConfig extends Omit<LoraConfig, 'peft_type' | 'rank_pattern' | 'init_lora_weights'> {
  peft_type: 'ADALORA';
  /**
   * true: PEFT's init, A, B ~ N(0, 0.02), E = 0; 'lora' (tunekit's addition): LoRA's init in SVD
   * form, A kaiming-uniform, B = 0, E = 1 (trains better: docs/methods-adalora.md); false: left
   * random, for tests. Files get `true` for 'lora' (PEFT's field is a bool; it only matters before training).
   */
  init_lora_weights: boolean | 'lora';
  /** rank each layer starts with */
  init_r: number;
  /** average rank per layer at the end (the final budget is target_r * layers) */
  target_r: number;
  /** warm-up steps without pruning */
  tinit: number;
  /** final steps with the rank pattern frozen */
  tfinal: number;
  /** steps between two budget allocations */
  deltaT: number;
  /** EMA coefficient of the sensitivity */
  beta1: number;
  /** EMA coefficient of the uncertainty */
  beta2: number;
  /** weight of the orthogonal regulariser added to the loss */
  orth_reg_weight: number;
  /** total training steps (null until the trainer sets it from its own step count) */
  total_step: number | null;
  /**
   * What the budget counts (tunekit's extension; absent = PEFT's 'rank'): 'params' counts each
   * kept rank as its in + out + 1 parameters and sets the target to the parameter count of LoRA
   * r = target_r on the same layers, so ranks on small matrices cost less than on large ones.
   * Written to adapter_config.json only when 'params' (PEFT ignores the key with a warning).
   */
  budget_unit?: 'params';
  /** kept ranks per layer, keys "<module path>.lora_E"; null before any masking */
  rank_pattern: Record<string, boolean[]> | null;
}

/** PEFT's AdaLoraConfig fields (beyond LoraConfig's): what adapter_config.json carries. */
export const ADALORA_FIELDS = ['init_r', 'target_r', 'tinit', 'tfinal', 'deltaT', 'beta1', 'beta2', 'orth_reg_weight', 'total_step', 'rank_pattern'] as const;

function int(v: unknown, what: string, min: number): number {
  if (!Number.isInteger(v) || (v as number) < min) throw new TunekitError('ERR_CONFIG', `AdaLoRA ${what}: expected an integer >= ${min} but received ${describe(v)}`);
  return v as number;
}

/** Fills PEFT defaults into a partial AdaLoRA config and checks it (snake_case, as in adapter_config.json). */
export function normalizeAdaloraConfig(partial: Record<string, unknown>, modelType: string, task: string): AdaloraConfig {
  const { rank_pattern, init_lora_weights, ...loraPart } = partial;
  const lora = normalizeLoraConfig({ ...loraPart, rank_pattern: {} }, modelType, task);
  const c: AdaloraConfig = {
    ...lora,
    peft_type: 'ADALORA',
    init_lora_weights: (init_lora_weights as boolean | 'lora' | undefined) ?? true,
    init_r: int(partial.init_r ?? 12, 'init_r', 1),
    target_r: int(partial.target_r ?? 8, 'target_r', 0),
    tinit: int(partial.tinit ?? 0, 'tinit', 0),
    tfinal: int(partial.tfinal ?? 0, 'tfinal', 0),
    deltaT: int(partial.deltaT ?? 1, 'deltaT', 1),
    beta1: (partial.beta1 as number) ?? 0.85,
    beta2: (partial.beta2 as number) ?? 0.85,
    orth_reg_weight: (partial.orth_reg_weight as number) ?? 0.5,
    total_step: partial.total_step === undefined || partial.total_step === null ? null : int(partial.total_step, 'total_step', 1),
    rank_pattern: (rank_pattern as Record<string, boolean[]> | null | undefined) ?? null,
  };
  const unit = partial.budget_unit ?? 'rank';
  if (unit !== 'rank' && unit !== 'params') throw new TunekitError('ERR_CONFIG', `AdaLoRA budget_unit: expected "rank" or "params" but received ${describe(unit)}`);
  if (unit === 'params') c.budget_unit = 'params';
  for (const b of ['beta1', 'beta2'] as const) {
    if (!(c[b] > 0 && c[b] < 1)) throw new TunekitError('ERR_CONFIG', `AdaLoRA ${b}: expected a number in (0, 1) but received ${describe(c[b])}`);
  }
  if (!(c.orth_reg_weight >= 0)) throw new TunekitError('ERR_CONFIG', `AdaLoRA orth_reg_weight: expected a number >= 0 but received ${describe(c.orth_reg_weight)}`);
  if (c.target_r > c.init_r) throw new TunekitError('ERR_CONFIG', `AdaLoRA target_r (${c.target_r}) must not exceed init_r (${c.init_r}): the allocator only removes ranks`);
  if (typeof c.init_lora_weights !== 'boolean' && c.init_lora_weights !== 'lora') throw new TunekitError('ERR_CONFIG', `AdaLoRA init_lora_weights: expected true, false or "lora" but received ${describe(c.init_lora_weights)}`);
  if (c.total_step !== null) checkSchedule(c, c.total_step);
  if (c.rank_pattern !== null && (typeof c.rank_pattern !== 'object' || Object.values(c.rank_pattern).some((v) => !Array.isArray(v)))) {
    throw new TunekitError('ERR_CONFIG', `AdaLoRA rank_pattern: expected {"<module>.lora_E": [bool, ...]} or null but received ${describe(c.rank_pattern)}`);
  }
  return c;
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

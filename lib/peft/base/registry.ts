/**
 * PEFT method registry: each method registers once by its config `peft_type` and its CLI name;
 * duplicates are refused. Adding a method touches its folder and one import line in peft/index.ts.
 */
import { TunekitError } from '../../errors.js';
import type { PretrainedModel } from '../../models/common.js';
import type { PeftModel } from './peft_model.js';

export interface PeftMethod {
  /** `peft_type` in adapter_config.json, e.g. "LORA" */
  peftType: string;
  /** name in tunekit configs, e.g. "lora" */
  name: string;
  /** wraps the model with a fresh adapter from a (PEFT-style, snake_case) config */
  create(model: PretrainedModel, config: Record<string, unknown>, adapterName: string): PeftModel;
}

const byType = new Map<string, PeftMethod>();
const byName = new Map<string, PeftMethod>();

export function registerPeftMethod(m: PeftMethod): void {
  if (byType.has(m.peftType) || byName.has(m.name)) throw new TunekitError('ERR_VALUE', `PEFT method '${m.name}' (${m.peftType}) is already registered`);
  byType.set(m.peftType, m);
  byName.set(m.name, m);
}

export function peftMethodFor(typeOrName: string): PeftMethod {
  const m = byType.get(typeOrName) ?? byName.get(typeOrName);
  if (!m) throw new TunekitError('ERR_CONFIG', `Unknown PEFT method '${typeOrName}': registered are ${[...byName.keys()].join(', ')}`);
  return m;
}

export function peftMethods(): string[] {
  return [...byName.keys()];
}

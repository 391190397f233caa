/**
 * PEFT method registry: each method registers once, by its config `peft_type` and its name in
 * tunekit configs, with its one config schema; duplicates are refused. `tunekit train` validates
 * a `peft:` block with the schema registered under the config's `method`. A variant (QLoRA)
 * registers only its name: it writes another method's folders, which load through that method.
 * Adding a method touches its folder and one import line in peft/index.ts.
 */
import type { z } from 'zod';
import { TunekitError } from '../../errors.js';
import type { PretrainedModel } from '../../models/common.js';
import type { PeftModel } from './peft_model.js';
import { readAdapterConfig, readAdapterConfigSync } from './adapter_io.js';

export interface PeftMethod {
  /** `peft_type` in adapter_config.json, e.g. "LORA" */
  peftType: string;
  /** name in tunekit configs, e.g. "lora" */
  name: string;
  /** the method's one config schema (PEFT's snake_case fields and defaults; lib/peft/<method>/config.ts) */
  schema: z.ZodType;
  /** the method whose folders this one writes (QLoRA: 'lora'); such a method is not found by peft_type */
  variantOf?: string;
  /** wraps the model with a fresh adapter from a (PEFT-style, snake_case) config, validated by `schema` */
  create(model: PretrainedModel, config: Record<string, unknown>, adapterName: string): PeftModel;
  /** loads a PEFT folder of this method onto the model through fs/promises (absent for variants: their folders load through `variantOf`) */
  fromPretrained?(model: PretrainedModel, dir: string, adapterName?: string): Promise<PeftModel>;
  /** the same with blocking reads */
  fromPretrainedSync?(model: PretrainedModel, dir: string, adapterName?: string): PeftModel;
}

const byType = new Map<string, PeftMethod>();
const byName = new Map<string, PeftMethod>();

/**
 * Registers a method; a second method with the same name, or a second non-variant with the same
 * peft_type, is refused.
 * @example registerPeftMethod({ peftType: 'LORA', name: 'lora', schema: LoraSchema, create, fromPretrained, fromPretrainedSync })
 */
export function registerPeftMethod(m: PeftMethod): void {
  const typeTaken = !m.variantOf && byType.has(m.peftType);
  if (typeTaken || byName.has(m.name)) throw new TunekitError('ERR_VALUE', `PEFT method '${m.name}' (${m.peftType}) is already registered`);
  if (m.variantOf && !byName.has(m.variantOf)) throw new TunekitError('ERR_VALUE', `PEFT method '${m.name}' is a variant of '${m.variantOf}', which is not registered (import it first)`);
  if (!m.variantOf) byType.set(m.peftType, m);
  byName.set(m.name, m);
}

/**
 * The method registered under a peft_type ("LORA") or a tunekit name ("qlora").
 * @example peftMethodFor('lora').create(model, { r: 4 }, 'default')
 */
export function peftMethodFor(typeOrName: string): PeftMethod {
  const m = byType.get(typeOrName) ?? byName.get(typeOrName);
  if (!m) throw new TunekitError('ERR_CONFIG', `Unknown PEFT method '${typeOrName}': registered are ${[...byName.keys()].join(', ')}`);
  return m;
}

/** The method that loads a folder whose adapter_config.json names `peftType`. */
function folderMethod(peftType: unknown): PeftMethod {
  const m = peftMethodFor(String(peftType));
  if (!m.fromPretrained || !m.fromPretrainedSync) throw new TunekitError('ERR_VALUE', `PEFT method '${m.name}' has no folder loader (its folders are '${m.variantOf}' folders)`);
  return m;
}

/**
 * Loads a PEFT folder with the method its adapter_config.json's peft_type names, through
 * fs/promises.
 * @example const peft = await loadPeftFolder(base, 'runs/x/adapter');
 */
export async function loadPeftFolder(model: PretrainedModel, dir: string, adapterName = 'default'): Promise<PeftModel> {
  return folderMethod((await readAdapterConfig(dir)).peft_type).fromPretrained!(model, dir, adapterName);
}

/**
 * {@link loadPeftFolder} with blocking reads.
 * @example const peft = loadPeftFolderSync(base, 'runs/x/adapter');
 */
export function loadPeftFolderSync(model: PretrainedModel, dir: string, adapterName = 'default'): PeftModel {
  return folderMethod(readAdapterConfigSync(dir).peft_type).fromPretrainedSync!(model, dir, adapterName);
}

/** The registered names, in registration order (lora, qlora, adalora, ...). */
export function peftMethods(): string[] {
  return [...byName.keys()];
}

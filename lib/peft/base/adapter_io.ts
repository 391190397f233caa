/**
 * PEFT adapter folders: adapter_config.json (sorted keys, indent 2) and
 * adapter_model.safetensors (metadata {"format": "pt"}), keys `base_model.model.<path>` (LoRA,
 * AdaLoRA) or `prompt_embeddings` plus `base_model.<path>` for modules_to_save (prompt learning).
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { TunekitError } from '../../errors.js';
import { openSafetensorsSync, writeSafetensorsSync, type RawTensor } from '../../io/safetensors.js';
import { writeFileAtomicSync } from '../../io/atomic.js';

export const ADAPTER_CONFIG = 'adapter_config.json';
export const ADAPTER_WEIGHTS = 'adapter_model.safetensors';
/** prefix of base-model tensors written by PEFT's tuners (LoRA, AdaLoRA): `base_model.model.<path>` */
export const KEY_PREFIX = 'base_model.model.';
/** prefix of base-model tensors (modules_to_save) in prompt-learning folders: `base_model.<path>` */
export const PROMPT_KEY_PREFIX = 'base_model.';

function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v && typeof v === 'object') return Object.fromEntries(Object.keys(v).sort().map((k) => [k, sortKeys((v as Record<string, unknown>)[k])]));
  return v;
}

/** Writes the folder atomically (each file replaced whole). */
export function writeAdapterFolder(dir: string, config: Record<string, unknown>, tensors: RawTensor[]): void {
  mkdirSync(dir, { recursive: true });
  writeSafetensorsSync(join(dir, ADAPTER_WEIGHTS), tensors, { format: 'pt' });
  writeFileAtomicSync(join(dir, ADAPTER_CONFIG), JSON.stringify(sortKeys(config), null, 2));
}

/** Reads and checks a PEFT folder's adapter_config.json (it must name a peft_type). */
export function readAdapterConfig(dir: string): Record<string, unknown> {
  const cfgPath = join(dir, ADAPTER_CONFIG);
  if (!existsSync(cfgPath)) throw new TunekitError('ERR_NOT_FOUND', `no ${ADAPTER_CONFIG} in ${dir}: expected a PEFT adapter folder`);
  let config: Record<string, unknown>;
  try {
    config = JSON.parse(readFileSync(cfgPath, 'utf8'));
  } catch (e) {
    throw new TunekitError('ERR_FORMAT', `${cfgPath} is not valid JSON: ${(e as Error).message}`);
  }
  if (typeof config.peft_type !== 'string') throw new TunekitError('ERR_FORMAT', `${cfgPath} has no peft_type`);
  return config;
}

/** Reads adapter_config.json and every tensor of adapter_model.safetensors. */
export function readAdapterFolder(dir: string): { config: Record<string, unknown>; tensors: Map<string, RawTensor> } {
  const config = readAdapterConfig(dir);
  const wPath = join(dir, ADAPTER_WEIGHTS);
  if (!existsSync(wPath)) throw new TunekitError('ERR_NOT_FOUND', `no ${ADAPTER_WEIGHTS} in ${dir}`);
  const r = openSafetensorsSync(wPath);
  const tensors = new Map<string, RawTensor>();
  try {
    for (const n of r.names) tensors.set(n, r.readTensor(n));
  } finally {
    r.close();
  }
  return { config, tensors };
}

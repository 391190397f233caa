/**
 * PEFT adapter folders: adapter_config.json (sorted keys, indent 2) and
 * adapter_model.safetensors (metadata {"format": "pt"}), keys `base_model.model.<path>` (LoRA,
 * AdaLoRA) or `prompt_embeddings` plus `base_model.<path>` for modules_to_save (prompt learning).
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { TunekitError } from '../../errors.js';
import { openSafetensors, openSafetensorsSync, writeSafetensors, writeSafetensorsSync, type RawTensor } from '../../io/safetensors.js';
import { writeFileAtomic, writeFileAtomicSync } from '../../io/atomic.js';

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

/** A PEFT folder as read: adapter_config.json and every tensor of adapter_model.safetensors. */
export interface AdapterFolder {
  config: Record<string, unknown>;
  tensors: Map<string, RawTensor>;
}

function configText(config: Record<string, unknown>): string {
  return JSON.stringify(sortKeys(config), null, 2);
}

/**
 * Writes a PEFT folder through fs/promises, each file replaced whole (atomically).
 * @example await writeAdapterFolder('out/adapter', { peft_type: 'LORA', r: 8 }, tensors)
 */
export async function writeAdapterFolder(dir: string, config: Record<string, unknown>, tensors: RawTensor[]): Promise<void> {
  await mkdir(dir, { recursive: true });
  await writeSafetensors(join(dir, ADAPTER_WEIGHTS), tensors, { format: 'pt' });
  await writeFileAtomic(join(dir, ADAPTER_CONFIG), configText(config));
}

/**
 * {@link writeAdapterFolder} with blocking writes.
 * @example writeAdapterFolderSync('out/adapter', { peft_type: 'LORA', r: 8 }, tensors)
 */
export function writeAdapterFolderSync(dir: string, config: Record<string, unknown>, tensors: RawTensor[]): void {
  mkdirSync(dir, { recursive: true });
  writeSafetensorsSync(join(dir, ADAPTER_WEIGHTS), tensors, { format: 'pt' });
  writeFileAtomicSync(join(dir, ADAPTER_CONFIG), configText(config));
}

function missingConfig(dir: string): TunekitError {
  return new TunekitError('ERR_NOT_FOUND', `no ${ADAPTER_CONFIG} in ${dir}: expected a PEFT adapter folder`);
}

function parseAdapterConfig(cfgPath: string, text: string): Record<string, unknown> {
  let config: Record<string, unknown>;
  try {
    config = JSON.parse(text);
  } catch (e) {
    throw new TunekitError('ERR_FORMAT', `${cfgPath} is not valid JSON: ${(e as Error).message}`);
  }
  if (config === null || typeof config !== 'object' || Array.isArray(config)) throw new TunekitError('ERR_FORMAT', `${cfgPath} must hold a JSON object`);
  if (typeof config.peft_type !== 'string') throw new TunekitError('ERR_FORMAT', `${cfgPath} has no peft_type`);
  return config;
}

function configReadError(dir: string, cfgPath: string, e: unknown): TunekitError {
  if ((e as NodeJS.ErrnoException).code === 'ENOENT') return missingConfig(dir);
  return new TunekitError('ERR_IO', `${cfgPath}: cannot read (${(e as Error).message})`);
}

/**
 * Reads and checks a PEFT folder's adapter_config.json (it must name a peft_type).
 * @example (await readAdapterConfig('runs/x/adapter')).peft_type // 'LORA'
 */
export async function readAdapterConfig(dir: string): Promise<Record<string, unknown>> {
  const cfgPath = join(dir, ADAPTER_CONFIG);
  let text: string;
  try {
    text = await readFile(cfgPath, 'utf8');
  } catch (e) {
    throw configReadError(dir, cfgPath, e);
  }
  return parseAdapterConfig(cfgPath, text);
}

/**
 * {@link readAdapterConfig} with a blocking read.
 * @example readAdapterConfigSync('runs/x/adapter').peft_type // 'LORA'
 */
export function readAdapterConfigSync(dir: string): Record<string, unknown> {
  const cfgPath = join(dir, ADAPTER_CONFIG);
  let text: string;
  try {
    text = readFileSync(cfgPath, 'utf8');
  } catch (e) {
    throw configReadError(dir, cfgPath, e);
  }
  return parseAdapterConfig(cfgPath, text);
}

/**
 * Reads adapter_config.json and every tensor of adapter_model.safetensors (one read per tensor,
 * through fs/promises).
 * @example const { config, tensors } = await readAdapterFolder('runs/x/adapter');
 */
export async function readAdapterFolder(dir: string): Promise<AdapterFolder> {
  const config = await readAdapterConfig(dir);
  const wPath = join(dir, ADAPTER_WEIGHTS);
  if (!existsSync(wPath)) throw new TunekitError('ERR_NOT_FOUND', `no ${ADAPTER_WEIGHTS} in ${dir}`);
  const r = await openSafetensors(wPath);
  const tensors = new Map<string, RawTensor>();
  try {
    for (const n of r.names) tensors.set(n, await r.readTensor(n));
  } finally {
    await r.close();
  }
  return { config, tensors };
}

/**
 * {@link readAdapterFolder} with blocking reads.
 * @example const { config, tensors } = readAdapterFolderSync('runs/x/adapter');
 */
export function readAdapterFolderSync(dir: string): AdapterFolder {
  const config = readAdapterConfigSync(dir);
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

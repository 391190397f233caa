/**
 * Model registry keyed by config.json's `model_type`. Adding an architecture is one entry.
 */
import { TunekitError } from '../errors.js';
import type { PretrainedModel, Task, ModelConfig } from './common.js';

export interface Architecture {
  /** config.json -> our config */
  parseConfig(raw: Record<string, unknown>): ModelConfig;
  /** a model with freshly initialised weights */
  build(config: ModelConfig, task: Task): PretrainedModel;
  /** checkpoint key -> our parameter name (null to ignore the key, e.g. non-persistent buffers) */
  mapKey(key: string, task: Task): string | null;
  /** our parameter name -> the key transformers saves */
  saveKey(name: string, task: Task): string;
  /** keys transformers does not save (tied heads) */
  skipOnSave?(name: string, config: ModelConfig): boolean;
  /** transformers' class name for config.json `architectures` */
  className(task: Task): string;
}

const registry = new Map<string, Architecture>();

/** Registers an architecture; a duplicate name is refused. */
export function registerArchitecture(modelType: string, arch: Architecture): void {
  if (registry.has(modelType)) throw new TunekitError('ERR_VALUE', `model type '${modelType}' is already registered`);
  registry.set(modelType, arch);
}

export function architectureFor(modelType: unknown): Architecture {
  const a = typeof modelType === 'string' ? registry.get(modelType) : undefined;
  if (!a) {
    throw new TunekitError('ERR_CONFIG', `Unknown model_type ${JSON.stringify(modelType)}: supported are ${[...registry.keys()].map((k) => `'${k}'`).join(', ')}`);
  }
  return a;
}

export function supportedModelTypes(): string[] {
  return [...registry.keys()];
}

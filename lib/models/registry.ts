/**
 * Model registry keyed by config.json's `model_type`. Adding an architecture is one entry.
 */
import { TunekitError, describe } from '../errors.js';
import type { PretrainedModel, Task, ModelConfig, ParameterShapes } from './common.js';

export interface Architecture {
  /** config.json -> our config */
  parseConfig(raw: Record<string, unknown>): ModelConfig;
  /** a model with freshly initialised weights */
  build(config: ModelConfig, task: Task): PretrainedModel;
  /**
   * Every parameter `build` would create, name -> shape, computed from the config alone (no
   * allocation): the loader checks the parameter count and the checkpoint's shapes against it
   * before building anything. Must list exactly build's namedParameters (a test checks it).
   */
  parameterShapes(config: ModelConfig, task: Task): ParameterShapes;
  /** checkpoint key -> our parameter name (null to ignore the key, e.g. non-persistent buffers) */
  mapKey(key: string, task: Task): string | null;
  /** our parameter name -> the key transformers saves */
  saveKey(name: string, task: Task): string;
  /** keys transformers does not save (tied heads) */
  skipOnSave?(name: string, config: ModelConfig): boolean;
  /** transformers' class name for config.json `architectures` */
  className(task: Task): string;
  /**
   * Buffers are part of the checkpoint (BatchNorm's running statistics): loaded when the file
   * has them and saved beside the parameters. Off for the text models (their rotary tables are
   * computed, not loaded).
   */
  savesBuffers?: boolean;
}

const registry = new Map<string, Architecture>();

/** Registers an architecture; a duplicate name is refused. */
export function registerArchitecture(modelType: string, arch: Architecture): void {
  if (registry.has(modelType)) throw new TunekitError('ERR_VALUE', `model type '${modelType}' is already registered`);
  registry.set(modelType, arch);
}

export function architectureFor(modelType: unknown): Architecture {
  const supported = [...registry.keys()].map((k) => `'${k}'`).join(', ');
  if (modelType === undefined || modelType === null) {
    throw new TunekitError('ERR_CONFIG', `config.json has no model_type: expected one of ${supported}`);
  }
  if (typeof modelType !== 'string') {
    throw new TunekitError('ERR_CONFIG', `config.json: expected model_type to be a string (one of ${supported}) but received ${describe(modelType)}`);
  }
  const a = registry.get(modelType);
  if (!a) throw new TunekitError('ERR_CONFIG', `Unknown model_type ${JSON.stringify(modelType)}: supported are ${supported}`);
  return a;
}

export function supportedModelTypes(): string[] {
  return [...registry.keys()];
}

/** Parameter-efficient methods. Each registers itself; import order is the registry's order. */
import './lora/model.js';
export * from './adalora/index.js';
export * from './prompt_tuning/index.js';
export * from './p_tuning/index.js';
export * from './prefix_tuning/index.js';
export { PeftModel, type TrainingHooks } from './base/peft_model.js';
export { registerPeftMethod, peftMethodFor, peftMethods, type PeftMethod } from './base/registry.js';
export { matchesTarget, findTargets } from './base/targets.js';
export { readAdapterFolder, writeAdapterFolder } from './base/adapter_io.js';
export { LoraModel } from './lora/model.js';
export { LoraLinear } from './lora/layer.js';
export { normalizeLoraConfig, loraScale, type LoraConfig } from './lora/config.js';

/**
 * Parameter-efficient methods. Each method's folder registers itself (with its config schema)
 * when its index.ts is imported; import order is the registry's order, which `tunekit train`'s
 * `method:` list follows. Adding a method = its folder + one line here.
 */
export * from './lora/index.js';
export * from './qlora/index.js';
export * from './adalora/index.js';
export * from './prompt_tuning/index.js';
export * from './p_tuning/index.js';
export * from './prefix_tuning/index.js';
export { PeftModel, type TrainingHooks } from './base/peft_model.js';
export { registerPeftMethod, peftMethodFor, peftMethods, loadPeftFolder, loadPeftFolderSync, type PeftMethod } from './base/registry.js';
export { matchesTarget, findTargets } from './base/targets.js';
export { readAdapterFolder, readAdapterFolderSync, writeAdapterFolder, writeAdapterFolderSync, type AdapterFolder } from './base/adapter_io.js';

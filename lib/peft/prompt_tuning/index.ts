/** PROMPT_TUNING: registers the method (`prompt_tuning` in tunekit configs). */
import { registerPeftMethod } from '../base/registry.js';
import { PromptTuningModel } from './model.js';

registerPeftMethod({
  peftType: 'PROMPT_TUNING',
  name: 'prompt_tuning',
  create: (model, config, adapterName) => new PromptTuningModel(model, config, adapterName),
});

export { PromptTuningModel, PromptEmbedding, initTokenIds, type PromptTuningOptions, type TextEncoder } from './model.js';
export { normalizePromptTuningConfig, type PromptTuningConfig } from './config.js';

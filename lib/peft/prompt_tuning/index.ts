/** PROMPT_TUNING: registers the method with its schema (`prompt_tuning` in tunekit configs). */
import { registerPeftMethod } from '../base/registry.js';
import { PromptTuningModel } from './model.js';
import { PromptTuningSchema } from './config.js';

registerPeftMethod({
  peftType: 'PROMPT_TUNING',
  name: 'prompt_tuning',
  schema: PromptTuningSchema,
  create: (model, config, adapterName) => new PromptTuningModel(model, config, adapterName),
  fromPretrained: (model, dir, adapterName) => PromptTuningModel.fromPretrained(model, dir, adapterName),
  fromPretrainedSync: (model, dir, adapterName) => PromptTuningModel.fromPretrainedSync(model, dir, adapterName),
});

export { PromptTuningModel, PromptEmbedding, initTokenIds, type PromptTuningOptions } from './model.js';
export { PromptTuningSchema, parsePromptTuningConfig, normalizePromptTuningConfig, type PromptTuningConfig, type PromptTuningConfigInput } from './config.js';

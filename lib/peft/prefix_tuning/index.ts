/** PREFIX_TUNING: registers the method with its schema (`prefix_tuning` in tunekit configs). */
import { registerPeftMethod } from '../base/registry.js';
import { PrefixTuningModel } from './model.js';
import { PrefixTuningSchema } from './config.js';

registerPeftMethod({
  peftType: 'PREFIX_TUNING',
  name: 'prefix_tuning',
  schema: PrefixTuningSchema,
  create: (model, config, adapterName) => new PrefixTuningModel(model, config, adapterName),
  fromPretrained: (model, dir, adapterName) => PrefixTuningModel.fromPretrained(model, dir, adapterName),
  fromPretrainedSync: (model, dir, adapterName) => PrefixTuningModel.fromPretrainedSync(model, dir, adapterName),
});

export { PrefixTuningModel, PrefixEncoder } from './model.js';
export { PrefixTuningSchema, parsePrefixTuningConfig, normalizePrefixTuningConfig, type PrefixTuningConfig, type PrefixTuningConfigInput } from './config.js';

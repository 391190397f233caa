/** PREFIX_TUNING: registers the method (`prefix_tuning` in tunekit configs). */
import { registerPeftMethod } from '../base/registry.js';
import { PrefixTuningModel } from './model.js';

registerPeftMethod({
  peftType: 'PREFIX_TUNING',
  name: 'prefix_tuning',
  create: (model, config, adapterName) => new PrefixTuningModel(model, config, adapterName),
});

export { PrefixTuningModel, PrefixEncoder } from './model.js';
export { normalizePrefixTuningConfig, type PrefixTuningConfig } from './config.js';

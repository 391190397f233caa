/** P_TUNING: registers the method (`p_tuning` in tunekit configs). */
import { registerPeftMethod } from '../base/registry.js';
import { PTuningModel } from './model.js';

registerPeftMethod({
  peftType: 'P_TUNING',
  name: 'p_tuning',
  create: (model, config, adapterName) => new PTuningModel(model, config, adapterName),
});

export { PTuningModel, PTuningEncoder } from './model.js';
export { normalizePTuningConfig, type PTuningConfig } from './config.js';
export { LSTM, lstmLayer } from './lstm.js';

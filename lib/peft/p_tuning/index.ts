/** P_TUNING: registers the method with its schema (`p_tuning` in tunekit configs). */
import { registerPeftMethod } from '../base/registry.js';
import { PTuningModel } from './model.js';
import { PTuningSchema } from './config.js';

registerPeftMethod({
  peftType: 'P_TUNING',
  name: 'p_tuning',
  schema: PTuningSchema,
  create: (model, config, adapterName) => new PTuningModel(model, config, adapterName),
  fromPretrained: (model, dir, adapterName) => PTuningModel.fromPretrained(model, dir, adapterName),
  fromPretrainedSync: (model, dir, adapterName) => PTuningModel.fromPretrainedSync(model, dir, adapterName),
});

export { PTuningModel, PTuningEncoder } from './model.js';
export { PTuningSchema, parsePTuningConfig, normalizePTuningConfig, type PTuningConfig, type PTuningConfigInput } from './config.js';
export { LSTM, lstmLayer } from './lstm.js';

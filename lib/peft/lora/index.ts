/** LORA: registers the method (`lora` in tunekit configs) with its schema. */
import { registerPeftMethod } from '../base/registry.js';
import { LoraModel } from './model.js';
import { LoraSchema } from './config.js';

registerPeftMethod({
  peftType: 'LORA',
  name: 'lora',
  schema: LoraSchema,
  create: (model, config, adapterName) => new LoraModel(model, config, adapterName),
  fromPretrained: (model, dir, adapterName) => LoraModel.fromPretrained(model, dir, adapterName),
  fromPretrainedSync: (model, dir, adapterName) => LoraModel.fromPretrainedSync(model, dir, adapterName),
});

export { LoraModel } from './model.js';
export { LoraLinear } from './layer.js';
export { LoraEmbedding } from './embedding.js';
export {
  LoraSchema, loraShape, parseLoraConfig, normalizeLoraConfig, loraConfigFor, loraScale, headModulesFor, DEFAULT_TARGETS,
  type LoraConfig, type LoraConfigInput,
} from './config.js';

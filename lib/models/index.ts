/** Models: the registry (keyed by model_type), the architectures, loading and saving. */
import './gpt2.js';
export * from './common.js';
export { registerArchitecture, architectureFor, supportedModelTypes, type Architecture } from './registry.js';
export { loadPretrained, loadPretrainedSync, loadWeights, loadWeightsSync, savePretrained, savePretrainedSync, readConfig, readConfigSync, type LoadOptions, type LoadReport, type SaveOptions } from './loader.js';
export { GPT2, GPT2Model, parseGPT2Config, type GPT2Config } from './gpt2.js';
import './bert.js';
import './llama.js';
export { Bert, BertModel, parseBertConfig, type BertConfig, type BertActivation } from './bert.js';
export { Llama, LlamaModel, parseLlamaConfig, ropeInvFreq, type LlamaConfig, type RopeConfig, type RopeType } from './llama.js';
export { generate, type GenerateOptions, type GenerateResult, type TokenEvent, type TokenizerLike } from './generate.js';
import './resnet.js';
import './vit.js';
export { ResNet, ResNetModel, parseResNetConfig, type ResNetConfig } from './resnet.js';
export { ViT, ViTModel, parseViTConfig, type ViTConfig } from './vit.js';

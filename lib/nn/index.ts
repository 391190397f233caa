export { Module, ModuleList, inferenceMode, inInferenceMode } from './module.js';
export { Linear, Embedding, LayerNorm, RMSNorm, Dropout, type LinearLike } from './layers.js';
export { activate, parseActivation, SUPPORTED_ACTIVATIONS, type ActivationName } from './activation.js';
export { manualSeed, nextSeed, getSeedState, setSeedState } from './random.js';

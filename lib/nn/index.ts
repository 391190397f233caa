export { Module, ModuleList, inferenceMode, inInferenceMode } from './module.js';
export { Linear, Embedding, LayerNorm, RMSNorm, Dropout, type LinearLike } from './layers.js';
export { activate, parseActivation, SUPPORTED_ACTIVATIONS, type ActivationName } from './activation.js';
export { manualSeed, nextSeed, getSeedState, setSeedState } from './random.js';
export { Conv2d, BatchNorm2d, MaxPool2d, AvgPool2d, AdaptiveAvgPool2d, type Conv2dConfig } from './conv.js';

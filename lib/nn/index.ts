export { Module, ModuleList } from './module.js';
export { Linear, Embedding, LayerNorm, RMSNorm, Dropout, type LinearLike } from './layers.js';
export { manualSeed, nextSeed, getSeedState, setSeedState } from './random.js';

export { Module } from './module.js';
export { Linear, Embedding, LayerNorm, RMSNorm, Dropout } from './layers.js';
export { manualSeed, nextSeed, getSeedState, setSeedState } from './random.js';

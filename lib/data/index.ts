/** Datasets, examples, batching: plain data, no tensors. */
export * from './types.js';
export * from './rng.js';
export * from './load.js';
export * from './formats.js';
export * from './labels.js';
export * from './examples.js';
export * from './collate.js';
export * from './split.js';
export * from './loader.js';
export * from './email.js';
export * from './builtin.js';
export * from './afinn.js';
export * from './dataset.js';
export * from './token_cls.js';
export * from './images.js';
export * from './image_processor.js';

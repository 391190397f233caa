/**
 * `tunekit/data`: datasets, examples and batching (plain data, no tensors); the same objects as
 * `import { data } from 'tunekit'`.
 * @example
 * import { spamAssassin, buildLabelMap } from 'tunekit/data';
 */
import '../index.js'; // the library initialises as from the root (autograd methods, model and PEFT registries)
export * from '../data/index.js';

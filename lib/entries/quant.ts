/**
 * `tunekit/quant`: NF4 / FP4 weights, quantizing a model, QLoRA checkpoints and merging; the same
 * objects as `import { quant } from 'tunekit'`.
 * @example
 * import { quantizeModel } from 'tunekit/quant';
 */
import '../index.js'; // the library initialises as from the root (autograd methods, model and PEFT registries)
export * from '../quant/index.js';

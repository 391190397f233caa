/**
 * `tunekit/io`: safetensors reading and writing, atomic files, output folders; the same objects as
 * `import { io } from 'tunekit'`.
 * @example
 * import { openSafetensorsSync } from 'tunekit/io';
 */
import '../index.js'; // the library initialises as from the root (autograd methods, model and PEFT registries)
export * from '../io/index.js';

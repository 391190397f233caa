/**
 * `tunekit/rlhf`: reward models, DPO and PPO; the same objects as `import { rlhf } from 'tunekit'`.
 * @example
 * import { DpoTrainer } from 'tunekit/rlhf';
 */
import '../index.js'; // the library initialises as from the root (autograd methods, model and PEFT registries)
export * from '../rlhf/index.js';

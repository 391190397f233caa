/**
 * tunekit: fine-tune pretrained models from Node.js.
 * @example
 * import { tensor, ops, backward } from 'tunekit';
 */
import './autograd/index.js';
export * from './tensor/index.js';
export * from './autograd/index.js';
export * from './nn/index.js';
export { TunekitError } from './errors.js';
export { native } from './native.js';

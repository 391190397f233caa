/** Autograd: the tape, the gradient table and the differentiable ops (with chainable methods). */
import './rules.js';
import './methods.js';
export { backward, noGrad, isGradEnabled } from './tape.js';
export { GRAD_RULES, type OpName } from './rules.js';
export * as ops from './ops.js';

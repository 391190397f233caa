/**
 * Activation functions by transformers' ACT2FN names (transformers/activations.py), as config.json
 * names them (`activation_function` for GPT-2, `hidden_act` for BERT and the Llama family).
 * Each entry computes what the transformers class computes, in f32, composed from differentiable
 * ops so the gradient follows. Names whose function needs an op tunekit lacks (erf of an
 * arbitrary argument for `laplace`, softplus for `mish` / `sqrtsoftplus`) or learned parameters
 * (`prelu`, `xielu`) are refused by `parseActivation` rather than run as something else.
 */
import type { Tensor } from '../tensor/tensor.js';
import { TunekitError, describe } from '../errors.js';
import * as F from '../autograd/ops.js';

type Fn = (x: Tensor) => Tensor<'f32'>;

const geluErf: Fn = (x) => F.gelu(x, 'erf');
// 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))); gelu_fast writes the constant as 0.7978845608
// and gelu_accurate precomputes sqrt(2/pi): the same function to ~3e-12 relative, below f32's ulp.
const geluTanh: Fn = (x) => F.gelu(x, 'tanh');

const ACTIVATIONS = {
  gelu: geluErf,
  gelu_python: geluErf,
  gelu_new: geluTanh,
  gelu_pytorch_tanh: geluTanh,
  gelu_python_tanh: geluTanh,
  gelu_fast: geluTanh,
  gelu_accurate: geluTanh,
  /** ClippedGELUActivation(-10, 10): clip(gelu(x), -10, 10) */
  gelu_10: (x) => F.clamp(geluErf(x), -10, 10),
  /** QuickGELUActivation: x * sigmoid(1.702 x) */
  quick_gelu: (x) => F.mul(x, F.sigmoid(F.scale(x, 1.702))),
  relu: (x) => F.relu(x),
  /** ReLUSquaredActivation: relu(x)^2 */
  relu2: (x) => F.square(F.relu(x)),
  /** nn.ReLU6: min(max(x, 0), 6) */
  relu6: (x) => F.clamp(x, 0, 6),
  /** nn.LeakyReLU() with its default negative_slope 0.01: x for x >= 0, 0.01 x below */
  leaky_relu: (x) => F.sub(F.relu(x), F.scale(F.relu(F.neg(x)), 0.01)),
  /** nn.Hardswish: x * relu6(x + 3) / 6 */
  hardswish: (x) => F.mul(x, F.scale(F.clamp(F.addScalar(x, 3), 0, 6), 1 / 6)),
  silu: (x) => F.silu(x),
  swish: (x) => F.silu(x),
  sigmoid: (x) => F.sigmoid(x),
  tanh: (x) => F.tanh(x),
  /** LinearActivation: the identity */
  linear: (x) => x as Tensor<'f32'>,
} satisfies Record<string, Fn>;

/** A transformers activation name tunekit computes exactly. */
export type ActivationName = keyof typeof ACTIVATIONS;

/** Every ACT2FN name tunekit implements. */
export const SUPPORTED_ACTIVATIONS = Object.keys(ACTIVATIONS) as ActivationName[];

/**
 * Checks a config.json activation field: a string naming one of SUPPORTED_ACTIVATIONS.
 * Anything else (another ACT2FN name, an unknown string, a number) is an ERR_CONFIG naming the
 * field and the value.
 * @example parseActivation('activation_function', raw.activation_function ?? 'gelu_new') // 'gelu_new'
 */
export function parseActivation(fieldName: string, value: unknown): ActivationName {
  if (typeof value !== 'string') {
    throw new TunekitError('ERR_CONFIG', `config.json: expected ${fieldName} to be an activation name (one of ${SUPPORTED_ACTIVATIONS.join(', ')}) but received ${describe(value)}`);
  }
  if (!Object.prototype.hasOwnProperty.call(ACTIVATIONS, value)) {
    throw new TunekitError('ERR_CONFIG', `config.json: ${fieldName} '${value}' is not supported (supported: ${SUPPORTED_ACTIVATIONS.join(', ')})`);
  }
  return value as ActivationName;
}

/**
 * Applies an activation by name.
 * @example const h = activate(fc.forward(x), 'gelu_new');
 */
export function activate(x: Tensor, name: ActivationName): Tensor<'f32'> {
  return ACTIVATIONS[name](x);
}

/**
 * TensorFlow.js (wasm backend) timings of the kernels in bench/kernels.bench.ts: same names,
 * same GPT-2 small training shapes (B 4, T 128, C 768, 12 heads of 64, vocab 50257), same timing
 * method as bench/reference/torch_kernels.py (2 warm-up calls, then calls until both 5 samples and
 * --time ms are reached; the median). One JSON line per kernel, { impl, name, ms }, after one line
 * { impl, backend: {...} } that says which wasm binary ran (SIMD, threads).
 *
 * TF.js has no fused attention, LayerNorm or GELU; each is written the way a TF.js user would:
 * attention as matMul -> scale + causal mask -> softmax -> matMul, LayerNorm as tf.moments and
 * elementwise ops, GELU as the tanh formula, cross-entropy as tf.losses.softmaxCrossEntropy on
 * one-hot labels (its only form; the one-hot matrix is built once, outside the timing), AdamW as
 * the decoupled decay followed by tf.train.adam's update. Backward passes use tf.grads on the sum
 * of the output, as the others do. Each formulation was checked against tunekit's op on small
 * inputs (max abs difference 1e-7 to 2e-7) when this file was written.
 *
 * What the wasm backend does with them: a plain 2-D matMul goes to XNNPACK, which keeps the packed
 * right-hand matrix cached by tensor (the repeated 'gemm 512x768x3072' packs w once); a transposed
 * or batched matMul (the attention's, every backward GEMM) goes to a scalar blocked loop.
 *
 * The wasm backend runs each op to completion inside the call (no queue), so a call's time is its
 * work; nothing is read back. It runs one thread under Node (see backend.mjs): --threads is
 * accepted for the common interface and otherwise ignored.
 *
 *   node bench/reference/tfjs/kernels.mjs [--time 400] [--only gemm]
 */
import { parseArgs } from 'node:util';
import { loadTfjsWasm } from './backend.mjs';

const { values } = parseArgs({ options: { threads: { type: 'string', default: '2' }, time: { type: 'string', default: '400' }, only: { type: 'string', default: '' } } });
const { tf, info } = await loadTfjsWasm();
process.stdout.write(JSON.stringify({ impl: 'tfjs-wasm', backend: info }) + '\n');

const B = 4, T = 128, C = 768, H = 12, D = 64, V = 50257, M = B * T;
const randn = (shape, seed, std = 1) => tf.randomNormal(shape, 0, std, 'float32', seed);
const x = randn([M, C], 1);
const w = randn([C, 4 * C], 2, 0.02);
const logitsW = randn([V, C], 12, 0.02);
const [q, k, v] = [3, 4, 5].map((s) => randn([B, H, T, D], s));
const lnw = randn([C], 6), lnb = randn([C], 7);
const scores = randn([B * H * T, T], 8);
const hidden = randn([M, 4 * C], 13);
const logits = randn([M, V], 9);
// labels[i] = i * 7919 mod V, as the other two sides; one-hot [M, V] because that is the form
// tf.losses.softmaxCrossEntropy takes
const oneHot = tf.tidy(() => tf.cast(tf.oneHot(tf.tensor1d(Int32Array.from({ length: M }, (_, i) => (i * 7919) % V), 'int32'), V), 'float32'));
// additive causal mask [T, T]: 0 on and below the diagonal, -1e9 above (exp underflows to 0)
const causalMask = tf.tidy(() => tf.mul(tf.sub(1, tf.linalg.bandPart(tf.ones([T, T]), -1, 0)), -1e9));
const lr = 1e-4, weightDecay = 0.01;
const param = tf.variable(randn([C, 4 * C], 10), true, 'w');
const paramGrad = randn([C, 4 * C], 11);
const adam = tf.train.adam(lr, 0.9, 0.999, 1e-8);

/** Causal attention, (B,H,T,D) x3 -> (B,H,T,D). */
function attention(a, b, c) {
  const s = tf.add(tf.mul(tf.matMul(a, b, false, true), 1 / Math.sqrt(D)), causalMask);
  return tf.matMul(tf.softmax(s), c);
}
/**
 * LayerNorm over the last axis, (M,C) -> (M,C), eps 1e-5: tf.moments, then elementwise ops.
 * Not tf.batchNorm: its gradient cannot broadcast per-row [M,1] moments (tfjs-layers'
 * LayerNormalization tiles mean, variance, scale and offset to [M,C] first, tensorflow/tfjs#2120),
 * and the elementwise form is the cheaper of the two.
 */
function layerNorm(a) {
  const { mean, variance } = tf.moments(a, -1, true);
  return tf.add(tf.mul(tf.mul(tf.sub(a, mean), tf.rsqrt(tf.add(variance, 1e-5))), lnw), lnb);
}
/** GELU, tanh approximation (GPT-2's): 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). */
function gelu(a) {
  // x * x^2, not tf.pow(x, 3): pow's gradient goes through log and exp (about twice the time)
  const inner = tf.mul(Math.sqrt(2 / Math.PI), tf.add(a, tf.mul(0.044715, tf.mul(a, tf.square(a)))));
  return tf.mul(tf.mul(0.5, a), tf.add(1, tf.tanh(inner)));
}
const crossEntropy = (l) => tf.losses.softmaxCrossEntropy(oneHot, l);
/** fn's inputs' gradients of sum(fn(...ins)); the forward and backward are both timed. */
const fwdBwd = (fn, ...ins) => tf.grads((...a) => tf.sum(fn(...a)))(ins);

const cases = [
  ['gemm 512x768x3072', () => tf.matMul(x, w)],
  // tf.matMul(x, logitsW, false, true) would take ~26 s here: the wasm backend sends every
  // transposed or batched matMul to a scalar blocked loop and only plain 2-D ones to XNNPACK, so
  // a TF.js user transposes the weight first (and pays for that copy, as the weight changes each
  // training step)
  ['gemm 512x768x50257 tB (LM head)', () => tf.matMul(x, tf.transpose(logitsW))],
  ['attention fwd B4 H12 T128 D64', () => attention(q, k, v)],
  ['attention fwd+bwd', () => fwdBwd(attention, q, k, v)],
  ['layerNorm fwd 512x768', () => layerNorm(x)],
  ['layerNorm fwd+bwd', () => fwdBwd(layerNorm, x)],
  ['softmax 6144x128', () => tf.softmax(scores)],
  ['gelu fwd+bwd 512x3072', () => fwdBwd(gelu, hidden)],
  ['cross-entropy fwd 512x50257', () => crossEntropy(logits)],
  ['cross-entropy fwd+bwd', () => tf.grads((l) => crossEntropy(l))([logits])],
  ['AdamW step 2.36M params', () => {
    // decoupled weight decay (p <- p (1 - lr wd)), then Adam's moment update, as torch's AdamW
    param.assign(tf.mul(param, 1 - lr * weightDecay));
    adam.applyGradients({ w: paramGrad });
  }],
];

for (const [name, fn] of cases) {
  if (values.only && !name.includes(values.only)) continue;
  const call = () => tf.tidy(() => void fn());
  for (let i = 0; i < 2; i++) call();
  const samples = [];
  const tEnd = performance.now() + +values.time;
  while (samples.length < 5 || performance.now() < tEnd) {
    const t0 = performance.now();
    call();
    samples.push(performance.now() - t0);
  }
  samples.sort((a, b) => a - b);
  process.stdout.write(JSON.stringify({ impl: 'tfjs-wasm', name, ms: samples[samples.length >> 1] }) + '\n');
}

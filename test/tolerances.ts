/**
 * Every numerical tolerance of the test suite, in one place (DESIGN.md, decision 10).
 *
 * A value passes when |got - want| <= atol + rtol * |want| (numpy's allclose), element by element.
 * The reference ("want") is float64 (PyTorch in float64, or a float64 JS forward); tunekit runs in
 * f32, so the floor for one rounding is about 6e-8 relative. Each entry says why it is as loose as
 * it is; the maxima measured on this machine (x86-64 AVX-512, 2 threads) are quoted beside them so
 * a regression that eats the margin is visible in review.
 */
export interface Tolerance {
  readonly rtol: number;
  readonly atol: number;
}

/** Op outputs and input gradients against PyTorch float64 (test/autograd/ops_vs_torch.test.ts), by fixture `kind`. */
export const OP_TOL = {
  /**
   * Layout ops (reshape, permute, slice, concat, contiguous, embedding, gatherRows): values are only
   * moved, and gradients are sums of at most a few exactly representable loss weights, so the
   * result must be bit-exact.
   */
  exact: { rtol: 0, atol: 0 },
  /**
   * Element-wise ops: one or two f32 roundings plus the polynomial exp/tanh/erf of the native
   * kernels (a few ulp); gradients such as 1 - tanh^2 lose digits where they are tiny, hence the
   * atol. Measured: max 1.3e-6 absolute (gelu-tanh gradient of O(1)), 12% of this tolerance.
   */
  elementwise: { rtol: 1e-5, atol: 1e-6 },
  /**
   * Short reductions (<= 129 terms) and cross-entropy: f32 accumulation error grows like
   * sqrt(n) * 6e-8 relative to sum |x|, and the atol covers sums that cancel towards 0.
   * Measured: outputs exact after rounding (the kernels accumulate in double), gradients <= 2e-8.
   */
  reduction: { rtol: 1e-5, atol: 1e-5 },
  /**
   * Sum / mean of ~1200 terms in f32: the result can cancel to far below sum |x| (about 40 here),
   * so a pure relative tolerance would be wrong; 1e-4 absolute is ~4e-5 of n*eps*sum|x|, a
   * pairwise/blocked f32 sum is well inside it. Measured: exact (double accumulation).
   */
  long_reduction: { rtol: 1e-5, atol: 1e-4 },
  /**
   * GEMMs with K <= 129: f32 products accumulated with FMA in blocked order; outputs are O(1-10)
   * sums whose terms cancel, so relative error alone is meaningless near 0: 1e-5 absolute on top
   * of 1e-5 relative. Measured: max 3.8e-6 absolute (batched, K = 33), 14% of this tolerance (the
   * LoRA B gradient, which sums over all M rows).
   */
  matmul: { rtol: 1e-5, atol: 1e-5 },
  /**
   * softmax / log-softmax: one exp per element and a row sum; logits up to |60| (large-logit
   * rows, where log-softmax values reach -100 and their f32 ulp is 7.6e-6). Measured: 1.8% used.
   */
  softmax: { rtol: 1e-5, atol: 1e-6 },
  /** layerNorm / rmsNorm: mean and variance over <= 129 values, rstd in f32. Measured: <= 4.8e-7 absolute, 1.5% used. */
  norm: { rtol: 1e-5, atol: 1e-5 },
  /**
   * Attention: scores through the tiled GEMM, an online softmax (rescaling by exp(m_old - m_new)),
   * a second GEMM with V, and a backward that recomputes P from the saved log-sum-exp: four
   * chained f32 stages, so looser than a single GEMM. Measured: max 6e-7 absolute on O(1) values
   * (2.2% of this tolerance), GQA and fully masked rows included.
   */
  attention: { rtol: 1e-4, atol: 1e-5 },
  /**
   * RoPE: the angle pos * inv_freq is the same f32 product in transformers and here; cos/sin of
   * angles up to ~2000 rad are then evaluated in f32 by the kernel (argument reduction and
   * rounding of a large angle, a few ulp) and applied in f32. 1e-5 absolute on O(1) values.
   * Measured: max 2.4e-7 absolute, <1% used.
   */
  rope: { rtol: 1e-5, atol: 1e-5 },
  /**
   * f32 -> bf16 -> f32 must round to nearest even exactly as torch does: bit-exact. (The gradient
   * is passed through in f32, tunekit's documented cast rule; torch would round it to bf16.)
   */
  bf16_cast: { rtol: 0, atol: 0 },
  /**
   * conv2d / batch norm / pooling (test/vision/ops.test.ts): im2col + GEMM sums of up to 245 f32
   * products (7x7 kernels over 5 channels) and their transposed products backward; batch-norm
   * statistics in double, its backward mixing three sums. O(1-10) values: 1e-4 relative plus
   * 1e-5 absolute.
   */
  vision: { rtol: 1e-4, atol: 1e-5 },
} as const satisfies Record<string, Tolerance>;

export type OpKind = keyof typeof OP_TOL;

/**
 * Analytic gradients (tunekit, f32) against central finite differences of a float64 JS forward
 * (test/autograd/finite_diff.test.ts). With h = 1e-5 in float64 the difference quotient's
 * truncation error is ~h^2 |f'''| ~ 1e-10 and its rounding error ~1e-16 / 1e-5 ~ 1e-11, so the
 * reference is good to ~1e-9: what remains is tunekit's f32 error through the whole composed
 * backward (several GEMMs, norms, softmax). Measured: max 1.7e-6 absolute (attention's Wq
 * gradient), about 2% of this tolerance at most.
 */
export const FD64_TOL: Tolerance = { rtol: 1e-4, atol: 5e-6 };

/** Step for float64 central differences. */
export const FD64_STEP = 1e-5;

/**
 * Analytic gradients against central differences of tunekit's own f32 forward (no JS model
 * involved). Step h = 1e-2: the f32 rounding of a loss of size ~|L| contributes ~6e-8 |L| / h
 * ~ 1e-5 |L| of noise, truncation ~h^2 |f'''| ~ 1e-4 for O(1) third derivatives, so these checks
 * can only catch gross errors (wrong sign, missing term, wrong broadcast): 2e-3 absolute plus 2%.
 * Measured: up to 50% used, where a step of 1e-2 crosses a maximum() kink in the broadcast chain.
 */
export const FD32_TOL: Tolerance = { rtol: 2e-2, atol: 2e-3 };

/** Step for f32 central differences through tunekit's forward. */
export const FD32_STEP = 1e-2;

/** Dropout statistics: the kept fraction of n = 100k Bernoulli(1 - p) draws is within 5 sigma. */
export const DROPOUT_SIGMAS = 5;

/**
 * Whole-model logits (tunekit f32) against transformers' f32 logits on the tiny fixture models
 * (test/models/*): |got - want| <= 1e-5 + 1e-4 |want|, the measure test/models/helpers.ts' maxRelErr
 * applies (relative error with a 0.1 floor < 1e-4). Two f32 implementations summing in different
 * orders through embeddings, norms, 2 layers of GEMMs and attention and a head; logits reach ~9.
 * Measured: about 5e-6 absolute on the main fixtures; at most 6% of this tolerance on the
 * config-field variants (test/models/config_fields.test.ts prints the share used).
 */
export const MODEL_LOGITS_TOL: Tolerance = { rtol: 1e-4, atol: 1e-5 };

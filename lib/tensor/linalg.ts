/**
 * Dense linear algebra on small f64 matrices through the native kernels.
 */
import { run } from './kernel_table.js';
import { TunekitError } from '../errors.js';
import { Tensor } from './tensor.js';
import { tensor } from './creation.js';

/** Thin or top-k SVD of a row-major f64 matrix a [m, n] through the native one-sided Jacobi. */
export function svdF64(a: Float64Array, m: number, n: number, k = Math.min(m, n)): { u: Float64Array; s: Float64Array; vt: Float64Array } {
  if (a.length !== m * n) throw new TunekitError('ERR_SHAPE', `svdF64: expected ${m * n} values for [${m}, ${n}] but received ${a.length}`);
  if (k === 0) return { u: new Float64Array(0), s: new Float64Array(0), vt: new Float64Array(0) };
  const at = tensor(a, [m, n], 'f64');
  const u = Tensor.empty([m, k], 'f64'), s = Tensor.empty([k], 'f64'), vt = Tensor.empty([k, n], 'f64');
  try {
    run('svd', { a: at, m, n, u, s, vt, dtype: 'f64', k });
    return { u: u.toTypedArray() as Float64Array, s: s.toTypedArray() as Float64Array, vt: vt.toTypedArray() as Float64Array };
  } finally {
    at.dispose(); u.dispose(); s.dispose(); vt.dispose();
  }
}


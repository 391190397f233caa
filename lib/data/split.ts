/** Deterministic train/eval splitting. */

import { TunekitError, describe } from '../errors.js';
import { permutation } from './rng.js';

export interface SplitOptions {
  /** Fraction of records held out, in (0, 1). The eval size is ceil(n * fraction), as scikit-learn's train_test_split. */
  evalFraction?: number;
  /** Exact number of records held out (instead of evalFraction). */
  evalSize?: number;
  /** Shuffle seed (default 42). */
  seed?: number;
}

/**
 * Splits records with a seeded shuffle: the same records and seed always give the same split.
 * Both halves keep the records' original relative order.
 *
 * @example
 * const { train, eval: heldOut } = splitTrainEval(records, { evalFraction: 0.2, seed: 42 });
 */
export function splitTrainEval<T>(records: readonly T[], opts: SplitOptions): { train: T[]; eval: T[]; trainIndices: number[]; evalIndices: number[] } {
  const n = records.length;
  const seed = opts.seed ?? 42;
  let k: number;
  if (opts.evalSize !== undefined && opts.evalFraction !== undefined) {
    throw new TunekitError('ERR_VALUE', 'Expected either evalFraction or evalSize but received both');
  }
  if (opts.evalSize !== undefined) {
    if (!Number.isInteger(opts.evalSize) || opts.evalSize < 0 || opts.evalSize >= n) {
      throw new TunekitError('ERR_VALUE', `Expected an integer in [0, ${n - 1}] for evalSize (dataset has ${n} records) but received ${describe(opts.evalSize)}`);
    }
    k = opts.evalSize;
  } else if (opts.evalFraction !== undefined) {
    const f = opts.evalFraction;
    if (typeof f !== 'number' || !(f >= 0 && f < 1)) {
      throw new TunekitError('ERR_VALUE', `Expected a number in [0, 1) for evalFraction but received ${describe(f)}`);
    }
    k = Math.ceil(n * f);
    if (k >= n) throw new TunekitError('ERR_VALUE', `Expected evalFraction ${f} to leave training records, but the dataset has only ${n}`);
  } else {
    throw new TunekitError('ERR_VALUE', 'Expected evalFraction or evalSize but received neither');
  }
  const perm = permutation(n, seed);
  const evalIndices = perm.slice(0, k).sort((a, b) => a - b);
  const trainIndices = perm.slice(k).sort((a, b) => a - b);
  return {
    train: trainIndices.map((i) => records[i]!),
    eval: evalIndices.map((i) => records[i]!),
    trainIndices,
    evalIndices,
  };
}

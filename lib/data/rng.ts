/**
 * A small seeded PRNG for data shuffling: xoshiro128** (Blackman & Vigna), seeded through
 * splitmix32 so that nearby seeds give unrelated streams. 32-bit integer arithmetic only, so
 * the stream is identical on every platform and Node version.
 */

import { TunekitError, describe } from '../errors.js';

function splitmix32(state: { s: number }): number {
  state.s = (state.s + 0x9e3779b9) | 0;
  let z = state.s;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

/**
 * Deterministic random number generator.
 *
 * @example
 * const rng = new Rng(42);
 * rng.nextFloat();          // in [0, 1)
 * rng.int(10);              // integer in [0, 10)
 * rng.shuffle([1, 2, 3]);   // shuffled in place, same order for the same seed
 */
export class Rng {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;

  /** `seed` is any safe integer; the high and low 32 bits both take part. */
  constructor(seed: number) {
    if (!Number.isSafeInteger(seed)) {
      throw new TunekitError('ERR_VALUE', `Expected a safe integer for seed but received ${describe(seed)}`);
    }
    const hi = Math.floor(seed / 0x100000000) | 0;
    const st = { s: (seed | 0) ^ Math.imul(hi, 0x27d4eb2f) };
    this.s0 = splitmix32(st);
    this.s1 = splitmix32(st);
    this.s2 = splitmix32(st);
    this.s3 = splitmix32(st);
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1;
  }

  /** Next uint32. */
  nextU32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  /** Uniform float in [0, 1) with 32 bits of randomness. */
  nextFloat(): number {
    return this.nextU32() / 0x100000000;
  }

  /** Uniform integer in [0, n), unbiased (rejection sampling). n must be in [1, 2^32]. */
  int(n: number): number {
    if (!Number.isInteger(n) || n < 1 || n > 0x100000000) {
      throw new TunekitError('ERR_VALUE', `Expected an integer in [1, 2^32] for n but received ${describe(n)}`);
    }
    const limit = 0x100000000 - (0x100000000 % n);
    for (;;) {
      const x = this.nextU32();
      if (x < limit) return x % n;
    }
  }

  /** Fisher-Yates shuffle in place; returns the array. */
  shuffle<T>(arr: T[]): T[] {
    for (let i = arr.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const tmp = arr[i]!;
      arr[i] = arr[j]!;
      arr[j] = tmp;
    }
    return arr;
  }
}

/**
 * A permutation of 0..n-1 drawn from `seed`.
 *
 * @example
 * permutation(5, 1); // e.g. [3, 0, 4, 1, 2], always the same for seed 1
 */
export function permutation(n: number, seed: number): number[] {
  const idx = Array.from({ length: n }, (_, i) => i);
  return new Rng(seed).shuffle(idx);
}

/**
 * Derives a sub-seed (e.g. per epoch) from a base seed, so streams do not overlap.
 *
 * @example
 * deriveSeed(42, 3); // the seed used for epoch 3
 */
export function deriveSeed(seed: number, stream: number): number {
  const st = { s: (seed | 0) ^ Math.imul(stream | 0, 0x9e3779b1) ^ (Math.floor(seed / 0x100000000) | 0) };
  splitmix32(st);
  return splitmix32(st);
}

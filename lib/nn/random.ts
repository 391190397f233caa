/**
 * The process-wide seed stream used by dropout and initialisers. Deterministic: after
 * `manualSeed(s)` the same sequence of seeds follows; its state is saved in checkpoints.
 */
let state = 0x2545f4914f6cdd1dn;
const MASK = (1n << 64n) - 1n;

/** Resets the stream. @example manualSeed(42) */
export function manualSeed(seed: number): void {
  state = BigInt.asUintN(64, BigInt(seed) * 0x9e3779b97f4a7c15n + 0x632be59bd9b4e019n);
}

/** The next 52-bit seed (safe integer) for a native random call. */
export function nextSeed(): number {
  state = (state + 0x9e3779b97f4a7c15n) & MASK;
  let z = state;
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK;
  z = z ^ (z >> 31n);
  return Number(z >> 12n);
}

/** Serialisable state (for checkpoints). */
export function getSeedState(): string {
  return state.toString();
}

export function setSeedState(s: string): void {
  state = BigInt(s) & MASK;
}

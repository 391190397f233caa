/**
 * A config's training.dtype applied for the span of one job (a training run, an evaluation): the
 * caller's compute dtype comes back when the job ends, however it ends (an empty bf16 weight cache
 * when that is f32).
 */
import { getComputeDtype, setComputeDtype } from '../backend.js';

export async function inComputeDtype<T>(dtype: 'f32' | 'bf16', job: () => Promise<T>): Promise<T> {
  const caller = getComputeDtype();
  setComputeDtype(dtype);
  try {
    return await job();
  } finally {
    setComputeDtype(caller);
  }
}

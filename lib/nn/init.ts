/**
 * Deferred initialisation. Building a model to load a checkpoint into would fill every weight
 * with random values only to overwrite them (for GPT-2 124M that was most of the load time).
 * Inside `withDeferredInit`, layers register how to fill their random weights instead; the
 * loader then fills only the parameters the checkpoint did not provide (a new task head). The
 * seeds are drawn at construction, so a deferred parameter ends with exactly the values an eager
 * build would have given it.
 */
import { Tensor } from '../tensor/tensor.js';
import { rand } from '../tensor/creation.js';
import { run } from '../tensor/kernels.js';
import { TunekitError } from '../errors.js';

type Fill = () => void;
let pending: Map<Tensor, Fill> | null = null;

/**
 * A parameter drawn from U(low, high) with `seed`: filled now, or registered when a deferred
 * build is under way.
 * @example this.weight = this.param('weight', uniformParam([out, inF], nextSeed(), -b, b));
 */
export function uniformParam(shape: number[], seed: number, low: number, high: number): Tensor<'f32'> {
  if (!pending) return rand(shape, { seed, low, high });
  const t = Tensor.empty(shape, 'f32');
  pending.set(t, () => run('randomUniform', { dst: t, n: t.numel, seed, low, high }));
  return t;
}

/**
 * Runs `build` with random initialisation deferred. `initialise(params)` then fills those of the
 * given parameters that were deferred (call it with the ones the checkpoint did not provide);
 * every other deferred parameter must have been overwritten by then.
 * @example
 * const { value: model, initialise } = withDeferredInit(() => arch.build(config, task));
 * initialise(missingParams);
 */
export function withDeferredInit<T>(build: () => T): { value: T; initialise(params: Iterable<Tensor>): void } {
  if (pending) throw new TunekitError('ERR_STATE', 'withDeferredInit: a deferred build is already under way');
  const mine = new Map<Tensor, Fill>();
  pending = mine;
  let value: T;
  try {
    value = build();
  } finally {
    pending = null;
  }
  return {
    value,
    initialise(params: Iterable<Tensor>): void {
      for (const p of params) mine.get(p)?.();
      mine.clear();
    },
  };
}

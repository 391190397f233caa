/**
 * Tensor constructors: from JS data, filled, ranges and seeded random values.
 */
import { run } from './kernel_table.js';
import { TunekitError, describe } from '../errors.js';
import { DTYPE_SIZE, type DType, type DataTypeMap } from './dtype.js';
import { Tensor, numelOf, checkShape, type Shape } from './tensor.js';
import type { Device } from './device.js';

type NestedNumbers = number | NestedNumbers[];

function inferShape(data: NestedNumbers): number[] {
  const shape: number[] = [];
  let cur: NestedNumbers = data;
  while (Array.isArray(cur)) {
    shape.push(cur.length);
    cur = cur[0] as NestedNumbers;
  }
  return shape;
}

function flatten(data: NestedNumbers, out: number[]): void {
  if (Array.isArray(data)) for (const d of data) flatten(d, out);
  else out.push(data);
}

const FROM_NUMBERS: Partial<Record<DType, (v: number[]) => ArrayBufferView>> = {
  f32: (v) => new Float32Array(v),
  f64: (v) => new Float64Array(v),
  i32: (v) => new Int32Array(v),
  u8: (v) => new Uint8Array(v),
  i64: (v) => BigInt64Array.from(v, (x) => BigInt(Math.trunc(x))),
};

/**
 * A tensor from nested arrays or a typed array, on `device` (default the CPU: on a device the
 * values are written straight into its memory, one copy).
 * @example
 * const x = tensor([[1, 2], [3, 4]]);            // f32 [2, 2]
 * const ids = tensor(new Int32Array([5, 7]), [2]); // i32 from a typed array
 * const pos = tensor(positions, [B, T], 'i32', model.device); // beside the model's weights
 */
export function tensor<D extends DType = 'f32'>(data: NestedNumbers | ArrayBufferView, shape?: Shape, dtype?: D, device: Device = 'cpu'): Tensor<D> {
  if (ArrayBuffer.isView(data)) {
    const dt = (dtype ?? dtypeOfTypedArray(data)) as D;
    const n = data.byteLength / DTYPE_SIZE[dt];
    const sh = shape ? checkShape([...shape]) : [n];
    if (numelOf(sh) !== n) {
      throw new TunekitError('ERR_SHAPE', `tensor(): shape [${sh}] holds ${numelOf(sh)} elements but the data has ${n}`);
    }
    return Tensor.empty(sh, dt, false, device).copyFrom(data);
  }
  const dt = (dtype ?? 'f32') as D;
  const flat: number[] = [];
  flatten(data, flat);
  const sh = shape ? checkShape([...shape]) : inferShape(data);
  if (numelOf(sh) !== flat.length) {
    throw new TunekitError('ERR_SHAPE', `tensor(): shape [${sh}] holds ${numelOf(sh)} elements but the data has ${flat.length}`);
  }
  const conv = FROM_NUMBERS[dt];
  if (conv) return Tensor.empty(sh, dt, false, device).copyFrom(conv(flat));
  // bf16 / f16: go through f32 and cast natively (correct rounding)
  const f = Tensor.empty(sh, 'f32', false, device).copyFrom(new Float32Array(flat));
  const out = f.castRaw(dt);
  f.dispose();
  return out;
}

function dtypeOfTypedArray(a: ArrayBufferView): DType {
  if (a instanceof Float32Array) return 'f32';
  if (a instanceof Float64Array) return 'f64';
  if (a instanceof Int32Array) return 'i32';
  if (a instanceof BigInt64Array) return 'i64';
  if (a instanceof Uint8Array) return 'u8';
  throw new TunekitError('ERR_DTYPE', `tensor(): cannot infer a dtype from ${describe(a)}; pass one`);
}

/** A tensor of zeros (on `device`, default the CPU). @example zeros([2, 3]) */
export function zeros<D extends DType = 'f32'>(shape: Shape, dtype?: D, device: Device = 'cpu'): Tensor<D> {
  return Tensor.empty(checkShape([...shape]), (dtype ?? 'f32') as D, true, device);
}

/** A tensor filled with `value` (on `device`, default the CPU). @example full([2], 7, 'i32') */
export function full<D extends DType = 'f32'>(shape: Shape, value: number, dtype?: D, device: Device = 'cpu'): Tensor<D> {
  const t = Tensor.empty(checkShape([...shape]), (dtype ?? 'f32') as D, false, device);
  run('fill', { dst: t, dtype: t.dtype, n: t.numel, value });
  return t;
}

/** A tensor of ones (on `device`, default the CPU). @example ones([4]) */
export function ones<D extends DType = 'f32'>(shape: Shape, dtype?: D, device: Device = 'cpu'): Tensor<D> {
  return full(shape, 1, dtype, device);
}

/** [start, start+step, ...) below end (on `device`, default the CPU). @example arange(0, 5) // [0,1,2,3,4] */
export function arange<D extends DType = 'f32'>(start: number, end: number, step = 1, dtype?: D, device: Device = 'cpu'): Tensor<D> {
  if (step === 0) throw new TunekitError('ERR_VALUE', 'arange: step must not be 0');
  const n = Math.max(0, Math.ceil((end - start) / step));
  const t = Tensor.empty([n], (dtype ?? 'f32') as D, false, device);
  run('arange', { dst: t, dtype: t.dtype, n, start, step });
  return t;
}

function checkSeed(seed: number): number {
  if (!Number.isSafeInteger(seed) || seed < 0) throw new TunekitError('ERR_VALUE', `Expected a non-negative integer seed but received ${describe(seed)}`);
  return seed;
}

/** Seeded normal samples (f32): the same seed gives the same values on any thread count. */
export function randn(shape: Shape, opts: { seed: number; mean?: number; std?: number }): Tensor<'f32'> {
  const t = Tensor.empty(checkShape([...shape]), 'f32');
  run('randomNormal', { dst: t, n: t.numel, seed: checkSeed(opts.seed), mean: opts.mean ?? 0, std: opts.std ?? 1 });
  return t;
}

/** Seeded uniform samples in [low, high) (f32). */
export function rand(shape: Shape, opts: { seed: number; low?: number; high?: number }): Tensor<'f32'> {
  const t = Tensor.empty(checkShape([...shape]), 'f32');
  run('randomUniform', { dst: t, n: t.numel, seed: checkSeed(opts.seed), low: opts.low ?? 0, high: opts.high ?? 1 });
  return t;
}

export type { NestedNumbers, DataTypeMap };

/**
 * `t` on `device`: `t` itself when it is there, else its copy there with `t` disposed (for a
 * tensor just made from JS data on the host: batches of a run on a GPU).
 * @example const ids = onDevice(tensor(batch.inputIds, [b, t], 'i32'), 'cuda:0');
 */
export function onDevice<T extends Tensor>(t: T, device: Device): T {
  if (t.device === device) return t;
  const moved = t.to(device) as T;
  t.dispose();
  return moved;
}

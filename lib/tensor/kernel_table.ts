/**
 * The kernel table, keyed by (op, device).
 *
 * Every op the library runs is looked up here: `run(op, args)` finds the kernel of `op` for the
 * device its tensors live on and calls it with one options object. A backend is the object of
 * native kernels the addon exports for it (`native.cpu`: every op; `native.cuda`: the ops
 * native/cuda has, in builds with the CUDA backend), as ggml's backends each report the ops they
 * support. The tensors of one op on different devices are ERR_DEVICE naming both; an op the
 * device's backend lacks is ERR_DEVICE naming the op and the device. Nothing above lib/tensor
 * calls the binding (test/tensor/layering.test.ts); lib/tensor/kernels.ts has the typed wrappers.
 *
 * This file imports Tensor as a type only, so that tensor.ts itself can run its copies and fills
 * through the table.
 */
import { native, type OpName, type OpArgs, type OpResult, type BackendKernels, type TensorRef, type NativeKernel } from '../native.js';
import { TunekitError } from '../errors.js';
import { Storage } from './storage.js';
import { deviceKind, type Device, type DeviceKind } from './device.js';
import type { Tensor } from './tensor.js';

/** An op's arguments as the table takes them: Tensors where the kernel reads memory. */
export type KernelArgs<K extends OpName> = {
  [P in keyof OpArgs<K>]: OpArgs<K>[P] extends TensorRef ? Tensor : OpArgs<K>[P] extends TensorRef | null ? Tensor | null : OpArgs<K>[P];
};

/** The table: one backend object of kernels per device kind. */
const TABLE: Record<DeviceKind, Partial<BackendKernels>> = { cpu: native.cpu, cuda: native.cuda ?? {} };

/** Whether the backend of `device` has a kernel for `op`. */
export function supports(op: OpName, device: Device | DeviceKind): boolean {
  return typeof TABLE[device === 'cpu' || device === 'cuda' ? device : deviceKind(device)][op] === 'function';
}

/** The ops a backend has kernels for. */
export function supportedOps(kind: DeviceKind): OpName[] {
  return (Object.keys(TABLE[kind]) as OpName[]).filter((op) => typeof TABLE[kind][op] === 'function').sort();
}

/** The kernel of `op` for `device`; ERR_DEVICE when that backend has none. */
export function kernelFor<K extends OpName>(op: K, device: Device): NativeKernel<K> {
  const kind = deviceKind(device);
  const k = TABLE[kind][op];
  if (!k) {
    throw new TunekitError('ERR_DEVICE', kind === 'cuda' && !native.cuda
      ? `${op} on ${device}: this build of tunekit has no CUDA backend (build it where nvcc exists: npm run build:cuda)`
      : `${op} has no ${kind} kernel (tensors on ${device}); move its inputs to a device whose backend has it (.to('cpu'))`);
  }
  return k as NativeKernel<K>;
}

/**
 * Runs `op` on the device of its tensor arguments. Tensor fields become (handle, byte offset)
 * pairs; every tensor must be on one device (ERR_DEVICE naming the first two that differ).
 * @example run('unary', { op: 'relu', x, out, n: x.numel, param: 0 });
 */
export function run<K extends OpName>(op: K, args: KernelArgs<K>): OpResult<K> {
  const o: Record<string, unknown> = {};
  let device: Device | null = null;
  let first = '';
  for (const key in args) {
    const v = (args as Record<string, unknown>)[key];
    if (isTensor(v)) {
      const d = v.device;
      if (device === null) {
        device = d;
        first = key;
      } else if (d !== device) {
        throw new TunekitError('ERR_DEVICE', `${op}: ${first} is on ${device} but ${key} is on ${d} (the tensors of one op must be on one device: move one with .to())`);
      }
      o[key] = v.handle;
      o[`${key}Off`] = v.byteOffset;
    } else {
      o[key] = v;
    }
  }
  return kernelFor(op, device ?? 'cpu')(o as never);
}

function isTensor(v: unknown): v is Tensor {
  return typeof v === 'object' && v !== null && (v as { storage?: unknown }).storage instanceof Storage;
}

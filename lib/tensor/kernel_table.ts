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
import { native, nativeProfile, type OpName, type OpArgs, type OpResult, type BackendKernels, type TensorRef, type NativeKernel } from '../native.js';
import { TunekitError } from '../errors.js';
import { Storage } from './storage.js';
import { deviceKind, type Device, type DeviceKind } from './device.js';
import { LOOPBACK_DEVICE, loopbackKernels } from './loopback.js';
import type { Tensor } from './tensor.js';

/** An op's arguments as the table takes them: Tensors where the kernel reads memory. */
export type KernelArgs<K extends OpName> = {
  [P in keyof OpArgs<K>]: OpArgs<K>[P] extends TensorRef ? Tensor : OpArgs<K>[P] extends TensorRef | null ? Tensor | null : OpArgs<K>[P];
};

/**
 * The table: one backend object of kernels per device kind (`cuda`: the loopback device's
 * kernels under TUNEKIT_LOOPBACK_DEVICE=1, a testing aid: lib/tensor/loopback.ts).
 */
const TABLE: Record<DeviceKind, Partial<BackendKernels>> = { cpu: native.cpu, cuda: LOOPBACK_DEVICE ? loopbackKernels() : native.cuda ?? {} };
/** The CPU backend (every op): run()'s path for host tensors, without the table's device lookup. */
const CPU = native.cpu as unknown as Record<string, unknown>;

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
    throw new TunekitError('ERR_DEVICE', kind === 'cuda' && !native.cuda && !LOOPBACK_DEVICE
      ? `${op} on ${device}: this build of tunekit has no CUDA backend (build it where nvcc exists: npm run build:cuda)`
      : `${op} has no ${kind} kernel (tensors on ${device}); move its inputs to a device whose backend has it (.to('cpu'))`);
  }
  return k as NativeKernel<K>;
}

/**
 * An options layout of one op: its field names in the order a call lists them, which are
 * tensors (they travel as handle + byte offset), and the addon's id for the names
 * (native.kernelSchema): the kernel is then called as `k(id, v0, v1, ...)` and reads each field
 * by name from its position, instead of reading ~10 properties of an options object (~80 ns each,
 * most of a small op's time).
 */
interface Layout {
  keys: string[];
  /** bit i: field i is a tensor (a tensor and a null of one field are two layouts) */
  tensors: number;
  id: number;
}
/** Layouts seen per op (a few per op: optional fields present or not, null or a tensor). */
const LAYOUTS = new Map<string, Layout[]>();
/** The layout of each op's last call: what the next call is compared with as it is read. */
const LAST: Record<string, Layout | undefined> = Object.create(null) as Record<string, Layout | undefined>;
/** run()'s argument list, reused (see run). */
const VALUES: unknown[] = [];
/** TUNEKIT_PROFILE: the profiler reads the options object of each call (GEMM shapes), so calls keep it. */
const OBJECT_CALLS = nativeProfile() !== null;

function layoutFor(op: string, keys: string[], tensors: number): Layout {
  let list = LAYOUTS.get(op);
  if (!list) LAYOUTS.set(op, (list = []));
  for (const l of list) {
    if (l.tensors !== tensors || l.keys.length !== keys.length) continue;
    let same = true;
    for (let i = 0; i < keys.length && same; i++) same = l.keys[i] === keys[i];
    if (same) return l;
  }
  const names: string[] = [];
  keys.forEach((k, i) => (Math.floor(tensors / 2 ** i) % 2 === 1 ? names.push(k, `${k}Off`) : names.push(k)));
  const layout = { keys, tensors, id: native.kernelSchema(names) };
  list.push(layout);
  return layout;
}

/**
 * Runs `op` on the device of its tensor arguments. Tensor fields become (handle, byte offset)
 * pairs; every tensor must be on one device (ERR_DEVICE naming the first two that differ).
 * @example run('unary', { op: 'relu', x, out, n: x.numel, param: 0 });
 */
export function run<K extends OpName>(op: K, args: KernelArgs<K>): OpResult<K> {
  if (OBJECT_CALLS) return runWithObject(op, args);
  // values[0] is the layout id, then each field's value (a tensor's handle, then its byte offset);
  // one array reused by every call (kernels run synchronously and never call back into run())
  const values = VALUES;
  let n = 1;
  let layout = LAST[op];
  let same = layout !== undefined;
  let fields = 0;
  let tensors = 0;
  let device: Device | null = null;
  let first = '';
  for (const key in args) {
    const v = (args as Record<string, unknown>)[key];
    if (same && layout!.keys[fields] !== key) same = false;
    if (isTensor(v)) {
      const d = v.storage.device;
      if (device === null) {
        device = d;
        first = key;
      } else if (d !== device) {
        throw new TunekitError('ERR_DEVICE', `${op}: ${first} is on ${device} but ${key} is on ${d} (the tensors of one op must be on one device: move one with .to())`);
      }
      tensors += 2 ** fields;
      values[n++] = v.storage.handle;
      values[n++] = v.byteOffset;
    } else {
      values[n++] = v;
    }
    fields++;
  }
  values.length = n;
  if (!same || layout!.tensors !== tensors || layout!.keys.length !== fields) LAST[op] = layout = layoutFor(op, Object.keys(args), tensors);
  values[0] = layout!.id;
  const kernel = device === null || device === 'cpu' ? CPU[op] : kernelFor(op, device);
  const result = (kernel as unknown as (...v: unknown[]) => OpResult<K>)(...values);
  values.length = 0; // hold no handle past the call
  return result;
}

/** run() with one options object per call (what the profiler reads). */
function runWithObject<K extends OpName>(op: K, args: KernelArgs<K>): OpResult<K> {
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

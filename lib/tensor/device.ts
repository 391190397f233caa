/**
 * Devices: where a tensor's storage lives. `cpu` is host memory; `cuda:N` is the memory of CUDA
 * device N (builds with the CUDA backend, on a machine with a usable GPU).
 *
 * @example
 * parseDevice('cuda');   // 'cuda:0'
 * deviceKind('cuda:1');  // 'cuda'
 */
import { TunekitError, describe } from '../errors.js';

/** Where a tensor lives. */
export type Device = 'cpu' | `cuda:${number}`;
/** A backend of the kernel table: which kernels read a device's memory. */
export type DeviceKind = 'cpu' | 'cuda';

const CUDA_RE = /^cuda(?::(\d{1,3}))?$/;

/** A device from its name: 'cpu', 'cuda' (= 'cuda:0') or 'cuda:N'; ERR_DEVICE otherwise. */
export function parseDevice(name: unknown): Device {
  if (name === 'cpu') return 'cpu';
  if (typeof name === 'string') {
    const m = CUDA_RE.exec(name);
    if (m) return `cuda:${Number(m[1] ?? 0)}`;
  }
  throw new TunekitError('ERR_DEVICE', `Expected a device 'cpu', 'cuda' or 'cuda:N' but received ${describe(name)}`);
}

/** The backend that owns a device's memory. */
export function deviceKind(d: Device): DeviceKind {
  return d === 'cpu' ? 'cpu' : 'cuda';
}

/** The CUDA ordinal of a device, -1 for the CPU (what native allocation takes). */
export function deviceOrdinal(d: Device): number {
  return d === 'cpu' ? -1 : Number(d.slice(5));
}

/** The device of a native ordinal (-1 = cpu). */
export function deviceOfOrdinal(ordinal: number): Device {
  return ordinal < 0 ? 'cpu' : `cuda:${ordinal}`;
}

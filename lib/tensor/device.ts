/**
 * Devices: where a tensor's storage lives. `cpu` is host memory; `cuda:N` is the memory of CUDA
 * device N (builds with the CUDA backend, on a machine with a usable GPU).
 *
 * @example
 * parseDevice('cuda');   // 'cuda:0'
 * deviceKind('cuda:1');  // 'cuda'
 */
import { TunekitError, describe } from '../errors.js';
import { native, KERNEL_OPS, type OpName } from '../native.js';
import { LOOPBACK_DEVICE, LOOPBACK_NAME } from './loopback.js';

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

/** What a config or the Trainer may ask for: a device, or 'auto' (the GPU when one is usable, else the CPU). */
export type DeviceRequest = 'cpu' | 'cuda' | `cuda:${number}` | 'auto';

/** The device a request resolved to, and why (what `auto` found), for the run's log line and result. */
export interface ResolvedDevice {
  device: Device;
  /** e.g. "cuda:0 (NVIDIA H100, auto)" or "cpu (auto: no CUDA device: ...)" */
  note: string;
}

/**
 * The CUDA devices this process can use, from the addon: their count, and CUDA's reason when
 * there are none ("built without the CUDA backend ..." or the driver's reason).
 */
export function cudaStatus(): { devices: number; reason: string; name?: string; computeCapability?: string; totalBytes?: number } {
  // the loopback device (a testing aid, lib/tensor/loopback.ts) is one usable device with every op
  if (LOOPBACK_DEVICE) return { devices: 1, reason: '', name: LOOPBACK_NAME };
  const info = native.cudaInfo();
  // a build whose CUDA half is compiled but exports no kernel object cannot run anything there
  if (info.devices > 0 && !native.cuda) return { devices: 0, reason: 'this build of tunekit has no CUDA backend (no native.cuda kernels)' };
  return info;
}

/** Ops that stay on the CPU by design (the SVD of AdaLoRA's rank analysis): 'auto' does not wait for them. */
const CPU_ONLY_OPS: readonly OpName[] = ['svd'];

/** The ops of a training step the CUDA backend has no kernel for (all of them in a build without it). */
export function cudaMissingOps(): OpName[] {
  if (LOOPBACK_DEVICE) return [];
  const cuda = (native.cuda ?? {}) as Record<string, unknown>;
  return KERNEL_OPS.filter((op) => !CPU_ONLY_OPS.includes(op) && typeof cuda[op] !== 'function');
}

/**
 * Resolves a device request before any work: 'cpu'; 'cuda' / 'cuda:N' when that CUDA device is
 * usable, else ERR_DEVICE carrying CUDA's reason (never a silent CPU run; an op its backend
 * lacks is ERR_DEVICE when it runs); 'auto': cuda:0 when a GPU is usable and the CUDA backend
 * has every op of a training step, else the CPU (the note says which and why).
 * @example resolveDevice('auto'); // { device: 'cpu', note: 'cpu (auto: no CUDA device: ...)' } on a CPU-only machine
 */
export function resolveDevice(request: unknown, what = 'device'): ResolvedDevice {
  if (request === 'auto') {
    const cuda = cudaStatus();
    if (cuda.devices === 0) return { device: 'cpu', note: `cpu (auto: ${cuda.reason})` };
    const missing = cudaMissingOps();
    if (missing.length > 0) {
      return { device: 'cpu', note: `cpu (auto: cuda:0 (${cuda.name ?? 'CUDA device 0'}) is usable but this build's CUDA backend lacks ${missing.length} op(s) of a training step: ${missing.slice(0, 6).join(', ')}${missing.length > 6 ? ', ...' : ''}; device: cuda runs there anyway and stops at the first)` };
    }
    return { device: 'cuda:0', note: `cuda:0 (${cuda.name ?? 'CUDA device 0'}, auto)` };
  }
  let device: Device;
  try {
    device = parseDevice(request);
  } catch {
    throw new TunekitError('ERR_DEVICE', `Expected ${what} to be 'cpu', 'cuda', 'cuda:N' or 'auto' but received ${describe(request)}`);
  }
  if (device === 'cpu') return { device, note: 'cpu' };
  const cuda = cudaStatus();
  if (cuda.devices === 0) {
    throw new TunekitError('ERR_DEVICE', `${what} '${String(request)}' asks for a GPU but none is usable: ${cuda.reason}. Use device: cpu (or auto) to train on the CPU.`);
  }
  const ordinal = deviceOrdinal(device);
  if (ordinal >= cuda.devices) {
    throw new TunekitError('ERR_DEVICE', `${what} '${String(request)}': this machine has ${cuda.devices} usable CUDA device(s) (cuda:0${cuda.devices > 1 ? `..cuda:${cuda.devices - 1}` : ''})`);
  }
  return { device, note: ordinal === 0 && cuda.name ? `${device} (${cuda.name})` : device };
}

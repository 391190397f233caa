/**
 * The native backend as users see it: threads, native memory, and what the loaded addon can do.
 * The raw binding (lib/native.ts) stays internal; this is the public part of it.
 *
 * @example
 * import { backendInfo, setNumThreads, memoryStats } from 'tunekit';
 * setNumThreads(4);
 * console.log(backendInfo().gemmKernel, memoryStats().peakBytes);
 */
import { native, addonOrigin, type AddonOrigin, type TensorRef } from './native.js';
import { cudaStatus, cudaMissingOps, type Device } from './tensor/device.js';

/** Native memory held by tensors, in bytes (`peakBytes` since the last resetPeakMemory()). */
export interface MemoryStats {
  liveBytes: number;
  peakBytes: number;
}

/** One device a run may use (`training.device`), or the CUDA entry saying why there is none. */
export interface DeviceEntry {
  /** 'cpu', 'cuda:N', or 'cuda' for the entry of an unusable CUDA backend */
  device: Device | 'cuda';
  available: boolean;
  /** cpu: the kernel family chosen at run time ('avx512' | 'avx2' | 'portable') and the pool's threads */
  kernels?: string;
  threads?: number;
  /** cuda: the device's name, compute capability and memory (device 0; the addon reports one) */
  name?: string;
  computeCapability?: string;
  totalBytes?: number;
  /** cuda: ops of a training step the CUDA backend has no kernel for yet (they stop a cuda run; auto then picks the CPU) */
  missingOps?: number;
  /** cuda: why no device is usable (this build has no CUDA backend, or the driver's reason) */
  reason?: string;
}

/** What the loaded addon runs on. */
export interface BackendInfo {
  /** the devices `training.device` / Trainer({ device }) may name: the CPU, each usable CUDA device, or CUDA's reason for none */
  devices: DeviceEntry[];
  /** CPU features detected at run time (after TUNEKIT_ISA caps them) and the thread pool's size */
  cpu: { avx2: boolean; avx512: boolean; avx512bf16: boolean; threads: number; hardwareThreads: number };
  /** the GEMM kernel family dispatch chose: 'avx512' | 'avx2' | 'portable' */
  gemmKernel: string;
  /** whether the addon was built with CUDA, the devices it sees, and why none when none */
  cuda: { compiled: boolean; devices: number; reason: string; name?: string; computeCapability?: string; totalBytes?: number };
  /** the addon file: a prebuilt binary from the package or a local source build */
  addon: AddonOrigin;
  /**
   * the MPI library data-parallel training (`--nproc`) would load at run time: found (Open MPI or
   * MPICH, its file and version), or why not and how to install it
   */
  mpi: { available: boolean; implementation: string; library: string; version: string; reason: string };
}

/**
 * The backend in use. One prebuilt binary serves every x86-64 CPU: kernels are chosen at run
 * time (AVX-512 with bf16, AVX2+FMA, or portable C++); TUNEKIT_ISA=avx2|portable caps the choice.
 */
export function backendInfo(): BackendInfo {
  const b = native.backendInfo();
  const gemmKernel = native.gemmKernelName();
  return { devices: listDevices(gemmKernel, b.cpu.threads), cpu: { ...b.cpu }, gemmKernel, cuda: native.cudaInfo(), addon: addonOrigin(), mpi: native.collectivesProbe() };
}

function listDevices(gemmKernel: string, threads: number): DeviceEntry[] {
  const out: DeviceEntry[] = [{ device: 'cpu', available: true, kernels: gemmKernel, threads }];
  const cuda = cudaStatus();
  if (cuda.devices === 0) return [...out, { device: 'cuda', available: false, reason: cuda.reason }];
  const missingOps = cudaMissingOps().length;
  for (let i = 0; i < cuda.devices; i++) {
    out.push(i === 0
      ? { device: 'cuda:0', available: true, name: cuda.name, computeCapability: cuda.computeCapability, totalBytes: cuda.totalBytes, missingOps }
      : { device: `cuda:${i}`, available: true, missingOps });
  }
  return out;
}

/** Threads of the native pool (default: all hardware threads). Shared by every worker thread of the process. */
export function setNumThreads(n: number): void {
  native.setNumThreads(n); // checked natively: an integer in [1, 1024], else ERR_VALUE
}

export function getNumThreads(): number {
  return native.getNumThreads();
}

/**
 * The compute dtype of matrix products with weights: 'f32' (default) or 'bf16', PyTorch's autocast
 * for the GEMMs (forward, input and weight gradients on the bf16 GEMM, f32 accumulation; weights,
 * gradients and optimizer state stay f32; see docs in lib/tensor/kernels.ts). Process-wide, like
 * the thread count; a config's `training.dtype` sets it for the run.
 * @example
 * setComputeDtype('bf16'); // then train as usual
 */
export { setComputeDtype, getComputeDtype } from './tensor/kernels.js';

/** Native memory in use by tensors and its peak. */
export function memoryStats(): MemoryStats {
  return native.memoryStats();
}

/** Starts a new peak measurement for memoryStats().peakBytes. */
export function resetPeakMemory(): void {
  native.resetPeakMemory();
}

/**
 * The addon's process-level collective calls (MPI loaded at run time, one communication thread),
 * for lib/train/distributed/process_group.ts: with the functions above, the only way above
 * lib/tensor to reach the binding (test/tensor/layering.test.ts). Not exported from 'tunekit'.
 * elem 0 f32 | 1 f64; op 0 sum | 1 max | 2 min; operations return an id to wait for.
 * @internal
 */
export const collectives = {
  probe: () => native.collectivesProbe(),
  init: () => native.collectivesInit(),
  allreduce: (t: TensorRef, count: number, elem: number, op: number) => native.collectivesAllreduce(t.handle, t.byteOffset, count, elem, op),
  broadcast: (t: TensorRef, bytes: number, root: number) => native.collectivesBroadcast(t.handle, t.byteOffset, bytes, root),
  barrier: () => native.collectivesBarrier(),
  wait: (id: number, timeoutMs: number) => native.collectivesWait(id, timeoutMs),
  stats: () => native.collectivesStats(),
  abort: (code: number): never => native.collectivesAbort(code),
  finalize: () => native.collectivesFinalize(),
};

/**
 * The loopback device: a testing aid that lets a CPU-only machine run the device path.
 *
 * With TUNEKIT_LOOPBACK_DEVICE=1 in the environment (read once, when this module loads), the
 * `cuda` device kind is served by this backend instead of native/cuda: one device, `cuda:0`,
 * whose storages are host memory labelled `cuda:0`, and whose kernels are the CPU kernels.
 *
 * Why this shape (what of the real device path it exercises): everything above the native
 * kernels is the path a GPU run takes.
 *  - resolveDevice('cuda') / 'auto' find one usable device (cudaStatus), so Trainer({ device }),
 *    training.device and `tunekit info` go the GPU way;
 *  - Storage.allocate(…, 'cuda:0') makes a storage whose `device` is cuda:0, so the kernel table
 *    refuses any op mixing it with a CPU tensor (ERR_DEVICE naming both), exactly as for CUDA
 *    memory: a tensor built on the CPU and fed to a device op is caught;
 *  - host views of it are refused (Storage.arrayBuffer, Tensor.data(): ERR_DEVICE), so code that
 *    reads a tensor on the host without toTypedArray()/.to('cpu') is caught too;
 *  - run() sends its ops to the table's `cuda` backend (kernelFor), not the CPU shortcut;
 *  - copies between the CPU and the device are the ones a GPU's take: Tensor.to() is
 *    native.transfer, toTypedArray() native.read, copyFrom() native.write (each a host memcpy
 *    here, cudaMemcpy on a GPU).
 * Because the kernels are the CPU's, a run on the loopback device computes bit for bit what the
 * CPU run computes (test/train/loopback_device.test.ts compares the losses exactly). Every op is
 * served here, so the ops a run used are noted (takeLoopbackOps) for a test to compare with the
 * ops this build's native/cuda has (nativeCudaOps). What it cannot check is native/cuda's kernels
 * themselves: test/tensor/backend_ops.test.ts and scripts/gpu-check.sh do that on a GPU.
 */
import { native, isOptionalKernelOp, type BackendKernels } from '../native.js';

/** Whether the loopback device serves `cuda` in this process (TUNEKIT_LOOPBACK_DEVICE=1 at load). */
export const LOOPBACK_DEVICE = process.env.TUNEKIT_LOOPBACK_DEVICE === '1';

/** The loopback device's name, as `tunekit info` and the run's device note show it. */
export const LOOPBACK_NAME = 'loopback (CPU kernels on host memory labelled cuda:0; TUNEKIT_LOOPBACK_DEVICE=1, a testing aid)';

let calls = 0;
/** the ops run since the last takeLoopbackOps() */
const used = new Set<string>();

/**
 * The loopback backend's kernels: each CPU kernel, counting its calls and noting its op (so a
 * test can tell that the ops really went through the device's backend, and which ones a GPU run
 * would need). Made once, when the kernel table loads.
 */
export function loopbackKernels(): Partial<BackendKernels> {
  const cpu = native.cpu as unknown as Record<string, (...v: unknown[]) => unknown>;
  const out: Record<string, (...v: unknown[]) => unknown> = {};
  for (const op of Object.keys(cpu)) {
    const k = cpu[op];
    // the optional ops are the CPU's own faster forms: the device path runs what CUDA runs
    if (typeof k !== 'function' || isOptionalKernelOp(op)) continue;
    out[op] = (...v: unknown[]) => {
      calls++;
      used.add(op);
      return k(...v);
    };
  }
  return out as unknown as Partial<BackendKernels>;
}

/** Kernel calls the loopback backend has run in this process. */
export function loopbackKernelCalls(): number {
  return calls;
}

/** The ops the loopback backend ran since the last call (sorted), and forgets them. */
export function takeLoopbackOps(): string[] {
  const ops = [...used].sort();
  used.clear();
  return ops;
}

/**
 * The ops this build's real CUDA backend (native.cuda) has kernels for, or null in a build
 * without it: what the ops a loopback run used are checked against, so that a GPU run of the
 * same job is known to find every kernel.
 */
export function nativeCudaOps(): string[] | null {
  const cuda = native.cuda as Record<string, unknown> | undefined;
  return cuda ? Object.keys(cuda).filter((op) => typeof cuda[op] === 'function').sort() : null;
}

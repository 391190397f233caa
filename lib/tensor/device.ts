/**
 * Devices: where a tensor's storage lives. `cpu` is host memory; `cuda:N` is the memory of CUDA
 * device N (builds with the CUDA backend, on a machine with a usable GPU).
 *
 * @example
 * parseDevice('cuda');   // 'cuda:0'
 * deviceKind('cuda:1');  // 'cuda'
 */
import { TunekitError, describe } from '../errors.js';
import { native, KERNEL_OPS, isOptionalKernelOp, type OpName } from '../native.js';
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

/**
 * What runs on a device, for the resolver's op check: the ops it calls through the kernel table,
 * and whether an explicit `cuda` is refused at start when the backend lacks one of them.
 */
export interface DevicePath {
  /** for messages, e.g. 'a training step', 'serving' */
  what: string;
  /** the kernel ops it may run on the device */
  ops: readonly OpName[];
  /**
   * true: `cuda` whose backend lacks one of `ops` is ERR_DEVICE at start naming them (the list is
   * exactly this path's). false (training: its list is every architecture's, and a text model
   * needs none of the vision ops): `cuda` goes on and an op the backend lacks stops the run when it runs.
   */
  strict: boolean;
}

/** Every op of the table but the CPU-only and optional ones: what `tunekit info` counts, and a training step when the model's task is not known. */
export const TRAINING_PATH: DevicePath = { what: 'a training step', ops: KERNEL_OPS.filter((op) => !CPU_ONLY_OPS.includes(op) && !isOptionalKernelOp(op)), strict: false };

/** The ops only image models run (convolutions, pooling, batch norm, LoRA on a convolution). */
const VISION_OPS: readonly OpName[] = [
  'conv2dForward', 'conv2dBackward', 'maxPool2d', 'maxPool2dBackward', 'avgPool2d', 'avgPool2dBackward', 'adaptiveAvgPool2d',
  'adaptiveAvgPool2dBackward', 'batchNormTrain', 'batchNormEval', 'batchNormBackward', 'loraConv2dForward', 'loraConv2dBackward',
];

/** A training step of a text model (GPT-2, BERT, Llama; every method, RLHF): no vision op, nor serving's loraBatchedLinear. */
const TEXT_TRAINING_PATH: DevicePath = { what: 'a training step', ops: TRAINING_PATH.ops.filter((op) => !VISION_OPS.includes(op) && op !== 'loraBatchedLinear'), strict: false };
/** A training step of an image model (ViT, ResNet): the vision ops too. */
const IMAGE_TRAINING_PATH: DevicePath = { what: 'a training step', ops: TRAINING_PATH.ops.filter((op) => op !== 'loraBatchedLinear'), strict: false };

/**
 * The path of a training (or evaluation) run of `task`: image_cls needs the vision ops, a text
 * task none of them (neither needs serving's loraBatchedLinear; an unknown task: every op), so that `auto` takes a GPU whose backend has
 * every kernel of a text step even while it lacks the convolutions. Every resolver of one
 * run's training.device (runTraining, evaluateRun, the RLHF jobs, the Trainer) passes it, so
 * that `auto` resolves the same way in each.
 */
export function trainingPath(task: string | undefined): DevicePath {
  if (task === 'causal_lm' || task === 'seq_cls' || task === 'token_cls') return TEXT_TRAINING_PATH;
  return task === 'image_cls' ? IMAGE_TRAINING_PATH : TRAINING_PATH;
}

/**
 * The forward ops of a text model (GPT-2, BERT, Llama) with any adapter tunekit loads (LoRA,
 * AdaLoRA, QLoRA's NF4, prompt methods with P-tuning's LSTM), and sampling: what generation
 * runs. test/cli/device_cli.test.ts checks that generate() and the serving engine on the
 * loopback device use no op outside these lists.
 */
const TEXT_INFERENCE_OPS: readonly OpName[] = [
  'binary', 'unary', 'reduce', 'argmax', 'fill', 'cast', 'copyBytes', 'copyRows', 'copyStrided',
  'randomNormal', 'randomUniform', 'arange', 'gemm', 'softmax', 'layerNorm', 'rmsNorm', 'gatherRows',
  'rope', 'attention', 'loraLinearForward', 'nf4Quantize', 'nf4Dequantize', 'nf4DoubleQuantize',
  'nf4DoubleDequantize', 'nf4Gemm', 'lstmForward',
];

/** `tunekit generate` / generate(): a causal LM, optionally with one adapter. */
export const GENERATE_PATH: DevicePath = { what: 'generation', ops: TEXT_INFERENCE_OPS, strict: true };

/** `tunekit serve`: generation, with every adapter of a mixed batch applied per row (loraBatchedLinear). */
export const SERVE_PATH: DevicePath = { what: 'serving', ops: [...TEXT_INFERENCE_OPS, 'loraBatchedLinear'], strict: true };

/** What the resolver asks of CUDA: the usable devices (or CUDA's reason) and the ops its backend has kernels for. */
export interface CudaProbe {
  status: ReturnType<typeof cudaStatus>;
  /** the ops with a kernel in the `cuda` backend */
  ops: readonly string[];
}

/** This process's CUDA: the addon's devices and native.cuda's kernels (the loopback device has every op). */
export function cudaProbe(): CudaProbe {
  const status = cudaStatus();
  if (LOOPBACK_DEVICE) return { status, ops: KERNEL_OPS };
  const cuda = (native.cuda ?? {}) as Record<string, unknown>;
  return { status, ops: KERNEL_OPS.filter((op) => typeof cuda[op] === 'function') };
}

/** The ops of `path` (default: a training step) the CUDA backend has no kernel for (all of them in a build without it). */
export function cudaMissingOps(path: DevicePath = TRAINING_PATH, probe: CudaProbe = cudaProbe()): OpName[] {
  return path.ops.filter((op) => !probe.ops.includes(op));
}

function listOps(ops: readonly string[]): string {
  return `${ops.slice(0, 6).join(', ')}${ops.length > 6 ? `, ... (${ops.length} in all)` : ''}`;
}

/**
 * Resolves a device request before any work: 'cpu'; 'cuda' / 'cuda:N' when that CUDA device is
 * usable, else ERR_DEVICE carrying CUDA's reason (never a silent CPU run), and, for a strict
 * path (serving, generation), ERR_DEVICE naming the ops of the path the backend lacks; 'auto':
 * cuda:0 when a GPU is usable and the CUDA backend has every op of the path, else the CPU (the
 * note says which and why). `path` defaults to a training step; `probe` (what CUDA offers) is
 * this process's unless a test gives another.
 * @example resolveDevice('auto'); // { device: 'cpu', note: 'cpu (auto: no CUDA device: ...)' } on a CPU-only machine
 * @example resolveDevice('cuda', '--device', { path: SERVE_PATH }); // ERR_DEVICE: ... lacks loraBatchedLinear
 */
export function resolveDevice(request: unknown, what = 'device', opts: { path?: DevicePath; probe?: CudaProbe } = {}): ResolvedDevice {
  const path = opts.path ?? TRAINING_PATH;
  const probe = () => opts.probe ?? cudaProbe();
  if (request === 'auto') {
    const { status: cuda } = probe();
    if (cuda.devices === 0) return { device: 'cpu', note: `cpu (auto: ${cuda.reason})` };
    const missing = cudaMissingOps(path, probe());
    if (missing.length > 0) {
      return { device: 'cpu', note: `cpu (auto: cuda:0 (${cuda.name ?? 'CUDA device 0'}) is usable but this build's CUDA backend lacks ${missing.length} op(s) of ${path.what}: ${listOps(missing)}${path.strict ? '' : '; device: cuda runs there anyway and stops at the first'})` };
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
  const cudaNow = probe();
  const cuda = cudaNow.status;
  if (cuda.devices === 0) {
    throw new TunekitError('ERR_DEVICE', `${what} '${String(request)}' asks for a GPU but none is usable: ${cuda.reason}. Use ${what === 'training.device' ? 'device: cpu (or auto) to train' : 'cpu (or auto) to run'} on the CPU.`);
  }
  const ordinal = deviceOrdinal(device);
  if (ordinal >= cuda.devices) {
    throw new TunekitError('ERR_DEVICE', `${what} '${String(request)}': this machine has ${cuda.devices} usable CUDA device(s) (cuda:0${cuda.devices > 1 ? `..cuda:${cuda.devices - 1}` : ''})`);
  }
  if (path.strict) {
    const missing = cudaMissingOps(path, cudaNow);
    if (missing.length > 0) {
      throw new TunekitError('ERR_DEVICE', `${what} '${String(request)}': this build's CUDA backend has no kernel for ${missing.length} op(s) of ${path.what}: ${listOps(missing)}. Use cpu (or auto, which picks the CPU here).`);
    }
  }
  return { device, note: ordinal === 0 && cuda.name ? `${device} (${cuda.name})` : device };
}

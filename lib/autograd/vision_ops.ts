/**
 * Differentiable image ops, NCHW f32 (PyTorch's F.conv2d, F.batch_norm, F.max_pool2d,
 * F.avg_pool2d, F.adaptive_avg_pool2d), and their backward halves, which rules.ts lists in the
 * one gradient table. Kernels: native/cpu/{conv2d,batchnorm,pool}.cpp.
 * Shapes in comments: N images, C channels, H x W pixels, O output channels, K kernel size.
 */
import type { Conv2dDims, Pool2dDims } from '../native.js';
import { TunekitError, describe } from '../errors.js';
import { Tensor } from '../tensor/tensor.js';
import * as K from '../tensor/kernels.js';
import { record, needsGrad, type Node } from './tape.js';

type T = Tensor;
type F32 = Tensor<'f32'>;

/** A size given as one number (both axes) or [height, width]. */
export type Pair = number | readonly [number, number];

let referenceKernels = false;

/**
 * Runs fn with the plain reference kernels instead of the fast ones (tests compare the two).
 * @example const yRef = withReferenceVisionKernels(() => conv2d(x, w, null, { padding: 1 }));
 */
export function withReferenceVisionKernels<R>(fn: () => R): R {
  const prev = referenceKernels;
  referenceKernels = true;
  try {
    return fn();
  } finally {
    referenceKernels = prev;
  }
}

function pair(v: Pair | undefined, fallback: number, what: string, min: number): [number, number] {
  const p: readonly number[] = v === undefined ? [fallback, fallback] : typeof v === 'number' ? [v, v] : v;
  if (p.length !== 2 || !p.every((d) => Number.isInteger(d) && d >= min)) {
    throw new TunekitError('ERR_VALUE', `Expected ${what} to be an integer >= ${min} or a pair of them but received ${describe(v)}`);
  }
  return [p[0]!, p[1]!];
}

function expectImage(x: T, what: string): [number, number, number, number] {
  K.expectDtype(x, 'f32', what);
  if (x.ndim !== 4) throw new TunekitError('ERR_SHAPE', `Expected ${what} to be 4-D [N, C, H, W] but received [${x.shape}]`);
  return x.shape as unknown as [number, number, number, number];
}

/** Output size of a window sweep (floor mode), 0 when the window does not fit. */
export function windowOutput(size: number, kernel: number, stride: number, padding: number, dilation: number): number {
  const span = dilation * (kernel - 1) + 1;
  return size + 2 * padding < span ? 0 : Math.floor((size + 2 * padding - span) / stride) + 1;
}

// ---------------------------------------------------------------- conv2d

export interface Conv2dOptions {
  stride?: Pair;
  padding?: Pair;
  dilation?: Pair;
  groups?: number;
}

interface Conv2dSaved { xc: T; wc: T; dims: Conv2dDims }

/**
 * 2-D convolution: x [N, C, H, W], w [O, C / groups, KH, KW], bias [O] or null -> [N, O, Ho, Wo]
 * (zero padding). No gradient is computed for a frozen weight.
 * @example const y = conv2d(x, w, b, { stride: 2, padding: 1 });
 */
export function conv2d(x: T, w: T, bias: T | null, opts: Conv2dOptions = {}): F32 {
  const [N, C, H, W] = expectImage(x, 'conv2d input');
  K.expectDtype(w, 'f32', 'conv2d weight');
  const [sh, sw] = pair(opts.stride, 1, 'conv2d stride', 1);
  const [ph, pw] = pair(opts.padding, 0, 'conv2d padding', 0);
  const [dh, dw] = pair(opts.dilation, 1, 'conv2d dilation', 1);
  const groups = opts.groups ?? 1;
  if (!Number.isInteger(groups) || groups < 1) throw new TunekitError('ERR_VALUE', `Expected conv2d groups to be a positive integer but received ${describe(groups)}`);
  if (w.ndim !== 4) throw new TunekitError('ERR_SHAPE', `Expected conv2d weight to be 4-D [O, C / groups, KH, KW] but received [${w.shape}]`);
  const [O, Cg, KH, KW] = w.shape as [number, number, number, number];
  if (Cg * groups !== C || O % groups !== 0) {
    throw new TunekitError('ERR_SHAPE', `conv2d: input has ${C} channels but weight [${w.shape}] with groups ${groups} expects ${Cg * groups} (and out channels divisible by groups)`);
  }
  if (bias) {
    K.expectDtype(bias, 'f32', 'conv2d bias');
    if (bias.numel !== O) throw new TunekitError('ERR_SHAPE', `conv2d: bias has ${bias.numel} elements, expected ${O}`);
  }
  const Ho = windowOutput(H, KH, sh, ph, dh), Wo = windowOutput(W, KW, sw, pw, dw);
  if (Ho < 1 || Wo < 1) {
    throw new TunekitError('ERR_SHAPE', `conv2d: input ${H}x${W} (padding ${ph}, ${pw}) is smaller than the ${KH}x${KW} kernel (dilation ${dh}, ${dw})`);
  }
  const dims: Conv2dDims = { N, C, H, W, O, KH, KW, strideH: sh, strideW: sw, padH: ph, padW: pw, dilationH: dh, dilationW: dw, groups };
  const device = K.commonDevice('conv2d', [x, w, bias], ['its input', 'its weight', 'its bias']);
  const xc = x.contiguousRaw(), wc = w.contiguousRaw(), bc = bias ? bias.contiguousRaw() : null;
  const y = Tensor.empty([N, O, Ho, Wo], 'f32', false, device);
  K.run('conv2dForward', { x: xc, w: wc, bias: bc, y, ...dims, reference: referenceKernels });
  bc?.dispose();
  record('conv2d', [x, w, bias], y, { xc, wc, dims } satisfies Conv2dSaved);
  if (!y.gradFn) { xc.dispose(); wc.dispose(); }
  return y;
}

export function conv2dBackward(g: F32, node: Node): (F32 | null)[] {
  const [x, w, bias] = node.inputs as [T, T, T | null];
  const s = node.saved as Conv2dSaved;
  const gc = g.contiguousRaw();
  const dx = needsGrad(x) ? Tensor.empty(x.shape, 'f32', false, g.device) : null;
  const dw = needsGrad(w) ? Tensor.empty(w.shape, 'f32', false, g.device) : null;
  const db = bias && needsGrad(bias) ? Tensor.empty(bias.shape, 'f32', false, g.device) : null;
  K.run('conv2dBackward', { x: s.xc, w: s.wc, dy: gc, dx, dw, db, ...s.dims, reference: referenceKernels });
  gc.dispose(); s.xc.dispose(); s.wc.dispose();
  return [dx, dw, db];
}

// ---------------------------------------------------------------- batch norm

export interface BatchNormOptions {
  /** batch statistics (and running-stat updates) when true; the running statistics when false */
  training: boolean;
  momentum?: number;
  eps?: number;
}

interface BatchNormSaved { xc: T; mean: T; rstd: T; N: number; C: number; HW: number; train: boolean }

/**
 * Batch normalization per channel of x [N, C, ...] (PyTorch's F.batch_norm). In training the batch
 * statistics normalise and `runningMean` / `runningVar` (buffers, not recorded) move toward them
 * by `momentum` (unbiased variance); in eval the running statistics normalise.
 * @example const y = batchNorm2d(x, bn.weight, bn.bias, bn.runningMean, bn.runningVar, { training: true });
 */
export function batchNorm2d(x: T, w: T | null, b: T | null, runningMean: T | null, runningVar: T | null, opts: BatchNormOptions): F32 {
  K.expectDtype(x, 'f32', 'batchNorm input');
  if (x.ndim < 2) throw new TunekitError('ERR_SHAPE', `Expected batchNorm input [N, C, ...] but received [${x.shape}]`);
  const N = x.shape[0]!, C = x.shape[1]!, HW = x.numel / Math.max(1, N * C);
  for (const [t, what] of [[w, 'weight'], [b, 'bias'], [runningMean, 'running_mean'], [runningVar, 'running_var']] as const) {
    if (!t) continue;
    K.expectDtype(t, 'f32', `batchNorm ${what}`);
    if (t.numel !== C || !t.isContiguous) throw new TunekitError('ERR_SHAPE', `batchNorm: ${what} must be a contiguous [${C}] tensor but is [${t.shape}]`);
  }
  const eps = opts.eps ?? 1e-5, momentum = opts.momentum ?? 0.1;
  if (!(eps >= 0) || !Number.isFinite(eps)) throw new TunekitError('ERR_VALUE', `Expected batchNorm eps to be a finite number >= 0 but received ${describe(eps)}`);
  if (!(momentum >= 0 && momentum <= 1)) throw new TunekitError('ERR_VALUE', `Expected batchNorm momentum in [0, 1] but received ${describe(momentum)}`);
  if (opts.training && N * HW <= 1) {
    throw new TunekitError('ERR_VALUE', `batchNorm: training needs more than one value per channel (input [${x.shape}]): batch statistics of one value are undefined`);
  }
  if (!opts.training && (!runningMean || !runningVar)) throw new TunekitError('ERR_VALUE', 'batchNorm: eval mode needs running_mean and running_var');
  const device = K.commonDevice('batchNorm', [x, w, b, runningMean, runningVar], ['its input', 'its weight', 'its bias', 'running_mean', 'running_var']);
  const xc = x.contiguousRaw();
  const y = Tensor.empty(x.shape, 'f32', false, device);
  const mean = Tensor.empty([C], 'f32', false, device), rstd = Tensor.empty([C], 'f32', false, device);
  if (opts.training) {
    K.run('batchNormTrain', { x: xc, w, b, y, mean, rstd, runningMean, runningVar, N, C, HW, eps, momentum, reference: referenceKernels });
  } else {
    K.run('batchNormEval', { x: xc, w, b, runningMean: runningMean!, runningVar: runningVar!, y, mean, rstd, N, C, HW, eps });
  }
  record('batchNorm2d', [x, w, b], y, { xc, mean, rstd, N, C, HW, train: opts.training } satisfies BatchNormSaved);
  if (!y.gradFn) { xc.dispose(); mean.dispose(); rstd.dispose(); }
  return y;
}

export function batchNormBackward(g: F32, node: Node): (F32 | null)[] {
  const [x, w, b] = node.inputs as [T, T | null, T | null];
  const s = node.saved as BatchNormSaved;
  const gc = g.contiguousRaw();
  const dx = needsGrad(x) ? Tensor.empty(x.shape, 'f32', false, g.device) : null;
  const dw = w && needsGrad(w) ? Tensor.empty(w.shape, 'f32', false, g.device) : null;
  const db = b && needsGrad(b) ? Tensor.empty(b.shape, 'f32', false, g.device) : null;
  K.run('batchNormBackward', { x: s.xc, w, mean: s.mean, rstd: s.rstd, dy: gc, dx, dw, db, N: s.N, C: s.C, HW: s.HW, train: s.train, reference: referenceKernels });
  gc.dispose(); s.xc.dispose(); s.mean.dispose(); s.rstd.dispose();
  return [dx, dw, db];
}

// ---------------------------------------------------------------- pooling

export interface Pool2dOptions {
  kernelSize: Pair;
  /** default: the kernel size (PyTorch's default) */
  stride?: Pair;
  padding?: Pair;
  dilation?: Pair;
}

function poolDims(x: T, opts: Pool2dOptions, fn: string): { dims: Pool2dDims; Ho: number; Wo: number } {
  const [N, C, H, W] = expectImage(x, `${fn} input`);
  const [kh, kw] = pair(opts.kernelSize, 1, `${fn} kernelSize`, 1);
  const [sh, sw] = pair(opts.stride ?? [kh, kw], 1, `${fn} stride`, 1);
  const [ph, pw] = pair(opts.padding, 0, `${fn} padding`, 0);
  const [dh, dw] = pair(opts.dilation, 1, `${fn} dilation`, 1);
  if (2 * ph > kh || 2 * pw > kw) throw new TunekitError('ERR_VALUE', `${fn}: padding (${ph}, ${pw}) must be at most half the kernel ${kh}x${kw}`);
  const Ho = windowOutput(H, kh, sh, ph, dh), Wo = windowOutput(W, kw, sw, pw, dw);
  if (Ho < 1 || Wo < 1) throw new TunekitError('ERR_SHAPE', `${fn}: input ${H}x${W} (padding ${ph}, ${pw}) is smaller than the ${kh}x${kw} window`);
  return { dims: { N, C, H, W, KH: kh, KW: kw, strideH: sh, strideW: sw, padH: ph, padW: pw, dilationH: dh, dilationW: dw }, Ho, Wo };
}

/**
 * Max pooling (padding counts as -inf; the gradient goes to the first maximum of each window).
 * @example maxPool2d(x, { kernelSize: 3, stride: 2, padding: 1 }) // ResNet's stem
 */
export function maxPool2d(x: T, opts: Pool2dOptions): F32 {
  const { dims, Ho, Wo } = poolDims(x, opts, 'maxPool2d');
  const xc = x.contiguousRaw();
  const y = Tensor.empty([dims.N, dims.C, Ho, Wo], 'f32', false, x.device);
  const idx = Tensor.empty(y.shape, 'i32', false, x.device);
  K.run('maxPool2d', { x: xc, y, idx, ...dims, reference: referenceKernels });
  xc.dispose();
  record('maxPool2d', [x], y, { idx, dims });
  if (!y.gradFn) idx.dispose();
  return y;
}

export function maxPool2dBackward(g: F32, node: Node): (F32 | null)[] {
  const s = node.saved as { idx: T; dims: Pool2dDims };
  const gc = g.contiguousRaw();
  const dx = Tensor.empty(node.inputs[0]!.shape, 'f32', false, g.device);
  K.run('maxPool2dBackward', { dy: gc, idx: s.idx, dx, ...s.dims });
  gc.dispose(); s.idx.dispose();
  return [dx];
}

/**
 * Average pooling; `countIncludePad` (default true, as PyTorch) divides by the whole window.
 * @example avgPool2d(x, { kernelSize: 2 })
 */
export function avgPool2d(x: T, opts: Pool2dOptions & { countIncludePad?: boolean }): F32 {
  if (opts.dilation !== undefined && pair(opts.dilation, 1, 'avgPool2d dilation', 1).some((d) => d !== 1)) {
    throw new TunekitError('ERR_VALUE', 'avgPool2d: dilation is not defined for average pooling (PyTorch has none)');
  }
  const { dims, Ho, Wo } = poolDims(x, opts, 'avgPool2d');
  const cip = opts.countIncludePad ?? true;
  const xc = x.contiguousRaw();
  const y = Tensor.empty([dims.N, dims.C, Ho, Wo], 'f32', false, x.device);
  K.run('avgPool2d', { x: xc, y, ...dims, countIncludePad: cip, reference: referenceKernels });
  xc.dispose();
  record('avgPool2d', [x], y, { dims, cip });
  return y;
}

export function avgPool2dBackward(g: F32, node: Node): (F32 | null)[] {
  const s = node.saved as { dims: Pool2dDims; cip: boolean };
  const gc = g.contiguousRaw();
  const dx = Tensor.empty(node.inputs[0]!.shape, 'f32', false, g.device);
  K.run('avgPool2dBackward', { dy: gc, dx, ...s.dims, countIncludePad: s.cip });
  gc.dispose();
  return [dx];
}

/**
 * Adaptive average pooling to an output of `size` (PyTorch's bins: floor / ceil of i H / Ho).
 * @example adaptiveAvgPool2d(x, [1, 1]) // global average pool, [N, C, 1, 1]
 */
export function adaptiveAvgPool2d(x: T, size: Pair): F32 {
  const [N, C, H, W] = expectImage(x, 'adaptiveAvgPool2d input');
  const [Ho, Wo] = pair(size, 1, 'adaptiveAvgPool2d output size', 1);
  if (H < 1 || W < 1) throw new TunekitError('ERR_SHAPE', `adaptiveAvgPool2d: expected a non-empty image but received [${x.shape}]`);
  const xc = x.contiguousRaw();
  const y = Tensor.empty([N, C, Ho, Wo], 'f32', false, x.device);
  K.run('adaptiveAvgPool2d', { x: xc, y, NC: N * C, H, W, Ho, Wo, reference: referenceKernels });
  xc.dispose();
  record('adaptiveAvgPool2d', [x], y, { NC: N * C, H, W, Ho, Wo });
  return y;
}

export function adaptiveAvgPool2dBackward(g: F32, node: Node): (F32 | null)[] {
  const s = node.saved as { NC: number; H: number; W: number; Ho: number; Wo: number };
  const gc = g.contiguousRaw();
  const dx = Tensor.empty(node.inputs[0]!.shape, 'f32', false, g.device);
  K.run('adaptiveAvgPool2dBackward', { dy: gc, dx, NC: s.NC, H: s.H, W: s.W, Ho: s.Ho, Wo: s.Wo });
  gc.dispose();
  return [dx];
}

// ---------------------------------------------------------------- fused LoRA convolution

interface LoraConvSaved { xc: T; wc: T; ac: T; bc: T; low: T; dims: Conv2dDims; r: number; scale: number }

/**
 * PEFT's lora.Conv2d in one op, for a frozen base: y = conv(x, W) + bias + scale * B conv(x, A),
 * with A [r, C, KH, KW] (the layer's kernel, stride, padding) and B [O, r, 1, 1]. One im2col
 * feeds W and A; the backward gives x, A and B their gradients (never W or the bias) with one
 * im2col and one col2im. Same values as conv2d(x, W) + scale * conv2d(conv2d(x, A), B).
 * @example const y = loraConv2d(x, conv.weight, conv.bias, A, B, 2, { stride: 1, padding: 1 });
 */
export function loraConv2d(x: T, w: T, bias: T | null, a: T, b: T, scale: number, opts: Conv2dOptions = {}): F32 {
  const [N, C, H, W] = expectImage(x, 'loraConv2d input');
  for (const [t, what] of [[w, 'weight'], [a, 'lora_A'], [b, 'lora_B']] as const) K.expectDtype(t, 'f32', `loraConv2d ${what}`);
  const [O, Cw, KH, KW] = w.shape as [number, number, number, number];
  const r = a.shape[0]!;
  if (w.ndim !== 4 || Cw !== C || a.ndim !== 4 || a.shape[1] !== C || a.shape[2] !== KH || a.shape[3] !== KW || b.numel !== O * r || b.shape[0] !== O) {
    throw new TunekitError('ERR_SHAPE', `loraConv2d: x [${x.shape}], W [${w.shape}], A [${a.shape}], B [${b.shape}] do not fit (A [r, C, KH, KW], B [O, r, 1, 1])`);
  }
  if (!Number.isFinite(scale)) throw new TunekitError('ERR_VALUE', `loraConv2d: expected a finite scale but received ${describe(scale)}`);
  if ((opts.groups ?? 1) !== 1) throw new TunekitError('ERR_VALUE', 'loraConv2d: grouped convolutions are not supported');
  if (needsGrad(w) || (bias && needsGrad(bias))) throw new TunekitError('ERR_VALUE', 'loraConv2d: the base weight and bias must be frozen (use conv2d for a trained base)');
  const [sh, sw] = pair(opts.stride, 1, 'loraConv2d stride', 1);
  const [ph, pw] = pair(opts.padding, 0, 'loraConv2d padding', 0);
  const [dh, dw] = pair(opts.dilation, 1, 'loraConv2d dilation', 1);
  const Ho = windowOutput(H, KH, sh, ph, dh), Wo = windowOutput(W, KW, sw, pw, dw);
  if (Ho < 1 || Wo < 1) throw new TunekitError('ERR_SHAPE', `loraConv2d: input ${H}x${W} (padding ${ph}, ${pw}) is smaller than the ${KH}x${KW} kernel`);
  const dims: Conv2dDims = { N, C, H, W, O, KH, KW, strideH: sh, strideW: sw, padH: ph, padW: pw, dilationH: dh, dilationW: dw, groups: 1 };
  const device = K.commonDevice('loraConv2d', [x, w, bias, a, b], ['its input', 'its weight', 'its bias', 'lora_A', 'lora_B']);
  const xc = x.contiguousRaw(), wc = w.contiguousRaw(), ac = a.contiguousRaw(), bc = b.contiguousRaw(), biasc = bias ? bias.contiguousRaw() : null;
  const y = Tensor.empty([N, O, Ho, Wo], 'f32', false, device), low = Tensor.empty([N, r, Ho, Wo], 'f32', false, device);
  K.run('loraConv2dForward', { x: xc, w: wc, bias: biasc, a: ac, b: bc, y, low, ...dims, r, scale });
  biasc?.dispose();
  record('loraConv2d', [x, w, bias, a, b], y, { xc, wc, ac, bc, low, dims, r, scale } satisfies LoraConvSaved);
  if (!y.gradFn) { xc.dispose(); wc.dispose(); ac.dispose(); bc.dispose(); low.dispose(); }
  return y;
}

export function loraConv2dBackward(g: F32, node: Node): (F32 | null)[] {
  const [x, , , a, b] = node.inputs as [T, T, T | null, T, T];
  const s = node.saved as LoraConvSaved;
  const gc = g.contiguousRaw();
  const dx = needsGrad(x) ? Tensor.empty(x.shape, 'f32', false, g.device) : null;
  const da = needsGrad(a) ? Tensor.empty(a.shape, 'f32', false, g.device) : null;
  const db = needsGrad(b) ? Tensor.empty(b.shape, 'f32', false, g.device) : null;
  K.run('loraConv2dBackward', { x: s.xc, w: s.wc, a: s.ac, b: s.bc, low: s.low, dy: gc, dx, da, db, ...s.dims, r: s.r, scale: s.scale });
  gc.dispose(); s.xc.dispose(); s.wc.dispose(); s.ac.dispose(); s.bc.dispose(); s.low.dispose();
  return [dx, null, null, da, db];
}

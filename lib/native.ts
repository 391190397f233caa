/**
 * The only file that loads the native addon. It types every native export (one `Binding`
 * interface) and explains, path by path, why the addon could not be loaded.
 *
 * Kernels: `native.cpu.<op>(options)` and, in builds with the CUDA backend, `native.cuda.<op>(options)`.
 * Each takes ONE options object (as sharp's C++ reads an already-checked options struct), typed
 * per op by `KernelOps` below and read by name in C++ (native/napi/napi_util.h: Opts). A tensor
 * field `x` travels as `x` (the storage handle) and `xOff` (the byte offset of element 0);
 * lib/tensor/kernels.ts, the (op, device) table, builds that from Tensors and checks devices.
 * Data is contiguous row-major; shapes are element counts. All ops are synchronous and run on
 * the native thread pool (or the device's stream). Gradient outputs are written (overwritten),
 * never accumulated, unless the name or an `accumulate` option says so.
 */
import { createRequire } from 'node:module';
import { dirname, join, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TunekitError, type TunekitErrorCode } from './errors.js';

/** Opaque handle to refcounted native storage. */
export type Handle = { readonly __brand: 'tunekit.Handle' };

// ---- op codes: the closed lists of native/core/op_codes.h, checked against the addon at load
// (checkOpCodes below); they cross the boundary as names, never as numbers.

/** Binary element-wise ops (native/core/op_codes.h TK_BINARY_OPS). */
export const BINARY_OPS = ['add', 'sub', 'mul', 'div', 'maximum', 'minimum'] as const;
/** Unary element-wise ops; `param` is the scalar of the *_scalar ops (TK_UNARY_OPS). */
export const UNARY_OPS = [
  'neg', 'exp', 'log', 'sqrt', 'rsqrt', 'abs', 'tanh', 'sigmoid', 'relu',
  'gelu_tanh', 'gelu_erf', 'silu', 'square', 'mul_scalar', 'add_scalar', 'pow_scalar',
] as const;
/** Reductions over one axis (TK_REDUCE_OPS). */
export const REDUCE_OPS = ['sum', 'mean', 'max', 'min'] as const;
/** bitsandbytes' 4-bit formats (TK_QUANT4_TYPES). */
export const QUANT4_TYPES = ['nf4', 'fp4'] as const;
/** Element types by name, in native/core/dtype.h's order. */
export const DTYPE_NAMES = ['f32', 'bf16', 'f16', 'i32', 'i64', 'u8', 'f64'] as const;
// The count check, TypeScript's half (native/core/op_codes.h static_asserts the same counts).
const OP_CODE_COUNTS: { binary: 6; unary: 16; reduce: 4; quant4: 2; dtypes: 7 } = {
  binary: BINARY_OPS.length, unary: UNARY_OPS.length, reduce: REDUCE_OPS.length, quant4: QUANT4_TYPES.length, dtypes: DTYPE_NAMES.length,
};
export type BinaryOp = (typeof BINARY_OPS)[number];
export type UnaryOp = (typeof UNARY_OPS)[number];
export type ReduceOp = (typeof REDUCE_OPS)[number];
export type Quant4Type = (typeof QUANT4_TYPES)[number];
export type DTypeName = (typeof DTYPE_NAMES)[number];

/**
 * A tensor argument of a kernel: the storage and the byte offset of element 0 (a Tensor is one).
 * In the options object a native function receives, field `x` of this type becomes `x` (the
 * handle) and `xOff` (the offset): see NativeOptions.
 */
export interface TensorRef {
  readonly handle: Handle;
  readonly byteOffset: number;
}

/** The options object a native kernel receives for arguments A (tensor fields split into handle and offset). */
export type NativeOptions<A> = {
  [K in keyof A]: A[K] extends TensorRef ? Handle : A[K] extends TensorRef | null ? Handle | null : A[K];
} & { [K in keyof A as A[K] extends TensorRef | null ? `${K & string}Off` : never]?: number };

/**
 * Every kernel op: its arguments (tensor fields as TensorRef) and its result. One entry per op of
 * the closed list KERNEL_OPS; every backend implements a subset (the CPU all of them) as
 * `native.<backend>.<op>(NativeOptions<args>)`.
 */
export interface KernelOps {
  // ---- element-wise (native/napi/ops_elementwise.cpp), f32
  /** out[outShape] = a op b; strides are element strides of a and b over outShape (0 = broadcast). */
  binary: { args: { op: BinaryOp; a: TensorRef; b: TensorRef; out: TensorRef; outShape: number[]; aStrides: number[]; bStrides: number[] }; result: void };
  /** out = f(x) over n elements (out may be x). */
  unary: { args: { op: UnaryOp; x: TensorRef; out: TensorRef; n: number; param: number }; result: void };
  /** dx = dy * f'(x) for unary op `op` (y = f(x) also given, whichever the rule uses). */
  unaryBackward: { args: { op: UnaryOp; x: TensorRef; y: TensorRef; dy: TensorRef; dx: TensorRef; n: number; param: number }; result: void };
  /** Reduces the middle axis of x viewed as [outer, n, inner] -> out [outer, inner]. */
  reduce: { args: { op: ReduceOp; x: TensorRef; out: TensorRef; outer: number; n: number; inner: number }; result: void };
  /** out i32 [rows]: index of the max of each row of x [rows, cols]. */
  argmax: { args: { x: TensorRef; out: TensorRef; rows: number; cols: number }; result: void };
  /** sum of squares of x[0..n) in double precision (global grad norm). */
  sumSquares: { args: { x: TensorRef; n: number }; result: number };
  /** number of NaN or infinite values in x[0..n). */
  countNonFinite: { args: { x: TensorRef; n: number }; result: number };

  // ---- data movement within one device (native/napi/storage_ops.cpp)
  /** every element of dst [n] (dtype) = value */
  fill: { args: { dst: TensorRef; dtype: DTypeName; n: number; value: number }; result: void };
  /** dst [n] (dstDtype) = src [n] (srcDtype) converted (round to nearest even) */
  cast: { args: { src: TensorRef; srcDtype: DTypeName; dst: TensorRef; dstDtype: DTypeName; n: number }; result: void };
  /** `bytes` bytes from src to dst (they may overlap) */
  copyBytes: { args: { src: TensorRef; dst: TensorRef; bytes: number }; result: void };
  /** dst[row * dstStride ...] = src[row * srcStride ...]: `rows` rows of `rowBytes` bytes (strides in bytes) */
  copyRows: { args: { src: TensorRef; dst: TensorRef; rows: number; rowBytes: number; srcStride: number; dstStride: number }; result: void };
  /** dst (contiguous) = the view of src with element `strides` over `shape` (elements of elemSize bytes) */
  copyStrided: { args: { src: TensorRef; dst: TensorRef; elemSize: number; shape: number[]; strides: number[] }; result: void };
  /** dst f32 [n] ~ N(mean, std^2), counter-based: element i depends only on (seed, i) */
  randomNormal: { args: { dst: TensorRef; n: number; seed: number; mean: number; std: number }; result: void };
  /** dst f32 [n] ~ U[low, high), counter-based */
  randomUniform: { args: { dst: TensorRef; n: number; seed: number; low: number; high: number }; result: void };
  /** dst [n] (dtype) = start + i * step */
  arange: { args: { dst: TensorRef; dtype: DTypeName; n: number; start: number; step: number }; result: void };

  // ---- softmax / norms / embedding / dropout / losses / optimizer / RoPE (native/napi/ops_nn.cpp), f32
  /** y = softmax (log-softmax when log) over each row of x [rows, cols] */
  softmax: { args: { x: TensorRef; y: TensorRef; rows: number; cols: number; log: boolean }; result: void };
  softmaxBackward: { args: { y: TensorRef; dy: TensorRef; dx: TensorRef; rows: number; cols: number; log: boolean }; result: void };
  /** y = (x - mean) * rstd * w + b over the last axis; mean, rstd f32 [rows] saved for backward. */
  layerNorm: { args: { x: TensorRef; w: TensorRef; b: TensorRef; y: TensorRef; mean: TensorRef; rstd: TensorRef; rows: number; cols: number; eps: number }; result: void };
  /** dx always; dw, db only when needWeightGrad (they are not read otherwise). */
  layerNormBackward: {
    args: { x: TensorRef; w: TensorRef; mean: TensorRef; rstd: TensorRef; dy: TensorRef; dx: TensorRef; dw: TensorRef; db: TensorRef; rows: number; cols: number; needWeightGrad: boolean };
    result: void;
  };
  /** y = x * rstd * w, rstd = 1/sqrt(mean(x^2) + eps) (Llama RMSNorm). */
  rmsNorm: { args: { x: TensorRef; w: TensorRef; y: TensorRef; rstd: TensorRef; rows: number; cols: number; eps: number }; result: void };
  rmsNormBackward: { args: { x: TensorRef; w: TensorRef; rstd: TensorRef; dy: TensorRef; dx: TensorRef; dw: TensorRef; rows: number; cols: number; needWeightGrad: boolean }; result: void };
  /** out[i, :] = table[idx[i], :]; idx i32 [n], table [numRows, rowSize]; an id out of range is ERR_INDEX (nothing written). */
  gatherRows: { args: { table: TensorRef; idx: TensorRef; out: TensorRef; n: number; rowSize: number; numRows: number }; result: void };
  /** dst[idx[i], :] += src[i, :] (dst is accumulated into: zero it first for a gradient). */
  scatterAddRows: { args: { src: TensorRef; idx: TensorRef; dst: TensorRef; n: number; rowSize: number; numRows: number }; result: void };
  /** y = x * mask / (1 - p), mask u8 [n] from the counter hash of (seed, i): thread-count and device independent. */
  dropout: { args: { x: TensorRef; y: TensorRef; mask: TensorRef; n: number; p: number; seed: number }; result: void };
  /** dx (+)= dy * mask / (1 - p); accumulate adds into dx (one pass where a sum follows) */
  dropoutBackward: { args: { dy: TensorRef; mask: TensorRef; dx: TensorRef; n: number; p: number; accumulate?: boolean }; result: void };
  /**
   * Cross-entropy fused with log-softmax. logits [rows, classes], labels i32 [rows] (ignoreIndex
   * rows get loss 0), loss f32 [rows], lse f32 [rows] saved. Returns the number of counted rows.
   */
  crossEntropy: { args: { logits: TensorRef; labels: TensorRef; loss: TensorRef; lse: TensorRef; rows: number; classes: number; ignoreIndex: number }; result: number };
  /** dlogits[r, :] = dloss[r] * (softmax(logits[r]) - onehot(label[r])); zero for ignored rows. */
  crossEntropyBackward: {
    args: { logits: TensorRef; labels: TensorRef; lse: TensorRef; dloss: TensorRef; dlogits: TensorRef; rows: number; classes: number; ignoreIndex: number };
    result: void;
  };
  /** In-place AdamW on f32 [n]: decoupled weight decay, bias correction with `step` (1-based). */
  adamw: {
    args: { param: TensorRef; grad: TensorRef; m: TensorRef; v: TensorRef; n: number; lr: number; beta1: number; beta2: number; eps: number; weightDecay: number; step: number };
    result: void;
  };
  /**
   * Rotary embedding on x [B, H, T, D] (rotate-half layout as in transformers' Llama): pairs
   * (i, i + rotDim/2) for i < rotDim/2 rotated by angle positions[b, t] * invFreq[i]; positions
   * i32 [B, T]. inverse rotates by -angle (the backward).
   */
  rope: { args: { x: TensorRef; out: TensorRef; positions: TensorRef; invFreq: TensorRef; B: number; H: number; T: number; D: number; rotDim: number; inverse: boolean }; result: void };

  // ---- attention (native/napi/ops_attention.cpp), f32
  /**
   * q [B, Hq, Tq, D], k/v [B, Hkv, Tk, D] (Hq % Hkv == 0, grouped-query), out [B, Hq, Tq, D],
   * lse f32 [B, Hq, Tq] saved for backward. keyMask i32 [B, Tk] (1 = attend) or null.
   * causal: query i sits at absolute position (Tk - Tq + i) and sees keys j <= that (covers KV
   * cache and prefix keys placed first).
   */
  attention: {
    args: { q: TensorRef; k: TensorRef; v: TensorRef; out: TensorRef; lse: TensorRef; keyMask: TensorRef | null; B: number; Hq: number; Hkv: number; Tq: number; Tk: number; D: number; scale: number; causal: boolean };
    result: void;
  };
  attentionBackward: {
    args: {
      q: TensorRef; k: TensorRef; v: TensorRef; out: TensorRef; lse: TensorRef; dout: TensorRef; dq: TensorRef; dk: TensorRef; dv: TensorRef; keyMask: TensorRef | null;
      B: number; Hq: number; Hkv: number; Tq: number; Tk: number; D: number; scale: number; causal: boolean;
    };
    result: void;
  };

  /**
   * Token-major self-attention over variable-length sequences (no padding): qkv [N, 3C] (q | k | v,
   * head h at columns h*D of each, C = H*D), i32 offsets [S + 1] (sequence i = rows offsets[i] ..
   * offsets[i + 1], from 0 to N, never decreasing), keyMask i32 [N] or null, out [N, C], lse [H, N].
   * Causal: a row sees its sequence's rows up to itself. The backward writes dqkv [N, 3C].
   * lastQueryOnly: only each sequence's last row queries; out/dout [S, C], lse [H, S], dqkv's q part
   * zero elsewhere (no sequence may be empty).
   */
  attentionRows: {
    args: { qkv: TensorRef; offsets: TensorRef; keyMask: TensorRef | null; out: TensorRef; lse: TensorRef; N: number; S: number; H: number; D: number; scale: number; causal: boolean; lastQueryOnly?: boolean };
    result: void;
  };
  attentionRowsBackward: {
    args: { qkv: TensorRef; offsets: TensorRef; keyMask: TensorRef | null; out: TensorRef; lse: TensorRef; dout: TensorRef; dqkv: TensorRef; N: number; S: number; H: number; D: number; scale: number; causal: boolean; lastQueryOnly?: boolean };
    result: void;
  };

  // ---- fused linear + LoRA (native/napi/ops_lora.cpp), f32
  /**
   * y [M, out] = x [M, in] W^T + bias + s * (xd A^T) B^T, with W [out, in] (or [in, out] when
   * wInOut, GPT-2 Conv1D). A [r, in], B [out, r]. xd = x, or with p > 0 PEFT's lora_dropout of x
   * fused into the kernel (never stored): element e kept iff its hash of (seed, e) clears p, the
   * kept flags written to mask (u8 [M, in]). xa [M, r] = xd A^T is written (saved for backward).
   * bias may be null; mask may be null when p == 0. wDtype 'bf16' (CPU only): w is the frozen
   * weight's bf16 copy, x rounded to bf16 in the base product, the adapter path f32 (bf16 compute).
   */
  loraLinearForward: {
    args: { x: TensorRef; w: TensorRef; bias: TensorRef | null; a: TensorRef; b: TensorRef; y: TensorRef; xa: TensorRef; mask: TensorRef | null;
      M: number; inF: number; outF: number; r: number; scale: number; wInOut: boolean; p: number; seed: number; wDtype?: 'f32' | 'bf16' };
    result: void;
  };
  /**
   * Given dy [M, out]: dx [M, in] = dy W + mask s (dy B) A / (1 - p) (the adapter path's input
   * gradient through the forward's mask), dA [r, in] = s (dy B)^T xd (xd rebuilt from x and the
   * mask), dB [out, r] = s dy^T xa. Never a gradient for W; dx null: none for x either (its
   * products skipped). wDtype as for the forward (dy rounded to bf16 in the base product).
   */
  loraLinearBackward: {
    args: { dy: TensorRef; x: TensorRef; mask: TensorRef | null; w: TensorRef; a: TensorRef; b: TensorRef; xa: TensorRef; dx: TensorRef | null; da: TensorRef; db: TensorRef;
      M: number; inF: number; outF: number; r: number; scale: number; wInOut: boolean; p: number; wDtype?: 'f32' | 'bf16' };
    result: void;
  };
  // ---- linear + gathered LoRA, one adapter per row (native/napi/ops_lora_batched.cpp), f32, forward only
  /**
   * y [M, out] = x [M, in] W^T + bias, then for each row i with a = rowSlot[i] >= 0 (i32 [M]; -1 =
   * no adapter): y[i] += scales[a] (x[i] A_a^T) B_a^T. Slot a owns rank rows rOff[a]..rOff[a+1]
   * (i32 [slots + 1]) of aPack [R, in] (the A's stacked) and btPack [R, out] (the B^T's stacked).
   * aPack/btPack may be null when R = 0. `reference` runs the plain-loop oracle (CPU).
   */
  loraBatchedLinear: {
    args: { x: TensorRef; w: TensorRef; bias: TensorRef | null; rowSlot: TensorRef; aPack: TensorRef | null; btPack: TensorRef | null; rOff: TensorRef; scales: TensorRef; y: TensorRef;
      M: number; inF: number; outF: number; slots: number; R: number; wInOut: boolean; reference?: boolean };
    result: void;
  };

  // ---- NF4 (native/napi/ops_nf4.cpp): bitsandbytes' blockwise 4-bit layout; blocksize in [32, 4096];
  // packed u8 [(n+1)/2] (even element in the high nibble); absmax f32 [ceil(n/blocksize)].
  /** Quantizes n f32 values in blocks into packed codes and per-block absmax. */
  nf4Quantize: { args: { w: TensorRef; n: number; blocksize: number; quantType: Quant4Type; packed: TensorRef; absmax: TensorRef }; result: void };
  /** out [n] f32 = codebook[code] * absmax[block]. */
  nf4Dequantize: { args: { packed: TensorRef; absmax: TensorRef; n: number; blocksize: number; quantType: Quant4Type; out: TensorRef }; result: void };
  /** Double quantization of absmax [nblocks]: q u8 [nblocks], nested f32 [ceil(nblocks/256)]; returns the offset (mean). */
  nf4DoubleQuantize: { args: { absmax: TensorRef; nblocks: number; q: TensorRef; nested: TensorRef }; result: number };
  /** absmax[i] = dynamicMap[q[i]] * nested[i / 256] + offset. */
  nf4DoubleDequantize: { args: { q: TensorRef; nested: TensorRef; offset: number; nblocks: number; absmax: TensorRef }; result: void };
  /** y [M, N] = x [M, K] dequant(W [N, K])^T + beta y (W stays 4-bit). */
  nf4Gemm: { args: { x: TensorRef; M: number; packed: TensorRef; absmax: TensorRef; N: number; K: number; blocksize: number; quantType: Quant4Type; y: TensorRef; beta: number }; result: void };
  /** dx [M, K] = dy [M, N] dequant(W [N, K]) + beta dx. */
  nf4GemmDx: { args: { dy: TensorRef; M: number; packed: TensorRef; absmax: TensorRef; N: number; K: number; blocksize: number; quantType: Quant4Type; dx: TensorRef; beta: number }; result: void };

  // ---- GEMM (native/napi/ops_gemm.cpp)
  /** C[i] = alpha op(A[i]) op(B[i]) + beta C[i], i < batch, row-major, packed back to back; dtype f32, or bf16 inputs (C f32); roundA (CPU only): A f32, rounded to bf16 while packed, B bf16. */
  gemm: {
    args: { a: TensorRef; b: TensorRef; c: TensorRef; transA: boolean; transB: boolean; M: number; N: number; K: number; alpha: number; beta: number; batch: number; dtype: 'f32' | 'bf16'; roundA?: boolean };
    result: void;
  };

  // ---- vision (native/napi/ops_vision.cpp), f32 NCHW; `reference` runs the plain kernel (tests)
  /** y [N, O, Ho, Wo] = conv(x [N, C, H, W], w [O, C / groups, KH, KW]) + bias [O] (or null). */
  conv2dForward: { args: { x: TensorRef; w: TensorRef; bias: TensorRef | null; y: TensorRef; reference?: boolean } & Conv2dDims; result: void };
  /** dx, dw, db overwritten where not null. */
  conv2dBackward: { args: { x: TensorRef; w: TensorRef; dy: TensorRef; dx: TensorRef | null; dw: TensorRef | null; db: TensorRef | null; reference?: boolean } & Conv2dDims; result: void };
  /** y [N, C, Ho, Wo]; idx i32 argmax per output (ih * W + iw; padding counts as -inf). */
  maxPool2d: { args: { x: TensorRef; y: TensorRef; idx: TensorRef; reference?: boolean } & Pool2dDims; result: void };
  maxPool2dBackward: { args: { dy: TensorRef; idx: TensorRef; dx: TensorRef } & Pool2dDims; result: void };
  avgPool2d: { args: { x: TensorRef; y: TensorRef; countIncludePad: boolean; reference?: boolean } & Pool2dDims; result: void };
  avgPool2dBackward: { args: { dy: TensorRef; dx: TensorRef; countIncludePad: boolean } & Pool2dDims; result: void };
  /** x [NC, H, W] -> y [NC, Ho, Wo], PyTorch's bins (floor / ceil of i H / Ho). */
  adaptiveAvgPool2d: { args: { x: TensorRef; y: TensorRef; NC: number; H: number; W: number; Ho: number; Wo: number; reference?: boolean }; result: void };
  adaptiveAvgPool2dBackward: { args: { dy: TensorRef; dx: TensorRef; NC: number; H: number; W: number; Ho: number; Wo: number }; result: void };
  /** Batch statistics per channel of x [N, C, HW] (mean, rstd f32 [C] saved); running stats (if given) updated in place. */
  batchNormTrain: {
    args: { x: TensorRef; w: TensorRef | null; b: TensorRef | null; y: TensorRef; mean: TensorRef; rstd: TensorRef; runningMean: TensorRef | null; runningVar: TensorRef | null;
      N: number; C: number; HW: number; eps: number; momentum: number; reference?: boolean };
    result: void;
  };
  batchNormEval: {
    args: { x: TensorRef; w: TensorRef | null; b: TensorRef | null; runningMean: TensorRef; runningVar: TensorRef; y: TensorRef; mean: TensorRef; rstd: TensorRef; N: number; C: number; HW: number; eps: number };
    result: void;
  };
  batchNormBackward: {
    args: { x: TensorRef; w: TensorRef | null; mean: TensorRef; rstd: TensorRef; dy: TensorRef; dx: TensorRef | null; dw: TensorRef | null; db: TensorRef | null;
      N: number; C: number; HW: number; train: boolean; reference?: boolean };
    result: void;
  };
  /** Fused LoRA convolution (groups 1): y = conv(x, W) + bias + scale * B conv(x, A), A [r, C, KH, KW], B [O, r]; low [N, r, Ho, Wo] saved. */
  loraConv2dForward: { args: { x: TensorRef; w: TensorRef; bias: TensorRef | null; a: TensorRef; b: TensorRef; y: TensorRef; low: TensorRef; r: number; scale: number } & Conv2dDims; result: void };
  /** Gradients of x, A and B (W and bias are frozen); each may be null. */
  loraConv2dBackward: {
    args: { x: TensorRef; w: TensorRef; a: TensorRef; b: TensorRef; low: TensorRef; dy: TensorRef; dx: TensorRef | null; da: TensorRef | null; db: TensorRef | null; r: number; scale: number } & Conv2dDims;
    result: void;
  };

  // ---- SVD (native/napi/ops_svd.cpp)
  /**
   * a [m, n] = u [m, k] diag(s [k]) vt [k, n], k = min(m, n) unless given (then the k largest);
   * s descending; one-sided Jacobi; one dtype for all four tensors. u / vt may be null (values
   * only). Non-finite input -> ERR_VALUE.
   */
  svd: { args: { a: TensorRef; m: number; n: number; u: TensorRef | null; s: TensorRef; vt: TensorRef | null; dtype: 'f32' | 'f64'; k?: number }; result: void };

  // ---- LSTM (native/napi/ops_lstm.cpp), f32: one direction of one layer, PyTorch's gate order i, f, g, o.
  /** y, gates (activated i,f,g,o) and cell [B, T, *] from x [B, T, inF]; wih [4H, inF], whh [4H, H] (H = hidden); reverse walks T-1..0. */
  lstmForward: {
    args: { x: TensorRef; wih: TensorRef; whh: TensorRef; bih: TensorRef | null; bhh: TensorRef | null; y: TensorRef; gates: TensorRef; cell: TensorRef;
      B: number; T: number; inF: number; hidden: number; reverse: boolean };
    result: void;
  };
  /** Backward through time: dx (optional), dwih, dwhh and db (= d b_ih = d b_hh), all overwritten. */
  lstmBackward: {
    args: { dy: TensorRef; x: TensorRef; wih: TensorRef; whh: TensorRef; y: TensorRef; gates: TensorRef; cell: TensorRef; dx: TensorRef | null; dwih: TensorRef; dwhh: TensorRef; db: TensorRef;
      B: number; T: number; inF: number; hidden: number; reverse: boolean };
    result: void;
  };

  // ---- AdaLoRA (native/napi/ops_adalora.cpp), f32
  /**
   * One layer's rank-allocator step. state [2 (r in + r + out r)] = [Ibar_A | U_A | Ibar_E | U_E |
   * Ibar_B | U_B]. update: I = |w g|, Ibar = b1 Ibar + (1-b1) I, U = b2 U + (1-b2) |I - Ibar| for A
   * [r, in], E [r], B [out, r] (a null grad counts as 0). scores [r] (when given) =
   * Ibar_E U_E + (mean_j Ibar_A U_A + mean_j Ibar_B U_B).
   */
  adaloraUpdateScores: {
    args: { a: TensorRef; ga: TensorRef | null; e: TensorRef; ge: TensorRef | null; b: TensorRef; gb: TensorRef | null; state: TensorRef; scores: TensorRef | null;
      r: number; inF: number; outF: number; beta1: number; beta2: number; update: boolean };
    result: void;
  };
  /** The k-th smallest (1-based, as torch.kthvalue) of n f32 values. */
  adaloraKthSmallest: { args: { values: TensorRef; n: number; k: number }; result: number };
  /**
   * The score threshold for a budget in parameters: ranks in descending score order are kept
   * while their summed costs (f32 [n]) fit `budget`; returns the first misfit's score (-Infinity if all fit).
   */
  adaloraCostThreshold: { args: { scores: TensorRef; costs: TensorRef; n: number; budget: number }; result: number };
  /** E[i] = 0 where scores[i] <= threshold; keep (u8 [r], optional) = 1 for kept ranks. Returns the kept count. */
  adaloraMask: { args: { e: TensorRef; scores: TensorRef; r: number; threshold: number; keep: TensorRef | null }; result: number };
  /** E[i] = 0 where keep[i] == 0 (u8 [r]). */
  adaloraApplyPattern: { args: { e: TensorRef; keep: TensorRef; r: number }; result: void };
}

/** Sizes of a 2-D convolution (native/cpu/conv2d.h): input [N, C, H, W], weight [O, C / groups, KH, KW]. */
export interface Conv2dDims {
  N: number; C: number; H: number; W: number; O: number; KH: number; KW: number;
  strideH: number; strideW: number; padH: number; padW: number; dilationH: number; dilationW: number; groups: number;
}
/** Sizes of a 2-D pooling window sweep (native/cpu/pool.h): input [N, C, H, W], window KH x KW. */
export interface Pool2dDims {
  N: number; C: number; H: number; W: number; KH: number; KW: number;
  strideH: number; strideW: number; padH: number; padW: number; dilationH: number; dilationW: number;
}

/** The name of a kernel op. */
export type OpName = keyof KernelOps;
export type OpArgs<K extends OpName> = KernelOps[K]['args'];
export type OpResult<K extends OpName> = KernelOps[K]['result'];
/** A backend's kernel for op K. */
export type NativeKernel<K extends OpName> = (o: NativeOptions<OpArgs<K>>) => OpResult<K>;
/** A backend: one kernel per op it supports. */
export type BackendKernels = { [K in OpName]: NativeKernel<K> };

/** The closed list of kernel ops (every key of KernelOps, checked both ways below and at load). */
export const KERNEL_OPS = [
  'binary', 'unary', 'unaryBackward', 'reduce', 'argmax', 'sumSquares', 'countNonFinite',
  'fill', 'cast', 'copyBytes', 'copyRows', 'copyStrided', 'randomNormal', 'randomUniform', 'arange',
  'gemm',
  'softmax', 'softmaxBackward', 'layerNorm', 'layerNormBackward', 'rmsNorm', 'rmsNormBackward', 'gatherRows', 'scatterAddRows',
  'dropout', 'dropoutBackward', 'crossEntropy', 'crossEntropyBackward', 'adamw', 'rope', 'attention', 'attentionBackward', 'attentionRows', 'attentionRowsBackward',
  'loraLinearForward', 'loraLinearBackward', 'loraBatchedLinear',
  'nf4Quantize', 'nf4Dequantize', 'nf4DoubleQuantize', 'nf4DoubleDequantize', 'nf4Gemm', 'nf4GemmDx',
  'conv2dForward', 'conv2dBackward', 'maxPool2d', 'maxPool2dBackward', 'avgPool2d', 'avgPool2dBackward', 'adaptiveAvgPool2d', 'adaptiveAvgPool2dBackward',
  'batchNormTrain', 'batchNormEval', 'batchNormBackward', 'loraConv2dForward', 'loraConv2dBackward',
  'svd', 'lstmForward', 'lstmBackward',
  'adaloraUpdateScores', 'adaloraKthSmallest', 'adaloraCostThreshold', 'adaloraMask', 'adaloraApplyPattern',
] as const satisfies readonly OpName[];
/**
 * Ops a backend may lack: faster forms its callers use where `supports()` says the backend has
 * them, falling back to ops every backend has (the CPU's token-major attention; elsewhere
 * attention between layout copies). Not part of any device path's requirements, and left out of
 * the loopback device, which stands for the CUDA backend.
 */
export const OPTIONAL_KERNEL_OPS = ['attentionRows', 'attentionRowsBackward'] as const satisfies readonly OpName[];
export function isOptionalKernelOp(op: string): boolean {
  return (OPTIONAL_KERNEL_OPS as readonly string[]).includes(op);
}

// every op of KernelOps is listed (a missing one makes this `false` and fails the build)
const _allOpsListed: Exclude<OpName, (typeof KERNEL_OPS)[number]> extends never ? true : false = true;
void _allOpsListed;

type H = Handle;

export interface Binding {
  /** the kernels on host memory: every op */
  cpu: BackendKernels;
  /** the kernels on a CUDA device (builds with the CUDA backend only): the ops native/cuda has */
  cuda?: Partial<BackendKernels>;
  /** the op-code lists the addon was built with (native/core/op_codes.h) */
  opCodes(): { binary: string[]; unary: string[]; reduce: string[]; quant4: string[]; dtypes: string[] };
  /**
   * Registers the field names of options passed by position and returns its id (the same list,
   * the same id): a kernel (or alloc) called as `k(id, v0, v1, ...)` reads field names[i] from
   * v_i, by name as from an options object, without the per-field property reads (about 80 ns
   * each). The kernel table (lib/tensor/kernel_table.ts) calls kernels this way.
   */
  kernelSchema(names: readonly string[]): number;

  // ---- storage (native/napi/storage_ops.cpp)
  /** the class native errors are thrown as; the addon passes codes of TunekitErrorCode only */
  setErrorClass(ctor: new (code: TunekitErrorCode, message: string) => Error): void;
  /** A new storage of `bytes` bytes: host memory (device -1 or absent) or CUDA device `device`. */
  alloc(o: { bytes: number; zero?: boolean; device?: number }): H;
  /** alloc by a kernelSchema id and the values of its fields */
  alloc(schema: number, ...values: unknown[]): H;
  dispose(h: H): void;
  isDisposed(h: H): boolean;
  byteLength(h: H): number;
  /** -1 for host memory, else the CUDA ordinal */
  storageDevice(h: H): number;
  /** a zero-copy view (host storages only; ERR_DEVICE for device memory) */
  view(h: H): ArrayBuffer;
  /** copies the bytes of `from` into the storage (host or device) at byte offset dstOff */
  write(o: { dst: H; dstOff?: number; from: ArrayBufferView | ArrayBuffer }): void;
  /** copies into.byteLength bytes from the storage (host or device) into JS-owned memory */
  read(o: { src: H; srcOff?: number; into: ArrayBufferView }): void;
  /** `bytes` bytes between any two storages (host <-> device, device <-> device); waits for the copy */
  transfer(o: { src: H; srcOff?: number; dst: H; dstOff?: number; bytes: number }): void;
  /** device storages freed by the garbage collector instead of dispose()/tidy() so far (leaks) */
  deviceStoragesFinalized(): number;
  memoryStats(): { liveBytes: number; peakBytes: number };
  resetPeakMemory(): void;
  setNumThreads(n: number): void;
  getNumThreads(): number;
  backendInfo(): {
    cpu: { avx2: boolean; avx512: boolean; avx512bf16: boolean; threads: number; hardwareThreads: number };
    cuda?: { compiled: boolean; devices: number; reason: string };
  };

  gemmKernelName(): string;

  // ---- collectives (native/napi/ops_collectives.cpp): MPI loaded at run time, one communication
  // thread; operations start in call order on every rank and are waited for with a deadline.
  // elem 0 f32 | 1 f64; op 0 sum | 1 max | 2 min. Only lib/train/distributed/process_group.ts calls these.
  /** Loads the MPI library if it can (nothing is initialised): what was found, or why not and how to install it. */
  collectivesProbe(): { available: boolean; implementation: string; library: string; version: string; reason: string };
  /** MPI_Init on the communication thread (once per process); ERR_BACKEND without MPI. */
  collectivesInit(): { rank: number; size: number; threadLevel: number; implementation: string; version: string };
  /** Starts an in-place all-reduce of `count` elements; returns the operation's id. */
  collectivesAllreduce(h: H, off: number, count: number, elem: number, op: number): number;
  /** Starts a broadcast of `bytes` bytes from rank `root`, in place; returns the operation's id. */
  collectivesBroadcast(h: H, off: number, bytes: number, root: number): number;
  collectivesBarrier(): number;
  /** true when operation `id` completed, false when still in flight after timeoutMs; a failed one throws ERR_BACKEND. */
  collectivesWait(id: number, timeoutMs: number): boolean;
  /** MPI_Abort: every rank of the job ends (exit status `code`). Never returns. */
  collectivesAbort(code: number): never;
  /** MPI_Finalize (collective); no-op when not initialised. */
  collectivesFinalize(): void;
  /** This process's operations so far: count, payload bytes, wall seconds with one in flight. */
  collectivesStats(): { ops: number; bytes: number; busySeconds: number };

  // ---- CUDA (native/napi/ops_cuda.cpp)
  /** Status of the CUDA backend: compiled in or not, usable devices, and why there are none. */
  cudaInfo(): { compiled: boolean; devices: number; reason: string; name?: string; computeCapability?: string; totalBytes?: number };

  // ---- NF4 tables (native/napi/ops_nf4.cpp)
  /** The 16 code values (index = 4-bit code). */
  nf4Codebook(quantType: Quant4Type): number[];
  /** bitsandbytes' signed 8-bit dynamic map (256 values), the double-quantization code. */
  nf4DynamicMap(): number[];
}

/** Which file the addon was loaded from: a prebuilt binary shipped in the package, or a local source build. */
export interface AddonOrigin {
  path: string;
  kind: 'prebuild' | 'source build';
}

let origin: AddonOrigin | undefined;

/** The loaded addon's file and kind (after the binding has loaded). */
export function addonOrigin(): AddonOrigin {
  return { ...origin! };
}

function loadBinding(): Binding {
  const require = createRequire(import.meta.url);
  // lib/native.ts runs from lib/ (tests) or dist/ (built): the package root is one level up.
  const root = join(dirname(fileURLToPath(import.meta.url)), '..');
  // node-gyp-build's order: build/Release, build/Debug (a source build: `npm run build:native`,
  // `npm run build:cuda`, or the install step's fallback), then prebuilds/<platform>-<arch>/ by
  // tags (N-API, libc). TUNEKIT_PREBUILD=<dir> points it at another package root.
  let path: string;
  try {
    path = (require('node-gyp-build') as { resolve(dir: string): string }).resolve(root);
  } catch (e) {
    throw new TunekitError(
      'ERR_BACKEND',
      `tunekit's native addon was not found for ${process.platform}-${process.arch}: no build/Release/tunekit.node ` +
        `and no matching binary in ${join(root, 'prebuilds')} (${(e as Error).message.split('\n')[0]}). ` +
        `Prebuilt binaries ship for linux-x64 (glibc); elsewhere build from source with ` +
        `\`npm rebuild tunekit --build-from-source\` (needs Python 3, make and a C++17 compiler; see docs/packaging.md).`,
    );
  }
  try {
    const binding = require(path) as Binding;
    origin = { path, kind: path.startsWith(join(root, 'prebuilds') + sep) ? 'prebuild' : 'source build' };
    return binding;
  } catch (e) {
    throw new TunekitError(
      'ERR_BACKEND',
      `tunekit's native addon ${path} failed to load: ${(e as Error).message.split('\n')[0]}. ` +
        `Rebuild it from source with \`npm rebuild tunekit --build-from-source\` (see docs/packaging.md).`,
    );
  }
}

/** Per-function totals of the opt-in profiler (TUNEKIT_PROFILE=1). */
export interface NativeProfileEntry { name: string; calls: number; ms: number }

/**
 * Opt-in profiler: with TUNEKIT_PROFILE=1 every native function is wrapped (a Proxy) to count
 * its calls and wall time (TUNEKIT_PROFILE=cpu: process CPU time instead, for loaded machines); GEMM calls are also keyed by shape. Off, the binding is returned as is.
 * `nativeProfile()` returns the totals so far (null when off); `resetNativeProfile()` clears them.
 */
const profileStats = new Map<string, NativeProfileEntry>();
function profiled(b: Binding): Binding {
  const add = (name: string, ms: number) => {
    const e = profileStats.get(name) ?? { name, calls: 0, ms: 0 };
    e.calls++;
    e.ms += ms;
    profileStats.set(name, e);
  };
  // wraps every function of obj (the binding, or one backend's kernel object); `prefix` names the backend
  const wrap = <O extends object>(obj: O, prefix: string): O => {
    const wrapped = new Map<PropertyKey, unknown>();
    return new Proxy(obj, {
      get(target, prop) {
        const v = Reflect.get(target, prop) as unknown;
        if ((prop === 'cpu' || prop === 'cuda') && v && typeof v === 'object') {
          let w = wrapped.get(prop);
          if (!w) wrapped.set(prop, (w = wrap(v, prop === 'cuda' ? 'cuda.' : '')));
          return w;
        }
        if (typeof v !== 'function' || prop === 'setErrorClass') return v;
        let w = wrapped.get(prop);
        if (!w) {
          const fn = v as (...args: unknown[]) => unknown;
          const name = prefix + String(prop);
          w = (...args: unknown[]) => {
            const t0 = PROFILE_CPU ? 0 : performance.now();
            const c0 = PROFILE_CPU ? process.cpuUsage() : undefined;
            try {
              return fn.apply(target, args);
            } finally {
              // TUNEKIT_PROFILE=cpu: CPU time of the whole process (all pool threads) during the call,
              // which other jobs' time slices do not inflate as they do wall time on a shared machine
              const ms = c0 ? (() => { const d = process.cpuUsage(c0); return (d.user + d.system) / 1000; })() : performance.now() - t0;
              add(name, ms);
              if (String(prop) === 'gemm') {
                const o = args[0] as { M: number; N: number; K: number; transA: boolean; transB: boolean; batch: number; dtype: string };
                add(`${name} ${o.M}x${o.K}x${o.N}${o.transA ? ' tA' : ''}${o.transB ? ' tB' : ''}${o.batch !== 1 ? ` b${o.batch}` : ''}${o.dtype === 'bf16' ? ' bf16' : ''}`, ms);
              }
            }
          };
          wrapped.set(prop, w);
        }
        return w;
      },
    });
  };
  return wrap(b, '');
}
const PROFILING = !!process.env.TUNEKIT_PROFILE && process.env.TUNEKIT_PROFILE !== '0';
const PROFILE_CPU = process.env.TUNEKIT_PROFILE === 'cpu';

/** Totals of the native-call profiler, slowest first; null unless TUNEKIT_PROFILE is set. */
export function nativeProfile(): NativeProfileEntry[] | null {
  return PROFILING ? [...profileStats.values()].map((e) => ({ ...e })).sort((a, b) => b.ms - a.ms) : null;
}
export function resetNativeProfile(): void {
  profileStats.clear();
}

/**
 * The op-code lists and kernel names of the loaded addon against this file's: a build from other
 * sources than this TypeScript (a stale build/Release, an old prebuild) is refused here, naming
 * the difference, rather than failing later inside some op.
 */
function checkBinding(b: Binding): void {
  const got = b.opCodes();
  const want = { binary: BINARY_OPS, unary: UNARY_OPS, reduce: REDUCE_OPS, quant4: QUANT4_TYPES, dtypes: DTYPE_NAMES };
  for (const [list, names] of Object.entries(want) as [keyof typeof want, readonly string[]][]) {
    if (names.length !== OP_CODE_COUNTS[list] || got[list].join() !== names.join()) {
      throw new TunekitError('ERR_BACKEND', `tunekit's native addon ${origin?.path ?? ''} was built with other ${list} op codes ` +
        `([${got[list].join(', ')}]) than lib/native.ts lists ([${names.join(', ')}]): rebuild it (npm run build:native).`);
    }
  }
  const missing = KERNEL_OPS.filter((op) => typeof (b.cpu as unknown as Record<string, unknown>)[op] !== 'function');
  if (missing.length > 0) {
    throw new TunekitError('ERR_BACKEND', `tunekit's native addon ${origin?.path ?? ''} lacks the cpu kernels ${missing.join(', ')}: rebuild it (npm run build:native).`);
  }
}

/** The native binding, loaded once per thread (wrapped by the profiler when TUNEKIT_PROFILE is set). */
const loaded = loadBinding();
loaded.setErrorClass(TunekitError);
checkBinding(loaded);
export const native: Binding = PROFILING ? profiled(loaded) : loaded;

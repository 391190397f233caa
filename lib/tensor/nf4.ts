/**
 * NF4 / FP4 weights in bitsandbytes' blockwise layout (REFERENCE.md "NF4"): W [N, K] flattened
 * row-major, cut into blocks of `blocksize` values, one fp32 absmax per block, two 4-bit codes a
 * byte (even element in the high nibble). With double quantization (QLoRA's default) the absmax
 * array is itself stored as 8-bit codes of the signed dynamic map in blocks of 256, plus one fp32
 * nested absmax per 256 blocks and one fp32 offset (the mean):
 *   absmax[i] = dynamicMap[q[i]] * nestedAbsmax[i / 256] + offset
 * Cost: 4 + 8/64 + 32/(64*256) = 4.127 bits per parameter (0.516 bytes) with blocksize 64.
 *
 * @example
 * const q = NF4Tensor.quantize(w);        // w f32 [out, in]
 * const back = q.dequantize();            // f32 [out, in]
 * q.bytesPerParam();                      // 0.5159...
 */
import { native } from '../native.js';
import { Tensor } from './tensor.js';
import { run } from './kernel_table.js';
import type { Device } from './device.js';
import { keep } from './scope.js';
import { TunekitError, describe } from '../errors.js';

export type QuantType = 'nf4' | 'fp4';
/** bitsandbytes' nested (double-quantization) block size. */
export const NESTED_BLOCKSIZE = 256;

export interface QuantizeOptions {
  /** values per absmax block, 32..4096 (bitsandbytes' default and QLoRA's: 64) */
  blocksize?: number;
  /** quantize the absmax array to 8 bits too (QLoRA's double quantization); default true */
  doubleQuant?: boolean;
  quantType?: QuantType;
  /** dtype recorded in the quant state (the dtype the weight is dequantized to); default float32 */
  dtype?: string;
}

/** The absmax of an NF4 weight: plain fp32, or double-quantized. */
export type AbsmaxState =
  | { kind: 'f32'; absmax: Tensor<'f32'> }
  | { kind: 'double'; q: Tensor<'u8'>; nestedAbsmax: Tensor<'f32'>; offset: number };

/** The 16 code values of a quant type (index = code), as the native kernels use them. */
export function codebook(quantType: QuantType = 'nf4'): Float32Array {
  return Float32Array.from(native.nf4Codebook(quantType));
}

/** bitsandbytes' signed dynamic map (the double-quantization code, 256 values). */
export function dynamicMap(): Float32Array {
  return Float32Array.from(native.nf4DynamicMap());
}

/** A 4-bit blockwise-quantized 2-D weight [N, K] (out, in). Its tensors are kept out of memory scopes. */
export class NF4Tensor {
  private disposed = false;

  constructor(
    /** u8 [(N*K+1)/2, 1], bitsandbytes' packed Params4bit shape */
    readonly packed: Tensor<'u8'>,
    readonly absmaxState: AbsmaxState,
    /** the dense shape [N, K] */
    readonly shape: readonly [number, number],
    readonly blocksize: number,
    readonly quantType: QuantType = 'nf4',
    /** dtype of the weight before quantization (quant_state.dtype) */
    readonly dtype = 'float32',
  ) {
    keep(packed);
    if (absmaxState.kind === 'f32') keep(absmaxState.absmax);
    else {
      keep(absmaxState.q);
      keep(absmaxState.nestedAbsmax);
    }
  }

  get numel(): number {
    return this.shape[0] * this.shape[1];
  }
  get nblocks(): number {
    return Math.ceil(this.numel / this.blocksize);
  }
  get doubleQuant(): boolean {
    return this.absmaxState.kind === 'double';
  }

  /**
   * Quantizes a 2-D f32 weight [N, K] (bitsandbytes' Linear4bit layout: [out, in]).
   * @example NF4Tensor.quantize(w, { blocksize: 64, doubleQuant: true })
   */
  static quantize(w: Tensor, opts: QuantizeOptions = {}): NF4Tensor {
    const blocksize = opts.blocksize ?? 64;
    const quantType = opts.quantType ?? 'nf4';
    const doubleQuant = opts.doubleQuant ?? true;
    if (!Number.isInteger(blocksize) || blocksize < 32 || blocksize > 4096) {
      throw new TunekitError('ERR_VALUE', `NF4 quantize: blocksize must be an integer in [32, 4096] but received ${describe(blocksize)}`);
    }
    if (quantType !== 'nf4' && quantType !== 'fp4') throw new TunekitError('ERR_VALUE', `NF4 quantize: quant type must be 'nf4' or 'fp4' but received ${describe(quantType)}`);
    if (w.dtype !== 'f32') throw new TunekitError('ERR_DTYPE', `NF4 quantize: expected an f32 weight but received ${w.dtype}`);
    if (w.ndim !== 2 || w.numel === 0) throw new TunekitError('ERR_SHAPE', `NF4 quantize: expected a non-empty 2-D weight [out, in] but received [${w.shape}]`);
    const n = w.numel;
    const nb = Math.ceil(n / blocksize);
    const wc = w.contiguousRaw();
    const packed = Tensor.empty([(n + 1) >> 1, 1], 'u8', false, w.device);
    const absmax = Tensor.empty([nb], 'f32', false, w.device);
    run('nf4Quantize', { w: wc, n, blocksize, quantType, packed, absmax });
    wc.dispose();
    const shape: [number, number] = [w.shape[0]!, w.shape[1]!];
    if (!doubleQuant) return new NF4Tensor(packed, { kind: 'f32', absmax }, shape, blocksize, quantType, opts.dtype);
    const st = doubleQuantize(absmax);
    absmax.dispose();
    return new NF4Tensor(packed, st, shape, blocksize, quantType, opts.dtype);
  }

  /** The per-block absmax in fp32 (a new tensor the caller disposes; double-dequantized if needed). */
  absmaxF32(): Tensor<'f32'> {
    this.check();
    const st = this.absmaxState;
    if (st.kind === 'f32') return st.absmax.clone();
    const out = Tensor.empty([this.nblocks], 'f32', false, this.device);
    run('nf4DoubleDequantize', { q: st.q, nested: st.nestedAbsmax, offset: st.offset, nblocks: this.nblocks, absmax: out });
    return out;
  }

  /** Runs fn with the fp32 absmax (borrowed: a temporary when double-quantized). */
  withAbsmax<R>(fn: (absmax: Tensor<'f32'>) => R): R {
    this.check();
    const st = this.absmaxState;
    if (st.kind === 'f32') return fn(st.absmax);
    const a = this.absmaxF32();
    try {
      return fn(a);
    } finally {
      a.dispose();
    }
  }

  /** The dense weight, f32 [N, K]: codebook[code] * absmax[block], multiplied in fp32. */
  dequantize(): Tensor<'f32'> {
    const out = Tensor.empty([...this.shape], 'f32', false, this.device);
    this.withAbsmax((absmax) =>
      run('nf4Dequantize', { packed: this.packed, absmax, n: this.numel, blocksize: this.blocksize, quantType: this.quantType, out }));
    return out;
  }

  /** Bytes held: packed codes + absmax (or q + nested absmax + the fp32 offset). */
  bytes(): number {
    const st = this.absmaxState;
    const a = st.kind === 'f32' ? st.absmax.numel * 4 : st.q.numel + st.nestedAbsmax.numel * 4 + 4;
    return this.packed.numel + a;
  }

  bytesPerParam(): number {
    return this.bytes() / this.numel;
  }

  /** Where the packed codes and absmax live. */
  get device(): Device {
    return this.packed.device;
  }

  /**
   * This weight on `device` (itself when already there): its packed codes and absmax state
   * copied over; the copy's tensors are kept out of memory scopes, as this one's.
   * @example const onGpu = w.to('cuda');
   */
  to(device: Device | 'cuda'): NF4Tensor {
    this.check();
    const packed = this.packed.to(device);
    if (packed === this.packed) return this;
    const st = this.absmaxState;
    const s2: AbsmaxState = st.kind === 'f32'
      ? { kind: 'f32', absmax: keep(st.absmax.to(device)) }
      : { kind: 'double', q: keep(st.q.to(device)), nestedAbsmax: keep(st.nestedAbsmax.to(device)), offset: st.offset };
    return new NF4Tensor(keep(packed), s2, this.shape, this.blocksize, this.quantType, this.dtype);
  }

  /** An independent copy. */
  clone(): NF4Tensor {
    const st = this.absmaxState;
    const s2: AbsmaxState = st.kind === 'f32' ? { kind: 'f32', absmax: st.absmax.clone() } : { kind: 'double', q: st.q.clone(), nestedAbsmax: st.nestedAbsmax.clone(), offset: st.offset };
    return new NF4Tensor(this.packed.clone(), s2, this.shape, this.blocksize, this.quantType, this.dtype);
  }

  get isDisposed(): boolean {
    return this.disposed;
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.packed.dispose();
    const st = this.absmaxState;
    if (st.kind === 'f32') st.absmax.dispose();
    else {
      st.q.dispose();
      st.nestedAbsmax.dispose();
    }
  }

  private check(): void {
    if (this.disposed) throw new TunekitError('ERR_STATE', 'NF4 weight used after dispose()');
  }
}

/** Double quantization of an fp32 absmax array (bitsandbytes: offset = mean, 8-bit dynamic map, blocks of 256). */
export function doubleQuantize(absmax: Tensor<'f32'>): { kind: 'double'; q: Tensor<'u8'>; nestedAbsmax: Tensor<'f32'>; offset: number } {
  const nb = absmax.numel;
  const ac = absmax.contiguousRaw();
  const q = Tensor.empty([nb], 'u8', false, absmax.device);
  const nested = Tensor.empty([Math.ceil(nb / NESTED_BLOCKSIZE)], 'f32', false, absmax.device);
  const offset = run('nf4DoubleQuantize', { absmax: ac, nblocks: nb, q, nested });
  ac.dispose();
  return { kind: 'double', q, nestedAbsmax: nested, offset };
}

/** Relative Frobenius error ||a - b|| / ||a|| of two same-shape f32 tensors (computed in f64). */
export function relativeError(ref: Tensor, approx: Tensor): { rel: number; sqErr: number; sqRef: number } {
  const a = ref.contiguousRaw(), b = approx.contiguousRaw();
  const x = a.toTypedArray() as Float32Array, y = b.toTypedArray() as Float32Array; // copies: either may be on a device
  if (x.length !== y.length) throw new TunekitError('ERR_SHAPE', `relativeError: [${ref.shape}] vs [${approx.shape}]`);
  let se = 0, sr = 0;
  for (let i = 0; i < x.length; i++) {
    const d = x[i]! - y[i]!;
    se += d * d;
    sr += x[i]! * x[i]!;
  }
  a.dispose();
  b.dispose();
  return { rel: sr > 0 ? Math.sqrt(se / sr) : Math.sqrt(se), sqErr: se, sqRef: sr };
}

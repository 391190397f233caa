/** Element types. Names shared with native/core/dtype.h through DTYPE_NAMES in native.ts (checked at load). */
export type DType = 'f32' | 'bf16' | 'f16' | 'i32' | 'i64' | 'u8' | 'f64';

/** The typed array that holds each dtype's raw elements (bf16/f16 as raw uint16 bits). */
export interface DataTypeMap {
  f32: Float32Array;
  bf16: Uint16Array;
  f16: Uint16Array;
  i32: Int32Array;
  i64: BigInt64Array;
  u8: Uint8Array;
  f64: Float64Array;
}

export const DTYPE_SIZE: Record<DType, number> = { f32: 4, bf16: 2, f16: 2, i32: 4, i64: 8, u8: 1, f64: 8 };

export const DTYPES: readonly DType[] = ['f32', 'bf16', 'f16', 'i32', 'i64', 'u8', 'f64'];

export function isFloat(d: DType): boolean {
  return d === 'f32' || d === 'bf16' || d === 'f16' || d === 'f64';
}

export function typedArrayFor<D extends DType>(dtype: D, buf: ArrayBuffer, byteOffset: number, length: number): DataTypeMap[D] {
  switch (dtype) {
    case 'f32': return new Float32Array(buf, byteOffset, length) as DataTypeMap[D];
    case 'bf16':
    case 'f16': return new Uint16Array(buf, byteOffset, length) as DataTypeMap[D];
    case 'i32': return new Int32Array(buf, byteOffset, length) as DataTypeMap[D];
    case 'i64': return new BigInt64Array(buf, byteOffset, length) as DataTypeMap[D];
    case 'u8': return new Uint8Array(buf, byteOffset, length) as DataTypeMap[D];
    case 'f64': return new Float64Array(buf, byteOffset, length) as DataTypeMap[D];
  }
  throw new Error(`unknown dtype ${dtype as string}`);
}

/** bf16 bits -> number (exact). */
export function bf16ToNumber(bits: number): number {
  const f = new Float32Array(new Uint32Array([bits << 16]).buffer);
  return f[0]!;
}

const f16Scratch = new Uint16Array(1);
/** IEEE half bits -> number. */
export function f16ToNumber(bits: number): number {
  f16Scratch[0] = bits;
  const s = bits & 0x8000 ? -1 : 1;
  const e = (bits >> 10) & 0x1f;
  const m = bits & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

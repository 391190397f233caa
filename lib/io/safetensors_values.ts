/**
 * Decoding safetensors tensor bytes into plain numbers (for tests, inspection and small tensors;
 * the tensor layer reads bytes straight into native memory instead).
 */
import { TunekitError } from '../errors.js';
import { DTYPE_BITS, type SafetensorsDtype } from './safetensors_header.js';
import type { RawTensor } from './safetensors.js';

/**
 * Bytes per element of each dtype: bits / 8, so fractional for the sub-byte dtypes (F4 0.5,
 * F6_* 0.75), whose tensors must hold a whole number of bytes.
 */
export const DTYPE_SIZE: Readonly<Record<SafetensorsDtype, number>> = Object.freeze(
  Object.fromEntries(Object.entries(DTYPE_BITS).map(([k, bits]) => [k, bits / 8])) as Record<SafetensorsDtype, number>,
);

function f16ToNumber(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

function f8e4m3ToNumber(b: number): number {
  // E4M3 "fn": bias 7, no infinities, S.1111.111 is NaN.
  const sign = b & 0x80 ? -1 : 1;
  const exp = (b >> 3) & 0xf;
  const frac = b & 0x7;
  if (exp === 15 && frac === 7) return NaN;
  if (exp === 0) return sign * frac * 2 ** -9;
  return sign * (1 + frac / 8) * 2 ** (exp - 7);
}

function f8e5m2ToNumber(b: number): number {
  // E5M2: bias 15, IEEE-like infinities and NaNs.
  const sign = b & 0x80 ? -1 : 1;
  const exp = (b >> 2) & 0x1f;
  const frac = b & 0x3;
  if (exp === 31) return frac ? NaN : sign * Infinity;
  if (exp === 0) return sign * frac * 2 ** -16;
  return sign * (1 + frac / 4) * 2 ** (exp - 15);
}

function f8e4m3fnuzToNumber(b: number): number {
  // E4M3 "fnuz": bias 8, no infinities, no negative zero: 0x80 is the only NaN.
  if (b === 0x80) return NaN;
  const sign = b & 0x80 ? -1 : 1;
  const exp = (b >> 3) & 0xf;
  const frac = b & 0x7;
  if (exp === 0) return sign * frac * 2 ** -10;
  return sign * (1 + frac / 8) * 2 ** (exp - 8);
}

function f8e5m2fnuzToNumber(b: number): number {
  // E5M2 "fnuz": bias 16, no infinities, no negative zero: 0x80 is the only NaN.
  if (b === 0x80) return NaN;
  const sign = b & 0x80 ? -1 : 1;
  const exp = (b >> 2) & 0x1f;
  const frac = b & 0x3;
  if (exp === 0) return sign * frac * 2 ** -17;
  return sign * (1 + frac / 4) * 2 ** (exp - 16);
}

function f8e8m0ToNumber(b: number): number {
  // E8M0 (OCP MX scale): 2^(b - 127), unsigned, no zero; 0xFF is NaN.
  return b === 0xff ? NaN : 2 ** (b - 127);
}

/** Dtypes decodeValues reads only as raw bytes (no plain-number form per element). */
const RAW_ONLY: ReadonlySet<SafetensorsDtype> = new Set(['F4', 'F6_E2M3', 'F6_E3M2', 'C64']);

/**
 * Decodes a tensor's bytes into plain numbers (64-bit integers as bigint), C order. Meant for
 * tests, inspection and small tensors; the tensor layer has its own zero-copy views. F4, F6_*
 * and C64 tensors are read as raw bytes only: decodeValues refuses them with ERR_DTYPE.
 *
 * @example
 * decodeValues({ name: 'x', dtype: 'BF16', shape: [1], bytes: new Uint8Array([0x80, 0x3f]) }); // [1]
 */
export function decodeValues(t: Pick<RawTensor, 'dtype' | 'bytes'>): Array<number | bigint | boolean> {
  const v = new DataView(t.bytes.buffer, t.bytes.byteOffset, t.bytes.byteLength);
  const size = DTYPE_SIZE[t.dtype];
  if (size === undefined) throw new TunekitError('ERR_DTYPE', `decodeValues: unknown dtype ${JSON.stringify(t.dtype)}`);
  if (RAW_ONLY.has(t.dtype)) {
    throw new TunekitError('ERR_DTYPE', `decodeValues: ${t.dtype} has no per-element number form here; use the tensor's raw bytes (readTensor(name).bytes)`);
  }
  const n = t.bytes.length / size;
  const out: Array<number | bigint | boolean> = new Array(n);
  for (let i = 0; i < n; i++) {
    const o = i * size;
    switch (t.dtype) {
      case 'F64': out[i] = v.getFloat64(o, true); break;
      case 'F32': out[i] = v.getFloat32(o, true); break;
      case 'F16': out[i] = f16ToNumber(v.getUint16(o, true)); break;
      case 'BF16': {
        const bits = new DataView(new ArrayBuffer(4));
        bits.setUint32(0, v.getUint16(o, true) << 16, true);
        out[i] = bits.getFloat32(0, true);
        break;
      }
      case 'I64': out[i] = v.getBigInt64(o, true); break;
      case 'I32': out[i] = v.getInt32(o, true); break;
      case 'I16': out[i] = v.getInt16(o, true); break;
      case 'I8': out[i] = v.getInt8(o); break;
      case 'U8': out[i] = v.getUint8(o); break;
      case 'BOOL': out[i] = v.getUint8(o) !== 0; break;
      case 'F8_E4M3': out[i] = f8e4m3ToNumber(v.getUint8(o)); break;
      case 'F8_E5M2': out[i] = f8e5m2ToNumber(v.getUint8(o)); break;
      case 'U16': out[i] = v.getUint16(o, true); break;
      case 'U32': out[i] = v.getUint32(o, true); break;
      case 'U64': out[i] = v.getBigUint64(o, true); break;
      case 'F8_E4M3FNUZ': out[i] = f8e4m3fnuzToNumber(v.getUint8(o)); break;
      case 'F8_E5M2FNUZ': out[i] = f8e5m2fnuzToNumber(v.getUint8(o)); break;
      case 'F8_E8M0': out[i] = f8e8m0ToNumber(v.getUint8(o)); break;
    }
  }
  return out;
}

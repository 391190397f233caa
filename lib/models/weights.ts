/**
 * Moving tensors between our Tensors and safetensors' raw bytes.
 */
import { Tensor } from '../tensor/tensor.js';
import { TunekitError } from '../errors.js';
import type { RawTensor, SafetensorsDtype } from '../io/safetensors.js';
import type { DType } from '../tensor/dtype.js';

const FROM_ST: Partial<Record<SafetensorsDtype, DType>> = { F32: 'f32', BF16: 'bf16', F16: 'f16', I32: 'i32', I64: 'i64', U8: 'u8', F64: 'f64' };
const TO_ST: Record<DType, SafetensorsDtype> = { f32: 'F32', bf16: 'BF16', f16: 'F16', i32: 'I32', i64: 'I64', u8: 'U8', f64: 'F64' };

/** A tensor (in the file's dtype) from raw safetensors bytes. */
export function tensorFromRaw(raw: RawTensor): Tensor {
  const dt = FROM_ST[raw.dtype];
  if (!dt) {
    throw new TunekitError('ERR_DTYPE', `tensor '${raw.name}' has dtype ${raw.dtype}, which tunekit cannot compute with (it converts ${Object.keys(FROM_ST).join(', ')}); the file is valid and readTensor() returns this tensor's raw bytes`);
  }
  const t = Tensor.empty(raw.shape, dt);
  t.copyFrom(raw.bytes);
  return t;
}

/** A tensor converted to f32 (floats) from raw bytes. */
export function f32FromRaw(raw: RawTensor): Tensor<'f32'> {
  const t = tensorFromRaw(raw);
  if (t.dtype === 'f32') return t as Tensor<'f32'>;
  const c = t.castRaw('f32');
  t.dispose();
  return c;
}

/** Raw safetensors bytes of a tensor (copied; optionally cast first). */
export function rawFromTensor(name: string, t: Tensor, dtype?: DType): RawTensor {
  const src = dtype && dtype !== t.dtype ? t.castRaw(dtype) : t.contiguousRaw();
  const d = src.toTypedArray() as ArrayBufferView;
  const bytes = new Uint8Array(d.buffer, d.byteOffset, d.byteLength);
  const out: RawTensor = { name, dtype: TO_ST[src.dtype], shape: [...t.shape], bytes };
  src.dispose();
  return out;
}

/**
 * Tensor: a dtype, a shape and strides over refcounted native storage. CPU data is readable as
 * a zero-copy typed array (`data()`). Differentiable ops live in lib/autograd (which also adds
 * the chainable methods such as `add` and `matmul`); this file only knows layout and memory.
 */
import { native } from '../native.js';
import { run } from './kernel_table.js';
import { TunekitError, describe } from '../errors.js';
import { DTYPE_SIZE, typedArrayFor, bf16ToNumber, f16ToNumber, type DType, type DataTypeMap } from './dtype.js';
import { Storage } from './storage.js';
import { parseDevice, type Device } from './device.js';
import { track } from './scope.js';

/** The autograd node that produced a tensor (defined in lib/autograd/tape.ts). */
export interface GradNode {
  readonly op: string;
  readonly inputs: readonly (Tensor | null)[];
}

export type Shape = readonly number[];

export function numelOf(shape: Shape): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function contiguousStrides(shape: Shape): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i]!;
  }
  return s;
}

export function checkShape(shape: unknown, what = 'shape'): number[] {
  if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0)) {
    throw new TunekitError('ERR_SHAPE', `Expected ${what} to be an array of non-negative integers but received ${describe(shape)}`);
  }
  return shape as number[];
}

let nextId = 1;

export class Tensor<D extends DType = DType> {
  readonly id = nextId++;
  readonly dtype: D;
  readonly shape: Shape;
  readonly strides: readonly number[];
  /** offset of element [0,...,0] in the storage, in elements */
  readonly offset: number;
  readonly storage: Storage;
  /** true for parameters and other leaves whose gradient is wanted */
  requiresGrad = false;
  /** accumulated gradient of a leaf after backward() */
  grad: Tensor<'f32'> | null = null;
  /** the op that produced this tensor, when recorded on the autograd tape */
  gradFn: GradNode | null = null;
  /** optional name (parameters) */
  name?: string;
  private disposed = false;

  constructor(storage: Storage, dtype: D, shape: Shape, strides?: readonly number[], offset = 0) {
    this.storage = storage;
    this.dtype = dtype;
    this.shape = Object.freeze([...shape]);
    this.strides = Object.freeze(strides ? [...strides] : contiguousStrides(shape));
    this.offset = offset;
    storage.addUser();
    track(this);
  }

  /** A new uninitialised contiguous tensor (zero-filled when `zero`) on `device`. */
  static empty<D extends DType>(shape: Shape, dtype: D, zero = false, device: Device = 'cpu'): Tensor<D> {
    checkShape(shape as number[]);
    const bytes = numelOf(shape) * DTYPE_SIZE[dtype];
    return new Tensor(Storage.allocate(bytes, zero, device), dtype, shape);
  }

  get numel(): number {
    return numelOf(this.shape);
  }
  get ndim(): number {
    return this.shape.length;
  }
  get device(): Device {
    return this.storage.device;
  }
  get isDisposed(): boolean {
    return this.disposed;
  }
  /** The storage's write count (Storage.version): changes whenever the values may have. */
  get version(): number {
    return this.storage.version;
  }
  /** byte offset of element 0 in the storage (what native calls take) */
  get byteOffset(): number {
    return this.offset * DTYPE_SIZE[this.dtype];
  }
  get handle() {
    this.assertLive();
    return this.storage.handle;
  }
  get isContiguous(): boolean {
    let acc = 1;
    for (let i = this.shape.length - 1; i >= 0; i--) {
      if (this.shape[i] !== 1 && this.strides[i] !== acc) return false;
      acc *= this.shape[i]!;
    }
    return true;
  }

  /** Size of dimension `dim` (negative counts from the end). */
  size(dim: number): number {
    return this.shape[this.normDim(dim)]!;
  }

  normDim(dim: number): number {
    const d = dim < 0 ? dim + this.ndim : dim;
    if (!Number.isInteger(d) || d < 0 || d >= this.ndim) {
      throw new TunekitError('ERR_INDEX', `Expected a dimension in [${-this.ndim}, ${this.ndim}) but received ${dim} (shape [${this.shape}])`);
    }
    return d;
  }

  assertLive(): void {
    if (this.disposed) throw new TunekitError('ERR_DISPOSED', `tensor ${this.name ?? '#' + this.id} [${this.shape}] was used after dispose()`);
    this.storage.assertLive();
  }

  /** Frees this tensor's hold on its storage (memory goes when no view uses it). Idempotent. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.gradFn = null;
    if (this.grad) {
      this.grad.dispose();
      this.grad = null;
    }
    this.storage.removeUser();
  }

  /** A view sharing storage (no copy, not recorded for autograd). */
  viewAs(shape: Shape, strides: readonly number[], offset: number): Tensor<D> {
    this.assertLive();
    return new Tensor(this.storage, this.dtype, shape, strides, offset);
  }

  /** A contiguous copy (or a view sharing storage when already contiguous). Not recorded. */
  contiguousRaw(): Tensor<D> {
    this.assertLive();
    if (this.isContiguous) return this.viewAs(this.shape, contiguousStrides(this.shape), this.offset);
    const out = Tensor.empty(this.shape, this.dtype, false, this.device);
    run('copyStrided', { src: this, dst: out, elemSize: DTYPE_SIZE[this.dtype], shape: [...this.shape], strides: [...this.strides] });
    return out;
  }

  /**
   * The elements as a typed array, row-major. Zero-copy for contiguous CPU tensors: writes to it
   * change the tensor (call `t.storage.markWritten()` after writing, so caches keyed on
   * `version`, such as bf16 weight copies, see the change). CPU tensors only (ERR_DEVICE on a
   * device: use toTypedArray(), which copies).
   */
  data(): DataTypeMap[D] {
    this.assertLive();
    if (this.device !== 'cpu') this.storage.arrayBuffer(); // throws ERR_DEVICE naming the device
    if (this.isContiguous) {
      return typedArrayFor(this.dtype, this.storage.arrayBuffer(), this.byteOffset, this.numel);
    }
    const c = this.contiguousRaw();
    const arr = c.data().slice() as DataTypeMap[D];
    c.dispose();
    return arr;
  }

  /**
   * A copy of the elements in a new JS-owned typed array (no view on native memory is kept, so
   * memory is released as soon as the tensor is disposed). From a device, the copy back to the
   * host (it waits for the device's queued work).
   */
  toTypedArray(): DataTypeMap[D] {
    this.assertLive();
    const src = this.isContiguous ? this : this.contiguousRaw();
    const out = typedArrayFor(this.dtype, new ArrayBuffer(this.numel * DTYPE_SIZE[this.dtype]), 0, this.numel);
    native.read({ src: src.handle, srcOff: src.byteOffset, into: out as ArrayBufferView });
    if (src !== this) src.dispose();
    return out;
  }

  /** The elements as plain numbers (bf16/f16 decoded, i64 as numbers), row-major. */
  toArray(): number[] {
    const d = this.toTypedArray();
    if (this.dtype === 'bf16') return Array.from(d as Uint16Array, bf16ToNumber);
    if (this.dtype === 'f16') return Array.from(d as Uint16Array, f16ToNumber);
    if (this.dtype === 'i64') return Array.from(d as BigInt64Array, (v) => Number(v));
    return Array.from(d as Float32Array);
  }

  /** The single value of a one-element tensor. */
  item(): number {
    if (this.numel !== 1) throw new TunekitError('ERR_SHAPE', `item() needs a one-element tensor but shape is [${this.shape}]`);
    return this.toArray()[0]!;
  }

  /** Nested arrays, like torch's tolist(). */
  toNested(): unknown {
    const flat = this.toArray();
    const build = (dim: number, off: number): unknown => {
      if (dim === this.ndim) return flat[off];
      const n = this.shape[dim]!;
      const inner = numelOf(this.shape.slice(dim + 1));
      return Array.from({ length: n }, (_, i) => build(dim + 1, off + i * inner));
    };
    return build(0, 0);
  }

  /** Copies values in from a typed array of this dtype (contiguous tensors only). */
  copyFrom(src: ArrayBufferView): this {
    this.assertLive();
    if (!this.isContiguous) throw new TunekitError('ERR_VALUE', 'copyFrom needs a contiguous tensor');
    const want = this.numel * DTYPE_SIZE[this.dtype];
    if (src.byteLength !== want) {
      throw new TunekitError('ERR_SHAPE', `copyFrom: expected ${want} bytes for [${this.shape}] ${this.dtype} but received ${src.byteLength}`);
    }
    native.write({ dst: this.handle, dstOff: this.byteOffset, from: src });
    this.storage.markWritten();
    return this;
  }

  /** Copies another tensor's values in (same dtype and element count; no GC-held views). */
  assign(src: Tensor): this {
    this.assertLive();
    if (src.dtype !== this.dtype || src.numel !== this.numel) {
      throw new TunekitError('ERR_SHAPE', `assign: expected ${this.numel} ${this.dtype} elements but received ${src.numel} ${src.dtype}`);
    }
    if (!this.isContiguous) throw new TunekitError('ERR_VALUE', 'assign needs a contiguous destination');
    const s = src.isContiguous ? src : src.contiguousRaw();
    const bytes = this.numel * DTYPE_SIZE[this.dtype];
    if (s.device === this.device) run('copyBytes', { src: s, dst: this, bytes });
    else native.transfer({ src: s.handle, srcOff: s.byteOffset, dst: this.handle, dstOff: this.byteOffset, bytes });
    if (s !== src) s.dispose();
    this.storage.markWritten();
    return this;
  }

  /** Fills every element with value, in place. */
  fill_(value: number): this {
    this.assertLive();
    if (!this.isContiguous) throw new TunekitError('ERR_VALUE', 'fill_ needs a contiguous tensor');
    run('fill', { dst: this, dtype: this.dtype, n: this.numel, value });
    this.storage.markWritten();
    return this;
  }

  /** A copy converted to dtype (not recorded for autograd; see ops.cast). */
  castRaw<T extends DType>(dtype: T): Tensor<T> {
    const src = this.contiguousRaw();
    const out = Tensor.empty(this.shape, dtype, false, this.device);
    run('cast', { src, srcDtype: src.dtype, dst: out, dstDtype: dtype, n: this.numel });
    src.dispose();
    return out;
  }

  /** A detached copy of this tensor's values (same dtype and device, contiguous, new storage). */
  clone(): Tensor<D> {
    const out = Tensor.empty(this.shape, this.dtype, false, this.device);
    const src = this.contiguousRaw();
    run('copyBytes', { src, dst: out, bytes: this.numel * DTYPE_SIZE[this.dtype] });
    src.dispose();
    return out;
  }

  /**
   * This tensor's values on `device` ('cpu', 'cuda' or 'cuda:N'): the tensor itself when it is
   * already there, else a new contiguous tensor (same dtype, shape and name) holding a copy. Not
   * recorded for autograd; the copy keeps `requiresGrad`. From a device to the host it waits for
   * the device's queued work.
   * @example const w = weights.to('cuda'); const back = w.to('cpu');
   */
  to(device: Device | 'cuda'): Tensor<D> {
    const d = parseDevice(device);
    this.assertLive();
    if (d === this.device) return this;
    const src = this.isContiguous ? this : this.contiguousRaw();
    const out = Tensor.empty(this.shape, this.dtype, false, d);
    native.transfer({ src: src.handle, srcOff: src.byteOffset, dst: out.handle, dstOff: 0, bytes: this.numel * DTYPE_SIZE[this.dtype] });
    if (src !== this) src.dispose();
    out.requiresGrad = this.requiresGrad;
    if (this.name !== undefined) out.name = this.name;
    return out;
  }

  /** A readable summary with (up to) the first and last values. */
  toString(): string {
    if (this.disposed) return `Tensor(disposed, ${this.dtype}, [${this.shape.join(', ')}])`;
    const vals = this.toArray();
    const fmt = (v: number) => (Number.isInteger(v) ? String(v) : v.toPrecision(4));
    const body = vals.length <= 12 ? vals.map(fmt).join(', ') : `${vals.slice(0, 6).map(fmt).join(', ')}, ..., ${vals.slice(-3).map(fmt).join(', ')}`;
    const grad = this.requiresGrad ? ', requiresGrad' : this.gradFn ? `, gradFn=${this.gradFn.op}` : '';
    return `Tensor(${this.dtype}, [${this.shape.join(', ')}]${grad}) [${body}]`;
  }
}

/**
 * Chainable tensor methods (`x.add(y).relu()`), attached to Tensor's prototype so lib/tensor
 * stays free of autograd. Each forwards to the differentiable op of the same name in ops.ts.
 */
import { Tensor } from '../tensor/tensor.js';
import { DTYPE_SIZE, type DType } from '../tensor/dtype.js';
import * as F from './ops.js';
import { backward } from './tape.js';

declare module '../tensor/tensor.js' {
  interface Tensor<D extends DType> {
    add(b: Tensor | number): Tensor<'f32'>;
    sub(b: Tensor | number): Tensor<'f32'>;
    mul(b: Tensor | number): Tensor<'f32'>;
    div(b: Tensor | number): Tensor<'f32'>;
    neg(): Tensor<'f32'>;
    exp(): Tensor<'f32'>;
    log(): Tensor<'f32'>;
    sqrt(): Tensor<'f32'>;
    tanh(): Tensor<'f32'>;
    sigmoid(): Tensor<'f32'>;
    relu(): Tensor<'f32'>;
    square(): Tensor<'f32'>;
    sum(dim?: number, keepDim?: boolean): Tensor<'f32'>;
    mean(dim?: number, keepDim?: boolean): Tensor<'f32'>;
    matmul(b: Tensor, opts?: { transA?: boolean; transB?: boolean }): Tensor<'f32'>;
    reshape(shape: readonly number[]): Tensor<D>;
    permute(dims: readonly number[]): Tensor<D>;
    transpose(d0?: number, d1?: number): Tensor<D>;
    slice(dim: number, start: number, end?: number): Tensor<D>;
    contiguous(): Tensor<D>;
    to<T extends DType>(dtype: T): Tensor<T>;
    softmax(): Tensor<'f32'>;
    backward(gradOutput?: Tensor<'f32'>): void;
  }
}

const P = Tensor.prototype as unknown as Record<string, unknown>;
P.add = function (this: Tensor, b: Tensor | number) { return F.add(this, b); };
P.sub = function (this: Tensor, b: Tensor | number) { return F.sub(this, b); };
P.mul = function (this: Tensor, b: Tensor | number) { return F.mul(this, b); };
P.div = function (this: Tensor, b: Tensor | number) { return F.div(this, b); };
P.neg = function (this: Tensor) { return F.neg(this); };
P.exp = function (this: Tensor) { return F.exp(this); };
P.log = function (this: Tensor) { return F.log(this); };
P.sqrt = function (this: Tensor) { return F.sqrt(this); };
P.tanh = function (this: Tensor) { return F.tanh(this); };
P.sigmoid = function (this: Tensor) { return F.sigmoid(this); };
P.relu = function (this: Tensor) { return F.relu(this); };
P.square = function (this: Tensor) { return F.square(this); };
P.sum = function (this: Tensor, dim?: number, keepDim?: boolean) { return F.sum(this, dim, keepDim); };
P.mean = function (this: Tensor, dim?: number, keepDim?: boolean) { return F.mean(this, dim, keepDim); };
P.matmul = function (this: Tensor, b: Tensor, opts?: { transA?: boolean; transB?: boolean }) { return F.matmul(this, b, opts); };
P.reshape = function (this: Tensor, shape: readonly number[]) { return F.reshape(this, shape); };
P.permute = function (this: Tensor, dims: readonly number[]) { return F.permute(this, dims); };
P.transpose = function (this: Tensor, d0?: number, d1?: number) { return F.transpose(this, d0, d1); };
P.slice = function (this: Tensor, dim: number, start: number, end?: number) { return F.slice(this, dim, start, end); };
P.contiguous = function (this: Tensor) { return F.contiguous(this); };
// x.to('bf16') casts (recorded); x.to('cuda:0') / x.to('cpu') is Tensor's own move between devices
const toDevice = Tensor.prototype.to as (this: Tensor, device: string) => Tensor;
P.to = function (this: Tensor, target: string) { return target in DTYPE_SIZE ? F.cast(this, target as DType) : toDevice.call(this, target); };
P.softmax = function (this: Tensor) { return F.softmax(this); };
P.backward = function (this: Tensor, g?: Tensor<'f32'>) { backward(this, g); };

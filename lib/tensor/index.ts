export { Tensor, numelOf, contiguousStrides, type Shape, type GradNode } from './tensor.js';
export { tensor, zeros, ones, full, arange, randn, rand } from './creation.js';
export { tidy, tidyAsync, keep } from './scope.js';
export { DTYPE_SIZE, DTYPES, type DType, type DataTypeMap } from './dtype.js';
export { Storage } from './storage.js';
export { parseDevice, type Device, type DeviceKind } from './device.js';

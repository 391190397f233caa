// The CUDA backend object `native.cuda` (native/napi/cuda_ops_*.cpp), in builds with the backend.
// No GPU is needed: the op list and the checks made before any launch are host-side. What the
// kernels compute is checked on a GPU by scripts/gpu-check.sh (docs/cuda.md).
import { describe, expect, it } from 'vitest';
import { native, KERNEL_OPS, type Handle } from '../../lib/native.js';

// The ops a training step runs, all of which native/cuda implements (docs/cuda.md's table).
const CUDA_OPS = [
  'adaloraApplyPattern', 'adaloraCostThreshold', 'adaloraKthSmallest', 'adaloraMask', 'adaloraUpdateScores',
  'adamw', 'arange', 'argmax', 'attention', 'attentionBackward', 'binary', 'cast', 'copyBytes', 'copyRows', 'copyStrided',
  'countNonFinite', 'crossEntropy', 'crossEntropyBackward', 'dropout', 'dropoutBackward', 'fill', 'gatherRows', 'gemm',
  'layerNorm', 'layerNormBackward', 'loraLinearBackward',
  'lstmBackward', 'lstmForward', 'loraLinearForward', 'nf4Dequantize', 'nf4DoubleDequantize', 'nf4DoubleQuantize', 'nf4Quantize',
  'nf4Gemm', 'nf4GemmDx', 'randomNormal', 'randomUniform', 'reduce', 'rmsNorm', 'rmsNormBackward', 'rope', 'scatterAddRows',
  'softmax', 'softmaxBackward', 'sumSquares', 'unary', 'unaryBackward',
];

const host = (bytes: number): Handle => native.alloc({ bytes, zero: true });

// Valid options for each op on host storages: native.cpu runs them, native.cuda must refuse them
// (every tensor of a cuda kernel must be on a CUDA device) naming the first tensor field it reads.
function cases(): { op: string; o: Record<string, unknown>; field: string }[] {
  const b = host(1 << 16);
  const mask = host(1 << 12);
  const ids = host(64);
  return [
    { op: 'unary', o: { op: 'relu', x: b, out: b, n: 8, param: 0 }, field: 'x' },
    { op: 'gemm', o: { a: b, b, c: b, transA: false, transB: true, M: 2, N: 3, K: 4, alpha: 1, beta: 0, batch: 1, dtype: 'f32' }, field: 'c' },
    {
      op: 'loraLinearForward',
      o: { x: b, w: b, bias: null, a: b, b, y: b, xa: b, mask, M: 2, inF: 4, outF: 3, r: 2, scale: 2, wInOut: true, p: 0.1, seed: 7 },
      field: 'x',
    },
    { op: 'dropout', o: { x: b, y: b, mask, n: 16, p: 0.5, seed: 1 }, field: 'x' },
    { op: 'gatherRows', o: { table: b, idx: ids, out: b, n: 4, rowSize: 3, numRows: 5 }, field: 'table' },
    { op: 'copyStrided', o: { src: b, dst: b, elemSize: 4, shape: [2, 3], strides: [1, 2] }, field: 'src' },
    { op: 'rope', o: { x: b, out: b, positions: ids, invFreq: b, B: 1, H: 2, T: 3, D: 4, rotDim: 4, inverse: false }, field: 'x' },
    {
      op: 'attention',
      o: { q: b, k: b, v: b, out: b, lse: b, keyMask: null, B: 1, Hq: 2, Hkv: 1, Tq: 3, Tk: 3, D: 4, scale: 0.5, causal: true },
      field: 'q',
    },
    {
      op: 'adaloraUpdateScores',
      o: { a: b, ga: null, e: b, ge: null, b, gb: null, state: b, scores: null, r: 2, inF: 3, outF: 4, beta1: 0.85, beta2: 0.85, update: true },
      field: 'state',
    },
  ];
}

describe.skipIf(!native.cuda)('native.cuda (builds with the CUDA backend)', () => {
  it('has a kernel for every op of the training step, each also a native.cpu op of KERNEL_OPS', () => {
    const ops = Object.keys(native.cuda!).sort();
    expect(ops).toEqual([...CUDA_OPS].sort());
    for (const op of ops) {
      expect(KERNEL_OPS as readonly string[]).toContain(op);
      expect(typeof (native.cpu as unknown as Record<string, unknown>)[op]).toBe('function');
    }
  });

  it('refuses host tensors with ERR_DEVICE naming the field, for options native.cpu accepts', () => {
    for (const { op, o, field } of cases()) {
      const cpu = (native.cpu as unknown as Record<string, (x: unknown) => unknown>)[op];
      const cuda = (native.cuda as unknown as Record<string, (x: unknown) => unknown>)[op];
      expect(() => cpu(o), `native.cpu.${op}`).not.toThrow();
      let err: { code?: string; message?: string } | undefined;
      try {
        cuda(o);
      } catch (e) {
        err = e as { code?: string; message?: string };
      }
      expect(err?.code, `native.cuda.${op}`).toBe('ERR_DEVICE');
      expect(err?.message).toBe(`${op}: ${field} is on cpu but this is the cuda kernel (every tensor of an op must be on one device)`);
    }
  });

  it('checks options the same way as native.cpu before looking at devices', () => {
    const b = host(256);
    const cuda = native.cuda as unknown as Record<string, (x: unknown) => unknown>;
    expect(() => cuda.unary({ op: 'nope', x: b, out: b, n: 4, param: 0 })).toThrow(/unary: options.op: unknown op 'nope'/);
    expect(() => cuda.dropout({ x: b, y: b, mask: b, n: 4, p: 1, seed: 0 })).toThrow(/dropout: options.p: expected a drop probability in \[0, 1\)/);
    expect(() => cuda.rope({ x: b, out: b, positions: b, invFreq: b, B: 1, H: 1, T: 1, D: 4, rotDim: 3, inverse: false })).toThrow(
      /rope: rotDim must be even/,
    );
  });
});

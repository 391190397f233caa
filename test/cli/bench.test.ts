/**
 * The pure parts of `tunekit bench` (lib/cli/bench.ts): the --reference list, merging kernel JSON
 * lines from ours and the references, ratios and the printed table with and without a TF.js
 * column. Nothing here runs a benchmark or needs PyTorch or TensorFlow.js installed.
 */
import { describe, it, expect } from 'vitest';
import { addKernelSamples, parseReferences, ratioText, table, tfjsDescription, type Row } from '../../lib/cli/bench.js';
import { TunekitError } from '../../lib/errors.js';

describe('parseReferences', () => {
  it('accepts torch and tfjs in any order, dropping blanks and repeats', () => {
    expect(parseReferences('torch,tfjs')).toEqual(['torch', 'tfjs']);
    expect(parseReferences(' tfjs , torch,tfjs,')).toEqual(['tfjs', 'torch']);
    expect(parseReferences('')).toEqual([]);
  });
  it('names the unknown reference and the accepted ones', () => {
    expect(() => parseReferences('torch,onnx')).toThrow(TunekitError);
    expect(() => parseReferences('torch,onnx')).toThrow(/unknown reference 'onnx'.*torch, tfjs/);
  });
});

describe('addKernelSamples', () => {
  it('collects ms per kernel name across rounds and hands back the lines without a name', () => {
    const samples = new Map<string, number[]>();
    const backend = { impl: 'tfjs-wasm', backend: { version: '4.22.0', simd: true, threads: 1 } };
    const other = addKernelSamples(samples, [backend, { impl: 'tfjs-wasm', name: 'gemm', ms: 12 }, { impl: 'tfjs-wasm', name: 'softmax', ms: 1.5 }]);
    addKernelSamples(samples, [{ impl: 'tfjs-wasm', name: 'gemm', ms: 10 }]);
    expect(other).toEqual([backend]);
    expect(samples.get('gemm')).toEqual([12, 10]);
    expect(samples.get('softmax')).toEqual([1.5]);
    expect(samples.size).toBe(2);
  });
});

describe('ratioText', () => {
  it('is how many times better ours is: time ref/ours, speed ours/ref, memory ours/ref as size', () => {
    expect(ratioText(2, 5, 'ms', 'lower')).toBe('2.50x');
    expect(ratioText(300, 150, 'tokens/s', 'higher')).toBe('2.00x');
    expect(ratioText(700, 1000, 'MB', 'lower')).toBe('0.70x size');
    expect(ratioText(2, null, 'ms', 'lower')).toBe('-');
    expect(ratioText(null, 3, 'ms', 'lower')).toBe('-');
  });
});

describe('table', () => {
  const trainRow: Row = { name: 'GPT-2 124M LoRA: tokens/s', ours: 420, ref: 168, unit: 'tokens/s', better: 'higher' };
  it('keeps the ours | reference | ratio layout when no row has a TF.js figure', () => {
    const lines = table([trainRow, { name: 'kernel: softmax', ours: 0.5, ref: 1, tfjs: null, unit: 'ms', better: 'lower' }]).split('\n');
    expect(lines[0]).toBe('| measurement | ours | reference | ratio | unit |');
    expect(lines[2]).toBe('| GPT-2 124M LoRA: tokens/s | 420 | 168 | 2.50x | tokens/s |');
    expect(lines[3]).toBe('| kernel: softmax | 0.50 | 1.00 | 2.00x | ms |');
  });
  it('adds a TF.js wasm column and ratio beside PyTorch when a row has one; rows without it show -', () => {
    const lines = table([
      { name: 'kernel: gemm 512x768x3072', ours: 9.5, ref: 14.2, tfjs: 101, unit: 'ms', better: 'lower' },
      { name: 'kernel: AdamW step', ours: 3, ref: null, tfjs: 30, unit: 'ms', better: 'lower' },
      trainRow,
    ]).split('\n');
    expect(lines[0]).toBe('| measurement | ours | PyTorch | ratio | TF.js wasm | ratio | unit |');
    expect(lines[1]!.split('|').length).toBe(lines[0]!.split('|').length);
    expect(lines[2]).toBe('| kernel: gemm 512x768x3072 | 9.50 | 14.2 | 1.49x | 101 | 10.63x | ms |');
    expect(lines[3]).toBe('| kernel: AdamW step | 3.00 | - | - | 30.0 | 10.00x | ms |');
    expect(lines[4]).toBe('| GPT-2 124M LoRA: tokens/s | 420 | 168 | 2.50x | - | - | tokens/s |');
  });
});

describe('tfjsDescription', () => {
  it('says the version, SIMD and the thread count, and why one thread under Node', () => {
    expect(tfjsDescription({ version: '4.22.0', backend: 'wasm', simd: true, multithreadSupported: false, threads: 1 }))
      .toBe('TensorFlow.js 4.22.0, wasm backend (SIMD, 1 thread: tfjs-backend-wasm has no threads under Node)');
    expect(tfjsDescription({ version: '4.22.0', backend: 'wasm', simd: false, multithreadSupported: true, threads: 4 }))
      .toBe('TensorFlow.js 4.22.0, wasm backend (no SIMD, 4 threads)');
    expect(tfjsDescription(null)).toBe('TensorFlow.js, wasm backend');
  });
});

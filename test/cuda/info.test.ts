// The CUDA backend's status as the addon reports it. CI machines (and the development machine)
// have nvcc but no GPU: the addon must load, say why there is no device, and still run CPU ops.
import { describe, expect, it } from 'vitest';
import { ops, tensor } from '../../lib/index.js';
import { native } from '../../lib/native.js';

describe('cudaInfo', () => {
  it('reports compiled / devices / reason without throwing', () => {
    const info = native.cudaInfo();
    expect(typeof info.compiled).toBe('boolean');
    expect(Number.isInteger(info.devices)).toBe(true);
    expect(info.devices).toBeGreaterThanOrEqual(0);
    expect(typeof info.reason).toBe('string');
    if (info.devices === 0) {
      expect(info.reason.length).toBeGreaterThan(0);
      if (info.compiled) expect(info.reason).toMatch(/^no CUDA device: /);
    } else {
      expect(info.reason).toBe('');
      expect(typeof info.name).toBe('string');
    }
  });

  it('is stable across calls and leaves the CPU backend working', () => {
    const a = native.cudaInfo();
    const b = native.cudaInfo();
    expect(b).toEqual(a);
    expect(['avx512', 'avx2', 'portable']).toContain(native.gemmKernelName());
    expect(native.backendInfo()).toBeTruthy();
    const y = ops.matmul(tensor([[1, 2], [3, 4]]), tensor([[5, 6], [7, 8]]));
    expect(Array.from(y.data())).toEqual([19, 22, 43, 50]);
  });
});

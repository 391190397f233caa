/**
 * The kernel table calls kernels by position (native.kernelSchema: the field names once, then
 * k(id, v0, v1, ...)) instead of with an options object: the same fields read by name on the C++
 * side, without ~80 ns of property reads per field. Both forms give the same results and the
 * same typed errors; layouts are shared by content; a bad id or value count is refused.
 */
import { describe, it, expect } from 'vitest';
import '../../lib/index.js';
import { native } from '../../lib/native.js';
import { tensor } from '../../lib/tensor/creation.js';
import { Tensor } from '../../lib/tensor/tensor.js';
import { run } from '../../lib/tensor/kernels.js';

const fields = ['op', 'x', 'xOff', 'out', 'outOff', 'n', 'param'];

describe('kernel options by position', () => {
  it('the same names give the same id; another order another id', () => {
    const a = native.kernelSchema(fields), b = native.kernelSchema([...fields]);
    expect(b).toBe(a);
    expect(native.kernelSchema([...fields].reverse())).not.toBe(a);
    expect(() => native.kernelSchema([1 as unknown as string])).toThrow(/kernelSchema: field 0 is not a string/);
  });

  it('a kernel reads the same fields by position as from an object, in any order', () => {
    const x = tensor([-2, -1, 0, 1, 2, 3, 4]), y1 = Tensor.empty([7], 'f32'), y2 = Tensor.empty([7], 'f32'), y3 = Tensor.empty([7], 'f32');
    native.cpu.unary({ op: 'relu', x: x.handle, xOff: 4, out: y1.handle, outOff: 0, n: 6, param: 0 });
    const id = native.kernelSchema(fields);
    (native.cpu.unary as unknown as (...v: unknown[]) => void)(id, 'relu', x.handle, 4, y2.handle, 0, 6, 0);
    const rev = native.kernelSchema([...fields].reverse());
    (native.cpu.unary as unknown as (...v: unknown[]) => void)(rev, 0, 6, 0, y3.handle, 4, x.handle, 'relu');
    // n = 6 from element 1 (byte offset 4): the first six outputs
    for (const y of [y1, y2, y3]) expect(Array.from(y.data()).slice(0, 6)).toEqual([0, 0, 1, 2, 3, 4]);
  });

  it('bad ids, counts and values are typed errors naming the op and the field', () => {
    const x = tensor([1, 2, 3]), y = Tensor.empty([3], 'f32');
    const k = native.cpu.unary as unknown as (...v: unknown[]) => void;
    const id = native.kernelSchema(fields);
    expect(() => k(1e9, 'relu')).toThrow(/unary: unknown options schema/);
    expect(() => k(id, 'relu', x.handle, 0)).toThrow(/unary: options schema \d+ has 7 fields but the call passed 3 values/);
    expect(() => k(id, 'relu', x.handle, 0, y.handle, 0, -1, 0)).toThrow(/unary: options.n: expected an integer >= 0 but received -1/);
    expect(() => k(id, 'nope', x.handle, 0, y.handle, 0, 3, 0)).toThrow(/unary: options.op: unknown op 'nope'/);
    expect(() => k(id, 'relu', x.handle, 0, y.handle, 0, 4, 0)).toThrow(/needs bytes \[0, 16\) but its storage holds 12/);
    expect(() => k(id, 'relu', x.handle, 0.5, y.handle, 0, 3, 0)).toThrow(/xOff: expected an integer byte offset/);
  });

  it('run() switches layouts when optional fields come and go, or a tensor field is null', () => {
    // loraLinearForward with and without bias / mask: four layouts of one op, each right
    const M = 3, inF = 5, outF = 4, r = 2;
    const x = tensor(Array.from({ length: M * inF }, (_, i) => (i % 7) - 3), [M, inF]);
    const w = tensor(Array.from({ length: outF * inF }, (_, i) => ((i * 3) % 5) - 2), [outF, inF]);
    const a = tensor(Array.from({ length: r * inF }, (_, i) => (i % 3) - 1), [r, inF]), b = tensor(Array.from({ length: outF * r }, (_, i) => i - 3), [outF, r]);
    const bias = tensor([1, 2, 3, 4]);
    const go = (withBias: boolean) => {
      const y = Tensor.empty([M, outF], 'f32'), xa = Tensor.empty([M, r], 'f32');
      run('loraLinearForward', { x, w, bias: withBias ? bias : null, a, b, y, xa, mask: null, M, inF, outF, r, scale: 0.5, wInOut: false, p: 0, seed: 1 });
      return Array.from(y.data());
    };
    const plain = go(false), biased = go(true), again = go(false);
    expect(again).toEqual(plain);
    expect(biased.map((v, i) => v - plain[i]!)).toEqual(Array.from({ length: M * outF }, (_, i) => [1, 2, 3, 4][i % outF]));
  });
});

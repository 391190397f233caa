/**
 * Bad inputs to the differentiable ops give a TunekitError with a stable code and a message that
 * names what was expected and what was received (DESIGN.md, decision 7).
 */
import { describe, it, expect } from 'vitest';
import { Tensor, TunekitError, tensor, zeros, ops as F, backward, tidy, randn } from '../../lib/index.js';

/** Runs fn and returns the TunekitError it throws (failing if it throws anything else or nothing). */
function errorOf(fn: () => unknown): TunekitError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(TunekitError);
    return e as TunekitError;
  }
  return expect.fail('expected a TunekitError but nothing was thrown');
}

/** The error has `code` and its message matches every pattern (expected and received parts). */
function expectError(fn: () => unknown, code: string, ...patterns: RegExp[]): void {
  const e = errorOf(fn);
  expect(e.code, e.message).toBe(code);
  for (const p of patterns) expect(e.message).toMatch(p);
}

const r = (shape: number[], seed = 1) => randn(shape, { seed });
const ids = (v: number[], shape = [v.length]) => tensor(new Int32Array(v), shape, 'i32');

describe('op errors', () => {
  it('shape mismatches name both shapes', () => {
    tidy(() => {
      expectError(() => F.matmul(r([2, 3]), r([4, 5])), 'ERR_SHAPE', /\[2,3\]/, /\[4,5\]/, /3 vs 4/);
      expectError(() => F.matmul(r([2, 2, 3]), r([3, 3, 5])), 'ERR_SHAPE', /\[2,2,3\]/, /\[3,3,5\]/);
      expectError(() => F.matmul(r([3]), r([3, 2])), 'ERR_SHAPE', /\[3\]/, /\[3,2\]/);
      expectError(() => F.linear(r([2, 3]), r([4, 5]), null), 'ERR_SHAPE', /input \[2,3\]/, /weight \[4,5\]/, /out, in/);
      expectError(() => F.linear(r([2, 4]), r([5, 4]), null, true), 'ERR_SHAPE', /in, out/);
      expectError(() => F.linear(r([2, 5]), r([4, 5]), r([3])), 'ERR_SHAPE', /bias has 3 elements, expected 4/);
      expectError(() => F.add(r([2, 3]), r([4])), 'ERR_SHAPE', /\[2,3\]/, /\[4\]/, /3 vs 4/);
      expectError(() => F.mul(r([7, 2, 5]), r([3, 1])), 'ERR_SHAPE', /\[7,2,5\]/, /\[3,1\]/);
      expectError(() => F.reshape(r([2, 3]), [4, 2]), 'ERR_SHAPE', /\[2,3\]/, /\[4,2\]/);
      expectError(() => F.permute(r([2, 3]), [0, 0]), 'ERR_SHAPE', /permutation of 2 dims/, /\[0,0\]/);
      expectError(() => F.concat([r([2, 3]), r([3, 4])], 0), 'ERR_SHAPE', /\[2,3\]/, /\[3,4\]/);
      expectError(() => F.layerNorm(r([2, 5]), r([4]), r([5]), 1e-5), 'ERR_SHAPE', /5 elements/, /4\/5/);
      expectError(() => F.crossEntropy(r([3, 5]), ids([1, 2])), 'ERR_SHAPE', /3 rows/, /2 labels/);
      expectError(() => F.attention(r([1, 2, 3, 4]), r([1, 2, 3, 5]), r([1, 2, 3, 5]), { causal: false }), 'ERR_SHAPE', /\[1,2,3,4\]/, /\[1,2,3,5\]/);
      expectError(() => F.attention(r([1, 3, 2, 4]), r([1, 2, 2, 4]), r([1, 2, 2, 4]), { causal: false }), 'ERR_SHAPE', /Hq \(3\).*Hkv \(2\)/);
      expectError(() => F.attention(r([1, 1, 4, 4]), r([1, 1, 2, 4]), r([1, 1, 2, 4]), { causal: true }), 'ERR_SHAPE', /Tq <= Tk/, /Tq=4 Tk=2/);
      expectError(() => F.attention(r([1, 1, 2, 4]), r([1, 1, 2, 4]), r([1, 1, 2, 4]), { causal: false, keyMask: ids([1, 1, 1], [1, 3]) }), 'ERR_SHAPE', /keyMask \[B, Tk\] = \[1,2\]/, /\[1,3\]/);
      expectError(() => F.rope(r([1, 2, 3, 4]), ids([0, 1], [1, 2]), tensor([1, 0.1])), 'ERR_SHAPE', /positions \[B, T\]/, /positions \[1,2\]/);
      expectError(() => F.loraLinear(r([2, 6]), r([5, 6]), null, r([2, 6]), r([5, 3]), { scale: 1 }), 'ERR_SHAPE', /B \[5,3\]/, /r 2/);
      expectError(() => F.embedding(r([4]), ids([0])), 'ERR_SHAPE', /table \[N, C\]/, /\[4\]/);
    });
  });

  it('wrong dtypes name the expected and the received dtype', () => {
    tidy(() => {
      const i = ids([1, 2, 3]);
      expectError(() => F.add(i, r([3])), 'ERR_DTYPE', /add left operand to be f32 but received i32/);
      expectError(() => F.exp(i), 'ERR_DTYPE', /exp input to be f32 but received i32/);
      expectError(() => F.matmul(r([2, 3]), zeros([3, 2], 'i32')), 'ERR_DTYPE', /f32 or two bf16/, /f32 and i32/);
      expectError(() => F.softmax(tensor([1, 2], [2], 'bf16')), 'ERR_DTYPE', /f32 but received bf16/);
      expectError(() => F.layerNorm(i, r([3]), r([3]), 1e-5), 'ERR_DTYPE', /layerNorm input to be f32 but received i32/);
      expectError(() => F.rmsNorm(r([2, 3]), tensor([1, 1, 1], [3], 'f16'), 1e-5), 'ERR_DTYPE', /rmsNorm weight to be f32 but received f16/);
      expectError(() => F.embedding(r([4, 2]), r([2]) as unknown as Tensor<'i32'>), 'ERR_DTYPE', /embedding ids to be i32 but received f32/);
      expectError(() => F.crossEntropy(r([2, 3]), r([2]) as unknown as Tensor<'i32'>), 'ERR_DTYPE', /labels to be i32 but received f32/);
      expectError(() => F.crossEntropy(zeros([2, 3], 'i32'), ids([0, 1])), 'ERR_DTYPE', /logits to be f32 but received i32/);
      expectError(() => F.attention(r([1, 1, 2, 4]), zeros([1, 1, 2, 4], 'i32'), r([1, 1, 2, 4]), { causal: true }), 'ERR_DTYPE', /attention k to be f32 but received i32/);
      expectError(() => F.rope(r([1, 1, 2, 4]), r([1, 2]) as unknown as Tensor<'i32'>, tensor([1, 0.1])), 'ERR_DTYPE', /rope positions to be i32 but received f32/);
      expectError(() => F.gatherRows(zeros([3, 2], 'i32'), ids([0])), 'ERR_DTYPE', /gatherRows input to be f32 but received i32/);
      expectError(() => backward(F.sum(Object.assign(r([2]), { requiresGrad: true })), zeros([], 'i32') as unknown as Tensor<'f32'>), 'ERR_DTYPE', /f32 gradOutput but received i32/);
    });
  });

  it('indices out of range are ERR_INDEX from the native bounds checks', () => {
    tidy(() => {
      expectError(() => F.embedding(r([4, 3]), ids([0, 9])), 'ERR_INDEX', /id 9/, /\[0, 4\)/);
      expectError(() => F.embedding(r([4, 3]), ids([-1])), 'ERR_INDEX', /id -1/, /\[0, 4\)/);
      expectError(() => F.gatherRows(r([4, 3]), ids([4])), 'ERR_INDEX', /id 4/, /\[0, 4\)/);
      expectError(() => F.crossEntropy(r([2, 3]), ids([0, 7])), 'ERR_INDEX', /label 7/, /\[0, 3\)/, /ignore index -100/);
      expectError(() => F.crossEntropy(r([2, 3]), ids([-1, 0])), 'ERR_INDEX', /label -1/);
      expectError(() => F.slice(r([3, 5]), 1, 4, 2), 'ERR_INDEX', /\[4, 2\)/, /dimension 1 of size 5/);
      expectError(() => F.slice(r([3, 5]), 0, -9), 'ERR_INDEX', /-9/, /size 3/);
      expectError(() => F.sum(r([2, 3]), 2), 'ERR_INDEX', /\[-2, 2\)/, /received 2/);
      expectError(() => F.transpose(r([2, 3]), 0, 5), 'ERR_INDEX', /received 5/);
    });
  });

  it('a disposed tensor is ERR_DISPOSED, naming it', () => {
    const x = r([2, 2]);
    x.name = 'layer.0.weight';
    x.dispose();
    expectError(() => F.exp(x), 'ERR_DISPOSED', /layer\.0\.weight/, /after dispose/);
    expectError(() => F.matmul(x, r([2, 2])), 'ERR_DISPOSED', /after dispose/);
    expectError(() => x.toArray(), 'ERR_DISPOSED');
  });

  it('backward misuse: non-scalar without gradOutput, nothing requires grad, wrong gradOutput shape', () => {
    tidy(() => {
      const x = r([2, 3]);
      x.requiresGrad = true;
      const y = F.scale(x, 2);
      expectError(() => y.backward(), 'ERR_SHAPE', /scalar loss/, /\[2,3\]/, /gradOutput/);
      expectError(() => backward(y, zeros([3, 2])), 'ERR_SHAPE', /gradOutput of shape \[2,3\]/, /received \[3,2\]/);
      expect(y.gradFn).not.toBeNull(); // refused before anything was consumed
      expect(x.grad).toBeNull();
      const frozen = F.sum(F.exp(r([4])));
      expectError(() => frozen.backward(), 'ERR_VALUE', /does not depend on anything that requires grad/);
      expectError(() => backward(r([1])), 'ERR_VALUE', /requires grad/);
    });
  });

  it('value errors: dropout p outside [0, 1), binary op of two numbers', () => {
    tidy(() => {
      expectError(() => F.dropout(r([3]), 1.5, 1), 'ERR_VALUE', /\[0, 1\)/, /1\.5/);
      expectError(() => F.dropout(r([3]), -0.1, 1), 'ERR_VALUE', /-0\.1/);
      expectError(() => F.add(1, 2), 'ERR_VALUE', /at least one tensor/);
    });
  });
});

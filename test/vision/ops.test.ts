/**
 * conv2d, batch norm and pooling against PyTorch (float64 from the same f32 inputs): outputs,
 * input/weight/bias gradients through the tape, the running statistics batch norm leaves, and the
 * fast kernels against the plain reference ones. The float64 finite-difference checks of every
 * backward kernel are native (native/tests/test_vision.cpp); here the autograd wiring is checked.
 */
import { describe, it, expect } from 'vitest';
import { tensor, ops as F, tidy, Tensor, TunekitError } from '../../lib/index.js';
import { OP_TOL } from '../tolerances.js';
import { readJson, worstRatio } from './helpers.js';

const fixture = readJson<{ cases: any[] }>('ops.json');
const TOL = OP_TOL.vision;

function leaf(values: number[], shape: number[]): Tensor {
  const t = tensor(new Float32Array(values), shape);
  t.requiresGrad = true;
  return t;
}

function arr(t: Tensor): number[] {
  return Array.from(t.contiguousRaw().data() as Float32Array);
}

/** backward of sum(y * g) for the fixture's upstream gradient g */
function backwardWith(y: Tensor, g: number[]): void {
  F.sum(F.mul(y, tensor(new Float32Array(g), [...y.shape]))).backward();
}

function run(c: any, reference: boolean): Record<string, number[]> {
  const go = () => tidy(() => {
    const x = leaf(c.x, [c.N, c.C, c.H, c.W]);
    const out: Record<string, number[]> = {};
    let y: Tensor;
    const extra: [string, Tensor][] = [];
    if (c.op === 'conv2d') {
      const w = leaf(c.w, [c.O, c.C / c.groups, ...c.K]);
      const b = c.b ? leaf(c.b, [c.O]) : null;
      y = F.conv2d(x, w, b, { stride: c.stride, padding: c.padding, dilation: c.dilation, groups: c.groups });
      extra.push(['dw', w]);
      if (b) extra.push(['db', b]);
    } else if (c.op === 'batch_norm') {
      const w = leaf(c.w, [c.C]), b = leaf(c.b, [c.C]);
      const rm = tensor(new Float32Array(c.running_mean), [c.C]), rv = tensor(new Float32Array(c.running_var), [c.C]);
      y = F.batchNorm2d(x, w, b, rm, rv, { training: c.training, momentum: 0.1, eps: 1e-5 });
      out.running_mean_after = arr(rm);
      out.running_var_after = arr(rv);
      extra.push(['dw', w], ['db', b]);
    } else if (c.op === 'max_pool2d') {
      y = F.maxPool2d(x, { kernelSize: c.k, stride: c.s, padding: c.p, dilation: c.d });
    } else if (c.op === 'avg_pool2d') {
      y = F.avgPool2d(x, { kernelSize: c.k, stride: c.s, padding: c.p, countIncludePad: c.count_include_pad });
    } else {
      y = F.adaptiveAvgPool2d(x, [c.ho, c.wo]);
    }
    out.y = arr(y);
    backwardWith(y, c.g);
    out.dx = arr(x.grad!);
    for (const [name, t] of extra) out[name] = arr(t.grad!);
    return out;
  });
  return reference ? F.withReferenceVisionKernels(go) : go();
}

describe('vision ops match PyTorch', () => {
  for (const [i, c] of fixture.cases.entries()) {
    const label = `${c.op} #${i} [${c.N}, ${c.C}, ${c.H}, ${c.W}]${c.groups ? ` groups ${c.groups}` : ''}${c.training === false ? ' eval' : ''}`;
    it(label, () => {
      const got = run(c, false);
      for (const key of ['y', 'dx', 'dw', 'db', 'running_mean_after', 'running_var_after']) {
        if (c[key] === undefined || c[key] === null) continue;
        expect(worstRatio(got[key]!, c[key], TOL.atol, TOL.rtol), `${key}`).toBeLessThanOrEqual(1);
      }
      // the fast kernels agree with the plain reference ones
      const ref = run(c, true);
      for (const key of Object.keys(got)) expect(worstRatio(got[key]!, ref[key]!, TOL.atol, TOL.rtol), `reference ${key}`).toBeLessThanOrEqual(1);
    });
  }
});

describe('vision ops refuse bad input by name', () => {
  const img = () => tensor(new Float32Array(2 * 3 * 4 * 4), [2, 3, 4, 4]);
  const code = (fn: () => unknown) => {
    try {
      tidy(() => void fn());
    } catch (e) {
      return e instanceof TunekitError ? `${e.code}: ${e.message}` : `not a TunekitError: ${String(e)}`;
    }
    return 'no error';
  };
  it('conv2d: channel mismatch, kernel larger than the image, bad groups, 3-D input', () => {
    expect(code(() => F.conv2d(img(), tensor(new Float32Array(5 * 2 * 3 * 3), [5, 2, 3, 3]), null))).toMatch(/^ERR_SHAPE: conv2d: input has 3 channels/);
    expect(code(() => F.conv2d(img(), tensor(new Float32Array(5 * 3 * 5 * 5), [5, 3, 5, 5]), null))).toMatch(/^ERR_SHAPE: .*smaller than the 5x5 kernel/);
    expect(code(() => F.conv2d(img(), tensor(new Float32Array(4 * 3 * 1 * 1), [4, 3, 1, 1]), null, { groups: 0 }))).toMatch(/^ERR_VALUE: .*groups/);
    expect(code(() => F.conv2d(tensor(new Float32Array(12), [3, 2, 2]), tensor(new Float32Array(4), [1, 1, 2, 2]), null))).toMatch(/^ERR_SHAPE: .*4-D/);
    expect(code(() => F.conv2d(img(), tensor(new Float32Array(4 * 3), [4, 3, 1, 1]), null, { stride: 0 }))).toMatch(/^ERR_VALUE: .*stride/);
  });
  it('pooling: padding over half the kernel, window larger than the image; batch norm of one value per channel', () => {
    expect(code(() => F.maxPool2d(img(), { kernelSize: 2, padding: 2 }))).toMatch(/^ERR_VALUE: .*half the kernel/);
    expect(code(() => F.avgPool2d(img(), { kernelSize: 5 }))).toMatch(/^ERR_SHAPE: .*smaller than the 5x5 window/);
    const one = tensor(new Float32Array(3), [1, 3, 1, 1]);
    expect(code(() => F.batchNorm2d(one, null, null, null, null, { training: true }))).toMatch(/^ERR_VALUE: .*more than one value per channel/);
    expect(code(() => F.batchNorm2d(one, null, null, null, null, { training: false }))).toMatch(/^ERR_VALUE: .*running_mean/);
  });
});

describe('fused LoRA convolution', () => {
  it('equals conv2d(x, W) + scale * conv2d(conv2d(x, A), B): values and the gradients of x, A and B', () => {
    const run = (fused: boolean) => tidy(() => {
      const x = F.contiguous(tensor(Float32Array.from({ length: 2 * 3 * 9 * 8 }, (_, i) => Math.sin(i * 0.31)), [2, 3, 9, 8]));
      x.requiresGrad = true;
      const w = tensor(Float32Array.from({ length: 5 * 3 * 3 * 3 }, (_, i) => Math.cos(i * 0.7) * 0.4), [5, 3, 3, 3]);
      const bias = tensor(Float32Array.from([0.1, -0.2, 0.3, 0, 0.5]), [5]);
      const a = leaf(Array.from({ length: 4 * 3 * 3 * 3 }, (_, i) => Math.sin(i * 1.3) * 0.3), [4, 3, 3, 3]);
      const b = leaf(Array.from({ length: 5 * 4 }, (_, i) => Math.cos(i * 0.9) * 0.5), [5, 4, 1, 1]);
      const opts = { stride: 2, padding: 1 };
      const y = fused ? F.loraConv2d(x, w, bias, a, b, 1.5, opts) : F.add(F.conv2d(x, w, bias, opts), F.scale(F.conv2d(F.conv2d(x, a, null, opts), b, null), 1.5));
      backwardWith(y, Array.from({ length: y.numel }, (_, i) => Math.sin(i * 0.17)));
      return { y: arr(y), dx: arr(x.grad!), da: arr(a.grad!), db: arr(b.grad!) };
    });
    const f = run(true), c = run(false);
    for (const k of ['y', 'dx', 'da', 'db'] as const) expect(worstRatio(f[k], c[k], TOL.atol, TOL.rtol), k).toBeLessThanOrEqual(1);
  });
  it('refuses a trained base weight (its gradient is not computed)', () => {
    const w = leaf(new Array(4 * 3).fill(0.1), [4, 3, 1, 1]);
    expect(() => F.loraConv2d(tensor(new Float32Array(3 * 4), [1, 3, 2, 2]), w, null, tensor(new Float32Array(3), [1, 3, 1, 1]), tensor(new Float32Array(4), [4, 1, 1, 1]), 1)).toThrow(/base weight and bias must be frozen/);
  });
});

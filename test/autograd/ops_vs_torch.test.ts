/**
 * Every differentiable op against PyTorch (float64), forward and input gradients.
 *
 * test/fixtures/ops/ops.json (scripts/fixtures/make_op_fixtures.py) holds, per case, f32 inputs,
 * torch's output and the gradients of L = sum(out * w) for fixed loss weights w. Here each case
 * runs through tunekit in f32 and `backward(out, w)` (which is d L / d out = w); the tolerance of
 * each case's `kind` is in test/tolerances.ts. Ops whose behaviour has no torch counterpart
 * (dropout's RNG, an all-ignored cross-entropy batch) are checked at the end by their definition.
 */
import { describe, it, expect, afterAll } from 'vitest';
import { Tensor, tensor, ops, backward, tidy, ones, randn, type DType } from '../../lib/index.js';
import { native } from '../../lib/native.js';
import { OP_TOL, DROPOUT_SIGMAS, type OpKind } from '../tolerances.js';
import { loadOpsFixture, f32FromBase64, lossWeights, expectClose, printReports, type FixtureCase } from './helpers.js';

const F = ops;
type T = Tensor;

const fixture = loadOpsFixture();

function makeInput(i: FixtureCase['inputs'][number]): T {
  if (i.dtype === 'i32') return tensor(new Int32Array(i.data as number[]), i.shape, 'i32');
  const t = tensor(f32FromBase64(i.data as string), i.shape, 'f32');
  t.requiresGrad = i.grad;
  t.name = i.name;
  return t;
}

/** Applies the case's `pre` steps (recorded view ops, so gradients flow back through them). */
function applyPre(x: T, pre: unknown[][] | undefined): T {
  let cur = x;
  for (const step of pre ?? []) {
    const [kind, ...args] = step as [string, ...any[]];
    if (kind === 'transpose') cur = F.transpose(cur, args[0], args[1]);
    else if (kind === 'slice') cur = F.slice(cur, args[0], args[1], args[2]);
    else if (kind === 'permute') cur = F.permute(cur, args[0]);
    else throw new Error(`unknown pre step ${kind}`);
  }
  return cur;
}

const UNARY: Record<string, (x: T) => T> = {
  neg: F.neg, exp: F.exp, log: F.log, sqrt: F.sqrt, rsqrt: F.rsqrt, abs: F.abs, tanh: F.tanh,
  sigmoid: F.sigmoid, relu: F.relu, silu: F.silu, square: F.square, logSigmoid: F.logSigmoid,
  softmax: (x) => F.softmax(x), logSoftmax: F.logSoftmax, contiguous: F.contiguous,
};

/** The tunekit call for a fixture op; xs in the fixture's input order. */
function runOp(c: FixtureCase, xs: T[]): T {
  const p = c.params;
  const [a, b] = xs as [T, T];
  switch (c.op) {
    case 'add': case 'sub': case 'mul': case 'div': {
      const f = F[c.op];
      if (p.scalarLeft !== undefined) return f(p.scalarLeft as number, a);
      if (p.scalarRight !== undefined) return f(a, p.scalarRight as number);
      return f(a, b);
    }
    case 'gelu': return F.gelu(a, p.approximate);
    case 'scale': return F.scale(a, p.s);
    case 'addScalar': return F.addScalar(a, p.s);
    case 'pow': return F.pow(a, p.p);
    case 'maximum': return F.maximum(a, b);
    case 'minimum': return F.minimum(a, b);
    case 'clamp': return F.clamp(a, p.lo, p.hi);
    case 'sum': return F.sum(a, p.dim ?? undefined, p.keepDim ?? false);
    case 'mean': return F.mean(a, p.dim ?? undefined, p.keepDim ?? false);
    case 'reshape': return F.reshape(a, p.shape);
    case 'permute': return F.permute(a, p.dims);
    case 'transpose': return F.transpose(a, p.d0, p.d1);
    case 'slice': return F.slice(a, p.dim, p.start, p.end ?? undefined);
    case 'concat': return F.concat(xs, p.dim);
    case 'cast': return F.cast(F.cast(a, p.dtype as DType), 'f32');
    case 'matmul': return F.matmul(a, b, { transA: p.transA ?? false, transB: p.transB ?? false });
    case 'linear': return F.linear(a, b, p.bias ? xs[2]! : null, p.wInOut);
    case 'loraLinear': {
      const [A, B] = xs.slice(-2) as [T, T];
      return F.loraLinear(a, b, p.bias ? xs[2]! : null, A, B, { scale: p.scale, wInOut: p.wInOut, dropout: 0 });
    }
    case 'layerNorm': return F.layerNorm(a, b, xs[2]!, p.eps);
    case 'rmsNorm': return F.rmsNorm(a, b, p.eps);
    case 'embedding': return F.embedding(b, a as Tensor<'i32'>);
    case 'gatherRows': return F.gatherRows(a, b as Tensor<'i32'>);
    case 'crossEntropy': return F.crossEntropy(a, b as Tensor<'i32'>);
    case 'attention':
      return F.attention(a, b, xs[2]!, { causal: p.causal, keyMask: p.keyMask ? (xs[3] as Tensor<'i32'>) : null, scale: p.scale });
    case 'rope': return F.rope(a, b as Tensor<'i32'>, xs[2] as Tensor<'f32'>, p.rotDim);
    default: {
      const f = UNARY[c.op];
      if (!f) throw new Error(`no tunekit mapping for fixture op '${c.op}'`);
      return f(a);
    }
  }
}

describe('ops vs PyTorch (float64 oracle)', () => {
  afterAll(() => printReports('ops vs torch: error per case (fraction of the tolerance used)'));

  it('the fixture covers every differentiable op of ops.ts', () => {
    const seen = new Set(fixture.cases.map((c) => c.op));
    const wanted = ['add', 'sub', 'mul', 'div', 'neg', 'exp', 'log', 'sqrt', 'rsqrt', 'abs', 'tanh', 'sigmoid', 'relu', 'silu',
      'square', 'gelu', 'scale', 'addScalar', 'pow', 'logSigmoid', 'maximum', 'minimum', 'clamp', 'sum', 'mean', 'reshape',
      'permute', 'transpose', 'slice', 'concat', 'contiguous', 'cast', 'matmul', 'linear', 'loraLinear', 'softmax', 'logSoftmax',
      'layerNorm', 'rmsNorm', 'embedding', 'gatherRows', 'crossEntropy', 'attention', 'rope'];
    expect(wanted.filter((w) => !seen.has(w))).toEqual([]);
    expect(fixture.versions.torch).toMatch(/^2\./);
  });

  for (const c of fixture.cases) {
    it(`${c.op}: ${c.name}`, () => {
      const tol = OP_TOL[c.kind as OpKind];
      expect(tol, `tolerance kind '${c.kind}'`).toBeDefined();
      tidy(() => {
        const leaves = c.inputs.map(makeInput);
        const xs = [applyPre(leaves[0]!, c.params.pre), ...leaves.slice(1)];
        const out = runOp(c, xs);
        expect(out.shape).toEqual(c.out.shape);
        expectClose(out.toArray(), f32FromBase64(c.out.data), tol, `${c.name} out`);
        const w = tensor(lossWeights(out.numel, c.wSeed), out.shape, 'f32');
        backward(out, w);
        c.inputs.forEach((inp, k) => {
          const leaf = leaves[k]!;
          const want = c.grads[inp.name];
          if (!want) {
            expect(leaf.grad, `${inp.name} is frozen or an index: no gradient`).toBeNull();
            return;
          }
          expect(leaf.grad, `gradient of ${inp.name}`).not.toBeNull();
          expect(leaf.grad!.shape).toEqual(inp.shape);
          expectClose(leaf.grad!.toArray(), f32FromBase64(want), tol, `${c.name} d/d${inp.name}`);
        });
      });
    });
  }
});

describe('documented departures from torch', () => {
  it('crossEntropy of an all-ignored batch is 0 with zero gradients (torch gives NaN)', () => {
    tidy(() => {
      const logits = randn([3, 7], { seed: 5 });
      logits.requiresGrad = true;
      const loss = F.crossEntropy(logits, tensor([-100, -100, -100], [3], 'i32'));
      expect(loss.item()).toBe(0);
      loss.backward();
      expect(logits.grad!.toArray().every((v) => v === 0)).toBe(true);
      // a custom ignore index is honoured the same way
      const l2 = F.crossEntropy(logits, tensor([2, 2, 2], [3], 'i32'), 2);
      expect(l2.item()).toBe(0);
    });
  });

  it('attention: a query whose keys are all masked gives 0 and finite gradients', () => {
    tidy(() => {
      const q = randn([1, 1, 2, 4], { seed: 1 }), k = randn([1, 1, 2, 4], { seed: 2 }), v = randn([1, 1, 2, 4], { seed: 3 });
      for (const t of [q, k, v]) t.requiresGrad = true;
      const out = F.attention(q, k, v, { causal: true, keyMask: tensor([0, 1], [1, 2], 'i32') });
      const o = out.toArray();
      expect(o.slice(0, 4)).toEqual([0, 0, 0, 0]); // query 0 sees only key 0, which is masked
      expect(o.slice(4, 8)).toEqual(v.toArray().slice(4, 8).map((x) => expect.closeTo(x, 6))); // query 1 sees only key 1
      out.backward(ones([1, 1, 2, 4]));
      for (const t of [q, k, v]) expect(t.grad!.toArray().every(Number.isFinite)).toBe(true);
      expect(q.grad!.toArray().slice(0, 4)).toEqual([0, 0, 0, 0]);
    });
  });
});

describe('dropout (its RNG is not torch\'s: checked by definition)', () => {
  const n = 100_003;
  it.each([0.1, 0.5, 0.9])('p = %f: kept fraction ~ 1 - p, kept values scaled by 1 / (1 - p), gradient = mask / (1 - p)', (p) => {
    tidy(() => {
      const x = randn([n], { seed: 11 });
      x.requiresGrad = true;
      const y = F.dropout(x, p, 1234);
      const xv = x.toArray(), yv = y.toArray();
      let kept = 0, bad = 0;
      for (let i = 0; i < n; i++) {
        if (yv[i] === 0) continue;
        kept++;
        if (Math.abs(yv[i]! - xv[i]! / (1 - p)) > 1e-6 * Math.abs(yv[i]!)) bad++;
      }
      expect(bad).toBe(0);
      const sigma = Math.sqrt(n * p * (1 - p));
      expect(Math.abs(kept - n * (1 - p))).toBeLessThan(DROPOUT_SIGMAS * sigma);
      const g = randn([n], { seed: 12 });
      y.backward(g);
      const gv = g.toArray(), dx = x.grad!.toArray();
      for (let i = 0; i < n; i += 97) {
        const want = yv[i] === 0 ? 0 : gv[i]! / (1 - p);
        expect(Math.abs(dx[i]! - want)).toBeLessThanOrEqual(1e-6 * Math.abs(want));
      }
    });
  });

  it('is deterministic per seed, independent of the thread count, and differs across seeds', () => {
    tidy(() => {
      const x = randn([4099], { seed: 3 });
      const a = F.dropout(x, 0.3, 7).toArray();
      const prev = native.getNumThreads();
      native.setNumThreads(1);
      let b: number[];
      try {
        b = F.dropout(x, 0.3, 7).toArray();
      } finally {
        native.setNumThreads(prev);
      }
      expect(b).toEqual(a);
      const c = F.dropout(x, 0.3, 8).toArray();
      expect(c).not.toEqual(a);
      // neighbouring seeds give uncorrelated masks: agreement ~ p^2 + (1-p)^2 = 0.58
      let same = 0;
      for (let i = 0; i < a.length; i++) if ((a[i] === 0) === (c[i] === 0)) same++;
      expect(same / a.length).toBeGreaterThan(0.5);
      expect(same / a.length).toBeLessThan(0.66);
    });
  });

  it('p = 0 or eval mode is the identity (same tensor, nothing recorded); p >= 1 is refused', () => {
    const x = randn([5], { seed: 1 });
    expect(F.dropout(x, 0, 1)).toBe(x);
    expect(F.dropout(x, 0.5, 1, false)).toBe(x);
    expect(() => F.dropout(x, 1, 1)).toThrow(expect.objectContaining({ code: 'ERR_VALUE' }));
    x.dispose();
  });
});

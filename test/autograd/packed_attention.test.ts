/**
 * Attention on token-major rows (the CPU's attentionRows kernel) against the head-major path it
 * replaced, and padded batches packed without their padding against the padded computation:
 *  - qkvAttention through the rows kernel equals the split-heads + attention + merge-heads path
 *    (what the CUDA backend still runs), forward and gradient, with key padding, causal or not;
 *  - packedQkvAttention on the real rows of a padded batch equals qkvAttention on the padded batch
 *    at those rows, forward and gradient;
 *  - a GPT-2 (the transformers fixture) on padded and unpadded batches: logits, hidden states and
 *    every parameter's gradient equal with the packing (and sequence classification's last layer
 *    on the classified rows alone) and without (the rows kernel hidden, so the model pads);
 *  - scatterRows, and the errors of bad offsets.
 */
import { describe, it, expect } from 'vitest';
import { Tensor, TunekitError, tensor, ops as F, backward, tidy, randn } from '../../lib/index.js';
import { native } from '../../lib/native.js';
import { loadPretrainedSync } from '../../lib/models/index.js';
import { dir, inputsOf, modelInputs, type Inputs } from '../models/helpers.js';

/** Calls of the CPU backend's attentionRows kernel while fn runs (all, and those with lastQueryOnly). */
function rowsKernelCalls(fn: () => void): { total: number; lastQueryOnly: number } {
  const cpu = native.cpu as unknown as Record<string, (...v: unknown[]) => unknown>;
  const keep = cpu.attentionRows!;
  const calls = { total: 0, lastQueryOnly: 0 };
  cpu.attentionRows = (...v: unknown[]) => {
    calls.total++;
    // the kernel table passes an options object or a schema and its values; either way the flag is the last value
    if (v.flat(2).slice(-1)[0] === true || (v[0] as { lastQueryOnly?: boolean }).lastQueryOnly === true) calls.lastQueryOnly++;
    return keep.apply(native.cpu, v);
  };
  try {
    fn();
  } finally {
    cpu.attentionRows = keep;
  }
  return calls;
}

/** Runs fn with the CPU backend's attentionRows hidden, so every path takes its head-major form. */
function withoutRowsKernel<R>(fn: () => R): R {
  const cpu = native.cpu as unknown as Record<string, unknown>;
  const keep = cpu.attentionRows;
  cpu.attentionRows = undefined;
  try {
    return fn();
  } finally {
    cpu.attentionRows = keep;
  }
}

const leaf = (shape: number[], seed: number): Tensor<'f32'> => {
  const t = randn(shape, { seed });
  t.requiresGrad = true;
  return t;
};

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** out and d(sum(out * G))/dqkv of qkvAttention on qkv [B, T, 3C] (fresh leaf from the seed). */
function qkvRun(B: number, T: number, H: number, D: number, mask: number[] | null, causal: boolean, seed: number) {
  return tidy(() => {
    const qkv = leaf([B, T, 3 * H * D], seed);
    const G = randn([B, T, H * D], { seed: seed + 1 });
    const keyMask = mask ? tensor(new Int32Array(mask), [B, T], 'i32') : null;
    const out = F.qkvAttention(qkv, H, { causal, keyMask });
    backward(F.sum(F.mul(out, G)));
    return { out: out.toArray(), grad: qkv.grad!.toArray() };
  });
}

// B = 3 sequences of T = 70 (past a 64-row query tile): right-padded to 41 tokens, full, left-padded to 9
const B = 3, T = 70, H = 3, D = 8;
const LENGTHS = [41, 70, 9];
const MASK = [...Array(B * T).keys()].map((i) => {
  const b = Math.floor(i / T), t = i % T;
  return b === 2 ? Number(t >= T - LENGTHS[b]!) : Number(t < LENGTHS[b]!);
});

describe('attention on token-major rows', () => {
  for (const causal of [true, false]) {
    for (const masked of [true, false]) {
      it(`qkvAttention equals the head-major path (causal ${causal}, key mask ${masked})`, () => {
        const mask = masked ? MASK : null;
        const rows = qkvRun(B, T, H, D, mask, causal, 11);
        const heads = withoutRowsKernel(() => qkvRun(B, T, H, D, mask, causal, 11));
        expect(maxAbsDiff(rows.out, heads.out)).toBeLessThan(1e-5);
        expect(maxAbsDiff(rows.grad, heads.grad)).toBeLessThan(1e-4);
        expect(rows.out.some((x) => x !== 0)).toBe(true);
      });
    }
  }

  it('packedQkvAttention on the real rows equals qkvAttention on the padded batch there', () => {
    const real = MASK.flatMap((m, i) => (m ? [i] : []));
    const offsets = [0];
    for (let b = 0; b < B; b++) offsets.push(offsets[b]! + LENGTHS[b]!);
    tidy(() => {
      const C = H * D;
      const qkv = leaf([B * T, 3 * C], 21);
      // the gradient flows only from real rows, as a loss over real tokens has it
      const G = F.mul(randn([B * T, C], { seed: 22 }), tensor(Float32Array.from(MASK.flatMap((m) => Array(C).fill(m))), [B * T, C]));
      const padded = F.reshape(F.qkvAttention(F.reshape(qkv, [B, T, 3 * C]), H, { causal: true, keyMask: tensor(new Int32Array(MASK), [B, T], 'i32') }), [B * T, C]);
      backward(F.sum(F.mul(padded, G)));
      const gPadded = qkv.grad!.toArray();
      qkv.grad = null;
      const idx = tensor(new Int32Array(real), [real.length], 'i32');
      const packed = F.packedQkvAttention(F.gatherRows(qkv, idx), H, tensor(new Int32Array(offsets), [B + 1], 'i32'), { causal: true });
      expect(packed.shape).toEqual([real.length, C]);
      backward(F.sum(F.mul(packed, F.gatherRows(G, idx))));
      const gPacked = qkv.grad!.toArray();
      expect(maxAbsDiff(packed.toArray(), F.gatherRows(padded, idx).toArray())).toBeLessThan(1e-5);
      expect(maxAbsDiff(gPacked, gPadded)).toBeLessThan(1e-4);
    });
  });

  // the fixture's batch (the second sequence padded), the same without padding, and one whose first
  // sequence ends in a real pad id (classified from the token before it: the last layer cannot prune)
  const fixture = inputsOf('gpt2_seqcls');
  const batches: [string, Inputs, boolean][] = [
    ['padded', fixture, true],
    ['unpadded', { input_ids: [fixture.input_ids[0]!, [...fixture.input_ids[1]!.slice(0, 6), 40, 41, 42, 43]], attention_mask: fixture.attention_mask.map((r) => r.map(() => 1)) }, true],
    ['ending in a pad id', { input_ids: [[...fixture.input_ids[0]!.slice(0, 9), 0], fixture.input_ids[1]!], attention_mask: fixture.attention_mask }, false],
  ];
  for (const [what, inp, prunes] of batches) {
    it(`a GPT-2 (${what} batch): the same logits, hidden states and gradients packed as padded`, () => {
      for (const task of ['seq_cls', 'causal_lm'] as const) {
        const { model } = loadPretrainedSync(dir('gpt2_seqcls'), { task });
        model.eval(); // no dropout: both paths compute the same function
        const params = model.namedParameters();
        for (const [, p] of params) p.requiresGrad = true;
        const run = () => tidy(() => {
          for (const [, p] of params) p.grad = null;
          const inputs = modelInputs(inp);
          const out = model.forward(inputs);
          // causal LM: the logits at real tokens only (padding's logits are not comparable)
          const real = F.reshape(F.cast(inputs.attentionMask!, 'f32'), [...inputs.attentionMask!.shape, 1]);
          const w = task === 'seq_cls' ? out.logits : F.mul(out.logits, real);
          backward(F.sum(F.mul(w, randn(out.logits.shape, { seed: 5 }))));
          const hidden = F.mul(out.hidden, real).toArray(); // read after the backward: seq_cls computes it on demand
          return { logits: w.toArray(), hidden, grads: params.map(([n, p]) => [n, p.grad ? p.grad.toArray() : null] as const) };
        });
        let packed!: ReturnType<typeof run>, padded!: ReturnType<typeof run>;
        const calls = rowsKernelCalls(() => { packed = run(); });
        // one call a layer (the fixture has 2), plus the last layer again for seq_cls's hidden when it pruned
        expect(calls.total).toBe(task === 'seq_cls' && prunes ? 3 : 2);
        expect(calls.lastQueryOnly).toBe(task === 'seq_cls' && prunes ? 1 : 0);
        expect(rowsKernelCalls(() => { padded = withoutRowsKernel(run); }).total).toBe(0);
        expect(maxAbsDiff(packed.logits, padded.logits)).toBeLessThan(1e-5);
        expect(maxAbsDiff(packed.hidden, padded.hidden)).toBeLessThan(1e-5);
        let checked = 0;
        for (let i = 0; i < params.length; i++) {
          const [name, g] = packed.grads[i]!, [, h] = padded.grads[i]!;
          expect(g === null, name).toBe(h === null);
          if (!g || !h) continue;
          const scale = Math.max(1, ...h.map(Math.abs));
          expect(maxAbsDiff(g, h) / scale, name).toBeLessThan(1e-5);
          checked++;
        }
        expect(checked).toBeGreaterThan(10);
        model.dispose();
      }
    });
  }

  it('scatterRows writes rows into zeros and gathers the gradient back', () => {
    tidy(() => {
      const x = leaf([3, 2], 31);
      const y = F.scatterRows(x, tensor(new Int32Array([4, 0, 2]), [3], 'i32'), 5);
      const xs = x.toArray();
      expect(y.toArray()).toEqual([xs[2], xs[3], 0, 0, xs[4], xs[5], 0, 0, xs[0], xs[1]]);
      backward(F.sum(F.mul(y, tensor(Float32Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]), [5, 2]))));
      expect(x.grad!.toArray()).toEqual([9, 10, 1, 2, 5, 6]);
    });
  });

  it('bad offsets and shapes are typed errors that name the problem', () => {
    const qkv = randn([5, 12], { seed: 41 });
    const off = (v: number[]) => tensor(new Int32Array(v), [v.length], 'i32');
    const code = (fn: () => unknown) => {
      try {
        fn();
      } catch (e) {
        expect(e).toBeInstanceOf(TunekitError);
        return `${(e as TunekitError).code}: ${(e as Error).message}`;
      }
      return 'no error';
    };
    expect(code(() => F.packedQkvAttention(qkv, 2, off([0, 3, 2, 5]), { causal: true }))).toMatch(/ERR_SHAPE.*must not decrease/);
    expect(code(() => F.packedQkvAttention(qkv, 2, off([0, 3, 4]), { causal: true }))).toMatch(/ERR_SHAPE.*from 0 to N = 5/);
    expect(code(() => F.packedQkvAttention(qkv, 5, off([0, 5]), { causal: true }))).toMatch(/ERR_SHAPE.*divisible by 5 heads/);
    expect(code(() => F.packedQkvAttention(qkv, 2, off([0, 5]), { causal: true, keyMask: off([1, 1]) }))).toMatch(/ERR_SHAPE.*keyMask \[N\] = \[5\]/);
    expect(code(() => F.packedQkvAttention(qkv, 2, off([0, 5]), { causal: true }))).toBe('no error');
  });
});

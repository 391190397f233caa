/**
 * RLHF losses against TRL's formulas on the same small tensors (scripts/fixtures/
 * make_rlhf_fixtures.py -> test/fixtures/rlhf/losses.json), plus GAE, whitening, clipping and
 * masking cases worked by hand.
 */
import { describe, it, expect } from 'vitest';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import '../../lib/index.js';
import { tensor } from '../../lib/tensor/creation.js';
import { tidy } from '../../lib/tensor/scope.js';
import { backward } from '../../lib/autograd/tape.js';
import type { Tensor } from '../../lib/tensor/tensor.js';
import {
  pairwiseRewardLoss, dpoLoss, maskedMean, maskedVar, maskedWhiten, gae, perTokenRewards, responseMask, ppoPolicyLoss, ppoValueLoss,
} from '../../lib/rlhf/losses.js';
import { gatherLogprobs, sumBySequence } from '../../lib/models/logprobs.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
const fx: any = JSON.parse(readFileSync(join(import.meta.dirname, '../fixtures/rlhf/losses.json'), 'utf8'));
const TOL = 1e-5;
const leaf = (a: number[], shape: number[]) => {
  const t = tensor(Float32Array.from(a), shape) as Tensor<'f32'>;
  t.requiresGrad = true;
  return t;
};
function close(a: ArrayLike<number>, b: ArrayLike<number>, tol = TOL): void {
  expect(a.length).toBe(b.length);
  for (let i = 0; i < a.length; i++) expect(Math.abs(a[i]! - b[i]!), `index ${i}: ${a[i]} vs ${b[i]}`).toBeLessThanOrEqual(tol * Math.max(1, Math.abs(b[i]!)));
}

describe('reward model loss (TRL RewardTrainer)', () => {
  it('matches -mean logsigmoid(rc - rr), with and without margin, and the accuracy', () => {
    const r = fx.reward;
    tidy(() => {
      const out = pairwiseRewardLoss(tensor(Float32Array.from(r.chosen)), tensor(Float32Array.from(r.rejected)));
      close([out.loss.item()], [r.loss]);
      close([out.accuracy, out.margin], [r.accuracy, r.mean_margin]);
      const m = pairwiseRewardLoss(tensor(Float32Array.from(r.chosen)), tensor(Float32Array.from(r.rejected)), r.margin);
      close([m.loss.item()], [r.loss_with_margin]);
    });
  });
  it('pushes chosen up and rejected down', () => {
    tidy(() => {
      const c = leaf([0.1, -0.3], [2]), j = leaf([0.2, 0.5], [2]);
      backward(pairwiseRewardLoss(c, j).loss);
      for (const g of c.grad!.toArray()) expect(g).toBeLessThan(0);
      for (const g of j.grad!.toArray()) expect(g).toBeGreaterThan(0);
    });
  });
});

describe('DPO sigmoid loss (TRL DPOTrainer)', () => {
  for (const [i, d] of (fx.dpo as Array<Record<string, number & number[]>>).entries()) {
    it(`matches loss, gradients and rewards/* metrics (case ${i}, beta ${d.beta})`, () => {
      tidy(() => {
        const pc = leaf(d.policy_chosen, [d.policy_chosen.length]), pr = leaf(d.policy_rejected, [d.policy_rejected.length]);
        const out = dpoLoss(pc, pr, d.ref_chosen, d.ref_rejected, d.beta);
        close([out.loss.item()], [d.loss]);
        backward(out.loss);
        close(pc.grad!.toArray(), d.grad_policy_chosen);
        close(pr.grad!.toArray(), d.grad_policy_rejected);
        const m = out.metrics;
        close([m['rewards/chosen'], m['rewards/rejected'], m['rewards/margins'], m['rewards/accuracies']], [d.rewards_chosen, d.rewards_rejected, d.margins, d.accuracy]);
      });
    });
  }
  it('is log 2 when the policy equals the reference', () => {
    tidy(() => {
      const out = dpoLoss(tensor([-3, -4]), tensor([-5, -1]), [-3, -4], [-5, -1]);
      expect(out.loss.item()).toBeCloseTo(Math.log(2), 6);
      expect(out.metrics['rewards/margins']).toBe(0);
    });
  });
});

describe('completion log-probs (TRL selective_log_softmax + completion mask)', () => {
  const c = fx.logprobs;
  const positions: number[] = [], targets: number[] = [], owner: number[] = [];
  for (let b = 0; b < c.B; b++) {
    for (let t = 1; t < c.T; t++) {
      if (c.completion_mask[b * c.T + t]) {
        positions.push(b * c.T + t - 1);
        targets.push(c.ids[b * c.T + t]);
        owner.push(b);
      }
    }
  }
  it('sums only completion tokens, prompt and padding masked', () => {
    tidy(() => {
      const logits = tensor(Float32Array.from(c.logits), [c.B, c.T, c.V]);
      const lp = gatherLogprobs(logits, Int32Array.from(positions), Int32Array.from(targets));
      close(sumBySequence(lp, Int32Array.from(owner), c.B).toArray(), c.sums);
      const lpT = gatherLogprobs(logits, Int32Array.from(positions), Int32Array.from(targets), c.temperature);
      close(sumBySequence(lpT, Int32Array.from(owner), c.B).toArray(), c.sums_temperature);
    });
  });
  it('is differentiable: d sum logp / d logits = onehot - softmax on completion rows, 0 elsewhere', () => {
    tidy(() => {
      const logits = leaf(c.logits, [c.B, c.T, c.V]);
      const lp = gatherLogprobs(logits, Int32Array.from(positions), Int32Array.from(targets));
      backward(sumBySequence(lp, Int32Array.from(owner), c.B).sum());
      const g = logits.grad!.toArray();
      const x = c.logits as number[];
      const rowsUsed = new Map(positions.map((p, i) => [p, targets[i]!]));
      for (let row = 0; row < c.B * c.T; row++) {
        const off = row * c.V;
        const target = rowsUsed.get(row);
        if (target === undefined) {
          for (let v = 0; v < c.V; v++) expect(g[off + v]).toBe(0);
          continue;
        }
        const mx = Math.max(...x.slice(off, off + c.V));
        const z = x.slice(off, off + c.V).reduce((a, b) => a + Math.exp(b - mx), 0);
        for (let v = 0; v < c.V; v++) expect(g[off + v]).toBeCloseTo((v === target ? 1 : 0) - Math.exp(x[off + v]! - mx) / z, 5);
      }
    });
  });
});

describe('PPO pieces (TRL PPOTrainer code path)', () => {
  for (const p of fx.ppo) {
    it(`GAE, returns and whitened advantages match (${p.placement} reward placement)`, () => {
      const { advantages, returns } = gae(p.rewards, p.values, p.B, p.T, p.gamma, p.lam);
      close(advantages, p.advantages_raw);
      close(returns, p.returns);
      const w = maskedWhiten(advantages, p.mask);
      for (let i = 0; i < w.length; i++) if (!p.mask[i]) w[i] = 0;
      close(w, p.advantages);
    });
    it(`clipped policy and value losses, clip fractions, approxkl and gradients match (${p.placement})`, () => {
      tidy(() => {
        const nl = leaf(p.new_logprobs, [p.B, p.T]), vp = leaf(p.vpred, [p.B, p.T]);
        const pg = ppoPolicyLoss(nl, p.logprobs, p.advantages, p.mask, p.cliprange);
        const vf = ppoValueLoss(vp, p.values, p.returns, p.value_mask, p.cliprange_value);
        close([pg.loss.item(), vf.loss.item()], [p.pg_loss, p.vf_loss]);
        close([pg.clipFrac, vf.clipFrac, pg.approxKl, pg.ratioMean], [p.pg_clipfrac, p.vf_clipfrac, p.approxkl, p.ratio_mean]);
        const loss = pg.loss.add(vf.loss.mul(p.vf_coef));
        backward(loss);
        close(nl.grad!.toArray(), p.grad_new_logprobs);
        close(vp.grad!.toArray(), p.grad_vpred);
      });
    });
  }
  it('per-token rewards: -kl_coef (logp - ref) on the response, the score on the last token', () => {
    const p = fx.ppo.find((q: { placement: string }) => q.placement === 'last_token');
    const { rewards, kl } = perTokenRewards(p.logprobs, p.ref_logprobs, p.scores, p.sequence_lengths, p.B, p.T, p.kl_coef);
    close(rewards, p.rewards);
    close(kl, p.kl);
    expect(Array.from(responseMask(p.sequence_lengths, p.T))).toEqual(p.mask);
  });
});

describe('PPO pieces by hand', () => {
  it('GAE with gamma 1, lambda 1 is the reward-to-go minus the value; lambda 0 is the TD error', () => {
    const r = [0, 0, 1], v = [0.5, 0.2, 0.1];
    expect(Array.from(gae(r, v, 1, 3, 1, 1).advantages).map((x) => +x.toFixed(12))).toEqual([0.5, 0.8, 0.9]);
    const td = gae(r, v, 1, 3, 1, 0).advantages;
    close(td, [0 + 0.2 - 0.5, 0 + 0.1 - 0.2, 1 - 0.1]);
    const disc = gae([1, 1], [0, 0], 1, 2, 0.5, 1).advantages;
    close(disc, [1.5, 1]);
  });
  it('masked statistics ignore masked-out values; the variance is unbiased', () => {
    expect(maskedMean([1, 2, 3, 100], [1, 1, 1, 0])).toBe(2);
    expect(maskedVar([1, 2, 3, 100], [1, 1, 1, 0])).toBeCloseTo(1, 12);
    close(maskedWhiten([1, 2, 3, 100], [1, 1, 1, 0]).slice(0, 3), [-1, 0, 1]);
    expect(() => maskedVar([1, 2], [1, 0])).toThrow(/at least 2/);
  });
  it('clipping: a ratio beyond 1 + eps with A > 0 gives no gradient; within the range it does', () => {
    tidy(() => {
      const nl = leaf([Math.log(1.5), Math.log(1.1)], [1, 2]);
      const out = ppoPolicyLoss(nl, [0, 0], [1, 1], [1, 1], 0.2);
      expect(out.clipFrac).toBe(0.5);
      expect(out.loss.item()).toBeCloseTo(-(1.2 + 1.1) / 2, 6);
      backward(out.loss);
      const g = nl.grad!.toArray();
      expect(Math.abs(g[0]!)).toBe(0);
      expect(g[1]).toBeCloseTo(-1.1 / 2, 6);
    });
    tidy(() => {
      // A < 0: a ratio below 1 - eps is clipped (pessimistic bound), above is not
      const nl = leaf([Math.log(0.5), Math.log(1.5)], [1, 2]);
      const out = ppoPolicyLoss(nl, [0, 0], [-1, -1], [1, 1], 0.2);
      expect(out.clipFrac).toBe(0.5);
      expect(out.loss.item()).toBeCloseTo((0.8 + 1.5) / 2, 6);
    });
  });
  it('masking: masked-out positions change neither loss nor gradient', () => {
    tidy(() => {
      const a = leaf([-1, -2, 7], [1, 3]), b = leaf([-1, -2, -9], [1, 3]);
      const la = ppoPolicyLoss(a, [-1.1, -1.9, 1], [0.5, -0.3, 4], [1, 1, 0]);
      const lb = ppoPolicyLoss(b, [-1.1, -1.9, 1], [0.5, -0.3, -4], [1, 1, 0]);
      expect(la.loss.item()).toBeCloseTo(lb.loss.item(), 7);
      backward(la.loss);
      expect(Math.abs(a.grad!.toArray()[2]!)).toBe(0);
      const va = ppoValueLoss(leaf([0.3, 0.1, 50], [1, 3]), [0.2, 0.1, 0], [1, 0.5, 0], [1, 1, 0]);
      const vb = ppoValueLoss(leaf([0.3, 0.1, -5], [1, 3]), [0.2, 0.1, 0], [1, 0.5, 3], [1, 1, 0]);
      expect(va.loss.item()).toBeCloseTo(vb.loss.item(), 7);
    });
  });
  it('value clipping keeps the larger error of the clipped and unclipped prediction', () => {
    tidy(() => {
      // old 0, pred 1 (clipped to 0.2), return 1: unclipped error 0, clipped 0.64 -> 0.5 * 0.64
      const out = ppoValueLoss(leaf([1], [1, 1]), [0], [1], [1], 0.2);
      expect(out.loss.item()).toBeCloseTo(0.32, 6);
      expect(out.clipFrac).toBe(1);
    });
  });
});

describe('log sigmoid', () => {
  it('has gradient 1 - sigmoid(x) everywhere, 0.5 at exactly 0 (where DPO starts)', async () => {
    const { logSigmoidStable } = await import('../../lib/rlhf/losses.js');
    tidy(() => {
      const xs = [-100, -3, -1e-8, 0, 1e-8, 2, 100];
      const x = leaf(xs, [xs.length]);
      const y = logSigmoidStable(x);
      close(y.toArray(), xs.map((v) => (v >= 0 ? -Math.log1p(Math.exp(-v)) : v - Math.log1p(Math.exp(v)))));
      backward(y.sum());
      close(x.grad!.toArray(), xs.map((v) => 1 - 1 / (1 + Math.exp(-v))));
    });
  });
});

/**
 * The adaptive KL controller (Ziegler et al. 2019; TRL's AdaptiveKLController): its update rule
 * against a sequence worked by hand and against TRL's formula written out, the fixed controller,
 * argument checks, the PPO trainer feeding it each step's KL, and the config fields.
 */
import { describe, it, expect } from 'vitest';
import '../../lib/index.js';
import '../../lib/peft/index.js';
import { AdaptiveKlController, FixedKlController, makeKlController } from '../../lib/rlhf/kl_control.js';
import { PpoTrainer, ppoStatsOf, type PpoStats } from '../../lib/rlhf/ppo.js';
import { loadPretrainedSync } from '../../lib/models/index.js';
import { LoraModel } from '../../lib/peft/lora/model.js';
import { loadConfig } from '../../lib/train/config.js';
import { TunekitError } from '../../lib/errors.js';
import { Rng } from '../../lib/data/rng.js';
import { dir } from '../models/helpers.js';

/** TRL's AdaptiveKLController.update, line for line: np.clip(current / target - 1, -0.2, 0.2); value *= 1 + e * n_steps / horizon. */
function trlUpdate(value: number, current: number, target: number, horizon: number, nSteps: number): number {
  const proportionalError = Math.min(0.2, Math.max(-0.2, current / target - 1));
  const mult = 1 + (proportionalError * nSteps) / horizon;
  return value * mult;
}

describe('AdaptiveKlController', () => {
  it('follows a sequence worked by hand (init 0.05, target 4, horizon 160, batches of 16: gain 0.1)', () => {
    const ctl = new AdaptiveKlController(0.05, 4, 160);
    // KL:        0 -> e -1 clipped to -0.2, x0.98 | 2 -> -0.5 -> -0.2, x0.98 | 4 -> 0, x1 | 5 -> 0.25 -> 0.2, x1.02
    //            8 -> 1 -> 0.2, x1.02 | 4.4 -> 0.1, x1.01 | 3.6 -> -0.1, x0.99
    const kls = [0, 2, 4, 5, 8, 4.4, 3.6];
    const expected = [0.049, 0.04802, 0.04802, 0.0489804, 0.049960008, 0.05045960808, 0.0499550119992];
    kls.forEach((kl, i) => {
      ctl.update(kl, 16);
      expect(ctl.value).toBeCloseTo(expected[i]!, 14);
    });
  });

  it("equals TRL's formula on random KL sequences, and TRL's defaults (0.2, target 6, horizon 10000)", () => {
    const trl = new AdaptiveKlController(0.2, 6, 10000);
    trl.update(12, 256);
    expect(trl.value).toBeCloseTo(0.2 * (1 + (0.2 * 256) / 10000), 15);
    const rng = new Rng(11);
    for (let trial = 0; trial < 20; trial++) {
      const init = 0.01 + rng.nextFloat(), target = 0.5 + 10 * rng.nextFloat(), horizon = 50 + 5000 * rng.nextFloat(), n = 1 + rng.int(64);
      const ctl = new AdaptiveKlController(init, target, horizon);
      let ref = init;
      for (let s = 0; s < 30; s++) {
        const kl = 3 * target * rng.nextFloat() - 0.1 * target; // the k1 estimate can be slightly negative
        ctl.update(kl, n);
        ref = trlUpdate(ref, kl, target, horizon, n);
        expect(Math.abs(ctl.value - ref)).toBeLessThanOrEqual(1e-15 * ref);
      }
    }
  });

  it('moves the coefficient toward holding KL at the target: up above it, down below it, by at most 20% of n / horizon', () => {
    const up = new AdaptiveKlController(0.1, 6, 100), down = new AdaptiveKlController(0.1, 6, 100);
    up.update(1e9, 10);
    down.update(-1e9, 10);
    expect(up.value).toBeCloseTo(0.1 * 1.02, 15);
    expect(down.value).toBeCloseTo(0.1 * 0.98, 15);
  });

  it('refuses a bad target, horizon, coefficient or measured KL with a clear error', () => {
    expect(() => new AdaptiveKlController(0.1, 0, 100)).toThrow(/kl_target/);
    expect(() => new AdaptiveKlController(0.1, 6, -1)).toThrow(/kl_horizon/);
    expect(() => new AdaptiveKlController(-0.1, 6, 100)).toThrow(/initial kl_coef/);
    expect(() => new AdaptiveKlController(0.1, 6, 100).update(NaN, 16)).toThrow(TunekitError);
    // a horizon under n / 5 would flip the coefficient's sign at the lower clip
    expect(() => new AdaptiveKlController(0.1, 6, 2).update(0, 16)).toThrow(/too short/);
  });
});

describe('FixedKlController and makeKlController', () => {
  it('a fixed coefficient never moves; a target selects the adaptive controller', () => {
    const fixed = new FixedKlController(0.05);
    fixed.update(100, 16);
    expect(fixed.value).toBe(0.05);
    expect(makeKlController({ klCoef: 0.05 })).toBeInstanceOf(FixedKlController);
    expect(makeKlController({ klCoef: 0.05, klTarget: null })).toBeInstanceOf(FixedKlController);
    const a = makeKlController({ klCoef: 0.05, klTarget: 4 });
    expect(a).toBeInstanceOf(AdaptiveKlController);
    expect((a as AdaptiveKlController).horizon).toBe(10000);
  });
});

describe('PPO with klTarget', () => {
  it("rewards each rollout with the controller's coefficient and updates it with the step's KL and batch size", async () => {
    const { model: base } = loadPretrainedSync(dir('gpt2_lm'));
    const policy = new LoraModel(base, { r: 4, lora_alpha: 8, target_modules: ['c_attn'] });
    const reward = (_q: number[][], r: number[][]) => r.map((x) => x.filter((t) => t >= 10 && t < 30).length / x.length);
    const B = 8, init = 0.1, target = 0.5, horizon = 40;
    const rng = new Rng(5);
    const train = Array.from({ length: 3 * B }, () => [1, 60 + rng.int(10), 60 + rng.int(10)]);
    const stats: PpoStats[] = [];
    const ppo = new PpoTrainer({
      policy, reward, padTokenId: 0, eosTokenId: null, maxNewTokens: 4, ppoEpochs: 1, numMiniBatches: 2, lr: 1e-2, klCoef: init, klTarget: target, klHorizon: horizon, seed: 3,
      train, settings: { batchSize: B, maxSteps: 3 }, progress: 'none', callbacks: { onStep: (i) => stats.push(ppoStatsOf(i.step, i.figures)) },
    });
    await ppo.fit();
    expect(stats[0]!.kl_coef).toBe(init);
    expect(Math.abs(stats[0]!.kl)).toBeLessThan(1e-5); // policy == reference at the first rollout: e = -0.2
    expect(stats[1]!.kl_coef).toBeCloseTo(init * (1 - (0.2 * B) / horizon), 12);
    expect(stats[2]!.kl_coef).toBeCloseTo(trlUpdate(stats[1]!.kl_coef, stats[1]!.kl, target, horizon, B), 12);
    expect(stats[1]!.rlhf_reward).toBeCloseTo(stats[1]!.score - stats[1]!.kl_coef * stats[1]!.kl, 10);
    expect(ppo.klController.value).toBeCloseTo(trlUpdate(stats[2]!.kl_coef, stats[2]!.kl, target, horizon, B), 12);
  });
});

describe('config', () => {
  const ppo = { model: 'builtin:gpt2-tiny', method: 'ppo', dataset: { path: 'builtin:sotu' } };
  it('rlhf.kl_target (default null: fixed kl_coef) and rlhf.kl_horizon (default 10000)', () => {
    const d = loadConfig({ ...ppo, rlhf: { reward_model: 'runs/reward' } });
    expect(d.rlhf!.kl_target).toBeNull();
    expect(d.rlhf!.kl_horizon).toBe(10000);
    const c = loadConfig({ ...ppo, rlhf: { reward_model: 'runs/reward', kl_target: 6, kl_horizon: 2000 } });
    expect(c.rlhf!.kl_target).toBe(6);
    expect(c.rlhf!.kl_horizon).toBe(2000);
    expect(() => loadConfig({ ...ppo, rlhf: { reward_model: 'runs/reward', kl_target: 0 } })).toThrow(/kl_target/);
  });
});

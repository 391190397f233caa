/**
 * KL coefficient control for PPO (Ziegler et al. 2019, "Fine-Tuning Language Models from Human
 * Preferences", section 2.2). The per-token reward is -kl_coef (logp - logp_ref); a fixed
 * kl_coef lets the KL drift wherever the reward pulls it, the adaptive controller steers the
 * measured KL toward a target instead:
 *
 *   e     = clip(KL / target - 1, -0.2, 0.2)        (proportional error, clipped)
 *   coef *= 1 + e * n / horizon                      (n: rollouts in the batch just measured)
 *
 * This is TRL's `AdaptiveKLController.update(current, n_steps)` (trl/trainer/utils.py, called
 * after each PPO step with the step's objective/kl and batch_size); the paper writes the gain
 * as K_beta = n / horizon (0.1 there). KL here is the batch mean of the per-sequence KL summed
 * over response tokens (nats per sequence), as PpoStats.kl.
 *
 * @example
 * const ctl = new AdaptiveKlController(0.2, 6, 10000);
 * ctl.update(12, 256);  // KL 12 is above the target 6: e = 0.2, coef 0.2 * (1 + 0.2 * 256 / 10000)
 * ctl.value;            // 0.2010...
 */
import { TunekitError, describe } from '../errors.js';

/** A KL coefficient that may change after each PPO step. */
export interface KlController {
  /** the coefficient to use for the next rollout */
  readonly value: number;
  /** feeds the KL measured on a batch of `nSteps` rollouts */
  update(currentKl: number, nSteps: number): void;
}

/** The proportional error is clipped to +-0.2, as in the paper and TRL. */
export const KL_ERROR_CLIP = 0.2;

function checkFinite(name: string, v: number, positive: boolean): void {
  if (!Number.isFinite(v) || (positive ? v <= 0 : v < 0)) {
    throw new TunekitError('ERR_VALUE', `KL controller: expected ${name} to be a ${positive ? 'positive' : 'non-negative'} finite number but received ${describe(v)}`);
  }
}

/** A constant coefficient (update does nothing). @example new FixedKlController(0.05).value; // 0.05 */
export class FixedKlController implements KlController {
  constructor(readonly value: number) {
    checkFinite('kl_coef', value, false);
  }
  update(_currentKl?: number, _nSteps?: number): void {}
}

/**
 * Multiplies the coefficient by 1 + clip(KL / target - 1, -0.2, 0.2) * nSteps / horizon after each
 * batch: above the target the penalty grows, below it the penalty shrinks, by at most 20% of
 * nSteps / horizon per update.
 * @example const ctl = new AdaptiveKlController(0.05, 4, 160); ctl.update(8, 16); ctl.value; // 0.05 * 1.02
 */
export class AdaptiveKlController implements KlController {
  value: number;
  constructor(initKlCoef: number, readonly target: number, readonly horizon: number) {
    checkFinite('the initial kl_coef', initKlCoef, false);
    checkFinite('kl_target', target, true);
    checkFinite('kl_horizon', horizon, true);
    this.value = initKlCoef;
  }

  update(currentKl: number, nSteps: number): void {
    if (!Number.isFinite(currentKl)) throw new TunekitError('ERR_VALUE', `KL controller: expected a finite measured KL but received ${describe(currentKl)}`);
    checkFinite('nSteps', nSteps, true);
    const error = Math.min(KL_ERROR_CLIP, Math.max(-KL_ERROR_CLIP, currentKl / this.target - 1));
    const mult = 1 + (error * nSteps) / this.horizon;
    // only possible when nSteps > 5 horizon: the coefficient would flip sign
    if (!(mult > 0)) throw new TunekitError('ERR_VALUE', `KL controller: kl_horizon ${this.horizon} is too short for batches of ${nSteps} rollouts (the update factor would be ${mult}); use a horizon above ${nSteps / 5}`);
    this.value *= mult;
  }
}

/**
 * The controller PPO options ask for: adaptive when a target is given, fixed otherwise.
 * @example makeKlController({ klCoef: 0.05, klTarget: 4, klHorizon: 160 }) // AdaptiveKlController
 */
export function makeKlController(o: { klCoef: number; klTarget?: number | null; klHorizon?: number }): KlController {
  return o.klTarget == null ? new FixedKlController(o.klCoef) : new AdaptiveKlController(o.klCoef, o.klTarget, o.klHorizon ?? 10000);
}

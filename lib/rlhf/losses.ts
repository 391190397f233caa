/**
 * The RLHF objectives, as small functions on tensors (differentiable parts) and plain arrays
 * (the no-gradient bookkeeping of PPO). Each one follows TRL's formula, term for term:
 *
 * - reward model (TRL RewardTrainer.compute_loss): loss = -mean log sigmoid(r+ - r- [- margin]);
 *   accuracy = mean(r+ > r-).
 * - DPO, sigmoid loss (TRL DPOTrainer, loss_type "sigmoid", reverse KL):
 *   loss = -mean log sigmoid(beta [(logp(y+) - logp_ref(y+)) - (logp(y-) - logp_ref(y-))]);
 *   rewards/chosen = beta (logp(y+) - logp_ref(y+)), rewards/rejected likewise.
 * - PPO (TRL's PPOTrainer, trl/experimental/ppo): masked mean / unbiased masked variance /
 *   whitening, GAE run backwards over every response position, returns = advantages + values,
 *   clipped policy loss max(-A r, -A clip(r, 1-eps, 1+eps)) and clipped value loss
 *   0.5 max((v - R)^2, (clip(v, v_old +- eps_v) - R)^2), both averaged over the mask.
 *
 * Shapes: B sequences, T response positions; masks are 1 on positions that count.
 */
import { Tensor } from '../tensor/tensor.js';
import { tensor } from '../tensor/creation.js';
import type { Device } from '../tensor/device.js';
import * as F from '../autograd/ops.js';
import { TunekitError } from '../errors.js';

type F32 = Tensor<'f32'>;

/** Constants as an f32 tensor on `device` (the differentiable operand's: a GPU's memory in a device run). */
function vec(x: ArrayLike<number>, shape: number[], device: Device): F32 {
  return tensor(Float32Array.from(x as ArrayLike<number>), shape, 'f32', device);
}

function checkLen(what: string, a: ArrayLike<number>, n: number): void {
  if (a.length !== n) throw new TunekitError('ERR_SHAPE', `${what}: expected ${n} values but received ${a.length}`);
}

/**
 * log sigmoid(x), stable, with the right gradient 1 - sigmoid(x) everywhere, x = 0 included.
 * (F.logSigmoid is composed from |x| and relu, whose gradients at 0 are taken as 0, so its
 * gradient at exactly 0 comes out 0 instead of 0.5. That is precisely where DPO starts, with
 * policy == reference, so DPO would never move.) Here the branch is chosen per element from
 * the sign of x: x >= 0: -log(1 + exp(-x)); x < 0: x - log(1 + exp(x)).
 * @example logSigmoidStable(tensor([0])) // [-0.6931], gradient 0.5
 */
export function logSigmoidStable(x: Tensor): F32 {
  const v = x.toArray();
  const shape = [...x.shape];
  const pos = vec(v.map((e) => (e >= 0 ? 1 : 0)), shape, x.device);
  const sign = vec(v.map((e) => (e >= 0 ? -1 : 1)), shape, x.device);
  const negAbs = F.mul(x, sign); // -|x| with the gradient of the chosen branch
  const lin = F.mul(x, F.addScalar(F.neg(pos), 1)); // x on the negative branch, 0 elsewhere
  return F.sub(lin, F.log(F.addScalar(F.exp(negAbs), 1)));
}

// ------------------------------------------------------------------------------------ reward

export interface PairwiseLossOutput {
  /** scalar loss, differentiable */
  loss: F32;
  /** fraction of pairs with r+ > r- (strictly, as TRL) */
  accuracy: number;
  /** mean of r+ - r- */
  margin: number;
  chosen: number[];
  rejected: number[];
}

/**
 * The reward model's pairwise (Bradley-Terry) loss: -mean log sigmoid(r+ - r- - margin).
 * @example
 * const { loss, accuracy } = pairwiseRewardLoss(F.reshape(rChosen, [-1]), F.reshape(rRejected, [-1]));
 * backward(loss);
 */
export function pairwiseRewardLoss(rChosen: Tensor, rRejected: Tensor, margin?: ArrayLike<number>): PairwiseLossOutput {
  if (rChosen.numel !== rRejected.numel) throw new TunekitError('ERR_SHAPE', `pairwiseRewardLoss: ${rChosen.numel} chosen but ${rRejected.numel} rejected rewards`);
  const n = rChosen.numel;
  let diff: F32 = F.sub(F.reshape(rChosen, [n]), F.reshape(rRejected, [n]));
  if (margin) {
    checkLen('pairwiseRewardLoss margin', margin, n);
    diff = F.sub(diff, vec(margin, [n], diff.device));
  }
  const loss = F.neg(F.mean(logSigmoidStable(diff)));
  const c = rChosen.toArray(), r = rRejected.toArray();
  let acc = 0, m = 0;
  for (let i = 0; i < n; i++) {
    if (c[i]! > r[i]!) acc++;
    m += c[i]! - r[i]!;
  }
  return { loss, accuracy: n ? acc / n : 0, margin: n ? m / n : 0, chosen: c, rejected: r };
}

// ------------------------------------------------------------------------------------ DPO

export interface DpoLossOutput {
  loss: F32;
  metrics: DpoMetrics;
}

export interface DpoMetrics {
  /** mean beta (logp(y+) - logp_ref(y+)) */
  'rewards/chosen': number;
  /** mean beta (logp(y-) - logp_ref(y-)) */
  'rewards/rejected': number;
  /** mean of rewards/chosen - rewards/rejected */
  'rewards/margins': number;
  /** fraction of pairs with rewards/chosen > rewards/rejected */
  'rewards/accuracies': number;
  'logps/chosen': number;
  'logps/rejected': number;
}

/**
 * DPO's sigmoid loss from summed completion log-probs [B] of the policy (differentiable) and of
 * the reference (constants: tensors or arrays).
 * @example
 * const { loss, metrics } = dpoLoss(pc, pr, refChosen, refRejected, 0.1);
 */
export function dpoLoss(policyChosen: Tensor, policyRejected: Tensor, refChosen: Tensor | ArrayLike<number>, refRejected: Tensor | ArrayLike<number>, beta = 0.1): DpoLossOutput {
  const n = policyChosen.numel;
  if (policyRejected.numel !== n) throw new TunekitError('ERR_SHAPE', `dpoLoss: ${n} chosen but ${policyRejected.numel} rejected log-probs`);
  if (!(beta > 0)) throw new TunekitError('ERR_VALUE', `dpoLoss: expected beta > 0 but received ${beta}`);
  const rc = refChosen instanceof Tensor ? refChosen.toArray() : Array.from(refChosen);
  const rr = refRejected instanceof Tensor ? refRejected.toArray() : Array.from(refRejected);
  checkLen('dpoLoss reference chosen', rc, n);
  checkLen('dpoLoss reference rejected', rr, n);
  const pc = F.reshape(policyChosen, [n]), pr = F.reshape(policyRejected, [n]);
  const chosenRatio = F.sub(pc, vec(rc, [n], pc.device));
  const rejectedRatio = F.sub(pr, vec(rr, [n], pr.device));
  const loss = F.neg(F.mean(logSigmoidStable(F.scale(F.sub(chosenRatio, rejectedRatio), beta))));
  const pcv = pc.toArray(), prv = pr.toArray();
  let sc = 0, sr = 0, acc = 0, lc = 0, lr = 0;
  for (let i = 0; i < n; i++) {
    const a = beta * (pcv[i]! - rc[i]!), b = beta * (prv[i]! - rr[i]!);
    sc += a;
    sr += b;
    if (a > b) acc++;
    lc += pcv[i]!;
    lr += prv[i]!;
  }
  return {
    loss,
    metrics: {
      'rewards/chosen': sc / n, 'rewards/rejected': sr / n, 'rewards/margins': (sc - sr) / n, 'rewards/accuracies': acc / n,
      'logps/chosen': lc / n, 'logps/rejected': lr / n,
    },
  };
}

// ------------------------------------------------------------------------------------ PPO (arrays)

/** sum(values * mask) / sum(mask). @example maskedMean([1, 2, 9], [1, 1, 0]) // 1.5 */
export function maskedMean(values: ArrayLike<number>, mask: ArrayLike<number>): number {
  checkLen('maskedMean mask', mask, values.length);
  let s = 0, m = 0;
  for (let i = 0; i < values.length; i++) {
    s += values[i]! * mask[i]!;
    m += mask[i]!;
  }
  return s / m;
}

/** Masked variance; unbiased (Bessel's correction) as TRL's masked_var. Needs sum(mask) >= 2. */
export function maskedVar(values: ArrayLike<number>, mask: ArrayLike<number>, unbiased = true): number {
  const mean = maskedMean(values, mask);
  const c = Array.from(values, (v) => (v - mean) ** 2);
  let v = maskedMean(c, mask);
  if (unbiased) {
    let m = 0;
    for (let i = 0; i < mask.length; i++) m += mask[i]!;
    if (m < 2) throw new TunekitError('ERR_VALUE', `maskedVar: an unbiased variance needs at least 2 masked-in values but the mask has ${m} (use a larger batch)`);
    v *= m / (m - 1);
  }
  return v;
}

/**
 * (values - mean) / sqrt(var + 1e-8) with masked statistics (TRL's masked_whiten); every
 * position is transformed, the caller zeroes the masked-out ones.
 * @example maskedWhiten([1, 2, 3, 100], [1, 1, 1, 0]) // [-1, 0, 1, 98] (approximately)
 */
export function maskedWhiten(values: ArrayLike<number>, mask: ArrayLike<number>, shiftMean = true): Float64Array {
  const mean = maskedMean(values, mask);
  const inv = 1 / Math.sqrt(maskedVar(values, mask) + 1e-8);
  return Float64Array.from(values as ArrayLike<number>, (v) => (v - mean) * inv + (shiftMean ? 0 : mean));
}

/**
 * Generalised advantage estimation over [B, T] (row-major), backwards over every position as
 * TRL does: delta_t = r_t + gamma V_{t+1} - V_t (V_T = 0), A_t = delta_t + gamma lam A_{t+1};
 * returns = A + V. Masked-out positions should carry zero rewards and values.
 * @example const { advantages, returns } = gae(rewards, values, 2, 5, 1, 0.95);
 */
export function gae(rewards: ArrayLike<number>, values: ArrayLike<number>, B: number, T: number, gamma = 1, lam = 0.95): { advantages: Float64Array; returns: Float64Array } {
  checkLen('gae rewards', rewards, B * T);
  checkLen('gae values', values, B * T);
  const adv = new Float64Array(B * T), ret = new Float64Array(B * T);
  for (let b = 0; b < B; b++) {
    let last = 0;
    for (let t = T - 1; t >= 0; t--) {
      const i = b * T + t;
      const next = t < T - 1 ? values[i + 1]! : 0;
      const delta = rewards[i]! + gamma * next - values[i]!;
      last = delta + gamma * lam * last;
      adv[i] = last;
      ret[i] = last + values[i]!;
    }
  }
  return { advantages: adv, returns: ret };
}

/**
 * Per-token rewards of PPO-RLHF: -klCoef (logp - logp_ref) on every response token (k1 KL
 * estimate), plus the reward model's score on each sequence's last token `lastIndex[b]`;
 * zero after it. Returns the rewards and the per-token KL (both [B, T]).
 * @example perTokenRewards(logp, refLogp, [0.7, -0.2], [3, 1], 2, 4, 0.05)
 */
export function perTokenRewards(
  logprobs: ArrayLike<number>, refLogprobs: ArrayLike<number>, scores: ArrayLike<number>, lastIndex: ArrayLike<number>,
  B: number, T: number, klCoef = 0.05,
): { rewards: Float64Array; kl: Float64Array } {
  checkLen('perTokenRewards logprobs', logprobs, B * T);
  checkLen('perTokenRewards refLogprobs', refLogprobs, B * T);
  checkLen('perTokenRewards scores', scores, B);
  checkLen('perTokenRewards lastIndex', lastIndex, B);
  const rewards = new Float64Array(B * T), kl = new Float64Array(B * T);
  for (let b = 0; b < B; b++) {
    const last = lastIndex[b]!;
    if (!(Number.isInteger(last) && last >= 0 && last < T)) throw new TunekitError('ERR_INDEX', `perTokenRewards: last token index ${last} of sequence ${b} is outside [0, ${T})`);
    for (let t = 0; t <= last; t++) {
      const i = b * T + t;
      kl[i] = logprobs[i]! - refLogprobs[i]!;
      rewards[i] = -klCoef * kl[i]!;
    }
    rewards[b * T + last]! += scores[b]!;
  }
  return { rewards, kl };
}

/** Response mask [B, T]: 1 up to and including each sequence's last token. */
export function responseMask(lastIndex: ArrayLike<number>, T: number): Float32Array {
  const m = new Float32Array(lastIndex.length * T);
  for (let b = 0; b < lastIndex.length; b++) for (let t = 0; t <= lastIndex[b]! && t < T; t++) m[b * T + t] = 1;
  return m;
}

// ------------------------------------------------------------------------------------ PPO (tensors)

/**
 * clamp(x, lo, hi) element-wise with torch.clamp's exact values and gradient: x where
 * lo <= x <= hi (gradient 1), the bound elsewhere (gradient 0). Built as x * inside + bound *
 * (1 - inside) from a mask read off x, so in-range values stay bit-identical to x (the
 * clipped and unclipped PPO terms then tie exactly, as in torch, and the clip fractions agree).
 */
function exactClamp(x: Tensor, lo: ArrayLike<number>, hi: ArrayLike<number>): F32 {
  const v = x.toArray();
  const inside = new Float32Array(v.length), bound = new Float32Array(v.length);
  for (let i = 0; i < v.length; i++) {
    const l = Math.fround(lo[i]!), h = Math.fround(hi[i]!);
    if (v[i]! < l) bound[i] = l;
    else if (v[i]! > h) bound[i] = h;
    else inside[i] = 1;
  }
  const shape = [...x.shape];
  return F.add(F.mul(x, vec(inside, shape, x.device)), vec(bound, shape, x.device));
}

export interface PolicyLossOutput {
  loss: F32;
  /** fraction of masked positions where the clipped term was taken (pg_clipfrac) */
  clipFrac: number;
  /** 0.5 mean((logp - logp_old)^2) over all positions, as TRL's approxkl */
  approxKl: number;
  /** mean probability ratio over all positions */
  ratioMean: number;
}

/**
 * PPO's clipped surrogate loss: masked mean of max(-A r, -A clip(r, 1-eps, 1+eps)),
 * r = exp(logp - logp_old). newLogprobs [B, T] is differentiable; the rest are constants.
 * Masked-out positions of newLogprobs/oldLogprobs should hold the same value (TRL fills 1.0).
 * @example const { loss, clipFrac } = ppoPolicyLoss(newLogp, oldLogp, adv, mask, 0.2);
 */
export function ppoPolicyLoss(newLogprobs: Tensor, oldLogprobs: ArrayLike<number>, advantages: ArrayLike<number>, mask: ArrayLike<number>, cliprange = 0.2): PolicyLossOutput {
  const shape = [...newLogprobs.shape];
  const n = newLogprobs.numel;
  checkLen('ppoPolicyLoss oldLogprobs', oldLogprobs, n);
  checkLen('ppoPolicyLoss advantages', advantages, n);
  checkLen('ppoPolicyLoss mask', mask, n);
  const dev = newLogprobs.device;
  const old = vec(oldLogprobs, shape, dev), A = vec(advantages, shape, dev), M = vec(mask, shape, dev);
  const diff = F.sub(newLogprobs, old);
  const ratio = F.exp(diff);
  const negA = F.neg(A);
  const l1 = F.mul(negA, ratio);
  const l2 = F.mul(negA, exactClamp(ratio, new Array<number>(n).fill(1 - cliprange), new Array<number>(n).fill(1 + cliprange)));
  const lmax = F.maximum(l1, l2);
  let msum = 0;
  for (let i = 0; i < n; i++) msum += mask[i]!;
  const loss = F.scale(F.sum(F.mul(lmax, M)), 1 / msum);
  const a1 = l1.toArray(), a2 = l2.toArray(), d = diff.toArray(), r = ratio.toArray();
  let cf = 0, kl = 0, rm = 0;
  for (let i = 0; i < n; i++) {
    if (a2[i]! > a1[i]!) cf += mask[i]!;
    kl += d[i]! * d[i]!;
    rm += r[i]!;
  }
  return { loss, clipFrac: cf / msum, approxKl: (0.5 * kl) / n, ratioMean: rm / n };
}

export interface ValueLossOutput {
  loss: F32;
  /** fraction of masked positions where the clipped prediction gave the larger error */
  clipFrac: number;
}

/**
 * PPO's clipped value loss: 0.5 masked mean of max((v - R)^2, (clip(v, v_old - eps, v_old + eps) - R)^2).
 * vpred [B, T] is differentiable.
 * @example const { loss } = ppoValueLoss(vpred, oldValues, returns, mask, 0.2);
 */
export function ppoValueLoss(vpred: Tensor, oldValues: ArrayLike<number>, returns: ArrayLike<number>, mask: ArrayLike<number>, cliprangeValue = 0.2): ValueLossOutput {
  const shape = [...vpred.shape];
  const n = vpred.numel;
  checkLen('ppoValueLoss oldValues', oldValues, n);
  checkLen('ppoValueLoss returns', returns, n);
  checkLen('ppoValueLoss mask', mask, n);
  const R = vec(returns, shape, vpred.device), M = vec(mask, shape, vpred.device);
  // clip(v, old - eps, old + eps) elementwise: min(max(v, old - eps), old + eps)
  const clipped = exactClamp(vpred, Array.from(oldValues, (v) => Math.fround(v) - cliprangeValue), Array.from(oldValues, (v) => Math.fround(v) + cliprangeValue));
  const l1 = F.square(F.sub(vpred, R));
  const l2 = F.square(F.sub(clipped, R));
  const lmax = F.maximum(l1, l2);
  let msum = 0;
  for (let i = 0; i < n; i++) msum += mask[i]!;
  const loss = F.scale(F.sum(F.mul(lmax, M)), 0.5 / msum);
  const a1 = l1.toArray(), a2 = l2.toArray();
  let cf = 0;
  for (let i = 0; i < n; i++) if (a2[i]! > a1[i]!) cf += mask[i]!;
  return { loss, clipFrac: cf / msum };
}

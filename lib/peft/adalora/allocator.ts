/**
 * AdaLoRA's rank allocator (PEFT's RankAllocator): importance scores from the gradients, a cubic
 * budget schedule, and masking of the least important singular values across ALL adapted layers.
 * The per-element work (sensitivity EMAs, triplet scores, k-th smallest, masking) is native
 * (native/cpu/adalora.cpp); this file holds the schedule and the bookkeeping.
 *
 * Per parameter w with gradient g:  I = |w g|,  Ibar = b1 Ibar + (1-b1) I,
 * U = b2 U + (1-b2) |I - Ibar|,  s = Ibar U.  Triplet i of a layer scores
 * s(E_i) + mean_j s(A_ij) + mean_j s(B_ji).
 *
 * @example
 * const alloc = new RankAllocator(layers, { targetR: 4, tinit: 10, tfinal: 20, deltaT: 1, beta1: 0.85, beta2: 0.85, totalStep: 100 });
 * // after each optimizer step, before the gradients are cleared:
 * const { budget, pattern } = alloc.updateAndAllocate(step);
 */
import { run } from '../../tensor/kernels.js';
import { Tensor } from '../../tensor/tensor.js';
import { keep } from '../../tensor/scope.js';
import { TunekitError } from '../../errors.js';
import type { Device } from '../../tensor/device.js';

/** One adapted layer: its module path and SVD-form parameters A [r, in], E [r, 1], B [out, r]. */
export interface AllocatorLayer {
  name: string;
  A: Tensor;
  E: Tensor;
  B: Tensor;
}

export interface AllocatorOptions {
  targetR: number;
  tinit: number;
  tfinal: number;
  deltaT: number;
  beta1: number;
  beta2: number;
  totalStep: number;
  /**
   * What the budget counts: 'rank' (PEFT: initial sum of init_r, target targetR x layers) or
   * 'params' (each rank costs in + out + 1; target = LoRA r = targetR's count, targetR x sum(in + out)).
   */
  budgetUnit?: 'rank' | 'params';
}

/** Kept ranks per layer, keyed "<module path>.lora_E" as in PEFT's rank_pattern. */
export type RankPattern = Record<string, boolean[]>;

/**
 * PEFT's budget schedule: the total rank budget at `step` and whether to mask at this step.
 * Budget = init for step <= tinit; target after total - tfinal; in between
 * floor(target + (init - target) (1 - (step - tinit) / (total - tfinal - tinit))^3), masking
 * every deltaT steps.
 * @example budgetSchedule(5, { initBudget: 24, targetBudget: 12, tinit: 0, tfinal: 0, deltaT: 1, totalStep: 10 }) // { budget: 13, mask: true }
 */
export function budgetSchedule(step: number, o: { initBudget: number; targetBudget: number; tinit: number; tfinal: number; deltaT: number; totalStep: number }): { budget: number; mask: boolean } {
  if (step <= o.tinit) return { budget: o.initBudget, mask: false };
  if (step > o.totalStep - o.tfinal) return { budget: o.targetBudget, mask: true };
  const mul = 1 - (step - o.tinit) / (o.totalStep - o.tfinal - o.tinit);
  // Python's int() truncates toward zero; the value is positive here
  const budget = Math.trunc((o.initBudget - o.targetBudget) * mul ** 3 + o.targetBudget);
  return { budget, mask: step % o.deltaT === 0 };
}

function shape2(t: Tensor, what: string): [number, number] {
  if (t.ndim !== 2) throw new TunekitError('ERR_SHAPE', `AdaLoRA ${what}: expected a 2-D tensor but got [${t.shape}]`);
  return [t.shape[0]!, t.shape[1]!];
}

/** A contiguous f32 view (or copy) of a gradient, or null. The copy, if any, is returned for disposal. */
function gradArg(g: Tensor | null): { t: Tensor | null; owned: boolean } {
  if (!g) return { t: null, owned: false };
  if (g.isContiguous && g.dtype === 'f32') return { t: g, owned: false };
  return { t: g.contiguousRaw(), owned: true };
}

export class RankAllocator {
  readonly layers: AllocatorLayer[];
  readonly opts: AllocatorOptions;
  /** the budget before pruning: the sum of the layers' initial ranks, or of their parameters */
  readonly initBudget: number;
  /** the final budget: target_r x layers, or LoRA r = target_r's parameter count */
  readonly targetBudget: number;
  /** the total number of ranks over all layers (the length of the score buffer) */
  readonly totalRanks: number;
  private readonly dims: { r: number; inF: number; outF: number; offset: number }[];
  /** per layer: [Ibar_A | U_A | Ibar_E | U_E | Ibar_B | U_B] (native layout) */
  private readonly state: Tensor<'f32'>[];
  /** the triplet scores of every layer, concatenated */
  private scores: Tensor<'f32'>;
  private readonly keepMasks: Tensor<'u8'>[];
  /** parameters per rank (in + out + 1), one per entry of `scores`; null when the budget counts ranks */
  private costs: Tensor<'f32'> | null;

  constructor(layers: AllocatorLayer[], opts: AllocatorOptions) {
    if (layers.length === 0) throw new TunekitError('ERR_VALUE', 'AdaLoRA allocator: no adapted layers');
    this.layers = layers;
    this.opts = { ...opts };
    let offset = 0;
    this.dims = layers.map((l) => {
      const [r, inF] = shape2(l.A, `${l.name}.lora_A`);
      const [outF, rb] = shape2(l.B, `${l.name}.lora_B`);
      if (rb !== r || l.E.numel !== r) throw new TunekitError('ERR_SHAPE', `AdaLoRA ${l.name}: A [${l.A.shape}], E [${l.E.shape}], B [${l.B.shape}] do not form rank-${r} triplets`);
      const d = { r, inF, outF, offset };
      offset += r;
      return d;
    });
    this.totalRanks = offset;
    // the EMAs, scores, masks and costs live beside the adapters (on a GPU, in its memory)
    const device = layers[0]!.A.device;
    if (opts.budgetUnit === 'params') {
      const cost = new Float32Array(Math.max(1, offset));
      for (const d of this.dims) cost.fill(d.inF + d.outF + 1, d.offset, d.offset + d.r);
      this.costs = keep(Tensor.empty([cost.length], 'f32', true, device));
      this.costs.copyFrom(cost);
      this.initBudget = this.dims.reduce((s, d) => s + d.r * (d.inF + d.outF + 1), 0);
      this.targetBudget = opts.targetR * this.dims.reduce((s, d) => s + d.inF + d.outF, 0);
    } else {
      this.costs = null;
      this.initBudget = offset;
      this.targetBudget = opts.targetR * layers.length;
    }
    this.state = this.dims.map((d) => keep(Tensor.empty([2 * (d.r * d.inF + d.r + d.outF * d.r)], 'f32', true, device)));
    this.scores = keep(Tensor.empty([Math.max(1, offset)], 'f32', true, device));
    this.keepMasks = this.dims.map((d) => keep(Tensor.empty([Math.max(1, d.r)], 'u8', true, device)));
  }

  /**
   * Follows its model to `device` (AdaLoraModel.onMoved, from Module.to): the layers' A, E, B
   * become `swap(t)`, the moved parameters (the originals are disposed after the move), and the
   * EMAs, scores, masks and costs are copied there (the old ones freed), so the scores carry on.
   */
  moveTo(swap: (t: Tensor) => Tensor, device: Device): void {
    for (const l of this.layers) {
      l.A = swap(l.A);
      l.E = swap(l.E);
      l.B = swap(l.B);
    }
    const move = <T extends Tensor>(t: T): T => {
      if (t.device === device) return t;
      const n = keep(t.to(device)) as T;
      t.dispose();
      return n;
    };
    this.state.forEach((t, i) => { this.state[i] = move(t); });
    this.keepMasks.forEach((t, i) => { this.keepMasks[i] = move(t); });
    this.scores = move(this.scores);
    if (this.costs) this.costs = move(this.costs);
  }

  setTotalStep(totalStep: number): void {
    this.opts.totalStep = totalStep;
  }

  /** Budget and masking decision at `step` (PEFT's budget_schedule). */
  budgetSchedule(step: number): { budget: number; mask: boolean } {
    return budgetSchedule(step, { ...this.opts, initBudget: this.initBudget, targetBudget: this.targetBudget });
  }

  /** Forgets the sensitivity and uncertainty EMAs (PEFT's reset_ipt, at T - tfinal). */
  resetIpt(): void {
    for (const s of this.state) s.fill_(0);
  }

  /** Updates every layer's EMAs from the parameters and their current .grad (null counts as 0). */
  updateIpt(): void {
    const { beta1, beta2 } = this.opts;
    this.layers.forEach((l, i) => {
      const d = this.dims[i]!;
      const ga = gradArg(l.A.grad), ge = gradArg(l.E.grad), gb = gradArg(l.B.grad);
      try {
        run('adaloraUpdateScores', { a: l.A, ga: ga.t, e: l.E, ge: ge.t, b: l.B, gb: gb.t, state: this.state[i]!, scores: null,
          r: d.r, inF: d.inF, outF: d.outF, beta1, beta2, update: true });
      } finally {
        for (const g of [ga, gb, ge]) if (g.owned) g.t!.dispose();
      }
    });
  }

  /** Triplet scores of every layer (from the current EMAs), by layer name. */
  tripletScores(): Map<string, Float32Array> {
    this.computeScores();
    const all = this.scores.toTypedArray() as Float32Array;
    return new Map(this.layers.map((l, i) => [l.name, all.slice(this.dims[i]!.offset, this.dims[i]!.offset + this.dims[i]!.r)]));
  }

  private computeScores(): void {
    const { beta1, beta2 } = this.opts;
    this.layers.forEach((l, i) => {
      const d = this.dims[i]!;
      const scores = this.scores.viewAs([d.r], [1], d.offset); // this layer's part of the scores of all layers
      try {
        run('adaloraUpdateScores', { a: l.A, ga: null, e: l.E, ge: null, b: l.B, gb: null, state: this.state[i]!, scores,
          r: d.r, inF: d.inF, outF: d.outF, beta1, beta2, update: false });
      } finally {
        scores.dispose();
      }
    });
  }

  /**
   * Masks (E := 0) every rank whose score is <= the k-th smallest over all layers,
   * k = initBudget - budget (PEFT's mask_to_budget); with a budget in parameters, every rank
   * scored at or below the first one (best first) whose parameters no longer fit. Returns the kept ranks.
   */
  maskToBudget(budget: number): RankPattern {
    this.computeScores();
    let threshold: number;
    if (this.costs) {
      threshold = run('adaloraCostThreshold', { scores: this.scores, costs: this.costs, n: this.totalRanks, budget });
    } else {
      const k = this.initBudget - budget;
      // k <= 0: nothing to remove (PEFT would fail in kthvalue; the budget never exceeds init there)
      threshold = k >= 1 ? run('adaloraKthSmallest', { values: this.scores, n: this.totalRanks, k: Math.min(k, this.totalRanks) }) : -Infinity;
    }
    const pattern: RankPattern = {};
    this.layers.forEach((l, i) => {
      const d = this.dims[i]!;
      const m = this.keepMasks[i]!;
      const scores = this.scores.viewAs([d.r], [1], d.offset);
      try {
        run('adaloraMask', { e: l.E, scores, r: d.r, threshold, keep: m });
      } finally {
        scores.dispose();
      }
      pattern[`${l.name}.lora_E`] = Array.from((m.toTypedArray() as Uint8Array).subarray(0, d.r), (v) => v === 1);
    });
    return pattern;
  }

  /** Re-applies a frozen pattern (E_i := 0 for the ranks it drops), every step after T - tfinal. */
  maskUsingPattern(pattern: RankPattern): void {
    this.layers.forEach((l, i) => {
      const d = this.dims[i]!;
      const keepRow = pattern[`${l.name}.lora_E`];
      if (!keepRow) throw new TunekitError('ERR_VALUE', `AdaLoRA rank_pattern has no entry for ${l.name}.lora_E`);
      if (keepRow.length !== d.r) throw new TunekitError('ERR_SHAPE', `AdaLoRA rank_pattern for ${l.name} has ${keepRow.length} entries but the layer has rank ${d.r}`);
      const m = this.keepMasks[i]!;
      m.copyFrom(Uint8Array.from(keepRow, (b) => (b ? 1 : 0)));
      run('adaloraApplyPattern', { e: l.E, keep: m, r: d.r });
    });
  }

  /**
   * PEFT's RankAllocator.update_and_allocate: EMAs (before T - tfinal), then the budget, then
   * masking when the schedule says so (or `force`). Returns the budget and the new pattern (null
   * when nothing was masked).
   */
  updateAndAllocate(step: number, force = false): { budget: number; pattern: RankPattern | null } {
    if (step < this.opts.totalStep - this.opts.tfinal) this.updateIpt();
    const { budget, mask } = this.budgetSchedule(step);
    return { budget, pattern: mask || force ? this.maskToBudget(budget) : null };
  }

  /** Frees the allocator's native buffers. */
  dispose(): void {
    for (const t of [...this.state, this.scores, ...this.keepMasks]) t.dispose();
    this.costs?.dispose();
  }
}

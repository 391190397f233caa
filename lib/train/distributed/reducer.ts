/**
 * Gradient all-reduce in buckets that start during the backward pass, as PyTorch DDP's Reducer
 * (torch/csrc/distributed/c10d/reducer.cpp) does:
 *
 * - the trainable parameters are grouped into buckets in reverse order of registration (about the
 *   order backward produces their gradients: the last layers first), a small first bucket
 *   (DDP's 1 MiB) so that communication starts early, then buckets of `bucketBytes`;
 * - a gradient hook (autograd/tape.ts registerGradReadyHook) on each parameter copies its
 *   finished gradient into its bucket's flat f32 buffer; when a bucket is full its all-reduce
 *   starts at once, on the communication thread, while backward goes on computing the rest;
 * - buckets start strictly in index order (a full bucket waits for the ones before it), so that
 *   every rank starts the same operations in the same order, whatever order its hooks fired in;
 * - hooks act only on the last micro-batch of an update (DDP's no_sync for the others: gradient
 *   accumulation sums locally, one all-reduce per update);
 * - finish() starts the buckets no hook completed (a parameter without a gradient on this rank:
 *   unused, or a rank with no examples in the step, contributes zeros), waits for all of them,
 *   and copies the reduced values back into `.grad`.
 *
 * Gradients are summed over ranks, not averaged: the trainer scales each rank's loss so that the
 * sum is the gradient of the combined batch (data_parallel.ts).
 */
import { Tensor } from '../../tensor/tensor.js';
import { zeros } from '../../tensor/creation.js';
import { keep } from '../../tensor/scope.js';
import { registerGradReadyHook } from '../../autograd/tape.js';
import { TunekitError } from '../../errors.js';
import type { ProcessGroup, Work } from './process_group.js';

export interface ReducerOptions {
  /** bytes per bucket after the first (DDP's bucket_cap_mb, 25 MiB) */
  bucketBytes?: number;
  /** bytes of the first bucket (DDP's 1 MiB): the last layers' gradients start moving early */
  firstBucketBytes?: number;
}

interface Slot {
  name: string;
  param: Tensor;
  bucket: number;
  /** element offset in the bucket's buffer */
  offset: number;
}

interface Bucket {
  slots: Slot[];
  numel: number;
  /** flat f32 [numel]: the gradients, then (after the all-reduce) their sum over ranks */
  flat: Tensor<'f32'>;
  /** slots whose gradient has not arrived in this pass */
  missing: number;
  work: Work | null;
}

/** What one update's reduction did, for the step's figures. */
export interface ReductionReport {
  buckets: number;
  bytes: number;
  /** buckets started by gradient hooks, during backward */
  startedInBackward: number;
  /** seconds the training thread waited in finish() (communication not hidden behind backward) */
  waitSeconds: number;
}

/**
 * Buckets of trainable parameters and their all-reduce. One per training run.
 * @example
 * const reducer = new GradientReducer(group, model.trainableParameters());
 * reducer.arm(); backward(loss); const report = reducer.finish(); // .grad now holds the sum over ranks
 */
export class GradientReducer {
  readonly buckets: Bucket[] = [];
  private readonly slotOf = new Map<Tensor, Slot>();
  private readonly removers: (() => void)[] = [];
  private armed = false;
  /** the next bucket to start (they start in index order) */
  private next = 0;
  private startedInBackward = 0;
  /** slots whose gradient was packed in this pass (their hook ran while armed) */
  private readonly packed = new Set<Slot>();
  private disposed = false;

  constructor(private readonly group: ProcessGroup, params: readonly [string, Tensor][], opts: ReducerOptions = {}) {
    const capBytes = opts.bucketBytes ?? 25 * 2 ** 20;
    const firstBytes = Math.min(opts.firstBucketBytes ?? 2 ** 20, capBytes);
    if (!(capBytes > 0) || !(firstBytes > 0)) throw new TunekitError('ERR_CONFIG', `distributed.bucket_mb: expected a positive size but received ${capBytes / 2 ** 20} MiB`);
    let current: Slot[] = [];
    let numel = 0;
    const close = () => {
      if (current.length === 0) return;
      const flat = keep(zeros([numel])) as Tensor<'f32'>;
      this.buckets.push({ slots: current, numel, flat, missing: current.length, work: null });
      current = [];
      numel = 0;
    };
    for (let i = params.length - 1; i >= 0; i--) {
      const [name, param] = params[i]!;
      if (param.dtype !== 'f32') throw new TunekitError('ERR_DTYPE', `data-parallel training: parameter '${name}' is ${param.dtype}; trainable parameters must be f32`);
      if (this.slotOf.has(param)) continue;
      const slot: Slot = { name, param, bucket: this.buckets.length, offset: numel };
      current.push(slot);
      this.slotOf.set(param, slot);
      numel += param.numel;
      const cap = this.buckets.length === 0 ? firstBytes : capBytes;
      if (numel * 4 >= cap) close();
    }
    close();
    for (const slot of this.slotOf.values()) this.removers.push(registerGradReadyHook(slot.param, (p) => this.ready(p)));
  }

  /** Bytes all-reduced per update (every trainable parameter's gradient, f32). */
  get bytesPerUpdate(): number {
    return this.buckets.reduce((n, b) => n + b.numel * 4, 0);
  }

  /** Hooks act from now until finish(): call before the backward of an update's last micro-batch. */
  arm(): void {
    if (this.disposed) throw new TunekitError('ERR_STATE', 'the gradient reducer was disposed');
    if (this.armed) throw new TunekitError('ERR_STATE', 'the gradient reducer is already armed (finish() the update first)');
    this.armed = true;
    this.next = 0;
    this.startedInBackward = 0;
    this.packed.clear();
    for (const b of this.buckets) {
      b.missing = b.slots.length;
      b.work = null;
    }
  }

  /** A parameter's gradient is final for this pass: into its bucket; start the buckets that are full. */
  private ready(param: Tensor): void {
    if (!this.armed) return;
    const slot = this.slotOf.get(param)!;
    const bucket = this.buckets[slot.bucket]!;
    if (bucket.work || this.packed.has(slot)) return;
    this.pack(slot, bucket);
    this.packed.add(slot);
    bucket.missing--;
    if (bucket.missing === 0) this.startReady(true);
  }

  private pack(slot: Slot, bucket: Bucket): void {
    const g = slot.param.grad;
    // the slot's part of the bucket: a view, filled in place
    const dst = bucket.flat.viewAs([slot.param.numel], [1], bucket.flat.offset + slot.offset);
    if (g) dst.assign(g);
    else dst.fill_(0);
    dst.dispose();
  }

  /** Starts, in order, every bucket from `next` whose gradients are all in. */
  private startReady(inBackward: boolean): void {
    while (this.next < this.buckets.length && this.buckets[this.next]!.missing === 0) {
      const b = this.buckets[this.next]!;
      b.work = this.group.allreduce(b.flat, 'sum', `all-reduce of gradient bucket ${this.next + 1} of ${this.buckets.length} (${(b.numel * 4 / 1e6).toFixed(2)} MB)`);
      if (inBackward) this.startedInBackward++;
      this.next++;
    }
  }

  /**
   * Ends the update's reduction: the buckets no hook completed are packed (zeros for parameters
   * without a gradient) and started, all are waited for, and every parameter's `.grad` becomes
   * the sum over ranks (a parameter without one gets it).
   */
  finish(): ReductionReport {
    if (!this.armed) throw new TunekitError('ERR_STATE', 'finish() without arm()');
    this.armed = false;
    for (const b of this.buckets) {
      if (b.missing === 0) continue;
      for (const slot of b.slots) if (!this.packed.has(slot)) this.pack(slot, b);
      b.missing = 0;
    }
    this.startReady(false);
    const t0 = performance.now();
    for (const b of this.buckets) b.work!.wait();
    const waitSeconds = (performance.now() - t0) / 1000;
    for (const b of this.buckets) {
      for (const slot of b.slots) {
        const p = slot.param;
        if (!p.grad) p.grad = keep(zeros(p.shape, 'f32', p.device)) as Tensor<'f32'>; // beside its parameter (assign copies across devices)
        const part = b.flat.viewAs([p.numel], [1], b.flat.offset + slot.offset);
        p.grad.assign(part);
        part.dispose();
      }
    }
    return { buckets: this.buckets.length, bytes: this.bytesPerUpdate, startedInBackward: this.startedInBackward, waitSeconds };
  }

  /** Removes the hooks and frees the buffers. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const remove of this.removers) remove();
    for (const b of this.buckets) b.flat.dispose();
  }
}

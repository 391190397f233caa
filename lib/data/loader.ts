/**
 * DataLoader: batches over a list of examples with a seeded shuffle per epoch and a position
 * that can be saved and restored, so that a resumed run sees exactly the batches it would have.
 */

import { TunekitError, describe } from '../errors.js';
import { deriveSeed, permutation } from './rng.js';

/** Serialisable loader position: `index` examples of epoch `epoch` have been handed out. */
export interface LoaderState {
  epoch: number;
  index: number;
  seed: number;
}

export interface DataLoaderOptions<T, B> {
  batchSize: number;
  /** Shuffle each epoch (default true). */
  shuffle?: boolean;
  /** Base seed; epoch e uses a seed derived from (seed, e). Default 42. */
  seed?: number;
  /** Drop the last incomplete batch of each epoch (default false). */
  dropLast?: boolean;
  /** Turns a list of examples into a batch (e.g. {@link makeCollator}); default: the list itself. */
  collate?: (items: T[]) => B;
}

export interface LoaderBatch<B> {
  data: B;
  /** Epoch this batch belongs to (0-based). */
  epoch: number;
  /** Index of this batch within its epoch. */
  batchIndex: number;
  /** Number of examples in the batch. */
  size: number;
}

/**
 * Batches over examples.
 *
 * @example
 * const loader = new DataLoader(examples, { batchSize: 16, seed: 1, collate: makeCollator({ tokenizer }) });
 * for (const { data } of loader.epoch()) trainStep(data);   // one epoch
 * const saved = loader.state();                             // { epoch: 1, index: 0, seed: 1 }
 * loader.restore(saved);                                    // resume exactly there
 */
export class DataLoader<T, B = T[]> {
  readonly batchSize: number;
  readonly shuffle: boolean;
  readonly dropLast: boolean;
  private seed: number;
  private epochNo = 0;
  private index = 0;
  private order: number[] | null = null;
  private orderEpoch = -1;
  private readonly collateFn: (items: T[]) => B;

  constructor(private readonly items: readonly T[], opts: DataLoaderOptions<T, B>) {
    if (!Number.isInteger(opts.batchSize) || opts.batchSize < 1) {
      throw new TunekitError('ERR_VALUE', `Expected a positive integer for batchSize but received ${describe(opts.batchSize)}`);
    }
    if (items.length === 0) throw new TunekitError('ERR_VALUE', 'Expected at least one example for the DataLoader but received none');
    this.batchSize = opts.batchSize;
    this.shuffle = opts.shuffle ?? true;
    this.dropLast = opts.dropLast ?? false;
    this.seed = opts.seed ?? 42;
    if (!Number.isSafeInteger(this.seed)) throw new TunekitError('ERR_VALUE', `Expected a safe integer for seed but received ${describe(this.seed)}`);
    if (this.dropLast && items.length < this.batchSize) {
      throw new TunekitError('ERR_VALUE', `Expected at least batchSize (${this.batchSize}) examples with dropLast but received ${items.length}`);
    }
    this.collateFn = opts.collate ?? ((x: T[]) => x as unknown as B);
  }

  /** Number of examples. */
  get length(): number {
    return this.items.length;
  }

  /** Batches in one epoch. */
  get batchesPerEpoch(): number {
    return this.dropLast ? Math.floor(this.items.length / this.batchSize) : Math.ceil(this.items.length / this.batchSize);
  }

  /** Examples actually used per epoch (all of them unless dropLast). */
  private get usable(): number {
    return this.dropLast ? this.batchesPerEpoch * this.batchSize : this.items.length;
  }

  /** The example order of an epoch (a permutation of 0..n-1). */
  orderFor(epoch: number): number[] {
    if (this.orderEpoch === epoch && this.order) return this.order;
    const n = this.items.length;
    this.order = this.shuffle ? permutation(n, deriveSeed(this.seed, epoch)) : Array.from({ length: n }, (_, i) => i);
    this.orderEpoch = epoch;
    return this.order;
  }

  /**
   * The next batch, moving into the next epoch when this one is done.
   *
   * @example
   * const { data, epoch } = loader.next();
   */
  next(): LoaderBatch<B> {
    if (this.index >= this.usable) {
      this.epochNo++;
      this.index = 0;
    }
    const order = this.orderFor(this.epochNo);
    const end = Math.min(this.index + this.batchSize, this.usable);
    const picked = order.slice(this.index, end).map((i) => this.items[i]!);
    const batchIndex = Math.floor(this.index / this.batchSize);
    const epoch = this.epochNo;
    this.index = end;
    return { data: this.collateFn(picked), epoch, batchIndex, size: picked.length };
  }

  /**
   * Iterates over the remaining batches of the current epoch (all of it from a fresh
   * position); afterwards the position is the start of the next epoch.
   *
   * @example
   * for (let e = 0; e < 3; e++) for (const b of loader.epoch()) step(b.data);
   */
  *epoch(): Generator<LoaderBatch<B>> {
    if (this.index >= this.usable) {
      this.epochNo++;
      this.index = 0;
    }
    const e = this.epochNo;
    while (this.epochNo === e && this.index < this.usable) yield this.next();
    if (this.epochNo === e) {
      this.epochNo++;
      this.index = 0;
    }
  }

  /**
   * The current position, as plain JSON.
   *
   * @example
   * writeJsonAtomic('ckpt/loader.json', loader.state());
   */
  state(): LoaderState {
    return { epoch: this.epochNo, index: this.index, seed: this.seed };
  }

  /**
   * Moves to a saved position.
   *
   * @example
   * loader.restore(JSON.parse(readFileSync('ckpt/loader.json', 'utf8')));
   */
  restore(state: LoaderState): void {
    const { epoch, index, seed } = state ?? ({} as LoaderState);
    if (!Number.isInteger(epoch) || epoch < 0) throw new TunekitError('ERR_STATE', `Expected a non-negative integer for state.epoch but received ${describe(epoch)}`);
    if (!Number.isInteger(index) || index < 0 || index > this.usable) {
      throw new TunekitError('ERR_STATE', `Expected an integer in [0, ${this.usable}] for state.index (the dataset has ${this.items.length} examples) but received ${describe(index)}`);
    }
    if (!Number.isSafeInteger(seed)) throw new TunekitError('ERR_STATE', `Expected a safe integer for state.seed but received ${describe(seed)}`);
    this.epochNo = epoch;
    this.index = index;
    this.seed = seed;
    this.order = null;
    this.orderEpoch = -1;
  }
}

/**
 * Batching: dynamic padding to the longest example in the batch (optionally rounded up to a
 * multiple, e.g. 8 for tensor cores), right padding by default.
 */

import { TunekitError, describe } from '../errors.js';
import { IGNORE_INDEX, type Batch, type CausalLmExample, type ClassificationExample, type TokenizerLike } from './types.js';

export interface CollateOptions {
  /** Token id used for padding. Default: tokenizer.padTokenId ?? tokenizer.eosTokenId ?? 0. */
  padTokenId?: number;
  tokenizer?: TokenizerLike;
  /** Round the padded length up to a multiple of this (e.g. 8). */
  padToMultipleOf?: number;
  /** 'right' (default) or 'left' (for batched generation). */
  paddingSide?: 'right' | 'left';
  /** Pad every batch to exactly this length instead of the longest (examples must not be longer). */
  fixedLength?: number;
}

/**
 * The pad id that a collator will use.
 *
 * @example
 * resolvePadId({ tokenizer: gpt2Tok }); // 50256 (GPT-2 has no pad token: EOS is used)
 */
export function resolvePadId(opts: CollateOptions): number {
  return opts.padTokenId ?? opts.tokenizer?.padTokenId ?? opts.tokenizer?.eosTokenId ?? 0;
}

/**
 * Pads a list of examples into one batch. Causal-LM examples give `labels` (-100 on padding);
 * classification examples give `classLabels`.
 *
 * @example
 * const batch = collate([{ inputIds: [5, 6, 7], label: 1 }, { inputIds: [8], label: 0 }], { padTokenId: 0 });
 * // batch.inputIds = Int32Array [5, 6, 7, 8, 0, 0], attentionMask [1, 1, 1, 1, 0, 0], classLabels [1, 0], seqLen 3
 */
export function collate(examples: Array<CausalLmExample | ClassificationExample>, opts: CollateOptions = {}): Batch {
  const B = examples.length;
  if (B === 0) throw new TunekitError('ERR_VALUE', 'Expected at least one example to collate but received an empty list');
  const isCls = 'label' in examples[0]!;
  let longest = 0;
  examples.forEach((ex, i) => {
    if (('label' in ex) !== isCls) {
      throw new TunekitError('ERR_VALUE', `Expected every example in a batch to be ${isCls ? 'classification' : 'causal-LM'} but example ${i} is not`);
    }
    if (!isCls && (ex as CausalLmExample).labels.length !== ex.inputIds.length) {
      throw new TunekitError('ERR_VALUE', `Expected labels as long as inputIds in example ${i} but received ${(ex as CausalLmExample).labels.length} and ${ex.inputIds.length}`);
    }
    if (ex.inputIds.length > longest) longest = ex.inputIds.length;
  });
  let T = longest;
  if (opts.fixedLength !== undefined) {
    if (longest > opts.fixedLength) {
      throw new TunekitError('ERR_VALUE', `Expected examples of at most ${opts.fixedLength} tokens (fixedLength) but received one of ${longest}`);
    }
    T = opts.fixedLength;
  }
  const m = opts.padToMultipleOf;
  if (m !== undefined) {
    if (!Number.isInteger(m) || m < 1) throw new TunekitError('ERR_VALUE', `Expected a positive integer for padToMultipleOf but received ${describe(m)}`);
    T = Math.ceil(T / m) * m;
  }
  if (T === 0) throw new TunekitError('ERR_VALUE', 'Expected at least one token in the batch but every example is empty');
  const side = opts.paddingSide ?? 'right';
  if (side !== 'right' && side !== 'left') throw new TunekitError('ERR_VALUE', `Expected 'right' or 'left' for paddingSide but received ${describe(side)}`);
  const pad = resolvePadId(opts);
  const inputIds = new Int32Array(B * T).fill(pad);
  const attentionMask = new Int32Array(B * T);
  const labels = isCls ? undefined : new Int32Array(B * T).fill(IGNORE_INDEX);
  const classLabels = isCls ? new Int32Array(B) : undefined;
  for (let b = 0; b < B; b++) {
    const ex = examples[b]!;
    const n = ex.inputIds.length;
    const off = b * T + (side === 'left' ? T - n : 0);
    inputIds.set(ex.inputIds, off);
    attentionMask.fill(1, off, off + n);
    if (labels) labels.set((ex as CausalLmExample).labels, off);
    if (classLabels) classLabels[b] = (ex as ClassificationExample).label;
  }
  const batch: Batch = { inputIds, attentionMask, batch: B, seqLen: T };
  if (labels) batch.labels = labels;
  if (classLabels) batch.classLabels = classLabels;
  return batch;
}

/**
 * A collate function with options bound, for {@link DataLoader}.
 *
 * @example
 * const loader = new DataLoader(examples, { batchSize: 8, seed: 1, collate: makeCollator({ tokenizer: tok, padToMultipleOf: 8 }) });
 */
export function makeCollator(opts: CollateOptions = {}): (examples: Array<CausalLmExample | ClassificationExample>) => Batch {
  return (examples) => collate(examples, opts);
}

/**
 * The running batch's KV cache: one [B, Hkv, T, D] key and value tensor per layer (what the
 * models' forward extends by one column per decode step), each sequence a row whose real tokens
 * are the last `len` columns (left padding, masked out: the attention mask is 0 there).
 *
 * When sequences join or leave, the batch is rebuilt from its rows: each kept row's real columns
 * are copied, right-aligned, into a batch as long as its longest row, so finished sequences free
 * their rows and columns nobody needs any more are dropped. Padding is written as zeros: masked
 * scores get probability exactly 0, and 0 times a finite value is 0 (garbage could be NaN).
 */
import { Tensor } from '../tensor/tensor.js';
import { zeros } from '../tensor/creation.js';
import { concat } from '../tensor/kernels.js';
import { keep } from '../tensor/scope.js';
import type { LayerKV } from '../models/common.js';

/** Where a row of the new batch comes from: row `row` of `cache`, whose last `len` columns are real. */
export interface RowSource {
  cache: LayerKV[];
  row: number;
  len: number;
}

/** Last `len` time columns of row `row` of a contiguous [B, H, T, D] tensor, as a [1, H, len, D] view. */
function rowView(t: Tensor, row: number, len: number): Tensor {
  const [, H, T, D] = t.shape as [number, number, number, number];
  return t.viewAs([1, H, len, D], [H * T * D, T * D, D, 1], t.offset + (row * H * T + (T - len)) * D);
}

/**
 * A new batch cache whose row i is sources[i]'s real columns right-aligned in T = max len
 * columns (zeros before them). The sources are left as they are (the caller frees them).
 * @example const next = gatherKvRows([{ cache: running, row: 0, len: 12 }, { cache: prefill, row: 1, len: 5 }]);
 */
export function gatherKvRows(sources: readonly RowSource[], numLayers: number): LayerKV[] {
  const T = Math.max(...sources.map((s) => s.len));
  const out: LayerKV[] = [];
  for (let l = 0; l < numLayers; l++) {
    const pick = (which: 'k' | 'v'): Tensor<'f32'> => {
      const parts: Tensor[] = [];
      const temps: Tensor[] = [];
      for (const s of sources) {
        const src = s.cache[l]![which];
        if (!src.isContiguous) throw new Error('gatherKvRows: expected contiguous cache tensors');
        const v = rowView(src, s.row, s.len);
        temps.push(v);
        if (s.len === T) {
          parts.push(v);
        } else {
          const [, H, , D] = src.shape as [number, number, number, number];
          const pad = zeros([1, H, T - s.len, D], 'f32', src.device);
          const row = concat([pad, v], 2);
          temps.push(pad, row);
          parts.push(row);
        }
      }
      const batch = concat(parts, 0) as Tensor<'f32'>;
      for (const t of temps) t.dispose();
      return keep(batch);
    };
    out.push({ k: pick('k'), v: pick('v') });
  }
  return out;
}

/** Frees every tensor of a cache. */
export function disposeKv(cache: LayerKV[]): void {
  for (const kv of cache) {
    kv.k.dispose();
    kv.v.dispose();
  }
  cache.length = 0;
}

/**
 * Attention mask [B, T + fresh] for a batch whose rows have `lens` real columns of T cached ones,
 * plus `fresh` new tokens each (left padding 0, real tokens 1).
 */
export function batchMask(lens: readonly number[], T: number, fresh: number): Int32Array {
  const W = T + fresh;
  const m = new Int32Array(lens.length * W);
  lens.forEach((len, b) => m.fill(1, b * W + (T - len), (b + 1) * W));
  return m;
}

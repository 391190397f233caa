/**
 * One call from a config's `dataset` block to normalised train/eval records: a built-in
 * dataset (fixed split), a file with a separate eval file, or a file split with a seed.
 */

import { TunekitError } from '../errors.js';
import { loadBuiltin } from './builtin.js';
import { normalizeRecords } from './formats.js';
import { loadRecords, type FileFormat } from './load.js';
import { splitTrainEval } from './split.js';
import type { NormalizedRecord, RecordFormat } from './types.js';

export interface DatasetSpec {
  /** File path or "builtin:<name>". */
  path: string;
  format?: FileFormat;
  recordFormat?: RecordFormat;
  textField?: string;
  labelField?: string;
  onError?: 'fail' | 'skip';
  /** Invalid UTF-8 bytes: 'fail' (default) or 'replace' (read as U+FFFD, counted in `warnings`). */
  invalidUtf8?: 'fail' | 'replace';
  eval?: { path?: string; fraction?: number; size?: number; seed?: number };
}

export interface DatasetSplits {
  format: RecordFormat;
  train: NormalizedRecord[];
  eval: NormalizedRecord[];
  /** Malformed rows skipped (onError 'skip'), train and eval files together. */
  skipped: number;
  skipReasons: string[];
  /** Invalid UTF-8 sequences read as U+FFFD (invalidUtf8 'replace'), train and eval files together. */
  invalidUtf8: number;
  /** Messages for the user (e.g. how many invalid UTF-8 sequences were replaced, and where). */
  warnings: string[];
}

/**
 * Loads and splits a dataset. Without an eval path/fraction/size, 10% of a file is held out
 * (seed 42); built-in datasets always use their fixed splits.
 *
 * @example
 * const { train, eval: ev, format } = await loadDataset({ path: 'data/train.jsonl', eval: { fraction: 0.05 } });
 * const spam = await loadDataset({ path: 'builtin:spam-assassin' }); // 4,836 / 1,210
 */
export async function loadDataset(spec: DatasetSpec): Promise<DatasetSplits> {
  if (spec.path.startsWith('builtin:')) {
    const b = loadBuiltin(spec.path);
    return { format: b.format, train: b.train, eval: b.eval, skipped: 0, skipReasons: [], invalidUtf8: 0, warnings: [] };
  }
  const norm = { format: spec.recordFormat, textField: spec.textField, labelField: spec.labelField };
  const read = { format: spec.format, onError: spec.onError, invalidUtf8: spec.invalidUtf8 };
  const loaded = await loadRecords(spec.path, read);
  const { format, records } = normalizeRecords(loaded, norm);
  const ev = spec.eval ?? {};
  if (ev.path) {
    const loadedEval = await loadRecords(ev.path, read);
    const evalNorm = normalizeRecords(loadedEval, { ...norm, format });
    return {
      format,
      train: records,
      eval: evalNorm.records,
      skipped: loaded.skipped + loadedEval.skipped,
      skipReasons: [...loaded.skipReasons, ...loadedEval.skipReasons],
      invalidUtf8: loaded.invalidUtf8 + loadedEval.invalidUtf8,
      warnings: [...loaded.warnings, ...loadedEval.warnings],
    };
  }
  if (records.length < 2) {
    throw new TunekitError('ERR_VALUE', `Expected at least 2 records in ${spec.path} to hold some out for evaluation but received ${records.length} (give dataset.eval.path)`);
  }
  const split = splitTrainEval(records, ev.size !== undefined ? { evalSize: ev.size, seed: ev.seed ?? 42 } : { evalFraction: ev.fraction ?? 0.1, seed: ev.seed ?? 42 });
  return { format, train: split.train, eval: split.eval, skipped: loaded.skipped, skipReasons: loaded.skipReasons, invalidUtf8: loaded.invalidUtf8, warnings: loaded.warnings };
}

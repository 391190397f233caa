/**
 * Label maps for classification: built from the training split (sorted), then applied to every
 * split, so that an evaluation label never seen in training is an error rather than a new class.
 */

import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { TunekitError, describe } from '../errors.js';
import { whereIs } from './load.js';
import type { LabelledRecord } from './types.js';

export interface LabelMap {
  /** 'int': labels are class ids already. 'string': labels are names, ids by sorted order. */
  kind: 'int' | 'string';
  /** Class names by id (for 'int', the ids as strings). */
  names: string[];
  numLabels: number;
}

const INT_RE = /^-?\d+$/;

function isIntLike(v: string | number): boolean {
  return typeof v === 'number' ? Number.isInteger(v) : INT_RE.test(v.trim());
}

/**
 * Builds the label map from the training records. Integer labels (or integer strings, as CSV
 * gives them) are class ids 0..numLabels-1; string labels are sorted and numbered.
 *
 * @example
 * buildLabelMap([{ kind: 'labelled', text: 'x', label: 'spam' }, { kind: 'labelled', text: 'y', label: 'ham' }]);
 * // { kind: 'string', names: ['ham', 'spam'], numLabels: 2 }
 */
export function buildLabelMap(train: LabelledRecord[], opts: { numLabels?: number } = {}): LabelMap {
  if (train.length === 0) throw new TunekitError('ERR_VALUE', 'Expected at least one labelled record to build a label map but received none');
  if (train.every((r) => isIntLike(r.label))) {
    let max = -1;
    train.forEach((r, i) => {
      const v = Number(r.label);
      if (v < 0) throw new TunekitError('ERR_VALUE', `${whereIs(r.source, i)}: Expected a label >= 0 but received ${describe(r.label)}`);
      if (v > max) max = v;
    });
    const numLabels = opts.numLabels ?? max + 1;
    const map: LabelMap = { kind: 'int', names: Array.from({ length: numLabels }, (_, i) => String(i)), numLabels };
    train.forEach((r, i) => encodeLabel(map, r.label, whereIs(r.source, i)));
    return map;
  }
  const names = [...new Set(train.map((r) => String(r.label)))].sort();
  if (opts.numLabels !== undefined && opts.numLabels !== names.length) {
    throw new TunekitError('ERR_VALUE', `Expected ${opts.numLabels} distinct labels (numLabels) but the training split has ${names.length}: ${describe(names)}`);
  }
  return { kind: 'string', names, numLabels: names.length };
}

/**
 * Maps one label to its class id; `where` names the row in the error.
 *
 * @example
 * encodeLabel(map, 'spam', 'train.jsonl:3'); // 1
 */
export function encodeLabel(map: LabelMap, label: string | number, where: string): number {
  if (map.kind === 'int') {
    if (!isIntLike(label)) {
      throw new TunekitError('ERR_VALUE', `${where}: Expected an integer label in [0, ${map.numLabels - 1}] but received ${describe(label)}`);
    }
    const v = Number(label);
    if (v < 0 || v >= map.numLabels) {
      throw new TunekitError('ERR_VALUE', `${where}: Expected a label in [0, ${map.numLabels - 1}] but received ${v} (out of range)`);
    }
    return v;
  }
  const idx = map.names.indexOf(String(label));
  if (idx < 0) {
    throw new TunekitError('ERR_VALUE', `${where}: Expected one of the training labels ${describe(map.names)} but received unknown label ${describe(label)}`);
  }
  return idx;
}

/**
 * The side file a run writes into its adapter folder: `{ id2label, label2id }` as in config.json
 * (PEFT's adapter_config.json has no field for label names; PEFT ignores other files).
 */
export const LABELS_FILE = 'labels.json';

/**
 * The Hugging Face config fields for a label map.
 *
 * @example
 * labelMapToConfig(map); // { id2label: { '0': 'ham', '1': 'spam' }, label2id: { ham: 0, spam: 1 } }
 */
export function labelMapToConfig(map: LabelMap): { id2label: Record<string, string>; label2id: Record<string, number> } {
  const id2label: Record<string, string> = {};
  const label2id: Record<string, number> = {};
  map.names.forEach((n, i) => {
    id2label[String(i)] = n;
    label2id[n] = i;
  });
  return { id2label, label2id };
}

/**
 * Label names from a folder's LABELS_FILE (id order), or null when the folder has none. The file
 * is checked: ids 0..n-1 each named once by a non-empty string.
 *
 * @example
 * readLabelNames('runs/spam-lora/adapter'); // ['ham', 'spam']
 */
export function readLabelNames(dir: string): string[] | null {
  const path = join(dir, LABELS_FILE);
  if (!existsSync(path)) return null;
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new TunekitError('ERR_FORMAT', `${path}: not valid JSON (${(e as Error).message})`);
  }
  const id2label = (parsed as { id2label?: unknown } | null)?.id2label;
  if (!id2label || typeof id2label !== 'object' || Array.isArray(id2label)) throw new TunekitError('ERR_FORMAT', `${path}: expected {"id2label": {"0": name, ...}} but received ${describe(parsed)}`);
  const entries = Object.entries(id2label as Record<string, unknown>);
  const names: string[] = [];
  for (let i = 0; i < entries.length; i++) {
    const name = (id2label as Record<string, unknown>)[String(i)];
    if (typeof name !== 'string' || name === '') throw new TunekitError('ERR_FORMAT', `${path}: id2label must name ids 0..${entries.length - 1} with non-empty strings, but id ${i} is ${describe(name)}`);
    names.push(name);
  }
  if (new Set(names).size !== names.length) throw new TunekitError('ERR_FORMAT', `${path}: id2label names a label twice (${describe(names)})`);
  return names;
}

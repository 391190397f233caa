/**
 * Label maps for classification: built from the training split (sorted), then applied to every
 * split, so that an evaluation label never seen in training is an error rather than a new class.
 *
 * Labels are untrusted input: an integer label is a class id, and the head gets one row per
 * class, so a label of 2,000,000,000 must not become a 2e9-row array. Every map is checked
 * against {@link MAX_NUM_LABELS} before anything per class is allocated, and sparse integer
 * labels (say 3, 17 and 900) are taken as names rather than as ids of a mostly-empty head.
 */

import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { TunekitError, describe } from '../errors.js';
import { whereIs } from './load.js';
import type { NormalizedRecord } from './types.js';

export interface LabelMap {
  /** 'int': labels are class ids already. 'string': labels are names, ids by sorted order. */
  kind: 'int' | 'string';
  /** Class names by id (for 'int', the ids as strings). */
  names: string[];
  numLabels: number;
}

/**
 * Most classes a label map may have: 32,768. A head of hidden x 32,768 f32 weights is 512 MiB at
 * hidden 4,096; more classes than this is extreme classification, which wants another method.
 */
export const MAX_NUM_LABELS = 32_768;

/**
 * Integer labels are class ids only while they are dense enough: at most this many ids, beyond
 * the distinct labels seen, may go unused (plus as many again as there are distinct labels, so
 * {1..5} star ratings or {0, 4} sentiment labels stay ids). Sparser integers are names.
 */
const MAX_UNUSED_IDS = 16;

const INT_RE = /^-?\d+$/;

/** An integer, or a string spelling one, that a double holds exactly (larger ones are names). */
function isIntLike(v: string | number): boolean {
  if (typeof v === 'number') return Number.isSafeInteger(v);
  const t = v.trim();
  return INT_RE.test(t) && Number.isSafeInteger(Number(t));
}

/** The canonical name of an integer-like label ('007', ' 7' and 7 are all '7'). */
function intName(v: string | number): string {
  return String(Number(typeof v === 'string' ? v.trim() : v));
}

/**
 * Whether integer class ids 0..max (with `distinct` of them used) are dense enough to be ids.
 *
 * @example
 * denseIds(4, 2);           // true: {0, 4} gives 5 classes, 3 unused
 * denseIds(2_000_000_000, 2); // false: taken as names
 */
export function denseIds(max: number, distinct: number): boolean {
  const classes = max + 1;
  return classes <= MAX_NUM_LABELS && classes - distinct <= Math.max(distinct, MAX_UNUSED_IDS);
}

function tooManyLabels(count: number, what: string): TunekitError {
  return new TunekitError('ERR_LIMIT', `Expected at most ${MAX_NUM_LABELS} classes (MAX_NUM_LABELS) but ${what} ${count}; is the label field the right one?`);
}

const nameIndex = new WeakMap<LabelMap, Map<string, number>>();

/**
 * Builds the label map from the training records. Integer labels (or integer strings, as CSV
 * gives them) are class ids 0..numLabels-1 when they are dense (see {@link denseIds}); other
 * labels, sparse integers included, are names: sorted (integers numerically) and numbered.
 * Records that are not labelled (e.g. a CSV without the label column) are ERR_FORMAT naming the
 * row; more than {@link MAX_NUM_LABELS} classes is ERR_LIMIT, before anything is allocated.
 *
 * @example
 * buildLabelMap([{ kind: 'labelled', text: 'x', label: 'spam' }, { kind: 'labelled', text: 'y', label: 'ham' }]);
 * // { kind: 'string', names: ['ham', 'spam'], numLabels: 2 }
 * buildLabelMap([{ kind: 'labelled', text: 'x', label: 900 }, { kind: 'labelled', text: 'y', label: 3 }]);
 * // { kind: 'string', names: ['3', '900'], numLabels: 2 } (sparse integers are names)
 */
export function buildLabelMap(train: readonly NormalizedRecord[], opts: { numLabels?: number } = {}): LabelMap {
  if (train.length === 0) throw new TunekitError('ERR_VALUE', 'Expected at least one labelled record to build a label map but received none');
  const labels: Array<string | number> = [];
  let allInt = true;
  train.forEach((r, i) => {
    if (r.kind !== 'labelled') {
      throw new TunekitError('ERR_FORMAT', `${whereIs(r.source, i)}: Expected a labelled record (a text and a label field) for classification but received a ${r.kind} record; check that the file has the label column / field`);
    }
    const label = r.label as unknown;
    if (!(typeof label === 'string' && label.length > 0) && !(typeof label === 'number' && Number.isInteger(label))) {
      throw new TunekitError('ERR_FORMAT', `${whereIs(r.source, i)}: Expected a non-empty string or an integer label but received ${describe(label)}`);
    }
    labels.push(label as string | number);
    if (allInt && !isIntLike(label as string | number)) allInt = false;
  });
  if (opts.numLabels !== undefined && (!Number.isInteger(opts.numLabels) || opts.numLabels < 1 || opts.numLabels > MAX_NUM_LABELS)) {
    throw new TunekitError('ERR_LIMIT', `Expected an integer in [1, ${MAX_NUM_LABELS}] for numLabels but received ${describe(opts.numLabels)}`);
  }
  if (allInt) {
    let max = -1;
    const distinct = new Set<number>();
    labels.forEach((label, i) => {
      const v = Number(typeof label === 'string' ? label.trim() : label);
      if (v < 0) throw new TunekitError('ERR_VALUE', `${whereIs(train[i]!.source, i)}: Expected a label >= 0 but received ${describe(label)}`);
      if (v > max) max = v;
      distinct.add(v);
    });
    if (opts.numLabels !== undefined || denseIds(max, distinct.size)) {
      const numLabels = opts.numLabels ?? max + 1;
      const map: LabelMap = { kind: 'int', names: Array.from({ length: numLabels }, (_, i) => String(i)), numLabels };
      labels.forEach((label, i) => encodeLabel(map, label, whereIs(train[i]!.source, i)));
      return map;
    }
    if (distinct.size > MAX_NUM_LABELS) throw tooManyLabels(distinct.size, 'the training split has distinct labels:');
    const names = [...distinct].sort((a, b) => a - b).map(String);
    return { kind: 'string', names, numLabels: names.length };
  }
  const distinct = new Set(labels.map(String));
  if (distinct.size > MAX_NUM_LABELS) throw tooManyLabels(distinct.size, 'the training split has distinct labels:');
  const names = [...distinct].sort();
  if (opts.numLabels !== undefined && opts.numLabels !== names.length) {
    throw new TunekitError('ERR_VALUE', `Expected ${opts.numLabels} distinct labels (numLabels) but the training split has ${names.length}: ${describe(names)}`);
  }
  return { kind: 'string', names, numLabels: names.length };
}

/**
 * A classifier learns nothing from one class: its loss is zero from the first step and every
 * prediction is that class. Refused by name before any training (ERR_VALUE), with the class.
 */
export function requireTwoClasses(values: readonly string[], what: 'label' | 'tag', where: string): void {
  const distinct = new Set(values);
  if (values.length > 0 && distinct.size < 2) {
    throw new TunekitError('ERR_VALUE', `dataset: every one of ${where} (${values.length}) has the ${what} '${values[0]}'; ` +
      `a classifier needs at least two classes to learn from (check dataset.${what === 'label' ? 'label_field' : 'label_field (the tags field)'} and the split)`);
  }
}

/**
 * Maps one label to its class id; `where` names the row in the error.
 *
 * @example
 * encodeLabel(map, 'spam', 'train.jsonl:3'); // 1
 */
export function encodeLabel(map: LabelMap, label: string | number, where: string): number {
  if (map.kind === 'int') {
    if ((typeof label !== 'string' && typeof label !== 'number') || !isIntLike(label)) {
      throw new TunekitError('ERR_VALUE', `${where}: Expected an integer label in [0, ${map.numLabels - 1}] but received ${describe(label)}`);
    }
    const v = Number(typeof label === 'string' ? label.trim() : label);
    if (v < 0 || v >= map.numLabels) {
      throw new TunekitError('ERR_VALUE', `${where}: Expected a label in [0, ${map.numLabels - 1}] but received ${v} (out of range)`);
    }
    return v;
  }
  let index = nameIndex.get(map);
  if (!index) {
    index = new Map(map.names.map((n, i) => [n, i] as const));
    nameIndex.set(map, index);
  }
  let idx = index.get(String(label));
  // integer names (sparse integer labels) match however the row spells the number
  if (idx === undefined && (typeof label === 'string' || typeof label === 'number') && isIntLike(label)) idx = index.get(intName(label));
  if (idx === undefined) {
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
  // Object.fromEntries defines own properties: a label named "__proto__" stays a label
  // (an assignment would set the object's prototype and drop it)
  const id2label: Record<string, string> = Object.fromEntries(map.names.map((n, i) => [String(i), n]));
  const label2id: Record<string, number> = Object.fromEntries(map.names.map((n, i) => [n, i]));
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

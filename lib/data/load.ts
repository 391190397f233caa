/**
 * Reading dataset files: JSON Lines, JSON (an array, or `{ "data": [...] }`) and CSV with a
 * header row. Every record keeps where it came from (file and line) so that later errors can
 * point at the offending row.
 */

import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { extname } from 'node:path';
import { parse as parseCsv } from 'csv-parse/sync';
import { TunekitError, describe } from '../errors.js';
import type { RawRecord, RecordSource } from './types.js';

export type FileFormat = 'jsonl' | 'json' | 'csv';

export interface LoadOptions {
  /** File format; guessed from the extension (.jsonl/.ndjson, .json, .csv/.tsv) when omitted. */
  format?: FileFormat;
  /** 'fail' (default): the first malformed row throws. 'skip': malformed rows are counted and dropped. */
  onError?: 'fail' | 'skip';
  /** CSV delimiter (default ',' or a tab for .tsv). */
  delimiter?: string;
}

export interface LoadedRecords {
  file: string;
  format: FileFormat;
  records: RawRecord[];
  /** `sources[i]` tells where `records[i]` came from (1-based line for JSONL/CSV, index for JSON). */
  sources: RecordSource[];
  /** Number of malformed rows dropped (always 0 with onError 'fail'). */
  skipped: number;
  /** The first few skip reasons, for logging. */
  skipReasons: string[];
}

const MAX_REASONS = 20;

/**
 * Guesses a file format from its extension.
 *
 * @example
 * formatFromPath('train.jsonl'); // 'jsonl'
 */
export function formatFromPath(path: string): FileFormat {
  const ext = extname(path).toLowerCase();
  if (ext === '.jsonl' || ext === '.ndjson') return 'jsonl';
  if (ext === '.json') return 'json';
  if (ext === '.csv' || ext === '.tsv') return 'csv';
  throw new TunekitError(
    'ERR_FORMAT',
    `Expected a dataset file ending in .jsonl, .ndjson, .json, .csv or .tsv (or an explicit format) for ${path} but received extension ${describe(ext || '(none)')}`,
  );
}

function isPlainObject(v: unknown): v is RawRecord {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function lineOfOffset(text: string, offset: number): number {
  let line = 1;
  for (let i = 0; i < offset && i < text.length; i++) if (text.charCodeAt(i) === 10) line++;
  return line;
}

class Collector {
  records: RawRecord[] = [];
  sources: RecordSource[] = [];
  skipped = 0;
  skipReasons: string[] = [];
  constructor(readonly file: string, readonly onError: 'fail' | 'skip') {}
  bad(where: string, reason: string): void {
    const msg = `${this.file}:${where}: ${reason}`;
    if (this.onError === 'fail') throw new TunekitError('ERR_FORMAT', msg);
    this.skipped++;
    if (this.skipReasons.length < MAX_REASONS) this.skipReasons.push(msg);
  }
}

function parseJsonl(text: string, c: Collector): void {
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    let line = lines[i]!;
    if (line.endsWith('\r')) line = line.slice(0, -1);
    if (i === 0 && line.charCodeAt(0) === 0xfeff) line = line.slice(1);
    if (line.trim() === '') continue;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (e) {
      c.bad(`${i + 1}`, `invalid JSON (${(e as Error).message})`);
      continue;
    }
    if (!isPlainObject(value)) {
      c.bad(`${i + 1}`, `Expected a JSON object on each line but received ${describe(value)}`);
      continue;
    }
    c.records.push(value);
    c.sources.push({ file: c.file, line: i + 1 });
  }
}

function parseJson(text: string, c: Collector): void {
  let value: unknown;
  const body = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  try {
    value = JSON.parse(body);
  } catch (e) {
    const msg = (e as Error).message;
    const m = /position (\d+)/.exec(msg);
    const where = m ? `${lineOfOffset(body, Number(m[1]))}` : '1';
    // A broken JSON document cannot be partially recovered: always fail.
    throw new TunekitError('ERR_FORMAT', `${c.file}:${where}: invalid JSON (${msg})`);
  }
  let rows: unknown;
  if (Array.isArray(value)) rows = value;
  else if (isPlainObject(value) && Array.isArray(value['data'])) rows = value['data'];
  else {
    throw new TunekitError(
      'ERR_FORMAT',
      `Expected a JSON array or an object with a "data" array in ${c.file} but received ${describe(value)}`,
    );
  }
  (rows as unknown[]).forEach((row, i) => {
    if (!isPlainObject(row)) {
      c.bad(`record ${i}`, `Expected a JSON object for each record but received ${describe(row)}`);
      return;
    }
    c.records.push(row);
    c.sources.push({ file: c.file, index: i });
  });
}

function parseCsvText(text: string, c: Collector, delimiter: string): void {
  let rows: Array<{ record: Record<string, string>; info: { lines: number } }>;
  try {
    rows = parseCsv(text, {
      columns: true,
      bom: true,
      delimiter,
      info: true,
      skip_empty_lines: true,
      skip_records_with_error: c.onError === 'skip',
      on_skip: (err: Error & { lines?: number } | undefined) => {
        c.bad(`${err?.lines ?? '?'}`, err?.message ?? 'malformed CSV row');
        return undefined;
      },
    }) as unknown as Array<{ record: Record<string, string>; info: { lines: number } }>;
  } catch (e) {
    if (e instanceof TunekitError) throw e;
    const err = e as Error & { lines?: number };
    throw new TunekitError('ERR_FORMAT', `${c.file}:${err.lines ?? '?'}: malformed CSV (${err.message})`);
  }
  for (const { record, info } of rows) {
    c.records.push(record);
    c.sources.push({ file: c.file, line: info.lines });
  }
}

function parseText(file: string, text: string, opts: LoadOptions): LoadedRecords {
  const format = opts.format ?? formatFromPath(file);
  const onError = opts.onError ?? 'fail';
  if (onError !== 'fail' && onError !== 'skip') {
    throw new TunekitError('ERR_VALUE', `Expected 'fail' or 'skip' for onError but received ${describe(onError)}`);
  }
  const c = new Collector(file, onError);
  if (format === 'jsonl') parseJsonl(text, c);
  else if (format === 'json') parseJson(text, c);
  else if (format === 'csv') {
    const delimiter = opts.delimiter ?? (extname(file).toLowerCase() === '.tsv' ? '\t' : ',');
    parseCsvText(text, c, delimiter);
  } else {
    throw new TunekitError('ERR_VALUE', `Expected 'jsonl', 'json' or 'csv' for format but received ${describe(format)}`);
  }
  if (c.records.length === 0) {
    const extra = c.skipped > 0 ? ` (all ${c.skipped} rows were malformed and skipped; first: ${c.skipReasons[0]})` : '';
    throw new TunekitError('ERR_FORMAT', `Expected at least one record in ${file} but the dataset is empty${extra}`);
  }
  return { file, format, records: c.records, sources: c.sources, skipped: c.skipped, skipReasons: c.skipReasons };
}

function readError(path: string, e: unknown): TunekitError {
  const err = e as NodeJS.ErrnoException;
  if (err.code === 'ENOENT') return new TunekitError('ERR_NOT_FOUND', `Dataset file not found: ${path}`);
  return new TunekitError('ERR_IO', `Could not read dataset file ${path}: ${err.message}`);
}

/**
 * Reads a dataset file into raw records.
 *
 * @example
 * const { records, skipped } = await loadRecords('data/train.jsonl', { onError: 'skip' });
 */
export async function loadRecords(path: string, opts: LoadOptions = {}): Promise<LoadedRecords> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw readError(path, e);
  }
  return parseText(path, text, opts);
}

/**
 * Synchronous {@link loadRecords}.
 *
 * @example
 * const { records } = loadRecordsSync('data/train.csv');
 */
export function loadRecordsSync(path: string, opts: LoadOptions = {}): LoadedRecords {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw readError(path, e);
  }
  return parseText(path, text, opts);
}

/**
 * Parses dataset text that is already in memory (`name` is used in error messages).
 *
 * @example
 * parseRecords('{"text":"hi"}\n', 'inline.jsonl').records; // [{ text: 'hi' }]
 */
export function parseRecords(text: string, name: string, opts: LoadOptions = {}): LoadedRecords {
  return parseText(name, text, opts);
}

/**
 * Formats a record source for messages: "file.jsonl:12" or "file.json record 3".
 *
 * @example
 * whereIs({ file: 'train.jsonl', line: 12 }); // 'train.jsonl:12'
 */
export function whereIs(source: RecordSource | undefined, fallbackIndex?: number): string {
  if (!source) return fallbackIndex !== undefined ? `record ${fallbackIndex}` : 'record';
  const file = source.file ?? '<records>';
  if (source.line !== undefined) return `${file}:${source.line}`;
  if (source.index !== undefined) return `${file} record ${source.index}`;
  return file;
}

/**
 * Reading dataset files: JSON Lines, JSON (an array, or `{ "data": [...] }`) and CSV with a
 * header row. Every record keeps where it came from (file and line) so that later errors can
 * point at the offending row.
 *
 * Files are untrusted: only regular files of at most {@link MAX_DATASET_FILE_BYTES} are read (a
 * FIFO would block forever, a larger file cannot be one JS string), and invalid UTF-8 is refused
 * or, with `invalidUtf8: 'replace'`, read as U+FFFD and counted in the report.
 */

import { isUtf8 } from 'node:buffer';
import { readFileSync, statSync, type Stats } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
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
  /**
   * Bytes that are not valid UTF-8: 'fail' (default) throws ERR_FORMAT naming the line; 'replace'
   * reads each invalid sequence as U+FFFD (as Node and browsers decode) and reports the count.
   */
  invalidUtf8?: 'fail' | 'replace';
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
  /** Invalid UTF-8 sequences read as U+FFFD (always 0 with invalidUtf8 'fail'). */
  invalidUtf8: number;
  /** Things the caller should tell the user (e.g. the invalid UTF-8 count and where it starts). */
  warnings: string[];
}

const MAX_REASONS = 20;

/**
 * Largest dataset file read: 512 MiB. The file becomes one JS string, and V8's strings stop at
 * 2^29 - 24 UTF-16 units; every record also stays in memory. Larger data: split it into files.
 */
export const MAX_DATASET_FILE_BYTES = 512 * 1024 * 1024;

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

function parseText(file: string, text: string, opts: LoadOptions, utf8: Utf8Report = { replaced: 0, warnings: [] }): LoadedRecords {
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
  return { file, format, records: c.records, sources: c.sources, skipped: c.skipped, skipReasons: c.skipReasons, invalidUtf8: utf8.replaced, warnings: utf8.warnings };
}

function readError(path: string, e: unknown): TunekitError {
  const err = e as NodeJS.ErrnoException;
  if (err.code === 'ENOENT') return new TunekitError('ERR_NOT_FOUND', `Dataset file not found: ${path}`);
  if (err.code === 'EISDIR') return new TunekitError('ERR_IO', `Expected a dataset file but ${path} is a directory`);
  return new TunekitError('ERR_IO', `Could not read dataset file ${path}: ${err.message}`);
}

/** Refuses what must not be read: anything but a regular file, or a file over the size limit. */
function checkFileStats(path: string, st: Stats): void {
  if (st.isDirectory()) throw new TunekitError('ERR_IO', `Expected a dataset file but ${path} is a directory`);
  if (!st.isFile()) {
    throw new TunekitError('ERR_IO', `Expected a regular dataset file but ${path} is a ${st.isFIFO() ? 'FIFO' : st.isSocket() ? 'socket' : st.isCharacterDevice() || st.isBlockDevice() ? 'device' : 'special file'} (reading it could block forever)`);
  }
  if (st.size > MAX_DATASET_FILE_BYTES) {
    throw new TunekitError('ERR_LIMIT', `Expected a dataset file of at most ${MAX_DATASET_FILE_BYTES / 2 ** 20} MiB (MAX_DATASET_FILE_BYTES) but ${path} has ${(st.size / 2 ** 20).toFixed(1)} MiB; split it into several files`);
  }
}

function checkOption<T extends string>(value: T | undefined, allowed: readonly T[], name: string): void {
  if (value !== undefined && !allowed.includes(value)) {
    throw new TunekitError('ERR_VALUE', `Expected ${allowed.map((a) => `'${a}'`).join(' or ')} for ${name} but received ${describe(value)}`);
  }
}

interface Utf8Report {
  /** Invalid sequences read as U+FFFD. */
  replaced: number;
  warnings: string[];
}

/**
 * Byte offset of the first ill-formed UTF-8 sequence (Unicode table 3-7: no overlong forms, no
 * surrogates, nothing above U+10FFFF), or -1.
 */
export function firstInvalidUtf8(buf: Uint8Array): number {
  const n = buf.length;
  let i = 0;
  while (i < n) {
    const b = buf[i]!;
    if (b < 0x80) { i++; continue; }
    let need: number, lo = 0x80, hi = 0xbf;
    if (b >= 0xc2 && b <= 0xdf) need = 1;
    else if (b >= 0xe0 && b <= 0xef) { need = 2; if (b === 0xe0) lo = 0xa0; else if (b === 0xed) hi = 0x9f; }
    else if (b >= 0xf0 && b <= 0xf4) { need = 3; if (b === 0xf0) lo = 0x90; else if (b === 0xf4) hi = 0x8f; }
    else return i;
    if (i + need >= n) return i; // cut short by the end of the file
    const second = buf[i + 1]!;
    if (second < lo || second > hi) return i;
    for (let k = 2; k <= need; k++) {
      const c = buf[i + k]!;
      if (c < 0x80 || c > 0xbf) return i;
    }
    i += need + 1;
  }
  return -1;
}

function countOf(buf: Uint8Array, byte: number, end: number): number {
  let count = 0;
  for (let i = 0; i < end; i++) if (buf[i] === byte) count++;
  return count;
}

/** Counts U+FFFD characters in a string. */
function countReplacementChars(text: string): number {
  let count = 0;
  for (let at = text.indexOf('\ufffd'); at >= 0; at = text.indexOf('\ufffd', at + 1)) count++;
  return count;
}

/**
 * Decodes a dataset file's bytes. Valid UTF-8 (the usual case, checked natively) decodes as is;
 * otherwise 'fail' names the line and byte, and 'replace' decodes with U+FFFD and counts the
 * sequences replaced (the U+FFFDs of the decoded text minus those spelled in the file).
 */
function decodeDataset(path: string, buf: Buffer, mode: 'fail' | 'replace'): { text: string; utf8: Utf8Report } {
  if (isUtf8(buf)) return { text: buf.toString('utf8'), utf8: { replaced: 0, warnings: [] } };
  const at = firstInvalidUtf8(buf);
  const line = countOf(buf, 0x0a, Math.max(0, at)) + 1;
  const utf16 = buf.length >= 2 && ((buf[0] === 0xff && buf[1] === 0xfe) || (buf[0] === 0xfe && buf[1] === 0xff));
  if (mode === 'fail') {
    const hint = utf16 ? 'the file starts with a UTF-16 byte order mark: save it as UTF-8' : "set dataset.invalid_utf8: replace to read such bytes as U+FFFD (they are counted)";
    throw new TunekitError('ERR_FORMAT', `${path}:${line}: Expected UTF-8 text but received the invalid byte 0x${buf[at]!.toString(16).padStart(2, '0')} at byte offset ${at}; ${hint}`);
  }
  const text = buf.toString('utf8');
  let spelled = 0;
  const fffd = Buffer.from([0xef, 0xbf, 0xbd]);
  for (let k = buf.indexOf(fffd); k >= 0; k = buf.indexOf(fffd, k + 3)) spelled++;
  const replaced = countReplacementChars(text) - spelled;
  return { text, utf8: { replaced, warnings: [`${path}: ${replaced} invalid UTF-8 sequence(s) read as U+FFFD (the first at line ${line}, byte offset ${at})`] } };
}

/**
 * Reads a dataset file into raw records.
 *
 * @example
 * const { records, skipped } = await loadRecords('data/train.jsonl', { onError: 'skip' });
 */
export async function loadRecords(path: string, opts: LoadOptions = {}): Promise<LoadedRecords> {
  checkOption(opts.invalidUtf8, ['fail', 'replace'], 'invalidUtf8');
  let buf: Buffer;
  try {
    checkFileStats(path, await stat(path));
    buf = await readFile(path);
  } catch (e) {
    if (e instanceof TunekitError) throw e;
    throw readError(path, e);
  }
  const { text, utf8 } = decodeDataset(path, buf, opts.invalidUtf8 ?? 'fail');
  return parseText(path, text, opts, utf8);
}

/**
 * Synchronous {@link loadRecords}.
 *
 * @example
 * const { records } = loadRecordsSync('data/train.csv');
 */
export function loadRecordsSync(path: string, opts: LoadOptions = {}): LoadedRecords {
  checkOption(opts.invalidUtf8, ['fail', 'replace'], 'invalidUtf8');
  let buf: Buffer;
  try {
    checkFileStats(path, statSync(path));
    buf = readFileSync(path);
  } catch (e) {
    if (e instanceof TunekitError) throw e;
    throw readError(path, e);
  }
  const { text, utf8 } = decodeDataset(path, buf, opts.invalidUtf8 ?? 'fail');
  return parseText(path, text, opts, utf8);
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

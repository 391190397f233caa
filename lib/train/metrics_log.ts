/**
 * metrics.jsonl: one JSON object per line, `{step, epoch, split, loss, ..., time}`, appended and
 * handed to the OS line by line (so a crash loses at most the line being written), and read
 * back tolerantly (a torn last line is ignored).
 */

import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { TunekitError, describe } from '../errors.js';
import { writeFileAtomicSync } from '../io/atomic.js';

/** One metrics line. Extra numeric or string fields (accuracy, lr, grad_norm, tokens_per_sec ...) are allowed. */
export interface MetricsRecord {
  step: number;
  epoch: number;
  split: 'train' | 'eval' | (string & {});
  loss?: number;
  /** Unix time in seconds. */
  time: number;
  [key: string]: number | string | boolean | null | undefined;
}

/** What {@link MetricsLog.append} takes: a record whose time may be left out. */
export interface MetricsInput {
  step: number;
  epoch: number;
  split: MetricsRecord['split'];
  loss?: number;
  time?: number;
  [key: string]: number | string | boolean | null | undefined;
}

/**
 * An append-only metrics log.
 *
 * @example
 * const log = new MetricsLog('runs/x/metrics.jsonl');
 * log.append({ step: 10, epoch: 0, split: 'train', loss: 2.31, lr: 2e-4 });
 * log.close();
 */
export class MetricsLog {
  private fd: number | null;
  readonly path: string;
  private readonly fsync: boolean;

  /**
   * @param path file to append to (created with its folder if missing)
   * @param opts fsync: also fsync after every line (durable on power loss; slower)
   */
  constructor(path: string, opts: { fsync?: boolean } = {}) {
    this.path = path;
    this.fsync = opts.fsync ?? false;
    try {
      mkdirSync(dirname(path), { recursive: true });
      this.fd = openSync(path, 'a');
    } catch (e) {
      throw new TunekitError('ERR_IO', `Could not open metrics log ${path}: ${(e as Error).message}`);
    }
  }

  /**
   * Appends one record (time is added when missing) and returns it.
   *
   * @example
   * log.append({ step: 100, epoch: 1, split: 'eval', loss: 0.12, accuracy: 0.97 });
   */
  append(rec: MetricsInput): MetricsRecord {
    if (this.fd === null) throw new TunekitError('ERR_STATE', `Expected an open metrics log but ${this.path} was closed`);
    if (!Number.isInteger(rec.step) || rec.step < 0) throw new TunekitError('ERR_VALUE', `Expected a non-negative integer for step but received ${describe(rec.step)}`);
    if (typeof rec.split !== 'string') throw new TunekitError('ERR_VALUE', `Expected a string for split but received ${describe(rec.split)}`);
    const full = { ...rec, time: rec.time ?? Date.now() / 1000 } as MetricsRecord;
    // JSON has no NaN/Infinity: write them as strings so the line stays valid and the value visible.
    const line = JSON.stringify(full, (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? String(v) : v)) + '\n';
    const buf = Buffer.from(line, 'utf8');
    let off = 0;
    while (off < buf.length) off += writeSync(this.fd, buf, off, buf.length - off);
    if (this.fsync) fsyncSync(this.fd);
    return full;
  }

  /** Closes the file. */
  close(): void {
    if (this.fd !== null) {
      closeSync(this.fd);
      this.fd = null;
    }
  }
}

/**
 * Reads a metrics log. Malformed lines throw with the line number, except a torn last line
 * (an interrupted write), which is skipped.
 *
 * @example
 * const recs = readMetrics('runs/x/metrics.jsonl');
 * const evalLoss = recs.filter((r) => r.split === 'eval').map((r) => r.loss);
 */
export function readMetrics(path: string): MetricsRecord[] {
  if (!existsSync(path)) return [];
  const text = readFileSync(path, 'utf8');
  const lines = text.split('\n');
  const out: MetricsRecord[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line === '') continue;
    try {
      const v = JSON.parse(line) as MetricsRecord;
      if (typeof v !== 'object' || v === null || typeof v.step !== 'number') throw new Error('not a metrics record');
      out.push(v);
    } catch (e) {
      const isLast = lines.slice(i + 1).every((l) => l.trim() === '');
      if (isLast && !text.endsWith('\n')) break; // torn final write
      throw new TunekitError('ERR_FORMAT', `${path}:${i + 1}: Expected a JSON metrics record but received ${describe(line)} (${(e as Error).message})`);
    }
  }
  return out;
}

/**
 * Keeps only the records up to `step` (inclusive), rewriting the file atomically: used when a
 * run resumes from a checkpoint so that the log has no steps from the abandoned future.
 *
 * @example
 * truncateMetrics('runs/x/metrics.jsonl', 400); // resume from the step-400 checkpoint
 */
export function truncateMetrics(path: string, step: number): number {
  const kept = readMetrics(path).filter((r) => r.step <= step);
  writeFileAtomicSync(path, kept.map((r) => JSON.stringify(r) + '\n').join(''));
  return kept.length;
}

import { describe, expect, test } from 'vitest';
import { appendFileSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MetricsLog, readMetrics, truncateMetrics } from '../../lib/train/metrics_log.js';
import { writeFileAtomic, writeFileAtomicSync, writeJsonAtomic } from '../../lib/io/atomic.js';
import { ProgressReporter, formatDuration } from '../../lib/train/progress.js';
import { Writable } from 'node:stream';
import { TunekitError } from '../../lib/errors.js';

const tmp = (): string => mkdtempSync(join(tmpdir(), 'tunekit-metrics-'));

describe('atomic writes', () => {
  test('replace the file, leave no temp files, JSON helper', async () => {
    const d = tmp();
    const p = join(d, 'state.json');
    await writeFileAtomic(p, 'old');
    await writeJsonAtomic(p, { step: 3 });
    expect(JSON.parse(readFileSync(p, 'utf8'))).toEqual({ step: 3 });
    writeFileAtomicSync(p, new Uint8Array([104, 105]));
    expect(readFileSync(p, 'utf8')).toBe('hi');
    expect(readdirSync(d)).toEqual(['state.json']);
  });
  test('a failed write is an ERR_IO naming the file', async () => {
    const p = join(tmp(), 'missing-dir', 'x.json');
    await expect(writeFileAtomic(p, 'x')).rejects.toThrow(/Could not write .*x\.json/);
    expect(() => writeFileAtomicSync(p, 'x')).toThrow(TunekitError);
  });
});

describe('metrics log', () => {
  test('append lines, read them back, time added', () => {
    const p = join(tmp(), 'run', 'metrics.jsonl');
    const log = new MetricsLog(p);
    log.append({ step: 1, epoch: 0, split: 'train', loss: 2.5, lr: 1e-4 });
    // flushed per line: visible before close
    expect(readFileSync(p, 'utf8').split('\n')).toHaveLength(2);
    log.append({ step: 2, epoch: 0, split: 'eval', loss: 2.0, accuracy: 0.75, time: 123 });
    log.append({ step: 3, epoch: 0, split: 'train', loss: Number.NaN });
    log.close();
    const recs = readMetrics(p);
    expect(recs).toHaveLength(3);
    expect(recs[0]).toMatchObject({ step: 1, epoch: 0, split: 'train', loss: 2.5, lr: 1e-4 });
    expect(typeof recs[0]!.time).toBe('number');
    expect(recs[1]!.time).toBe(123);
    expect(recs[2]!.loss).toBe('NaN');
    expect(() => log.append({ step: 4, epoch: 0, split: 'train' })).toThrow(/closed/);
  });
  test('appending to an existing log continues it; torn last line ignored; bad lines named', () => {
    const p = join(tmp(), 'metrics.jsonl');
    const a = new MetricsLog(p);
    a.append({ step: 1, epoch: 0, split: 'train', loss: 1 });
    a.close();
    const b = new MetricsLog(p);
    b.append({ step: 2, epoch: 0, split: 'train', loss: 0.9 });
    b.close();
    appendFileSync(p, '{"step": 3, "epo');
    expect(readMetrics(p).map((r) => r.step)).toEqual([1, 2]);
    writeFileSync(p, '{"step":1,"epoch":0,"split":"train","time":0}\nnot json\n{"step":2,"epoch":0,"split":"train","time":0}\n');
    expect(() => readMetrics(p)).toThrow(/metrics\.jsonl:2/);
    expect(readMetrics(join(tmp(), 'none.jsonl'))).toEqual([]);
  });
  test('truncate after a step (resume)', () => {
    const p = join(tmp(), 'metrics.jsonl');
    const log = new MetricsLog(p);
    for (let s = 1; s <= 10; s++) log.append({ step: s, epoch: 0, split: 'train', loss: 1 / s });
    log.close();
    expect(truncateMetrics(p, 6)).toBe(6);
    expect(readMetrics(p).map((r) => r.step)).toEqual([1, 2, 3, 4, 5, 6]);
  });
});

describe('progress reporter', () => {
  function sink(isTTY = false) {
    const chunks: string[] = [];
    return { chunks, stream: Object.assign(new Writable({ write(c: Buffer, _e: string, cb: () => void) { chunks.push(c.toString()); cb(); } }), { isTTY }) };
  }
  test('plain lines every N steps with loss, tokens/s and ETA', () => {
    const { chunks, stream } = sink(false);
    let t = 0;
    const p = new ProgressReporter({ total: 30, every: 10, stream, now: () => t });
    expect(p.mode).toBe('plain');
    for (let s = 1; s <= 30; s++) {
      t += 500; // 0.5 s per step
      p.update(s, { loss: 3 - s / 10, lr: 1e-4, tokens: 1000 });
    }
    p.log('eval loss 0.5');
    p.stop();
    const lines = chunks.join('').trim().split('\n');
    expect(lines).toHaveLength(4);
    expect(lines[0]).toBe('step 10/30 (33.3%) | loss 2.0000 | lr 1.00e-4 | 2,000 tok/s | elapsed 0:05 | eta 0:10');
    expect(lines[2]).toContain('step 30/30 (100.0%)');
    expect(lines[2]).toContain('eta 0:00');
    expect(lines[3]).toBe('eval loss 0.5');
  });
  test('bar mode renders without a real terminal; none mode is silent', () => {
    const { chunks, stream } = sink(true);
    const p = new ProgressReporter({ total: 5, mode: 'bar', stream });
    for (let s = 1; s <= 5; s++) p.update(s, { loss: 1, tokens: 10 });
    p.stop();
    expect(chunks.join('')).toContain('5/5');
    const q = sink(false);
    const n = new ProgressReporter({ total: 5, mode: 'none', stream: q.stream });
    n.update(5, { loss: 1 });
    n.log('x');
    expect(q.chunks).toEqual([]);
    expect(formatDuration(3725)).toBe('1:02:05');
    expect(() => new ProgressReporter({ total: 0 })).toThrow(/positive integer for total/);
  });
});

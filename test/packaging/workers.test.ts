/**
 * worker_threads smoke test: two workers load tunekit at once (the addon is context-aware: each
 * thread gets its own instance data and error class) and train at the same time, sharing the
 * native thread pool. Both finish with the losses one thread alone gets.
 */
import { describe, it, expect } from 'vitest';
import { Worker } from 'node:worker_threads';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const ROOT = resolve(__dirname, '../..');
const config = JSON.parse(readFileSync(join(ROOT, 'test', 'fixtures', 'models', 'gpt2_lm', 'config.json'), 'utf8')) as Record<string, unknown>;

interface Report { threadId: number; losses: number[]; nativeError: { isTunekitError: boolean; code: string } | null; addon: string }

function trainInWorker(): Promise<Report> {
  return new Promise((ok, fail) => {
    // dist/ is what a user's worker imports (the global setup keeps it built)
    const w = new Worker(join(__dirname, 'fixtures', 'train_worker.mjs'), {
      workerData: { entry: pathToFileURL(join(ROOT, 'dist', 'index.js')).href, seed: 3, config: { ...config, resid_pdrop: 0, embd_pdrop: 0, attn_pdrop: 0 } },
    });
    w.once('message', (m: Report) => ok(m));
    w.once('error', fail);
    w.once('exit', (code) => { if (code !== 0) fail(new Error(`worker exited with ${code}`)); });
  });
}

describe('worker_threads', () => {
  it('two workers train at once, each with its own addon instance and error class', async () => {
    const [a, b] = await Promise.all([trainInWorker(), trainInWorker()]);
    expect(a.threadId).not.toBe(b.threadId);
    for (const r of [a, b]) {
      expect(r.losses).toHaveLength(2);
      expect(r.losses.every(Number.isFinite)).toBe(true);
      expect(r.nativeError).toEqual({ isTunekitError: true, code: 'ERR_VALUE' });
    }
    // same seed and data: the same losses, whichever worker got the pool (float sums may split differently)
    for (let i = 0; i < 2; i++) expect(Math.abs(a.losses[i]! - b.losses[i]!)).toBeLessThan(1e-4 * Math.abs(a.losses[i]!));
    const alone = await trainInWorker();
    for (let i = 0; i < 2; i++) expect(Math.abs(alone.losses[i]! - a.losses[i]!)).toBeLessThan(1e-4 * Math.abs(a.losses[i]!));
  }, 120_000);
});

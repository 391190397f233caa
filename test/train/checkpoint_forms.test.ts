/**
 * writeCheckpoint (promises) and writeCheckpointSync (blocking) run the same steps: the same files
 * with the same bytes, the same manifest, the same fault-hook steps in the same order, and the
 * async form lets the event loop run while it writes.
 */
import { describe, it, expect, afterEach } from 'vitest';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { writeFile } from 'node:fs/promises';
import { writeCheckpoint, writeCheckpointSync, setCheckpointFaultHook, readCheckpointSync, type TrainerState, type CheckpointWriteStep } from '../../lib/train/checkpoint.js';

const dirs: string[] = [];
const newDir = () => { const d = fs.mkdtempSync(path.join(os.tmpdir(), 'tunekit-ckforms-')); dirs.push(d); return d; };
afterEach(() => { setCheckpointFaultHook(null); for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true }); });

const state: TrainerState = {
  version: 2, step: 3, totalSteps: 10, status: 'running', loader: { epoch: 0, index: 12, seed: 1 },
  seedState: '12345', best: null, badEvals: 0, runConfig: null, objective: { name: 'supervised', state: null },
};
const WEIGHTS = Buffer.alloc(9 << 20, 7); // over two 4 MiB hash chunks
const OPT = Buffer.from('optimizer bytes');

/** Every file under dir with its bytes (relative names, sorted). */
function tree(dir: string): [string, string][] {
  const out: [string, string][] = [];
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out.push([path.relative(dir, p), fs.readFileSync(p).toString('base64')]);
    }
  };
  walk(dir);
  return out.sort(([a], [b]) => a.localeCompare(b));
}

describe('writeCheckpoint and writeCheckpointSync', () => {
  it('write the same files, pass the same fault-hook steps, and both read back', async () => {
    const stepsOf = async (write: (dir: string) => Promise<string> | string) => {
      const seen: CheckpointWriteStep[] = [];
      setCheckpointFaultHook((s) => seen.push(s));
      const out = newDir();
      await write(out);
      await write(out); // the second save moves the first aside, then removes it
      return { seen, out };
    };
    const a = await stepsOf((out) => writeCheckpoint(out, {
      writeWeights: async (d) => { fs.mkdirSync(path.join(d, 'adapter')); await writeFile(path.join(d, 'adapter', 'w.bin'), WEIGHTS); },
      writeOptimizer: (f) => writeFile(f, OPT),
      state,
    }));
    const b = await stepsOf((out) => writeCheckpointSync(out, {
      writeWeights: (d) => { fs.mkdirSync(path.join(d, 'adapter')); fs.writeFileSync(path.join(d, 'adapter', 'w.bin'), WEIGHTS); },
      writeOptimizer: (f) => fs.writeFileSync(f, OPT),
      state,
    }));
    expect(a.seen).toEqual(b.seen);
    expect(a.seen).toContain('old-removed');
    expect(tree(a.out)).toEqual(tree(b.out));
    expect(fs.readdirSync(a.out)).toEqual(['checkpoint']);
    expect(readCheckpointSync(path.join(a.out, 'checkpoint')).state.step).toBe(3);
  });

  it('the async form lets timers run while it hashes and writes', async () => {
    const out = newDir();
    let ticks = 0;
    const timer = setInterval(() => ticks++, 0);
    try {
      await writeCheckpoint(out, {
        writeWeights: async (d) => { await writeFile(path.join(d, 'w.bin'), WEIGHTS); },
        writeOptimizer: (f) => writeFile(f, OPT),
        state,
      });
    } finally {
      clearInterval(timer);
    }
    // the blocking form gives a timer no turn at all until it returns
    expect(ticks).toBeGreaterThan(0);
    let syncTicks = 0;
    const t2 = setInterval(() => syncTicks++, 0);
    writeCheckpointSync(newDir(), { writeWeights: (d) => fs.writeFileSync(path.join(d, 'w.bin'), WEIGHTS), writeOptimizer: (f) => fs.writeFileSync(f, OPT), state });
    clearInterval(t2);
    expect(syncTicks).toBe(0);
  });
});

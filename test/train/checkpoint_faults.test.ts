/**
 * Fault injection into every window of the checkpoint write (lib/train/checkpoint.ts): a hook
 * called after each filesystem step throws there, which stops the write exactly as a SIGKILL
 * would (the writer has no cleanup path, and fit()'s `finally` only closes files). Then
 * `fit({ resume: true })` in a new Trainer must take the newest complete checkpoint, delete
 * nothing complete before a newer complete one is in place, leave each step once in
 * metrics.jsonl, and end with weights bit-identical to an uninterrupted run. Also: recovery
 * with no complete checkpoint removes nothing; corrupt or tampered checkpoints are refused.
 * (A real SIGKILL of `tunekit train` at one window: test/train/resume_cli.test.ts.)
 */
import { describe, it, expect, afterEach } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import '../../lib/index.js';
import '../../lib/peft/index.js';
import { GPT2, parseGPT2Config, loadPretrainedSync } from '../../lib/models/index.js';
import { LoraModel } from '../../lib/peft/lora/model.js';
import type { Tensor } from '../../lib/tensor/tensor.js';
import { manualSeed } from '../../lib/nn/random.js';
import { Trainer, type TrainExample, type TrainSettings } from '../../lib/train/trainer.js';
import { readMetrics } from '../../lib/train/metrics_log.js';
import {
  CHECKPOINT_WRITE_STEPS, checkCheckpointSync, recoverCheckpoint, recoverCheckpointSync, requireCheckpointSync, setCheckpointFaultHook, type CheckpointWriteStep,
} from '../../lib/train/checkpoint.js';
import { dir as modelDir } from '../models/helpers.js';

const dirs: string[] = [];
afterEach(() => {
  setCheckpointFaultHook(null);
  while (dirs.length) fs.rmSync(dirs.pop()!, { recursive: true, force: true });
});
const newDir = () => {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'tunekit-ckfault-'));
  dirs.push(d);
  return d;
};

const FIXTURE_CONFIG = JSON.parse(fs.readFileSync(path.join(modelDir('gpt2_lm'), 'config.json'), 'utf8')) as Record<string, unknown>;

function build(kind: 'full' | 'lora') {
  // dropout on: the RNG stream must be restored too
  if (kind === 'full') {
    manualSeed(4);
    const m = new GPT2(parseGPT2Config({ ...FIXTURE_CONFIG, resid_pdrop: 0.1, embd_pdrop: 0.1, attn_pdrop: 0.1 }), 'causal_lm');
    m.requiresGrad_(true);
    return m;
  }
  manualSeed(4);
  const { model: base } = loadPretrainedSync(modelDir('gpt2_lm'));
  return new LoraModel(base, { r: 4, lora_alpha: 8, lora_dropout: 0.1, target_modules: ['c_attn', 'c_fc'] });
}

function lmData(n: number): TrainExample[] {
  let s = 5;
  const rnd = () => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648);
  return Array.from({ length: n }, () => {
    const len = 6 + Math.floor(rnd() * 5);
    const start = Math.floor(rnd() * 96);
    const ids = Array.from({ length: len }, (_, i) => ((start + i) % 96) + 1);
    return { inputIds: ids, labels: ids };
  });
}

const data = lmData(20);
// 6 steps, a checkpoint after steps 2, 4 and 6 (writes 1, 2, 3)
const settings: Partial<TrainSettings> = { logEvery: 1, maxGradNorm: 1, maxSteps: 6, batchSize: 4, lr: 2e-3, schedule: 'linear', warmupSteps: 2, saveEvery: 2 };
const runConfig = { model: 'tiny', training: { lr: 2e-3 } };
const paramsOf = (m: { namedParameters(): [string, Tensor][] }) => new Map(m.namedParameters().map(([n, p]) => [n, Buffer.from((p.toTypedArray() as Float32Array).buffer)]));

class SimulatedKill extends Error {}

/** The checkpoint folders of a run folder, each with its step when complete. */
function checkpointFolders(d: string): { name: string; step: number | null }[] {
  return fs.readdirSync(d).filter((n) => n === 'checkpoint' || n.startsWith('.checkpoint')).sort().map((name) => {
    const c = checkCheckpointSync(path.join(d, name), { allowLegacy: name === 'checkpoint' });
    return { name, step: c.complete ? c.step : null };
  });
}

const WINDOW_ORDER = CHECKPOINT_WRITE_STEPS as readonly CheckpointWriteStep[];
const completeFrom = WINDOW_ORDER.indexOf('manifest-written');

describe.each(['full', 'lora'] as const)('a crash in every window of the checkpoint write (%s)', (kind) => {
  let reference: { params: Map<string, Buffer>; losses: number[] } | null = null;
  const uninterrupted = async () => {
    if (reference) return reference;
    const model = build(kind);
    const losses: number[] = [];
    await new Trainer({ model, task: 'causal_lm', train: data, padTokenId: 0, progress: 'none', settings, outputDir: newDir(), runConfig, callbacks: { onStep: (i) => losses.push(i.loss) } }).fit();
    reference = { params: paramsOf(model), losses };
    model.dispose();
    return reference;
  };

  // write 2 (step 4) replaces write 1 (step 2): every window, old-moved included
  it.each(WINDOW_ORDER)('killed after %s of the second save: resume takes the newest complete checkpoint, ends bit-exact', async (window) => {
    const want = await uninterrupted();
    const d = newDir();
    const seen: CheckpointWriteStep[] = [];
    setCheckpointFaultHook((step, write) => {
      if (write === 2) seen.push(step);
      if (step === window && write === 2) throw new SimulatedKill(`killed after ${step}`);
    });
    const m1 = build(kind);
    await expect(new Trainer({ model: m1, task: 'causal_lm', train: data, padTokenId: 0, progress: 'none', settings, outputDir: d, runConfig }).fit()).rejects.toThrow(SimulatedKill);
    m1.dispose();
    setCheckpointFaultHook(null);
    expect(seen.at(-1)).toBe(window);

    // what the crash left: the step-4 folder is complete once its manifest is written
    const expectStep = WINDOW_ORDER.indexOf(window) >= completeFrom ? 4 : 2;
    const before = checkpointFolders(d);
    const completeBefore = before.filter((f) => f.step !== null);
    expect(Math.max(...completeBefore.map((f) => f.step!))).toBe(expectStep);
    // metrics went as far as the crash (steps 1..4, the eval-free log of a train run)
    expect(readMetrics(path.join(d, 'metrics.jsonl')).map((r) => r.step)).toEqual([1, 2, 3, 4]);

    const found: string[] = [];
    // both forms recover the same way: the async one (hashes through fs/promises) for LoRA runs
    const rec = (kind === 'lora' ? await recoverCheckpoint(d, found) : recoverCheckpointSync(d, found))!;
    expect(rec.step).toBe(expectStep);
    expect(checkpointFolders(d)).toEqual([{ name: 'checkpoint', step: expectStep }]);
    // only folders older than the one kept, or incomplete, were removed
    for (const name of rec.removed) {
      const was = before.find((f) => f.name === name);
      if (was) expect(was.step === null || was.step < expectStep, name).toBe(true);
    }

    const m2 = build(kind);
    manualSeed(999);
    const losses: number[] = [];
    const lines: string[] = [];
    const res = await new Trainer({ model: m2, task: 'causal_lm', train: data, padTokenId: 0, progress: 'none', settings, outputDir: d, runConfig, callbacks: { onStep: (i) => losses.push(i.loss) } })
      .fit({ resume: true, log: (l) => lines.push(l) });
    expect(res.steps).toBe(6);
    expect(lines.at(-1)).toMatch(new RegExp(`resuming from .*checkpoint \\(step ${expectStep} of 6\\)`));
    expect(losses).toEqual(want.losses.slice(expectStep));
    const got = paramsOf(m2);
    for (const [n, v] of want.params) expect(got.get(n)!.equals(v), n).toBe(true);
    const recs = readMetrics(path.join(d, 'metrics.jsonl'));
    expect(recs.map((r) => r.step)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(recs.map((r) => r.loss)).toEqual(want.losses);
    expect(checkpointFolders(d)).toEqual([{ name: 'checkpoint', step: 6 }]);
    m2.dispose();
  });

  // write 1 (step 2): before its manifest there is no complete checkpoint at all
  it.each(WINDOW_ORDER.filter((w) => w !== 'old-moved' && w !== 'old-removed'))('killed after %s of the first save', async (window) => {
    const d = newDir();
    setCheckpointFaultHook((step, write) => {
      if (step === window && write === 1) throw new SimulatedKill(`killed after ${step}`);
    });
    const m1 = build(kind);
    await expect(new Trainer({ model: m1, task: 'causal_lm', train: data, padTokenId: 0, progress: 'none', settings, outputDir: d, runConfig }).fit()).rejects.toThrow(SimulatedKill);
    m1.dispose();
    setCheckpointFaultHook(null);
    const before = checkpointFolders(d);
    if (WINDOW_ORDER.indexOf(window) < completeFrom) {
      // nothing complete: resume is an error naming the folder and what is there; nothing removed
      const m2 = build(kind);
      const err = await new Trainer({ model: m2, task: 'causal_lm', train: data, padTokenId: 0, progress: 'none', settings, outputDir: d, runConfig }).fit({ resume: true }).catch((e) => e);
      expect(err.code).toBe('ERR_NOT_FOUND');
      expect(err.message).toContain(d);
      expect(err.message).toMatch(/\.checkpoint\.tmp-\S+: no manifest\.json/);
      expect(checkpointFolders(d)).toEqual(before);
      m2.dispose();
      // a new run starts over and its first save clears the incomplete folder
      const m3 = build(kind);
      await new Trainer({ model: m3, task: 'causal_lm', train: data, padTokenId: 0, progress: 'none', settings, outputDir: d, runConfig }).fit();
      expect(checkpointFolders(d)).toEqual([{ name: 'checkpoint', step: 6 }]);
      expect(readMetrics(path.join(d, 'metrics.jsonl')).map((r) => r.step)).toEqual([1, 2, 3, 4, 5, 6]);
      m3.dispose();
    } else {
      expect(requireCheckpointSync(d).step).toBe(2);
      expect(checkpointFolders(d)).toEqual([{ name: 'checkpoint', step: 2 }]);
    }
  });
});

describe('recovery refuses what is not complete', () => {
  async function twoCheckpoints(): Promise<string> {
    const d = newDir();
    // stop after the second save's manifest: checkpoint/ at step 2, a complete tmp at step 4
    setCheckpointFaultHook((step, write) => {
      if (step === 'manifest-written' && write === 2) throw new SimulatedKill('stop');
    });
    const m = build('lora');
    await new Trainer({ model: m, task: 'causal_lm', train: data, padTokenId: 0, progress: 'none', settings, outputDir: d, runConfig }).fit().catch(() => undefined);
    setCheckpointFaultHook(null);
    m.dispose();
    return d;
  }
  const tmpOf = (d: string) => path.join(d, fs.readdirSync(d).find((n) => n.startsWith('.checkpoint.tmp-'))!);

  it('a newer folder with a truncated, a changed or a missing file is passed over, and removed only after the older one is in place', async () => {
    for (const damage of ['truncate', 'flip', 'remove'] as const) {
      const d = await twoCheckpoints();
      const f = path.join(tmpOf(d), 'optimizer.safetensors');
      if (damage === 'truncate') fs.truncateSync(f, fs.statSync(f).size - 1);
      else if (damage === 'remove') fs.rmSync(f);
      else {
        const b = fs.readFileSync(f);
        b[b.length - 1]! ^= 1;
        fs.writeFileSync(f, b);
      }
      const found: string[] = [];
      const r = recoverCheckpointSync(d, found)!;
      expect(r.step, damage).toBe(2);
      expect(found.join('\n')).toMatch(damage === 'truncate' ? /has \d+ bytes, the manifest says/ : damage === 'flip' ? /does not match its sha256/ : /optimizer\.safetensors is missing/);
      expect(checkpointFolders(d)).toEqual([{ name: 'checkpoint', step: 2 }]);
    }
  });

  it('with only damaged folders nothing is removed and --resume names them (ERR_FORMAT: checkpoint/ is damaged)', async () => {
    const d = await twoCheckpoints();
    fs.writeFileSync(path.join(d, 'checkpoint', 'trainer_state.json'), '{"version": 2, "st');
    fs.rmSync(path.join(tmpOf(d), 'manifest.json'));
    const before = checkpointFolders(d);
    expect(before.every((f) => f.step === null)).toBe(true);
    let err: { code?: string } | null = null;
    try {
      requireCheckpointSync(d);
    } catch (e) {
      err = e as { code?: string };
    }
    expect(err?.code).toBe('ERR_FORMAT');
    expect(() => requireCheckpointSync(d)).toThrow(/nothing to resume: no complete checkpoint in [\s\S]*\n  checkpoint: \S+trainer_state\.json has 18 bytes, the manifest says \d+/);
    expect(checkpointFolders(d)).toEqual(before);
  });

  it('a refused resume (another config) leaves the leftovers of an interrupted save where they are', async () => {
    const d = newDir();
    setCheckpointFaultHook((step, write) => {
      if (step === 'old-moved' && write === 2) throw new SimulatedKill('stop');
    });
    const m = build('lora');
    await new Trainer({ model: m, task: 'causal_lm', train: data, padTokenId: 0, progress: 'none', settings, outputDir: d, runConfig }).fit().catch(() => undefined);
    setCheckpointFaultHook(null);
    const before = checkpointFolders(d);
    expect(before.map((f) => f.step)).toEqual([2, 4]); // .checkpoint.old-*, .checkpoint.tmp-*
    const other = new Trainer({ model: m, task: 'causal_lm', train: data, padTokenId: 0, progress: 'none', settings, outputDir: d, runConfig: { ...runConfig, training: { lr: 1e-3 } } });
    await expect(other.fit({ resume: true })).rejects.toMatchObject({ code: 'ERR_CONFIG', message: expect.stringMatching(/training\.lr: checkpoint has 0\.002, this run has 0\.001/) });
    expect(checkpointFolders(d)).toEqual(before);
    m.dispose();
  });

  it('a manifest path that leaves the folder is refused', async () => {
    const d = await twoCheckpoints();
    const mf = path.join(d, 'checkpoint', 'manifest.json');
    const man = JSON.parse(fs.readFileSync(mf, 'utf8'));
    man.files['../../etc/passwd'] = { bytes: 1, sha256: '0'.repeat(64) };
    fs.writeFileSync(mf, JSON.stringify(man));
    expect(checkCheckpointSync(path.join(d, 'checkpoint'))).toMatchObject({ complete: false, reason: expect.stringMatching(/expected a relative path inside the checkpoint but received "\.\.\/\.\.\/etc\/passwd"/) });
  });
});

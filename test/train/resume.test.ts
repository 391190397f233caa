/**
 * What a resume accepts and refuses (Trainer.fit({ resume: true }), which `tunekit train
 * --resume` calls): no checkpoint is ERR_NOT_FOUND naming the folder; a finished run is
 * ERR_STATE and its folder is left byte for byte; a trainer_state.json that is truncated,
 * corrupt or past the run's steps is a typed error, never a SyntaxError; another run config is
 * ERR_CONFIG naming the fields. Each refusal happens before anything in the folder changes.
 */
import { describe, it, expect, afterEach } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import '../../lib/index.js';
import '../../lib/peft/index.js';
import { loadPretrainedSync } from '../../lib/models/index.js';
import { LoraModel } from '../../lib/peft/lora/model.js';
import { manualSeed } from '../../lib/nn/random.js';
import { Trainer, type TrainExample, type TrainSettings } from '../../lib/train/trainer.js';
import { parseTrainerState } from '../../lib/train/checkpoint.js';
import { dir as modelDir } from '../models/helpers.js';

const dirs: string[] = [];
afterEach(() => {
  while (dirs.length) fs.rmSync(dirs.pop()!, { recursive: true, force: true });
});
const newDir = () => {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'tunekit-resume-'));
  dirs.push(d);
  return d;
};

const lora = () => {
  manualSeed(4);
  return new LoraModel(loadPretrainedSync(modelDir('gpt2_lm')).model, { r: 2, lora_alpha: 4, target_modules: ['c_attn'] });
};
const data: TrainExample[] = Array.from({ length: 8 }, (_, i) => {
  const ids = Array.from({ length: 6 }, (_, j) => ((i * 7 + j) % 96) + 1);
  return { inputIds: ids, labels: ids };
});
const settings: Partial<TrainSettings> = { logEvery: 1, maxSteps: 4, batchSize: 4, lr: 1e-3, saveEvery: 2 };
const runConfig = { model: 'tiny', training: { max_steps: 4, lr: 1e-3 } };

function trainer(outputDir: string, over: { settings?: Partial<TrainSettings>; runConfig?: Record<string, unknown>; onStep?: (step: number) => void; metric?: 'accuracy' } = {}) {
  const model = lora();
  const t = new Trainer({
    model, task: 'causal_lm', train: data, eval: data.slice(0, 2), padTokenId: 0, progress: 'none', outputDir, metric: over.metric,
    settings: { ...settings, ...over.settings }, runConfig: over.runConfig ?? runConfig, callbacks: { onStep: (i) => over.onStep?.(i.step) },
  });
  return { t, model };
}

/** Every file of a folder with its bytes, to show that a refusal changed nothing. */
function snapshot(d: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (p: string) => {
    for (const e of fs.readdirSync(p, { withFileTypes: true })) {
      const f = path.join(p, e.name);
      if (e.isDirectory()) walk(f);
      else out.set(path.relative(d, f), fs.readFileSync(f).toString('base64'));
    }
  };
  walk(d);
  return out;
}

/** A run stopped by a crash after step 3: checkpoint/ holds step 2. */
async function crashedRun(): Promise<string> {
  const d = newDir();
  const { t, model } = trainer(d, { onStep: (s) => { if (s === 3) throw new Error('crash'); } });
  await expect(t.fit()).rejects.toThrow('crash');
  model.dispose();
  return d;
}

describe('resume', () => {
  it('with no checkpoint in the output folder is ERR_NOT_FOUND naming the folder (not a silent fresh run)', async () => {
    for (const d of [newDir(), path.join(newDir(), 'never-made')]) {
      const { t, model } = trainer(d);
      const err = await t.fit({ resume: true }).catch((e) => e);
      expect(err.code).toBe('ERR_NOT_FOUND');
      expect(err.message).toContain(`no complete checkpoint in ${d}`);
      expect(fs.existsSync(path.join(d, 'metrics.jsonl'))).toBe(false); // no step was trained
      model.dispose();
    }
  });

  it('of a finished run is ERR_STATE and leaves every file of the run as it was', async () => {
    const d = newDir();
    const first = trainer(d);
    expect((await first.t.fit()).status).toBe('completed');
    first.model.dispose();
    fs.writeFileSync(path.join(d, 'results.json'), '{"steps": 4}\n'); // as runTraining writes it
    const before = snapshot(d);
    const again = trainer(d);
    const err = await again.t.fit({ resume: true }).catch((e) => e);
    expect(err.code).toBe('ERR_STATE');
    expect(err.message).toMatch(/nothing to resume: the run of \S+checkpoint has already finished \(completed all 4 steps\); its results and outputs are left as they are/);
    expect(snapshot(d)).toEqual(before);
    again.model.dispose();
  });

  it('of an early-stopped run is ERR_STATE too', async () => {
    const d = newDir();
    // the metric 'accuracy' of a causal LM without choice items is always 0: the second
    // evaluation cannot improve on the first, so patience 1 stops the run at step 2
    const early = { settings: { evalEvery: 1, earlyStoppingPatience: 1 }, metric: 'accuracy' as const };
    const first = trainer(d, early);
    expect(await first.t.fit()).toMatchObject({ status: 'early_stopped', steps: 2 });
    first.model.dispose();
    const again = trainer(d, early);
    await expect(again.t.fit({ resume: true })).rejects.toMatchObject({ code: 'ERR_STATE', message: expect.stringMatching(/stopped early at step 2 of 4/) });
    again.model.dispose();
  });

  it('a truncated or corrupt trainer_state.json is ERR_FORMAT naming the file, and nothing is changed', async () => {
    for (const legacy of [false, true]) {
      const d = await crashedRun();
      const statePath = path.join(d, 'checkpoint', 'trainer_state.json');
      const text = fs.readFileSync(statePath, 'utf8');
      // legacy: a checkpoint without manifest.json (written before manifests) is only parsed
      if (legacy) fs.rmSync(path.join(d, 'checkpoint', 'manifest.json'));
      fs.writeFileSync(statePath, text.slice(0, text.length >> 1));
      const before = snapshot(d);
      const { t, model } = trainer(d);
      const err = await t.fit({ resumeFrom: path.join(d, 'checkpoint') }).catch((e) => e);
      expect(err.code, String(err)).toBe('ERR_FORMAT');
      expect(err.message).toContain(legacy ? `${statePath}: expected JSON but the file is truncated or corrupt` : `${statePath} has ${text.length >> 1} bytes, the manifest says ${Buffer.byteLength(text)}`);
      expect(snapshot(d)).toEqual(before);
      model.dispose();
    }
    // field by field
    const ok = JSON.parse(fs.readFileSync(path.join(await crashedRun(), 'checkpoint', 'trainer_state.json'), 'utf8'));
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ step: -1 }, /expected a non-negative integer for step but received -1/],
      [{ step: '2' }, /for step but received "2"/],
      [{ seedState: '12x' }, /expected a decimal string for seedState/],
      [{ loader: null }, /expected an object \{epoch, index, seed\} for loader but received null/],
      [{ status: 'done' }, /expected one of running, completed, early_stopped, interrupted for status but received "done"/],
      [{ version: 7 }, /expected 1 or 2 for version but received 7/],
      [{ step: 9 }, /expected at most totalSteps \(4\) for step but received 9/],
    ];
    for (const [patch, msg] of cases) {
      expect(() => parseTrainerState(JSON.stringify({ ...ok, ...patch }), 'ts.json')).toThrow(msg);
    }
    expect(() => parseTrainerState('[1]', 'ts.json')).toThrow(/ts\.json: expected an object for the file but received \[1\]/);
  });

  it('a trainer_state.json with step above max_steps is refused (ERR_STATE), the folder unchanged', async () => {
    const d = await crashedRun();
    const ck = path.join(d, 'checkpoint');
    // a checkpoint as an older tunekit wrote it (version 1, no manifest, no totalSteps) with step 9
    const state = JSON.parse(fs.readFileSync(path.join(ck, 'trainer_state.json'), 'utf8'));
    fs.rmSync(path.join(ck, 'manifest.json'));
    fs.writeFileSync(path.join(ck, 'trainer_state.json'), JSON.stringify({ ...state, version: 1, step: 9, totalSteps: undefined, status: undefined }));
    const before = snapshot(d);
    const { t, model } = trainer(d);
    await expect(t.fit({ resume: true })).rejects.toMatchObject({ code: 'ERR_STATE', message: expect.stringMatching(/trainer_state\.json has step 9, above this run's 4 optimizer steps/) });
    expect(snapshot(d)).toEqual(before);
    model.dispose();
  });

  it('a checkpoint of another config is refused naming each differing field', async () => {
    const d = await crashedRun();
    const before = snapshot(d);
    const { t, model } = trainer(d, { runConfig: { model: 'tiny', training: { max_steps: 4, lr: 2e-3 }, peft: { r: 8 } } });
    const err = await t.fit({ resume: true }).catch((e) => e);
    expect(err.code).toBe('ERR_CONFIG');
    expect(err.message).toMatch(/different config:\n\s+training\.lr: checkpoint has 0\.001, this run has 0\.002\n\s+peft: checkpoint has undefined, this run has \{"r":8\}/);
    expect(snapshot(d)).toEqual(before);
    model.dispose();
  });

  it('a resume continues a crashed run to the end; a run from the start in a used folder begins a new metrics log', async () => {
    const d = await crashedRun();
    const { t, model } = trainer(d);
    const lines: string[] = [];
    const res = await t.fit({ resume: true, log: (l) => lines.push(l) });
    expect(res).toMatchObject({ steps: 4, status: 'completed' });
    expect(lines).toEqual([`resuming from ${path.join(d, 'checkpoint')} (step 2 of 4)`]);
    const steps = (split: string) => fs.readFileSync(path.join(d, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter((r) => r.split === split).map((r) => r.step);
    expect(steps('train')).toEqual([1, 2, 3, 4]);
    model.dispose();
    const fresh = trainer(d);
    await fresh.t.fit();
    expect(steps('train')).toEqual([1, 2, 3, 4]);
    fresh.model.dispose();
  });
});

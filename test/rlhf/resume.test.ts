/**
 * Reward, DPO and PPO runs get what supervised runs get from the one Trainer: a Ctrl-C (SIGINT)
 * saves a checkpoint and stops, `--resume` (runTraining({ resume: true })) continues it, and the
 * end is bit-identical to an uninterrupted run (adapter, optimizer state, PPO's value head and
 * adaptive kl_coef, every train and eval figure); a kill in the checkpoint window where no
 * checkpoint/ folder exists (checkpoint.ts's fault hook, between the two renames) is recovered
 * the same way. One real SIGINT through `tunekit train` (TUNEKIT_FAULT_SIGINT_AT_STEP) for PPO.
 */
import { describe, it, expect, beforeAll, afterAll, afterEach } from 'vitest';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import '../../lib/index.js';
import { loadConfig } from '../../lib/train/config.js';
import { runTraining } from '../../lib/train/run.js';
import { readMetrics, type MetricsRecord } from '../../lib/train/metrics_log.js';
import { setCheckpointFaultHook } from '../../lib/train/checkpoint.js';
import { makeTinyRlhfWork, type TinyRlhfWork } from './tiny_run.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const MAIN = path.join(ROOT, 'dist', 'cli', 'main.js');

let w: TinyRlhfWork;
const quiet = { log: () => {} };

beforeAll(() => {
  w = makeTinyRlhfWork('tunekit-rlhf-resume-');
});
afterAll(() => w?.remove());
afterEach(() => setCheckpointFaultHook(null));

/** 6 steps, checkpoints after steps 2, 4, 6, an evaluation every 2 steps (and before the first, as these objectives do). */
function rawConfig(method: 'reward' | 'dpo' | 'ppo', out: string): Record<string, unknown> {
  const rlhf = method === 'ppo'
    // the adaptive controller: kl_coef changes every step, so a resume must restore it
    ? { rlhf: { reward_model: path.join(w.work, 'reward-ref'), max_new_tokens: 4, ppo_epochs: 2, kl_coef: 0.1, kl_target: 0.5, kl_horizon: 40 } }
    : {};
  const c = w.config(method, out, rlhf);
  Object.assign(c.training as object, { save_every: 2, eval_every: 2 });
  return c;
}
const config = (method: 'reward' | 'dpo' | 'ppo', out: string) => loadConfig(rawConfig(method, out));

/** The files that must come out byte-identical. */
function files(method: string): string[] {
  const f = ['adapter/adapter_model.safetensors', 'checkpoint/adapter/adapter_model.safetensors', 'checkpoint/optimizer.safetensors'];
  if (method === 'ppo') f.push('checkpoint/value_head.safetensors');
  if (method === 'reward') f.push('model/model.safetensors');
  return f;
}

/** metrics.jsonl without the wall-clock fields. */
function figures(dir: string): Omit<MetricsRecord, 'time'>[] {
  return readMetrics(path.join(dir, 'metrics.jsonl')).map(({ time: _t, tokens_per_s: _tps, ...rest }) => rest);
}

function expectSameRun(dir: string, ref: string, method: string): void {
  for (const f of files(method)) expect(fs.readFileSync(path.join(dir, f)).equals(fs.readFileSync(path.join(ref, f))), `${method}: ${f}`).toBe(true);
  expect(figures(dir)).toEqual(figures(ref));
  const results = (d: string) => JSON.parse(fs.readFileSync(path.join(d, 'results.json'), 'utf8'));
  expect(results(dir).eval).toEqual(results(ref).eval);
  expect(results(dir).status).toBe('completed');
  expect(fs.readdirSync(dir).filter((f) => f.startsWith('.'))).toEqual([]);
  const state = JSON.parse(fs.readFileSync(path.join(dir, 'checkpoint', 'trainer_state.json'), 'utf8'));
  const refState = JSON.parse(fs.readFileSync(path.join(ref, 'checkpoint', 'trainer_state.json'), 'utf8'));
  expect(state.objective).toEqual(refState.objective);
  expect(state.objective.name).toBe(method);
}

class SimulatedKill extends Error {}

// reward first: the PPO runs score with its merged model
describe.each(['reward', 'dpo', 'ppo'] as const)('%s', (method) => {
  const ref = () => path.join(w.work, `${method}-ref`);

  it('SIGINT saves a checkpoint and stops; --resume ends bit-identical to an uninterrupted run', async () => {
    const straight = await runTraining(config(method, `${method}-ref`), quiet);
    expect(straight.fit).toMatchObject({ steps: 6, status: 'completed' });
    expect(straight.fit.tokensPerSecond).toBeGreaterThan(0);

    const out = `${method}-sigint`;
    // Ctrl-C during step 3: the step finishes, its checkpoint is written, the run stops
    const stopped = await runTraining(config(method, out), { ...quiet, callbacks: { onStep: (i) => { if (i.step === 3) process.emit('SIGINT'); } } });
    expect(stopped.fit).toMatchObject({ steps: 3, status: 'interrupted' });
    const state = JSON.parse(fs.readFileSync(path.join(w.work, out, 'checkpoint', 'trainer_state.json'), 'utf8'));
    expect(state).toMatchObject({ step: 3, status: 'interrupted', objective: { name: method } });
    expect(process.listenerCount('SIGINT')).toBe(0);

    const lines: string[] = [];
    const resumed = await runTraining(config(method, out), { resume: true, log: (l) => lines.push(l) });
    expect(lines).toContain(`resuming from ${path.join(w.work, out, 'checkpoint')} (step 3 of 6)`);
    expect(resumed.fit).toMatchObject({ steps: 6, status: 'completed' });
    expectSameRun(path.join(w.work, out), ref(), method);
  });

  it('a kill between the two renames of a save (no checkpoint/ folder left) is recovered by --resume, bit-identical', async () => {
    const out = `${method}-killed`;
    setCheckpointFaultHook((step, write) => {
      if (step === 'old-moved' && write === 2) throw new SimulatedKill('killed after old-moved of the step-4 save');
    });
    await expect(runTraining(config(method, out), quiet)).rejects.toThrow(SimulatedKill);
    setCheckpointFaultHook(null);
    const dir = path.join(w.work, out);
    expect(fs.readdirSync(dir).filter((n) => n.includes('checkpoint')).map((n) => n.replace(/-[\w-]+$/, '')).sort()).toEqual(['.checkpoint.old', '.checkpoint.tmp']);

    const lines: string[] = [];
    await runTraining(config(method, out), { resume: true, log: (l) => lines.push(l) });
    expect(lines.join('\n')).toMatch(/recovered the checkpoint of step 4 from \.checkpoint\.tmp-\S+ \(a save was interrupted\)/);
    expectSameRun(dir, ref(), method);
  });
});

describe('dpo with full fine-tuning (peft: null)', () => {
  it('the reference log-probs come from the base, computed before the checkpoint is restored: SIGINT + --resume is bit-identical', async () => {
    const full = (out: string) => {
      const c = rawConfig('dpo', out);
      return loadConfig({ ...c, peft: null });
    };
    const ref = await runTraining(full('dpo-full-ref'), quiet);
    expect(ref.before!['rewards/margins']).toBe(0);
    const stop = await runTraining(full('dpo-full'), { ...quiet, callbacks: { onStep: (i) => { if (i.step === 3) process.emit('SIGINT'); } } });
    expect(stop.fit).toMatchObject({ steps: 3, status: 'interrupted' });
    await runTraining(full('dpo-full'), { ...quiet, resume: true });
    for (const f of ['model/model.safetensors', 'checkpoint/model/model.safetensors', 'checkpoint/optimizer.safetensors']) {
      expect(fs.readFileSync(path.join(w.work, 'dpo-full', f)).equals(fs.readFileSync(path.join(w.work, 'dpo-full-ref', f))), f).toBe(true);
    }
    expect(figures(path.join(w.work, 'dpo-full'))).toEqual(figures(path.join(w.work, 'dpo-full-ref')));
  });
});

describe('tunekit train (PPO) with a real SIGINT', () => {
  it('stops with a checkpoint, lists only what it wrote, and --resume ends bit-identical to the in-process run', () => {
    expect(fs.existsSync(MAIN)).toBe(true); // dist/ is built by test/global_setup.ts
    const cfg = path.join(w.work, 'ppo-cli.json');
    fs.writeFileSync(cfg, JSON.stringify(rawConfig('ppo', 'ppo-cli')));
    const cli = (args: string[], env: Record<string, string> = {}) =>
      spawnSync(process.execPath, [MAIN, 'train', cfg, ...args], { cwd: w.work, encoding: 'utf8', env: { ...process.env, NO_COLOR: '1', ...env }, timeout: 60_000 });
    const stopped = cli([], { TUNEKIT_FAULT_SIGINT_AT_STEP: '2' });
    expect(stopped.status, stopped.stderr).toBe(0);
    // the signal arrives during step 2 or 3 (the handler runs when the event loop gets to it)
    const m = /done: (\d) steps \(interrupted\) in [\d.]+ s, (\d+) tokens\/s/.exec(stopped.stdout);
    expect(m, stopped.stdout).not.toBeNull();
    expect(Number(m![1])).toBeGreaterThanOrEqual(2);
    expect(Number(m![2])).toBeGreaterThan(0);
    expect(stopped.stdout).toMatch(/outputs in \S+: adapter\/ \(PEFT\), metrics\.jsonl, loss\.svg, ppo\.svg, checkpoint\/, results\.json/);
    expect(stopped.stdout).toMatch(/eval: score -?[\d.]+, kl -?[\d.]+, response_length [\d.]+ on 10 examples/);

    const resumed = cli(['--resume']);
    expect(resumed.status, resumed.stderr).toBe(0);
    expect(resumed.stderr).toMatch(new RegExp(`resuming from \\S+checkpoint \\(step ${m![1]} of 6\\)`));
    expect(resumed.stdout).toMatch(/done: 6 steps \(completed\)/);
    expectSameRun(path.join(w.work, 'ppo-cli'), path.join(w.work, 'ppo-ref'), 'ppo');
  });
});

/**
 * Data-parallel training with real ranks: the process group's collectives on 3 ranks, then
 * `tunekit train --nproc N` (mpirun, Open MPI or MPICH) on the main job's setup (LoRA, seq_cls
 * spam/ham) with a tiny GPT-2 base, one thread per rank.
 *
 * - 2 ranks equal one process on the combined batch (adapter and every logged loss within float
 *   tolerance), with gradient accumulation and a short last batch (uneven shards);
 * - the same seed repeats a 2-rank run bit for bit (dropout on: per-rank streams), also through
 *   SIGINT and a resume on 2 ranks; a resume on 1 or 3 ranks is ERR_CONFIG and changes nothing;
 * - Ctrl-C at `--nproc`'s launcher: the ranks stop together and rank 0 saves;
 * - faults: a rank that dies (SIGKILL) or hangs (SIGSTOP, timeout 5 s) stops the job with a clear
 *   error (a death at once, a hang at the timeout), every rank gone, the last checkpoint intact;
 * - without MPI, --nproc says what to install.
 * Skipped, saying why, where no MPI library or launcher is installed (.ci/run installs Open MPI).
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { readMetrics } from '../../lib/train/metrics_log.js';
import { checkCheckpointSync } from '../../lib/train/checkpoint.js';
import { findLauncher } from '../../lib/train/distributed/launch.js';
import { cli, jobConfig, makeTinyBase, maxAbsDiff, mpiUnavailable, processesOf, readTensors, snapshot, writeConfig, DATA, MAIN, ROOT } from './helpers.js';

const whyNot = mpiUnavailable();
if (whyNot) console.log(`test/distributed/data_parallel.test.ts: multi-process tests skipped: ${whyNot}`);

let work = '';
let modelDir = '';

beforeAll(() => {
  expect(fs.existsSync(MAIN)).toBe(true);
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'tunekit-ddp-'));
  modelDir = makeTinyBase(work);
});

afterAll(() => {
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

const adapterOf = (dir: string) => readTensors(path.join(dir, 'adapter', 'adapter_model.safetensors'));
const trainLosses = (dir: string) => readMetrics(path.join(dir, 'metrics.jsonl')).filter((r) => r.split === 'train').map((r) => r.loss as number);
const evalLosses = (dir: string) => readMetrics(path.join(dir, 'metrics.jsonl')).filter((r) => r.split === 'eval').map((r) => r.loss as number);

describe.skipIf(whyNot !== null)('the process group over MPI', () => {
  it('sums, max/min, broadcasts and JSON on 3 ranks, small buffers (non-blocking calls) and 4 MiB ones (blocking calls)', () => {
    const launcher = findLauncher();
    const r = spawnSync(launcher.command, [...launcher.args(3), process.execPath, path.join(ROOT, 'test', 'distributed', 'fixtures', 'collectives_job.mjs')], { encoding: 'utf8', timeout: 60_000 });
    expect(r.status, `${r.stdout}\n${r.stderr}`).toBe(0);
    const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { rank: number; size: number; problems: string[] });
    expect(lines.map((l) => l.rank).sort()).toEqual([0, 1, 2]);
    for (const l of lines) expect(l).toMatchObject({ size: 3, problems: [] });
  }, 60_000);
});

describe.skipIf(whyNot !== null)('tunekit train --nproc (MPI ranks on this machine)', () => {
  it('2 ranks equal one process on the combined batch: every loss and the adapter', async () => {
    // one process: 10 examples a micro-batch, 2 micro-batches a step; 2 ranks: 5 each. 25 train
    // examples make micro-batches of 10, 10, 5: the last one's shards hold 3 and 2 examples, so
    // the ranks' losses must be weighted by their shares to equal the combined batch's mean
    const training = { max_steps: 3, grad_accum: 2, save_every: 0 };
    const split = { dataset: { path: DATA, max_length: 24, eval: { size: 7, seed: 1 } } };
    const one = writeConfig(path.join(work, 'one.json'), jobConfig(modelDir, path.join(work, 'one'), { ...training, batch_size: 10 }, split));
    const two = writeConfig(path.join(work, 'two.json'), jobConfig(modelDir, path.join(work, 'two'), { ...training, batch_size: 5 }, split));
    const r1 = await cli(['train', one], { cwd: work });
    expect(r1.code, r1.stderr).toBe(0);
    const r2 = await cli(['train', two, '--nproc', '2'], { cwd: work });
    expect(r2.code, r2.stderr).toBe(0);
    expect(r2.stderr).toMatch(/data parallel: 2 ranks .*a step takes 20 examples \(batch_size 5 x 2 ranks x grad_accum 2\)/);
    // rank 0 alone reports
    expect(r2.stdout.match(/^done: 3 steps/gm)).toHaveLength(1);
    const l1 = trainLosses(path.join(work, 'one')), l2 = trainLosses(path.join(work, 'two'));
    expect(l2).toHaveLength(3);
    l2.forEach((v, i) => expect(Math.abs(v - l1[i]!)).toBeLessThan(1e-5 * Math.max(1, Math.abs(l1[i]!))));
    const e1 = evalLosses(path.join(work, 'one')), e2 = evalLosses(path.join(work, 'two'));
    expect(e2).toHaveLength(e1.length);
    e2.forEach((v, i) => expect(Math.abs(v - e1[i]!)).toBeLessThan(1e-5));
    expect(maxAbsDiff(adapterOf(path.join(work, 'one')), adapterOf(path.join(work, 'two')))).toBeLessThan(2e-5);
    // only the trainable parameters move: LoRA's adapter and the new head, f32
    const results = JSON.parse(fs.readFileSync(path.join(work, 'two', 'results.json'), 'utf8'));
    expect(results.distributed).toMatchObject({ world_size: 2, gradient_bytes_per_update: results.trainable_parameters * 4 });
    expect(results.distributed.bytes_per_step).toBeGreaterThanOrEqual(results.trainable_parameters * 4);
    expect(results.distributed.bytes_per_step).toBeLessThan(results.trainable_parameters * 4 + 4096);
  }, 60_000);

  it('the same seed repeats a 2-rank run bit for bit, through SIGINT and --resume on 2 ranks; 1 or 3 ranks are refused', async () => {
    // dropout on: each rank draws its masks from (seed, step, rank); run c starts from scratch
    // with a's seed, is interrupted and resumed, and must end byte-identical to a
    const config = (out: string) => jobConfig(modelDir, path.join(work, out), { max_steps: 4, batch_size: 4, save_every: 1 }, { peft: { r: 4, lora_alpha: 8, lora_dropout: 0.1, target_modules: ['wte', 'c_attn', 'c_proj', 'c_fc'] } });
    const a = writeConfig(path.join(work, 'a.json'), config('a'));
    const c = writeConfig(path.join(work, 'c.json'), config('c'));
    const ra = await cli(['train', a, '--nproc', '2'], { cwd: work });
    expect(ra.code, ra.stderr).toBe(0);
    const adapterA = fs.readFileSync(path.join(work, 'a', 'adapter', 'adapter_model.safetensors'));

    // SIGINT on every rank after step 1: the ranks agree (in a step's reduction: step 2, or 3
    // when a signal is handled only after that step's reduction) to stop, and rank 0 saves
    const stopped = await cli(['train', c, '--nproc', '2'], { cwd: work, env: { TUNEKIT_FAULT_SIGINT_AT_STEP: '1' } });
    expect(stopped.code, stopped.stderr).toBe(0);
    expect(stopped.stdout).toMatch(/\(interrupted\)/);
    const ck = checkCheckpointSync(path.join(work, 'c', 'checkpoint'));
    const at = ck.complete ? ck.step : -1;
    expect([2, 3]).toContain(at);
    expect(ck.complete && ck.state.status).toBe('interrupted');
    const before = snapshot(path.join(work, 'c'));
    const single = await cli(['train', c, '--resume'], { cwd: work });
    expect(single.code).toBe(1);
    expect(single.stderr).toMatch(/\[ERR_CONFIG\] refusing to resume from .*: it was written by a run of 2 ranks, this run has one process.*Resume with --nproc 2/);
    const three = await cli(['train', c, '--resume', '--nproc', '3'], { cwd: work });
    expect(three.code).toBe(1);
    expect(three.stderr).toMatch(/\[rank 0\] error \[ERR_CONFIG\] refusing to resume .*this run has 3 ranks/);
    expect(snapshot(path.join(work, 'c'))).toEqual(before);
    const resumed = await cli(['train', c, '--resume', '--nproc', '2'], { cwd: work });
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(resumed.stderr).toContain(`(step ${at} of 4)`);
    // the steps before the interruption (from scratch, same seed) and after it (resumed) are a's
    expect(fs.readFileSync(path.join(work, 'c', 'adapter', 'adapter_model.safetensors')).equals(adapterA)).toBe(true);
    expect(trainLosses(path.join(work, 'c'))).toEqual(trainLosses(path.join(work, 'a')));
  }, 90_000);

  it('Ctrl-C at the launcher: the ranks stop together after a step and rank 0 saves a checkpoint', async () => {
    const out = path.join(work, 'ctrl-c');
    const cfg = writeConfig(path.join(work, 'ctrl-c.json'), jobConfig(modelDir, out, { max_steps: 3000, epochs: 1000, batch_size: 4, save_every: 5 }));
    // as a terminal does: SIGINT to the launcher's whole process group
    const child = spawn(process.execPath, [MAIN, 'train', cfg, '--nproc', '2'], { cwd: work, detached: true, env: { ...process.env, NO_COLOR: '1' } });
    let stdout = '', stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
    const deadline = Date.now() + 40_000;
    while (!fs.existsSync(path.join(out, 'checkpoint')) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    process.kill(-child.pid!, 'SIGINT');
    expect(await exited, stderr).toBe(0);
    expect(stderr).toMatch(/interrupt: the ranks stop after this step and save a checkpoint/);
    expect(stdout).toMatch(/^done: \d+ steps \(interrupted\)/m);
    const ck = checkCheckpointSync(path.join(out, 'checkpoint'));
    expect(ck.complete && ck.state.status).toBe('interrupted');
    expect(ck.complete && ck.step).toBeLessThan(3000);
  }, 60_000);

  // the hang is found by the 5 s timeout; a death by mpirun at once (the timeout stays long: a
  // loaded machine can start one rank seconds after the other)
  it.each([
    ['dies (SIGKILL)', 'kill', 60, /mpirun noticed that process rank 1 .* exited on signal 9/],
    ['hangs (SIGSTOP)', 'stop', 5, /\[rank 0\] error \[ERR_TIMEOUT\] rank 0 of 2: .* did not complete within 5 s: another rank died, hangs/],
  ])('a rank that %s stops the job with a clear error within the timeout; the last checkpoint is intact', async (_what, fault, timeout, report) => {
    const out = path.join(work, `fault-${fault}`);
    const cfg = writeConfig(path.join(work, `fault-${fault}.json`), jobConfig(modelDir, out, { max_steps: 40, epochs: 20, batch_size: 4, save_every: 2 }, { distributed: { timeout_s: timeout } }));
    const r = await cli(['train', cfg, '--nproc', '2'], { cwd: work, env: { TUNEKIT_FAULT_RANK: `1:3:${fault}` }, timeoutMs: 60_000 });
    expect(r.signal).toBeNull();
    expect(r.code).toBe(1);
    expect(r.stdout + r.stderr).toMatch(report);
    expect(r.stderr).toMatch(/error \[ERR_BACKEND\] the 2-rank job stopped: mpirun exited with status \d+ .*The last checkpoint, step 2 of 40, is intact in .*checkpoint \(its files match its manifest\): run the same command with --resume/);
    // generous for a loaded machine: the stop itself takes about a second (kill) or the 2 s timeout (hang)
    expect(r.seconds).toBeLessThan(30);
    const ck = checkCheckpointSync(path.join(out, 'checkpoint'));
    expect(ck.complete && ck.step).toBe(2);
    expect(processesOf(`${MAIN} train ${cfg}`)).toEqual([]);
  }, 60_000);
});

describe('tunekit train --nproc without MPI', () => {
  it('says which launcher or library is missing and how to install it', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tunekit-nompi-'));
    try {
      const cfg = writeConfig(path.join(dir, 'c.json'), jobConfig(modelDir, path.join(dir, 'out'), { max_steps: 1, batch_size: 4 }));
      const noLauncher = await cli(['train', cfg, '--nproc', '2'], { cwd: dir, env: { TUNEKIT_MPIRUN: path.join(dir, 'no-such-mpirun') } });
      expect(noLauncher.code).toBe(1);
      // where no library loads, that is said first; else the missing launcher
      expect(noLauncher.stderr).toMatch(/error \[ERR_BACKEND\] (--nproc starts the ranks with MPI's launcher, but ".*no-such-mpirun" was not found on PATH|--nproc 2: distributed training needs MPI).*apt-get install openmpi-bin/s);
      const noLibrary = await cli(['train', cfg, '--nproc', '2'], { cwd: dir, env: { TUNEKIT_MPI_LIBRARY: path.join(dir, 'no-such-libmpi.so') } });
      expect(noLibrary.code).toBe(1);
      expect(noLibrary.stderr).toMatch(/error \[ERR_BACKEND\] --nproc 2: distributed training needs MPI, and no MPI library could be loaded:\n.*no-such-libmpi\.so.*\nInstall Open MPI \(Debian\/Ubuntu: apt-get install openmpi-bin/);
      expect(fs.existsSync(path.join(dir, 'out'))).toBe(false);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 30_000);
});

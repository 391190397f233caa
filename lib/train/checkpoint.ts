/**
 * Training checkpoints on disk: written so that a crash (SIGKILL, power loss after fsync) at any
 * point leaves the newest complete checkpoint findable, read back only once verified, and
 * recovered on resume.
 *
 * Layout of `<outputDir>/checkpoint/`:
 *   adapter/ or model/       weights (a PEFT folder or a Hugging Face folder)
 *   <module>.safetensors     modules the objective trains beside the model (PPO: value_head)
 *   optimizer.safetensors    AdamW m and v (metadata.step: AdamW's step count)
 *   trainer_state.json       step, status, loader position, RNG, best metric, run config,
 *                            the objective's name and state
 *   manifest.json            written last: every other file with its size (bytes) and sha256
 *
 * A folder is *complete* when its manifest parses and every file it lists is there with that
 * size and hash. The write runs these steps; a crash can fall between any two of them:
 *
 *   tmp-created        mkdir .checkpoint.tmp-<id>
 *   weights-written    adapter/ or model/ (each file fsynced by its writer)
 *   optimizer-written  optimizer.safetensors
 *   state-written      trainer_state.json
 *   manifest-written   manifest.json (the tmp folder is now complete)
 *   old-moved          checkpoint -> .checkpoint.old-<id> (only when a checkpoint exists)
 *   tmp-installed      .checkpoint.tmp-<id> -> checkpoint, output folder fsynced
 *   old-removed        rm -r .checkpoint.old-<id>
 *   leftovers-removed  rm -r other .checkpoint.tmp-* / .checkpoint.old-* (crashes of earlier saves)
 *
 * {@link recoverCheckpoint} looks at `checkpoint/`, `.checkpoint.tmp-*` and `.checkpoint.old-*`,
 * renames the complete one with the highest step to `checkpoint/`, and only then removes the
 * others; with no complete one it removes nothing.
 */
import { closeSync, fsyncSync, lstatSync, mkdirSync, openSync, readFileSync, readSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { TunekitError, describe } from '../errors.js';
import { open } from 'node:fs/promises';
import { fsyncDir, writeJsonAtomic, writeJsonAtomicSync } from '../io/atomic.js';
import type { LoaderState } from '../data/loader.js';

export const CHECKPOINT_DIR = 'checkpoint';
export const MANIFEST_FILE = 'manifest.json';
export const TRAINER_STATE_FILE = 'trainer_state.json';
export const OPTIMIZER_FILE = 'optimizer.safetensors';
const TMP_PREFIX = '.checkpoint.tmp-';
const OLD_PREFIX = '.checkpoint.old-';

/** Where a run stood when its checkpoint was written. */
export type CheckpointStatus = 'running' | 'completed' | 'early_stopped' | 'interrupted';
const STATUSES: readonly CheckpointStatus[] = ['running', 'completed', 'early_stopped', 'interrupted'];

/** trainer_state.json (version 1, written before status and totalSteps existed, is still read). */
export interface TrainerState {
  version: 2;
  /** optimizer steps done */
  step: number;
  /** optimizer steps the run was to make; null in version-1 files */
  totalSteps: number | null;
  /** null in version-1 files */
  status: CheckpointStatus | null;
  loader: LoaderState;
  /** the global RNG (lib/nn/random.ts) as a decimal string */
  seedState: string;
  best: number | null;
  badEvals: number;
  runConfig: Record<string, unknown> | null;
  /**
   * the objective that wrote it (lib/train/objective.ts) and its own state (PPO: the KL
   * coefficient); null in files written before objectives were recorded (supervised runs)
   */
  objective: { name: string; state: Record<string, unknown> | null } | null;
}

/** The filesystem steps of a checkpoint write, in order (see the file comment). */
export const CHECKPOINT_WRITE_STEPS = [
  'tmp-created', 'weights-written', 'optimizer-written', 'state-written', 'manifest-written',
  'old-moved', 'tmp-installed', 'old-removed', 'leftovers-removed',
] as const;
export type CheckpointWriteStep = (typeof CHECKPOINT_WRITE_STEPS)[number];

/**
 * Called after each step of each checkpoint write: `write` counts this process's writes from 1.
 * Fault injection for tests: throw (or kill the process) to stop the write there.
 */
export type CheckpointFaultHook = (step: CheckpointWriteStep, write: number) => void;

/**
 * `TUNEKIT_FAULT_CHECKPOINT_KILL=<step>[@<write>]` makes the process SIGKILL itself right after
 * that step of that write (default: the first), for tests that kill a real `tunekit train`.
 */
function hookFromEnv(): CheckpointFaultHook | null {
  const spec = process.env.TUNEKIT_FAULT_CHECKPOINT_KILL;
  if (!spec) return null;
  const m = /^([a-z-]+)(?:@(\d+))?$/.exec(spec);
  if (!m || !(CHECKPOINT_WRITE_STEPS as readonly string[]).includes(m[1]!)) {
    throw new TunekitError('ERR_CONFIG', `TUNEKIT_FAULT_CHECKPOINT_KILL: expected <step>[@<write>] with a step of ${CHECKPOINT_WRITE_STEPS.join(', ')} but received ${describe(spec)}`);
  }
  const at = m[1], write = Number(m[2] ?? 1);
  return (step, n) => {
    if (step === at && n === write) process.kill(process.pid, 'SIGKILL');
  };
}

let faultHook: CheckpointFaultHook | null = null;
let faultHookFromEnvRead = false;
let writesDone = 0;

/**
 * Installs (or with null removes) the fault-injection hook of checkpoint writes.
 *
 * @example
 * setCheckpointFaultHook((step, write) => { if (step === 'old-moved' && write === 2) throw new Error('killed'); });
 */
export function setCheckpointFaultHook(hook: CheckpointFaultHook | null): void {
  faultHook = hook;
  faultHookFromEnvRead = true;
  writesDone = 0;
}

function reached(step: CheckpointWriteStep, write: number): void {
  if (!faultHookFromEnvRead) {
    faultHook = hookFromEnv();
    faultHookFromEnvRead = true;
  }
  faultHook?.(step, write);
}

function ioError(what: string, path: string, e: unknown): TunekitError {
  if (e instanceof TunekitError) return e;
  return new TunekitError('ERR_IO', `Could not ${what} ${path}: ${(e as Error).message}`);
}

/** A name no other save (of this or another process) uses. */
function uniqueSuffix(): string {
  return `${process.pid}-${Date.now()}-${randomBytes(3).toString('hex')}`;
}

/** sha256 of a file, read in 4 MiB chunks (checkpoints of full models are gigabytes). */
function sha256File(path: string): string {
  const hash = createHash('sha256');
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.allocUnsafe(4 << 20);
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      hash.update(buf.subarray(0, n));
    }
  } finally {
    closeSync(fd);
  }
  return hash.digest('hex');
}

/** {@link sha256File} through fs/promises: the event loop runs between chunks. */
async function sha256FileAsync(path: string): Promise<string> {
  const hash = createHash('sha256');
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.allocUnsafe(4 << 20);
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, null);
      if (bytesRead === 0) break;
      hash.update(buf.subarray(0, bytesRead));
    }
  } finally {
    await fh.close();
  }
  return hash.digest('hex');
}

/** Regular files under dir (relative, '/'-separated), hidden temporaries left out. */
function listFiles(dir: string, root = dir): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.name.startsWith('.')) continue;
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...listFiles(p, root));
    else if (e.isFile()) out.push(relative(root, p).split(sep).join('/'));
  }
  return out.sort();
}

interface Manifest {
  version: 1;
  step: number;
  files: Record<string, { bytes: number; sha256: string }>;
}

/** What a checkpoint holds; the weights are written by the model's own saver. */
export interface CheckpointContent {
  /** writes adapter/ or model/ (and any other weight files) under the given checkpoint folder */
  writeWeights(dir: string): Promise<void> | void;
  /** writes the optimizer state to the given file */
  writeOptimizer(file: string): Promise<void> | void;
  state: TrainerState;
}

/** {@link CheckpointContent} whose writers block (for {@link writeCheckpointSync}). */
export interface CheckpointContentSync extends CheckpointContent {
  writeWeights(dir: string): void;
  writeOptimizer(file: string): void;
}

/**
 * The file work of one checkpoint write, handed to a driver: the async driver awaits each, the
 * sync one blocks. The steps between them (folders, renames, fsync of the folder) are the same
 * code for both, so both forms leave the same files in every crash window.
 */
type CheckpointIo =
  | { kind: 'weights'; dir: string }
  | { kind: 'optimizer'; file: string }
  | { kind: 'json'; path: string; value: unknown }
  | { kind: 'sha256'; path: string };

function* checkpointSteps(outputDir: string, state: TrainerState): Generator<CheckpointIo, string, string | undefined> {
  const write = ++writesDone;
  const final = join(outputDir, CHECKPOINT_DIR);
  const tmp = join(outputDir, TMP_PREFIX + uniqueSuffix());
  try {
    mkdirSync(outputDir, { recursive: true });
    mkdirSync(tmp);
  } catch (e) {
    throw ioError('create the checkpoint folder', tmp, e);
  }
  reached('tmp-created', write);
  yield { kind: 'weights', dir: tmp };
  reached('weights-written', write);
  yield { kind: 'optimizer', file: join(tmp, OPTIMIZER_FILE) };
  reached('optimizer-written', write);
  yield { kind: 'json', path: join(tmp, TRAINER_STATE_FILE), value: state };
  reached('state-written', write);
  // every file above was fsynced by its writer; the manifest, written last, makes the folder complete
  const files: Manifest['files'] = {};
  for (const f of listFiles(tmp)) {
    const p = join(tmp, f);
    files[f] = { bytes: lstatSync(p).size, sha256: (yield { kind: 'sha256', path: p })! };
  }
  const manifest: Manifest = { version: 1, step: state.step, files };
  yield { kind: 'json', path: join(tmp, MANIFEST_FILE), value: manifest };
  reached('manifest-written', write);
  const old = join(outputDir, OLD_PREFIX + uniqueSuffix());
  const movedOld = isDir(final);
  if (movedOld) {
    try {
      renameSync(final, old);
    } catch (e) {
      throw ioError('move the previous checkpoint aside to', old, e);
    }
    reached('old-moved', write);
  }
  try {
    renameSync(tmp, final);
  } catch (e) {
    throw ioError('install the checkpoint', final, e);
  }
  fsyncDir(outputDir);
  reached('tmp-installed', write);
  if (movedOld) {
    rmSync(old, { recursive: true, force: true });
    reached('old-removed', write);
  }
  // leftovers of crashed saves: checkpoint/ is now the newest complete checkpoint (a resume always
  // starts from the newest one, and a fresh run owns its folder), so none of them is needed
  for (const name of candidateNames(outputDir)) {
    if (name !== CHECKPOINT_DIR) rmSync(join(outputDir, name), { recursive: true, force: true });
  }
  reached('leftovers-removed', write);
  return final;
}

/**
 * Writes `<outputDir>/checkpoint` so that every crash window leaves a complete checkpoint
 * (the new one or the previous one) that {@link recoverCheckpoint} finds. Returns the folder.
 * The weights, the optimizer state, the JSON files and the manifest's hashes go through
 * promises (the event loop runs between files and between a file's 4 MiB chunks); creating,
 * renaming and removing folders block (metadata operations, milliseconds).
 *
 * @example
 * await writeCheckpoint('runs/x', { writeWeights: (d) => model.saveAdapter(join(d, 'adapter')), writeOptimizer: (f) => ..., state });
 */
export async function writeCheckpoint(outputDir: string, content: CheckpointContent): Promise<string> {
  const steps = checkpointSteps(outputDir, content.state);
  let r = steps.next();
  while (!r.done) {
    const io = r.value;
    let answer: string | undefined;
    if (io.kind === 'weights') await content.writeWeights(io.dir);
    else if (io.kind === 'optimizer') await content.writeOptimizer(io.file);
    else if (io.kind === 'json') await writeJsonAtomic(io.path, io.value, { indent: 2 });
    else answer = await sha256FileAsync(io.path);
    r = steps.next(answer);
  }
  return r.value;
}

/**
 * The blocking form of {@link writeCheckpoint}: the same steps and files.
 *
 * @example
 * writeCheckpointSync('runs/x', { writeWeights: (d) => model.saveAdapterSync(join(d, 'adapter')), writeOptimizer: (f) => ..., state });
 */
export function writeCheckpointSync(outputDir: string, content: CheckpointContentSync): string {
  const steps = checkpointSteps(outputDir, content.state);
  let r = steps.next();
  while (!r.done) {
    const io = r.value;
    let answer: string | undefined;
    if (io.kind === 'weights') content.writeWeights(io.dir);
    else if (io.kind === 'optimizer') content.writeOptimizer(io.file);
    else if (io.kind === 'json') writeJsonAtomicSync(io.path, io.value, { indent: 2 });
    else answer = sha256File(io.path);
    r = steps.next(answer);
  }
  return r.value;
}

function isDir(p: string): boolean {
  try {
    return lstatSync(p).isDirectory();
  } catch {
    return false;
  }
}

/** checkpoint, .checkpoint.tmp-*, .checkpoint.old-* folders of an output folder. */
function candidateNames(outputDir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(outputDir);
  } catch {
    return [];
  }
  return names.filter((n) => (n === CHECKPOINT_DIR || n.startsWith(TMP_PREFIX) || n.startsWith(OLD_PREFIX)) && isDir(join(outputDir, n)));
}

/**
 * Parses trainer_state.json text, checking every field (the file is untrusted input: truncated
 * by a crash or edited by hand). `file` names it in errors.
 *
 * @example
 * const state = parseTrainerState(readFileSync('runs/x/checkpoint/trainer_state.json', 'utf8'), 'runs/x/checkpoint/trainer_state.json');
 */
export function parseTrainerState(text: string, file: string): TrainerState {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new TunekitError('ERR_FORMAT', `${file}: expected JSON but the file is truncated or corrupt (${(e as Error).message})`);
  }
  const bad = (field: string, expected: string, got: unknown) =>
    new TunekitError('ERR_FORMAT', `${file}: expected ${expected} for ${field} but received ${describe(got)}`);
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw bad('the file', 'an object', v);
  const o = v as Record<string, unknown>;
  if (o.version !== 1 && o.version !== 2) throw bad('version', '1 or 2', o.version);
  const nonNegInt = (k: string) => {
    if (!Number.isSafeInteger(o[k]) || (o[k] as number) < 0) throw bad(k, 'a non-negative integer', o[k]);
    return o[k] as number;
  };
  const step = nonNegInt('step');
  const badEvals = nonNegInt('badEvals');
  if (typeof o.loader !== 'object' || o.loader === null || Array.isArray(o.loader)) throw bad('loader', 'an object {epoch, index, seed}', o.loader);
  if (typeof o.seedState !== 'string' || !/^\d{1,40}$/.test(o.seedState)) throw bad('seedState', 'a decimal string', o.seedState);
  if (o.best !== null && typeof o.best !== 'number') throw bad('best', 'a number or null', o.best);
  if (o.runConfig !== null && (typeof o.runConfig !== 'object' || Array.isArray(o.runConfig))) throw bad('runConfig', 'an object or null', o.runConfig);
  let objective: TrainerState['objective'] = null;
  if (o.objective !== undefined && o.objective !== null) {
    const ob = o.objective as Record<string, unknown>;
    if (typeof ob !== 'object' || Array.isArray(ob) || typeof ob.name !== 'string' || (ob.state !== null && (typeof ob.state !== 'object' || Array.isArray(ob.state)))) {
      throw bad('objective', 'null or an object {name, state}', o.objective);
    }
    objective = { name: ob.name, state: ob.state as Record<string, unknown> | null };
  }
  let totalSteps: number | null = null, status: CheckpointStatus | null = null;
  if (o.version === 2) {
    if (!Number.isSafeInteger(o.totalSteps) || (o.totalSteps as number) < 1) throw bad('totalSteps', 'a positive integer', o.totalSteps);
    totalSteps = o.totalSteps as number;
    if (!STATUSES.includes(o.status as CheckpointStatus)) throw bad('status', `one of ${STATUSES.join(', ')}`, o.status);
    status = o.status as CheckpointStatus;
    if (step > totalSteps) throw bad('step', `at most totalSteps (${totalSteps})`, step);
  }
  return {
    version: 2, step, totalSteps, status, loader: o.loader as LoaderState, seedState: o.seedState,
    best: o.best as number | null, badEvals, runConfig: o.runConfig as Record<string, unknown> | null, objective,
  };
}

/** Result of checking one checkpoint folder. */
export type CheckpointCheck =
  | { complete: true; step: number; state: TrainerState; legacy: boolean }
  | { complete: false; reason: string };

/**
 * The checks of one checkpoint folder, handed to a driver: each yield asks for a file's sha256
 * (the async driver reads it through fs/promises, the sync one blocks) and receives it, or the
 * read's error thrown at the yield. Manifest, sizes and trainer_state.json are small reads.
 */
function* checkSteps(dir: string, opts: { allowLegacy?: boolean }): Generator<string, CheckpointCheck, string> {
  const manifestPath = join(dir, MANIFEST_FILE);
  const statePath = join(dir, TRAINER_STATE_FILE);
  let manifestText: string | null = null;
  try {
    manifestText = readFileSync(manifestPath, 'utf8');
  } catch {
    manifestText = null;
  }
  try {
    if (manifestText === null) {
      if (!opts.allowLegacy) return { complete: false, reason: `no ${MANIFEST_FILE} (the write did not finish, or an older tunekit wrote it)` };
      const state = parseTrainerState(readText(statePath), statePath);
      if (!isFile(join(dir, OPTIMIZER_FILE))) return { complete: false, reason: `no ${OPTIMIZER_FILE}` };
      return { complete: true, step: state.step, state, legacy: true };
    }
    const manifest = parseManifest(manifestText, manifestPath);
    for (const required of [TRAINER_STATE_FILE, OPTIMIZER_FILE]) {
      if (!manifest.files[required]) return { complete: false, reason: `${manifestPath} does not list ${required}` };
    }
    if (!Object.keys(manifest.files).some((f) => f.startsWith('adapter/') || f.startsWith('model/'))) {
      return { complete: false, reason: `${manifestPath} lists no adapter/ or model/ files` };
    }
    // sizes first (cheap; a truncated file fails here), then hashes
    for (const [f, want] of Object.entries(manifest.files)) {
      const p = join(dir, ...f.split('/'));
      let size: number;
      try {
        const st = lstatSync(p);
        if (!st.isFile()) return { complete: false, reason: `${p} is not a regular file` };
        size = st.size;
      } catch {
        return { complete: false, reason: `${p} is missing` };
      }
      if (size !== want.bytes) return { complete: false, reason: `${p} has ${size} bytes, the manifest says ${want.bytes}` };
    }
    for (const [f, want] of Object.entries(manifest.files)) {
      const p = join(dir, ...f.split('/'));
      if ((yield p) !== want.sha256) return { complete: false, reason: `${p} does not match its sha256 in the manifest` };
    }
    const state = parseTrainerState(readText(statePath), statePath);
    if (state.step !== manifest.step) return { complete: false, reason: `${statePath} has step ${state.step}, the manifest says ${manifest.step}` };
    return { complete: true, step: state.step, state, legacy: false };
  } catch (e) {
    return { complete: false, reason: (e as Error).message };
  }
}

/**
 * Checks a checkpoint folder: its manifest and every file it lists (size, then sha256), and
 * trainer_state.json. A folder without manifest.json is accepted only as `checkpoint/` itself
 * (`legacyName`), where tunekit before manifests only ever renamed complete folders. The hashes
 * are read through fs/promises, in 4 MiB chunks: the event loop runs between chunks (hashing a
 * checkpoint takes about 1 s per GB).
 *
 * @example
 * const c = await checkCheckpoint('runs/x/checkpoint');
 * if (!c.complete) console.log(c.reason);
 */
export async function checkCheckpoint(dir: string, opts: { allowLegacy?: boolean } = {}): Promise<CheckpointCheck> {
  const steps = checkSteps(dir, opts);
  let r = steps.next();
  while (!r.done) {
    let hash: string;
    try {
      hash = await sha256FileAsync(r.value);
    } catch (e) {
      r = steps.throw(e);
      continue;
    }
    r = steps.next(hash);
  }
  return r.value;
}

/**
 * {@link checkCheckpoint} with blocking reads.
 *
 * @example
 * const c = checkCheckpointSync('runs/x/checkpoint');
 */
export function checkCheckpointSync(dir: string, opts: { allowLegacy?: boolean } = {}): CheckpointCheck {
  const steps = checkSteps(dir, opts);
  let r = steps.next();
  while (!r.done) {
    let hash: string;
    try {
      hash = sha256File(r.value);
    } catch (e) {
      r = steps.throw(e);
      continue;
    }
    r = steps.next(hash);
  }
  return r.value;
}

function readText(p: string): string {
  try {
    return readFileSync(p, 'utf8');
  } catch (e) {
    throw new TunekitError('ERR_NOT_FOUND', `Could not read ${p}: ${(e as Error).message}`);
  }
}

function isFile(p: string): boolean {
  try {
    return lstatSync(p).isFile();
  } catch {
    return false;
  }
}

function parseManifest(text: string, file: string): Manifest {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new TunekitError('ERR_FORMAT', `${file}: expected JSON but the file is truncated or corrupt (${(e as Error).message})`);
  }
  const o = v as Record<string, unknown>;
  if (typeof v !== 'object' || v === null || o.version !== 1 || !Number.isSafeInteger(o.step) || typeof o.files !== 'object' || o.files === null) {
    throw new TunekitError('ERR_FORMAT', `${file}: expected {version: 1, step, files} but received ${describe(v)}`);
  }
  for (const [f, e] of Object.entries(o.files as Record<string, unknown>)) {
    // the manifest is untrusted: its paths stay inside the checkpoint folder
    if (f === '' || f.startsWith('/') || f.split('/').some((s) => s === '' || s === '.' || s === '..') || f.includes('\\') || f.includes('\0')) {
      throw new TunekitError('ERR_FORMAT', `${file}: expected a relative path inside the checkpoint but received ${describe(f)}`);
    }
    const entry = e as { bytes?: unknown; sha256?: unknown };
    if (typeof e !== 'object' || e === null || !Number.isSafeInteger(entry.bytes) || (entry.bytes as number) < 0 || typeof entry.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(entry.sha256)) {
      throw new TunekitError('ERR_FORMAT', `${file}: expected {bytes, sha256} for ${describe(f)} but received ${describe(e)}`);
    }
  }
  return v as Manifest;
}

/** An ERR_NOT_FOUND / ERR_FORMAT for a checkpoint folder that is not there or did not check out. */
function stateOf(dir: string, c: CheckpointCheck | null): { state: TrainerState; legacy: boolean } {
  if (!c) throw new TunekitError('ERR_NOT_FOUND', `no checkpoint folder ${dir}`);
  if (!c.complete) throw new TunekitError('ERR_FORMAT', `checkpoint ${dir} is incomplete or corrupt: ${c.reason}`);
  return { state: c.state, legacy: c.legacy };
}

/**
 * Reads a checkpoint folder's state after checking it ({@link checkCheckpoint}: the hashes are
 * read through fs/promises); an incomplete or corrupt folder is an ERR_FORMAT naming what is wrong.
 *
 * @example
 * const { state } = await readCheckpoint('runs/x/checkpoint');
 */
export async function readCheckpoint(dir: string): Promise<{ state: TrainerState; legacy: boolean }> {
  return stateOf(dir, isDir(dir) ? await checkCheckpoint(dir, { allowLegacy: true }) : null);
}

/**
 * {@link readCheckpoint} with blocking reads.
 *
 * @example
 * const { state } = readCheckpointSync('runs/x/checkpoint');
 */
export function readCheckpointSync(dir: string): { state: TrainerState; legacy: boolean } {
  return stateOf(dir, isDir(dir) ? checkCheckpointSync(dir, { allowLegacy: true }) : null);
}

/** What {@link recoverCheckpoint} found and did. */
export interface RecoveredCheckpoint {
  /** `<outputDir>/checkpoint`, now the newest complete checkpoint */
  dir: string;
  step: number;
  state: TrainerState;
  /** the leftover folder renamed to checkpoint/ (null: checkpoint/ already was the newest) */
  recoveredFrom: string | null;
  /** folders removed (older or incomplete) */
  removed: string[];
}

export interface RecoverOptions {
  /**
   * called with the newest complete checkpoint's state and folder before anything on disk
   * changes; throwing refuses the resume with the folder untouched
   */
  accept?(state: TrainerState, dir: string): void;
}

/** The checkpoint folders of an output folder to check: checkpoint/ may be a legacy folder. */
function candidates(outputDir: string): { name: string; dir: string; opts: { allowLegacy: boolean } }[] {
  return candidateNames(outputDir).map((name) => ({ name, dir: join(outputDir, name), opts: { allowLegacy: name === CHECKPOINT_DIR } }));
}

/**
 * Makes `<outputDir>/checkpoint` the newest complete checkpoint among it and the leftovers of
 * an interrupted save, then removes the others. With no complete checkpoint, returns null and
 * removes nothing; `found` then lists each folder seen and why it is not usable. The checks'
 * hashes are read through fs/promises; the renames and removals block (metadata operations).
 *
 * @example
 * const r = await recoverCheckpoint('runs/x');
 * if (r) await trainer.fit({ resumeFrom: r.dir });
 */
export async function recoverCheckpoint(outputDir: string, found: string[] = [], opts: RecoverOptions = {}): Promise<RecoveredCheckpoint | null> {
  const checked: { name: string; check: CheckpointCheck }[] = [];
  for (const c of candidates(outputDir)) checked.push({ name: c.name, check: await checkCheckpoint(c.dir, c.opts) });
  return recoverFrom(outputDir, checked, found, opts);
}

/**
 * {@link recoverCheckpoint} with blocking reads.
 *
 * @example
 * const r = recoverCheckpointSync('runs/x');
 */
export function recoverCheckpointSync(outputDir: string, found: string[] = [], opts: RecoverOptions = {}): RecoveredCheckpoint | null {
  const checked = candidates(outputDir).map((c) => ({ name: c.name, check: checkCheckpointSync(c.dir, c.opts) }));
  return recoverFrom(outputDir, checked, found, opts);
}

/** The renames and removals of a recovery, once every candidate folder is checked. */
function recoverFrom(outputDir: string, checked: { name: string; check: CheckpointCheck }[], found: string[], opts: RecoverOptions): RecoveredCheckpoint | null {
  let best: { name: string; step: number; state: TrainerState } | null = null;
  for (const { name, check } of checked) {
    if (!check.complete) {
      found.push(`${name}: ${check.reason}`);
      continue;
    }
    // the highest step wins; on a tie checkpoint/ (already in place) is kept
    if (!best || check.step > best.step || (check.step === best.step && name === CHECKPOINT_DIR)) best = { name, step: check.step, state: check.state };
  }
  if (!best) return null;
  opts.accept?.(best.state, join(outputDir, best.name));
  const final = join(outputDir, CHECKPOINT_DIR);
  const removed: string[] = [];
  try {
    if (best.name !== CHECKPOINT_DIR) {
      // each rename is atomic and the chosen folder stays complete under one name or the other,
      // so a crash here is recovered by the next call the same way
      if (isDir(final)) {
        const aside = OLD_PREFIX + uniqueSuffix();
        renameSync(final, join(outputDir, aside));
        checked.push({ name: aside, check: { complete: false, reason: 'moved aside' } });
      }
      renameSync(join(outputDir, best.name), final);
      fsyncDir(outputDir);
    }
  } catch (e) {
    throw ioError('recover the checkpoint', join(outputDir, best.name), e);
  }
  for (const { name } of checked) {
    if (name === CHECKPOINT_DIR || name === best.name) continue;
    rmSync(join(outputDir, name), { recursive: true, force: true });
    removed.push(name);
  }
  return { dir: final, step: best.step, state: best.state, recoveredFrom: best.name === CHECKPOINT_DIR ? null : best.name, removed };
}

/**
 * {@link recoverCheckpoint} for `--resume`. No complete checkpoint is an error naming the folder
 * and what it holds: ERR_FORMAT when `checkpoint/` itself is there but damaged (truncated,
 * corrupt, tampered), ERR_NOT_FOUND otherwise (nothing, or only an interrupted first save).
 *
 * @example
 * const ck = await requireCheckpoint(config.output_dir);   // then trainer.fit({ resumeFrom: ck.dir })
 */
export async function requireCheckpoint(outputDir: string, opts: RecoverOptions = {}): Promise<RecoveredCheckpoint> {
  const found: string[] = [];
  return (await recoverCheckpoint(outputDir, found, opts)) ?? nothingToResume(outputDir, found);
}

/**
 * {@link requireCheckpoint} with blocking reads.
 *
 * @example
 * const ck = requireCheckpointSync(config.output_dir);
 */
export function requireCheckpointSync(outputDir: string, opts: RecoverOptions = {}): RecoveredCheckpoint {
  const found: string[] = [];
  return recoverCheckpointSync(outputDir, found, opts) ?? nothingToResume(outputDir, found);
}

function nothingToResume(outputDir: string, found: string[]): never {
  const what = found.length ? `; found only incomplete checkpoints:\n  ${found.join('\n  ')}\n` : isDir(outputDir) ? ` (the folder has no ${CHECKPOINT_DIR}/). ` : ' (the folder does not exist). ';
  const damaged = found.some((l) => l.startsWith(`${CHECKPOINT_DIR}: `));
  throw new TunekitError(damaged ? 'ERR_FORMAT' : 'ERR_NOT_FOUND', `nothing to resume: no complete checkpoint in ${outputDir}${what}Run without --resume to start a new run.`);
}

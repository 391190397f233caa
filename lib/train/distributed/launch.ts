/**
 * `tunekit train cfg.yaml --nproc N`: N ranks on this machine, started by the MPI library's own
 * launcher (mpirun), each running the same `tunekit train` command line; across machines the
 * user runs mpirun (`mpirun -np 8 -H a:4,b:4 tunekit train cfg.yaml`) and tunekit joins the job
 * it finds in the environment (process_group.ts). The launcher watches the job: when a rank
 * fails (its own error is printed above, prefixed with its rank) mpirun ends the others, and the
 * launcher's error says so and which checkpoint is on disk to resume from.
 */
import { spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { TunekitError, describe } from '../../errors.js';
import { checkCheckpointSync, CHECKPOINT_DIR } from '../checkpoint.js';
import { mpiLibrary } from './process_group.js';

export interface LaunchOptions {
  /** ranks to start (>= 2) */
  nproc: number;
  /** the command line every rank runs after `node <script>` (e.g. ['train', 'cfg.yaml', '--resume']) */
  args: string[];
  /** the run's output folder: the failure message says which checkpoint it holds */
  outputDir?: string;
  /** the script the ranks run (default: this process's, process.argv[1]) */
  script?: string;
  /** environment of the job (default: process.env) */
  env?: NodeJS.ProcessEnv;
}

/** Which mpirun, and how to start N ranks with it. */
export interface Launcher {
  command: string;
  flavour: 'Open MPI' | 'MPICH';
  version: string;
  /** mpirun's own options for n ranks on this machine */
  args(n: number): string[];
  /** the signal this mpirun forwards to every rank (the ranks take it as Ctrl-C) */
  interruptSignal: NodeJS.Signals;
}

/**
 * The mpirun to use ($TUNEKIT_MPIRUN, else `mpirun` on PATH) and its flavour; ERR_BACKEND when
 * there is none, saying what to install.
 * @example findLauncher().args(2); // ['-np', '2', '--oversubscribe', '--bind-to', 'none', ...]
 */
export function findLauncher(env: NodeJS.ProcessEnv = process.env): Launcher {
  const command = env.TUNEKIT_MPIRUN || 'mpirun';
  const r = spawnSync(command, ['--version'], { encoding: 'utf8', env, timeout: 30_000 });
  if (r.error || r.status !== 0) {
    const why = r.error ? (r.error as NodeJS.ErrnoException).code === 'ENOENT' ? 'was not found on PATH' : `could not run (${r.error.message})` : `exited with status ${r.status}: ${(r.stderr || r.stdout).trim().slice(0, 300)}`;
    throw new TunekitError('ERR_BACKEND', `--nproc starts the ranks with MPI's launcher, but ${describe(command)} ${why}. Install Open MPI (Debian/Ubuntu: apt-get install openmpi-bin; Fedora: dnf install openmpi) or MPICH, or name the launcher in TUNEKIT_MPIRUN.`);
  }
  const text = `${r.stdout}\n${r.stderr}`;
  const flavour: Launcher['flavour'] = /open ?mpi|open-mpi/i.test(text) ? 'Open MPI' : /hydra|mpich/i.test(text) ? 'MPICH' : 'Open MPI';
  const version = text.split('\n').find((l) => l.trim())?.trim() ?? '';
  const root = typeof process.getuid === 'function' && process.getuid() === 0;
  return {
    command, flavour, version, interruptSignal: flavour === 'MPICH' ? 'SIGUSR1' : 'SIGUSR2',
    args: (n) => flavour === 'MPICH'
      ? ['-n', String(n)]
      // every rank on this machine, however many cores it has (threads are divided among the
      // ranks by tunekit, so no binding to one core); Open MPI refuses root unless told
      : ['-np', String(n), '--oversubscribe', '--bind-to', 'none', ...(root ? ['--allow-run-as-root'] : [])],
  };
}

/** What the output folder's checkpoint says after a failed job. */
function checkpointNote(outputDir: string | undefined): string {
  if (!outputDir) return '';
  const dir = join(outputDir, CHECKPOINT_DIR);
  const c = checkCheckpointSync(dir, { allowLegacy: true });
  if (c.complete) {
    const of = c.state.totalSteps ? ` of ${c.state.totalSteps}` : '';
    return ` The last checkpoint, step ${c.step}${of}, is intact in ${dir} (its files match its manifest): run the same command with --resume to continue from it.`;
  }
  return ` No complete checkpoint is in ${dir} (${c.reason}).`;
}

/**
 * Runs `nproc` ranks of a tunekit command through mpirun and waits for them. Returns when every
 * rank succeeded; a failed job is ERR_BACKEND naming the exit status and the checkpoint on disk.
 * @example await launchRanks({ nproc: 2, args: ['train', 'cfg.yaml'], outputDir: 'runs/x' });
 */
export async function launchRanks(opts: LaunchOptions): Promise<void> {
  if (!Number.isInteger(opts.nproc) || opts.nproc < 2) throw new TunekitError('ERR_CONFIG', `--nproc: expected an integer of at least 2 to launch ranks but received ${describe(opts.nproc)}`);
  const env = opts.env ?? process.env;
  const library = mpiLibrary();
  if (!library.available) throw new TunekitError('ERR_BACKEND', `--nproc ${opts.nproc}: distributed training needs MPI, and ${library.reason}`);
  const launcher = findLauncher(env);
  if (!env.TUNEKIT_MPI_LIBRARY && launcher.flavour !== library.implementation) {
    throw new TunekitError('ERR_BACKEND', `--nproc ${opts.nproc}: the launcher ${launcher.command} is ${launcher.flavour}'s (${launcher.version}) but the MPI library tunekit loads is ${library.implementation}'s (${library.library}); they cannot start one job. Point TUNEKIT_MPIRUN at ${library.implementation}'s mpirun, or TUNEKIT_MPI_LIBRARY at ${launcher.flavour}'s libmpi.`);
  }
  const script = opts.script ?? process.argv[1];
  if (!script) throw new TunekitError('ERR_STATE', 'launchRanks: no script to run (process.argv[1] is empty)');
  const args = [...launcher.args(opts.nproc), process.execPath, ...process.execArgv, script, ...opts.args];
  // mpirun gives the ranks a terminal (a pty) whatever this process has: tell them what the user
  // sees, so that rank 0 prints plain lines without colours into a file or a pipe
  const tty = process.stderr.isTTY === true;
  const jobEnv: NodeJS.ProcessEnv = { ...env, TUNEKIT_LAUNCHER_TTY: tty ? '1' : '0', ...(tty || env.FORCE_COLOR ? {} : { NO_COLOR: '1' }) };
  // mpirun in its own process group: on Ctrl-C it would kill the ranks at once, so the terminal's
  // SIGINT reaches only this process, which sends mpirun the signal it forwards to every rank
  // (Open MPI: SIGUSR2, MPICH's Hydra: SIGUSR1), and the ranks agree to stop after the step,
  // rank 0 saving a checkpoint (trainer.ts). A second Ctrl-C (or SIGTERM / SIGHUP here) ends the
  // job at once.
  const child = spawn(launcher.command, args, { stdio: 'inherit', env: jobEnv, detached: true });
  let interrupts = 0;
  const onInterrupt = () => {
    interrupts++;
    if (interrupts === 1) process.stderr.write('interrupt: the ranks stop after this step and save a checkpoint (press Ctrl-C again to kill them now)\n');
    child.kill(interrupts === 1 ? launcher.interruptSignal : 'SIGTERM');
  };
  const onTerminate = () => child.kill('SIGTERM');
  process.on('SIGINT', onInterrupt);
  process.on('SIGTERM', onTerminate);
  process.on('SIGHUP', onTerminate);
  try {
    const { code, signal } = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
      child.once('error', reject);
      child.once('exit', (c, s) => resolve({ code: c, signal: s }));
    });
    if (code === 0) return;
    const how = signal ? `mpirun was ended by ${signal}` : `mpirun exited with status ${code}`;
    throw new TunekitError('ERR_BACKEND', `the ${opts.nproc}-rank job stopped: ${how} (a rank failed, or was killed, or hung past distributed.timeout_s: its error and mpirun's report are above).${checkpointNote(opts.outputDir)}`);
  } finally {
    process.removeListener('SIGINT', onInterrupt);
    process.removeListener('SIGTERM', onTerminate);
    process.removeListener('SIGHUP', onTerminate);
  }
}

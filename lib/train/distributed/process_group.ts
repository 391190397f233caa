/**
 * The process group: one interface over the collective backend (PyTorch's ProcessGroup), so that
 * data-parallel training (data_parallel.ts, reducer.ts) does not depend on which engine moves the
 * bytes. The backend here is MPI (Open MPI or MPICH), loaded at run time by the addon
 * (native/core/collectives.h): a job started by an MPI launcher (`mpirun -np N tunekit train ...`,
 * or `tunekit train --nproc N`, which runs mpirun) finds its rank and size in the launcher's
 * environment and initialises MPI; every collective is in place on native memory, started in the
 * same order on every rank, and waited for with a deadline: a rank that died or hangs makes the
 * others stop with ERR_TIMEOUT (or ERR_BACKEND when MPI reports the failure) instead of waiting
 * forever.
 */
import { collectives } from '../../backend.js';
import { Tensor } from '../../tensor/tensor.js';
import { DTYPE_SIZE } from '../../tensor/dtype.js';
import { keep } from '../../tensor/scope.js';
import { TunekitError, describe } from '../../errors.js';

/** An operation in flight. */
export interface Work {
  /** Blocks until it completes; past the group's timeout ERR_TIMEOUT, a failure ERR_BACKEND. */
  wait(): void;
}

/** Counters of this rank's collectives so far. */
export interface CollectiveStats {
  ops: number;
  /** payload bytes (each operation's buffer on this rank) */
  bytes: number;
  /** wall seconds during which at least one operation was in flight (the communication thread's view) */
  busySeconds: number;
}

/**
 * The ranks of a job and the collectives among them.
 * @example
 * const g = initProcessGroup({ timeoutSeconds: 60 });
 * if (g) { const t = zeros([4]); g.allreduce(t).wait(); }
 */
export interface ProcessGroup {
  readonly rank: number;
  readonly size: number;
  /** ranks of this job on this machine (threads are divided among them) */
  readonly localSize: number;
  /** e.g. 'Open MPI v4.1.4' */
  readonly backend: string;
  /** seconds a rank waits for the others before ERR_TIMEOUT */
  readonly timeoutSeconds: number;
  /** Starts an in-place reduction over ranks of a contiguous f32 or f64 tensor. */
  allreduce(t: Tensor<'f32'> | Tensor<'f64'>, op?: 'sum' | 'max' | 'min', label?: string): Work;
  /** Starts an in-place copy of rank `root`'s contiguous tensor to every rank. */
  broadcast(t: Tensor, root: number, label?: string): Work;
  barrier(label?: string): Work;
  stats(): CollectiveStats;
  /** Ends every rank of the job now (MPI_Abort); for fatal errors after one rank has reported. */
  abort(code: number): never;
  /** Ends the group (collective: every rank calls it at the end of the job). */
  close(): void;
}

/** Where a launcher said this process stands. */
export interface LauncherWorld {
  rank: number;
  size: number;
  localRank: number;
  localSize: number;
  /** which launcher set the variables */
  launcher: 'Open MPI' | 'MPICH';
}

/**
 * The rank and size an MPI launcher gave this process, from its environment (Open MPI's
 * OMPI_COMM_WORLD_*, MPICH Hydra's PMI_* and MPI_LOCAL*), or null when no launcher started it.
 * @example launcherWorld({ OMPI_COMM_WORLD_RANK: '1', OMPI_COMM_WORLD_SIZE: '2' }); // { rank: 1, size: 2, ... }
 */
export function launcherWorld(env: NodeJS.ProcessEnv = process.env): LauncherWorld | null {
  const int = (name: string): number | null => {
    const v = env[name];
    if (v === undefined || v === '') return null;
    const n = Number(v);
    if (!Number.isSafeInteger(n) || n < 0) throw new TunekitError('ERR_CONFIG', `${name}: expected a non-negative integer from the MPI launcher but received ${describe(v)}`);
    return n;
  };
  const read = (launcher: LauncherWorld['launcher'], rank: string, size: string, localRank: string, localSize: string): LauncherWorld | null => {
    const r = int(rank), s = int(size);
    if (r === null || s === null) return null;
    if (s < 1 || r >= s) throw new TunekitError('ERR_CONFIG', `${rank}=${r}, ${size}=${s}: expected 0 <= rank < size from the MPI launcher`);
    return { rank: r, size: s, localRank: int(localRank) ?? r, localSize: int(localSize) ?? s, launcher };
  };
  return read('Open MPI', 'OMPI_COMM_WORLD_RANK', 'OMPI_COMM_WORLD_SIZE', 'OMPI_COMM_WORLD_LOCAL_RANK', 'OMPI_COMM_WORLD_LOCAL_SIZE')
    ?? read('MPICH', 'PMI_RANK', 'PMI_SIZE', 'MPI_LOCALRANKID', 'MPI_LOCALNRANKS');
}

/** What the addon found of MPI, without initialising it (for `tunekit info` and the launcher). */
export function mpiLibrary(): { available: boolean; implementation: string; library: string; version: string; reason: string } {
  return collectives.probe();
}

const ELEM = { f32: 0, f64: 1 } as const;
const OP = { sum: 0, max: 1, min: 2 } as const;

let active: MpiProcessGroup | null = null;

/** The process group of this process once initialised (null before, after close(), or without a launcher). */
export function activeProcessGroup(): ProcessGroup | null {
  return active;
}

/** MPI as the backend (native/core/collectives.h). Made by {@link initProcessGroup}. */
class MpiProcessGroup implements ProcessGroup {
  readonly backend: string;
  private closed = false;

  constructor(readonly rank: number, readonly size: number, readonly localSize: number, readonly timeoutSeconds: number, backend: string) {
    this.backend = backend;
  }

  /** `written`: the tensor the operation writes (its version moves on once the data is there) */
  private work(id: number, label: string, written: Tensor | null): Work {
    let done = false;
    return {
      wait: () => {
        if (done) return;
        const ok = collectives.wait(id, this.timeoutSeconds * 1000);
        if (!ok) {
          throw new TunekitError('ERR_TIMEOUT', `rank ${this.rank} of ${this.size}: ${label} did not complete within ${this.timeoutSeconds} s: another rank died, hangs or is stuck in longer work (distributed.timeout_s sets the limit; it must exceed rank 0's longest evaluation or checkpoint save)`);
        }
        done = true;
        written?.storage.markWritten();
      },
    };
  }

  private live(): void {
    if (this.closed) throw new TunekitError('ERR_STATE', `rank ${this.rank}: the process group was closed`);
  }

  allreduce(t: Tensor<'f32'> | Tensor<'f64'>, op: 'sum' | 'max' | 'min' = 'sum', label = 'all-reduce'): Work {
    this.live();
    if (t.dtype !== 'f32' && t.dtype !== 'f64') throw new TunekitError('ERR_DTYPE', `allreduce: expected an f32 or f64 tensor but received ${(t as Tensor).dtype}`);
    if (!t.isContiguous) throw new TunekitError('ERR_VALUE', 'allreduce: expected a contiguous tensor');
    const id = collectives.allreduce(t, t.numel, ELEM[t.dtype], OP[op]);
    return this.work(id, label, t);
  }

  broadcast(t: Tensor, root: number, label = 'broadcast'): Work {
    this.live();
    if (!Number.isInteger(root) || root < 0 || root >= this.size) throw new TunekitError('ERR_VALUE', `broadcast: expected a root rank in [0, ${this.size}) but received ${describe(root)}`);
    if (!t.isContiguous) throw new TunekitError('ERR_VALUE', 'broadcast: expected a contiguous tensor');
    const id = collectives.broadcast(t, t.numel * DTYPE_SIZE[t.dtype], root);
    return this.work(id, label, t);
  }

  barrier(label = 'barrier'): Work {
    this.live();
    return this.work(collectives.barrier(), label, null);
  }

  stats(): CollectiveStats {
    return collectives.stats();
  }

  abort(code: number): never {
    return collectives.abort(code);
  }

  close(): void {
    if (this.closed) return;
    // every rank reaches the end before MPI_Finalize: a rank still writing rank 0's outputs is
    // waited for with the same deadline as any collective
    this.barrier('the barrier at the end of the job').wait();
    this.closed = true;
    active = null;
    collectives.finalize();
  }
}

export interface ProcessGroupOptions {
  /** seconds a rank waits for the others in any collective (default 1800, PyTorch's) */
  timeoutSeconds?: number;
  /** the launcher's variables (default: process.env) */
  env?: NodeJS.ProcessEnv;
}

/**
 * Joins the job an MPI launcher started this process in: initialises MPI (once per process) and
 * checks that MPI's rank and size are the launcher's. Returns null when no launcher started it
 * (one process: nothing to do). Without a loadable MPI library: ERR_BACKEND saying what to install.
 * @example const group = initProcessGroup({ timeoutSeconds: 600 }); // null outside mpirun
 */
export function initProcessGroup(opts: ProcessGroupOptions = {}): ProcessGroup | null {
  const world = launcherWorld(opts.env);
  if (!world || world.size === 1) return null;
  if (active) return active;
  const timeoutSeconds = opts.timeoutSeconds ?? 1800;
  if (!(timeoutSeconds > 0)) throw new TunekitError('ERR_CONFIG', `distributed.timeout_s: expected a positive number of seconds but received ${describe(timeoutSeconds)}`);
  const info = collectives.init();
  if (info.rank !== world.rank || info.size !== world.size) {
    throw new TunekitError('ERR_BACKEND', `${world.launcher}'s launcher started this process as rank ${world.rank} of ${world.size}, but ${info.implementation} (the MPI library loaded: ${info.version}) says rank ${info.rank} of ${info.size}: the launcher and the library are of different MPI implementations (use the mpirun of the library tunekit loads, or set TUNEKIT_MPI_LIBRARY)`);
  }
  active = new MpiProcessGroup(info.rank, info.size, world.localSize, timeoutSeconds, info.version || info.implementation);
  return active;
}

// ------------------------------------------------------------------ small collectives on JS values

/**
 * Reduces numbers over ranks (f64, in one operation).
 * @example const [tokens, loss] = allreduceNumbers(group, [myTokens, myLoss]);
 */
export function allreduceNumbers(group: ProcessGroup, values: readonly number[], op: 'sum' | 'max' | 'min' = 'sum', label = 'all-reduce of step figures'): number[] {
  const t = keep(Tensor.empty([values.length], 'f64'));
  try {
    t.copyFrom(Float64Array.from(values));
    group.allreduce(t, op, label).wait();
    return Array.from(t.toTypedArray());
  } finally {
    t.dispose();
  }
}

/**
 * Rank `root`'s JSON value on every rank (two broadcasts: the length, then the UTF-8 bytes).
 * @example const result = broadcastJson(group, group.rank === 0 ? evaluate() : null, 0);
 */
export function broadcastJson<T>(group: ProcessGroup, value: T, root = 0, label = 'broadcast of rank 0\'s state'): T {
  const bytes = group.rank === root ? new TextEncoder().encode(JSON.stringify(value ?? null)) : null;
  const len = keep(Tensor.empty([1], 'f64'));
  try {
    len.copyFrom(new Float64Array([bytes?.length ?? 0]));
    group.broadcast(len, root, `${label} (length)`).wait();
    const n = len.toTypedArray()[0]!;
    if (n === 0) return null as T;
    const buf = keep(Tensor.empty([n], 'u8'));
    try {
      if (bytes) buf.copyFrom(bytes);
      group.broadcast(buf, root, label).wait();
      return JSON.parse(new TextDecoder().decode(buf.toTypedArray())) as T;
    } finally {
      buf.dispose();
    }
  } finally {
    len.dispose();
  }
}

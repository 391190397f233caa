/**
 * Output folders are checked before a job loads anything: a run that would fail at its first
 * write after minutes of loading and training must fail at once, with the reason.
 *
 * Refused: a path that exists and is not a folder (or has a file on the way), a folder under a
 * pseudo-filesystem (/proc, /sys, cgroups, debugfs: Node's recursive mkdir loops forever on
 * /proc), a read-only filesystem or a parent the user cannot write. The folder is created (with
 * its parents) and a probe file is written and removed, so a full or read-only disk shows here.
 */
import { accessSync, constants, mkdirSync, realpathSync, rmSync, statSync, statfsSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { TunekitError } from '../errors.js';

/** statfs magic numbers of filesystems that are not storage (linux/magic.h). */
const PSEUDO_FILESYSTEMS: Record<number, string> = {
  0x9fa0: 'proc',
  0x62656572: 'sysfs',
  0x27e0eb: 'cgroup',
  0x63677270: 'cgroup2',
  0x64626720: 'debugfs',
  0x74726163: 'tracefs',
  0x73636673: 'securityfs',
  0xcafe4a11: 'bpf',
  0x6e736673: 'nsfs',
};
const PSEUDO_PREFIXES = ['/proc', '/sys', '/dev'];

function ioError(dir: string, what: string, e?: unknown): TunekitError {
  const err = e as NodeJS.ErrnoException | undefined;
  return new TunekitError('ERR_IO', `output folder ${dir}: ${what}${err?.code ? ` (${err.code}: ${err.message})` : ''}`);
}

/** The deepest existing ancestor of `path` (itself when it exists). */
function existingAncestor(path: string): string {
  let p = path;
  for (;;) {
    try {
      statSync(p);
      return p;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      // ENOTDIR: a file sits on the way; the caller's stat of that file reports it
      if (code !== 'ENOENT' && code !== 'ENOTDIR') throw ioError(path, `cannot inspect ${p}`, e);
      const up = dirname(p);
      if (up === p) return p;
      p = up;
    }
  }
}

/**
 * Checks that `dir` can hold a job's outputs and creates it. Returns the absolute path.
 *
 * @example
 * const out = prepareOutputDir(config.output_dir); // before loading the model and data
 */
export function prepareOutputDir(dir: string): string {
  const abs = resolve(dir);
  const anchor = existingAncestor(abs);
  const st = statSync(anchor);
  if (!st.isDirectory()) {
    throw ioError(abs, anchor === abs ? 'exists and is not a folder (a file of that name is in the way)' : `${anchor} is a file, so no folder can be made under it`);
  }
  const real = realpathSync(anchor);
  const prefix = PSEUDO_PREFIXES.find((p) => real === p || real.startsWith(p + '/'));
  let fsType: string | undefined;
  try {
    fsType = PSEUDO_FILESYSTEMS[statfsSync(real).type];
  } catch {
    /* statfs unavailable: the prefix check still applies */
  }
  if (prefix || fsType) throw ioError(abs, `${real} is on a pseudo-filesystem (${fsType ?? prefix}), not storage; choose a folder on a disk`);
  try {
    accessSync(anchor, constants.W_OK | constants.X_OK);
  } catch (e) {
    throw ioError(abs, `${anchor} is not writable`, e);
  }
  try {
    mkdirSync(abs, { recursive: true });
  } catch (e) {
    throw ioError(abs, 'could not be created', e);
  }
  // a probe write: read-only mounts pass access() for root, and full disks pass everything else
  const probe = join(abs, `.tunekit-probe-${process.pid}-${randomBytes(4).toString('hex')}`);
  try {
    writeFileSync(probe, 'ok');
  } catch (e) {
    throw ioError(abs, 'is not writable', e);
  } finally {
    rmSync(probe, { force: true });
  }
  return abs;
}

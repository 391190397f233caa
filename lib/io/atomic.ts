/**
 * Crash-safe file writes: write a temporary file in the same folder, fsync it, rename it over
 * the target (atomic on POSIX), then fsync the folder so the rename itself is durable. A reader
 * sees either the old file or the new one, never a torn one.
 */

import { closeSync, fsyncSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { open, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { TunekitError } from '../errors.js';

function tmpPath(path: string): string {
  return join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
}

function ioError(path: string, e: unknown): TunekitError {
  return new TunekitError('ERR_IO', `Could not write ${path}: ${(e as Error).message}`);
}

/**
 * fsyncs a folder so that renames and creations in it are durable (a no-op where the platform
 * cannot fsync a folder; the renames are still atomic).
 *
 * @example
 * renameSync('runs/x/.tmp', 'runs/x/checkpoint'); fsyncDir('runs/x');
 */
export function fsyncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, 'r');
    fsyncSync(fd);
  } catch {
    // Some platforms / file systems cannot fsync a directory; the rename is still atomic.
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/**
 * Atomically replaces `path` with `data`.
 *
 * @example
 * await writeFileAtomic('runs/x/adapter_config.json', JSON.stringify(cfg, null, 2));
 */
export async function writeFileAtomic(path: string, data: string | Uint8Array): Promise<void> {
  const tmp = tmpPath(path);
  try {
    const fh = await open(tmp, 'w');
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (e) {
    await unlink(tmp).catch(() => undefined);
    throw ioError(path, e);
  }
  try {
    const dh = await open(dirname(path), 'r');
    try {
      await dh.sync();
    } catch {
      /* see fsyncDir */
    } finally {
      await dh.close();
    }
  } catch {
    /* see fsyncDir */
  }
}

/**
 * Synchronous {@link writeFileAtomic}.
 *
 * @example
 * writeFileAtomicSync('runs/x/state.json', '{"step": 10}');
 */
export function writeFileAtomicSync(path: string, data: string | Uint8Array): void {
  const tmp = tmpPath(path);
  try {
    const fd = openSync(tmp, 'w');
    try {
      const buf = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
      let off = 0;
      while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (e) {
    try {
      unlinkSync(tmp);
    } catch {
      /* already gone */
    }
    throw ioError(path, e);
  }
  fsyncDir(dirname(path));
}

/**
 * Atomically writes a value as JSON (indent 2, trailing newline).
 *
 * @example
 * await writeJsonAtomic('runs/x/trainer_state.json', { step: 100, loader: loader.state() });
 */
export async function writeJsonAtomic(path: string, value: unknown, opts: { indent?: number } = {}): Promise<void> {
  await writeFileAtomic(path, JSON.stringify(value, null, opts.indent ?? 2) + '\n');
}

/**
 * Synchronous {@link writeJsonAtomic}.
 *
 * @example
 * writeJsonAtomicSync('runs/x/trainer_state.json', { step: 100 });
 */
export function writeJsonAtomicSync(path: string, value: unknown, opts: { indent?: number } = {}): void {
  writeFileAtomicSync(path, JSON.stringify(value, null, opts.indent ?? 2) + '\n');
}

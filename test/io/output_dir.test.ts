/**
 * Output folders are checked before a job loads anything (lib/io/output_dir.ts).
 */
import { describe, expect, test, beforeAll, afterAll } from 'vitest';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { prepareOutputDir } from '../../lib/io/output_dir.js';
import { TunekitError } from '../../lib/errors.js';

let dir = '';
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'tk-out-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function refused(p: string): TunekitError {
  const t0 = Date.now();
  try {
    prepareOutputDir(p);
  } catch (e) {
    expect(e).toBeInstanceOf(TunekitError);
    expect((e as TunekitError).code).toBe('ERR_IO');
    expect(Date.now() - t0).toBeLessThan(1000);
    return e as TunekitError;
  }
  throw new Error(`expected ${p} to be refused`);
}

describe('prepareOutputDir', () => {
  test('makes a nested folder and leaves no probe file behind', () => {
    const p = join(dir, 'a', 'b', 'c');
    expect(prepareOutputDir(p)).toBe(p);
    expect(existsSync(p)).toBe(true);
    expect(readdirSync(p)).toEqual([]);
  });

  test('a pseudo-filesystem is refused at once (Node\'s recursive mkdir loops forever on /proc)', () => {
    expect(refused('/proc/tunekit-run/out').message).toMatch(/pseudo-filesystem \(proc\)/);
    expect(refused('/sys/tunekit').message).toMatch(/pseudo-filesystem/);
  });

  test('a file in the way, or on the way, is refused naming it', () => {
    const f = join(dir, 'file');
    writeFileSync(f, 'x');
    expect(refused(f).message).toMatch(/exists and is not a folder/);
    expect(refused(join(f, 'sub', 'run')).message).toMatch(/is a file, so no folder can be made under it/);
  });

  test.skipIf(process.getuid?.() === 0)('a parent without write permission is refused (not a bare EACCES later)', () => {
    const ro = join(dir, 'ro');
    mkdirSync(ro);
    chmodSync(ro, 0o555);
    try {
      expect(refused(join(ro, 'run')).message).toMatch(/not writable/);
    } finally {
      chmodSync(ro, 0o755);
    }
  });

  // A read-only filesystem: root passes access(W_OK) there, so only the probe write shows it.
  // Needs a read-only mount; where this process may not mount (an unprivileged CI runner) the
  // case is skipped with the reason printed.
  const ro = join(tmpdir(), `tk-ro-${process.pid}`);
  mkdirSync(ro, { recursive: true });
  const mounted = process.getuid?.() === 0 && spawnSync('mount', ['-t', 'tmpfs', '-o', 'ro,size=64k', 'tmpfs', ro]).status === 0;
  if (!mounted) console.warn('output_dir: skipping the read-only filesystem case (cannot mount a read-only tmpfs here)');
  test.runIf(mounted)('a read-only filesystem is refused at once (root passes access(); the probe write finds EROFS)', () => {
    try {
      expect(refused(join(ro, 'run')).message).toMatch(/(could not be created|is not writable).*EROFS/);
    } finally {
      spawnSync('umount', [ro]);
      rmSync(ro, { recursive: true, force: true });
    }
  });
});

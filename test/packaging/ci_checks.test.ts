/**
 * The checks CI runs through `npm test` (.ci/run: npm ci && npm test) besides the vitest suites:
 * - the committed prebuild matches the native sources (scripts/prebuild.mjs --check);
 * - the API report matches the published types (scripts/api-report.mjs --check);
 * - the typecheck of lib/, test/ (test/tsconfig.json, which includes lib/) and bench/;
 * - the Node-free native test runner (scripts/native-tests.mjs: CMake, CPU only, build/native-tests).
 * Each runs as a child process; a failure shows its output.
 */
import { describe, it, expect } from 'vitest';
import { spawnSync } from 'node:child_process';
import { join, resolve } from 'node:path';

const ROOT = resolve(__dirname, '../..');
const TSC = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');

function check(args: string[], opts: { cmd?: string; timeoutMs?: number } = {}): { ok: boolean; output: string } {
  const r = spawnSync(opts.cmd ?? process.execPath, args, { cwd: ROOT, encoding: 'utf8', maxBuffer: 64 << 20, timeout: opts.timeoutMs });
  return { ok: r.status === 0, output: `${r.stdout ?? ''}${r.stderr ?? ''}${r.error ? String(r.error) : ''}`.slice(-8000) };
}

describe('CI checks', () => {
  it('the committed prebuild was built from the current native sources', () => {
    const r = check(['scripts/prebuild.mjs', '--check']);
    expect(r.ok, r.output).toBe(true);
  });

  it('the API report matches the public surface', () => {
    const r = check(['scripts/api-report.mjs', '--check']);
    expect(r.ok, r.output).toBe(true);
  }, 60_000);

  it('typecheck: lib/ and test/ (type tests of the public API included), bench/', () => {
    const tests = check([TSC, '-p', 'test/tsconfig.json'], { timeoutMs: 300_000 });
    expect(tests.ok, tests.output).toBe(true);
    const bench = check([TSC, '-p', 'bench/tsconfig.json', '--noEmit'], { timeoutMs: 300_000 });
    expect(bench.ok, bench.output).toBe(true);
  }, 600_000);

  it('the native test runner passes', () => {
    // helpers sharing this tree serialise native builds on a lock; CI machines have flock too
    const hasFlock = spawnSync('sh', ['-c', 'command -v flock']).status === 0;
    const r = hasFlock
      ? check(['/tmp/tunekit-native.lock', process.execPath, 'scripts/native-tests.mjs'], { cmd: 'flock', timeoutMs: 580_000 })
      : check(['scripts/native-tests.mjs'], { timeoutMs: 580_000 });
    expect(r.ok, r.output).toBe(true);
    expect(r.output).toMatch(/\d+ passed, 0 failed/);
  }, 600_000);
});

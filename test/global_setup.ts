/**
 * Runs once before any test file: rebuilds dist/ (what `tunekit` runs, and what the CLI tests
 * spawn) when a file under lib/ is newer than it. One build here instead of one per CLI test
 * file, which raced when two files rebuilt at once and a child process read a half-written file.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

function newestMtime(d: string): number {
  let t = 0;
  for (const e of readdirSync(d, { withFileTypes: true })) {
    const p = join(d, e.name);
    t = Math.max(t, e.isDirectory() ? newestMtime(p) : statSync(p).mtimeMs);
  }
  return t;
}

export default function setup(): void {
  const main = join(ROOT, 'dist', 'cli', 'main.js');
  if (existsSync(main) && statSync(main).mtimeMs >= newestMtime(join(ROOT, 'lib'))) return;
  // type errors elsewhere in the tree do not stop tsc from emitting; the typecheck is its own step
  spawnSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.build.json'], { cwd: ROOT, stdio: 'inherit' });
  if (!existsSync(main)) throw new Error(`could not build ${main}`);
}

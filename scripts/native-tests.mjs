#!/usr/bin/env node
/**
 * The Node-free native test runner (native/tests/test_*.cpp): configure and build it with CMake in
 * build/native-tests (CPU only: CI machines have no GPU, and compiling the CUDA sources there would
 * cost minutes for tests that cannot run), then run it. Incremental after the first build.
 *
 *   npm run test:native      (helpers sharing build/: flock /tmp/tunekit-native.lock npm run test:native)
 *
 * Exit status: the runner's (non-zero when a test fails), or 1 when the build fails.
 */
import { spawnSync } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const BUILD = join(ROOT, 'build', 'native-tests');

function step(cmd, args) {
  const r = spawnSync(cmd, args, { cwd: ROOT, stdio: 'inherit' });
  if (r.error) {
    console.error(`${cmd}: ${r.error.message} (the native tests need cmake 3.18+ and a C++17 compiler)`);
    process.exit(1);
  }
  if (r.status !== 0) process.exit(r.status ?? 1);
}

step('cmake', ['-S', ROOT, '-B', BUILD, '-DTUNEKIT_TESTS=ON', '-DTUNEKIT_CUDA=OFF', '-DCMAKE_BUILD_TYPE=Release', '--log-level=WARNING']);
step('cmake', ['--build', BUILD, '--target', 'tunekit_native_tests', '--parallel', String(availableParallelism())]);
step(join(BUILD, 'tunekit_native_tests'), process.argv.slice(2));
